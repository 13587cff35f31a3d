//! Identity and access against the production defaults (sessions issued by the hub): identity
//! tokens minted here (valid, expired, forged, unsigned, HS/RS confused, missing `exp`, future
//! `nbf`, wrong audience, too long-lived), invented sessions, keyed member ids, a signed-in
//! user's one conversation on every device, the `rooms` claim, token expiry and renewal on an
//! open connection, and the HTTP fallback's headers.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{Tab, TestHub, DEADLINE};
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use natter_hub::Config;
use natter_protocol::{close, ErrorCode, ServerMessage, Welcome, SESSION_HEADER};
use serde_json::{json, Value};

/// The identity secret of these hubs (a site's backend would share it with the hub).
const SECRET: &str = "identity secret for the tests - 32+ bytes long";
const AUDIENCE: &str = "chat.example.com";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// Claims for user `sub`, valid for an hour, for [`AUDIENCE`].
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iat": now(), "exp": now() + 3600, "aud": AUDIENCE, "name": format!("User {sub}")})
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign")
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes()), claims)
}

fn rs256(claims: &Value) -> String {
    let pem = std::fs::read(fixture("identity-rsa.key.pem")).expect("RSA key");
    sign(Algorithm::RS256, &EncodingKey::from_rsa_pem(&pem).expect("RSA key"), claims)
}

fn es256(claims: &Value) -> String {
    let pem = std::fs::read(fixture("identity-ec.key.pem")).expect("EC key");
    sign(Algorithm::ES256, &EncodingKey::from_ec_pem(&pem).expect("EC key"), claims)
}

/// A token with `alg: none` and no signature, as an attacker would write it.
fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(claims))
}

/// A secure hub (the default: sessions issued by the hub) verifying HS256 with [`SECRET`],
/// RS256 and ES256 with the fixtures' public keys, for [`AUDIENCE`].
fn secure_config() -> Config {
    let mut c = Config::for_tests();
    c.open_sessions = false;
    c.identity_secrets = vec![SECRET.into()];
    c.identity_public_keys = vec![fixture("identity-rsa.pub.pem"), fixture("identity-ec.pub.pem")];
    c.identity_audience = Some(AUDIENCE.into());
    c
}

/// Opens a socket with no credentials in its URL and sends `auth`.
async fn auth(hub: &TestHub, auth: Value) -> Tab {
    let mut tab = Tab::connect(&format!("ws://{}/ws/chat?page=/test", hub.addr)).await;
    let mut frame = auth;
    frame["type"] = json!("auth");
    tab.send(frame).await;
    tab
}

/// Authenticates and reads the `welcome` and the `history` that follows it.
async fn welcomed(hub: &TestHub, frame: Value) -> (Tab, Welcome, natter_protocol::History) {
    let mut tab = auth(hub, frame).await;
    let welcome = match tab.recv_data().await {
        ServerMessage::Welcome(w) => w,
        other => panic!("expected welcome, got {other:?}"),
    };
    let history = tab.expect_history().await;
    (tab, welcome, history)
}

/// Sends `auth` with `token` and returns the refusal's message, checking that it is an
/// `unauthorized` error followed by the "get a fresh token" close, and never repeats the token.
async fn refused(hub: &TestHub, token: &str) -> String {
    let mut tab = auth(hub, json!({"token": token})).await;
    let message = tab.expect_error(ErrorCode::Unauthorized).await;
    assert_eq!(tab.expect_close().await, close::UNAUTHORIZED, "{message}");
    assert!(!message.contains(token), "a refusal never repeats the token: {message}");
    message
}

