//! The webhook and LLM reply backends, end to end: the real hub (built by `natter_hub::run`
//! from its configuration, as the binary does) on `127.0.0.1:0`, real WebSocket tabs, and test
//! doubles for the third-party services speaking their real wire formats — an axum server as
//! the customer's webhook (it verifies the HMAC signature) and one as an OpenAI-compatible
//! server streaming Server-Sent Events cut at awkward byte boundaries.

mod backends;
mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use backends::{
    double, hub_binary, llm_config, rules_answer, sse_body, webhook_config, Hub, Turn, API_KEY, SECRET,
};
use common::{session, Tab};
use futures_util::{stream, StreamExt as _};
use hmac::{Hmac, Mac};
use natter_hub::config::ReplyFallback;
use natter_hub::reply::prompt;
use natter_protocol::{Role, ServerMessage};
use serde_json::{json, Value};
use sha2::Sha256;

// ---------------------------------------------------------------------------------------------
// Webhook

/// Deliveries the webhook double received: (signature header, body).
type Deliveries = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A webhook that checks the signature like a customer would (HMAC over the raw body,
/// constant-time compare) and answers "Webhook: <message> on <page>".
async fn signed_webhook() -> (SocketAddr, Deliveries) {
    let seen: Deliveries = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let signature =
                    headers.get("x-natter-signature").and_then(|v| v.to_str().ok()).map(String::from);
                let value: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
                log.lock().expect("log").push((signature.clone(), value.clone()));
                let Some(hex) = signature.as_deref().and_then(|s| s.strip_prefix("sha256=")) else {
                    return (StatusCode::UNAUTHORIZED, "no signature").into_response();
                };
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).expect("key");
                mac.update(&body);
                let Some(sig) = decode_hex(hex) else {
                    return (StatusCode::UNAUTHORIZED, "bad hex").into_response();
                };
                if mac.verify_slice(&sig).is_err() {
                    return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
                }
                let reply =
                    format!("Webhook: {} on {}", value["message"].as_str().unwrap_or("?"), value["page"]);
                axum::Json(json!({"reply": reply, "category": "crm"})).into_response()
            }
        }),
    );
    (double(app).await, seen)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// A webhook double that always answers with `answer`.
async fn fixed_webhook(answer: fn() -> Response) -> SocketAddr {
    double(Router::new().route("/hook", post(move || async move { answer() }))).await
}

#[tokio::test]
async fn webhook_gets_a_signed_delivery_and_its_reply_reaches_every_tab() {
    let (addr, seen) = signed_webhook().await;
    let hub = Hub::start(webhook_config(addr)).await;
    let s = session("webhook");
    let mut a = hub.tab(&s).await;
    let mut b = hub.tab(&s).await;
    a.send(json!({"type": "user", "id": "m-1", "message": "where is my invoice?", "context": {"page": "/pricing", "plan": "pro"}}))
        .await;
    for tab in [&mut a, &mut b] {
        let turn = Turn::read(tab).await;
        let bot = turn.one_bot();
        assert_eq!(bot.message, "Webhook: where is my invoice? on \"/pricing\"");
        assert_eq!(bot.category.as_deref(), Some("crm"));
        assert_eq!(bot.reply_to.as_deref(), Some("m-1"));
    }
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 1, "one delivery per message");
    let (signature, body) = &seen[0];
    assert!(
        signature.as_deref().is_some_and(|s| s.starts_with("sha256=") && s.len() == 7 + 64),
        "{signature:?}"
    );
    assert_eq!(body["sessionId"], s.as_str());
    assert_eq!(body["messageId"], "m-1");
    assert_eq!(body["message"], "where is my invoice?");
    assert_eq!(body["context"], json!({"page": "/pricing", "plan": "pro"}));
    assert_eq!(body["page"], "/pricing");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
    assert_eq!(hub.metric("natter_reply_failures_total").await, 0);
    hub.stop(vec![a, b]).await;
}

#[tokio::test]
async fn webhook_with_a_wrong_secret_is_refused_and_the_visitor_gets_the_rules_answer() {
    let (addr, seen) = signed_webhook().await;
    let mut c = webhook_config(addr);
    c.webhook_secret = Some("not-the-secret".into());
    let hub = Hub::start(c).await;
    let mut tab = hub.tab(&session("webhook-badsig")).await;
    tab.say("m-1", "the dropdown is stuck").await;
    let turn = Turn::read(&mut tab).await;
    assert_eq!(turn.one_bot().message, rules_answer("the dropdown is stuck"));
    assert_eq!(turn.one_bot().category.as_deref(), Some("ui"));
    assert_eq!(seen.lock().expect("log").len(), 1);
    assert_eq!(hub.metric("natter_reply_failures_total").await, 1);
    hub.stop(vec![tab]).await;
}

