//! Frames the WebSocket library handles by itself — pings (it answers them), pongs, continuation
//! fragments (it buffers them until the final one) — sent by the million on one connection,
//! over a raw TCP socket after a hand-written upgrade. The hub meters them before they are
//! parsed (`--frame-budget`, read off the wire): the flooding connection is held back and then
//! cut (4029), while an honest client on another connection carries on.

mod common;

use std::time::Duration;

use common::{session, TestHub, DEADLINE};
use natter_hub::Config;
use natter_protocol::ServerMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A small budget, so the flood runs into it at once: 64 empty frames a second.
const BUDGET: u64 = 16 * 1024;

/// What an empty frame costs (`natter_protocol::FRAME_OVERHEAD`).
const FRAME_COST: u64 = natter_protocol::FRAME_OVERHEAD;

fn config() -> Config {
    let mut c = Config::for_tests();
    c.frame_budget = BUDGET;
    // Only the meter may end the flooding connection here, not its unanswered pings.
    c.idle_timeout = Duration::from_secs(600);
    c
}

/// A WebSocket opened by hand on a raw TCP connection: the write half, and the bytes the hub
/// sent after its `101` answer so far.
async fn raw_socket(hub: &TestHub) -> (OwnedReadHalf, OwnedWriteHalf, Vec<u8>) {
    raw_socket_from(hub, None, "flood").await
}

/// [`raw_socket`], for `forwarded_for` (an `X-Forwarded-For`, when the hub trusts the loopback
/// proxy) and the session named `name`.
async fn raw_socket_from(
    hub: &TestHub,
    forwarded_for: Option<&str>,
    name: &str,
) -> (OwnedReadHalf, OwnedWriteHalf, Vec<u8>) {
    let tcp = TcpStream::connect(hub.addr).await.expect("connect");
    let (mut rd, mut wr) = tcp.into_split();
    let xff = forwarded_for.map(|a| format!("X-Forwarded-For: {a}\r\n")).unwrap_or_default();
    let request = format!(
        "GET /ws/chat?session={}&page=/test HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         {xff}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        session(name)
    );
    wr.write_all(request.as_bytes()).await.expect("write the upgrade");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = tokio::time::timeout(DEADLINE, rd.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "the accept key: {head}");
    (rd, wr, got[end..].to_vec())
}

/// What the hub sent on a raw socket, frame by frame.
#[derive(Debug, Default)]
struct Seen {
    pongs: u64,
    texts: u64,
    close: Option<u16>,
    /// The close frame's reason.
    reason: String,
    /// The text frames that are acks.
    acks: Vec<String>,
}

/// Reads the hub's (unmasked) frames until the connection ends.
fn read_all(mut rd: OwnedReadHalf, mut got: Vec<u8>) -> JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Take every whole frame in `got`.
            loop {
                if got.len() < 2 {
                    break;
                }
                let (len, at) = match got[1] & 0x7f {
                    126 if got.len() >= 4 => (u64::from(u16::from_be_bytes([got[2], got[3]])), 4),
                    127 if got.len() >= 10 => {
                        (u64::from_be_bytes(got[2..10].try_into().expect("8 bytes")), 10)
                    }
                    126 | 127 => break,
                    n => (u64::from(n), 2),
                };
                let len = usize::try_from(len).expect("small");
                if got.len() < at + len {
                    break;
                }
                match got[0] & 0x0f {
                    0x1 => {
                        seen.texts += 1;
                        let text = String::from_utf8_lossy(&got[at..at + len]).into_owned();
                        if text.contains("\"ack\"") {
                            seen.acks.push(text);
                        }
                    }
                    0xA => seen.pongs += 1,
                    0x8 if len >= 2 => {
                        seen.close = Some(u16::from_be_bytes([got[at], got[at + 1]]));
                        seen.reason = String::from_utf8_lossy(&got[at + 2..at + len]).into_owned();
                    }
                    _ => {}
                }
                got.drain(..at + len);
            }
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return seen,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Writes `frame` over and over until the connection fails; how many were written.
fn flood(mut wr: OwnedWriteHalf, first: &'static [u8], frame: &'static [u8]) -> JoinHandle<u64> {
    tokio::spawn(async move {
        if wr.write_all(first).await.is_err() {
            return 0;
        }
        let batch: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 10_000).collect();
        let mut sent = 0;
        while wr.write_all(&batch).await.is_ok() {
            sent += 10_000;
        }
        sent
    })
}

