//! The real `natter-hub` binary in a child process (so it can be `kill -9`ed and restarted on
//! the same database), and a real WebSocket client tab to talk to it.

#![allow(dead_code)] // each test crate uses a different part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use natter_protocol::{ChatSend, ClientMessage, Join, ServerMessage, UserSend};
use tokio_tungstenite::tungstenite::Message;

/// How long any single wait in these tests may take before it counts as a failure (generous:
/// the machine is shared).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A `natter-hub` child process.
pub struct HubProcess {
    child: Option<Child>,
    /// Its port on 127.0.0.1 (kept across restarts).
    pub port: u16,
    args: Vec<String>,
    /// `--open-sessions`: the tests about something else name their sessions.
    open_sessions: bool,
    env: Vec<(String, String)>,
    dir: PathBuf,
    log: PathBuf,
}

impl HubProcess {
    /// Starts the hub with `args` (plus `--listen`, no rate limits, no reply delay and
    /// `--open-sessions`, so tests can name their sessions), in `dir`, logging to
    /// `dir/<name>.log`, and waits until `/healthz` answers.
    pub fn start(name: &str, dir: &Path, args: &[&str]) -> HubProcess {
        Self::start_with_env(name, dir, args, &[])
    }

    /// [`HubProcess::start`] without `--open-sessions`: the production default, where only
    /// sessions the hub issued are accepted.
    pub fn start_secure(name: &str, dir: &Path, args: &[&str]) -> HubProcess {
        Self::launch(name, dir, args, &[], false)
    }

    /// [`HubProcess::start`] with environment variables set for the hub.
    pub fn start_with_env(name: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> HubProcess {
        Self::launch(name, dir, args, env, true)
    }

    /// Starts the hub with `args` and `env`, with `--open-sessions` or without.
    pub fn launch(
        name: &str,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        open_sessions: bool,
    ) -> HubProcess {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut hub = HubProcess {
            child: None,
            port,
            args: args.iter().map(|s| s.to_string()).collect(),
            open_sessions,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            dir: dir.to_path_buf(),
            log: dir.join(format!("{name}.log")),
        };
        hub.restart();
        hub
    }

    /// Starts the process again (same port, same arguments: same database or Redis).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_natter-hub"))
            .current_dir(&self.dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            // These tests send hundreds of messages at once from one address on purpose.
            .args(["--rate-burst", "0", "--address-rate-burst", "0", "--address-connect-burst", "0"])
            .args(["--reply-delay", "0"])
            .args(self.open_sessions.then_some("--open-sessions"))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env_remove("NATTER_DB")
            .env_remove("NATTER_REDIS_URL")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn natter-hub");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while self.healthz().is_none() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("natter-hub exited with {status}; log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "natter-hub never answered; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL: no shutdown code runs at all.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for the clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status =
                Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
            assert!(status.success());
            let status = child.wait().expect("wait");
            assert!(status.success(), "natter-hub exited with {status}; log:\n{}", self.log());
        }
    }

    /// Everything the hub logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /healthz`: the status code and body, or `None` when nothing answers.
    pub fn healthz(&self) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(stream, "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let status = response.get(9..12)?.parse().ok()?;
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        Some((status, body))
    }

    /// `ws://127.0.0.1:<port>/ws/chat` with `query` (which may be empty).
    pub fn ws(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws/chat?{query}", self.port)
    }

    /// The process id, while it runs (for reading its memory in `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The WebSocket URL of `session`, resuming after `after` when given.
    pub fn ws_url(&self, session: &str, after: Option<u64>) -> String {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        format!("ws://127.0.0.1:{}/ws/chat?session={session}&page=/test{after}", self.port)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` until it holds, for at most [`PATIENCE`].
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A browser tab, as far as the hub can tell.
pub struct Tab {
    ws: Socket,
}

impl Tab {
    /// Connects to `url`.
    pub async fn open(url: &str) -> Tab {
        let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("WebSocket connect");
        Tab { ws }
    }

    /// Sends a client frame.
    pub async fn send(&mut self, message: &ClientMessage) {
        let text = serde_json::to_string(message).expect("encode");
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a `user` message with `id`.
    pub async fn say(&mut self, id: &str, text: &str) {
        let send = UserSend { id: Some(id.into()), message: text.into(), ..Default::default() };
        self.send(&ClientMessage::User(send)).await;
    }

    /// Sends a `chat` message with `id` to `room`.
    pub async fn chat(&mut self, room: &str, id: &str, text: &str) {
        let send = ChatSend { room: room.into(), id: Some(id.into()), message: text.into(), name: None };
        self.send(&ClientMessage::Chat(send)).await;
    }

    /// Joins `room` (as `name`) and returns its `room_info` and `history`.
    pub async fn join(
        &mut self,
        room: &str,
        name: &str,
        after: Option<u64>,
    ) -> (ServerMessage, ServerMessage) {
        let join = Join { room: room.into(), name: Some(name.into()), after };
        self.send(&ClientMessage::Join(join)).await;
        let info = self.until(|m| matches!(m, ServerMessage::RoomInfo(_))).await;
        let history =
            self.until(|m| matches!(m, ServerMessage::History(h) if h.room.as_deref() == Some(room))).await;
        (info, history)
    }

    /// The next frame, or `None` when the connection ended.
    pub async fn try_next(&mut self) -> Option<ServerMessage> {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("a frame in time")?;
            match frame {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(text.as_str()).expect("a protocol frame"));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next frame.
    pub async fn next(&mut self) -> ServerMessage {
        self.try_next().await.expect("connection open")
    }

    /// Skips frames until one matches.
    ///
    /// Bounded overall by `PATIENCE`, not just per frame: the hub's pings and unrelated frames
    /// must not keep a test waiting forever for something that never comes.
    pub async fn until(&mut self, mut f: impl FnMut(&ServerMessage) -> bool) -> ServerMessage {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(m) = tokio::time::timeout(left, self.next()).await else {
                panic!("timed out after {PATIENCE:?} waiting for the frame a test expected");
            };
            if f(&m) {
                return m;
            }
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