#[tokio::test]
async fn webhook_500_and_timeout_fall_back_to_the_rules() {
    let failing = fixed_webhook(|| (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()).await;
    // Never answers: the hub's --reply-timeout must end the wait.
    let hanging = double(Router::new().route(
        "/hook",
        post(|| async {
            std::future::pending::<()>().await;
            StatusCode::OK
        }),
    ))
    .await;
    for (n, addr) in [failing, hanging].into_iter().enumerate() {
        let mut c = webhook_config(addr);
        c.reply_timeout = Duration::from_millis(300);
        let hub = Hub::start(c).await;
        let mut tab = hub.tab(&session("webhook-fail")).await;
        tab.say("m-1", "hello there").await;
        let turn = Turn::read(&mut tab).await;
        let bot = turn.one_bot();
        assert_eq!(bot.message, rules_answer("hello there"), "case {n}");
        assert_eq!(bot.category.as_deref(), Some("greeting"), "case {n}");
        assert_eq!(hub.metric("natter_reply_failures_total").await, 1, "case {n}");
        hub.stop(vec![tab]).await;
    }
}

#[tokio::test]
async fn webhook_no_reply_and_silent_fallback_store_nothing() {
    let null = fixed_webhook(|| axum::Json(json!({"reply": null})).into_response()).await;
    let no_content = fixed_webhook(|| StatusCode::NO_CONTENT.into_response()).await;
    let failing = fixed_webhook(|| StatusCode::BAD_GATEWAY.into_response()).await;
    for (n, (addr, fallback)) in
        [(null, ReplyFallback::Rules), (no_content, ReplyFallback::Rules), (failing, ReplyFallback::Silent)]
            .into_iter()
            .enumerate()
    {
        let mut c = webhook_config(addr);
        c.reply_fallback = fallback;
        let hub = Hub::start(c).await;
        let mut tab = hub.tab(&session("webhook-silent")).await;
        tab.say("m-1", "hello").await;
        let turn = Turn::read(&mut tab).await;
        assert!(turn.bots().is_empty(), "case {n}: no bot message: {:?}", turn.frames);
        // The conversation goes on: the next frame for the next message is its ack.
        tab.say("m-2", "anyone?").await;
        let ack = tab.until(|m| if let ServerMessage::Ack(a) = m { Some(a) } else { None }).await;
        assert_eq!((ack.id.as_str(), ack.seq), ("m-2", 2), "case {n}: nothing was stored between");
        hub.stop(vec![tab]).await;
    }
}

#[tokio::test]
async fn a_webhook_asking_for_a_person_while_nobody_is_online_tells_the_visitor_one_will_follow_up() {
    // The hub keeps an inbox (SQLite) and nobody has it open.
    let worded = fixed_webhook(|| {
        axum::Json(json!({"reply": "Let me find someone for you.", "handoff": true})).into_response()
    })
    .await;
    let wordless =
        fixed_webhook(|| axum::Json(json!({"reply": null, "handoff": true})).into_response()).await;
    let follow_up = natter_hub::reply::DEFAULT_FOLLOW_UP;
    for (addr, first, then) in [
        (worded, vec!["Let me find someone for you.", follow_up], vec!["Let me find someone for you."]),
        // Asking for a person without a word of its own still gets the visitor an answer.
        (wordless, vec![follow_up], vec![]),
    ] {
        let hub = Hub::start(webhook_config(addr)).await;
        let mut tab = hub.tab(&session("webhook-handoff")).await;
        tab.say("m-1", "I need a person").await;
        let turn = Turn::read(&mut tab).await;
        let said: Vec<&str> = turn.bots().iter().map(|b| b.message.as_str()).collect();
        assert_eq!(said, first, "{:?}", turn.frames);
        assert!(turn.bots().iter().all(|b| b.reply_to.as_deref() == Some("m-1")));
        // Said once: the next turn is the webhook's answer alone.
        tab.say("m-2", "hello?").await;
        let turn = Turn::read(&mut tab).await;
        let said: Vec<&str> = turn.bots().iter().map(|b| b.message.as_str()).collect();
        assert_eq!(said, then, "{:?}", turn.frames);
        hub.stop(vec![tab]).await;
    }
}

// ---------------------------------------------------------------------------------------------
// LLM

/// Requests the LLM double received.
type Requests = Arc<Mutex<Vec<Value>>>;

/// How the LLM double streams its answer.
#[derive(Clone, Copy)]
enum Stream {
    /// The whole answer and `[DONE]`.
    Complete,
    /// Two chunks, then the response ends cleanly without `[DONE]`.
    EndsEarly,
    /// Two chunks, then the connection breaks.
    Breaks,
    /// The handoff marker alone, split across two chunks.
    HandoffOnly,
}

/// Cuts `body` every 7 bytes and also inside the emoji and between a `\r` and its `\n`, so
/// pieces end mid-field, mid-character and mid-line-end.
fn awkward_pieces(body: &str) -> Vec<Vec<u8>> {
    let bytes = body.as_bytes();
    let mut cuts: Vec<usize> = (7..bytes.len()).step_by(7).collect();
    if let Some(i) = body.find('😀') {
        cuts.push(i + 2);
    }
    if let Some(i) = body.find("\r\n") {
        cuts.push(i + 1);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        pieces.push(bytes[start..cut].to_vec());
        start = cut;
    }
    pieces
}

const DELTAS: [&str; 5] = ["Hello", " wörld", "! Your plan", " 😀 is", " ready."];

/// An OpenAI-compatible `/v1/chat/completions` that checks the key and streams `DELTAS`.
async fn llm_double(mode: Stream) -> (SocketAddr, Requests) {
    let seen: Requests = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                log.lock().expect("log").push(body.clone());
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                if auth != Some(&format!("Bearer {API_KEY}")) || body["stream"] != true {
                    return (StatusCode::UNAUTHORIZED, "bad key or not streaming").into_response();
                }
                let deltas: &[&str] =
                    if matches!(mode, Stream::HandoffOnly) { &["[hand", "off]"] } else { &DELTAS };
                let mut body = sse_body(deltas);
                if matches!(mode, Stream::EndsEarly | Stream::Breaks) {
                    // Keep the role chunk and two content chunks ("Hello", " wörld").
                    let cut = body.match_indices("data: ").nth(3).map(|(i, _)| i).expect("chunks");
                    body.truncate(cut);
                }
                let pieces = awkward_pieces(&body);
                let broken = matches!(mode, Stream::Breaks);
                let chunks = stream::unfold((pieces.into_iter(), broken), |(mut it, broken)| async move {
                    // A pause between pieces so they reach the hub as separate reads.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    match it.next() {
                        Some(piece) => Some((Ok::<_, std::io::Error>(Bytes::from(piece)), (it, broken))),
                        None if broken => Some((Err(std::io::Error::other("connection lost")), (it, false))),
                        None => None,
                    }
                });
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-cache")
                    .body(Body::from_stream(chunks))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
            }
        }),
    );
    (double(app).await, seen)
}

