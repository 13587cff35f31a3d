//! `cargo xtask bench [--quick] [idle|broadcast|fanout|churn]…`: natter-hub against a
//! Socket.IO 4.8 peer, driven by the same load generator (`tests/load`, binary
//! `natter-load`), one after the other in one run, printed as one table with the ratio.
//!
//! Every measurement gets a fresh server process (so RSS figures start from the same place);
//! the generator reads the server's RSS and CPU time from `/proc`. Nothing is asserted: the
//! machine is shared and noisy, so this prints figures for people to read. The method is in
//! `docs/benchmarks.md`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// Room size of the broadcast scenario.
const ROOM: u64 = 100;
/// The p99 bound of the rate search (ms).
const P99_BOUND_MS: f64 = 5.0;

/// Sizes and durations of one run (`--quick` or full).
struct Plan {
    quick: bool,
    idle_conns: u64,
    bcast_conns: u64,
    /// Messages per second per member in the fixed-rate broadcast measurement.
    bcast_rate: f64,
    /// Per-member rates tried in the search, lowest first.
    ramp: Vec<f64>,
    fanout_conns: u64,
    fanout_rate: f64,
    churn_loops: u64,
    warmup: f64,
    duration: f64,
    settle: f64,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                idle_conns: 5_000,
                bcast_conns: 1_000,
                bcast_rate: 1.0,
                ramp: vec![0.25, 1.0, 4.0, 8.0],
                fanout_conns: 5_000,
                fanout_rate: 10.0,
                churn_loops: 50,
                warmup: 0.5,
                duration: 2.0,
                settle: 0.5,
            }
        } else {
            Plan {
                quick,
                idle_conns: 19_000,
                bcast_conns: 1_000,
                bcast_rate: 1.0,
                ramp: vec![0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0],
                fanout_conns: 5_000,
                fanout_rate: 20.0,
                churn_loops: 50,
                warmup: 1.0,
                duration: 5.0,
                settle: 1.0,
            }
        }
    }
}

/// The two servers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Natter,
    SocketIo,
}

impl Server {
    fn dialect(self) -> &'static str {
        match self {
            Server::Natter => "natter",
            Server::SocketIo => "socketio",
        }
    }
}

/// Paths and the running environment.
struct Env {
    root: PathBuf,
    hub: PathBuf,
    load: PathBuf,
    peer_dir: PathBuf,
    logs: PathBuf,
    hub_has_db_flag: bool,
    /// The hub has budgets per address and per connection (which this benchmark turns off).
    hub_has_budgets: bool,
    /// The hub has a budget of new connections per address (turned off here too).
    hub_has_connect_budget: bool,
    /// The hub caps the conversations one address keeps in memory (turned off here too: the
    /// generator's 20,000 connections per source address each hold one).
    hub_has_conversation_share: bool,
    /// The hub bounds the bytes queued to one address's connections together (turned off here
    /// too: the generator's readers all come from one address).
    hub_has_queue_share: bool,
    /// Hubs that issue sessions need `--open-sessions` for the load generator's named sessions.
    hub_has_open_sessions: bool,
}

/// One row of the table: a metric for both servers.
struct Row {
    scenario: &'static str,
    metric: String,
    natter: Option<f64>,
    socketio: Option<f64>,
    /// How to print the values.
    unit: Unit,
    /// Whether a bigger value is better (decides how the ratio reads).
    higher_is_better: bool,
}

#[derive(Clone, Copy)]
enum Unit {
    Count,
    Ms,
    Us,
    KiB,
    MiB,
    PerS,
}

fn fmt(v: Option<f64>, unit: Unit) -> String {
    match v {
        None => "—".into(),
        Some(x) => match unit {
            Unit::Count => format!("{x:.0}"),
            Unit::Ms => format!("{x:.2} ms"),
            Unit::Us => format!("{x:.2} µs"),
            Unit::KiB => format!("{x:.1} KiB"),
            Unit::MiB => format!("{x:.0} MiB"),
            Unit::PerS => {
                if x >= 10_000.0 {
                    format!("{:.0}k/s", x / 1000.0)
                } else {
                    format!("{x:.0}/s")
                }
            }
        },
    }
}

