//! `cargo xtask bench store`: how fast the hub stores messages, and what Redis adds to a delivery.
//!
//! 1. **Throughput with SQLite**: the release hub on a fresh SQLite file in a temp dir; N
//!    WebSocket clients, each in its own room, keep W `chat` messages with ids in flight and
//!    count the `ack`s. Acknowledged means committed, so this is the rate of durable writes.
//! 2. **Delivery latency**: one sender and one receiver in a room, one message at a time; the
//!    time from the send to the receiver getting the `chat` frame, with SQLite, with Redis
//!    (both clients on one hub) and with Redis across two hubs (sender on A, receiver on B).
//!
//! Prints figures; asserts nothing (speed is not a test on a shared machine).
//! Options: `--clients N` (default 50), `--window W` (32), `--seconds S` (5), `--samples K`
//! (2000).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use natter_protocol::{ChatSend, ClientMessage, Join, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

use crate::tools;

/// Benchmark settings.
struct Settings {
    /// `--only throughput|latency`: run one half.
    only: Option<String>,
    /// `--hub-port P`: drive an already running hub (for profiling it) instead of starting one.
    hub_port: Option<u16>,
    clients: usize,
    window: usize,
    seconds: u64,
    samples: usize,
}

fn parse(args: &[String]) -> Result<Settings> {
    let mut s = Settings { only: None, hub_port: None, clients: 50, window: 32, seconds: 5, samples: 2000 };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        if flag == "--only" {
            s.only = Some(value.clone());
            continue;
        }
        if flag == "--hub-port" {
            s.hub_port = Some(value.parse().with_context(|| format!("--hub-port {value}"))?);
            continue;
        }
        let n: usize = value.parse().with_context(|| format!("{flag} {value}: not a number"))?;
        match flag.as_str() {
            "--clients" => s.clients = n.max(1),
            "--window" => s.window = n.max(1),
            "--seconds" => s.seconds = n.max(1) as u64,
            "--samples" => s.samples = n.max(10),
            _ => bail!(
                "unknown option {flag}; options: --only --hub-port --clients --window --seconds --samples"
            ),
        }
    }
    Ok(s)
}

/// Runs the benchmark.
pub fn run(args: &[String]) -> Result<()> {
    let settings = parse(args)?;
    if cfg!(debug_assertions) {
        // `cargo xtask` is a debug build; its WebSocket clients would then cost the machine more
        // CPU than the hub they measure. Run the benchmark from a release build of xtask.
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["run", "--release", "--quiet", "-p", "xtask", "--", "bench", "store"]).args(args);
        return tools::run(&mut cmd);
    }
    tools::ensure_debian(&[("redis-server", "redis-server")])?;
    tools::cargo(&["build", "--release", "-p", "natter-hub"])?;
    let binary = tools::root().join("target/release/natter-hub");
    let dir = tempfile::tempdir().context("temp dir")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;

    println!();
    println!("natter-hub store benchmark (loopback, {} cores)", num_cpus());
    println!();

    if settings.only.as_deref() != Some("latency") {
        throughput_report(&runtime, &binary, dir.path(), &settings)?;
    }
    if settings.only.as_deref() != Some("throughput") {
        latency_report(&runtime, &binary, dir.path(), &settings)?;
    }
    Ok(())
}

/// Part 1: acknowledged messages per second with SQLite.
fn throughput_report(
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    dir: &Path,
    settings: &Settings,
) -> Result<()> {
    if let Some(port) = settings.hub_port {
        let (acks, elapsed, _) = runtime.block_on(throughput(port, settings, || None))?;
        println!("hub on port {port}: {:.0} acknowledged msgs/s", acks as f64 / elapsed.as_secs_f64());
        return Ok(());
    }
    let db = dir.join("bench.db");
    let hub = Hub::start(binary, &[("--db", db.to_string_lossy().as_ref())], dir)?;
    let (acks, elapsed, cpu) = runtime.block_on(throughput(hub.port, settings, || hub.cpu_seconds()))?;
    drop(hub);
    let rate = acks as f64 / elapsed.as_secs_f64();
    println!(
        "SQLite throughput: {rate:>10.0} acknowledged msgs/s  ({acks} acks in {:.1} s; {} clients x {} in flight; goal >= 20,000)",
        elapsed.as_secs_f64(),
        settings.clients,
        settings.window
    );
    if let Some(cpu) = cpu {
        // On a shared machine the rate depends on who else runs; the hub's own CPU time per
        // message does much less.
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "  hub CPU: {:.1} us per acknowledged message (user + system, all threads); load average {}",
            cpu * 1e6 / acks.max(1) as f64,
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
    }
    Ok(())
}