#[tokio::test]
async fn llm_stream_cut_anywhere_becomes_one_bot_message_with_the_conversation_as_context() {
    let (addr, seen) = llm_double(Stream::Complete).await;
    let hub = Hub::start(llm_config(addr)).await;
    let s = session("llm");
    let mut a = hub.tab(&s).await;
    let mut b = hub.tab(&s).await;
    a.say("m-1", "is my plan ready?").await;
    let want = DELTAS.concat();
    for tab in [&mut a, &mut b] {
        let turn = Turn::read(tab).await;
        let bot = turn.one_bot();
        assert_eq!(bot.message, want);
        assert_eq!(bot.category.as_deref(), Some("llm"));
        assert_eq!(bot.reply_to.as_deref(), Some("m-1"));
    }
    a.say("m-2", "thanks, and the invoice?").await;
    assert_eq!(Turn::read(&mut a).await.one_bot().message, want);

    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["model"], "test-model");
    assert_eq!(seen[0]["stream"], true);
    let roles = |r: &Value| -> Vec<(String, String)> {
        r["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| (m["role"].as_str().unwrap_or("").into(), m["content"].as_str().unwrap_or("").into()))
            .collect()
    };
    let first = roles(&seen[0]);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(first[0], ("system".into(), prompt::system_message(None)));
    // The page is the visitor's data: it comes with their message, not in the system role.
    let with_page =
        |text: &str| format!("<visitor_context>\n{{\"page\":\"/pricing\"}}\n</visitor_context>\n\n{text}");
    assert_eq!(first[1], ("user".into(), with_page("is my plan ready?")));
    let second = roles(&seen[1]);
    assert_eq!(second[0], first[0], "the system message is the same for every request");
    assert_eq!(
        second[1..],
        [
            ("user".into(), "is my plan ready?".into()),
            ("assistant".into(), want.clone()),
            ("user".into(), with_page("thanks, and the invoice?")),
        ],
        "the conversation so far goes along"
    );
    assert_eq!(hub.metric("natter_reply_failures_total").await, 0);
    hub.stop(vec![a, b]).await;
}

