//! The binary's surface: `--help` documents every flag with its default and variable; a bad
//! rules file is a clear startup error naming the file and the problem.

use std::process::Command;

fn hub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_natter-hub"))
}

#[test]
fn help_lists_flags_defaults_and_variables() {
    let out = hub().arg("--help").output().expect("run natter-hub --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "NATTER_LISTEN",
        "127.0.0.1:8080",
        "--allowed-origin",
        "NATTER_ALLOWED_ORIGINS",
        "--ring-size",
        "[default: 100]",
        "--max-frame",
        "65536",
        "--send-queue",
        "--ping-interval",
        "--idle-timeout",
        "--poll-timeout",
        "25s",
        "--rules",
        "NATTER_RULES",
        "--assets",
        "NATTER_ASSETS",
        "--rate-burst",
        "--trusted-proxy",
        "NATTER_TRUSTED_PROXIES",
        "--max-context",
        "[default: 8192]",
        "--ring-bytes",
        "--max-replay-bytes",
        "--max-conversations",
        "--header-timeout",
        "--max-connections",
        "--max-connections-per-address",
        "--max-polls",
        "--max-polls-per-address",
        "--address-rate-per-sec",
        "--address-rate-burst",
        "--address-connect-rate-per-sec",
        "--address-connect-burst",
        "--frame-budget",
        "--room-creations-per-hour",
        "--empty-room-ttl",
        "--api-key",
        "NATTER_API_KEY",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn bad_rules_file_stops_the_hub_with_a_clear_message() {
    let path = std::env::temp_dir().join(format!("natter-bad-rules-{}.toml", std::process::id()));
    std::fs::write(&path, "fallback = \"ok\"\n[[rule]]\ncategory = \"x\"\nkeywords = [\"a\"]\n")
        .expect("write");
    let out = hub()
        .args(["--listen", "127.0.0.1:0", "--rules"])
        .arg(&path)
        .env("RUST_LOG", "off")
        .output()
        .expect("run natter-hub");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&path.display().to_string()) && err.contains("reply"), "{err}");
    let out =
        hub().args(["--listen", "127.0.0.1:0", "--rules", "/nonexistent/rules.toml"]).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/rules.toml") && err.contains("cannot be read"), "{err}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn bad_flag_values_are_refused() {
    let out = hub().args(["--ping-interval", "soon"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
}

#[test]
fn allowed_origin_must_be_an_origin() {
    let out = hub()
        .args(["--listen", "127.0.0.1:0", "--allowed-origin", "example.com"])
        .env("RUST_LOG", "off")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"example.com\" is not an origin"), "{err}");
}

/// The room API's key opens every room: one short enough to guess stops the hub at start,
/// naming the flag (from the command line or the environment) but never the key itself.
#[test]
fn a_short_api_key_stops_the_hub() {
    for (args, env) in [(vec!["--api-key", "tiny-secret"], None), (vec![], Some("tiny-secret"))] {
        let mut command = hub();
        command
            .args(["--listen", "127.0.0.1:0", "--db", ":memory:"])
            .args(&args)
            .env("RUST_LOG", "off")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(key) = env {
            command.env("NATTER_API_KEY", key);
        }
        let mut child = command.spawn().expect("run natter-hub");
        // A hub that accepted the key would serve for ever: give it the time a refusal takes.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("a {}-byte --api-key was accepted and the hub started", "tiny-secret".len());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("read");
        assert!(!status.success());
        assert!(err.contains("--api-key") && err.contains("at least 16"), "{err}");
        assert!(!err.contains("tiny-secret"), "the key is not shown: {err}");
    }
}

/// With the common service limit of 1,024 open files (here 512), a hub would lock everyone out
/// after about a thousand connections: it raises the soft limit to the hard one at start, says
/// so, and sets its connection cap below what it got.
#[test]
fn the_open_file_limit_is_raised_and_logged() {
    use std::io::{BufRead, BufReader};
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    if hard <= 512 {
        eprintln!("the hard open-file limit is {hard}: nothing to raise here");
        return;
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -Sn 512 && exec '{}' --listen 127.0.0.1:0 --db :memory:",
            env!("CARGO_BIN_EXE_natter-hub")
        ))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run natter-hub under sh");
    let stdout = child.stdout.take().expect("stdout");
    let mut raised = None;
    let mut cap = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.contains("open-file limit raised") {
            raised = Some(line.clone());
        }
        if line.contains("max_connections=") {
            cap = Some(line.clone());
            // Logged as the accept loop starts, after everything else at start.
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let raised = raised.expect("the raise is logged");
    assert!(raised.contains("from=512") && raised.contains(&format!("to={hard}")), "{raised}");
    let cap = cap.expect("the connection cap is logged");
    let n: u64 = cap
        .split("max_connections=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(n > 512 && n < hard, "{cap}");
    // The per-address cap in force is logged with it: 1,024, or a quarter of the hub's cap.
    let per_address: u64 = cap
        .split("max_connections_per_address=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert_eq!(per_address, (n / 4).min(1024), "{cap}");
}

/// A hub started in `dir` with `args`, until it logs that it listens: returns the child, the
/// start-up log so far and the address it listens on.
async fn start_in(dir: &std::path::Path, args: &[&str]) -> (tokio::process::Child, String, String) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_natter-hub"))
        .args(["--listen", "127.0.0.1:0", "--db", ":memory:"])
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .env_remove("NATTER_ASSETS")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start natter-hub");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut log = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read the hub's log") {
            log.push_str(&line);
            log.push('\n');
            if let Some(rest) = line.split("addr=").nth(1) {
                return rest.split_whitespace().next().unwrap_or_default().to_string();
            }
        }
        String::new()
    };
    let addr = tokio::time::timeout(std::time::Duration::from_secs(60), read)
        .await
        .expect("the hub logs its address");
    assert!(!addr.is_empty(), "the hub stopped before listening:\n{log}");
    (child, log, addr)
}