/// Part 2: delivery latency with SQLite, Redis on one hub, Redis across two hubs.
fn latency_report(
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    dir: &Path,
    settings: &Settings,
) -> Result<()> {
    let db = dir.join("latency.db");
    let hub = Hub::start(binary, &[("--db", db.to_string_lossy().as_ref())], dir)?;
    let sqlite = runtime.block_on(latency(hub.port, hub.port, settings.samples))?;
    drop(hub);

    let redis = RedisServer::start(dir)?;
    let url = redis.url();
    let a = Hub::start(binary, &[("--redis-url", url.as_str())], dir)?;
    let b = Hub::start(binary, &[("--redis-url", url.as_str())], dir)?;
    let same = runtime.block_on(latency(a.port, a.port, settings.samples))?;
    let cross = runtime.block_on(latency(a.port, b.port, settings.samples))?;
    drop((a, b, redis));

    println!();
    println!(
        "Delivery latency, send -> other client receives ({} messages, one in flight):",
        settings.samples
    );
    println!("  {:<28} {:>9} {:>9} {:>9}", "", "p50", "p99", "max");
    let row = |name: &str, h: &Histogram<u64>| {
        println!(
            "  {name:<28} {:>7}us {:>7}us {:>7}us",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max()
        );
    };
    row("SQLite (one hub)", &sqlite);
    row("Redis, same hub", &same);
    row("Redis, across two hubs", &cross);
    let extra =
        |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as i64 - sqlite.value_at_quantile(q) as i64;
    println!();
    println!(
        "Extra latency Redis adds vs SQLite: same hub p50 {:+}us p99 {:+}us; across hubs p50 {:+}us p99 {:+}us",
        extra(&same, 0.5),
        extra(&same, 0.99),
        extra(&cross, 0.5),
        extra(&cross, 0.99)
    );
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls until `check` holds, for at most 30 s.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        if Instant::now() > deadline {
            bail!("{what} did not come up within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A release hub in a child process, killed on drop.
struct Hub {
    child: Child,
    port: u16,
}

impl Hub {
    fn start(binary: &Path, flags: &[(&str, &str)], dir: &Path) -> Result<Hub> {
        let port = free_port()?;
        let mut cmd = Command::new(binary);
        cmd.current_dir(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // The bench is the only client: no rate limit, no pretend typing delay; and it names
            // its sessions (`bench-<n>`) instead of asking the hub for them.
            .args(["--rate-burst", "0", "--reply-delay", "0", "--open-sessions"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (flag, value) in flags {
            cmd.args([flag, value]);
        }
        let child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let mut hub = Hub { child, port };
        wait_until("natter-hub", || http_ok(port, "/healthz"))?;
        if let Ok(Some(status)) = hub.child.try_wait() {
            bail!("natter-hub exited with {status}");
        }
        Ok(hub)
    }
}

impl Hub {
    /// The process's user + system CPU time so far (Linux `/proc`), in seconds.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name (which is in parentheses and may hold spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // USER_HZ is 100 on every Linux this runs on.
        Some(ticks / 100.0)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET path` answers 200 (a plain HTTP/1.0 request, no client library needed).
fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// A throwaway `redis-server`, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

impl RedisServer {
    fn start(dir: &Path) -> Result<RedisServer> {
        let port = free_port()?;
        let data = dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&data)?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let server = RedisServer { child, port, _dir: data };
        wait_until("redis-server", || TcpStream::connect(("127.0.0.1", port)).is_ok())?;
        Ok(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects a session and joins `room`, returning once `room_info` arrived.
async fn join(port: u16, session: &str, room: &str) -> Result<Socket> {
    let url = format!("ws://127.0.0.1:{port}/ws/chat?session={session}&page=/bench");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.context("WebSocket connect")?;
    let join = ClientMessage::Join(Join { room: room.into(), name: Some(session.into()), after: None });
    ws.send(Message::text(serde_json::to_string(&join)?)).await?;
    loop {
        match next_frame(&mut ws).await? {
            ServerMessage::RoomInfo(_) => return Ok(ws),
            ServerMessage::Error(e) => bail!("join refused: {}", e.message),
            _ => {}
        }
    }
}

/// The next protocol frame (pings and other non-text frames skipped).
async fn next_frame(ws: &mut Socket) -> Result<ServerMessage> {
    loop {
        match ws.next().await.context("connection closed")?? {
            Message::Text(text) => return Ok(serde_json::from_str(text.as_str())?),
            Message::Close(frame) => bail!("closed by the hub: {frame:?}"),
            _ => {}
        }
    }
}

fn chat(room: &str, id: String, text: String) -> Result<Message> {
    let frame = ClientMessage::Chat(ChatSend { room: room.into(), id: Some(id), message: text, name: None });
    Ok(Message::text(serde_json::to_string(&frame)?))
}

/// Drives the clients and returns the acks counted in the measured window, its length, and the
/// CPU seconds `cpu` counted over it.
async fn throughput(
    port: u16,
    s: &Settings,
    cpu: impl Fn() -> Option<f64>,
) -> Result<(u64, Duration, Option<f64>)> {
    let acks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut sockets = Vec::new();
    for c in 0..s.clients {
        sockets.push(join(port, &format!("bench-{c}"), &format!("bench-{c}")).await?);
    }
    let mut tasks = Vec::new();
    for (c, mut ws) in sockets.into_iter().enumerate() {
        let (acks, stop, window) = (acks.clone(), stop.clone(), s.window);
        tasks.push(tokio::spawn(async move {
            let room = format!("bench-{c}");
            let mut sent = 0u64;
            let mut in_flight = 0usize;
            loop {
                while in_flight < window && !stop.load(Ordering::Relaxed) {
                    ws.feed(chat(&room, format!("{c}-{sent}"), "benchmark message".into())?).await?;
                    sent += 1;
                    in_flight += 1;
                }
                ws.flush().await?;
                if in_flight == 0 {
                    return Ok::<_, anyhow::Error>(());
                }
                match next_frame(&mut ws).await? {
                    ServerMessage::Ack(_) => {
                        in_flight -= 1;
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    ServerMessage::Error(e) => bail!("refused: {:?} {}", e.code, e.message),
                    _ => {}
                }
            }
        }));
    }
    // One second of warm-up, then the measured window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (start_acks, start, cpu_start) = (acks.load(Ordering::Relaxed), Instant::now(), cpu());
    tokio::time::sleep(Duration::from_secs(s.seconds)).await;
    let (end_acks, elapsed, cpu_end) = (acks.load(Ordering::Relaxed), start.elapsed(), cpu());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    Ok((end_acks - start_acks, elapsed, cpu_end.zip(cpu_start).map(|(end, start)| end - start)))
}

/// Sends `samples` messages one at a time from a client of `send_port` and times their arrival
/// at a client of `recv_port` in the same room. Microseconds.
async fn latency(send_port: u16, recv_port: u16, samples: usize) -> Result<Histogram<u64>> {
    let room = format!("latency-{send_port}-{recv_port}");
    let mut receiver = join(recv_port, "bench-receiver", &room).await?;
    let mut sender = join(send_port, "bench-sender", &room).await?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for i in 0..samples + 100 {
        let id = format!("lat-{i}");
        let started = Instant::now();
        sender.send(chat(&room, id.clone(), "ping".into())?).await?;
        loop {
            if let ServerMessage::Chat(m) = next_frame(&mut receiver).await? {
                if m.id == id {
                    break;
                }
            }
        }
        // The first 100 warm up connections and caches.
        if i >= 100 {
            hist.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX).max(1))?;
        }
        // Keep the sender's socket drained (its ack and echo) so it never backs up.
        while let Some(Ok(_)) = futures_util::FutureExt::now_or_never(sender.next()).flatten() {}
    }
    Ok(hist)
}
