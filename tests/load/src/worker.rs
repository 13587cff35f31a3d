//! One worker process: holds its share of the connections (at most ~19,000, the per-process
//! file limit is 20,000), runs the send phase when the parent says `go`, and prints one JSON
//! line per phase on stdout.
//!
//! Every connection is one task that always reads (so Socket.IO pings are answered and the
//! server never blocks on a full socket) and, once `go` arrives, sends on its own timer when it
//! is a sender. Latency samples are batched per task and merged under one lock.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

use crate::report::{self, Done, HistData, Ready, WorkerLine};
use crate::wire::{self, now_ns, Dialect, Ws};
use crate::{Params, Scenario};

/// At most this many error messages travel back to the parent.
const MAX_ERROR_SAMPLES: usize = 5;

/// The timing of the run phase, fixed when `go` arrives.
#[derive(Debug, Clone, Copy)]
struct RunWindow {
    /// Senders start here.
    start: Instant,
    /// Measurement starts (after the warm-up).
    win_start: Instant,
    /// Measurement ends; senders stop.
    win_end: Instant,
    /// Readers stop (a short drain after the window).
    stop: Instant,
}

/// State shared by the connection tasks of this worker.
struct Shared {
    params: Params,
    target: SocketAddr,
    go: watch::Receiver<Option<RunWindow>>,
    latency: Mutex<Histogram<u64>>,
    sent: AtomicU64,
    delivered: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    fn note_error(&self, e: String) {
        if let Ok(mut v) = self.errors.lock() {
            if v.len() < MAX_ERROR_SAMPLES {
                v.push(e);
            }
        }
    }

    fn flush_latency(&self, batch: &mut Vec<u64>) {
        if batch.is_empty() {
            return;
        }
        if let Ok(mut h) = self.latency.lock() {
            for &us in batch.iter() {
                report::record(&mut h, us);
            }
        }
        batch.clear();
    }
}

/// How a connection task ended.
enum End {
    /// Still open; kept until the parent says `exit`.
    Held(Box<Ws>),
    /// Closed or failed during the run.
    Lost,
    /// Never came up (already counted as a connect error).
    Failed,
}

/// The source address for connection `g`: a new loopback address every `per_addr`
/// connections (each address has ~28,000 ephemeral ports), in the block `127.{block}.x.y`
/// starting at `.0.2`. Each run picks its own block (see [`Params::src_block`]): the ports a
/// previous run just closed sit in TIME_WAIT for a minute and cannot be bound again.
fn source_addr(block: u8, g: u64, per_addr: u64) -> Ipv4Addr {
    let n = 2 + g / per_addr.max(1);
    Ipv4Addr::new(127, block, ((n >> 8) & 0xff) as u8, (n & 0xff) as u8)
}

/// Runs a worker to completion.
pub fn main(index: u64, workers: u64, params: Params) -> anyhow::Result<()> {
    let rt = if params.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(params.threads).enable_all().build()?
    };
    rt.block_on(run(index, workers, params))
}

fn emit(line: &WorkerLine) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(line)?);
    Ok(())
}

