//! `cargo xtask build` and `cargo xtask bench size`: the widget's build into `npm/dist/` and
//! its size / load-time benchmark.
//!
//! Build: natter-widget → wasm32 (`wasm-release` profile) → `wasm-bindgen --target web` →
//! `wasm-opt -Oz` → `npm/dist/` together with the hand-written ESM entry, types and the
//! script-tag loader from `npm/src/`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm-bindgen version the widget pins; the CLI must match it exactly.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const TARGET: &str = "wasm32-unknown-unknown";
/// What a page downloads for the widget, in load order.
const DOWNLOADED: &[&str] = &["natter.js", "index.js", "natter_widget.js", "natter_widget_bg.wasm"];
/// The size budget from issue 3: everything a page downloads, gzip.
const BUDGET_BYTES: u64 = 60 * 1024;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// `npm/dist/`.
pub fn dist_dir() -> PathBuf {
    root().join("npm").join("dist")
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn ensure_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET) => Ok(()),
        Ok(_) => {
            eprintln!("xtask: adding the {TARGET} target (rustup target add {TARGET})");
            run(Command::new("rustup").args(["target", "add", TARGET]))
        }
        // No rustup (a distro toolchain): let cargo say whether the target is there.
        Err(_) => Ok(()),
    }
}

fn ensure_wasm_bindgen() -> Result<()> {
    let version = Command::new("wasm-bindgen").arg("--version").output().ok();
    let found = version.as_ref().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match found.as_deref() {
        Some(v) if v.ends_with(WASM_BINDGEN_VERSION) => return Ok(()),
        Some(v) => eprintln!("xtask: found {v}, but the widget pins wasm-bindgen {WASM_BINDGEN_VERSION}"),
        None => eprintln!("xtask: wasm-bindgen CLI not found in PATH"),
    }
    eprintln!(
        "xtask: installing it: cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION} --locked \
         (a few minutes, once)"
    );
    run(Command::new(cargo()).args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION, "--locked"]))
        .context("installing wasm-bindgen-cli failed; install it by hand with the command above")
}

fn wasm_opt(file: &Path) -> Result<()> {
    if Command::new("wasm-opt").arg("--version").output().is_err() {
        bail!("wasm-opt not found: install binaryen (Debian/Ubuntu: `apt-get install binaryen`, macOS: `brew install binaryen`)");
    }
    // The features rustc enables by default for wasm32-unknown-unknown; wasm-opt must accept
    // them in its input.
    run(Command::new("wasm-opt").arg("-Oz").args([
        "--enable-bulk-memory",
        "--enable-mutable-globals",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "--enable-reference-types",
        "--enable-multivalue",
    ])
    .arg(file)
    .arg("-o")
    .arg(file))
}

/// Builds the widget into `npm/dist/`. `release`: the size-optimised profile plus `wasm-opt`;
/// otherwise a quick debug build.
pub fn build(release: bool) -> Result<()> {
    ensure_target()?;
    ensure_wasm_bindgen()?;
    let root = root();
    let profile = if release { "wasm-release" } else { "dev" };
    run(Command::new(cargo()).current_dir(&root).args([
        "build",
        "--target",
        TARGET,
        "--profile",
        profile,
        "-p",
        "natter-widget",
    ]))?;
    let profile_dir = if release { "wasm-release" } else { "debug" };
    let wasm = root.join("target").join(TARGET).join(profile_dir).join("natter_widget.wasm");
    let dist = dist_dir();
    std::fs::create_dir_all(&dist).with_context(|| format!("creating {}", dist.display()))?;
    run(Command::new("wasm-bindgen")
        .arg(&wasm)
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(&dist))?;
    if release {
        wasm_opt(&dist.join("natter_widget_bg.wasm"))?;
    }
    for file in ["index.js", "index.d.ts", "natter.js"] {
        let from = root.join("npm").join("src").join(file);
        std::fs::copy(&from, dist.join(file)).with_context(|| format!("copying {}", from.display()))?;
    }
    for file in DOWNLOADED {
        let len = std::fs::metadata(dist.join(file)).map(|m| m.len()).unwrap_or(0);
        println!("  {:<24} {:>8} bytes", file, len);
    }
    println!("widget built into {}", dist.display());
    Ok(())
}

fn gzip_len(bytes: &[u8]) -> Result<u64> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?.len() as u64)
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

/// Prints the gzip size of everything a page downloads for the widget against the budget, and
/// the time from script load to launcher visible in headless Chromium.
pub fn bench_size() -> Result<()> {
    let dist = dist_dir();
    if !dist.join("natter_widget_bg.wasm").exists() {
        build(true)?;
    }
    println!("what a page downloads for the widget (npm/dist; CSS is inside the wasm):");
    println!("  {:<24} {:>10} {:>10}", "file", "raw", "gzip -9");
    let (mut raw_total, mut gz_total) = (0, 0);
    for file in DOWNLOADED {
        let bytes = std::fs::read(dist.join(file)).with_context(|| format!("reading {file}"))?;
        let gz = gzip_len(&bytes)?;
        raw_total += bytes.len() as u64;
        gz_total += gz;
        println!("  {:<24} {:>10} {:>10}", file, kib(bytes.len() as u64), kib(gz));
    }
    println!("  {:<24} {:>10} {:>10}", "total", kib(raw_total), kib(gz_total));
    let verdict = if gz_total <= BUDGET_BYTES { "within" } else { "OVER" };
    println!(
        "  budget {}: {verdict} ({:.0}% used)",
        kib(BUDGET_BYTES),
        gz_total as f64 * 100.0 / BUDGET_BYTES as f64
    );
    launcher_timing()
}

fn launcher_timing() -> Result<()> {
    let scripts = root().join("npm").join("scripts");
    if !scripts.join("node_modules").join("playwright-core").exists() {
        eprintln!("xtask: installing playwright-core for the timing script (npm install in npm/scripts)");
        run(Command::new("npm").current_dir(&scripts).args(["install", "--no-audit", "--no-fund"]))
            .context("npm install in npm/scripts failed")?;
    }
    run(Command::new("node").current_dir(&scripts).arg("launcher-timing.mjs").arg(dist_dir()))
}
