//! The WebSocket transport: `GET /ws/chat?session=&page=&after=`.
//!
//! The upgrade handler checks the origin (403) and the query (400) *before* upgrading, and
//! configures tungstenite with small buffers and the `--max-frame` limit. After the upgrade,
//! [`drive`] runs the connection over any `Sink`/`Stream` of messages (the axum
//! `testing-websockets` pattern), so it can be driven over channels in unit tests:
//!
//! - a **reader task** feeds text frames to the [`Client`] and notes when the peer was last
//!   heard from;
//! - the **writer** (this task) drains the connection's bounded queue to the socket, pings
//!   every `--ping-interval`, and closes with 4002 (stale) after `--idle-timeout` of silence,
//!   4001 (slow consumer) when the fan-out found the queue full, 1009 after an oversized frame
//!   and 1001 at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use natter_protocol::{close, validate_session_id, ErrorCode};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::Client;
use crate::http::{check_origin, ApiError};
use crate::hub::{Control, Hub, Outgoing, Since};
use crate::metrics::Metrics;

/// How long the hub waits for a close frame to be written to a peer that is not reading.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Upper bound of tungstenite's write buffer (a history frame can be a few MiB at most).
const MAX_WRITE_BUFFER: usize = 64 * 1024 * 1024;

/// How long a connection that sent an oversized frame is held open after the close frame.
const TOO_BIG_LINGER: Duration = Duration::from_secs(2);

/// tungstenite's read buffer per connection (its 128 KiB default costs ~130 KB each). It is
/// allocated and zero-filled for every connection up front, idle or not, so it was the largest
/// single item of an idle connection's memory; client frames are small (a bigger one grows the
/// buffer for that connection only).
const READ_BUFFER: usize = 512;

/// Frames are buffered up to this many bytes and written together on flush: under load a
/// connection's queue holds several frames, and one `write` per frame was the largest cost of
/// a delivery. Allocated only once something is written.
const WRITE_BUFFER: usize = 8 * 1024;

/// Most frames taken from the queue per flush (keeps one busy connection from holding its
/// worker thread for long).
const MAX_BATCH: usize = 64;

/// The query of `/ws/chat`; strings so that bad values get our own clear message.
#[derive(Debug, Deserialize)]
pub struct ChatQuery {
    session: Option<String>,
    page: Option<String>,
    after: Option<String>,
}

/// Validated connection parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// The session id.
    pub session: Arc<str>,
    /// The page the widget is on (seed 003's `page` parameter).
    pub page: Option<String>,
    /// Resume point, or the recent history.
    pub since: Since,
}

impl ChatQuery {
    /// Checks the query; a refusal becomes a 400.
    pub fn validate(self) -> Result<Params, ApiError> {
        let session = self.session.unwrap_or_default();
        validate_session_id(&session).map_err(|e| {
            ApiError::bad_request(ErrorCode::BadSession, format!("`session` query parameter: {e}"))
        })?;
        let since = match self.after.as_deref() {
            None | Some("") => Since::Recent,
            Some(a) => Since::After(a.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    ErrorCode::InvalidMessage,
                    format!("`after` must be the last seq seen (a whole number), got {a:?}"),
                )
            })?),
        };
        let page = self.page.filter(|p| !p.is_empty()).map(|p| p.chars().take(512).collect());
        Ok(Params { session: session.into(), page, since })
    }
}

/// `GET /ws/chat`.
pub async fn upgrade(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Query(query): Query<ChatQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = check_origin(&hub, &headers) {
        return e.into_response();
    }
    let params = match query.validate() {
        Ok(p) => p,
        Err(e) => return hub_error(&hub, e).into_response(),
    };
    let config = hub.config();
    let max = config.max_frame;
    ws.read_buffer_size(READ_BUFFER)
        // Queued frames are fed into this buffer and flushed together (see `send_batch`); the
        // cap only bounds a pathological case.
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_frame_size(max)
        .max_message_size(max)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            drive(sink, stream, hub, params).await;
        })
}

fn hub_error(hub: &Hub, e: ApiError) -> ApiError {
    hub.metrics().error(e.code());
    e
}

/// Whether a read error is tungstenite refusing an oversized frame or message.
fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<tungstenite::Error>() {
            return matches!(t, tungstenite::Error::Capacity(_));
        }
        source = s.source();
    }
    false
}

