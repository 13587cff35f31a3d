//! Finding and installing what the build, test and bench pipelines need.
//!
//! The rule: install what can be installed without asking (the wasm32 target, the pinned
//! wasm-bindgen CLI, npm packages, and Debian packages when running as root with apt-get, as CI
//! does), and otherwise stop with a message that says exactly what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into())
}

/// Runs a command in the workspace root, echoing it, and fails if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(root());
    }
    println!("$ {}", display(cmd));
    let status = cmd.status().with_context(|| format!("could not start {}", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", display(cmd));
    }
    Ok(())
}

fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// `cargo ARGS…` in the workspace root, with the same toolchain that runs xtask.
pub fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(args))
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    which(program).is_some()
}

/// The full path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Makes sure the Debian packages providing `programs` are installed: installs them with
/// apt-get when running as root (CI, these machines), otherwise names the command to run.
pub fn ensure_debian(programs: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = programs.iter().filter(|(prog, _)| !have(prog)).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    if is_root && have("apt-get") {
        println!("installing Debian packages: {}", missing.join(" "));
        run(Command::new("apt-get").arg("update").arg("-qq"))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        return Ok(());
    }
    bail!("missing system packages; install them with:\n    sudo apt-get install -y {}", missing.join(" "))
}

/// The wasm-bindgen version pinned in Cargo.lock (the CLI must match it exactly).
pub fn wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package; build the widget once (cargo build -p natter-widget)")
}

/// The wasm32 target and the wasm-bindgen CLI matching Cargo.lock, installed if missing.
pub fn ensure_wasm_toolchain() -> Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("wasm32-unknown-unknown") => {}
        Ok(_) => run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?,
        Err(_) => bail!("rustup not found: install the wasm32 target with your toolchain manager"),
    }
    let want = wasm_bindgen_version()?;
    let have = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if have != format!("wasm-bindgen {want}") {
        println!("installing wasm-bindgen-cli {want} (found {have:?}); this takes about 3 minutes");
        cargo(&["install", "wasm-bindgen-cli", "--version", &format!("={want}")])?;
    }
    Ok(())
}

/// Everything `cargo xtask test` needs, installed where possible.
pub fn ensure_all() -> Result<()> {
    ensure_debian(&[
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
        ("wasm-opt", "binaryen"),
        ("redis-server", "redis-server"),
        ("node", "nodejs"),
        ("npm", "npm"),
    ])?;
    ensure_wasm_toolchain()
}

/// `cargo doc` with warnings denied.
pub fn doc() -> Result<()> {
    run(Command::new("cargo")
        .args(["doc", "--workspace", "--no-deps", "--document-private-items"])
        .env("RUSTDOCFLAGS", "-D warnings"))
}

/// `npm install` in `dir` when its node_modules is missing or older than its lock file. Never downloads a browser.
pub fn ensure_npm(dir: &Path) -> Result<()> {
    let lock = dir.join("package-lock.json");
    let modules = dir.join("node_modules");
    let stale = match (std::fs::metadata(&lock).and_then(|m| m.modified()), std::fs::metadata(&modules)) {
        (Ok(lock_time), Ok(m)) => m.modified().map(|t| t < lock_time).unwrap_or(true),
        (_, Err(_)) => true,
        (Err(_), Ok(_)) => false,
    };
    if stale {
        // `npm install`, not `npm ci`: it installs the locked versions just the same, but
        // tolerates lock files written with `omit-lockfile-registry-resolved` (set on these
        // machines), where `npm ci` wrongly reports optional platform packages as missing.
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))?;
    }
    Ok(())
}

/// The widget's wasm-bindgen tests in real headless Chromium.
pub fn widget_browser_tests() -> Result<()> {
    let chromedriver =
        which("chromedriver").context("chromedriver not found (apt-get install chromium-driver)")?;
    run(Command::new("cargo")
        .args(["test", "-p", "natter-widget", "--target", "wasm32-unknown-unknown"])
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", "wasm-bindgen-test-runner")
        .env("CHROMEDRIVER", chromedriver)
        .env("WASM_BINDGEN_TEST_TIMEOUT", "120")
        .current_dir(root()))
}

/// Builds the example apps that have a build step; each installs the package from `npm/`.
pub fn build_examples() -> Result<()> {
    for name in ["vite", "react", "collab"] {
        let dir = root().join("examples").join(name);
        if !dir.join("package.json").exists() {
            bail!("examples/{name}/package.json is missing");
        }
        ensure_npm(&dir)?;
        run(Command::new("npm").args(["run", "build"]).current_dir(&dir))?;
    }
    Ok(())
}

/// The end-to-end tests: Playwright driving /usr/bin/chromium against a real hub.
pub fn e2e() -> Result<()> {
    let dir = root().join("tests/e2e");
    ensure_npm(&dir)?;
    cargo(&["build", "-p", "natter-hub"])?;
    run(Command::new("npx").args(["playwright", "test"]).current_dir(&dir).env("NATTER_ROOT", root()))
}
