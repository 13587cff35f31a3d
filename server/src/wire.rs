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
//! continuations included — its payload plus [`FRAME_OVERHEAD`] bytes, from a token bucket of
//! its own at the connection's `--frame-budget` (bytes per second, [`BURST_SECONDS`] of it at
//! once). Its unit is the app-level meter's: a message sent as one frame costs the same here,
//! and the app-level meter also multiplies by the audience and charges refused frames, so its
//! bucket is always the emptier of the two.
//!
//! Past the budget the meter does not refuse anything: once the client owes a whole burst it
//! stops reading (the next read waits until the debt is back under one burst), so the library
//! parses no more than the budget and the rest waits in the kernel, then slows the sender
//! through TCP's flow control. That debt is where the app-level meter cuts, so for data frames
//! it always acts first, as before: `rate_limited` refusals with the time to wait, then the cut;
//! the meter here binds only on what the app-level meter never sees. A client that
//! has kept it waiting without a pause for [`CUT_AFTER`] (one that always had more to send than
//! its budget; an honest one is refused by the app-level meter long before) is cut: the read
//! fails with [`Cut`], the connection closes with 4029 and drops what else the client sends.
//! Both are counted in `natter_limited_total` (`wire_throttled`, `wire_cut`).
//!
//! The meter draws on the connection's bucket only, not on the address's
//! (`--address-frame-budget`): data frames are charged to the address by the app-level meter,
//! and charging them here too would refuse an honest address's messages earlier than before.
//! What one address can make the hub parse is bounded by its connections
//! (`--max-connections-per-address`) times the budget.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::{Sink, Stream};
use hyper::upgrade::{OnUpgrade, Parts};
use hyper_util::rt::TokioIo;
use natter_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocketConfig};

use crate::budget::{BURST_SECONDS, FRAME_OVERHEAD};
use crate::hub::{Hub, Refusal};
use crate::metrics::Limit;
use crate::socket::Socket;

/// tungstenite's message types, beside axum's.
mod ts {
    pub(super) use tungstenite::protocol::frame::coding::CloseCode;
    pub(super) use tungstenite::protocol::CloseFrame;
    pub(super) use tungstenite::{Message, Utf8Bytes};
}

/// How long the meter may have been holding a client back without a pause before it is cut:
/// two bursts, the time the app-level meter gives a client sending half again its budget.
pub(crate) const CUT_AFTER: Duration = Duration::from_secs(2 * BURST_SECONDS as u64);

/// Most bytes handed to the WebSocket library per read, so that one read cannot take it far
/// past the budget.
const MAX_READ: usize = 4096;

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
    /// Walks `data`, the next bytes of the stream; `frame(payload_len)` is called once for
    /// every frame whose header ends in them.
    pub(crate) fn walk(&mut self, mut data: &[u8], mut frame: impl FnMut(u64)) {
        while !data.is_empty() {
            match &mut self.at {
                Walk::Payload { left } => {
                    let skip = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    *left -= skip as u64;
                    data = &data[skip..];
                    if *left == 0 {
                        self.at = Walk::Header { have: 0, bytes: [0; 14] };
                    }
                }
                Walk::Header { have, bytes } => {
                    let need = if *have < 2 { 2 } else { header_len(bytes[1]) };
                    let take = (need - usize::from(*have)).min(data.len());
                    bytes[usize::from(*have)..usize::from(*have) + take].copy_from_slice(&data[..take]);
                    *have += take as u8;
                    data = &data[take..];
                    if usize::from(*have) == 2 && header_len(bytes[1]) > 2 {
                        continue;
                    }
                    if usize::from(*have) == need {
                        let len = payload_len(&bytes[..need]);
                        frame(len);
                        self.at = if len == 0 {
                            Walk::Header { have: 0, bytes: [0; 14] }
                        } else {
                            Walk::Payload { left: len }
                        };
                    }
                }
            }
        }
    }
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
    walker: Walker,
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
    pub(crate) fn new(io: Box<dyn Io>, pre: Bytes, hub: Hub) -> Metered {
        let rate = hub.config().frame_budget as f64;
        Metered {
            io,
            pre,
            hub,
            walker: Walker::default(),
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
                // Held only past a debt of one burst: where the app-level meter cuts (see the
                // module docs).
                if this.tokens >= -burst {
                    this.wait = None;
                    break;
                }
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
                let until = now + Duration::from_secs_f64((-burst - this.tokens) / rate);
                let wait = this.wait.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                if wait.deadline() != until {
                    wait.as_mut().reset(until);
                }
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
        }
        let before = buf.filled().len();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining()).min(MAX_READ);
            buf.put_slice(&this.pre.split_to(n));
            if this.pre.is_empty() {
                // Let go of hyper's read buffer.
                this.pre = Bytes::new();
            }
        } else if buf.remaining() > MAX_READ {
            let mut chunk = [0u8; MAX_READ];
            let mut small = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut small) {
                Poll::Ready(Ok(())) => buf.put_slice(small.filled()),
                Poll::Pending => {
                    this.held_since = None;
                    return Poll::Pending;
                }
                error => return error,
            }
        } else {
            match Pin::new(&mut this.io).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                Poll::Pending => {
                    // The client has nothing more to send: it is not being held back.
                    this.held_since = None;
                    return Poll::Pending;
                }
                error => return error,
            }
        }
        if rate > 0.0 {
            let mut cost = 0.0;
            this.walker.walk(&buf.filled()[before..], |len| cost += len as f64 + FRAME_OVERHEAD as f64);
            this.tokens -= cost;
        }
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

