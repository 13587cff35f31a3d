//! Measures a running hub over loopback and prints figures (no pass/fail):
//! connect time (TCP + upgrade + first `history` frame), `hello` → `bot` reply latency, and
//! the hub's resident memory with many idle connections.
//!
//! ```text
//! cargo run --release -p natter-hub --example probe -- <host:port> [idle connections] [hub pid]
//! ```
//! Start the hub with `--reply-delay 0` so the latency is the hub's, not the typing pause.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:8080".into());
    let idle: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let pid: Option<u32> = args.get(3).and_then(|s| s.parse().ok());
    let url = |s: &str| format!("ws://{addr}/ws/chat?session={s}&page=/probe");

    // Connect time.
    let mut connects = Vec::new();
    for i in 0..200 {
        let start = Instant::now();
        let (mut ws, _) = tokio_tungstenite::connect_async(url(&format!("probe-c{i}"))).await?;
        let _history = ws.next().await;
        connects.push(start.elapsed());
    }
    connects.sort();
    println!(
        "connect (upgrade + history): median {:?}, p99 {:?}, n={}",
        percentile(&connects, 0.5),
        percentile(&connects, 0.99),
        connects.len()
    );

    // hello → reply.
    let (mut ws, _) = tokio_tungstenite::connect_async(url("probe-latency")).await?;
    let _history = ws.next().await;
    let mut latencies = Vec::new();
    for i in 0..500 {
        let id = format!("p{i}");
        let start = Instant::now();
        ws.send(Message::text(format!(r#"{{"type":"user","id":"{id}","message":"hello"}}"#))).await?;
        let needle = format!(r#""replyTo":"{id}""#);
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t)))
                    if t.as_str().contains("\"type\":\"bot\"") && t.as_str().contains(&needle) =>
                {
                    break
                }
                Some(Ok(_)) => continue,
                other => return Err(format!("connection ended: {other:?}").into()),
            }
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    println!(
        "hello -> bot reply: median {:?}, p99 {:?}, n={}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );

    // Idle connections.
    let before = pid.and_then(rss_kib);
    let mut sockets = Vec::with_capacity(idle);
    for i in 0..idle {
        let (mut ws, _) = tokio_tungstenite::connect_async(url(&format!("probe-idle-{i}"))).await?;
        let _history = ws.next().await;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let (Some(pid), Some(before)) = (pid, before) {
        let after = rss_kib(pid).unwrap_or(0);
        println!(
            "hub RSS: {before} KiB before, {after} KiB with {idle} idle connections (+{:.1} KiB each)",
            (after.saturating_sub(before)) as f64 / idle as f64
        );
    } else {
        println!("{idle} idle connections open (give the hub pid to read its RSS)");
    }
    drop(sockets);
    Ok(())
}
