//! `cargo xtask bench abuse [--quick] [--hub PATH] [--only 1,2a,…]`: the release hub under
//! every attack of `natter-load abuse` in turn while 200 honest clients chat, printed as one
//! table: attack, hub peak RSS, honest p99 during the attack against the calm phase just before
//! it, honest messages lost, fresh honest connections that failed, and what the attacker got.
//!
//! What is measured: 200 honest clients (100 visitors in support conversations, 100 members in
//! 5 rooms of 20), each from an address of its own, each sending a message every second. Every
//! delivery of an honest message (a visitor's echo, each of the 19 other members' copy of a
//! room message) is one sample of its send → receive time, counted in the phase it was sent
//! in. A phase's figure is the p99 of its samples: an attack's phase (8 s, 5 s with `--quick`)
//! holds ~16,000, so the slowest ~160 set it. Each attack is set against the calm phase just
//! before it (so a machine whose background load drifts over minutes is compared with itself),
//! which lasts twice as long (16 s, 10 s with `--quick`): the figure every attack is divided by
//! is the one that should be steadiest. An attack is bounded in count, so its own phase is not
//! lengthened: that would dilute it. The bar the run is read against: in one run, for every
//! attack, honest p99 during it at most 2× that of the calm phase before it, and no honest
//! delivery lost. Each ratio and the highest are printed; nothing is asserted.
//!
//! The hub runs with its defaults except: a fresh database file, an open-file limit of 1,024
//! (the common service default, which a connection flood used to exhaust), a 5 s idle
//! timeout with 1 s pings, so a peer that never reads is due within one phase, and the LLM
//! reply backend pointed at `natter-load` itself (an OpenAI-compatible double that answers
//! honest visitors at once and the reply-engine attacks as a hostile or broken backend would),
//! with `--reply-timeout 5s --reply-idle-timeout 3s` so a reply's deadline falls within a
//! phase. Sessions are issued by the hub, as in production. `--hub` runs another build
//! instead (an older one, to see the attacks land): flags it does not know are left out, a hub
//! that does not issue sessions gets named ones, and one without the reply-engine bounds skips
//! attacks 8 and 9. Nothing is asserted: the machine is shared, so this prints figures.
//!
//! With two or more CPUs and `taskset` (util-linux), the hub is pinned to CPU 0 and the honest
//! clients to the others, and the attackers' threads (with the backend double they drive) run
//! on the hub's CPU at nice 19. The honest clients' clock is the measurement, so nothing else
//! may run on their CPU: an attacker there, even at nice 19, delayed their sends and reads with
//! the kernel's work for its own sockets (attack 9's 1,500 connections: honest p99 2–4× the
//! calm phase's while the hub's CPU was 82 % idle; 1.05× with the attacker moved to the hub's
//! CPU). On the hub's CPU what generating an attack costs is taken from the hub — a harder test
//! of it than a separate attacking machine, never an easier one — and nice 19 lets the hub run
//! first. `--no-pin` runs everything unpinned. Each calm phase waits
//! for the hub's CPU use to come back near the baseline's first, and the table shows the hub's
//! CPU time per phase, the figure a busy machine disturbs least.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// Entry point: `args` are what follows `bench abuse`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut quick = false;
    let mut hub_path: Option<PathBuf> = None;
    let mut only: Option<String> = None;
    let mut pin = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--no-pin" => pin = false,
            "--hub" => hub_path = Some(it.next().context("--hub needs a path")?.into()),
            "--only" => only = Some(it.next().context("--only needs a list like 1,2a")?.clone()),
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask bench abuse [--quick] [--no-pin] [--hub PATH] [--only 1,2a,2b,3,3b,4,5,6,6b,7,8,9]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; try `cargo xtask bench abuse --help`"),
        }
    }
    let root = crate::tools::root();
    let target = crate::bench::build_release(&root)?;
    let hub = hub_path.unwrap_or_else(|| target.join("release/natter-hub"));
    let logs = target.join("bench");
    std::fs::create_dir_all(&logs)?;
    let help = Command::new(&hub).arg("--help").output().context("natter-hub --help")?;
    let help = String::from_utf8_lossy(&help.stdout).into_owned();

    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut flags = vec!["--listen".to_owned(), addr.to_string(), "--idle-timeout".into(), "5s".into()];
    flags.extend(["--ping-interval".into(), "1s".into()]);
    // A database file of its own, as in production: an in-memory database has one connection,
    // so a large history read there waits in line with every write (a file database reads on
    // connections of its own), which is not the hub an operator runs.
    let db = logs.join(format!("abuse-{}.db", std::process::id()));
    if help.contains("--db") {
        flags.extend(["--db".into(), db.display().to_string()]);
    }
    // The reply-engine attacks need the hub's LLM backend to be natter-load's double.
    let backend: Option<SocketAddr> = if help.contains("--reply-concurrency") {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let backend: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        flags.extend([
            "--reply-backend".into(),
            "llm".into(),
            "--llm-url".into(),
            format!("http://{backend}/v1"),
        ]);
        flags.extend(["--llm-model".into(), "natter-load".into()]);
        flags.extend(["--reply-timeout".into(), "5s".into(), "--reply-idle-timeout".into(), "3s".into()]);
        Some(backend)
    } else {
        None
    };
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let pinned = pin
        && cpus >= 2
        && Command::new("taskset").arg("--version").output().is_ok_and(|o| o.status.success());
    let (hub_cpus, load_cpus) = ("0".to_owned(), format!("1-{}", cpus - 1));
    let hub_log = logs.join("abuse-hub.log");
    let quoted: Vec<String> = flags.iter().map(|f| format!("'{f}'")).collect();
    let log = std::fs::File::create(&hub_log)?;
    // `exec` keeps the PID, so the generator reads the hub's own RSS.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 1024 && exec {}'{}' {}",
            if pinned { format!("taskset -c {hub_cpus} ") } else { String::new() },
            hub.display(),
            quoted.join(" ")
        ))
        .env("RUST_LOG", "warn")
        .current_dir(&root)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("start natter-hub")?;
    let hub_process = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            bail!("natter-hub did not listen on {addr} (see {})", hub_log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));

    let (phase, calm, settle) = if quick { ("5", "10", "2") } else { ("8", "16", "3") };
    let mut load_args = vec![
        "abuse".to_owned(),
        "--target".into(),
        addr.to_string(),
        "--server-pid".into(),
        hub_process.0.id().to_string(),
        "--phase".into(),
        phase.into(),
        "--calm".into(),
        calm.into(),
        "--settle".into(),
        settle.into(),
    ];
    if let Some(o) = &only {
        load_args.extend(["--only".into(), o.clone()]);
    }
    if let Some(b) = backend {
        load_args.extend(["--backend".into(), b.to_string()]);
    }
    // The attackers on the hub's CPU, at nice 19 (see the module docs).
    if pinned {
        load_args.extend(["--attacker-cpus".into(), hub_cpus.clone()]);
    }
    load_args.extend(["--hub-log".into(), hub_log.display().to_string()]);
    // A hub from before sessions were issued takes the names clients give.
    if !help.contains("--open-sessions") {
        load_args.push("--named-sessions".into());
    }
    let started = Instant::now();
    let load = target.join("release/natter-load");
    let mut generator = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", &load_cpus]).arg(&load);
        c
    } else {
        Command::new(&load)
    };
    let out =
        generator.args(&load_args).stderr(Stdio::inherit()).output().context("run natter-load abuse")?;
    drop(hub_process);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    if !out.status.success() {
        bail!("natter-load abuse failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(text.lines().last().unwrap_or_default())
        .with_context(|| format!("natter-load output {text:?}"))?;
    let table = render(&report);
    println!();
    println!("{table}");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let placement = if pinned {
        format!("hub on CPU {hub_cpus}, attackers there too at nice 19, honest clients on CPUs {load_cpus}")
    } else {
        "not pinned to CPUs".to_owned()
    };
    println!(
        "(hub: {}; {placement}; {} s per attack, {} s per calm phase; {:.0} s in all; load average now {})",
        hub.display(),
        phase,
        calm,
        started.elapsed().as_secs_f64(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    std::fs::write(logs.join("abuse.md"), &table).context("write abuse.md")?;
    Ok(())
}

/// Stops the hub when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The report as one Markdown table: one row for the baseline, then one per attack, its honest
/// p99 set against the calm phase just before it (the `calm` rows are folded into the attack's
/// row; their losses are summed in a last line). The calm phase's CPU time is shown scaled to
/// the attack phase's length, as calm phases last longer.
fn render(report: &Value) -> String {
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let p99 = |r: &Value| r["p99_ms"].as_f64().unwrap_or(0.0);
    let mut out = String::from(
        "| attack | hub peak RSS | honest p99: calm before → during | hub CPU: calm → during | honest lost | honest connects failed | what the attacker got |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
    );
    let (mut calm_lost, mut calm_expected, mut ratios) = (0, 0, Vec::new());
    let mut before: Option<f64> = None;
    let mut cpu_before: Option<f64> = None;
    let cpu = |r: &Value| r["hub_cpu_ms"].as_u64().map(|ms| ms as f64);
    // Older reports have no phase lengths: the CPU times are then shown as they are.
    let seconds = |r: &Value| r["seconds"].as_f64().filter(|s| *s > 0.0);
    for r in &rows {
        if r["attack"] == "calm" {
            before = Some(p99(r));
            cpu_before = cpu(r).map(|ms| ms / seconds(r).unwrap_or(1.0));
            calm_lost += r["lost"].as_u64().unwrap_or(0);
            calm_expected += r["expected"].as_u64().unwrap_or(0);
            continue;
        }
        let rss = r["peak_rss_kib"].as_f64().map_or("—".into(), |k| format!("{:.0} MiB", k / 1024.0));
        let during = p99(r);
        let latency = match before.take() {
            Some(calm) if calm > 0.0 => {
                ratios.push(during / calm);
                format!("{calm:.2} → {during:.2} ms ×{:.2}", during / calm)
            }
            _ => format!("{during:.2} ms"),
        };
        // CPU time is what the machine's other load disturbs least: it says what the attack cost
        // the hub, where the p99 also says how the hub shared it out.
        let hub_cpu = match (cpu_before.take(), cpu(r)) {
            (Some(calm), Some(during)) => {
                format!("{:.2} → {:.2} s", calm * seconds(r).unwrap_or(1.0) / 1e3, during / 1e3)
            }
            (None, Some(during)) => format!("{:.2} s", during / 1e3),
            _ => "—".into(),
        };
        let lost = r["lost"].as_u64().unwrap_or(0);
        let expected = r["expected"].as_u64().unwrap_or(0);
        let dropped = r["dropped"].as_u64().unwrap_or(0);
        let dropped = if dropped > 0 { format!(", {dropped} clients dropped") } else { String::new() };
        out.push_str(&format!(
            "| {} — {} | {rss} | {latency} | {hub_cpu} | {lost} of {expected}{dropped} | {} of {} | {} |\n",
            r["attack"].as_str().unwrap_or("?"),
            r["what"].as_str().unwrap_or(""),
            r["connects_failed"].as_u64().unwrap_or(0),
            r["connects"].as_u64().unwrap_or(0),
            r["attacker"].as_str().unwrap_or(""),
        ));
    }
    let worst = ratios.iter().copied().fold(0.0_f64, f64::max);
    out.push_str(&format!(
        "\nCalm phases: {calm_lost} of {calm_expected} honest messages lost. Highest p99 ratio, attack against the calm phase before it: ×{worst:.2}.\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn each_attack_is_set_against_the_calm_phase_just_before_it() {
        let row = |attack: &str, p99: f64, lost: u64| {
            json!({"attack": attack, "what": "w", "p99_ms": p99, "expected": 100, "lost": lost,
                   "dropped": 0, "connects": 0, "connects_failed": 0, "attacker": "-", "hub_cpu_ms": 250})
        };
        let report = json!({"rows": [
            row("baseline", 1.0, 0),
            row("calm", 4.0, 1),
            row("1 ids", 6.0, 0),
            row("calm", 2.0, 0),
            row("2a sessions", 5.0, 0),
        ]});
        let table = render(&report);
        assert!(table.contains("4.00 → 6.00 ms ×1.50"), "{table}");
        assert!(table.contains("2.00 → 5.00 ms ×2.50"), "{table}");
        assert!(table.contains("| 0.25 → 0.25 s |"), "the hub's CPU time, calm → during: {table}");
        assert!(!table.contains("| calm"), "calm phases are folded into the attack rows: {table}");
        assert!(table.contains("Calm phases: 1 of 200 honest messages lost"), "{table}");
        assert!(table.contains("×2.50."), "the worst ratio is reported: {table}");
        // A calm phase twice as long as the attack's: its CPU time is shown per attack phase.
        let mut calm = row("calm", 2.0, 0);
        calm["seconds"] = json!(16.0);
        let mut attack = row("9 backend", 3.0, 0);
        attack["seconds"] = json!(8.0);
        let scaled = render(&json!({"rows": [row("baseline", 1.0, 0), calm, attack]}));
        assert!(scaled.contains("| 0.12 → 0.25 s |"), "calm CPU scaled to the attack's 8 s: {scaled}");
    }
}
