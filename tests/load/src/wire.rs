//! The two wire dialects the generator speaks, so both servers face the same client:
//! natter's JSON frames and Socket.IO's WebSocket transport (Engine.IO v4 + Socket.IO v5
//! packets: `0{..}` open, `40` connect, `2`/`3` ping/pong, `42["event",payload]` events).
//!
//! Receivers never parse a whole frame: they check the frame's prefix and read the send
//! timestamp (20 digits at the start of the message text), which keeps the client's cost per
//! delivery small and equal for both servers.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Which server protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// natter-hub's `/ws/chat` JSON frames.
    Natter,
    /// Socket.IO 4 over its WebSocket transport.
    Socketio,
}

impl Dialect {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Natter => "natter",
            Dialect::Socketio => "socketio",
        }
    }
}

/// How long a connect (TCP + upgrade + first frame) or a join may take before it counts as failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// Nanoseconds since the Unix epoch; every process on the machine shares this clock, so a
/// sender in one worker and a receiver in another can compare stamps.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Small client-side buffers: the generator holds up to 20,000 connections per process.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(16 * 1024).write_buffer_size(0)
}

/// Opens one connection from `src` and waits for the server's first application frame
/// (natter: `history`; Socket.IO: the namespace connect `40{..}`). Returns the socket and
/// the time from TCP connect to that frame.
pub async fn open(
    dialect: Dialect,
    target: SocketAddr,
    src: Ipv4Addr,
    session: &str,
) -> anyhow::Result<(Ws, Duration)> {
    tokio::time::timeout(STEP_TIMEOUT, open_inner(dialect, target, src, session))
        .await
        .map_err(|_| anyhow!("connect timed out after {STEP_TIMEOUT:?}"))?
}

async fn open_inner(
    dialect: Dialect,
    target: SocketAddr,
    src: Ipv4Addr,
    session: &str,
) -> anyhow::Result<(Ws, Duration)> {
    let sock = TcpSocket::new_v4().context("socket")?;
    sock.set_reuseaddr(true).context("SO_REUSEADDR")?;
    sock.bind(SocketAddr::new(src.into(), 0)).with_context(|| format!("bind {src}"))?;
    let t0 = Instant::now();
    let stream = sock.connect(target).await.with_context(|| format!("connect {target} from {src}"))?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    let url = match dialect {
        Dialect::Natter => format!("ws://{target}/ws/chat?session={session}&page=/"),
        Dialect::Socketio => format!("ws://{target}/socket.io/?EIO=4&transport=websocket"),
    };
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
        .await
        .context("websocket upgrade")?;
    match dialect {
        Dialect::Natter => {
            let first = next_text(&mut ws).await?;
            if !first.starts_with("{\"type\":\"history\"") {
                bail!("first frame is not a history: {}", clip(&first));
            }
        }
        Dialect::Socketio => {
            let open = next_text(&mut ws).await?;
            if !open.starts_with("0{") {
                bail!("expected an Engine.IO open packet, got {}", clip(&open));
            }
            ws.send(Message::text("40")).await.context("send 40")?;
            loop {
                let t = next_text(&mut ws).await?;
                if t.starts_with("40") {
                    break;
                }
                if t == "2" {
                    ws.send(Message::text("3")).await?;
                } else if t.starts_with("44") {
                    bail!("namespace connect refused: {}", clip(&t));
                }
            }
        }
    }
    Ok((ws, t0.elapsed()))
}

/// Opens a natter connection from `src` as a hub that issues sessions expects it: no
/// credentials in the URL, `{"type":"auth"}` asking for a session (with `page`), the `welcome`
/// carrying the session the hub issued, then the `history`. Returns the socket and the session.
pub async fn open_issued(target: SocketAddr, src: Ipv4Addr, page: &str) -> anyhow::Result<(Ws, String)> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        let sock = TcpSocket::new_v4().context("socket")?;
        sock.set_reuseaddr(true).context("SO_REUSEADDR")?;
        sock.bind(SocketAddr::new(src.into(), 0)).with_context(|| format!("bind {src}"))?;
        let stream = sock.connect(target).await.with_context(|| format!("connect {target} from {src}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let url = format!("ws://{target}/ws/chat");
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(client_config()))
            .await
            .context("websocket upgrade")?;
        let auth = serde_json::json!({"type": "auth", "page": page}).to_string();
        ws.send(Message::text(auth)).await.context("send auth")?;
        let welcome = next_text(&mut ws).await?;
        let session = serde_json::from_str::<serde_json::Value>(&welcome)
            .ok()
            .filter(|v| v["type"] == "welcome")
            .and_then(|v| v["session"].as_str().map(str::to_owned))
            .ok_or_else(|| anyhow!("first frame is not a welcome with a session: {}", clip(&welcome)))?;
        let history = next_text(&mut ws).await?;
        if !history.starts_with("{\"type\":\"history\"") {
            bail!("after the welcome comes no history: {}", clip(&history));
        }
        Ok((ws, session))
    })
    .await
    .map_err(|_| anyhow!("connect timed out after {STEP_TIMEOUT:?}"))?
}