/// `GET path` on `addr`: the status code and the body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.expect("GET");
    (response.status().as_u16(), response.text().await.expect("body"))
}

#[tokio::test]
async fn started_from_another_directory_the_hub_says_where_everything_is() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, log, addr) = start_in(dir.path(), &[]).await;
    let line = log.lines().find(|l| l.contains("natter hub listening")).expect("listening line");
    assert!(line.contains("database=sqlite in memory") && line.contains("rules=built-in"), "{line}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log that is not a terminal:\n{log}");
    // The widget is whatever this binary was built with: `cargo test` rebuilds the hub when
    // npm/dist changed, so npm/dist having the loader means the widget is embedded.
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../npm/dist/natter.js");
    let (status, body) = get(&addr, "/natter.js").await;
    if built.is_file() {
        assert!(line.contains("widget=embedded in the binary"), "{line}");
        assert_eq!(status, 200);
        assert_eq!(body, std::fs::read_to_string(&built).expect("read npm/dist/natter.js"));
    } else {
        assert!(line.contains("widget=none"), "{line}");
        assert!(log.contains("WARN") && log.contains("--assets is not set"), "no warning at start:\n{log}");
        assert_eq!(status, 404);
        assert!(body.contains("cargo xtask build") && body.contains("--assets"), "{body}");
    }
    child.kill().await.expect("stop the hub");
}

#[tokio::test]
async fn an_assets_folder_without_the_widget_is_a_warning_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "fallback = \"Thanks!\"\n").expect("write rules");
    let (mut child, log, addr) = start_in(dir.path(), &["--assets", "widget", "--rules", "rules.toml"]).await;
    // Relative paths are named as the absolute paths they resolve to.
    let folder = dir.path().join("widget");
    assert!(log.contains(&format!("--assets {} has no natter.js", folder.display())), "{log}");
    let line = log.lines().find(|l| l.contains("natter hub listening")).expect("listening line");
    assert!(line.contains(&format!("rules={}", rules.display())), "{line}");
    assert!(line.contains(&format!("widget={}", folder.display())), "{line}");
    let (status, body) = get(&addr, "/natter.js").await;
    assert_eq!(status, 404);
    assert!(body.contains("--assets"), "{body}");
    child.kill().await.expect("stop the hub");
}
