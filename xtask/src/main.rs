//! `cargo xtask …`: the project's build, demo, test and bench commands.
//!
//! # Layout
//! - `main.rs` — argument dispatch and the `demo` / `test` pipelines.
//! - `tools.rs` — finding and installing what the pipelines need (wasm32 target, the pinned
//!   wasm-bindgen CLI, npm packages, Debian packages) with clear messages where it cannot.
//! - `widget.rs` — `build`: the wasm widget into `npm/dist`; `bench size`.
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
fn demo(hub_args: &[String]) -> Result<()> {
    tools::ensure_wasm_toolchain()?;
    widget::build(true)?;
    tools::cargo(&["build", "--release", "-p", "natter-hub"])?;
    let root = tools::root();
    let listen = hub_args
        .windows(2)
        .find(|w| w[0] == "--listen")
        .map(|w| w[1].clone())
        .or_else(|| std::env::var("NATTER_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    println!();
    println!("  Natter demo: http://{listen}/");
    println!("  Open it, press Ctrl+Shift+C (or click the launcher) and say hello. Ctrl+C stops the hub.");
    println!();
    let mut cmd = Command::new(root.join("target/release/natter-hub"));
    cmd.current_dir(&root);
    if !hub_args.iter().any(|a| a == "--assets") {
        cmd.args(["--assets", "npm/dist"]);
    }
    if !hub_args.iter().any(|a| a == "--listen") {
        cmd.args(["--listen", &listen]);
    }
    cmd.args(hub_args);
    let status = cmd.status().context("starting target/release/natter-hub")?;
    if !status.success() {
        bail!("natter-hub exited with {status}");
    }
    Ok(())
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
            run: || tools::cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        },
        Step {
            name: "clippy-wasm",
            run: || {
                tools::cargo(&[
                    "clippy",
                    "-p",
                    "natter-widget",
                    "--all-targets",
                    "--target",
                    "wasm32-unknown-unknown",
                    "--",
                    "-D",
                    "warnings",
                ])
            },
        },
        Step { name: "doc", run: tools::doc },
        Step { name: "unit+integration", run: || tools::cargo(&["test", "--workspace", "--all-targets"]) },
        Step { name: "widget-build", run: || widget::build(true) },
        Step { name: "widget-browser", run: tools::widget_browser_tests },
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
