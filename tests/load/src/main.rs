//! # natter-load — a load generator for natter-hub and the Socket.IO peer
//!
//! `natter-load run …` opens N WebSocket connections (spreading source addresses over
//! 127.B.0.2, 127.B.0.3, … so no address runs out of ephemeral ports), puts them in rooms,
//! sends at a chosen rate and reports connections held, connect time, deliveries per second
//! counted by the receivers, send→receive latency, errors, and the server's RSS (read from
//! `/proc/PID/status` when `--server-pid` is given).
//!
//! One process may hold at most 20,000 files here, so the parent never connects itself: it
//! spawns `natter-load worker` children (one per ≤18,000 connections, or `--workers`), each
//! printing one JSON line when its connections are up and one when its run is over, and
//! merges them. The parent tells the workers `go` (start sending) and `exit` (drop the
//! connections) on their stdin, so server RSS is read at well-defined moments.
//!
//! `natter-load abuse …` is the other half: honest clients chatting while attacks run (see
//! `abuse`), for `cargo xtask bench abuse`.

mod abuse;
mod report;
mod wire;
mod worker;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use report::{Done, Pcts, Ready, Report, WorkerLine};
use wire::Dialect;

/// Connections one worker process takes at most when `--workers` is automatic.
const CONNS_PER_WORKER: u64 = 18_000;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Open connections and hold them; nothing is sent.
    Idle,
    /// Rooms of `--room-size` members; `--senders` per room send at `--rate` each.
    Broadcast,
    /// Like broadcast, meant for one big room and one sender.
    Fanout,
    /// `--concurrency` loops connecting and disconnecting as fast as they can.
    Churn,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Broadcast => "broadcast",
            Scenario::Fanout => "fanout",
            Scenario::Churn => "churn",
        }
    }
}

/// The parameters every worker receives (as JSON) from the parent.
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
pub struct Params {
    /// Scenario.
    #[arg(long, value_enum, default_value = "broadcast")]
    pub scenario: Scenario,
    /// Wire dialect of the server.
    #[arg(long, value_enum, default_value = "natter")]
    pub dialect: Dialect,
    /// Server address (IPv4 loopback only), host:port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub target: String,
    /// Connections in total.
    #[arg(long, default_value_t = 1000)]
    pub conns: u64,
    /// Members per room.
    #[arg(long, default_value_t = 100)]
    pub room_size: u64,
    /// Senders per room (0 = every member sends).
    #[arg(long, default_value_t = 0)]
    pub senders: u64,
    /// Messages per second per sender.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Measurement window (s).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Sending before the window opens (s).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Message text length in bytes (same for both servers; at least 31).
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Connects in flight per worker; for churn, the number of connect/disconnect loops.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Connections per source address before moving to the next one.
    #[arg(long, default_value_t = 20_000)]
    pub per_addr: u64,
    /// Tokio worker threads per worker process (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Second byte of the source addresses (127.B.0.2 upwards); 0 = picked per run from the
    /// clock, so consecutive runs do not meet the previous run's ports in TIME_WAIT.
    #[arg(long, default_value_t = 0)]
    pub src_block: u8,
    /// Prefix for room and session ids, so runs against one server do not collide
    /// (default: derived from the clock).
    #[arg(long, default_value = "")]
    pub tag: String,
}

#[derive(Debug, Parser)]
#[command(name = "natter-load", about = "Load generator for natter-hub and the Socket.IO peer")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one scenario and print the merged report.
    Run(RunArgs),
    /// Run every attack in turn against a hub while 200 honest clients chat; print one JSON
    /// report.
    Abuse(abuse::AbuseArgs),
    /// Internal: one worker process (spawned by `run`).
    Worker {
        /// This worker's index.
        #[arg(long)]
        index: u64,
        /// Number of workers.
        #[arg(long)]
        workers: u64,
        /// The parameters, as JSON.
        #[arg(long)]
        params: String,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    params: Params,
    /// PID of the server process, to read its RSS and CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Worker processes (0 = one per 18,000 connections, at least one).
    #[arg(long, default_value_t = 0)]
    workers: u64,
    /// Seconds to wait after the connections are up before reading the server's RSS.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Worker { index, workers, params } => {
            let params: Params = serde_json::from_str(&params).context("worker params")?;
            worker::main(index, workers.max(1), params)
        }
        Cmd::Abuse(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("tokio runtime")?;
            let report = runtime.block_on(abuse::run(args))?;
            println!("{}", serde_json::to_string(&report)?);
            // Attack tasks may still be winding down; they are not waited for.
            runtime.shutdown_background();
            Ok(())
        }
        Cmd::Run(args) => {
            let report = run(args.params, args.server_pid, args.workers, args.settle)?;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_human(&report);
            }
            Ok(())
        }
    }
}