/// Runs one connection until it ends. Generic over the socket halves so tests can use
/// channels.
pub async fn drive<Si, St>(mut sink: Si, stream: St, hub: Hub, params: Params)
where
    Si: Sink<Message> + Unpin + Send,
    St: Stream<Item = Result<Message, axum::Error>> + Unpin + Send + 'static,
{
    let (outbox, mut rx, control, _live) = hub.open_connection();
    let id = outbox.id;
    let (ping_interval, idle_timeout) = (hub.config().ping_interval, hub.config().idle_timeout);
    tracing::debug!(connection = id, session_hash = %crate::util::member_id(&params.session), "connected");
    let client =
        match Box::pin(Client::start(hub.clone(), outbox, params.session.clone(), params.page, params.since))
            .await
        {
            Ok(c) => c,
            Err(refusal) => {
                let refusal = hub.refused(refusal);
                let _ = sink.send(Message::Text(crate::hub::encode(&refusal.frame()))).await;
                let _ = sink.send(close_message(close::INTERNAL, "could not read history")).await;
                return;
            }
        };
    let started = Instant::now();
    let heard = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut reader = tokio::spawn(read_loop(stream, client, heard.clone(), started, stop_rx));

    let mut shutdown = hub.shutdown_signal();
    // A second receiver for sends in progress (the first is borrowed by the select).
    let mut shutdown_in_send = hub.shutdown_signal();
    let mut ticker = tokio::time::interval_at(started + ping_interval, ping_interval);
    let mut reader_done = false;
    let close: Option<(u16, &'static str)> = loop {
        tokio::select! {
            biased;
            _ = crate::hub::stopped(&mut shutdown) => break Some((close::GOING_AWAY, "hub shutting down")),
            code = control.closed() => break Some((code, reason(code))),
            _ = &mut reader, if !reader_done => {
                reader_done = true;
                // The reader may have queued a last answer and a close (oversized frame): keep
                // draining the queue; otherwise the peer is gone.
                if rx.is_empty() {
                    break None;
                }
            }
            item = rx.recv() => match item {
                Some(Outgoing::Text(frame)) => {
                    let sent = Box::pin(send_batch(&mut sink, frame, &mut rx, &control, &mut shutdown_in_send)).await;
                    match sent {
                        Ok(None) => {}
                        Ok(Some(close)) => break Some(close),
                        Err(stop) => break stop,
                    }
                }
                Some(Outgoing::Close(code, why)) => break Some((code, why)),
                None => break None,
            },
            _ = ticker.tick() => {
                let silent = started.elapsed().saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
                if silent > idle_timeout {
                    Metrics::add(&hub.metrics().stale_closed, 1);
                    break Some((close::STALE, "no answer to pings"));
                }
                let sent = Box::pin(send(&mut sink, Message::Ping(Default::default()), &control, &mut shutdown_in_send)).await;
                if let Err(stop) = sent {
                    break stop;
                }
            }
        }
        if reader_done && rx.is_empty() {
            break None;
        }
    };
    // Nothing more is queued: answers the reader still makes fail at once instead of waiting.
    drop(rx);
    if let Some((code, why)) = close {
        tracing::debug!(connection = id, code, why, "closing");
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_message(code, why))).await;
        if code == close::TOO_BIG {
            // The oversized frame's payload was never read, so the reader cannot go on; and
            // closing the socket with it unread makes the kernel send a reset, which can
            // destroy our error and close frames before the peer reads them. Linger (like an
            // HTTP server's lingering close) so the peer reads them and closes first.
            tokio::select! {
                _ = tokio::time::sleep(TOO_BIG_LINGER) => {}
                _ = crate::hub::stopped(&mut shutdown) => {}
            }
        } else if !reader_done {
            // The close handshake: give the peer time to read our close frame and answer it
            // (the reader ends on its close), rather than cutting the TCP connection under it.
            reader_done = tokio::time::timeout(CLOSE_GRACE, &mut reader).await.is_ok();
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
    if !reader_done {
        let _ = reader.await;
    }
    tracing::debug!(connection = id, "disconnected");
}

