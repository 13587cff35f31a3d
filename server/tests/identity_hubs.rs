//! Identity across real `natter-hub` processes: two hubs on one real `redis-server` accept each
//! other's sessions and tokens (the session secret is made once and shared through Redis), and
//! a hub's logs never hold a token or a session id, whatever clients do.

mod support_process;
mod support_redis;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use natter_protocol::{Auth, ClientMessage, ServerMessage, Welcome, SESSION_HEADER};
use serde_json::json;
use support_process::{HubProcess, Tab};
use support_redis::RedisServer;

const SECRET: &str = "identity secret for the tests - 32+ bytes long";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn token(sub: &str, exp: u64) -> String {
    let claims = json!({"sub": sub, "exp": exp, "name": format!("User {sub}")});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// Opens a socket on `hub` with no credentials in its URL, sends `auth`, and reads the
/// `welcome` (`None` when the hub refused) and, after a welcome, the `history`.
async fn connect(hub: &HubProcess, auth: Auth) -> (Tab, Option<Welcome>, Option<natter_protocol::History>) {
    let mut tab = Tab::open(&hub.ws("page=/test")).await;
    tab.send(&ClientMessage::Auth(auth)).await;
    match tab.next().await {
        ServerMessage::Welcome(w) => {
            let history = match tab.until(|m| matches!(m, ServerMessage::History(_))).await {
                ServerMessage::History(h) => h,
                _ => unreachable!(),
            };
            (tab, Some(w), Some(history))
        }
        _ => (tab, None, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_redis_accept_each_others_sessions_and_tokens() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = redis.url();
    let args = ["--redis-url", url.as_str(), "--identity-secret", SECRET];
    let a = HubProcess::start_secure("hub-a", dir.path(), &args);
    let b = HubProcess::start_secure("hub-b", dir.path(), &args);

    // A session issued by hub A opens the same conversation on hub B.
    let (mut on_a, welcome, _) = connect(&a, Auth::default()).await;
    let welcome = welcome.expect("hub A issues a session");
    let session = welcome.session.clone().expect("a session");
    on_a.say("m1", "typed on hub A").await;
    on_a.until(|m| matches!(m, ServerMessage::Bot(_))).await;
    let (_on_b, on_b, history) = connect(&b, Auth { session: Some(session), ..Default::default() }).await;
    let on_b = on_b.expect("hub B accepts hub A's session");
    assert_eq!(on_b.member, welcome.member, "one member id on every hub");
    assert!(history.expect("history").messages.iter().any(|m| m.id() == Some("m1")));

    // A token verified by either hub is the same user in the same conversation.
    let ada = token("ada", now() + 600);
    let (mut ada_a, on_a, _) = connect(&a, Auth { token: Some(ada.clone()), ..Default::default() }).await;
    ada_a.say("u1", "signed in on hub A").await;
    ada_a.until(|m| matches!(m, ServerMessage::Ack(_))).await;
    let (_ada_b, on_b, history) = connect(&b, Auth { token: Some(ada), ..Default::default() }).await;
    assert_eq!(on_a.expect("welcome").member, on_b.expect("welcome").member);
    assert!(history.expect("history").messages.iter().any(|m| m.id() == Some("u1")));

    // An invented session is refused by both.
    for hub in [&a, &b] {
        let (_tab, welcome, _) =
            connect(hub, Auth { session: Some("session-xxx".into()), ..Default::default() }).await;
        assert!(welcome.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_hold_no_token_and_no_session_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut hub = HubProcess::launch(
        "hub",
        dir.path(),
        &["--db", "natter.db", "--identity-secret", SECRET],
        // The most an operator can ask for: at `trace` the crates under the hub log too (the
        // WebSocket library writes out every frame it sends and receives).
        &[("RUST_LOG", "trace")],
        false,
    );
    let good = token("ada", now() + 600);
    let expired = token("ada", now() - 600);
    let invented = "session-invented-by-a-client";

    // Everything a client does with credentials, right and wrong.
    let (mut tab, welcome, _) = connect(&hub, Auth::default()).await;
    let issued = welcome.and_then(|w| w.session).expect("a session");
    tab.say("m1", "hello").await;
    tab.until(|m| matches!(m, ServerMessage::Bot(_))).await;
    connect(&hub, Auth { session: Some(issued.clone()), after: Some(1), ..Default::default() }).await;
    connect(&hub, Auth { session: Some(invented.into()), ..Default::default() }).await;
    connect(&hub, Auth { token: Some(expired.clone()), ..Default::default() }).await;
    let (mut signed_in, _, _) = connect(&hub, Auth { token: Some(good.clone()), ..Default::default() }).await;
    signed_in.say("u1", "a bug report").await;
    signed_in.until(|m| matches!(m, ServerMessage::Bot(_))).await;
    let mut url_token = Tab::open(&hub.ws(&format!("token={good}"))).await;
    url_token.next().await;
    let _ = tokio_tungstenite::connect_async(hub.ws(&format!("session={invented}"))).await;
    let client = reqwest::Client::new();
    let fresh = client.get(hub.http("/api/chat/poll")).send().await.expect("poll");
    let issued_over_http =
        fresh.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).expect("issued").to_string();
    client
        .post(hub.http("/api/chat/messages"))
        .header(SESSION_HEADER, &issued)
        .json(&json!({"message": "over http"}))
        .send()
        .await
        .expect("post");
    client.get(hub.http("/api/chat/poll")).bearer_auth(&expired).send().await.expect("poll");
    client.get(hub.http(&format!("/api/chat/poll?session={invented}"))).send().await.expect("poll");
    drop((tab, signed_in, url_token));
    hub.terminate();

    let log = hub.log();
    assert!(log.contains("natter hub listening") && log.contains("connected"), "the log was written:\n{log}");
    let signature = |t: &str| t.rsplit('.').next().unwrap_or_default().to_string();
    for (what, secret) in [
        ("an issued session", issued.clone()),
        ("a session issued over HTTP", issued_over_http),
        ("an invented session", invented.to_string()),
        ("a token", good.clone()),
        ("a token's signature", signature(&good)),
        ("an expired token", expired.clone()),
        ("an expired token's signature", signature(&expired)),
        ("the identity secret", SECRET.to_string()),
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&secret)).take(3).collect();
        assert!(lines.is_empty(), "the log holds {what}:\n{}", lines.join("\n"));
    }
    // The random half of a session is not in there either.
    let (random, tag) = issued.split_once('.').expect("random.tag");
    assert!(!log.contains(random) && !log.contains(tag), "the log holds part of a session");
}
