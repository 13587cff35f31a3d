//! `cargo xtask …`: the project's build, demo, test and bench commands.
//!
//! # Layout
//! - `main.rs` — argument dispatch and the `demo` / `test` pipelines.
//! - `tools.rs` — finding and installing what the pipelines need (wasm32 target, the pinned
//!   wasm-bindgen CLI, npm packages, Debian packages) with clear messages where it cannot.
//! - `widget.rs` — `build`: the wasm widget into `npm/dist`; `bench size`; `bench cursor`.
//! - `bench.rs` — `bench [--quick] [idle|broadcast|fanout|churn]`: natter-hub vs Socket.IO.
//! - `store_bench.rs` — `bench store`: SQLite throughput and Redis latency.
//! - `abuse_bench.rs` — `bench abuse`: every attack in turn while honest clients chat.

mod abuse_bench;
mod bench;
mod store_bench;
mod tools;
mod widget;

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

  build              build the widget (wasm + npm package + script tag) into npm/dist
  demo [HUB ARGS…]   build the widget, start the hub with the demo page, print the URL
  test               every check CI runs (fmt, clippy, docs, unit, integration, browser, e2e)
  bench size         gzip size of what a page downloads for the widget, launcher timing
  bench cursor       browser-to-browser cursor relay latency over loopback (p50/p99)
  bench store        SQLite acknowledged messages/s and the latency Redis adds
  bench abuse [--quick] [--hub PATH] [--only 1,2a,…]
                     every attack in turn while 200 honest clients chat: RSS, p99, losses
  bench [--quick] [idle|broadcast|fanout|churn]
                     natter-hub against a Socket.IO 4.8 peer, one table with ratios
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => widget::build(true),
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("size") => widget::bench_size(),
            Some("cursor") => widget::bench_cursor(),
            Some("store") => store_bench::run(&args[2..]),
            Some("abuse") => abuse_bench::run(&args[2..]),
            _ => bench::run(&args[1..]),
        },
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// Builds the widget and the hub, then runs the hub in the foreground with the demo page.
///
/// The port is checked before anything is built (a busy port used to cost minutes of building
/// before "Address already in use"), and the demo's database lives under `target/`, out of the
/// way of the repository's own files.
fn demo(hub_args: &[String]) -> Result<()> {
    let root = tools::root();
    let listen = hub_flag(hub_args, "--listen")
        .or_else(|| std::env::var("NATTER_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    // The hub takes an address, not a host name: say so now rather than after the build.
    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
        anyhow::anyhow!(
            "--listen {listen:?} is not an address and port the hub accepts (for example 127.0.0.1:8081)"
        )
    })?;
    if let Err(e) = std::net::TcpListener::bind(addr) {
        let other = std::net::SocketAddr::new(addr.ip(), addr.port().checked_add(1).unwrap_or(8081));
        bail!(
            "cannot listen on {listen}: {e}.\n\
             Is a hub (or another server) already running there? Stop it, or pick another port:\n    \
             cargo xtask demo --listen {other}"
        );
    }
    let first_run = !root.join("target/release/natter-hub").exists();
    println!(
        "xtask demo: building the widget (Rust → WebAssembly) and the hub (release){}",
        if first_run {
            "; the first run compiles everything and takes a few minutes, later runs take seconds"
        } else {
            ""
        }
    );
    tools::ensure_wasm_toolchain()?;
    widget::build(true)?;
    tools::cargo(&["build", "--release", "-p", "natter-hub"])?;
    let mut cmd = Command::new(root.join("target/release/natter-hub"));
    cmd.current_dir(&root);
    // A flag given twice is an error to the hub, so only what the user left out is added.
    if hub_flag(hub_args, "--assets").is_none() {
        cmd.args(["--assets", "npm/dist"]);
    }
    if hub_flag(hub_args, "--listen").is_none() {
        cmd.args(["--listen", &listen]);
    }
    if hub_flag(hub_args, "--db").is_none() && std::env::var_os("NATTER_DB").is_none() {
        let dir = root.join("target").join("demo");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        cmd.arg("--db").arg(dir.join("natter.db"));
    }
    cmd.args(hub_args);
    println!();
    println!("  Natter demo: http://{listen}/");
    println!("  Open it, press Ctrl+Shift+C (or click the launcher) and say hello. Ctrl+C stops the hub.");
    println!();
    let status = cmd.status().context("starting target/release/natter-hub")?;
    if !status.success() {
        bail!("natter-hub exited with {status}");
    }
    Ok(())
}