/// Entry point: `args` are what follows `bench`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut quick = false;
    let mut scenarios = Vec::new();
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            "idle" | "broadcast" | "fanout" | "churn" => scenarios.push(a.clone()),
            "-h" | "--help" => {
                println!("usage: cargo xtask bench [--quick] [idle|broadcast|fanout|churn]…");
                return Ok(());
            }
            other => bail!("unknown bench argument {other:?}; try `cargo xtask bench --help`"),
        }
    }
    if scenarios.is_empty() {
        scenarios = ["idle", "broadcast", "fanout", "churn"].map(String::from).to_vec();
    }
    let plan = Plan::new(quick);
    let started = Instant::now();
    let env = prepare()?;
    println!(
        "bench: {} run of {} (natter-hub vs Socket.IO {}), logs in {}",
        if quick { "quick" } else { "full" },
        scenarios.join(", "),
        peer_version(&env).unwrap_or_else(|| "4.x".into()),
        env.logs.display()
    );

    let mut rows = Vec::new();
    for s in &scenarios {
        match s.as_str() {
            "idle" => idle(&env, &plan, &mut rows)?,
            "broadcast" => broadcast(&env, &plan, &mut rows)?,
            "fanout" => fanout(&env, &plan, &mut rows)?,
            "churn" => churn(&env, &plan, &mut rows)?,
            _ => {}
        }
    }
    let table = render(&rows);
    println!();
    println!("{table}");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "({} run, {:.0} s, {} cores, load average now {})",
        if plan.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    std::fs::write(env.logs.join("latest.md"), &table).context("write latest.md")?;
    Ok(())
}

/// Builds natter-hub and natter-load in release mode (`cargo build --release` in `root`);
/// returns the target directory (`CARGO_TARGET_DIR`, else `root/target`) the binaries are under,
/// in `release/`.
pub(crate) fn build_release(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "natter-hub", "-p", "natter-load"])
        .status()
        .context("cargo build")?;
    if !status.success() {
        bail!("building natter-hub and natter-load failed");
    }
    Ok(std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target")))
}

/// Builds the hub and the generator in release mode and installs the peer's node modules.
fn prepare() -> anyhow::Result<Env> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("workspace root")?.to_path_buf();
    let target = build_release(&root)?;
    let peer_dir = root.join("tests/load/peers/socketio");
    if !peer_dir.join("node_modules/socket.io").exists() {
        let status = Command::new("npm")
            .current_dir(&peer_dir)
            .args(["ci", "--no-audit", "--no-fund"])
            .status()
            .context("npm ci (is Node.js installed?)")?;
        if !status.success() {
            bail!("npm ci in {} failed", peer_dir.display());
        }
    }
    let logs = target.join("bench");
    std::fs::create_dir_all(&logs)?;
    let hub = target.join("release/natter-hub");
    let help = Command::new(&hub).arg("--help").output().context("natter-hub --help")?;
    let help = String::from_utf8_lossy(&help.stdout);
    let (hub_has_db_flag, hub_has_open_sessions) = (help.contains("--db"), help.contains("--open-sessions"));
    let hub_has_budgets = help.contains("--frame-budget");
    let hub_has_connect_budget = help.contains("--address-connect-burst");
    let hub_has_conversation_share = help.contains("--max-conversations-per-address");
    let hub_has_queue_share = help.contains("--address-send-queue-bytes");
    Ok(Env {
        load: target.join("release/natter-load"),
        hub,
        peer_dir,
        logs,
        root,
        hub_has_db_flag,
        hub_has_budgets,
        hub_has_connect_budget,
        hub_has_conversation_share,
        hub_has_queue_share,
        hub_has_open_sessions,
    })
}