/// The answer to a WebSocket upgrade that the hub refuses: status and body.
async fn upgrade_refused(url: &str) -> (u16, String) {
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        other => panic!("expected the upgrade to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_are_accepted() {
    let hub = TestHub::with(secure_config()).await;
    for (alg, token) in
        [("HS256", hs256(&claims("42"))), ("RS256", rs256(&claims("42"))), ("ES256", es256(&claims("42")))]
    {
        let (_tab, welcome, _) = welcomed(&hub, json!({"token": token})).await;
        let user = welcome.user.unwrap_or_else(|| panic!("{alg}: a signed-in user"));
        assert_eq!((user.id.as_str(), user.name.as_deref()), ("42", Some("User 42")), "{alg}");
        assert_eq!(welcome.session, None, "{alg}: a signed-in user's conversation follows the user");
        assert!(welcome.expires_at.is_some_and(|e| e > now()), "{alg}");
    }
}

#[tokio::test]
async fn welcome_tells_the_client_the_budgets_it_is_held_to() {
    let mut config = Config::for_tests();
    config.rate_per_sec = 2.5;
    config.rate_burst = 7;
    config.frame_budget = 300_000;
    config.max_rooms_per_connection = 12;
    let hub = TestHub::with(config).await;
    let (_tab, welcome, _) = welcomed(&hub, json!({})).await;
    let b = welcome.budgets.expect("budgets in the welcome");
    assert_eq!((b.messages_per_minute, b.message_burst, b.frame_budget, b.max_rooms), (150, 7, 300_000, 12));
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_cause_named() {
    let hub = TestHub::with(secure_config()).await;
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"a guess at the secret, 32+ bytes!!"),
        &claims("42"),
    );
    let mut expired = claims("42");
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut no_exp = claims("42");
    no_exp.as_object_mut().expect("object").remove("exp");
    let mut early = claims("42");
    early["nbf"] = json!(now() + 600);
    let mut elsewhere = claims("42");
    elsewhere["aud"] = json!("another-site.example");
    let mut no_aud = claims("42");
    no_aud.as_object_mut().expect("object").remove("aud");
    let mut forever = claims("42");
    forever["exp"] = json!(now() + 90 * 86_400);
    // Issued "next year" for an hour: `exp - iat` is short, but the token would live a year.
    let mut postdated = claims("42");
    postdated["iat"] = json!(now() + 365 * 86_400);
    postdated["exp"] = json!(now() + 365 * 86_400 + 3600);
    let mut no_sub = claims("42");
    no_sub.as_object_mut().expect("object").remove("sub");
    let cases = [
        ("wrong signature", forged, "signature does not verify"),
        ("expired", hs256(&expired), "expired"),
        ("alg none", unsigned(&claims("42")), "unsigned"),
        ("missing exp", hs256(&no_exp), "no `exp` claim"),
        ("missing sub", hs256(&no_sub), "no `sub` claim"),
        ("future nbf", hs256(&early), "not valid yet"),
        ("wrong audience", hs256(&elsewhere), "another audience"),
        ("no audience", hs256(&no_aud), "(--identity-audience)"),
        ("too long-lived", hs256(&forever), "--identity-max-lifetime"),
        ("issued in the future", hs256(&postdated), "--identity-max-lifetime"),
        ("not a JWT", "hello".into(), "not a JWT"),
    ];
    for (what, token, cause) in cases {
        let message = refused(&hub, &token).await;
        assert!(message.contains(cause), "{what}: {message}");
        // The same token in the URL is refused before the upgrade, with 401 and the same reason.
        let (status, body) = upgrade_refused(&format!("ws://{}/ws/chat?token={token}", hub.addr)).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body.contains("\"code\":\"unauthorized\"") && body.contains(cause), "{what}: {body}");
        assert!(!body.contains(&token), "{what}: the body repeats the token");
    }
}

/// A hub that has only an RSA public key must not accept an HS256 token whose "secret" is that
/// public key (the classic algorithm confusion: the public key is public).
#[tokio::test]
async fn hs_rs_confusion_is_refused() {
    let mut config = secure_config();
    config.identity_secrets.clear();
    config.identity_public_keys = vec![fixture("identity-rsa.pub.pem")];
    let hub = TestHub::with(config).await;
    let public = std::fs::read(fixture("identity-rsa.pub.pem")).expect("public key");
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(&public), &claims("42"));
    let message = refused(&hub, &confused).await;
    assert!(message.contains("signed with HS256") && message.contains("RS256 only"), "{message}");
    // And the honest RS256 token works.
    let (_tab, welcome, _) = welcomed(&hub, json!({"token": rs256(&claims("42"))})).await;
    assert!(welcome.user.is_some());
}

