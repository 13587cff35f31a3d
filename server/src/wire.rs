//! `Metered`: a WebSocket's bytes, paid for before the WebSocket library parses them.
//!
//! The frame budget (`crate::budget`) charges what the hub's own code sees: messages. Some
//! frames never get that far. The WebSocket library answers pings itself, takes pongs and
//! buffers continuation fragments until the final one, so a client could send millions of
//! pings or zero-length continuation frames a second on one connection, each parsed (and a
//! ping answered) at the hub's cost, without ever being charged.
//!
//! So every upgraded WebSocket reads through this meter, which walks the RFC 6455 frame
//! headers as the bytes pass (2-byte header, 16- or 64-bit extended length, 4-byte mask; the
//! payload is skipped, not looked at) and charges each frame — any opcode, control frames and
//! continuations included — from a token bucket of its own at the connection's
//! `--frame-budget` (bytes per second, [`BURST_SECONDS`] of it at once). A message sent whole
//! costs its payload plus [`FRAME_OVERHEAD`] bytes, as at the app level, whose meter also
//! multiplies by the audience and charges refused frames, so for data its bucket is always the
//! emptier of the two.
//!
//! A frame's size is not what it costs the hub, though: an empty ping is parsed and answered
//! like any other, and at 256 bytes the budget paid for 4,096 of them a second per connection.
//! So the frames the library handles by itself cost at least a share of the budget
//! ([`frame_cost`]): a control frame (ping, pong, close) `1 / CONTROL_FRAMES_PER_SECOND` of a
//! second of it, a fragment (a data frame without FIN, or a continuation)
//! `1 / FRAGMENTS_PER_SECOND`. Honest clients send few: a browser never pings by itself, answers
//! the hub's pings (one pong per `--ping-interval`) and sends one close, other clients ping
//! every few seconds; browsers do not fragment what they send, others send fragments of KiBs,
//! which cost little more than their size.
//!
//! Past the budget the meter does not refuse anything: once the client owes a whole burst it
//! stops reading, right after the header of the frame that took it there (the rest of what was
//! read is kept for later), and the next read waits until the debt is back under one burst, so
//! the library parses no more than the budget and the rest waits in the kernel, then slows the
//! sender through TCP's flow control. That debt is where the app-level meter cuts, so for data
//! frames it always acts first, as before: `rate_limited` refusals with the time to wait, then
//! the cut; the meter here binds only on what the app-level meter never sees. A client that
//! has kept it waiting without a pause for [`CUT_AFTER`] (one that always had more to send than
//! its budget; an honest one is refused by the app-level meter long before) is cut: the read
//! fails with [`Cut`], the connection closes with 4029 and drops what else the client sends.
//! Both are counted in `natter_limited_total` (`wire_throttled`, `wire_cut`).
//!
//! On the sockets [`accept`] is given an address for (`/ws/chat`'s; operators' inboxes are not
//! counted against their address), control frames and continuations are charged to the
//! address's `--address-frame-budget` too ([`Hub::charge_address_frames`], the same cost), so that the connections of one address
//! share one bound instead of each having a budget of its own. Data frames that start a message
//! are not: the app-level meter charges each message to the address once it is complete, and
//! charging it here too would refuse an honest address's messages earlier. When the address
//! cannot pay, the frame is handed on and the meter reads nothing more on that connection until
//! the address has paid for it (held back as above; the refusal is counted as
//! `address_frame_budget`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::{OnUpgrade, Parts};
use hyper_util::rt::TokioIo;
use natter_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocketConfig};

use crate::address::AddrKey;
use crate::budget::{BURST_SECONDS, FRAME_OVERHEAD};
use crate::hub::{Hub, Refusal};
use crate::metrics::Limit;
use crate::socket::Socket;

/// How long the meter may have been holding a client back without a pause before it is cut:
/// two bursts, the time the app-level meter gives a client sending half again its budget.
pub(crate) const CUT_AFTER: Duration = Duration::from_secs(2 * BURST_SECONDS as u64);

/// Most bytes handed to the WebSocket library per read, so that one read cannot take it far
/// past the budget.
const MAX_READ: usize = 4096;

/// The shortest wait before a connection held for its address's budget asks it again: the
/// address's bucket is shared, so with many connections held most asks would fail, and asking
/// at the bucket's own pace (a couple of milliseconds for a fragment) would cost the hub more
/// than the frames.
const ADDRESS_RETRY: Duration = Duration::from_millis(100);