/// How many times `limit` shows in `natter_limited_total`.
async fn limited(hub: &TestHub, limit: &str) -> u64 {
    let text = reqwest::get(hub.url("/metrics")).await.expect("metrics").text().await.expect("text");
    let want = format!("natter_limited_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {want} in /metrics"))
}

/// An honest tab on its own connection: its message is acknowledged.
async fn honest_client_gets_through(hub: &TestHub, id: &str) {
    let (mut tab, _) = hub.tab(&session("honest")).await;
    tab.say(id, "hello while someone floods").await;
    let ack = tab.until(|m| if let ServerMessage::Ack(a) = m { Some(a) } else { None }).await;
    assert_eq!(ack.id, id);
    tab.ping_works().await;
}

/// Zero-length continuation frames, after a text frame that is never finished: each one is
/// parsed and buffered (nothing), and none reaches the hub's own code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_empty_continuation_frames_is_held_back_then_cut() {
    let hub = TestHub::with(config()).await;
    let (rd, wr, got) = raw_socket(&hub).await;
    let reader = read_all(rd, got);
    // A text frame, not final, empty; then empty continuations, not final, all masked.
    let writer = flood(wr, &[0x01, 0x80, 1, 2, 3, 4], &[0x00, 0x80, 1, 2, 3, 4]);
    hub.wait_metric_label("wire_throttled").await;
    honest_client_gets_through(&hub, "c-honest-1").await;
    let seen = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("the hub ends the flooding connection")
        .expect("reader");
    assert_eq!(seen.close, Some(natter_protocol::close::RATE_LIMITED), "{seen:?}");
    assert!(limited(&hub, "wire_cut").await >= 1);
    let sent = writer.await.expect("writer");
    println!("frames written before the cut: {sent}; the hub saw {seen:?}");
    honest_client_gets_through(&hub, "c-honest-2").await;
}

/// Pings, each of which the WebSocket library answers with a pong: no more are answered than
/// the budget pays for, and the connection is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_answered_within_the_budget_then_cut() {
    let hub = TestHub::with(config()).await;
    let (rd, wr, got) = raw_socket(&hub).await;
    let reader = read_all(rd, got);
    let writer = flood(wr, &[], &[0x89, 0x80, 1, 2, 3, 4]);
    hub.wait_metric_label("wire_throttled").await;
    honest_client_gets_through(&hub, "c-honest-1").await;
    let seen = tokio::time::timeout(DEADLINE, reader)
        .await
        .expect("the hub ends the flooding connection")
        .expect("reader");
    assert!(limited(&hub, "wire_cut").await >= 1);
    // A burst of four seconds and a debt of as much, then the budget for as long as the
    // connection lived (well under a minute): a few thousand pongs, where an unmetered hub
    // answers millions.
    let most = (8 * BUDGET + 60 * BUDGET) / FRAME_COST;
    assert!(seen.pongs <= most, "{} pongs answered (at most {most})", seen.pongs);
    let sent = writer.await.expect("writer");
    println!("pings written before the cut: {sent}; the hub answered {seen:?}");
}