/// The value of the hub flag `name` (`--listen`) in `args`, written either way the hub accepts
/// it: `--listen 127.0.0.1:9000` or `--listen=127.0.0.1:9000`. `None` when it is not given;
/// `Some("")` when it is given without a value (the hub then says what is missing).
fn hub_flag(args: &[String], name: &str) -> Option<String> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == name {
            return Some(rest.next().cloned().unwrap_or_default());
        }
        if let Some(value) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(value.to_string());
        }
    }
    None
}

/// One step of `cargo xtask test`.
struct Step {
    name: &'static str,
    run: fn() -> Result<()>,
}

/// Every check CI runs, in the order that fails fastest.
fn test(args: &[String]) -> Result<()> {
    let only: Option<&str> = args.iter().find(|a| !a.starts_with('-')).map(String::as_str);
    let steps = [
        Step { name: "tools", run: tools::ensure_all },
        Step { name: "fmt", run: || tools::cargo(&["fmt", "--all", "--check"]) },
        Step {
            name: "clippy",
            run: || {
                tools::cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
                // The widget's support-only build (see clippy-wasm).
                let no_rooms =
                    ["-p", "natter-widget", "--all-targets", "--no-default-features", "--features=std"];
                tools::cargo(&[&["clippy"][..], &no_rooms, &["--", "-D", "warnings"]].concat())
            },
        },
        Step {
            name: "clippy-wasm",
            run: || {
                // Both builds a page may download, with rooms and the support chat alone, so that
                // neither rots: with `std`, as the tests build them (every target), and as they
                // ship, without `std` (the library: tests link `std`).
                let builds: [&[&str]; 4] = [
                    &["--all-targets"],
                    &["--all-targets", "--no-default-features", "--features=std"],
                    &["--lib", "--no-default-features", "--features=rooms"],
                    &["--lib", "--no-default-features"],
                ];
                for features in builds {
                    let mut args = vec!["clippy", "-p", "natter-widget"];
                    args.extend(features);
                    args.extend(["--target", "wasm32-unknown-unknown", "--", "-D", "warnings"]);
                    tools::cargo(&args)?;
                }
                Ok(())
            },
        },
        Step { name: "doc", run: tools::doc },
        Step {
            name: "unit+integration",
            run: || {
                tools::cargo(&["test", "--workspace", "--all-targets"])?;
                // The widget's state machine without rooms (the support-only build): its
                // support-chat tests must hold there too.
                tools::cargo(&["test", "-p", "natter-widget", "--no-default-features", "--features=std"])
            },
        },
        Step { name: "widget-build", run: || widget::build(true) },
        Step { name: "widget-browser", run: tools::widget_browser_tests },
        Step { name: "package", run: tools::package },
        Step { name: "examples", run: tools::build_examples },
        Step { name: "e2e", run: tools::e2e },
    ];
    let started = Instant::now();
    let mut passed = 0;
    for step in steps.iter().filter(|s| only.is_none_or(|o| o == s.name)) {
        println!("\n==> xtask test: {}", step.name);
        let t = Instant::now();
        if let Err(e) = (step.run)() {
            println!("\n==> xtask test: step {:?} FAILED after {:.0?}: {e:#}", step.name, t.elapsed());
            println!("{passed} passed, 1 failed");
            std::process::exit(1);
        }
        passed += 1;
        println!("==> xtask test: {} ok ({:.0?})", step.name, t.elapsed());
    }
    println!("\n==> xtask test: every step passed in {:.0?}", started.elapsed());
    println!("{passed} passed, 0 failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::hub_flag;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hub_flags_are_found_in_both_spellings() {
        let spaced = args(&["--listen", "127.0.0.1:9000", "--db", ":memory:"]);
        assert_eq!(hub_flag(&spaced, "--listen").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(hub_flag(&spaced, "--db").as_deref(), Some(":memory:"));
        // `--listen=…` is as much the hub's syntax as `--listen …`: the demo must check that
        // port, and must not add a second `--listen` (which the hub refuses after the build).
        let joined = args(&["--listen=127.0.0.1:9000", "--db=:memory:", "--assets=dist"]);
        assert_eq!(hub_flag(&joined, "--listen").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(hub_flag(&joined, "--db").as_deref(), Some(":memory:"));
        assert_eq!(hub_flag(&joined, "--assets").as_deref(), Some("dist"));
    }

    #[test]
    fn other_flags_and_values_are_not_mistaken_for_one() {
        // A longer flag with the same start, another flag's value, a flag without a value.
        assert_eq!(hub_flag(&args(&["--listen-backlog=5"]), "--listen"), None);
        assert_eq!(hub_flag(&args(&["--rules", "listen.toml"]), "--listen"), None);
        assert_eq!(hub_flag(&args(&["--reply-delay", "0"]), "--listen"), None);
        assert_eq!(hub_flag(&args(&["--listen"]), "--listen").as_deref(), Some(""));
    }
}