/// Control frames (ping, pong, close) a second that `--frame-budget` pays for, whatever their
/// size: each costs at least `frame_budget / CONTROL_FRAMES_PER_SECOND` bytes (104,857 at the
/// default budget, so 40 in a burst and 10 a second after it). Browsers send one pong per
/// `--ping-interval` and one close; other clients may ping every few seconds.
pub const CONTROL_FRAMES_PER_SECOND: u64 = 10;

/// Fragments (a data frame without FIN, or a continuation frame) a second that
/// `--frame-budget` pays for: each costs at least `frame_budget / FRAGMENTS_PER_SECOND` bytes
/// (16 KiB at the default budget). Browsers do not fragment what they send; clients that do
/// send chunks of KiBs, so a 64 KB message in 4 KiB chunks costs 256 KiB (a quarter of a
/// second of the default budget), where a thousand empty fragments cost 16 seconds of it.
pub const FRAGMENTS_PER_SECOND: u64 = 64;

/// The error a read fails with once the client is cut (see the module docs); found again in
/// the read error with [`is_cut`].
#[derive(Debug)]
pub(crate) struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client kept sending past its frame budget")
    }
}

impl std::error::Error for Cut {}

/// Whether `e` (or an error it wraps) is the meter's [`Cut`].
pub(crate) fn is_cut(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<Cut>() {
            return true;
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<Cut>()) {
                return true;
            }
        }
        if let Some(tungstenite::Error::Io(io)) = s.downcast_ref::<tungstenite::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<Cut>()) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// Where the walk is in the client's byte stream.
#[derive(Debug, Clone, Copy)]
enum Walk {
    /// Collecting a frame header: `have` of its bytes so far.
    Header { have: u8, bytes: [u8; 14] },
    /// Skipping `left` bytes of payload.
    Payload { left: u64 },
}

/// Finds the frames in a byte stream, whatever the chunks it comes in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walker {
    at: Walk,
}

impl Default for Walker {
    fn default() -> Walker {
        Walker { at: Walk::Header { have: 0, bytes: [0; 14] } }
    }
}

/// The length of a header whose first two bytes are `b0`, `b1`.
fn header_len(b1: u8) -> usize {
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

fn payload_len(header: &[u8]) -> u64 {
    match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&header[2..10]);
            u64::from_be_bytes(len)
        }
        n => u64::from(n),
    }
}

impl Walker {
    /// Walks `data`, the next bytes of the stream: `frame(b0, payload_len)` is called once for
    /// every frame whose header ends in them, with the header's first byte (FIN and opcode).
    /// When `frame` returns `false` the walk stops right after that header; the bytes walked
    /// (all of `data` unless stopped) are returned, and the rest is to be walked again later.
    pub(crate) fn walk(&mut self, data: &[u8], mut frame: impl FnMut(u8, u64) -> bool) -> usize {
        let mut at = 0;
        while at < data.len() {
            match &mut self.at {
                Walk::Payload { left } => {
                    let skip = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len() - at);
                    *left -= skip as u64;
                    at += skip;
                    if *left == 0 {
                        self.at = Walk::Header { have: 0, bytes: [0; 14] };
                    }
                }
                Walk::Header { have, bytes } => {
                    let need = if *have < 2 { 2 } else { header_len(bytes[1]) };
                    let take = (need - usize::from(*have)).min(data.len() - at);
                    bytes[usize::from(*have)..usize::from(*have) + take]
                        .copy_from_slice(&data[at..at + take]);
                    *have += take as u8;
                    at += take;
                    if usize::from(*have) == 2 && header_len(bytes[1]) > 2 {
                        continue;
                    }
                    if usize::from(*have) == need {
                        let len = payload_len(&bytes[..need]);
                        let go_on = frame(bytes[0], len);
                        self.at = if len == 0 {
                            Walk::Header { have: 0, bytes: [0; 14] }
                        } else {
                            Walk::Payload { left: len }
                        };
                        if !go_on {
                            return at;
                        }
                    }
                }
            }
        }
        at
    }
}

