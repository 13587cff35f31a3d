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
        "npm/dist",
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
}