/// A masked frame (with a zero mask key, so the payload goes as it is): `b0` is FIN and opcode.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![b0];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Pings over many connections of one address: each connection's own budget would answer a
/// burst and a debt's worth on each (80 pings with the costs here, 1,600 in all), but the
/// address's budget is shared, so no more pongs come back in all than it pays for; every
/// flooding connection is held back and cut, and a client from another address chats on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_over_many_connections_of_one_address_shares_its_budget() {
    const CONNECTIONS: u64 = 20;
    // The address's budget: as much as one connection's.
    const ADDRESS_BUDGET: u64 = BUDGET;
    let mut c = config();
    c.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    c.address_frame_budget = ADDRESS_BUDGET;
    let hub = TestHub::with(c).await;
    let started = tokio::time::Instant::now();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    // All open (their history read, which the address's budget pays for too) before any floods.
    let mut sockets = Vec::new();
    for _ in 0..CONNECTIONS {
        let (mut rd, wr, mut got) = raw_socket_from(&hub, Some("203.0.113.5"), "flood").await;
        let mut buf = [0u8; 4096];
        while got.iter().filter(|b| **b == 0x81).count() == 0 {
            let n = tokio::time::timeout(DEADLINE, rd.read(&mut buf)).await.expect("history").expect("read");
            assert!(n > 0, "closed before its history");
            got.extend_from_slice(&buf[..n]);
        }
        sockets.push((rd, wr, got));
    }
    for (rd, wr, got) in sockets {
        readers.push(read_all(rd, got));
        writers.push(flood(wr, &[], &[0x89, 0x80, 1, 2, 3, 4]));
    }
    hub.wait_metric_label("wire_throttled").await;
    // The honest tab comes from the loopback address itself, not the forwarded one.
    honest_client_gets_through(&hub, "c-honest-1").await;
    let mut pongs = 0;
    for reader in readers {
        let seen = tokio::time::timeout(DEADLINE, reader)
            .await
            .expect("the hub ends every flooding connection")
            .expect("reader");
        assert_eq!(seen.close, Some(natter_protocol::close::RATE_LIMITED), "{seen:?}");
        pongs += seen.pongs;
    }
    let lived = started.elapsed().as_secs() + 1;
    let cut = limited(&hub, "wire_cut").await;
    assert!(cut >= CONNECTIONS, "{cut} cut");
    // A ping costs a tenth of a second of the budget; the address pays for a burst of four
    // seconds and then its rate for as long as the flood lived; each connection may have
    // one more answered, handed on before the address refused to pay for it.
    let ping = BUDGET / natter_hub::CONTROL_FRAMES_PER_SECOND;
    let most = (4 * ADDRESS_BUDGET + lived * ADDRESS_BUDGET) / ping + CONNECTIONS;
    assert!(pongs <= most, "{pongs} pongs answered in {lived} s (at most {most})");
    assert!(limited(&hub, "address_frame_budget").await >= 1);
    for w in writers {
        w.abort();
    }
    println!("{pongs} pongs answered over {CONNECTIONS} connections in {lived} s (at most {most})");
    honest_client_gets_through(&hub, "c-honest-2").await;
}

