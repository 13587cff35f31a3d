//! `natter-load abuse`: the attacks a hub on a public site has to withstand, one after the
//! other, while 200 honest clients chat (see `honest`), against a running hub.
//!
//! Timeline: the honest clients connect and warm up; a baseline phase with no attack; then, per
//! attack (see `attacks::ATTACKS`), a calm phase (`--calm`, twice an attack's phase by default:
//! the figure the attack is set against, from more samples) and the attack's phase (`--phase`),
//! each followed by a pause in which its last deliveries arrive. Before each calm phase the hub must have finished with
//! the attack before it: the run waits (at most [`QUIET_LIMIT`]) until the hub's CPU use over a
//! second is back near the baseline's, so a calm phase never measures the last attack's
//! after-effects (its replies, its connections closing, its conversations being forgotten).
//!
//! The attacker is measured as if it were another machine: the attacks, and the reply-engine
//! double they drive (see `backend`), run on a tokio runtime of their own whose threads run at
//! nice 19 (see `priority`), so neither an attack's busy tasks nor the CPU it takes to generate a
//! flood delays the honest clients' sends and reads, which would count the load generator's own
//! queueing as the hub's latency. Per phase: the hub's peak RSS (sampled from `/proc` every
//! 100 ms), the hub's CPU time, the honest send → receive p99, honest deliveries that never
//! happened and fresh honest connections that failed, and what the attacker got. Printed as one
//! JSON object for `cargo xtask bench abuse`.
//!
//! Sessions are the hub's to issue (a client connects without one and sends `auth`), as on a
//! production hub; `--named-sessions` names them instead, for hubs from before sessions were
//! issued. With `--backend`, the hub's LLM backend is this process (see `backend`), for the
//! reply-engine attacks.

mod attacks;
mod backend;
mod honest;
mod http;
mod priority;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

/// Arguments of `natter-load abuse`.
#[derive(Debug, Args)]
pub struct AbuseArgs {
    /// The hub, host:port on the loopback.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub target: SocketAddr,
    /// PID of the hub process, to read its RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seconds each attack phase (and the baseline) lasts.
    #[arg(long, default_value_t = 8.0)]
    pub phase: f64,
    /// Seconds each calm phase before an attack lasts: longer than an attack's phase, for more
    /// samples of the figure every attack is set against (an attack is bounded in count, so its
    /// own phase cannot be longer without diluting it).
    #[arg(long, default_value_t = 16.0)]
    pub calm: f64,
    /// Seconds between phases, for the last deliveries to arrive.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Only these attacks (by number as listed in the table: `1`, `2a`, …); default all.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Name sessions (`?session=<name>`) instead of asking the hub for them: for hubs from
    /// before sessions were issued.
    #[arg(long)]
    pub named_sessions: bool,
    /// Serve an OpenAI-compatible chat API here (the hub's `--llm-url` is `http://ADDR/v1`);
    /// the reply-engine attacks need it.
    #[arg(long)]
    pub backend: Option<SocketAddr>,
    /// The hub's log file, to count the warnings an attack causes.
    #[arg(long)]
    pub hub_log: Option<PathBuf>,
    /// Run the attackers (and the backend double) on these CPUs, e.g. the hub's: see
    /// `priority`. Default: wherever this process runs.
    #[arg(long, value_delimiter = ',')]
    pub attacker_cpus: Vec<usize>,
}

/// A WebSocket from `src` with a session of its own, its history read, and the session: issued
/// by the hub, or with `named` the name `name`.
async fn connect(
    target: SocketAddr,
    src: Ipv4Addr,
    named: bool,
    name: &str,
) -> anyhow::Result<(crate::wire::Ws, String)> {
    if named {
        let (ws, _) = crate::wire::open(crate::wire::Dialect::Natter, target, src, name).await?;
        Ok((ws, name.to_owned()))
    } else {
        crate::wire::open_issued(target, src, "/").await
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// `baseline`, `calm` (the phase just before an attack) or the attack's name.
    pub attack: String,
    /// What the attack does.
    pub what: String,
    /// Peak hub RSS during the phase (KiB).
    pub peak_rss_kib: Option<u64>,
    /// Honest send → receive p99 during the phase (ms).
    pub p99_ms: f64,
    /// CPU time the hub used during the phase (ms), without its settle pause.
    #[serde(default)]
    pub hub_cpu_ms: Option<u64>,
    /// How long the phase lasted (s), without its settle pause.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Seconds waited before a calm phase for the hub to finish with the attack before it.
    #[serde(default)]
    pub quiet_after_s: Option<f64>,
    /// Honest deliveries that should have happened in the phase.
    pub expected: u64,
    /// Honest deliveries that did not happen (or were swallowed as duplicates).
    pub lost: u64,
    /// Honest connections the hub closed during the phase.
    pub dropped: u64,
    /// Fresh honest connections that failed, of those tried.
    pub connects_failed: u64,
    /// Fresh honest connections tried.
    pub connects: u64,
    /// What the attacker got.
    pub attacker: String,
}

/// The whole report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AbuseReport {
    /// Baseline first, then per attack a `calm` row and the attack's row.
    pub rows: Vec<Row>,
}

