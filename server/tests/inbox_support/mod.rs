//! Operators for the inbox tests: accounts made with the real `natter-hub operator add`
//! command, a signed-in operator's HTTP calls (cookie, `Origin`, CSRF token, as the inbox app
//! sends them) and their live socket.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use futures_util::{SinkExt, StreamExt};
use natter_protocol::inbox::{InboxEvent, SignedIn};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs `natter-hub <args>` with `stdin` on its standard input; `(success, stdout + stderr)`.
pub fn hub_command(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_natter-hub"))
        .args(args)
        .env_remove("NATTER_REDIS_URL")
        .env_remove("NATTER_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("natter-hub runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("natter-hub ends");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Adds an operator to the database at `db` (or on Redis when `db` starts with `redis://`)
/// with the real command.
pub fn add_operator(db: &str, name: &str, display: &str, password: &str) {
    let store = if db.starts_with("redis://") { "--redis-url" } else { "--db" };
    let (ok, out) = hub_command(
        &[store, db, "operator", "add", name, "--display-name", display],
        &format!("{password}\n"),
    );
    assert!(ok, "operator add {name}: {out}");
}

/// The path of a database file in `dir`, as text.
pub fn db_in(dir: &Path) -> String {
    dir.join("natter.db").to_str().expect("utf-8 path").to_string()
}

/// A signed-in operator.
pub struct Operator {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `natter_operator=…`.
    pub cookie: String,
    /// The CSRF token.
    pub csrf: String,
    /// Who.
    pub me: SignedIn,
    http: reqwest::Client,
}

/// Signs in at `base` as it the inbox page does; panics unless it works.
pub async fn sign_in(base: &str, name: &str, password: &str) -> Operator {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/inbox/api/signin"))
        .header("origin", base)
        .json(&serde_json::json!({"name": name, "password": password}))
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), StatusCode::OK, "sign-in of {name}");
    let set = r.headers().get("set-cookie").expect("a cookie").to_str().expect("text").to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/inbox"] {
        assert!(set.contains(attr), "cookie lacks {attr}: {set}");
    }
    let cookie = set.split(';').next().expect("name=value").to_string();
    let me: SignedIn = r.json().await.expect("json");
    Operator { base: base.to_string(), csrf: me.csrf.clone(), cookie, me, http }
}

impl Operator {
    /// `GET path` with the cookie; status and JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` as the inbox app sends it (cookie, same origin, CSRF token).
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .header("x-natter-csrf", &self.csrf)
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Opens the live socket and reads its `hello`.
    pub async fn feed(&self) -> Feed {
        let url = format!("{}/inbox/ws", self.base.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("cookie", self.cookie.parse().expect("header"));
        request.headers_mut().insert("origin", self.base.parse().expect("header"));
        let (ws, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
            .expect("connect");
        let mut feed = Feed { ws };
        assert!(matches!(feed.next().await, InboxEvent::Hello { .. }), "hello first");
        feed
    }
}

/// An operator's live socket.
pub struct Feed {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Feed {
    /// The next event.
    pub async fn next(&mut self) -> InboxEvent {
        loop {
            let next = tokio::time::timeout(DEADLINE, self.ws.next()).await.expect("an inbox frame in time");
            match next {
                Some(Ok(Message::Text(t))) => {
                    if std::env::var_os("NATTER_TEST_SHOW_FEED").is_some() {
                        eprintln!("feed: {t}");
                    }
                    return serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("bad inbox frame {t}: {e}"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected an inbox frame, got {other:?}"),
            }
        }
    }

    /// Skips events until `pick` accepts one.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(InboxEvent) -> Option<T>) -> T {
        loop {
            if let Some(t) = pick(self.next().await) {
                return t;
            }
        }
    }

    /// Sends a command.
    pub async fn send(&mut self, value: Value) {
        self.ws.send(Message::text(value.to_string())).await.expect("send");
    }
}

/// Every conversation `op` can list under `filter`, page after page of at most `limit`
/// (following each answer's `next`), in list order. Panics unless every page is in that order
/// (newest activity first, then the higher id), within `limit`, and no conversation appears
/// twice.
pub async fn every_conversation(op: &Operator, filter: &str, limit: usize) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let path = match &cursor {
            Some(c) => format!("/inbox/api/conversations?filter={filter}&limit={limit}&cursor={c}"),
            None => format!("/inbox/api/conversations?filter={filter}&limit={limit}"),
        };
        let (status, page) = op.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let items = page["conversations"].as_array().expect("conversations").clone();
        assert!(items.len() <= limit, "{} on a page of {limit}", items.len());
        all.extend(items);
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let key =
        |c: &Value| (c["lastActivityMs"].as_u64().expect("ms"), c["id"].as_str().expect("id").to_string());
    for pair in all.windows(2) {
        assert!(key(&pair[0]) > key(&pair[1]), "out of order or twice: {} then {}", pair[0], pair[1]);
    }
    all
}

/// [`every_conversation`] once it holds at least `want` (records are written just after a
/// message is acknowledged).
pub async fn until_listed(op: &Operator, filter: &str, limit: usize, want: usize) -> Vec<Value> {
    let start = tokio::time::Instant::now();
    loop {
        let all = every_conversation(op, filter, limit).await;
        if all.len() >= want {
            return all;
        }
        assert!(start.elapsed() < DEADLINE, "{} of {want} conversations listed", all.len());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