#[tokio::test]
async fn a_client_without_a_session_gets_one_and_an_invented_one_gets_nothing() {
    let hub = TestHub::with(secure_config()).await;
    let (mut owner, welcome, history) = welcomed(&hub, json!({})).await;
    assert!(history.messages.is_empty());
    let session = welcome.session.clone().expect("a session was issued");
    owner.say("m1", "my private order number is 1234").await;
    owner.until(|m| matches!(m, ServerMessage::Bot(_)).then_some(())).await;

    // The holder comes back with it and sees the conversation.
    let (_again, again, history) = welcomed(&hub, json!({"session": session})).await;
    assert_eq!(again.member, welcome.member);
    assert!(history
        .messages
        .iter()
        .any(|m| matches!(m, ServerMessage::User(u) if u.message.contains("1234"))));

    // Guesses: the original widget's style, a made-up id, the issued id's random part with
    // another tag, and every id the owner's frames show to others.
    let (random, _) = session.split_once('.').expect("random.tag");
    let guesses = [
        "session-xxx".to_string(),
        "0123456789abcdef0123456789abcdef".into(),
        format!("{random}.{}", "0".repeat(32)),
        welcome.member.clone(),
        // Another spelling of the issued id itself is not the id the hub issued (it would open
        // another conversation, with another member id, under the same credential).
        session.to_ascii_uppercase(),
    ];
    for guess in &guesses {
        let mut tab = auth(&hub, json!({"session": guess})).await;
        let message = tab.expect_error(ErrorCode::BadSession).await;
        assert!(message.contains("not issued") && message.contains("\"auth\""), "{message}");
        assert_eq!(tab.expect_close().await, close::BAD_SESSION);
        let (status, body) = upgrade_refused(&format!("ws://{}/ws/chat?session={guess}", hub.addr)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("bad_session"), "{body}");
        let poll = reqwest::Client::new()
            .get(hub.url("/api/chat/poll?after=0"))
            .header(SESSION_HEADER, guess.as_str())
            .send()
            .await
            .expect("poll");
        assert_eq!(poll.status(), 400);
        assert!(!poll.text().await.expect("body").contains("1234"));
    }

    // Frames before `auth` are refused; the connection carries on and can still say who it is.
    let mut tab = Tab::connect(&format!("ws://{}/ws/chat", hub.addr)).await;
    tab.say("early", "hello?").await;
    let message = tab.expect_error(ErrorCode::BadSession).await;
    assert!(message.contains("auth"), "{message}");
    tab.send(json!({"type": "auth"})).await;
    assert!(
        matches!(tab.recv_data().await, ServerMessage::Welcome(w) if w.session.as_ref().is_some_and(|s| *s != session))
    );
    assert!(tab.expect_history().await.messages.is_empty(), "a new session is a new, empty conversation");
}

#[tokio::test]
async fn a_signed_in_user_has_one_conversation_on_every_device_with_their_name() {
    let hub = TestHub::with(secure_config()).await;
    let (mut laptop, laptop_welcome, _) = welcomed(&hub, json!({"token": hs256(&claims("ada"))})).await;
    laptop.say("l1", "hello from the laptop").await;
    let echoed = laptop
        .until(|m| match m {
            ServerMessage::User(u) => Some(u),
            _ => None,
        })
        .await;
    assert_eq!(echoed.author.as_deref(), Some("User ada"), "the verified name, not a client's");
    // Another device, another algorithm, the same user: the same conversation and member id.
    let (_phone, phone_welcome, history) = welcomed(&hub, json!({"token": es256(&claims("ada"))})).await;
    assert_eq!(phone_welcome.member, laptop_welcome.member);
    assert!(history.messages.iter().any(|m| matches!(m, ServerMessage::User(u) if u.id == "l1")));
    // Another user does not see it.
    let (_other, _, history) = welcomed(&hub, json!({"token": hs256(&claims("bob"))})).await;
    assert!(history.messages.is_empty());
}