fn reason(code: u16) -> &'static str {
    match code {
        close::SLOW_CONSUMER => "send queue full: reconnect and resume",
        close::STALE => "no answer to pings",
        close::GOING_AWAY => "hub shutting down",
        _ => "closed by the hub",
    }
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// Writes `first` and whatever else is already queued (up to [`MAX_BATCH`] frames) with one
/// flush, giving up like [`send`]. A close found in the queue ends the batch and is returned,
/// to be sent after it.
async fn send_batch<Si>(
    sink: &mut Si,
    first: crate::hub::Frame,
    rx: &mut crate::hub::outbox::Receiver,
    control: &Control,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<(u16, &'static str)>, Option<(u16, &'static str)>>
where
    Si: Sink<Message> + Unpin,
{
    let work = async {
        sink.feed(Message::Text(first)).await.map_err(|_| None)?;
        let mut then_close = None;
        for _ in 1..MAX_BATCH {
            match rx.try_recv() {
                Ok(Outgoing::Text(frame)) => sink.feed(Message::Text(frame)).await.map_err(|_| None)?,
                Ok(Outgoing::Close(code, why)) => {
                    then_close = Some((code, why));
                    break;
                }
                Err(_) => break,
            }
        }
        sink.flush().await.map_err(|_| None)?;
        Ok(then_close)
    };
    tokio::select! {
        r = work => r,
        code = control.closed() => Err(Some((code, reason(code)))),
        _ = crate::hub::stopped(shutdown) => Err(Some((close::GOING_AWAY, "hub shutting down"))),
    }
}

/// Sends one message, giving up when the connection is told to close meanwhile (a peer that
/// does not read would otherwise hold the writer forever).
async fn send<Si>(
    sink: &mut Si,
    message: Message,
    control: &Control,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Option<(u16, &'static str)>>
where
    Si: Sink<Message> + Unpin,
{
    tokio::select! {
        r = sink.send(message) => r.map_err(|_| None),
        code = control.closed() => Err(Some((code, reason(code)))),
        _ = crate::hub::stopped(shutdown) => Err(Some((close::GOING_AWAY, "hub shutting down"))),
    }
}

/// Reads frames and hands them to the client until the peer closes, errs, or the writer stops.
async fn read_loop<St>(
    mut stream: St,
    mut client: Client,
    heard: Arc<AtomicU64>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) where
    St: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    loop {
        let next = tokio::select! {
            n = stream.next() => n,
            _ = crate::hub::stopped(&mut stop) => break,
        };
        heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        match next {
            // Boxed: handling a message is the largest state of this task, and an idle
            // connection should not carry its space (a few KB × every open connection).
            Some(Ok(Message::Text(text))) => Box::pin(client.on_text(text.as_str())).await,
            Some(Ok(Message::Binary(_))) => client.on_binary().await,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None => break,
            Some(Err(e)) => {
                if is_too_large(&e) {
                    client.on_too_large().await;
                    client.close_after_queue(close::TOO_BIG, "frame too large").await;
                } else {
                    tracing::debug!(error = %e, "read error");
                }
                break;
            }
        }
    }
    client.finish().await;
}

#[cfg(test)]
mod tests {
    //! The connection driven over channels instead of a socket.

    use std::sync::Arc;

    use futures_util::{sink, stream};
    use natter_protocol::ServerMessage;
    use tokio::sync::mpsc;

    use super::*;
    use crate::reply::RulesEngine;
    use crate::store::memory::MemoryStore;
    use crate::Config;

    fn text(m: Option<Message>) -> ServerMessage {
        match m {
            Some(Message::Text(t)) => serde_json::from_str(t.as_str()).expect("json"),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn drives_a_connection_over_channels() {
        let hub = Hub::start(
            Config::for_tests(),
            Arc::new(MemoryStore::new()),
            Arc::new(RulesEngine::builtin().expect("rules")),
        );
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
        let (in_tx, in_rx) = mpsc::channel::<Result<Message, axum::Error>>(16);
        let sink = Box::pin(sink::unfold(out_tx, |tx, m: Message| async move {
            tx.send(m).await.map_err(|_| "closed")?;
            Ok::<_, &'static str>(tx)
        }));
        let stream =
            Box::pin(stream::unfold(in_rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) }));
        let params = Params { session: "unit".into(), page: None, since: Since::Recent };
        let task = tokio::spawn(drive(sink, stream, hub.clone(), params));

        assert!(matches!(text(out_rx.recv().await), ServerMessage::History(h) if h.messages.is_empty()));
        in_tx.send(Ok(Message::text(r#"{"type":"ping","nonce":1}"#))).await.expect("send");
        assert!(matches!(text(out_rx.recv().await), ServerMessage::Pong(p) if p.nonce == Some(1.into())));
        in_tx.send(Ok(Message::text("nope"))).await.expect("send");
        assert!(matches!(text(out_rx.recv().await), ServerMessage::Error(_)));

        hub.begin_shutdown();
        loop {
            match out_rx.recv().await {
                Some(Message::Close(Some(f))) => {
                    assert_eq!(f.code, close::GOING_AWAY);
                    break;
                }
                Some(_) => continue,
                None => panic!("no close frame"),
            }
        }
        drop(in_tx);
        task.await.expect("drive ends");
        assert!(hub.drained(Duration::from_secs(5)).await);
    }
}
