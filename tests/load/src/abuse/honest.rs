//! The honest side of `natter-load abuse`: people chatting while the attacks run.
//!
//! 100 visitors in their own support conversations (each message comes back as the `user`
//! echo) and 100 members in 5 rooms of 20 (each `chat` reaches the 19 others), every one from
//! its own loopback address, each sending a message every second (so a phase of 8 s holds ~1,600
//! messages and ~16,000 deliveries, the p99 of which is set by the slowest ~160); and a probe
//! that opens a fresh connection from a fresh address four times a second. Every message carries
//! its send time and the phase it was sent in, so each phase gets its own latency histogram and
//! its own count of deliveries that should have happened and did not.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::report::{new_hist, record};
use crate::wire::{self, now_ns, Dialect, Ws};

/// Visitors in support conversations.
pub const VISITORS: u64 = 100;
/// Rooms of honest members.
pub const ROOMS: u64 = 5;
/// Members per room.
pub const ROOM_SIZE: u64 = 20;
/// Phase tag of messages sent between phases (not counted).
pub const UNTAGGED: u8 = u8::MAX;
/// Every honest client sends about this often: once a second, twice what a lively chat is,
/// for twice the samples of a rate every 2 s (a phase's p99 is set by its slowest 1 %, and a
/// room message's 19 deliveries come nearly together, so it is the number of messages that
/// steadies it).
const EVERY: Duration = Duration::from_secs(1);

/// What one phase saw.
pub struct PhaseStats {
    /// Deliveries that should happen (one echo per visitor message, 19 per room message).
    pub expected: u64,
    /// Deliveries that happened.
    pub received: u64,
    /// Honest messages acknowledged as a duplicate (swallowed by somebody else's id).
    pub swallowed: u64,
    /// Fresh connections that failed.
    pub connects_failed: u64,
    /// Fresh connections tried.
    pub connects: u64,
    /// Honest connections the hub closed.
    pub dropped: u64,
    /// Send → receive, µs.
    pub latency: Histogram<u64>,
}

impl Default for PhaseStats {
    fn default() -> Self {
        PhaseStats {
            expected: 0,
            received: 0,
            swallowed: 0,
            connects_failed: 0,
            connects: 0,
            dropped: 0,
            latency: new_hist(),
        }
    }
}

/// Shared by every honest client and read by the attacks that need to know honest ids.
pub struct Shared {
    target: SocketAddr,
    /// The phase messages are tagged with now.
    pub phase: AtomicU8,
    /// Per phase, by tag.
    pub stats: Mutex<Vec<PhaseStats>>,
    /// How many messages each room member has sent (their next id is `c<member>-<count>`).
    pub sent_by_member: Vec<AtomicU64>,
    tag: String,
    /// Sessions are named by the clients (older hubs), not issued by the hub.
    named: bool,
}

impl Shared {
    fn with_phase(&self, phase: u8, f: impl FnOnce(&mut PhaseStats)) {
        if phase == UNTAGGED {
            return;
        }
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        let i = usize::from(phase);
        if stats.len() <= i {
            stats.resize_with(i + 1, PhaseStats::default);
        }
        f(&mut stats[i]);
    }

    /// The name of honest room `k`.
    pub fn room(&self, k: u64) -> String {
        format!("{}-room-{k}", self.tag)
    }
}

/// The running honest clients.
pub struct Honest {
    /// What they measure.
    pub shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Honest {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn addr(block: u8, i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, block, (i / 200 % 250) as u8, (i % 200 + 2) as u8))
}

/// Connects every honest client (rooms joined) and starts them sending.
pub async fn start(target: SocketAddr, tag: &str, named: bool) -> anyhow::Result<Honest> {
    let shared = Arc::new(Shared {
        target,
        phase: AtomicU8::new(UNTAGGED),
        stats: Mutex::new(Vec::new()),
        sent_by_member: (0..ROOMS * ROOM_SIZE).map(|_| AtomicU64::new(0)).collect(),
        tag: tag.to_owned(),
        named,
    });
    let mut tasks = Vec::new();
    for i in 0..VISITORS {
        let src = addr(60, i);
        let (ws, _) = super::connect(target, ipv4(src), named, &format!("{tag}-visitor-{i}")).await?;
        tasks.push(tokio::spawn(visitor(shared.clone(), i, ws)));
    }
    for m in 0..ROOMS * ROOM_SIZE {
        let src = addr(61, m);
        let (mut ws, _) = super::connect(target, ipv4(src), named, &format!("{tag}-member-{m}")).await?;
        wire::join(Dialect::Natter, &mut ws, &shared.room(m / ROOM_SIZE), &format!("M{m}")).await?;
        tasks.push(tokio::spawn(member(shared.clone(), m, ws)));
    }
    tasks.push(tokio::spawn(probe(shared.clone())));
    Ok(Honest { shared, tasks })
}

