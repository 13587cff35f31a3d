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
    // Daemons such as nginx live in /usr/sbin, which a user's PATH may lack.
    let installed = |prog: &str| have(prog) || Path::new("/usr/sbin").join(prog).is_file();
    let missing: Vec<&str> =
        programs.iter().filter(|(prog, _)| !installed(prog)).map(|(_, pkg)| *pkg).collect();
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
        // The deploy guide's end-to-end test puts a real nginx, with a throwaway TLS
        // certificate, in front of the hub.
        ("nginx", "nginx"),
        ("openssl", "openssl"),
        // It also checks the guide's systemd unit with `systemd-analyze verify`.
        ("systemd-analyze", "systemd"),
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

/// `npm ci` in `dir` when its node_modules is missing or older than its lock file: exactly the
/// locked versions, and the lock file is never rewritten (a test run leaves the tree as it
/// found it). Never downloads a browser.
///
/// The lock files are complete: they list the optional platform packages of every platform
/// (esbuild's and rollup's binaries), because they were written by a fresh install, not by an
/// update of one machine's node_modules — npm then records only that machine's platform and
/// `npm ci` elsewhere fails with "missing from lock file". To update one, delete it and
/// node_modules and run `npm install` again. They carry no `resolved` registry addresses, so
/// they work with whatever registry an npm is configured for.
pub fn ensure_npm(dir: &Path) -> Result<()> {
    let lock = dir.join("package-lock.json");
    if !lock.exists() {
        bail!("{} is missing: npm ci installs from it", lock.display());
    }
    // npm's own record of what it installed: newer than the lock file when up to date.
    let installed = dir.join("node_modules").join(".package-lock.json");
    let fresh = match (std::fs::metadata(&lock).and_then(|m| m.modified()), std::fs::metadata(&installed)) {
        (Ok(lock_time), Ok(m)) => m.modified().map(|t| t >= lock_time).unwrap_or(false),
        _ => false,
    };
    if !fresh {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
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

/// Installs and builds the example apps that have a build step. Each installs the package from
/// `npm/` as a copy (their `.npmrc` sets `install-links`), so `npm ci` runs every time: it
/// copies in the widget just built.
pub fn build_examples() -> Result<()> {
    for name in ["vite", "react", "collab"] {
        let dir = root().join("examples").join(name);
        if !dir.join("package.json").exists() {
            bail!("examples/{name}/package.json is missing");
        }
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))?;
        run(Command::new("npm").args(["run", "build"]).current_dir(&dir))?;
    }
    Ok(())
}

/// The npm package as it would be published: `npm publish --dry-run` (which runs the package's
/// `prepack` check and lists the files) must pass, and the tarball must hold the widget, the
/// types, the licenses and the changelog.
pub fn package() -> Result<()> {
    let dir = root().join("npm");
    let out = Command::new("npm")
        .args(["publish", "--dry-run", "--json"])
        .current_dir(&dir)
        .output()
        .context("running npm publish --dry-run in npm/")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("`npm publish --dry-run` failed in npm/:\n{stderr}");
    }
    // npm warns about what it would fix in package.json ("npm warn publish …"); that it is
    // not logged in to a registry is the machine's business, not the package's.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("npm warn") && !l.contains("requires you to be logged in"))
        .collect();
    if !warnings.is_empty() {
        bail!("`npm publish --dry-run` warns:\n{}", warnings.join("\n"));
    }
    let report = String::from_utf8_lossy(&out.stdout);
    for file in [
        "dist/index.js",
        "dist/index.d.ts",
        "dist/natter.js",
        // Both builds of the widget: the support chat alone, and with rooms (its glue alone, and
        // bundled with the collaboration panel).
        "dist/natter_widget.js",
        "dist/natter_widget_bg.wasm",
        "dist/natter_widget_rooms.js",
        "dist/natter_widget_rooms_bg.wasm",
        "dist/natter_widget_rooms_panel.js",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "CHANGELOG.md",
        "README.md",
        "package.json",
    ] {
        if !report.contains(&format!("\"path\": \"{file}\"")) {
            bail!("the package would not contain {file}:\n{report}");
        }
    }
    println!("npm/ would publish cleanly:");
    for line in report.lines().filter(|l| l.contains("\"path\"")) {
        println!("  {}", line.trim().trim_start_matches("\"path\": ").trim_end_matches(','));
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
