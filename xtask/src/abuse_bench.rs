//! `cargo xtask bench abuse [--quick] [--hub PATH] [--only 1,2a,…]`: the release hub under
//! every attack of `natter-load abuse` in turn while 200 honest clients chat, printed as one
//! table: attack, hub peak RSS, honest p99 during the attack against the baseline, honest
//! messages lost, fresh honest connections that failed, and what the attacker got.
//!
//! The hub runs with its defaults except: an in-memory database, an open-file limit of 1,024
//! (the common service default, which a connection flood used to exhaust), a 5 s idle
//! timeout with 1 s pings, so a peer that never reads is due within one phase, and the LLM
//! reply backend pointed at `natter-load` itself (an OpenAI-compatible double that answers
//! honest visitors at once and the reply-engine attacks as a hostile or broken backend would),
//! with `--reply-timeout 5s --reply-idle-timeout 3s` so a reply's deadline falls within a
//! phase. Sessions are issued by the hub, as in production. `--hub` runs another build
//! instead (an older one, to see the attacks land): flags it does not know are left out, a hub
//! that does not issue sessions gets named ones, and one without the reply-engine bounds skips
//! attacks 8 and 9. Nothing is asserted: the machine is shared, so this prints figures.

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
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--hub" => hub_path = Some(it.next().context("--hub needs a path")?.into()),
            "--only" => only = Some(it.next().context("--only needs a list like 1,2a")?.clone()),
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask bench abuse [--quick] [--hub PATH] [--only 1,2a,2b,3,4,5,6,7,8,9]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; try `cargo xtask bench abuse --help`"),
        }
    }
    let root = crate::tools::root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "--quiet", "-p", "natter-hub", "-p", "natter-load"])
        .status()
        .context("cargo build")?;
    if !status.success() {
        bail!("building natter-hub and natter-load failed");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let hub = hub_path.unwrap_or_else(|| target.join("release/natter-hub"));
    let logs = target.join("bench");
    std::fs::create_dir_all(&logs)?;
    let help = Command::new(&hub).arg("--help").output().context("natter-hub --help")?;
    let help = String::from_utf8_lossy(&help.stdout).into_owned();

    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let mut flags = vec!["--listen".to_owned(), addr.to_string(), "--idle-timeout".into(), "5s".into()];
    flags.extend(["--ping-interval".into(), "1s".into()]);
    if help.contains("--db") {
        flags.extend(["--db".into(), ":memory:".into()]);
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
    let hub_log = logs.join("abuse-hub.log");
    let quoted: Vec<String> = flags.iter().map(|f| format!("'{f}'")).collect();
    let log = std::fs::File::create(&hub_log)?;
    // `exec` keeps the PID, so the generator reads the hub's own RSS.
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 1024 && exec '{}' {}", hub.display(), quoted.join(" ")))
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

    let (phase, settle) = if quick { ("5", "2") } else { ("8", "3") };
    let mut load_args = vec![
        "abuse".to_owned(),
        "--target".into(),
        addr.to_string(),
        "--server-pid".into(),
        hub_process.0.id().to_string(),
        "--phase".into(),
        phase.into(),
        "--settle".into(),
        settle.into(),
    ];
    if let Some(o) = &only {
        load_args.extend(["--only".into(), o.clone()]);
    }
    if let Some(b) = backend {
        load_args.extend(["--backend".into(), b.to_string()]);
    }
    load_args.extend(["--hub-log".into(), hub_log.display().to_string()]);
    // A hub from before sessions were issued takes the names clients give.
    if !help.contains("--open-sessions") {
        load_args.push("--named-sessions".into());
    }
    let started = Instant::now();
    let out = Command::new(target.join("release/natter-load"))
        .args(&load_args)
        .stderr(Stdio::inherit())
        .output()
        .context("run natter-load abuse")?;
    drop(hub_process);
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
    println!(
        "(hub: {}; {} s per phase; {:.0} s in all; load average now {})",
        hub.display(),
        phase,
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

/// The report as one Markdown table.
fn render(report: &Value) -> String {
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let baseline_p99 = rows.first().and_then(|r| r["p99_ms"].as_f64()).unwrap_or(0.0);
    let mut out = String::from(
        "| attack | hub peak RSS | honest p99 (baseline) | honest lost | honest connects failed | what the attacker got |\n\
         |---|---:|---:|---:|---:|---|\n",
    );
    for r in &rows {
        let rss = r["peak_rss_kib"].as_f64().map_or("—".into(), |k| format!("{:.0} MiB", k / 1024.0));
        let p99 = r["p99_ms"].as_f64().unwrap_or(0.0);
        let ratio = if baseline_p99 > 0.0 { format!(" ×{:.2}", p99 / baseline_p99) } else { String::new() };
        let lost = r["lost"].as_u64().unwrap_or(0);
        let expected = r["expected"].as_u64().unwrap_or(0);
        let dropped = r["dropped"].as_u64().unwrap_or(0);
        let dropped = if dropped > 0 { format!(", {dropped} clients dropped") } else { String::new() };
        out.push_str(&format!(
            "| {} — {} | {rss} | {p99:.2} ms ({baseline_p99:.2}){ratio} | {lost} of {expected}{dropped} | {} of {} | {} |\n",
            r["attack"].as_str().unwrap_or("?"),
            r["what"].as_str().unwrap_or(""),
            r["connects_failed"].as_u64().unwrap_or(0),
            r["connects"].as_u64().unwrap_or(0),
            r["attacker"].as_str().unwrap_or(""),
        ));
    }
    out
}
