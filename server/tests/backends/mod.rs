//! What the reply-backend tests share: the hub as the binary builds it (`natter_hub::run` picks
//! the reply engine from the configuration), test doubles served on `127.0.0.1:0`, one reply
//! turn as a tab sees it, and the configurations and wire bodies the doubles speak.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Command;

use axum::Router;
use natter_hub::config::ReplyBackend;
use natter_hub::reply::RulesEngine;
use natter_hub::{Config, HubError};
use natter_protocol::{ConversationMessage, Role, ServerMessage};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::common::{Tab, DEADLINE};

/// The webhook secret the tests sign with.
pub const SECRET: &str = "whsec-test-1234";
/// The LLM API key the double expects.
pub const API_KEY: &str = "sk-test-key";

/// The hub as the binary builds it (`run` chooses the reply engine from the config).
pub struct Hub {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), HubError>>,
}

impl Hub {
    /// Starts it on `127.0.0.1:0` with `config`.
    pub async fn start(config: Config) -> Hub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(natter_hub::run(listener, config, async move {
            let _ = rx.await;
        }));
        Hub { addr, stop: Some(tx), task }
    }

    /// Connects a tab of `session` on the page `/pricing` and reads its `history`.
    pub async fn tab(&self, session: &str) -> Tab {
        let mut tab =
            Tab::connect(&format!("ws://{}/ws/chat?session={session}&page=/pricing", self.addr)).await;
        tab.expect_history().await;
        tab
    }

    /// The value of the unlabelled metric `name`.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not in:\n{text}"))
    }

    /// Stops the hub after closing `tabs` (an open tab that does not answer the hub's close
    /// would hold shutdown until its drain limit).
    pub async fn stop(mut self, tabs: Vec<Tab>) {
        drop(tabs);
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(DEADLINE, self.task).await.expect("stops").expect("task").expect("clean stop");
    }
}

/// Serves a test double on `127.0.0.1:0`.
pub async fn double(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind double");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// What one tab saw for one reply: every frame up to the bot's `typing` turning off.
pub struct Turn {
    /// The frames, in order.
    pub frames: Vec<ServerMessage>,
}

impl Turn {
    /// Reads frames until the bot's typing indicator goes off.
    pub async fn read(tab: &mut Tab) -> Turn {
        let mut frames = Vec::new();
        loop {
            let m = tab.recv().await;
            let end = matches!(&m, ServerMessage::Typing(t) if t.role == Role::Bot && !t.active);
            frames.push(m);
            if end {
                return Turn { frames };
            }
        }
    }

    /// The bot messages of the turn.
    pub fn bots(&self) -> Vec<&ConversationMessage> {
        self.frames
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Bot(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    /// The one bot message, after the bot's typing went on (and before it went off: `read`
    /// stops at the off).
    pub fn one_bot(&self) -> &ConversationMessage {
        let bots = self.bots();
        assert_eq!(bots.len(), 1, "exactly one bot message: {:?}", self.frames);
        let typing_on = self
            .frames
            .iter()
            .position(|m| matches!(m, ServerMessage::Typing(t) if t.role == Role::Bot && t.active));
        let bot = self.frames.iter().position(|m| matches!(m, ServerMessage::Bot(_)));
        assert!(typing_on.is_some() && typing_on < bot, "typing on before the reply: {:?}", self.frames);
        bots[0]
    }
}

/// The test configuration with `backend` answering.
pub fn config(backend: ReplyBackend) -> Config {
    let mut c = Config::for_tests();
    c.reply_backend = backend;
    c
}

/// What the shipped rules answer on /pricing: the fallback the visitor must get.
pub fn rules_answer(message: &str) -> String {
    RulesEngine::builtin().expect("rules").answer(message, Some("/pricing")).1
}

/// A webhook backend posting to the double at `addr`, signed with [`SECRET`].
pub fn webhook_config(addr: SocketAddr) -> Config {
    let mut c = config(ReplyBackend::Webhook);
    c.webhook_url = Some(format!("http://{addr}/hook?token=abc"));
    c.webhook_secret = Some(SECRET.into());
    c
}

/// The SSE body of an answer made of `deltas`, as OpenAI / vLLM / Ollama write it (mixing
/// `\n\n` and `\r\n\r\n` event ends, as servers differ).
pub fn sse_body(deltas: &[&str]) -> String {
    let mut out = String::new();
    out.push_str(": keep-alive\n\n");
    let role = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}]});
    out.push_str(&format!("data: {role}\n\n"));
    for (i, d) in deltas.iter().enumerate() {
        let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": null}]});
        out.push_str(&format!("data: {chunk}{}", if i % 2 == 0 { "\r\n\r\n" } else { "\n\n" }));
    }
    let stop = json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    out.push_str(&format!("data: {stop}\n\ndata: [DONE]\n\n"));
    out
}

/// An LLM backend streaming from the double at `addr` (`/v1/chat/completions`).
pub fn llm_config(addr: SocketAddr) -> Config {
    let mut c = config(ReplyBackend::Llm);
    c.llm_url = Some(format!("http://{addr}/v1/"));
    c.llm_model = Some("test-model".into());
    c.llm_api_key = Some(API_KEY.into());
    c
}

/// The `natter-hub` binary with no `NATTER_*` variable from the test's environment.
pub fn hub_binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_natter-hub"));
    for (k, _) in std::env::vars() {
        if k.starts_with("NATTER_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "off");
    c
}