fn peer_version(env: &Env) -> Option<String> {
    let text = std::fs::read_to_string(env.peer_dir.join("node_modules/socket.io/package.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("version")?.as_str().map(String::from)
}

/// A running server, stopped when dropped.
struct Running {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM first so the hub can close its sockets; SIGKILL if it lingers.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (the listener is closed again before the server binds it).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start(env: &Env, server: Server, label: &str) -> anyhow::Result<Running> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let log = std::fs::File::create(env.logs.join(format!("{label}-{}.log", server.dialect())))?;
    let child = match server {
        Server::Natter => {
            let mut c = Command::new(&env.hub);
            // The per-session rate limit (5/s by default) would refuse the broadcast load:
            // the Socket.IO peer has none, so the comparison turns it off.
            c.arg("--listen").arg(addr.to_string()).args(["--rate-burst", "0"]);
            if env.hub_has_db_flag {
                c.args(["--db", ":memory:"]);
            }
            // Likewise the budgets of a public site: the generator's thousands of connections
            // come from one address, and a sender in a room of 5,000 spends more per second
            // than one connection may. `bench abuse` measures the hub with them on.
            if env.hub_has_budgets {
                c.args([
                    "--address-rate-burst",
                    "0",
                    "--max-connections-per-address",
                    "0",
                    "--frame-budget",
                    "0",
                ]);
            }
            if env.hub_has_connect_budget {
                c.args(["--address-connect-burst", "0"]);
            }
            if env.hub_has_conversation_share {
                c.args(["--max-conversations-per-address", "0"]);
            }
            // Thousands of readers of one address, each with a frame or two queued in a burst,
            // add up past one address's share of queued bytes.
            if env.hub_has_queue_share {
                c.args(["--address-send-queue-bytes", "0"]);
            }
            if env.hub_has_open_sessions {
                c.arg("--open-sessions");
            }
            c.env("RUST_LOG", "warn").current_dir(&env.root);
            c.stdout(log.try_clone()?).stderr(log).spawn().context("start natter-hub")?
        }
        Server::SocketIo => Command::new("node")
            .current_dir(&env.peer_dir)
            .args(["server.js", "--port", &port.to_string()])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start node server.js")?,
    };
    let running = Running { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("{} did not listen on {addr} within 20 s (see {})", server.dialect(), env.logs.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the runtime finish starting (node's first tick, the hub's store) before measuring RSS.
    std::thread::sleep(Duration::from_millis(300));
    Ok(running)
}

/// Runs the generator once against `srv` and returns its JSON report.
fn load(env: &Env, plan: &Plan, server: Server, srv: &Running, extra: &[String]) -> anyhow::Result<Value> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--json".into(),
        "--dialect".into(),
        server.dialect().into(),
        "--target".into(),
        srv.addr.to_string(),
        "--server-pid".into(),
        srv.child.id().to_string(),
        "--settle".into(),
        plan.settle.to_string(),
    ];
    // A scenario may set its own window; otherwise the plan's.
    for (flag, value) in [("--warmup", plan.warmup), ("--duration", plan.duration)] {
        if !extra.iter().any(|a| a == flag) {
            args.push(flag.into());
            args.push(value.to_string());
        }
    }
    args.extend(extra.iter().cloned());
    let mut child = Command::new(&env.load)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start natter-load")?;
    let stdout = child.stdout.take().context("natter-load stdout")?;
    let mut last = String::new();
    for line in BufReader::new(stdout).lines() {
        last = line?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("natter-load {} failed ({status})", args.join(" "));
    }
    let v: Value = serde_json::from_str(&last).with_context(|| format!("natter-load output {last:?}"))?;
    if let Some(errs) = v.get("error_samples").and_then(Value::as_array) {
        for e in errs.iter().take(3) {
            eprintln!("    {} error sample: {}", server.dialect(), e.as_str().unwrap_or_default());
        }
    }
    Ok(v)
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

fn both() -> [Server; 2] {
    [Server::Natter, Server::SocketIo]
}

fn s(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

fn idle(env: &Env, plan: &Plan, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let mut got = Vec::new();
    for server in both() {
        let srv = start(env, server, "idle")?;
        let n = plan.idle_conns.to_string();
        let r = load(env, plan, server, &srv, &s(&["--scenario", "idle", "--conns", &n, "--duration", "2"]))?;
        progress("idle", server, &r);
        got.push(r);
    }
    let pick = |i: usize, p: &[&str]| f(&got[i], p);
    rows.push(row("idle", format!("connections held (of {})", plan.idle_conns), Unit::Count, true, |i| {
        pick(i, &["held"])
    }));
    rows.push(row("idle", "connect time p99".into(), Unit::Ms, false, |i| pick(i, &["connect", "p99"])));
    rows.push(row("idle", "server RSS per idle connection".into(), Unit::KiB, false, |i| {
        pick(i, &["rss_per_conn_bytes"]).map(|b| b / 1024.0)
    }));
    rows.push(row("idle", "server RSS with all connected".into(), Unit::MiB, false, |i| {
        pick(i, &["rss_connected_kib"]).map(|k| k / 1024.0)
    }));
    Ok(())
}

fn bcast_args(plan: &Plan, rate: f64) -> Vec<String> {
    let conns = plan.bcast_conns.to_string();
    let room = ROOM.to_string();
    let rate = rate.to_string();
    s(&["--scenario", "broadcast", "--conns", &conns, "--room-size", &room, "--rate", &rate])
}

fn broadcast(env: &Env, plan: &Plan, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    // results[server] = (fixed-rate run, max delivered/s, best rate under the bound, p99 at half max)
    let mut fixed = Vec::new();
    let mut max_dps = Vec::new();
    let mut best_under = Vec::new();
    let mut half = Vec::new();
    for server in both() {
        let srv = start(env, server, "broadcast")?;
        let r = load(env, plan, server, &srv, &bcast_args(plan, plan.bcast_rate))?;
        progress(&format!("broadcast @{}/s/member", plan.bcast_rate), server, &r);
        let mut top: f64 = f(&r, &["delivered_per_s"]).unwrap_or(0.0);
        let mut top_rate = if top > 0.0 { plan.bcast_rate } else { 0.0 };
        fixed.push(r);
        // Ramp: raise the per-member rate until the server saturates (deliveries fall short
        // of what was sent) or latency explodes.
        let mut under: Option<(f64, f64)> = None; // (rate, delivered/s)
        for &rate in &plan.ramp {
            let r = load(env, plan, server, &srv, &bcast_args(plan, rate))?;
            progress(&format!("broadcast @{rate}/s/member"), server, &r);
            let dps = f(&r, &["delivered_per_s"]).unwrap_or(0.0);
            let p99 = f(&r, &["latency", "p99"]).unwrap_or(f64::INFINITY);
            let expected = rate * plan.bcast_conns as f64 * ROOM as f64;
            if dps > top {
                top = dps;
                top_rate = rate;
            }
            if p99 < P99_BOUND_MS && dps >= 0.95 * expected {
                under = Some((rate, dps));
            }
            if dps < 0.8 * expected || p99 > 1000.0 {
                break;
            }
        }
        max_dps.push(Some(top));
        best_under.push(under.map(|u| u.1));
        // p99 at half the maximum rate.
        let h = if top_rate > 0.0 {
            let rate = top / 2.0 / (plan.bcast_conns as f64 * ROOM as f64);
            let r = load(env, plan, server, &srv, &bcast_args(plan, rate))?;
            progress(&format!("broadcast @{rate:.3}/s/member (half max)"), server, &r);
            f(&r, &["latency", "p99"])
        } else {
            None
        };
        half.push(h);
        drop(srv);
    }
    let label = format!("{} members in rooms of {ROOM}", plan.bcast_conns);
    rows.push(row(
        "broadcast",
        format!("deliveries @ {}/s per member ({label})", plan.bcast_rate),
        Unit::PerS,
        true,
        |i| f(&fixed[i], &["delivered_per_s"]),
    ));
    for (name, key) in [("p50", "p50"), ("p99", "p99"), ("p99.9", "p999")] {
        rows.push(row("broadcast", format!("  latency {name} at that rate"), Unit::Ms, false, |i| {
            f(&fixed[i], &["latency", key])
        }));
    }
    rows.push(row("broadcast", "  server CPU per delivery at that rate".into(), Unit::Us, false, |i| {
        f(&fixed[i], &["server_cpu_us_per_delivery"])
    }));
    rows.push(row("broadcast", "max deliveries (rate ramp)".into(), Unit::PerS, true, |i| max_dps[i]));
    rows.push(row(
        "broadcast",
        format!("max deliveries with p99 < {P99_BOUND_MS} ms"),
        Unit::PerS,
        true,
        |i| best_under[i],
    ));
    rows.push(row("broadcast", "p99 at half the max rate".into(), Unit::Ms, false, |i| half[i]));
    Ok(())
}

fn fanout(env: &Env, plan: &Plan, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let mut got = Vec::new();
    for server in both() {
        let srv = start(env, server, "fanout")?;
        let n = plan.fanout_conns.to_string();
        let rate = plan.fanout_rate.to_string();
        let args =
            s(&["--scenario", "fanout", "--conns", &n, "--room-size", &n, "--senders", "1", "--rate", &rate]);
        let r = load(env, plan, server, &srv, &args)?;
        progress("fanout", server, &r);
        got.push(r);
    }
    let what = format!("1 room of {}, 1 sender @ {}/s", plan.fanout_conns, plan.fanout_rate);
    rows.push(row("fanout", format!("deliveries ({what})"), Unit::PerS, true, |i| {
        f(&got[i], &["delivered_per_s"])
    }));
    rows.push(row("fanout", "  latency p50".into(), Unit::Ms, false, |i| f(&got[i], &["latency", "p50"])));
    rows.push(row("fanout", "  latency p99".into(), Unit::Ms, false, |i| f(&got[i], &["latency", "p99"])));
    rows.push(row("fanout", "  members still connected at the end".into(), Unit::Count, true, |i| {
        f(&got[i], &["held"])
    }));
    rows.push(row("fanout", "  server CPU per delivery".into(), Unit::Us, false, |i| {
        f(&got[i], &["server_cpu_us_per_delivery"])
    }));
    Ok(())
}

fn churn(env: &Env, plan: &Plan, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let mut got = Vec::new();
    for server in both() {
        let srv = start(env, server, "churn")?;
        let loops = plan.churn_loops.to_string();
        let r = load(env, plan, server, &srv, &s(&["--scenario", "churn", "--concurrency", &loops]))?;
        progress("churn", server, &r);
        got.push(r);
    }
    rows.push(row(
        "churn",
        format!("connect+disconnect ({} loops)", plan.churn_loops),
        Unit::PerS,
        true,
        |i| f(&got[i], &["cycles_per_s"]),
    ));
    rows.push(row("churn", "  connect time p99".into(), Unit::Ms, false, |i| {
        f(&got[i], &["cycle_connect", "p99"])
    }));
    rows.push(row("churn", "  failed cycles".into(), Unit::Count, false, |i| f(&got[i], &["cycle_errors"])));
    Ok(())
}

fn row(
    scenario: &'static str,
    metric: String,
    unit: Unit,
    higher_is_better: bool,
    get: impl Fn(usize) -> Option<f64>,
) -> Row {
    Row { scenario, metric, natter: get(0), socketio: get(1), unit, higher_is_better }
}

fn progress(what: &str, server: Server, r: &Value) {
    eprintln!(
        "  {what:<38} {:<8} conns {:>6}/{:<6} sent/s {:>8.0} delivered/s {:>9.0} p50 {:>8.2} p99 {:>8.2} ms  cycles/s {:>6.0}  rss/conn {:>7.0} B  cpu {:.2}  load {:.1}",
        server.dialect(),
        f(r, &["held"]).unwrap_or(0.0),
        f(r, &["requested"]).unwrap_or(0.0),
        f(r, &["sent_per_s"]).unwrap_or(0.0),
        f(r, &["delivered_per_s"]).unwrap_or(0.0),
        f(r, &["latency", "p50"]).unwrap_or(0.0),
        f(r, &["latency", "p99"]).unwrap_or(0.0),
        f(r, &["cycles_per_s"]).unwrap_or(0.0),
        f(r, &["rss_per_conn_bytes"]).unwrap_or(0.0),
        f(r, &["server_cpu"]).unwrap_or(0.0),
        f(r, &["loadavg"]).unwrap_or(0.0),
    );
}

/// The table as Markdown (readable as plain text too).
fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | metric | natter-hub | Socket.IO | natter ÷ Socket.IO |\n");
    out.push_str("|---|---|---:|---:|---:|\n");
    for r in rows {
        let ratio = match (r.natter, r.socketio) {
            (Some(a), Some(b)) if b > 0.0 && a > 0.0 => {
                let x = a / b;
                let better = if r.higher_is_better { x >= 1.0 } else { x <= 1.0 };
                format!("{x:.2}× {}", if better { "(natter better)" } else { "(Socket.IO better)" })
            }
            _ => "—".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.metric,
            fmt(r.natter, r.unit),
            fmt(r.socketio, r.unit),
            ratio
        ));
    }
    out
}