#[tokio::test]
async fn an_llm_answer_that_only_asks_for_a_person_hands_over_and_is_not_a_failure() {
    // The model answers with the handoff marker and nothing else; nobody has the inbox open.
    let (addr, _) = llm_double(Stream::HandoffOnly).await;
    let hub = Hub::start(llm_config(addr)).await;
    let mut tab = hub.tab(&session("llm-handoff")).await;
    tab.say("m-1", "can I talk to your team").await;
    let turn = Turn::read(&mut tab).await;
    let said: Vec<&str> = turn.bots().iter().map(|b| b.message.as_str()).collect();
    // Not the rules' fallback and no empty message: the promise that a person will follow up.
    assert_eq!(said, vec![natter_hub::reply::DEFAULT_FOLLOW_UP], "{:?}", turn.frames);
    assert_eq!(hub.metric("natter_reply_failures_total").await, 0);
    hub.stop(vec![tab]).await;
}

#[tokio::test]
async fn llm_stream_cut_midway_falls_back_to_the_rules() {
    for mode in [Stream::EndsEarly, Stream::Breaks] {
        let (addr, _) = llm_double(mode).await;
        let hub = Hub::start(llm_config(addr)).await;
        let mut tab = hub.tab(&session("llm-cut")).await;
        tab.say("m-1", "the page is so slow").await;
        let turn = Turn::read(&mut tab).await;
        let bot = turn.one_bot();
        assert_eq!(bot.message, rules_answer("the page is so slow"), "no partial LLM text is stored");
        assert_eq!(bot.category.as_deref(), Some("performance"));
        assert_eq!(hub.metric("natter_reply_failures_total").await, 1);
        hub.stop(vec![tab]).await;
    }
}

#[tokio::test]
async fn llm_http_error_falls_back_and_long_answers_are_cut() {
    // A wrong key: the double answers 401.
    let (addr, _) = llm_double(Stream::Complete).await;
    let mut c = llm_config(addr);
    c.llm_api_key = Some("wrong".into());
    let hub = Hub::start(c).await;
    let mut tab = hub.tab(&session("llm-401")).await;
    tab.say("m-1", "hi").await;
    assert_eq!(Turn::read(&mut tab).await.one_bot().message, rules_answer("hi"));
    hub.stop(vec![tab]).await;

    let (addr, _) = llm_double(Stream::Complete).await;
    let mut c = llm_config(addr);
    c.reply_max_chars = 16;
    let hub = Hub::start(c).await;
    let mut tab = hub.tab(&session("llm-long")).await;
    tab.say("m-1", "hi").await;
    assert_eq!(Turn::read(&mut tab).await.one_bot().message, "Hello wörld!…");
    hub.stop(vec![tab]).await;
}

// ---------------------------------------------------------------------------------------------
// Flags

#[test]
fn bad_backend_flags_stop_the_hub_naming_the_flag() {
    for (args, flag) in [
        (&["--reply-backend", "llm"][..], "--llm-url"),
        (&["--reply-backend", "llm", "--llm-url", "http://127.0.0.1:9/v1"][..], "--llm-model"),
        (&["--reply-backend", "llm", "--llm-url", "localhost:11434", "--llm-model", "m"][..], "--llm-url"),
        (&["--reply-backend", "webhook"][..], "--webhook-url"),
        (&["--reply-backend", "webhook", "--webhook-url", "ftp://hooks.example/x"][..], "--webhook-url"),
        (
            &["--reply-backend", "webhook", "--webhook-url", "http://h/x", "--reply-timeout", "0"][..],
            "--reply-timeout",
        ),
        (
            &["--reply-backend", "webhook", "--webhook-url", "http://h/x", "--reply-idle-timeout", "0"][..],
            "--reply-idle-timeout",
        ),
        (&["--reply-concurrency", "0"][..], "--reply-concurrency"),
        (&["--reply-queue", "many"][..], "--reply-queue"),
    ] {
        let out = hub_binary().args(["--listen", "127.0.0.1:0"]).args(args).output().expect("run natter-hub");
        assert!(!out.status.success(), "{args:?} must not start");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: the error names {flag}: {err}");
    }
}

