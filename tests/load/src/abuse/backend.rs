//! An OpenAI-compatible chat server for the hub's LLM backend to call during `natter-load
//! abuse`: honest visitors get a short answer at once; the reply-engine attacks (8 and 9) get
//! what an attacker would wish for, or what a broken backend does. Which, it reads from the
//! visitor's text in the request's last `user` message:
//! - `attack8-long`: a 60,000-character answer, streamed (the hub must clip it);
//! - `attack8-fail`: a `500` (the rules fallback answers, and must not link the visitor's page);
//! - `attack9-endless`: `data:` lines with no blank line between them, as fast as the hub
//!   reads them (one event that never ends);
//! - `attack9-keepalive`: a keep-alive comment every second and never an answer;
//! - `attack9-hold`: the answer's head, then silence until the hub gives up;
//! - anything else: a short answer, at once.
//!
//! Every request whose visitor text holds `attack8` is checked for the attacker's words in the
//! system message. The server counts the calls it holds at once (the hub's
//! `--reply-concurrency` should bound them) and how long the hostile answers were allowed to
//! run. Just enough HTTP/1.1: one request per connection, the answer ended by closing it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Words of the attack-8 context that must never reach the system message.
pub const INJECTED: &str = "SYSTEM OVERRIDE";

/// Largest request head or body read.
const MAX_REQUEST: usize = 1 << 20;

/// What the hostile answers got, since the last [`Double::take`].
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Requests that carried `attack8`.
    pub attack8: u64,
    /// Of those, system messages that held [`INJECTED`].
    pub system_with_visitor_data: u64,
    /// How long each endless event was read before the hub hung up.
    pub endless: Vec<Duration>,
    /// How long each keep-alive answer lasted before the hub hung up.
    pub kept_alive: Vec<Duration>,
    /// How long each silent call was held before the hub hung up.
    pub held: Vec<Duration>,
}

/// The running server.
#[derive(Debug, Default)]
pub struct Double {
    in_flight: AtomicU64,
    peak: AtomicU64,
    seen: Mutex<Seen>,
}

impl Double {
    /// The most calls held at once since the last call, and starts counting again.
    pub fn take_peak(&self) -> u64 {
        self.peak.swap(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed)
    }

    /// What was seen since the last call.
    pub fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn note(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// One call held, counted while this lives.
struct Call<'a>(&'a Double);

impl<'a> Call<'a> {
    fn new(double: &'a Double) -> Self {
        let now = double.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        double.peak.fetch_max(now, Ordering::Relaxed);
        Call(double)
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Listens on `addr` and answers every call as the module docs say.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<Arc<Double>> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
    let double = Arc::new(Double::default());
    let d = double.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let d = d.clone();
            tokio::spawn(async move {
                let _call = Call::new(&d);
                let _ = answer(&d, tcp).await;
            });
        }
    });
    Ok(double)
}

/// Reads one request: its body (the head is skipped, `Content-Length` honoured).
async fn read_request(tcp: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        anyhow::ensure!(buf.len() < MAX_REQUEST, "request head too large");
        let n = tcp.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed before the head ended");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    while buf.len() < head_end + length {
        let n = tcp.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed before the body ended");
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf[head_end..head_end + length].to_vec())
}

const STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";

fn delta(text: &str) -> String {
    format!("data: {}\n\n", serde_json::json!({"choices": [{"delta": {"content": text}}]}))
}

async fn answer(double: &Double, mut tcp: TcpStream) -> anyhow::Result<()> {
    let body: Value = serde_json::from_slice(&read_request(&mut tcp).await?).unwrap_or_default();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let visitor = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    if visitor.contains("attack8") {
        let system = messages.first().filter(|m| m["role"] == "system").and_then(|m| m["content"].as_str());
        let leaked = system.is_some_and(|s| s.contains(INJECTED));
        double.note(|s| {
            s.attack8 += 1;
            s.system_with_visitor_data += u64::from(leaked);
        });
    }
    let started = Instant::now();
    if visitor.contains("attack8-fail") {
        let body = r#"{"error":{"message":"the model is down"}}"#;
        let head = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
    } else if visitor.contains("attack8-long") {
        tcp.write_all(STREAM_HEAD).await?;
        // 60 chunks of 1,000 characters.
        let words: String = "Visit http://evil.example now. ".chars().cycle().take(1000).collect();
        for _ in 0..60 {
            tcp.write_all(delta(&words).as_bytes()).await?;
        }
        tcp.write_all(b"data: [DONE]\n\n").await?;
    } else if visitor.contains("attack9-endless") {
        tcp.write_all(STREAM_HEAD).await?;
        let line = format!("data: {}\n", "x".repeat(1000));
        // Until the hub hangs up (a read sees the end), for two minutes at most.
        let until_hung_up = async {
            loop {
                if tcp.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(120), until_hung_up).await;
        double.note(|s| s.endless.push(started.elapsed()));
    } else if visitor.contains("attack9-keepalive") {
        tcp.write_all(STREAM_HEAD).await?;
        let (mut reader, mut writer) = tcp.split();
        let mut byte = [0u8; 1];
        let keep_alive = async {
            loop {
                if writer.write_all(b": keep-alive\n\n").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        tokio::select! {
            _ = reader.read(&mut byte) => {}
            () = keep_alive => {}
            () = tokio::time::sleep(Duration::from_secs(120)) => {}
        }
        double.note(|s| s.kept_alive.push(started.elapsed()));
        return Ok(());
    } else if visitor.contains("attack9-hold") {
        tcp.write_all(STREAM_HEAD).await?;
        // Until the hub hangs up (a read sees the end), for two minutes at most.
        let mut byte = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(120), tcp.read(&mut byte)).await;
        double.note(|s| s.held.push(started.elapsed()));
    } else {
        tcp.write_all(STREAM_HEAD).await?;
        tcp.write_all(delta("Thanks, we are looking into it.").as_bytes()).await?;
        tcp.write_all(b"data: [DONE]\n\n").await?;
    }
    tcp.shutdown().await?;
    Ok(())
}
