//! A real `redis-server` for tests: started on a free loopback port in a temp dir, stopped
//! (SIGKILL) when dropped, and restartable on the same port and data dir to test outages.

#![allow(dead_code)] // each test crate uses a different part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped, between `stop` and `start`) `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    persistent: bool,
}

/// The binary: `NATTER_REDIS_SERVER` or `redis-server` on the PATH (Debian's package,
/// installed by `.ci/run`).
fn binary() -> PathBuf {
    std::env::var_os("NATTER_REDIS_SERVER").map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

impl RedisServer {
    /// A server that keeps nothing on disk.
    pub fn start() -> RedisServer {
        Self::launch(false)
    }

    /// A server with an append-only file fsynced at every write, so a restart keeps
    /// everything (what production should run, see docs/operations.md).
    pub fn start_persistent() -> RedisServer {
        Self::launch(true)
    }

    fn launch(persistent: bool) -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = RedisServer { child: None, port, dir, persistent };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no goodbye to clients, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data dir, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port.to_string();
        let mut cmd = Command::new(binary());
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
            .args(["--loglevel", "warning", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path());
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start {}: {e} (apt-get install redis-server)", binary().display())
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server on port {} never answered", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers PING.
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Runs one command and returns the raw reply (for test set-up: `CLIENT KILL`, `FLUSHALL`).
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(req.as_bytes()).expect("write");
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