/// An upgraded WebSocket read through the meter, as `axum`'s messages (what `ws::drive` and the
/// inbox socket speak).
pub(crate) struct WireSocket {
    inner: WebSocketStream<Metered>,
}

fn to_axum(m: ts::Message) -> Option<Message> {
    Some(match m {
        ts::Message::Text(t) => {
            let b = Bytes::from(t);
            match Utf8Bytes::try_from(b.clone()) {
                Ok(t) => Message::Text(t),
                Err(_) => Message::Binary(b),
            }
        }
        ts::Message::Binary(b) => Message::Binary(b),
        ts::Message::Ping(b) => Message::Ping(b),
        ts::Message::Pong(b) => Message::Pong(b),
        ts::Message::Close(c) => Message::Close(c.map(|c| CloseFrame {
            code: u16::from(c.code),
            reason: Utf8Bytes::try_from(Bytes::from(c.reason)).unwrap_or_default(),
        })),
        ts::Message::Frame(_) => return None,
    })
}

fn to_tungstenite(m: Message) -> ts::Message {
    match m {
        Message::Text(t) => {
            let b = Bytes::from(t);
            match ts::Utf8Bytes::try_from(b.clone()) {
                Ok(t) => ts::Message::Text(t),
                Err(_) => ts::Message::Binary(b),
            }
        }
        Message::Binary(b) => ts::Message::Binary(b),
        Message::Ping(b) => ts::Message::Ping(b),
        Message::Pong(b) => ts::Message::Pong(b),
        Message::Close(c) => ts::Message::Close(c.map(|c| ts::CloseFrame {
            code: ts::CloseCode::from(c.code),
            reason: ts::Utf8Bytes::try_from(Bytes::from(c.reason)).unwrap_or_default(),
        })),
    }
}

impl Stream for WireSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match std::task::ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(m)) => {
                    if let Some(m) = to_axum(m) {
                        return Poll::Ready(Some(Ok(m)));
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(axum::Error::new(e)))),
                None => return Poll::Ready(None),
            }
        }
    }
}

impl Sink<Message> for WireSocket {
    type Error = axum::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_ready(cx).map_err(axum::Error::new)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        Pin::new(&mut self.inner).start_send(to_tungstenite(item)).map_err(axum::Error::new)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(axum::Error::new)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx).map_err(axum::Error::new)
    }
}

/// Completes a WebSocket upgrade that `ws` (axum's extractor) has checked — method, `Upgrade`,
/// `Connection`, version and key — over the metered socket: the `101` answer to return, and
/// `serve` run on the socket once hyper hands it over. `extensions` are the request's, taken
/// before `ws` (which removes hyper's upgrade handle from the request; the copy taken earlier
/// still holds it).
pub(crate) fn accept<F, Fut>(
    hub: &Hub,
    headers: &HeaderMap,
    extensions: &Extensions,
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
            Ok(Parts { io, read_buf, .. }) => Metered::new(Box::new(io.into_inner()), read_buf, hub),
            // Served by something other than the hub's accept loop: hyper's own buffering.
            Err(upgraded) => Metered::new(Box::new(TokioIo::new(upgraded)), Bytes::new(), hub),
        };
        let inner = WebSocketStream::from_raw_socket(metered, Role::Server, Some(config)).await;
        serve(WireSocket { inner }).await;
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
            w.walk(part, |len| seen.push(len));
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
        let mut metered = Metered::new(Box::new(server), Bytes::new(), hub.clone());
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
        // One read (4096 bytes, 682 frames) may take it past the burst before it is held.
        let at_once = at_once.expect("held back");
        assert!((80..=80 + 683).contains(&at_once), "{at_once} frames at once");
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
}