/// A spawned worker and its pipes.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn read_line(&mut self) -> anyhow::Result<WorkerLine> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("worker exited early (see its stderr)");
        }
        serde_json::from_str(&line).with_context(|| format!("worker line {line:?}"))
    }

    fn say(&mut self, what: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{what}")?;
        self.stdin.flush()?;
        Ok(())
    }
}

fn run(mut params: Params, pid: Option<u32>, workers: u64, settle: f64) -> anyhow::Result<Report> {
    if params.tag.is_empty() {
        let ms = wire::now_ns() / 1_000_000;
        params.tag = format!("t{}", ms % 100_000_000);
    }
    if params.src_block == 0 {
        let ms = wire::now_ns() / 1_000_000;
        params.src_block = 1 + ((ms / 7) % 250) as u8;
    }
    if params.payload < 31 {
        bail!("--payload must be at least 31 bytes (it carries the send time)");
    }
    let workers = if workers > 0 { workers } else { params.conns.div_ceil(CONNS_PER_WORKER).max(1) };
    let rss_before = pid.and_then(rss_kib);
    let exe = std::env::current_exe().context("own path")?;
    let json = serde_json::to_string(&params)?;
    let mut procs = Vec::new();
    for i in 0..workers {
        let mut child = Command::new(&exe)
            .args(["worker", "--index", &i.to_string(), "--workers", &workers.to_string(), "--params", &json])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn worker")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("worker stdout")?);
        procs.push(Worker { child, stdin, stdout });
    }

    let mut readies = Vec::new();
    for w in &mut procs {
        match w.read_line()? {
            WorkerLine::Ready(r) => readies.push(r),
            WorkerLine::Done(_) => bail!("worker skipped its ready line"),
        }
    }
    std::thread::sleep(Duration::from_secs_f64(settle));
    let rss_connected = pid.and_then(rss_kib);
    let cpu0 = pid.and_then(cpu_ticks);
    let t0 = Instant::now();
    for w in &mut procs {
        w.say("go")?;
    }
    let mut dones = Vec::new();
    for w in &mut procs {
        match w.read_line()? {
            WorkerLine::Done(d) => dones.push(d),
            WorkerLine::Ready(_) => bail!("worker sent a second ready line"),
        }
    }
    let cpu1 = pid.and_then(cpu_ticks);
    let wall = t0.elapsed().as_secs_f64();
    let rss_after = pid.and_then(rss_kib);
    for w in &mut procs {
        let _ = w.say("exit");
    }
    for mut w in procs {
        let _ = w.child.wait();
    }
    let mut r = merge(&params, &readies, &dones);
    r.rss_before_kib = rss_before;
    r.rss_connected_kib = rss_connected;
    r.rss_after_kib = rss_after;
    if let (Some(b), Some(c)) = (rss_before, rss_connected) {
        if r.connected > 0 {
            r.rss_per_conn_bytes = Some((c as f64 - b as f64) * 1024.0 / r.connected as f64);
        }
    }
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        // /proc reports clock ticks of 1/100 s on Linux.
        let cpu_s = (b.saturating_sub(a)) as f64 / 100.0;
        r.server_cpu = Some(cpu_s / wall.max(1e-9));
        // Deliveries are counted in the window only; scale them to the sending time.
        let delivered_run = r.delivered_per_s * (params.warmup + params.duration);
        if delivered_run > 0.0 {
            r.server_cpu_us_per_delivery = Some(cpu_s * 1e6 / delivered_run);
        }
    }
    r.client_cpu = dones.iter().map(|d| d.client_cpu_s).sum::<f64>() / wall.max(1e-9);
    r.loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0);
    Ok(r)
}