/// Keeps the highest RSS seen since the last reset.
fn sample_rss(pid: Option<u32>, peak: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(pid) = pid else { return };
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if let Some(kib) = crate::rss_kib(pid) {
                peak.fetch_max(kib, Ordering::Relaxed);
            }
        }
    })
}

/// What one phase saw, besides the honest clients' figures.
struct Phase {
    name: String,
    what: String,
    /// Peak hub RSS (KiB).
    rss: Option<u64>,
    /// What the attacker got.
    got: String,
    hub_cpu_ms: Option<u64>,
    /// How long it lasted (s).
    seconds: f64,
    /// Seconds waited for a quiet hub before it.
    quiet: Option<f64>,
}

/// Longest wait for the hub to be quiet again before a calm phase.
const QUIET_LIMIT: Duration = Duration::from_secs(20);

/// CPU ticks (`/proc/PID/stat`, 100 a second) the hub may use in one second and count as quiet:
/// its baseline rate, with some slack for a shared machine.
fn quiet_rate(baseline_per_sec: f64) -> f64 {
    (baseline_per_sec * 2.0).max(baseline_per_sec + 5.0)
}

/// Waits until the hub uses no more CPU than `quiet_rate` over a whole second (at most
/// [`QUIET_LIMIT`]); the seconds waited.
async fn until_quiet(pid: u32, baseline_per_sec: f64) -> f64 {
    let started = tokio::time::Instant::now();
    let mut before = crate::cpu_ticks(pid).unwrap_or(0);
    while started.elapsed() < QUIET_LIMIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = crate::cpu_ticks(pid).unwrap_or(0);
        if (now.saturating_sub(before) as f64) <= quiet_rate(baseline_per_sec) {
            break;
        }
        before = now;
    }
    started.elapsed().as_secs_f64()
}