/// What honest clients send: a ping every second, and a 64 KB message in 4 KiB fragments; at
/// the default budgets none of it is held back, and the message is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_client_pinging_and_fragmenting_is_never_held_back() {
    let mut c = Config::for_tests();
    c.frame_budget = 1_048_576;
    c.address_frame_budget = 8 * 1_048_576;
    c.idle_timeout = Duration::from_secs(600);
    let hub = TestHub::with(c).await;
    let (rd, mut wr, got) = raw_socket_from(&hub, None, "honest").await;
    let reader = read_all(rd, got);
    // A message of 64,000 bytes: JSON padded with spaces after the object.
    let mut message = br#"{"type":"user","id":"c-fragmented","message":"sent in fragments"}"#.to_vec();
    message.resize(64_000, b' ');
    let chunks: Vec<&[u8]> = message.chunks(4096).collect();
    const PINGS: u64 = 6;
    for i in 0..PINGS {
        wr.write_all(&masked(0x89, format!("p{i}").as_bytes())).await.expect("ping");
        if i == 2 {
            for (k, chunk) in chunks.iter().enumerate() {
                let opcode = if k == 0 { 0x1 } else { 0x0 };
                let fin = if k + 1 == chunks.len() { 0x80 } else { 0 };
                wr.write_all(&masked(fin | opcode, chunk)).await.expect("fragment");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    wr.write_all(&masked(0x88, &1000u16.to_be_bytes())).await.expect("close");
    let seen = tokio::time::timeout(DEADLINE, reader).await.expect("the connection closes").expect("reader");
    assert!(seen.acks.iter().any(|a| a.contains("c-fragmented")), "{seen:?}");
    assert_eq!(seen.pongs, PINGS, "{seen:?}");
    assert_eq!(seen.close, Some(1000), "{seen:?}");
    assert_eq!(limited(&hub, "wire_throttled").await, 0);
    assert_eq!(limited(&hub, "address_frame_budget").await, 0);
    assert_eq!(limited(&hub, "frame_budget").await, 0);
}

trait WaitLabel {
    async fn wait_metric_label(&self, limit: &str);
}

impl WaitLabel for TestHub {
    /// Polls `/metrics` until `limit` has been counted at least once.
    async fn wait_metric_label(&self, limit: &str) {
        let start = tokio::time::Instant::now();
        while limited(self, limit).await == 0 {
            assert!(start.elapsed() < DEADLINE, "{limit} was never counted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// CPU time (user + system) of process `pid` so far, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the hub's /proc stat");
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Not a test: the measurement behind the wire meter. Against a hub process started by hand
/// (`NATTER_HUB_ADDR`, `NATTER_HUB_PID`, `--idle-timeout` long enough), 10 s of each flood on
/// one connection: frames the hub took in its last 5 s (once the socket buffers are full, the
/// sender writes only as fast as the hub reads) and the hub's CPU time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand against a hub process"]
async fn measure_floods() {
    let addr = std::env::var("NATTER_HUB_ADDR").expect("NATTER_HUB_ADDR");
    let pid = std::env::var("NATTER_HUB_PID").expect("NATTER_HUB_PID");
    let floods: [(&str, &'static [u8], &'static [u8]); 2] = [
        ("empty continuations", &[0x01, 0x80, 1, 2, 3, 4], &[0x00, 0x80, 1, 2, 3, 4]),
        ("pings", &[], &[0x89, 0x80, 1, 2, 3, 4]),
    ];
    for (name, first, frame) in floods {
        let tcp = TcpStream::connect(&addr).await.expect("connect");
        let (mut rd, mut wr) = tcp.into_split();
        let request = "GET /ws/chat HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        wr.write_all(request.as_bytes()).await.expect("upgrade");
        // `{"type":"auth"}`, masked with a zero key.
        let auth = br#"{"type":"auth"}"#;
        let mut frame_auth = vec![0x81, 0x80 | auth.len() as u8, 0, 0, 0, 0];
        frame_auth.extend_from_slice(auth);
        wr.write_all(&frame_auth).await.expect("auth");
        let drained = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0u64;
            while let Ok(k) = rd.read(&mut buf).await {
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
            n
        });
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let w = written.clone();
        let writer = tokio::spawn(async move {
            wr.write_all(first).await.expect("first");
            let batch: Vec<u8> = frame.iter().copied().cycle().take(frame.len() * 1000).collect();
            while wr.write_all(&batch).await.is_ok() {
                w.fetch_add(1000, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let cpu0 = cpu_ticks(&pid);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let mid = written.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let end = written.load(std::sync::atomic::Ordering::Relaxed);
        let cpu = cpu_ticks(&pid) - cpu0;
        let ticks = 100.0; // USER_HZ on Linux
        println!(
            "{name}: {:.0} frames/s taken in the last 5 s, {} frames in 10 s; hub CPU {:.2} s of 10 s",
            (end - mid) as f64 / 5.0,
            end,
            cpu as f64 / ticks
        );
        writer.abort();
        let got = tokio::time::timeout(Duration::from_secs(1), drained).await;
        if let Ok(Ok(bytes)) = got {
            println!("  the hub sent {bytes} bytes back on that connection (a pong is 2)");
        }
    }
}