fn merge(p: &Params, readies: &[Ready], dones: &[Done]) -> Report {
    let mut connect = report::new_hist();
    let mut latency = report::new_hist();
    let mut cycle = report::new_hist();
    let mut r = Report {
        scenario: p.scenario.name().into(),
        dialect: p.dialect.name().into(),
        requested: if p.scenario == Scenario::Churn { 0 } else { p.conns },
        ..Report::default()
    };
    for x in readies {
        r.connected += x.connected;
        r.connect_errors += x.connect_errors;
        r.connect_phase_s = r.connect_phase_s.max(x.connect_phase_s);
        x.connect_us.add_to(&mut connect);
        r.error_samples.extend(x.error_samples.iter().cloned());
    }
    let (mut sent, mut delivered, mut cycles) = (0u64, 0u64, 0u64);
    for d in dones {
        sent += d.sent;
        delivered += d.delivered;
        cycles += d.cycles;
        r.held += d.held;
        r.lost += d.lost;
        r.cycle_errors += d.cycle_errors;
        d.latency_us.add_to(&mut latency);
        d.cycle_connect_us.add_to(&mut cycle);
        r.error_samples.extend(d.error_samples.iter().cloned());
    }
    r.error_samples.truncate(8);
    let window = p.duration.max(1e-9);
    r.sent_per_s = sent as f64 / window;
    r.delivered_per_s = delivered as f64 / window;
    r.cycles_per_s = cycles as f64 / window;
    r.connect = Pcts::of(&connect);
    r.latency = Pcts::of(&latency);
    r.cycle_connect = Pcts::of(&cycle);
    r
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of this process, in clock ticks (0 if /proc is unreadable).
pub fn cpu_ticks_self() -> u64 {
    cpu_ticks_at("/proc/self/stat").unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    cpu_ticks_at(&format!("/proc/{pid}/stat"))
}

fn cpu_ticks_at(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may contain spaces; fields after it are space separated.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) is index 11 and stime index 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn print_human(r: &Report) {
    println!("scenario {} / {}", r.scenario, r.dialect);
    println!(
        "  connections: {} up of {} ({} failed), {} held at the end, {} lost; connect phase {:.1} s",
        r.connected, r.requested, r.connect_errors, r.held, r.lost, r.connect_phase_s
    );
    println!(
        "  connect time ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        r.connect.p50, r.connect.p99, r.connect.max
    );
    if r.sent_per_s > 0.0 || r.delivered_per_s > 0.0 {
        println!("  sent/s {:.0}  delivered/s {:.0}", r.sent_per_s, r.delivered_per_s);
        println!(
            "  latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            r.latency.p50, r.latency.p99, r.latency.p999, r.latency.max
        );
    }
    if r.cycles_per_s > 0.0 || r.cycle_errors > 0 {
        println!(
            "  churn: {:.0} connect+disconnect/s, {} failed; connect ms p50 {:.2} p99 {:.2}",
            r.cycles_per_s, r.cycle_errors, r.cycle_connect.p50, r.cycle_connect.p99
        );
    }
    if let (Some(b), Some(c), Some(a)) = (r.rss_before_kib, r.rss_connected_kib, r.rss_after_kib) {
        println!("  server RSS KiB: before {b}  connected {c}  after {a}");
    }
    if let Some(x) = r.rss_per_conn_bytes {
        println!("  server RSS per connection: {:.0} B", x);
    }
    if let Some(c) = r.server_cpu {
        println!(
            "  server CPU during run: {:.2} cores; generator {:.2} cores; load average {:.1}",
            c, r.client_cpu, r.loadavg
        );
    }
    if let Some(c) = r.server_cpu_us_per_delivery {
        println!("  server CPU per delivery: {:.2} µs", c);
    }
    for e in &r.error_samples {
        println!("  error: {e}");
    }
}