fn ipv4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
    }
}

/// `<send ns, 20 digits>:<phase, 3 digits>:<sender, 5 digits>:…`
fn stamp(phase: u8, sender: u64) -> String {
    format!("{:020}:{phase:03}:{sender:05}:an honest message", now_ns())
}

/// `(send ns, phase, sender)` of the message text in `frame`.
fn read_stamp(frame: &str) -> Option<(u64, u8, u64)> {
    const KEY: &str = "\"message\":\"";
    let at = frame.find(KEY)? + KEY.len();
    let text = frame.get(at..at + 30)?;
    Some((text.get(0..20)?.parse().ok()?, text.get(21..24)?.parse().ok()?, text.get(25..30)?.parse().ok()?))
}

/// A start delay spreading the clients over the sending period.
fn offset(i: u64) -> Duration {
    EVERY.mul_f64((i % 97) as f64 / 97.0)
}

async fn visitor(shared: Arc<Shared>, i: u64, mut ws: Ws) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset(i), EVERY);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let phase = shared.phase.load(Ordering::Relaxed);
                let frame = format!(
                    "{{\"type\":\"user\",\"id\":\"u{i}-{n}\",\"message\":\"{}\"}}",
                    stamp(phase, i)
                );
                n += 1;
                if ws.send(Message::text(frame)).await.is_err() {
                    break;
                }
                shared.with_phase(phase, |s| s.expected += 1);
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => heard(&shared, t.as_str(), "{\"type\":\"user\"", None),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    let phase = shared.phase.load(Ordering::Relaxed);
    shared.with_phase(phase, |s| s.dropped += 1);
}

/// Counts what an honest client heard: a stamped message of `kind` (a frame's start, such as
/// `{"type":"chat"`) is received, with its latency, unless `me` sent it; an ack marked
/// duplicate means the hub swallowed an honest message.
fn heard(shared: &Shared, t: &str, kind: &str, me: Option<u64>) {
    if t.starts_with(kind) {
        if let Some((sent, phase, sender)) = read_stamp(t) {
            if Some(sender) != me {
                let us = now_ns().saturating_sub(sent) / 1000;
                shared.with_phase(phase, |s| {
                    s.received += 1;
                    record(&mut s.latency, us);
                });
            }
        }
    } else if t.starts_with("{\"type\":\"ack\"") && t.contains("\"duplicate\":true") {
        let phase = shared.phase.load(Ordering::Relaxed);
        shared.with_phase(phase, |s| s.swallowed += 1);
    }
}

async fn member(shared: Arc<Shared>, m: u64, mut ws: Ws) {
    let room = shared.room(m / ROOM_SIZE);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset(m), EVERY);
    let counter = &shared.sent_by_member[m as usize];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let phase = shared.phase.load(Ordering::Relaxed);
                let n = counter.fetch_add(1, Ordering::Relaxed);
                // Ids like the protocol's own example (`c-01`): short and predictable.
                let frame = format!(
                    "{{\"type\":\"chat\",\"room\":\"{room}\",\"id\":\"c{m}-{n}\",\"message\":\"{}\"}}",
                    stamp(phase, m)
                );
                if ws.send(Message::text(frame)).await.is_err() {
                    break;
                }
                shared.with_phase(phase, |s| s.expected += ROOM_SIZE - 1);
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => heard(&shared, t.as_str(), "{\"type\":\"chat\"", Some(m)),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    let phase = shared.phase.load(Ordering::Relaxed);
    shared.with_phase(phase, |s| s.dropped += 1);
}

/// A new visitor arriving four times a second: connect from a fresh address, get the history,
/// leave. A failure is an honest person who could not get in.
async fn probe(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    for k in 0u64.. {
        tick.tick().await;
        let phase = shared.phase.load(Ordering::Relaxed);
        let session = format!("{}-probe-{k}", shared.tag);
        let shared2 = shared.clone();
        tokio::spawn(async move {
            let ok = match super::connect(shared2.target, ipv4(addr(62, k)), shared2.named, &session).await {
                Ok((ws, _)) => wire::close(Dialect::Natter, ws).await.is_ok(),
                Err(_) => false,
            };
            shared2.with_phase(phase, |s| {
                s.connects += 1;
                s.connects_failed += u64::from(!ok);
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_read_back() {
        let text = stamp(7, 42);
        let frame = format!("{{\"type\":\"chat\",\"seq\":3,\"message\":\"{text}\"}}");
        let (ns, phase, sender) = read_stamp(&frame).expect("a stamp");
        assert!(ns > 1_600_000_000_000_000_000);
        assert_eq!((phase, sender), (7, 42));
    }
}
