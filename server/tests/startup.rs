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