/// Runs the baseline and every attack; the report.
pub async fn run(args: AbuseArgs) -> anyhow::Result<AbuseReport> {
    let tag = format!("a{}", crate::wire::now_ns() / 1_000_000 % 100_000_000);
    let phase = Duration::from_secs_f64(args.phase);
    let calm = Duration::from_secs_f64(args.calm);
    let settle = Duration::from_secs_f64(args.settle);
    // The attacks, and the backend double they drive, run on a runtime of their own whose
    // threads (workers and blocking threads alike) run at nice 19: on the honest clients'
    // runtime a busy attack task would delay honest sends and reads, and at the same priority
    // the CPU it takes to generate a flood would; either would count the load generator's own
    // queueing as the hub's latency. With `--attacker-cpus` they also run on the hub's CPU,
    // not the honest clients' (see `priority`).
    let attacker_cpus = args.attacker_cpus.clone();
    let attack_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("attacker")
        .on_thread_start(move || {
            let got = priority::lower_this_thread();
            if got != "nice 19" {
                eprintln!("abuse: an attacker thread runs at {got}");
            }
            if !attacker_cpus.is_empty() {
                let got = priority::pin_this_thread(&attacker_cpus);
                if !got.starts_with("CPUs") {
                    eprintln!("abuse: an attacker thread runs on {got}");
                }
            }
        })
        .enable_all()
        .build()?;
    let double = match args.backend {
        Some(addr) => Some(attack_runtime.spawn(backend::serve(addr)).await??),
        None => None,
    };
    eprintln!("abuse: connecting 200 honest clients to {}", args.target);
    let honest = honest::start(args.target, &tag, args.named_sessions).await?;
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = sample_rss(args.server_pid, peak.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    let chosen: Vec<usize> = (0..attacks::ATTACKS.len())
        .filter(|&i| {
            let number = attacks::ATTACKS[i].0.split(' ').next().unwrap_or_default();
            args.only.is_empty() || args.only.iter().any(|o| o == number)
        })
        .collect();
    // Phase 0 is the baseline; then, per attack, a calm phase (odd tags) right before the
    // attack's phase (even tags), so each attack is compared with the machine as it was just
    // before it, not only with the start of the run: on a shared machine the background load
    // drifts over minutes.
    let plan: Vec<Option<usize>> =
        std::iter::once(None).chain(chosen.iter().flat_map(|&i| [None, Some(i)])).collect();
    let mut phases: Vec<Phase> = Vec::new();
    let mut baseline_rate = None;
    for (step, attack) in plan.into_iter().enumerate() {
        let tag_now = u8::try_from(step).unwrap_or(honest::UNTAGGED - 1);
        let quiet = match (args.server_pid, baseline_rate, attack) {
            (Some(pid), Some(rate), None) => {
                let waited = until_quiet(pid, rate).await;
                eprintln!("abuse:   the hub was quiet after {waited:.1} s");
                Some(waited)
            }
            _ => None,
        };
        let cpu_before = args.server_pid.and_then(crate::cpu_ticks);
        let phase_started = tokio::time::Instant::now();
        peak.store(0, Ordering::Relaxed);
        honest.shared.phase.store(tag_now, Ordering::Relaxed);
        let (name, what, got) = match attack {
            None => {
                tokio::time::sleep(if tag_now == 0 { phase } else { calm }).await;
                let name = if tag_now == 0 { "baseline" } else { "calm" };
                (name.to_owned(), "no attack".to_owned(), "—".to_owned())
            }
            Some(index) => {
                let (name, what) = attacks::ATTACKS[index];
                eprintln!("abuse: attack {name}: {what}");
                let ctx = attacks::Ctx {
                    target: args.target,
                    duration: phase,
                    honest: honest.shared.clone(),
                    tag: format!("{tag}-{tag_now}"),
                    named: args.named_sessions,
                    backend: double.clone(),
                    hub_log: args.hub_log.clone(),
                };
                let started = tokio::time::Instant::now();
                let got = attack_runtime
                    .spawn(async move { attacks::run(index, &ctx).await })
                    .await
                    .unwrap_or_else(|e| format!("the attack failed: {e}"));
                tokio::time::sleep_until(started + phase).await;
                (name.to_owned(), what.to_owned(), got)
            }
        };
        honest.shared.phase.store(honest::UNTAGGED, Ordering::Relaxed);
        let ticks =
            cpu_before.zip(args.server_pid.and_then(crate::cpu_ticks)).map(|(a, b)| b.saturating_sub(a));
        let seconds = phase_started.elapsed().as_secs_f64();
        if step == 0 {
            baseline_rate = ticks.map(|t| t as f64 / seconds);
        }
        tokio::time::sleep(settle).await;
        let rss = args.server_pid.map(|_| peak.load(Ordering::Relaxed));
        eprintln!("abuse:   {name}: {got}");
        phases.push(Phase { name, what, rss, got, hub_cpu_ms: ticks.map(|t| t * 10), seconds, quiet });
    }
    // The last deliveries of the last phase.
    tokio::time::sleep(settle).await;
    sampler.abort();
    // Attack tasks may still be winding down; they are not waited for.
    attack_runtime.shutdown_background();
    let stats = honest.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
    let rows = phases
        .into_iter()
        .enumerate()
        .map(
            |(
                i,
                Phase {
                    name: attack,
                    what,
                    rss: peak_rss_kib,
                    got: attacker,
                    hub_cpu_ms,
                    seconds,
                    quiet: quiet_after_s,
                },
            )| {
                let s = stats.get(i);
                Row {
                    attack,
                    what,
                    peak_rss_kib,
                    p99_ms: s.map_or(0.0, |s| s.latency.value_at_quantile(0.99) as f64 / 1000.0),
                    hub_cpu_ms,
                    seconds: Some(seconds),
                    quiet_after_s,
                    expected: s.map_or(0, |s| s.expected),
                    lost: s.map_or(0, |s| s.expected.saturating_sub(s.received) + s.swallowed),
                    dropped: s.map_or(0, |s| s.dropped),
                    connects_failed: s.map_or(0, |s| s.connects_failed),
                    connects: s.map_or(0, |s| s.connects),
                    attacker,
                }
            },
        )
        .collect();
    Ok(AbuseReport { rows })
}