/// Joins `room` and waits for the server's confirmation (natter: `room_info`; the peer: a
/// `joined` event).
pub async fn join(dialect: Dialect, ws: &mut Ws, room: &str, name: &str) -> anyhow::Result<()> {
    tokio::time::timeout(STEP_TIMEOUT, async {
        let (frame, confirm) = match dialect {
            Dialect::Natter => (
                format!("{{\"type\":\"join\",\"room\":\"{room}\",\"name\":\"{name}\"}}"),
                "{\"type\":\"room_info\"",
            ),
            Dialect::Socketio => (format!("42[\"join\",\"{room}\"]"), "42[\"joined\""),
        };
        ws.send(Message::text(frame)).await.context("send join")?;
        loop {
            let t = next_text(ws).await?;
            if t.starts_with(confirm) {
                return Ok(());
            }
            if t.starts_with("{\"type\":\"error\"") {
                bail!("join refused: {}", clip(&t));
            }
            if dialect == Dialect::Socketio && t == "2" {
                ws.send(Message::text("3")).await?;
            }
        }
    })
    .await
    .map_err(|_| anyhow!("join timed out after {STEP_TIMEOUT:?}"))?
}

/// Closes a connection politely and waits (briefly) for the server's side of the close.
pub async fn close(dialect: Dialect, mut ws: Ws) -> anyhow::Result<()> {
    if dialect == Dialect::Socketio {
        ws.send(Message::text("41")).await.context("send 41")?;
    }
    ws.close(None).await.context("close")?;
    let drain = async {
        while let Some(m) = ws.next().await {
            if m.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(STEP_TIMEOUT, drain).await;
    Ok(())
}

/// The next text frame; control frames are handled by tungstenite, a close is an error.
pub async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(c))) => bail!("closed by server: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e).context("read"),
            None => bail!("connection ended"),
        }
    }
}

/// Builds a chat frame whose message text starts with the send time in nanoseconds and is
/// exactly `payload` bytes long (at least 31).
pub fn chat_frame(dialect: Dialect, room: &str, id: &str, seq: u64, payload: usize) -> String {
    let mut text = format!("{:020}:{:09}:", now_ns(), seq % 1_000_000_000);
    while text.len() < payload {
        text.push('x');
    }
    match dialect {
        Dialect::Natter => {
            format!("{{\"type\":\"chat\",\"room\":\"{room}\",\"id\":\"{id}\",\"message\":\"{text}\"}}")
        }
        Dialect::Socketio => {
            format!("42[\"chat\",{{\"room\":\"{room}\",\"id\":\"{id}\",\"message\":\"{text}\"}}]")
        }
    }
}

/// If `frame` is a delivered chat message, its send time (ns since the epoch).
pub fn delivered_stamp(dialect: Dialect, frame: &str) -> Option<u64> {
    let is_chat = match dialect {
        Dialect::Natter => frame.starts_with("{\"type\":\"chat\""),
        Dialect::Socketio => frame.starts_with("42[\"chat\""),
    };
    if !is_chat {
        return None;
    }
    const KEY: &str = "\"message\":\"";
    let at = frame.find(KEY)? + KEY.len();
    frame.get(at..at + 20)?.parse().ok()
}

/// The first 120 characters of a frame, for error messages.
pub fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_through_both_dialects() {
        for d in [Dialect::Natter, Dialect::Socketio] {
            let f = chat_frame(d, "r1", "1-1", 7, 100);
            // The server echoes the fields; for natter it puts `type` first and adds more.
            let echoed = match d {
                Dialect::Natter => f.replacen("\"room\"", "\"seq\":3,\"room\"", 1),
                Dialect::Socketio => f.clone(),
            };
            let ts = delivered_stamp(d, &echoed).expect("stamp");
            assert!(ts > 1_600_000_000_000_000_000, "{ts}");
        }
        assert_eq!(delivered_stamp(Dialect::Natter, "{\"type\":\"ack\",\"id\":\"x\"}"), None);
        assert_eq!(delivered_stamp(Dialect::Socketio, "2"), None);
    }

    #[test]
    fn payload_length_is_exact() {
        let f = chat_frame(Dialect::Natter, "r", "i", 1, 100);
        let at = f.find("\"message\":\"").expect("key") + 11;
        let end = f[at..].find('"').expect("end");
        assert_eq!(end, 100);
    }
}