#[test]
fn help_documents_the_backend_flags_without_showing_secrets() {
    let out = hub_binary()
        .arg("--help")
        .env("NATTER_LLM_API_KEY", "sk-do-not-print")
        .env("NATTER_WEBHOOK_SECRET", "whsec-do-not-print")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--reply-backend",
        "NATTER_REPLY_BACKEND",
        "--reply-fallback",
        "--reply-timeout",
        "--reply-idle-timeout",
        "--reply-max-chars",
        "--reply-concurrency",
        "NATTER_REPLY_CONCURRENCY",
        "--reply-queue",
        "natter_reply_shed_total",
        "--webhook-url",
        "--webhook-secret",
        "X-Natter-Signature",
        "--llm-url",
        "--llm-model",
        "--llm-api-key",
        "NATTER_LLM_API_KEY",
        "--llm-system-prompt",
        "--llm-history",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    assert!(!text.contains("do-not-print"), "secrets from the environment must not be shown");
}

#[tokio::test]
async fn llm_typing_stays_on_while_a_slow_answer_streams() {
    // The double sends the first chunks, then holds the rest until the test has seen the hub
    // renew the bot's typing indicator: without renewal the test runs into its deadline.
    let release = Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let held = held.clone();
            async move {
                let body = sse_body(&DELTAS);
                let cut = body.match_indices("data: ").nth(2).map(|(i, _)| i).expect("chunks");
                let (head, tail) = (body[..cut].to_string(), body[cut..].to_string());
                let chunks = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) }).chain(
                    stream::once(async move {
                        held.notified().await;
                        Ok(Bytes::from(tail))
                    }),
                );
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(chunks))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
            }
        }),
    );
    let addr = double(app).await;
    let mut c = llm_config(addr);
    c.reply_timeout = Duration::from_secs(60);
    let hub = Hub::start(c).await;
    let mut tab = hub.tab(&session("llm-slow")).await;
    tab.say("m-1", "tell me everything").await;
    let mut typing_on = 0;
    while typing_on < 2 {
        match tab.recv().await {
            ServerMessage::Typing(t) if t.role == Role::Bot => {
                assert!(t.active, "typing must not stop before the answer is complete");
                typing_on += 1;
            }
            ServerMessage::Bot(b) => panic!("no reply before the stream is complete: {b:?}"),
            _ => {}
        }
    }
    release.notify_one();
    // Typing was seen on above; the rest of the turn is the reply and typing off.
    let turn = Turn::read(&mut tab).await;
    let bots = turn.bots();
    assert_eq!(bots.len(), 1, "{:?}", turn.frames);
    assert_eq!(bots[0].message, DELTAS.concat());
    hub.stop(vec![tab]).await;
}

/// The webhook gets a signed-in user's verified identity as `identity`, apart from `context`,
/// which the visitor's browser wrote; an anonymous visitor's delivery has no `identity`.
#[tokio::test]
async fn webhook_gets_the_verified_identity_apart_from_the_unverified_context() {
    const IDENTITY_SECRET: &str = "identity secret for the webhook test - 32+ bytes";
    let (addr, seen) = signed_webhook().await;
    let mut config = webhook_config(addr);
    config.identity_secrets = vec![IDENTITY_SECRET.into()];
    let hub = Hub::start(config).await;
    let exp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + 600;
    let claims = json!({"sub": "42", "exp": exp, "name": "Ada Lovelace", "email": "ada@example.com"});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(IDENTITY_SECRET.as_bytes()),
    )
    .expect("sign");
    let mut ada = Tab::connect(&format!("ws://{}/ws/chat?token={token}", hub.addr)).await;
    assert!(matches!(ada.recv_data().await, ServerMessage::Welcome(_)));
    ada.expect_history().await;
    ada.send(
        json!({"type": "user", "id": "v-1", "message": "hello", "context": {"name": "Mallory", "page": "/"}}),
    )
    .await;
    Turn::read(&mut ada).await.one_bot();
    let mut visitor = hub.tab(&session("anonymous")).await;
    visitor.send(json!({"type": "user", "id": "a-1", "message": "hello"})).await;
    Turn::read(&mut visitor).await.one_bot();

    let seen = seen.lock().expect("log").clone();
    let body =
        |id: &str| seen.iter().map(|(_, b)| b).find(|b| b["messageId"] == id).expect("delivered").clone();
    let signed_in = body("v-1");
    assert_eq!(
        signed_in["identity"],
        json!({"id": "42", "name": "Ada Lovelace", "email": "ada@example.com"})
    );
    assert_eq!(signed_in["context"]["name"], "Mallory", "the browser's context is passed on, apart");
    assert!(signed_in["sessionId"].as_str().is_some_and(|s| s.starts_with("user:")), "{signed_in}");
    assert!(body("a-1").get("identity").is_none(), "an anonymous visitor has no verified identity");
    hub.stop(vec![ada, visitor]).await;
}