/// What a frame costs on the wire, in bytes of `--frame-budget` (`budget`, bytes per second):
/// `b0` is the first byte of its header (FIN and opcode), `len` its payload's length.
///
/// A complete data frame costs its payload plus [`FRAME_OVERHEAD`], as at the app level. The
/// frames the WebSocket library handles by itself cost what they would let a client make the
/// hub do by the thousand, whatever their size: a control frame (ping, pong, close) at least
/// `budget / CONTROL_FRAMES_PER_SECOND`, a fragment of a message (a data frame without FIN, or
/// a continuation) at least `budget / FRAGMENTS_PER_SECOND`. See the module docs.
pub(crate) fn frame_cost(b0: u8, len: u64, budget: u64) -> u64 {
    let bytes = len.saturating_add(FRAME_OVERHEAD);
    let opcode = b0 & 0x0f;
    let fin = b0 & 0x80 != 0;
    if opcode & 0x08 != 0 {
        bytes.max(budget / CONTROL_FRAMES_PER_SECOND)
    } else if opcode == 0 || !fin {
        bytes.max(budget / FRAGMENTS_PER_SECOND)
    } else {
        bytes
    }
}

/// Whether a frame whose header starts with `b0` is charged to the address's
/// `--address-frame-budget` by the meter: the frames the app-level meter never sees, control
/// frames and continuations. (A data frame that starts a message is charged to the address by
/// the app-level meter, once the message is complete.)
fn charged_to_address(b0: u8) -> bool {
    let opcode = b0 & 0x0f;
    opcode == 0 || opcode & 0x08 != 0
}

/// The stream under the meter: the upgraded socket (or whatever else hyper upgraded).
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// See the module docs.
pub(crate) struct Metered {
    io: Box<dyn Io>,
    /// Bytes read before the upgrade was complete (hyper's leftover), handed out first.
    pre: Bytes,
    hub: Hub,
    /// The client's address, whose `--address-frame-budget` the frames of [`charged_to_address`]
    /// draw on too; `None` for sockets not counted against their address (operators' inboxes).
    addr: Option<AddrKey>,
    walker: Walker,
    /// What the address's budget still has to take for a frame already handed on: the meter
    /// reads nothing more until it has.
    owed: u64,
    /// Bytes that may be read now; negative while the client owes.
    tokens: f64,
    at: Instant,
    /// Since when the meter has held the client back without a pause.
    held_since: Option<Instant>,
    /// The wait for the bucket to refill.
    wait: Option<Pin<Box<Sleep>>>,
    /// Cut: nothing more is handed on; what the client sends is read and dropped.
    cut: bool,
}

impl std::fmt::Debug for Metered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered").field("tokens", &self.tokens).field("cut", &self.cut).finish()
    }
}

impl Metered {
    /// `io` after the upgrade, with `pre` the bytes already read from it, metered at the hub's
    /// `--frame-budget` (0: not metered).
    /// `addr` is the address whose `--address-frame-budget` control frames and continuations
    /// are charged to as well (`None`: none).
    pub(crate) fn new(io: Box<dyn Io>, pre: Bytes, hub: Hub, addr: Option<AddrKey>) -> Metered {
        let rate = hub.config().frame_budget as f64;
        Metered {
            io,
            pre,
            hub,
            addr,
            walker: Walker::default(),
            owed: 0,
            tokens: rate * BURST_SECONDS,
            at: Instant::now(),
            held_since: None,
            wait: None,
            cut: false,
        }
    }

    fn rate(&self) -> f64 {
        self.hub.config().frame_budget as f64
    }