async fn run(index: u64, workers: u64, params: Params) -> anyhow::Result<()> {
    let target: SocketAddr = params.target.parse().with_context(|| format!("target {}", params.target))?;
    let (go_tx, go_rx) = watch::channel(None);
    let shared = Arc::new(Shared {
        params: params.clone(),
        target,
        go: go_rx,
        latency: Mutex::new(report::new_hist()),
        sent: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });

    // Connect phase.
    let lo = params.conns * index / workers;
    let hi = params.conns * (index + 1) / workers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut ready = Ready::default();
    if params.scenario != Scenario::Churn {
        let (res_tx, mut res_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
        let permits = Arc::new(Semaphore::new(params.concurrency.max(1)));
        for g in lo..hi {
            let shared = shared.clone();
            let res_tx = res_tx.clone();
            let permits = permits.clone();
            tasks.push(tokio::spawn(async move {
                let permit = permits.acquire_owned().await;
                let opened = connect_member(&shared, g).await;
                drop(permit);
                match opened {
                    Ok((ws, took)) => {
                        let _ = res_tx.send(Ok(took));
                        drop(res_tx);
                        member(shared, g, ws).await
                    }
                    Err(e) => {
                        let _ = res_tx.send(Err(format!("{e:#}")));
                        End::Failed
                    }
                }
            }));
        }
        drop(res_tx);
        let mut hist = report::new_hist();
        // The tasks keep their sender clones while they live, so count results instead of
        // waiting for the channel to close.
        for _ in lo..hi {
            let Some(r) = res_rx.recv().await else { break };
            match r {
                Ok(took) => {
                    ready.connected += 1;
                    report::record(&mut hist, took.as_micros() as u64);
                }
                Err(e) => {
                    ready.connect_errors += 1;
                    if ready.error_samples.len() < MAX_ERROR_SAMPLES {
                        ready.error_samples.push(e);
                    }
                }
            }
        }
        ready.connect_us = HistData::from_hist(&hist);
    }
    ready.connect_phase_s = started.elapsed().as_secs_f64();
    emit(&WorkerLine::Ready(ready))?;

    // Wait for `go`.
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        match stdin.next_line().await? {
            Some(l) if l.trim() == "go" => break,
            Some(_) => continue,
            None => return Ok(()),
        }
    }
    let start = Instant::now();
    let win_start = start + Duration::from_secs_f64(params.warmup);
    let win_end = win_start + Duration::from_secs_f64(params.duration);
    let window = RunWindow { start, win_start, win_end, stop: win_end + Duration::from_millis(300) };
    go_tx.send_replace(Some(window));
    let cpu0 = crate::cpu_ticks_self();

    let mut done = Done { window_s: params.duration, ..Done::default() };
    if params.scenario == Scenario::Churn {
        churn(&shared, index, window, &mut done).await;
    }
    let mut held = Vec::new();
    for t in tasks {
        match t.await {
            Ok(End::Held(ws)) => held.push(ws),
            Ok(End::Failed) => {}
            Ok(End::Lost) | Err(_) => done.lost += 1,
        }
    }
    done.held = held.len() as u64;
    done.client_cpu_s = crate::cpu_ticks_self().saturating_sub(cpu0) as f64 / 100.0;
    done.sent = shared.sent.load(Ordering::Relaxed);
    done.delivered = shared.delivered.load(Ordering::Relaxed);
    if let Ok(h) = shared.latency.lock() {
        done.latency_us = HistData::from_hist(&h);
    }
    if let Ok(e) = shared.errors.lock() {
        done.error_samples.extend(e.iter().cloned());
    }
    emit(&WorkerLine::Done(done))?;

    // Hold the connections until the parent has read the server's RSS.
    while let Some(l) = stdin.next_line().await? {
        if l.trim() == "exit" {
            break;
        }
    }
    drop(held);
    Ok(())
}

/// Opens member `g`'s connection and joins its room (when the scenario uses rooms).
async fn connect_member(shared: &Shared, g: u64) -> anyhow::Result<(Ws, Duration)> {
    let p = &shared.params;
    let session = format!("{}s{g}", p.tag);
    let (mut ws, took) =
        wire::open(p.dialect, shared.target, source_addr(p.src_block, g, p.per_addr), &session).await?;
    if let Some(room) = room_of(p, g) {
        wire::join(p.dialect, &mut ws, &room, &format!("u{g}")).await?;
    }
    Ok((ws, took))
}

/// The room of member `g`, if the scenario uses rooms.
fn room_of(p: &Params, g: u64) -> Option<String> {
    match p.scenario {
        Scenario::Broadcast | Scenario::Fanout => Some(format!("{}r{}", p.tag, g / p.room_size.max(1))),
        Scenario::Idle | Scenario::Churn => None,
    }
}

/// Whether member `g` sends.
fn is_sender(p: &Params, g: u64) -> bool {
    match p.scenario {
        Scenario::Broadcast | Scenario::Fanout => p.senders == 0 || g % p.room_size.max(1) < p.senders,
        Scenario::Idle | Scenario::Churn => false,
    }
}

