//! Just enough HTTP/1.1 for the attacks: one request per connection from a chosen source
//! address, the status and body of the answer (`Connection: close`, so the body ends with the
//! connection). A client library would hide exactly what the attacks need to control.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long one request may take before it counts as unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP connection to `target` from `src`.
pub async fn connect(target: SocketAddr, src: IpAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4().context("socket")?;
    socket.set_reuseaddr(true).context("SO_REUSEADDR")?;
    socket.bind(SocketAddr::new(src, 0)).with_context(|| format!("bind {src}"))?;
    let tcp = tokio::time::timeout(REQUEST_TIMEOUT, socket.connect(target))
        .await
        .map_err(|_| anyhow!("connect timed out"))?
        .context("connect")?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    Ok(tcp)
}

/// An answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// Sends `method path` with an optional JSON `body` and `headers` from `src`; waits at most
/// `limit` for the whole answer.
pub async fn request(
    target: SocketAddr,
    src: IpAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    limit: Duration,
) -> anyhow::Result<Answer> {
    let mut tcp = connect(target, src).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.context("write head")?;
    if let Some(b) = body {
        tcp.write_all(b.as_bytes()).await.context("write body")?;
    }
    let mut raw = Vec::new();
    tokio::time::timeout(limit, tcp.read_to_end(&mut raw))
        .await
        .map_err(|_| anyhow!("no answer within {limit:?}"))?
        .context("read")?;
    let text = String::from_utf8_lossy(&raw);
    let status =
        text.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("no status line"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok(Answer { status, body })
}
