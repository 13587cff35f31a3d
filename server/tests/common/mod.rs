//! Test harness: starts the real hub on `127.0.0.1:0` and talks to it with a real WebSocket
//! client (tokio-tungstenite) and a real HTTP client (reqwest).
//!
//! Waits use a generous deadline ([`DEADLINE`]) so a loaded machine cannot fail a test; no
//! test asserts on how fast something happened.

#![allow(dead_code)]

pub mod hooked;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use natter_hub::store::memory::MemoryStore;
use natter_hub::store::Store;
use natter_hub::{Config, HubError};
use natter_protocol::{ErrorCode, History, ServerMessage};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The session secret of every test hub (unless a test sets its own), so tests can work out
/// the public member id of a session with [`member_id`].
pub const SESSION_SECRET: &str = "the test hubs' session secret - 32+ bytes";

/// The public member id the test hubs give the visitor holding `session`.
pub fn member_id(session: &str) -> String {
    natter_hub::identity::SessionKeys::new(&[SESSION_SECRET]).expect("a secret").member_of_session(session)
}

/// A running hub.
pub struct TestHub {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), HubError>>>,
}

impl TestHub {
    /// A hub with the test defaults.
    pub async fn start() -> TestHub {
        Self::with(Config::for_tests()).await
    }

    /// A hub with `config` and an in-memory store.
    pub async fn with(config: Config) -> TestHub {
        Self::with_store(config, Arc::new(MemoryStore::new())).await
    }

    /// A hub with `config` and `store` (and [`SESSION_SECRET`] unless `config` has a secret), its
    /// reply engine the one `config` names.
    pub async fn with_store(mut config: Config, store: Arc<dyn Store>) -> TestHub {
        if config.session_secrets.is_empty() {
            config.session_secrets = vec![SESSION_SECRET.into()];
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        // The engine the configuration asks for, as the binary builds it.
        let reply = natter_hub::build_reply(&config).expect("reply engine");
        let handle = tokio::spawn(natter_hub::serve(listener, config, store, reply, async move {
            let _ = rx.await;
        }));
        TestHub { addr, shutdown: Some(tx), handle: Some(handle) }
    }

    /// `ws://…/ws/chat?session=<session>&page=/test` plus `extra` query text.
    pub fn ws_url(&self, session: &str, extra: &str) -> String {
        format!("ws://{}/ws/chat?session={session}&page=/test{extra}", self.addr)
    }

    /// `http://…<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connects a tab of `session` and reads its first `history` frame.
    pub async fn tab(&self, session: &str) -> (Tab, History) {
        let mut tab = Tab::connect(&self.ws_url(session, "")).await;
        let h = tab.expect_history().await;
        (tab, h)
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), HubError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let handle = self.handle.take().expect("running");
        tokio::time::timeout(DEADLINE, handle).await.expect("hub stops in time").expect("hub task")
    }

    /// The value of a metric in `/metrics` (first line starting with `name ` or `name{…}`).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = reqwest::get(self.url("/metrics")).await.expect("metrics").text().await.expect("text");
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
    }

    /// Polls `/metrics` until `name` reaches at least `want`.
    pub async fn wait_metric(&self, name: &str, want: u64) {
        let start = tokio::time::Instant::now();
        loop {
            if self.metric(name).await >= want {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "metric {name} never reached {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One WebSocket client ("browser tab").
pub struct Tab {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Tab {
    /// Connects to `url`, panicking on failure.
    pub async fn connect(url: &str) -> Tab {
        let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        Tab { ws }
    }

    /// Sends a JSON value as a text frame.
    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a visitor message with an id.
    pub async fn say(&mut self, id: &str, text: &str) {
        self.send(serde_json::json!({"type": "user", "id": id, "message": text})).await;
    }

    /// The next hub frame (control frames skipped).
    pub async fn recv(&mut self) -> ServerMessage {
        loop {
            let next = tokio::time::timeout(DEADLINE, self.ws.next()).await.expect("a frame in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str()).unwrap_or_else(|e| panic!("bad frame {t}: {e}"))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame that is not a `typing` notice.
    pub async fn recv_data(&mut self) -> ServerMessage {
        loop {
            match self.recv().await {
                ServerMessage::Typing(_) => continue,
                m => return m,
            }
        }
    }

    /// Skips frames until `pick` accepts one.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(ServerMessage) -> Option<T>) -> T {
        loop {
            if let Some(t) = pick(self.recv().await) {
                return t;
            }
        }
    }

    /// The next non-typing frame, which must be a `history`.
    pub async fn expect_history(&mut self) -> History {
        match self.recv_data().await {
            ServerMessage::History(h) => h,
            other => panic!("expected history, got {other:?}"),
        }
    }

    /// The next non-typing frame, which must be an `error` with `code`; returns its message.
    pub async fn expect_error(&mut self, code: ErrorCode) -> String {
        match self.recv_data().await {
            ServerMessage::Error(e) if e.code == code => e.message,
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    /// Sends a ping and expects the pong with the same nonce (skipping anything else queued).
    pub async fn ping_works(&mut self) {
        let nonce = serde_json::json!({"n": 42});
        self.send(serde_json::json!({"type": "ping", "nonce": nonce})).await;
        let pong = self
            .until(|m| match m {
                ServerMessage::Pong(p) => Some(p),
                _ => None,
            })
            .await;
        assert_eq!(pong.nonce, Some(nonce.into()));
    }

    /// Reads until the hub closes; returns the close code (frames before it are skipped).
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            let next = tokio::time::timeout(DEADLINE, self.ws.next()).await.expect("close in time");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => return u16::from(CloseCode::Status),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}

/// A random-enough session id for one test.
pub fn session(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("session-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