#[tokio::test]
async fn member_ids_are_keyed_with_the_hub_secret() {
    let hub = TestHub::with(secure_config()).await;
    let (_tab, welcome, _) = welcomed(&hub, json!({})).await;
    let session = welcome.session.expect("a session");
    // What an attacker without the secret can compute from a session or a user id: the
    // unkeyed hash this hub used before, which recovered `session-xxx` in 11 ms.
    let unkeyed = |s: &str| {
        use sha2::Digest;
        let d = sha2::Sha256::digest(s.as_bytes());
        format!("u_{}", d[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
    };
    assert_ne!(welcome.member, unkeyed(&session));
    // With the hub's secret it is reproducible (so it is stable across hubs sharing it) …
    assert_eq!(welcome.member, common::member_id(&session));
    // … and another secret gives another id for the same session.
    let other =
        natter_hub::identity::SessionKeys::new(&["another hub's secret, 32+ bytes long"]).expect("keys");
    assert_ne!(welcome.member, other.member_of_session(&session));
}

/// With `--room-access identified` (the default when tokens are verified): rooms are for
/// signed-in users, within their `rooms` claim; presence shows the verified name.
#[tokio::test]
async fn the_rooms_claim_covers_some_rooms_and_not_others() {
    let hub = TestHub::with(secure_config()).await;
    let mut limited = claims("ada");
    limited["rooms"] = json!(["team-a", "proj-*"]);
    let (mut ada, welcome, _) = welcomed(&hub, json!({"token": hs256(&limited)})).await;
    for room in ["team-a", "proj-42"] {
        ada.send(json!({"type": "join", "room": room, "name": "Mallory"})).await;
        let ServerMessage::RoomInfo(info) = ada.recv_data().await else { panic!("{room}: room_info") };
        let me = info.members.iter().find(|m| m.id == welcome.member).expect("listed");
        assert_eq!(me.name.as_deref(), Some("User ada"), "the verified name, not the one given");
        assert!(me.verified);
        ada.expect_history().await;
    }
    for room in ["team-b", "proj"] {
        ada.send(json!({"type": "join", "room": room})).await;
        let message = ada.expect_error(ErrorCode::Forbidden).await;
        assert!(message.contains("rooms") && message.contains(room), "{message}");
    }
    // Without a `rooms` claim every room is open to a signed-in user; to an anonymous visitor none.
    let (mut bob, _, _) = welcomed(&hub, json!({"token": hs256(&claims("bob"))})).await;
    bob.send(json!({"type": "join", "room": "team-b"})).await;
    assert!(matches!(bob.recv_data().await, ServerMessage::RoomInfo(_)));
    let (mut anonymous, _, _) = welcomed(&hub, json!({})).await;
    anonymous.send(json!({"type": "join", "room": "team-a"})).await;
    let message = anonymous.expect_error(ErrorCode::Unauthorized).await;
    assert!(message.contains("signed-in"), "{message}");

    // The room API: a bearer token whose claim covers the room, nothing else.
    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<String>| {
        let mut r = client.get(hub.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(get("/api/rooms/team-a", None).await.expect("get").status(), 401);
    assert_eq!(get("/api/rooms/team-a", Some(hs256(&limited))).await.expect("get").status(), 200);
    assert_eq!(get("/api/rooms/team-b", Some(hs256(&limited))).await.expect("get").status(), 403);
    let list: Value =
        get("/api/rooms", Some(hs256(&limited))).await.expect("get").json().await.expect("json");
    let rooms: Vec<&str> =
        list["rooms"].as_array().expect("rooms").iter().filter_map(|r| r["room"].as_str()).collect();
    assert!(rooms.contains(&"team-a") && !rooms.contains(&"team-b"), "{rooms:?}");
}

/// The room API takes the operator's `--api-key` (servers) as well as identity tokens (users):
/// the key reads and creates any room; a user creates only rooms their claim covers, within
/// their address's hourly room budget; anything else is a 401 that says what to send.
#[tokio::test]
async fn the_room_api_takes_the_operators_key_or_a_users_token() {
    let mut config = secure_config();
    config.api_key = Some("operator key for the room API".into());
    config.room_creations_per_hour = 2;
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    let key = "operator key for the room API";
    let mut ada = claims("ada");
    ada["rooms"] = json!(["proj-*"]);
    let create = |room: &str, bearer: Option<String>| {
        let mut r = client.post(hub.url("/api/rooms")).json(&json!({"room": room}));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        async move {
            let r = r.send().await.expect("post");
            let status = r.status().as_u16();
            (status, r.text().await.expect("body"))
        }
    };
    // The operator's servers: any room, no hourly budget.
    for room in ["ops-1", "ops-2", "ops-3"] {
        assert_eq!(create(room, Some(key.into())).await.0, 201, "{room}");
    }
    // A signed-in user: within the claim, and within the address's budget.
    assert_eq!(create("proj-1", Some(hs256(&ada))).await.0, 201);
    let (status, body) = create("ops-9", Some(hs256(&ada))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(create("proj-2", Some(hs256(&ada))).await.0, 201);
    let (status, body) = create("proj-3", Some(hs256(&ada))).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("rooms in the last hour"), "{body}");
    // No credential, or one that is neither: a 401 naming what to send.
    let (status, body) = create("ops-4", None).await;
    assert_eq!(status, 401);
    assert!(body.contains("--api-key") && body.contains("identity token"), "{body}");
    let (status, body) = create("ops-4", Some("a guess".into())).await;
    assert_eq!(status, 401, "{body}");
    // Reading: the key sees every room; the user only what the claim covers.
    let list = |bearer: String| {
        let r = client.get(hub.url("/api/rooms")).bearer_auth(bearer).send();
        async move {
            let v: Value = r.await.expect("get").json().await.expect("json");
            v["rooms"]
                .as_array()
                .expect("rooms")
                .iter()
                .map(|r| r["room"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(key.into()).await, ["ops-1", "ops-2", "ops-3", "proj-1", "proj-2"]);
    assert_eq!(list(hs256(&ada)).await, ["proj-1", "proj-2"]);
    let info = client.get(hub.url("/api/rooms/ops-1")).bearer_auth(key).send().await.expect("get");
    assert_eq!(info.status(), 200);
    let info = client.get(hub.url("/api/rooms/ops-1")).send().await.expect("get");
    assert_eq!(info.status(), 401);
}

/// Taking a room over (`PUT`) and deleting it are the operator's servers' alone: a signed-in
/// user gets 403 even for a room their claim covers and they made; no credential is a 401.
#[tokio::test]
async fn only_the_operators_key_takes_over_or_deletes_a_room() {
    let mut config = secure_config();
    config.api_key = Some("operator key for the room API".into());
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    let mut ada = claims("ada");
    ada["rooms"] = json!(["proj-*"]);
    let token = hs256(&ada);
    let r = client.post(hub.url("/api/rooms")).bearer_auth(&token).json(&json!({"room": "proj-1"})).send();
    assert_eq!(r.await.expect("post").status(), 201);
    let url = hub.url("/api/rooms/proj-1");
    for request in [
        client.put(&url).bearer_auth(&token).json(&json!({"name": "Mine"})),
        client.delete(&url).bearer_auth(&token),
    ] {
        let r = request.send().await.expect("request");
        assert_eq!(r.status(), 403);
        let body = r.text().await.expect("body");
        assert!(body.contains("forbidden") && body.contains("--api-key"), "{body}");
    }
    for request in [client.put(&url).json(&json!({"name": "Mine"})), client.delete(&url)] {
        assert_eq!(request.send().await.expect("request").status(), 401);
    }
    let info: Value =
        client.get(&url).bearer_auth(&token).send().await.expect("get").json().await.expect("json");
    assert_eq!(info["room"], "proj-1", "still there");
    assert!(info.get("name").is_none(), "{info}");
    let r = client.delete(&url).bearer_auth("operator key for the room API").send().await.expect("delete");
    assert_eq!(r.status(), 204);
}

/// The hub closes a connection whose token expired with 4401 ("get a fresh token"); a fresh
/// `auth` sent before then renews it on the same connection.
#[tokio::test]
async fn an_expiring_token_closes_with_4401_unless_renewed() {
    let mut config = secure_config();
    config.ping_interval = Duration::from_millis(100);
    let hub = TestHub::with(config).await;
    // Expired 27 s ago: accepted within the 30 s of clock skew the hub forgives, and cut on the
    // beat once those run out, about 3 s from now.
    let mut short = claims("ada");
    short["iat"] = json!(now() - 600);
    short["exp"] = json!(now() - 27);
    let (mut tab, _, _) = welcomed(&hub, json!({"token": hs256(&short)})).await;
    let message = tab.expect_error(ErrorCode::Unauthorized).await;
    assert!(message.contains("expired"), "{message}");
    assert_eq!(tab.expect_close().await, close::UNAUTHORIZED);

    // The same again, renewed in time.
    short["exp"] = json!(now() - 27);
    let (mut tab, _, _) = welcomed(&hub, json!({"token": hs256(&short)})).await;
    tab.send(json!({"type": "auth", "token": hs256(&claims("ada"))})).await;
    let ServerMessage::Welcome(renewed) = tab.recv_data().await else { panic!("a welcome for the renewal") };
    assert!(renewed.expires_at.is_some_and(|e| e > now() + 60));
    // Past the first token's expiry the connection still works.
    tokio::time::sleep(Duration::from_secs(4)).await;
    tab.ping_works().await;
    // Another user's token cannot take the connection over.
    tab.send(json!({"type": "auth", "token": hs256(&claims("mallory"))})).await;
    assert!(tab.expect_error(ErrorCode::Unauthorized).await.contains("another user"));
}

/// A renewal the hub cannot verify (garbled, or signed with another key) is the app's mistake,
/// not the end of a still-valid identity: an `unauthorized` error, and the connection carries
/// on with the token it has (and renews with a good one).
#[tokio::test]
async fn a_renewal_that_does_not_verify_is_refused_and_the_connection_carries_on() {
    let hub = TestHub::with(secure_config()).await;
    let (mut tab, _, _) = welcomed(&hub, json!({"token": hs256(&claims("ada"))})).await;
    let other_key =
        sign(Algorithm::HS256, &EncodingKey::from_secret(b"another key, 32 bytes or longer"), &claims("ada"));
    for bad in ["not.a.token".to_owned(), other_key] {
        tab.send(json!({"type": "auth", "token": bad})).await;
        let message = tab.expect_error(ErrorCode::Unauthorized).await;
        assert!(message.contains("carries on with its current token"), "{message}");
        tab.ping_works().await;
    }
    tab.say("after-bad-renewals", "still here").await;
    tab.until(|m| matches!(m, ServerMessage::Ack(_)).then_some(())).await;
    tab.send(json!({"type": "auth", "token": hs256(&claims("ada"))})).await;
    tab.until(|m| matches!(m, ServerMessage::Welcome(_)).then_some(())).await;
}

/// A renewed token whose `rooms` claim is narrower takes the rooms it no longer covers away:
/// the connection leaves them (their members see it go) and is told which, in a `forbidden`
/// error naming the room; the rooms still covered go on.
#[tokio::test]
async fn a_narrower_rooms_claim_on_renewal_leaves_the_rooms_it_no_longer_covers() {
    let hub = TestHub::with(secure_config()).await;
    let mut wide = claims("ada");
    wide["rooms"] = json!(["proj-*"]);
    let (mut ada, welcome, _) = welcomed(&hub, json!({"token": hs256(&wide)})).await;
    let (mut bob, _, _) = welcomed(&hub, json!({"token": hs256(&claims("bob"))})).await;
    bob.send(json!({"type": "join", "room": "proj-2"})).await;
    assert!(matches!(bob.recv_data().await, ServerMessage::RoomInfo(_)));
    bob.expect_history().await;
    for room in ["proj-1", "proj-2"] {
        ada.send(json!({"type": "join", "room": room})).await;
        assert!(matches!(ada.recv_data().await, ServerMessage::RoomInfo(_)), "{room}");
        ada.expect_history().await;
    }
    let joined = bob
        .until(|m| match m {
            ServerMessage::UserJoined(p) => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(joined.user.id, welcome.member);

    let mut narrow = claims("ada");
    narrow["rooms"] = json!(["proj-1"]);
    ada.send(json!({"type": "auth", "token": hs256(&narrow)})).await;
    assert!(matches!(ada.recv_data().await, ServerMessage::Welcome(_)));
    let ServerMessage::Error(e) = ada.recv_data().await else { panic!("an error naming the room left") };
    assert_eq!((e.code, e.room.as_deref()), (ErrorCode::Forbidden, Some("proj-2")), "{}", e.message);
    let left = bob
        .until(|m| match m {
            ServerMessage::UserLeft(p) => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(left.user.id, welcome.member);
    // Not a member of proj-2 any more; proj-1 goes on.
    ada.send(json!({"type": "chat", "room": "proj-2", "id": "c-1", "message": "still here?"})).await;
    assert!(ada.expect_error(ErrorCode::NotInRoom).await.contains("proj-2"));
    ada.send(json!({"type": "chat", "room": "proj-1", "id": "c-2", "message": "hello"})).await;
    let ack = ada
        .until(|m| match m {
            ServerMessage::Ack(a) => Some(a),
            ServerMessage::Error(e) => panic!("{e:?}"),
            _ => None,
        })
        .await;
    assert_eq!((ack.id.as_str(), ack.room.as_deref()), ("c-2", Some("proj-1")));
}

/// Renewing a token on an open connection draws on a budget of its own: a page that calls
/// `identify()` on every route change is served, a loop of renewals (each a signature check
/// and a `welcome`) is refused with `rate_limited` and how long to wait, the flooding
/// connection carries on with the token it has, and other connections renew as before.
#[tokio::test]
async fn a_renewal_flood_is_refused_and_honest_renewals_go_on() {
    let hub = TestHub::with(secure_config()).await;
    let token = hs256(&claims("ada"));
    let (mut flood, _, _) = welcomed(&hub, json!({"token": &token})).await;
    let (mut honest, _, _) = welcomed(&hub, json!({"token": &token})).await;
    for _ in 0..30 {
        flood.send(json!({"type": "auth", "token": &token})).await;
    }
    let (mut renewed, mut refused, mut wait_ms) = (0, 0, 0);
    while renewed + refused < 30 {
        match flood.recv_data().await {
            ServerMessage::Welcome(_) => renewed += 1,
            ServerMessage::Error(e) if e.code == ErrorCode::RateLimited => {
                assert!(e.message.contains("renews its identity token too often"), "{}", e.message);
                wait_ms = e.retry_after_ms.expect("how long to wait");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The hub's budget: ten at once, then one every six seconds.
    assert_eq!((renewed, refused), (10, 20));
    assert!((1..=6000).contains(&wait_ms), "{wait_ms}");
    assert!(hub.metric("natter_limited_total{limit=\"renewals\"}").await >= 20);
    flood.ping_works().await;
    // Another connection of the same user and address renews at once.
    honest.send(json!({"type": "auth", "token": &token})).await;
    assert!(matches!(honest.recv_data().await, ServerMessage::Welcome(_)));
    // And the flooding one, once it waited as told.
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    flood.send(json!({"type": "auth", "token": &token})).await;
    assert!(matches!(flood.recv_data().await, ServerMessage::Welcome(_)));
}

/// A `POST /api/rooms` of a room that exists is answered `409 room_exists` without spending a
/// creation from the address's hourly budget: a page that posts its room on every load keeps
/// its budget for rooms it really makes.
#[tokio::test]
async fn creating_a_room_that_exists_costs_no_creation() {
    let mut config = secure_config();
    config.room_creations_per_hour = 2;
    let hub = TestHub::with(config).await;
    let mut ada = claims("ada");
    ada["rooms"] = json!(["proj-*"]);
    let token = hs256(&ada);
    let client = reqwest::Client::new();
    let create = |room: &str| {
        let r = client.post(hub.url("/api/rooms")).bearer_auth(&token).json(&json!({"room": room})).send();
        async move {
            let r = r.await.expect("post");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(create("proj-1").await.0, 201);
    for _ in 0..5 {
        let (status, body) = create("proj-1").await;
        assert_eq!((status, &body["code"]), (409, &json!("room_exists")), "{body}");
    }
    let (status, body) = create("proj-2").await;
    assert_eq!(status, 201, "the second creation of the hour: {body}");
    let (status, body) = create("proj-3").await;
    assert_eq!(status, 429, "the third is over the budget: {body}");
    // An existing room is still answered as such past the budget.
    assert_eq!(create("proj-1").await.0, 409);
}

/// A token the hub accepts when the connection opens, within the clock skew it forgives past
/// `exp`, is not cut on the next ping beat: the beat forgives the same skew.
#[tokio::test]
async fn the_expiry_beat_forgives_the_clock_skew_the_connect_forgave() {
    let mut config = secure_config();
    config.ping_interval = Duration::from_millis(50);
    let hub = TestHub::with(config).await;
    let mut late = claims("ada");
    late["iat"] = json!(now() - 600);
    late["exp"] = json!(now() - 10);
    let (mut tab, welcome, _) = welcomed(&hub, json!({"token": hs256(&late)})).await;
    assert!(welcome.user.is_some(), "accepted: 10 s late is within the forgiven skew");
    // The hub pings on every beat that did not expire the token: three pings, no refusal.
    let mut pings = 0;
    while pings < 3 {
        let next = tokio::time::timeout(DEADLINE, tab.ws.next()).await.expect("a frame in time");
        match next {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_))) => pings += 1,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                assert!(!t.contains("\"error\""), "cut on the beat: {t}");
            }
            other => panic!("expected pings, got {other:?}"),
        }
    }
    tab.ping_works().await;
}

#[tokio::test]
async fn http_carries_credentials_in_headers_and_issues_sessions() {
    let hub = TestHub::with(secure_config()).await;
    let client = reqwest::Client::new();
    // No credentials: a session is issued and comes back in the header.
    let first = client.get(hub.url("/api/chat/poll")).send().await.expect("poll");
    assert_eq!(first.status(), 200);
    let session =
        first.headers().get(SESSION_HEADER).expect("an issued session").to_str().expect("text").to_string();
    let post = client
        .post(hub.url("/api/chat/messages"))
        .header(SESSION_HEADER, &session)
        .json(&json!({"id": "h1", "message": "over http"}))
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 200);
    assert!(post.headers().get(SESSION_HEADER).is_none(), "a session the client has is not issued again");
    // The WebSocket holder of that session sees it.
    let (_tab, _, history) = welcomed(&hub, json!({"session": session})).await;
    assert!(history.messages.iter().any(|m| m.id() == Some("h1")));
    // A bearer token reads the user's conversation; a bad one is a 401 naming the cause.
    let (mut ada, _, _) = welcomed(&hub, json!({"token": hs256(&claims("ada"))})).await;
    ada.say("a1", "hello").await;
    ada.until(|m| matches!(m, ServerMessage::Ack(_)).then_some(())).await;
    let h: Value = client
        .get(hub.url("/api/chat/poll?after=0"))
        .bearer_auth(hs256(&claims("ada")))
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("json");
    assert!(h["messages"].as_array().expect("messages").iter().any(|m| m["id"] == "a1"), "{h}");
    let mut expired = claims("ada");
    expired["exp"] = json!(now() - 600);
    let r = client.get(hub.url("/api/chat/poll")).bearer_auth(hs256(&expired)).send().await.expect("poll");
    assert_eq!(r.status(), 401);
    assert!(r.text().await.expect("body").contains("expired"));
}

#[tokio::test]
async fn a_socket_that_never_says_who_it_is_is_closed() {
    let hub = TestHub::with(secure_config()).await;
    let mut tab = Tab::connect(&format!("ws://{}/ws/chat", hub.addr)).await;
    // Within the hub's 10 s: nothing but the refusal and the close comes.
    let message = tab.expect_error(ErrorCode::Unauthorized).await;
    assert!(message.contains("auth"), "{message}");
    assert_eq!(tab.expect_close().await, close::POLICY);
    assert!(tokio::time::timeout(DEADLINE, tab.ws.next()).await.is_ok());
}