/// One connection's life after it came up: read always, send on a timer once `go` came.
async fn member(shared: Arc<Shared>, g: u64, mut ws: Ws) -> End {
    let p = &shared.params;
    let dialect = p.dialect;
    let room = room_of(p, g).unwrap_or_default();
    let sender = is_sender(p, g) && p.rate > 0.0;
    let mut go = shared.go.clone();
    let mut window: Option<RunWindow> = None;
    let mut tick: Option<tokio::time::Interval> = None;
    let mut seq = 0u64;
    let mut batch = Vec::with_capacity(64);
    let mut lost = false;
    loop {
        let stop_at = window.map(|w| w.stop);
        let ev = tokio::select! {
            m = ws.next() => Ev::Msg(m),
            r = go.changed(), if window.is_none() => Ev::Go(r.is_ok()),
            _ = async { if let Some(t) = tick.as_mut() { t.tick().await; } }, if tick.is_some() => Ev::Tick,
            _ = async { if let Some(s) = stop_at { tokio::time::sleep_until(s.into()).await } }, if stop_at.is_some() => Ev::Stop,
        };
        match ev {
            Ev::Go(ok) => {
                if !ok {
                    break;
                }
                window = *go.borrow();
                if let (Some(w), true) = (window, sender) {
                    let period = Duration::from_secs_f64(1.0 / p.rate);
                    // Spread the senders' phases over one period so they do not fire together.
                    let phase = period.mul_f64(((g.wrapping_mul(7919)) % 1000) as f64 / 1000.0);
                    let mut t = tokio::time::interval_at((w.start + phase).into(), period);
                    t.set_missed_tick_behavior(MissedTickBehavior::Skip);
                    tick = Some(t);
                }
            }
            Ev::Tick => {
                let Some(w) = window else { continue };
                let now = Instant::now();
                if now >= w.win_end {
                    tick = None;
                    continue;
                }
                seq += 1;
                let frame = wire::chat_frame(dialect, &room, &format!("{}-{g}-{seq}", p.tag), seq, p.payload);
                if let Err(e) = ws.send(Message::text(frame)).await {
                    shared.note_error(format!("send: {e}"));
                    lost = true;
                    break;
                }
                if now >= w.win_start {
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ev::Stop => break,
            Ev::Msg(Some(Ok(Message::Text(t)))) => {
                if let Some(stamp) = wire::delivered_stamp(dialect, &t) {
                    if let Some(w) = window {
                        let now = Instant::now();
                        if now >= w.win_start && now < w.win_end {
                            shared.delivered.fetch_add(1, Ordering::Relaxed);
                            batch.push(now_ns().saturating_sub(stamp) / 1000);
                            if batch.len() >= 64 {
                                shared.flush_latency(&mut batch);
                            }
                        }
                    }
                } else if dialect == Dialect::Socketio && t.as_str() == "2" {
                    if ws.send(Message::text("3")).await.is_err() {
                        lost = true;
                        break;
                    }
                } else if t.starts_with("{\"type\":\"error\"") {
                    shared.note_error(format!("error frame: {}", wire::clip(&t)));
                }
            }
            Ev::Msg(Some(Ok(Message::Close(c)))) => {
                shared.note_error(format!("closed by server: {c:?}"));
                lost = true;
                break;
            }
            Ev::Msg(Some(Ok(_))) => {}
            Ev::Msg(Some(Err(e))) => {
                shared.note_error(format!("read: {e}"));
                lost = true;
                break;
            }
            Ev::Msg(None) => {
                shared.note_error("connection ended".into());
                lost = true;
                break;
            }
        }
    }
    shared.flush_latency(&mut batch);
    if lost {
        End::Lost
    } else {
        End::Held(Box::new(ws))
    }
}

enum Ev {
    Msg(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Go(bool),
    Tick,
    Stop,
}

/// Churn: `concurrency` loops each connecting and disconnecting as fast as they can until the
/// window ends; cycles that end inside the window count.
async fn churn(shared: &Arc<Shared>, index: u64, w: RunWindow, done: &mut Done) {
    let p = &shared.params;
    let cycles = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(report::new_hist()));
    let mut loops = Vec::new();
    for l in 0..p.concurrency.max(1) as u64 {
        let shared = shared.clone();
        let (cycles, errors, hist) = (cycles.clone(), errors.clone(), hist.clone());
        loops.push(tokio::spawn(async move {
            let p = &shared.params;
            let session = format!("{}c{index}_{l}", p.tag);
            let mut n = 0u64;
            while Instant::now() < w.win_end {
                // Rotate source addresses so TIME_WAIT never exhausts one address's ports.
                let g = (index * 1_000_003 + l * 7 + n * 131) % (200 * p.per_addr.max(1));
                n += 1;
                let r = async {
                    let (ws, took) = wire::open(
                        p.dialect,
                        shared.target,
                        source_addr(p.src_block, g, p.per_addr),
                        &session,
                    )
                    .await?;
                    wire::close(p.dialect, ws).await?;
                    anyhow::Ok(took)
                }
                .await;
                let now = Instant::now();
                let in_window = now >= w.win_start && now < w.win_end;
                match r {
                    Ok(took) if in_window => {
                        cycles.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut h) = hist.lock() {
                            report::record(&mut h, took.as_micros() as u64);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if in_window {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        shared.note_error(format!("churn: {e:#}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    for l in loops {
        let _ = l.await;
    }
    done.cycles = cycles.load(Ordering::Relaxed);
    done.cycle_errors = errors.load(Ordering::Relaxed);
    let merged = hist.lock().map(|h| HistData::from_hist(&h)).unwrap_or_default();
    done.cycle_connect_us = merged;
}