    /// Reads and drops what the cut client sends (so the close frame is not lost to a reset
    /// when the socket closes with unread data); pending until it sends nothing more.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            let mut buf = ReadBuf::new(&mut sink);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.cut {
            return this.drain(cx);
        }
        let rate = this.rate();
        if rate > 0.0 {
            loop {
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(this.at).as_secs_f64();
                let burst = rate * BURST_SECONDS;
                this.tokens = (this.tokens + elapsed * rate).min(burst);
                this.at = now;
                // Held past a debt of one burst (where the app-level meter cuts, see the
                // module docs), or while the address's budget cannot take what it is owed.
                let until = if this.tokens < -burst {
                    Some(now + Duration::from_secs_f64((-burst - this.tokens) / rate))
                } else if let (Some(addr), true) = (this.addr, this.owed > 0) {
                    match this.hub.charge_address_frames(addr, this.owed) {
                        Ok(()) => {
                            this.owed = 0;
                            None
                        }
                        Err(r) => {
                            let wait =
                                Duration::from_millis(r.retry_after_ms.unwrap_or(0)).max(ADDRESS_RETRY);
                            Some(now + wait)
                        }
                    }
                } else {
                    None
                };
                let Some(until) = until else {
                    this.wait = None;
                    break;
                };
                let since = *this.held_since.get_or_insert_with(|| {
                    this.hub.metrics().limited(Limit::WireThrottled);
                    now
                });
                if now.saturating_duration_since(since) >= CUT_AFTER {
                    this.cut = true;
                    this.wait = None;
                    this.hub.metrics().limited(Limit::WireCut);
                    return Poll::Ready(Err(io::Error::other(Cut)));
                }
                let wait = this.wait.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                if wait.deadline() != until {
                    wait.as_mut().reset(until);
                }
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // The next bytes: hyper's leftover first, then the socket's; at most MAX_READ.
        let chunk = if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining()).min(MAX_READ);
            this.pre.slice(..n)
        } else {
            let mut bytes = [0u8; MAX_READ];
            let n = buf.remaining().min(MAX_READ);
            let mut small = ReadBuf::new(&mut bytes[..n]);
            match Pin::new(&mut this.io).poll_read(cx, &mut small) {
                Poll::Ready(Ok(())) => {}
                Poll::Pending => {
                    // The client has nothing more to send: it is not being held back.
                    this.held_since = None;
                    return Poll::Pending;
                }
                error => return error,
            }
            if small.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            // Kept in `pre` for later if the walk stops before its end.
            this.pre = Bytes::copy_from_slice(small.filled());
            this.pre.slice(..)
        };
        let taken = if rate > 0.0 {
            let budget = this.hub.config().frame_budget;
            let burst = rate * BURST_SECONDS;
            let (hub, addr, tokens, owed) = (&this.hub, this.addr, &mut this.tokens, &mut this.owed);
            // Stops after the header of the frame that puts the client a burst in debt, or
            // that its address cannot pay for: nothing after it is handed on until it is paid.
            this.walker.walk(&chunk, |b0, len| {
                let cost = frame_cost(b0, len, budget);
                *tokens -= cost as f64;
                let refused = charged_to_address(b0)
                    && addr.is_some_and(|addr| hub.charge_address_frames(addr, cost).is_err());
                if refused {
                    *owed = cost;
                    return false;
                }
                *tokens >= -burst
            })
        } else {
            chunk.len()
        };
        buf.put_slice(&chunk[..taken]);
        this.pre = if taken < this.pre.len() {
            this.pre.slice(taken..)
        } else {
            // Let go of hyper's read buffer.
            Bytes::new()
        };
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Metered {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// An upgraded WebSocket read through the meter. Its messages are tungstenite's, which the hub
/// speaks throughout (`ws::drive`, the inbox socket): a frame the hub encodes goes out as it is,
/// and one the library has checked comes in as it is, with no conversion (axum's message types
/// wrap the same ones, but turning one into the other checks every text's UTF-8 again).
pub(crate) type WireSocket = WebSocketStream<Metered>;

/// Completes a WebSocket upgrade that `ws` (axum's extractor) has checked — method, `Upgrade`,
/// `Connection`, version and key — over the metered socket: the `101` answer to return, and
/// `serve` run on the socket once hyper hands it over. `extensions` are the request's, taken
/// before `ws` (which removes hyper's upgrade handle from the request; the copy taken earlier
/// still holds it). `addr`: the client address whose `--address-frame-budget` the socket's
/// control frames and continuations draw on too (`None`: not counted against an address).
pub(crate) fn accept<F, Fut>(
    hub: &Hub,
    headers: &HeaderMap,
    extensions: &Extensions,
    addr: Option<AddrKey>,
    config: WebSocketConfig,
    serve: F,
) -> Result<Response, Refusal>
where
    F: FnOnce(WireSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let unusable = || {
        Refusal::new(
            ErrorCode::InvalidMessage,
            "this request cannot be upgraded to a WebSocket (an HTTP/1.1 GET with Upgrade: websocket and a \
             Sec-WebSocket-Key is needed)",
        )
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or_else(unusable)?;
    let on_upgrade = extensions.get::<OnUpgrade>().cloned().ok_or_else(unusable)?;
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| unusable())?;
    let hub = hub.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let metered = match upgraded.downcast::<TokioIo<Socket>>() {
            Ok(Parts { io, read_buf, .. }) => Metered::new(Box::new(io.into_inner()), read_buf, hub, addr),
            // Served by something other than the hub's accept loop: hyper's own buffering.
            Err(upgraded) => Metered::new(Box::new(TokioIo::new(upgraded)), Bytes::new(), hub, addr),
        };
        serve(WebSocketStream::from_raw_socket(metered, Role::Server, Some(config)).await).await;
    });
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(stream: &[u8], chunk: usize) -> Vec<u64> {
        let mut w = Walker::default();
        let mut seen = Vec::new();
        for part in stream.chunks(chunk) {
            assert_eq!(
                w.walk(part, |_, len| {
                    seen.push(len);
                    true
                }),
                part.len()
            );
        }
        seen
    }

    /// Empty masked continuation frames, read through the meter at 10 frames a second: two
    /// bursts' worth (80) at once, then the budget's pace, then the cut once it has held the
    /// client back for [`CUT_AFTER`]. Paused time: the clock moves only when everything waits.
    #[tokio::test(start_paused = true)]
    async fn holds_back_past_a_burst_of_debt_then_cuts() {
        use tokio::io::AsyncReadExt as _;
        let mut config = crate::Config::for_tests();
        config.frame_budget = 10 * FRAME_OVERHEAD;
        let hub = Hub::for_tests(config);
        let (client, server) = tokio::io::duplex(1 << 20);
        let stream: Vec<u8> = [0x00u8, 0x80, 1, 2, 3, 4].iter().copied().cycle().take(6 * 1000).collect();
        let mut client = client;
        tokio::io::AsyncWriteExt::write_all(&mut client, &stream).await.expect("write");
        let addr = AddrKey::of(std::net::IpAddr::from([127, 0, 0, 1]));
        let mut metered = Metered::new(Box::new(server), Bytes::new(), hub.clone(), Some(addr));
        let started = Instant::now();
        let mut read = 0usize;
        let mut at_once = None;
        let mut buf = [0u8; 6];
        let error = loop {
            match metered.read_exact(&mut buf).await {
                Ok(_) => read += 1,
                Err(e) => break e,
            }
            if at_once.is_none() && started.elapsed() > Duration::ZERO {
                at_once = Some(read - 1);
            }
        };
        assert!(is_cut(&error), "{error}");
        // The frame that takes it past a burst of debt is the last one handed on.
        let at_once = at_once.expect("held back");
        assert!((80..=81).contains(&at_once), "{at_once} frames at once");
        let took = started.elapsed();
        assert!(took >= CUT_AFTER && took < CUT_AFTER + Duration::from_secs(1), "cut after {took:?}");
        assert!(read < 1000, "{read} frames read");
    }

    #[test]
    fn finds_every_frame_whatever_the_chunks() {
        let mut stream = Vec::new();
        // A masked zero-length continuation, a masked ping with 3 bytes.
        stream.extend_from_slice(&[0x00, 0x80, 1, 2, 3, 4]);
        stream.extend_from_slice(&[0x89, 0x83, 1, 2, 3, 4, 9, 9, 9]);
        // A masked text frame of 300 bytes (16-bit length).
        stream.extend_from_slice(&[0x81, 0xfe, 0x01, 0x2c, 1, 2, 3, 4]);
        stream.extend(std::iter::repeat_n(b'x', 300));
        // An unmasked binary frame of 70,000 bytes (64-bit length).
        stream.extend_from_slice(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        stream.extend(std::iter::repeat_n(0u8, 70_000));
        stream.extend_from_slice(&[0x00, 0x80, 1, 2, 3, 4]);
        let want = vec![0, 3, 300, 70_000, 0];
        for chunk in [1, 2, 3, 5, 7, 512, 100_000] {
            assert_eq!(frames(&stream, chunk), want, "chunks of {chunk}");
        }
    }

    #[test]
    fn control_frames_and_fragments_cost_their_share_of_the_budget() {
        const MIB: u64 = 1_048_576;
        let control = MIB / CONTROL_FRAMES_PER_SECOND;
        let fragment = MIB / FRAGMENTS_PER_SECOND;
        assert_eq!(fragment, 16 * 1024);
        // Complete data frames (text, binary, FIN): their size, as at the app level.
        assert_eq!(frame_cost(0x81, 0, MIB), FRAME_OVERHEAD);
        assert_eq!(frame_cost(0x82, 60_000, MIB), 60_000 + FRAME_OVERHEAD);
        // Ping, pong, close, empty or not: a tenth of a second of the budget at least.
        for b0 in [0x89, 0x8a, 0x88] {
            assert_eq!(frame_cost(b0, 0, MIB), control);
            assert_eq!(frame_cost(b0, 125, MIB), control);
        }
        // Fragments: a text frame without FIN, continuations (final or not).
        for b0 in [0x01, 0x02, 0x00, 0x80] {
            assert_eq!(frame_cost(b0, 0, MIB), fragment);
            assert_eq!(frame_cost(b0, 4096, MIB), fragment);
            assert_eq!(frame_cost(b0, 60_000, MIB), 60_000 + FRAME_OVERHEAD);
        }
        // A 64 KB message in 4 KiB fragments costs a quarter second of the budget; a burst
        // pays for 40 pings and 256 empty fragments.
        let chunked: u64 = (0..16).map(|i| frame_cost(if i == 0 { 0x01 } else { 0 }, 4096, MIB)).sum();
        assert_eq!(chunked, MIB / 4);
        let burst = (MIB as f64 * BURST_SECONDS) as u64;
        assert_eq!(burst / frame_cost(0x89, 0, MIB), 40);
        assert_eq!(burst / frame_cost(0x00, 0, MIB), 256);
        // Only what the app-level meter never sees is charged to the address.
        assert!(charged_to_address(0x89) && charged_to_address(0x8a) && charged_to_address(0x88));
        assert!(charged_to_address(0x00) && charged_to_address(0x80));
        assert!(!charged_to_address(0x81) && !charged_to_address(0x01) && !charged_to_address(0x82));
    }

    #[test]
    fn the_walk_stops_after_the_header_it_is_told_to() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&[0x89, 0x80, 1, 2, 3, 4]);
        stream.extend_from_slice(&[0x82, 0x83, 1, 2, 3, 4, 9, 9, 9]);
        stream.extend_from_slice(&[0x89, 0x80, 1, 2, 3, 4]);
        let mut w = Walker::default();
        let mut seen = Vec::new();
        // Stopped after the second header: its payload is walked with the rest.
        let n = w.walk(&stream, |b0, len| {
            seen.push((b0, len));
            seen.len() < 2
        });
        assert_eq!(n, 12);
        let m = w.walk(&stream[n..], |b0, len| {
            seen.push((b0, len));
            true
        });
        assert_eq!(n + m, stream.len());
        assert_eq!(seen, vec![(0x89, 0), (0x82, 3), (0x89, 0)]);
    }

    /// Pings over many connections of one address share its `--address-frame-budget`: each
    /// connection's own budget would pay for 80 at once, the address's for 8 in all.
    #[tokio::test(start_paused = true)]
    async fn pings_over_many_connections_share_the_address_budget() {
        use tokio::io::AsyncReadExt as _;
        let mut config = crate::Config::for_tests();
        config.frame_budget = 10 * 1024;
        config.address_frame_budget = 1024;
        let hub = Hub::for_tests(config);
        let addr = AddrKey::of(std::net::IpAddr::from([203, 0, 113, 5]));
        let ping = [0x89u8, 0x80, 1, 2, 3, 4];
        let mut read = 0;
        let mut clients = Vec::new();
        for _ in 0..5 {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let stream: Vec<u8> = ping.iter().copied().cycle().take(6 * 100).collect();
            tokio::io::AsyncWriteExt::write_all(&mut client, &stream).await.expect("write");
            clients.push(client);
            let mut metered = Metered::new(Box::new(server), Bytes::new(), hub.clone(), Some(addr));
            let mut buf = [0u8; 6];
            // Whatever is read at once, before the clock moves.
            while let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(1), metered.read_exact(&mut buf)).await
            {
                read += 1;
            }
        }
        // The address's burst: 4 s of 1024 bytes, a ping costing 1024; plus one handed on by
        // each connection before the address refused it (and held the connection).
        assert!(read <= 4 + 5, "{read} pings read");
    }
}
