//! The operator inbox against a real hub on a real SQLite file, with operators made by the
//! real `natter-hub operator` command: the commands themselves, a visitor and two operators
//! talking (reply, typing both ways, handoff, assignment, notes, close and reopen, history
//! pages), and the security list (401 without a session, a visitor's credentials refused,
//! cross-site requests refused, sign-in rate-limited).

mod common;
mod inbox_support;

use std::sync::Arc;

use common::{session, Tab, TestHub};
use inbox_support::{add_operator, db_in, hub_command, sign_in};
use natter_hub::store::sqlite::{SqliteOptions, SqliteStore};
use natter_hub::Config;
use natter_protocol::inbox::{ConversationState, ConversationSummary, InboxEvent};
use natter_protocol::{Role, ServerMessage};
use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// A hub on the SQLite file `db`.
async fn hub_on(db: &str) -> TestHub {
    let store = SqliteStore::open(SqliteOptions::new(db)).expect("open the database");
    TestHub::with_store(Config::for_tests(), Arc::new(store)).await
}

/// A hub with operators `ada` ("Ada Lovelace") and `bob` ("Bob"), and the temp dir it lives in.
async fn hub_with_operators() -> (TestHub, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = db_in(dir.path());
    add_operator(&db, "ada", "Ada Lovelace", PASSWORD);
    add_operator(&db, "bob", "Bob", PASSWORD);
    (hub_on(&db).await, dir)
}

/// The next `conversation` event whose record `pick` accepts.
async fn record(
    feed: &mut inbox_support::Feed,
    mut pick: impl FnMut(&ConversationSummary) -> bool,
) -> ConversationSummary {
    feed.until(|e| match e {
        InboxEvent::Conversation { conversation } if pick(&conversation) => Some(conversation),
        _ => None,
    })
    .await
}

#[test]
fn operator_commands_add_list_change_and_remove() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = db_in(dir.path());
    let (ok, out) =
        hub_command(&["--db", &db, "operator", "add", "ada", "--display-name", "Ada L."], "short\n");
    assert!(!ok && out.contains("at least 10 characters"), "{out}");
    let (ok, out) = hub_command(&["--db", &db, "operator", "add", "Ada!"], "long enough pass\n");
    assert!(!ok && out.contains("\"Ada!\""), "a bad name is named: {out}");
    add_operator(&db, "ada", "Ada L.", PASSWORD);
    let (ok, out) = hub_command(&["--db", &db, "operator", "add", "ada"], "another password\n");
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = hub_command(&["--db", &db, "operator", "list"], "");
    assert!(ok && out.contains("ada\tAda L."), "{out}");
    assert!(!out.contains("argon2"), "no hash is printed: {out}");
    let (ok, out) = hub_command(&["--db", &db, "operator", "passwd", "ada"], "a new password!\n");
    assert!(ok, "{out}");
    let (ok, out) = hub_command(&["--db", &db, "operator", "remove", "nobody"], "");
    assert!(!ok && out.contains("no operator \"nobody\""), "{out}");
    let (ok, out) = hub_command(&["--db", &db, "operator", "remove", "ada"], "");
    assert!(ok, "{out}");
    let (_, out) = hub_command(&["--db", &db, "operator", "list"], "");
    assert!(out.contains("no operators yet"), "{out}");
}

/// `natter-hub operator add` at a real terminal (a pty made by util-linux's `script`, as a
/// person typing has one): the password is asked twice and never echoed.
#[test]
fn at_a_terminal_the_password_is_typed_without_echo() {
    use std::io::{Read as _, Write as _};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("temp dir");
    let db = db_in(dir.path());
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command = format!(
        "{} --db {} operator add ada --display-name Ada",
        quote(env!("CARGO_BIN_EXE_natter-hub")),
        quote(&db)
    );
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_remove("NATTER_REDIS_URL")
        .env_remove("NATTER_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs (Debian's bsdutils, an essential package)");
    // What the terminal shows, as it comes.
    let screen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().expect("stdout");
    let shown = screen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            shown.lock().expect("screen").push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |text: &str| {
        let deadline = Instant::now() + inbox_support::DEADLINE;
        while !screen.lock().expect("screen").contains(text) {
            assert!(Instant::now() < deadline, "{text:?} never showed: {}", screen.lock().expect("screen"));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut keyboard = child.stdin.take().expect("stdin");
    let secret = "a secret nobody may see";
    for prompt in ["Password for ada", "The same password again"] {
        wait_for(prompt);
        // Like a person, type after the prompt is there: the terminal's echo is switched off
        // right after the prompt is written, and a line arriving before that would be echoed by
        // the terminal whatever the program does.
        std::thread::sleep(Duration::from_millis(500));
        keyboard.write_all(format!("{secret}\r").as_bytes()).expect("type");
    }
    wait_for("added operator ada");
    drop(keyboard);
    let status = child.wait().expect("script ends");
    reader.join().expect("reader");
    let screen = screen.lock().expect("screen").clone();
    assert!(status.success(), "{screen}");
    assert!(!screen.contains(secret), "the password was echoed: {screen}");
    let (_, list) = hub_command(&["--db", &db, "operator", "list"], "");
    assert!(list.contains("ada\tAda"), "{list}");
}

#[test]
fn the_store_flags_may_follow_the_operator_command() {
    // `natter-hub operator add ada --db FILE` is how people type it: the flags that choose the
    // store are taken on either side of the subcommand.
    let dir = tempfile::tempdir().expect("temp dir");
    let db = db_in(dir.path());
    let (ok, out) = hub_command(&["operator", "add", "ada", "--db", &db], "long enough pass\n");
    assert!(ok, "{out}");
    let (ok, out) = hub_command(&["operator", "list", "--db", &db], "");
    assert!(ok && out.contains("ada"), "{out}");
}

#[tokio::test]
async fn passwd_and_remove_end_sessions_and_the_hash_is_argon2id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = db_in(dir.path());
    add_operator(&db, "ada", "Ada", PASSWORD);
    let hub = hub_on(&db).await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    assert_eq!(ada.get("/inbox/api/me").await.0, StatusCode::OK);
    let (ok, out) = hub_command(&["--db", &db, "operator", "passwd", "ada"], "the new password\n");
    assert!(ok, "{out}");
    assert_eq!(ada.get("/inbox/api/me").await.0, StatusCode::UNAUTHORIZED, "passwd ends sessions");
    let hash =
        std::process::Command::new("sqlite3").arg(&db).arg("SELECT password_hash FROM operators").output();
    if let Ok(out) = hash {
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("$argon2id$"));
        }
    }
    let again = sign_in(&hub.url(""), "ada", "the new password").await;
    hub_command(&["--db", &db, "operator", "remove", "ada"], "");
    assert_eq!(again.get("/inbox/api/me").await.0, StatusCode::UNAUTHORIZED, "remove ends sessions");
}

#[tokio::test]
async fn operators_answer_a_visitor_and_the_bot_steps_aside() {
    let (hub, _dir) = hub_with_operators().await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let bob = sign_in(&hub.url(""), "bob", PASSWORD).await;
    let mut ada_feed = ada.feed().await;
    let mut bob_feed = bob.feed().await;

    // A visitor connects: the widget is told someone is online.
    let s = session("inbox");
    let (mut visitor, _) = hub.tab(&s).await;
    assert_eq!(
        visitor.recv_data().await,
        ServerMessage::Availability(natter_protocol::Availability { online: Some(true) })
    );

    // Their first message reaches both inboxes, with page and browser; the bot still answers.
    visitor.send(json!({"type":"user","id":"v1","message":"hello","context":{"page":"/pricing","title":"Pricing"}})).await;
    let first = record(&mut ada_feed, |c| c.last_role == Some(Role::User)).await;
    assert_eq!((first.unread, first.preview.as_deref()), (1, Some("hello")));
    assert_eq!(
        (first.context.page.as_deref(), first.context.title.as_deref()),
        (Some("/pricing"), Some("Pricing"))
    );
    assert!(first.id.starts_with("c_") && !first.id.contains(&s), "the inbox never names the session");
    record(&mut bob_feed, |c| c.id == first.id).await;
    let id = first.id.clone();
    visitor.until(|m| matches!(m, ServerMessage::Bot(_)).then_some(())).await;

    // The list has it; the visitor's message reached the feed without the session id.
    let (status, list) = ada.get("/inbox/api/conversations?filter=unassigned").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["conversations"][0]["id"], json!(id));
    assert!(list.get("next").is_none(), "one page: {list}");
    let (_, page) = ada.get(&format!("/inbox/api/conversations/{id}/messages")).await;
    let text = page.to_string();
    assert!(text.contains("hello") && !text.contains(&s), "{text}");

    // Typing both ways.
    visitor.send(json!({"type":"typing","active":true})).await;
    ada_feed
        .until(|e| matches!(e, InboxEvent::Typing { role: Role::User, active: true, .. }).then_some(()))
        .await;
    ada_feed.send(json!({"type":"typing","conversation": id, "active": true})).await;
    let typing = visitor
        .until(|m| match m {
            ServerMessage::Typing(t) if t.role == Role::Agent => Some(t),
            _ => None,
        })
        .await;
    let from = typing.from.expect("the operator");
    assert_eq!(from.name.as_deref(), Some("Ada Lovelace"));
    // The member id does not give away the sign-in name ("ada"), which a guesser would need.
    assert!(from.id.starts_with("op_") && from.id.len() == 19 && !from.id.contains("ada"), "{}", from.id);
    bob_feed
        .until(|e| matches!(e, InboxEvent::Typing { role: Role::Agent, ref name, .. } if name.as_deref() == Some("Ada Lovelace")).then_some(()))
        .await;

    // A private note: both operators see it, the visitor never does.
    let (status, _) = ada
        .post(&format!("/inbox/api/conversations/{id}/notes"), json!({"text":"VIP customer, be nice"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    bob_feed
        .until(|e| matches!(e, InboxEvent::Note { ref note, .. } if note.text.contains("VIP")).then_some(()))
        .await;

    // Ada replies: the visitor sees her name; the conversation is hers and handed over.
    let (status, ack) = ada
        .post(
            &format!("/inbox/api/conversations/{id}/reply"),
            json!({"text":"Hi, I'm Ada. How can I help?","id":"a1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    let agent = visitor
        .until(|m| match m {
            ServerMessage::Agent(a) => Some(a),
            ServerMessage::User(u) | ServerMessage::Bot(u) if u.message.contains("VIP") => {
                panic!("a note reached the visitor")
            }
            _ => None,
        })
        .await;
    assert_eq!(
        (agent.author.as_deref(), agent.message.as_str()),
        (Some("Ada Lovelace"), "Hi, I'm Ada. How can I help?")
    );
    let taken = record(&mut bob_feed, |c| c.handoff).await;
    assert_eq!(taken.assignee.as_deref(), Some("ada"), "assignment is visible to the second operator");
    let (_, mine) = ada.get("/inbox/api/conversations?filter=mine").await;
    assert_eq!(mine["conversations"][0]["id"], json!(id));
    let (_, bobs) = bob.get("/inbox/api/conversations?filter=mine").await;
    assert_eq!(bobs, json!({"conversations": []}));

    // The visitor writes again: no bot answer, while the operator's reply comes through.
    visitor.say("v2", "I need a refund").await;
    ada_feed
        .until(|e| {
            matches!(e, InboxEvent::Message { message: ServerMessage::User(ref u), .. } if u.id == "v2")
                .then_some(())
        })
        .await;
    ada.post(&format!("/inbox/api/conversations/{id}/reply"), json!({"text":"Sure, done.","id":"a2"})).await;
    let done = visitor
        .until(|m| match m {
            ServerMessage::Bot(b) => panic!("the bot answered after the operator took over: {b:?}"),
            ServerMessage::Agent(a) if a.id == "a2" => Some(a),
            _ => None,
        })
        .await;
    assert_eq!(done.message, "Sure, done.");

    // Close: the widget is told, the bot answers again; the visitor writing reopens it.
    let (status, closed) = ada.post(&format!("/inbox/api/conversations/{id}/close"), json!({})).await;
    assert_eq!(
        (status, closed["status"].clone(), closed["handoff"].clone()),
        (StatusCode::OK, json!("closed"), json!(false))
    );
    visitor
        .until(|m| {
            matches!(m, ServerMessage::ConversationStatus(ref c) if c.status == ConversationState::Closed)
                .then_some(())
        })
        .await;
    let (_, closed_list) = bob.get("/inbox/api/conversations?filter=closed").await;
    assert_eq!(closed_list["conversations"][0]["id"], json!(id));
    // A reconnecting widget learns it was closed.
    let (mut again, _) = hub.tab(&s).await;
    again.until(|m| matches!(m, ServerMessage::ConversationStatus(_)).then_some(())).await;
    visitor.say("v3", "thanks!").await;
    let bot = visitor
        .until(|m| match m {
            ServerMessage::Bot(b) => Some(b),
            _ => None,
        })
        .await;
    assert_eq!(bot.reply_to.as_deref(), Some("v3"), "the bot is back, answering the newest message");
    let reopened =
        record(&mut ada_feed, |c| c.status == ConversationState::Open && c.last_seq >= bot.seq).await;
    assert_eq!(reopened.status, ConversationState::Open);
    let (status, _) = ada.post(&format!("/inbox/api/conversations/{id}/close"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, r) = ada.post(&format!("/inbox/api/conversations/{id}/reopen"), json!({})).await;
    assert_eq!((status, r["status"].clone()), (StatusCode::OK, json!("open")));

    // Assign and unassign; an unknown operator is refused by name.
    let (status, r) =
        bob.post(&format!("/inbox/api/conversations/{id}/assign"), json!({"assignee":"bob"})).await;
    assert_eq!((status, r["assignee"].clone()), (StatusCode::OK, json!("bob")));
    let (status, r) =
        bob.post(&format!("/inbox/api/conversations/{id}/assign"), json!({"assignee":"zed"})).await;
    assert!(
        status == StatusCode::BAD_REQUEST && r["message"].as_str().is_some_and(|m| m.contains("\"zed\"")),
        "{r}"
    );
    let (_, r) = bob.post(&format!("/inbox/api/conversations/{id}/assign"), json!({"assignee":null})).await;
    assert_eq!(r["assignee"], json!(null));

    // The notes are stored with the conversation.
    let (_, detail) = bob.get(&format!("/inbox/api/conversations/{id}")).await;
    assert_eq!(detail["notes"][0]["text"], json!("VIP customer, be nice"));
    assert_eq!(detail["notes"][0]["author"], json!("ada"));
}

#[tokio::test]
async fn history_is_paged_from_the_store_and_canned_replies_are_kept() {
    let (hub, _dir) = hub_with_operators().await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let mut feed = ada.feed().await;
    let s = session("paged");
    let (mut visitor, _) = hub.tab(&s).await;
    for i in 1..=5 {
        visitor.say(&format!("m{i}"), &format!("message {i}")).await;
    }
    // Five visitor messages and five bot answers.
    let id = record(&mut feed, |c| c.last_seq >= 10).await.id;
    let (_, newest) = ada.get(&format!("/inbox/api/conversations/{id}/messages?limit=4")).await;
    let seqs = |v: &serde_json::Value| {
        v["messages"]
            .as_array()
            .map(|m| m.iter().map(|m| m["seq"].as_u64().unwrap_or(0)).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(seqs(&newest), [7, 8, 9, 10]);
    assert_eq!(newest["before"], json!(7));
    let (_, older) = ada.get(&format!("/inbox/api/conversations/{id}/messages?limit=4&before=7")).await;
    assert_eq!(seqs(&older), [3, 4, 5, 6]);
    let (_, oldest) = ada.get(&format!("/inbox/api/conversations/{id}/messages?limit=4&before=3")).await;
    assert_eq!((seqs(&oldest), oldest.get("before")), (vec![1, 2], None));

    let (status, _) =
        ada.post("/inbox/api/canned", json!({"shortcut":"refund","text":"Refunds take 3–5 days."})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, r) = ada.post("/inbox/api/canned", json!({"shortcut":"Bad Name","text":"x"})).await;
    assert!(
        status == StatusCode::BAD_REQUEST
            && r["message"].as_str().is_some_and(|m| m.contains("\"Bad Name\""))
    );
    let (_, all) = ada.get("/inbox/api/canned").await;
    assert_eq!(all, json!([{"shortcut":"refund","text":"Refunds take 3–5 days."}]));
}

#[tokio::test]
async fn an_operator_text_over_the_limit_is_named_for_what_it_is() {
    let (hub, _dir) = hub_with_operators().await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let (mut visitor, _) = hub.tab(&session("long")).await;
    let mut feed = ada.feed().await;
    visitor.say("v1", "hello").await;
    let id = record(&mut feed, |c| c.last_role == Some(Role::User)).await.id;
    let long = "x".repeat(4001);
    for (path, body, what) in [
        (format!("/inbox/api/conversations/{id}/reply"), json!({"text": long}), "the reply (`text`)"),
        (format!("/inbox/api/conversations/{id}/notes"), json!({"text": long}), "the note (`text`)"),
        (
            "/inbox/api/canned".to_string(),
            json!({"shortcut":"long","text": long}),
            "the canned reply (`text`)",
        ),
    ] {
        let (status, r) = ada.post(&path, body).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {r}");
        assert_eq!(
            r["message"],
            json!(format!("{what} is 4001 characters long; the limit is 4000")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_empty_reply_is_a_bad_request_and_only_an_unknown_conversation_is_not_found() {
    let (hub, _dir) = hub_with_operators().await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let (mut visitor, _) = hub.tab(&session("empty")).await;
    let mut feed = ada.feed().await;
    visitor.say("v1", "hello").await;
    let id = record(&mut feed, |c| c.last_role == Some(Role::User)).await.id;
    for what in ["reply", "notes"] {
        let (status, r) =
            ada.post(&format!("/inbox/api/conversations/{id}/{what}"), json!({"text": "  "})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {r}");
        assert_eq!(r["code"], "invalid_message", "{what}: {r}");
        let (status, r) = ada
            .post(&format!("/inbox/api/conversations/c_0000000000000000/{what}"), json!({"text": "hi"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {r}");
        assert!(r["message"].as_str().is_some_and(|m| m.contains("no conversation")), "{what}: {r}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_gets_the_hubs_json_error() {
    // A note or canned reply pasted from a long log: the inbox app shows the answer's message,
    // so it must be the hub's JSON error, not a plain-text rejection.
    let (hub, _dir) = hub_with_operators().await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let (status, r) =
        ada.post("/inbox/api/canned", json!({"shortcut":"log","text":"x".repeat(70_000)})).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r["code"], json!("too_large"), "{r}");
    assert!(r["message"].as_str().is_some_and(|m| m.contains("65536")), "{r}");
}

/// The next `bot` message.
async fn next_bot(visitor: &mut Tab) -> natter_protocol::ConversationMessage {
    visitor
        .until(|m| match m {
            ServerMessage::Bot(b) => Some(b),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn asking_for_a_person_hands_over_and_the_bot_answers_only_while_nobody_is_online() {
    let (hub, _dir) = hub_with_operators().await;
    // Nobody online: the handoff rule's away reply says a person will follow up, once, and the
    // bot keeps answering.
    let (mut visitor, _) = hub.tab(&session("human")).await;
    assert_eq!(
        visitor.recv_data().await,
        ServerMessage::Availability(natter_protocol::Availability { online: Some(false) })
    );
    visitor.say("h1", "can I talk to someone?").await;
    let away = next_bot(&mut visitor).await;
    assert_eq!(away.category.as_deref(), Some("human"));
    assert!(away.message.contains("follow up"), "{}", away.message);
    visitor.say("h2", "hello").await;
    let next = next_bot(&mut visitor).await;
    assert_eq!(
        (next.reply_to.as_deref(), next.category.as_deref()),
        (Some("h2"), Some("greeting")),
        "the bot keeps answering, and the away reply said it all: no second notice"
    );

    // Someone signs in: the widget hears it; the conversation was handed over when the visitor
    // asked, so the bot now leaves it to the person.
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let mut feed = ada.feed().await;
    visitor
        .until(|m| matches!(m, ServerMessage::Availability(a) if a.online == Some(true)).then_some(()))
        .await;
    visitor.say("h3", "hello?").await;
    let handed = record(&mut feed, |c| c.last_role == Some(Role::User)).await;
    assert!(handed.handoff && handed.wants_human, "{handed:?}");
    ada.post(&format!("/inbox/api/conversations/{}/reply", handed.id), json!({"text":"Ada here.","id":"a1"}))
        .await;
    visitor
        .until(|m| match m {
            ServerMessage::Bot(b) if b.reply_to.as_deref() == Some("h3") => {
                panic!("the bot answered during a handoff with an operator online")
            }
            ServerMessage::Agent(_) => Some(()),
            _ => None,
        })
        .await;
    // Signing out makes the widget say nobody is online.
    drop(feed);
    visitor
        .until(|m| matches!(m, ServerMessage::Availability(a) if a.online == Some(false)).then_some(()))
        .await;
}

#[tokio::test]
async fn a_handed_over_conversation_is_answered_when_every_operator_has_left() {
    let (hub, _dir) = hub_with_operators().await;
    let ada = sign_in(&hub.url(""), "ada", PASSWORD).await;
    let mut feed = ada.feed().await;
    let (mut visitor, _) = hub.tab(&session("left")).await;
    visitor.say("v1", "my invoice is wrong").await;
    let id = record(&mut feed, |c| c.last_role == Some(Role::User)).await.id;
    next_bot(&mut visitor).await;

    // Ada answers (the conversation is handed over), then signs out: nobody is online.
    ada.post(&format!("/inbox/api/conversations/{id}/reply"), json!({"text":"Looking at it.","id":"a1"}))
        .await;
    visitor.until(|m| matches!(m, ServerMessage::Agent(_)).then_some(())).await;
    drop(feed);
    visitor
        .until(|m| matches!(m, ServerMessage::Availability(a) if a.online == Some(false)).then_some(()))
        .await;

    // The visitor writes: the bot answers rather than leaving them in silence, and says (in the
    // rules file's words) that a person will follow up.
    visitor.say("v2", "hello? anyone?").await;
    let answer = next_bot(&mut visitor).await;
    assert_eq!(answer.reply_to.as_deref(), Some("v2"));
    let notice = next_bot(&mut visitor).await;
    assert_eq!((notice.reply_to.as_deref(), notice.category.as_deref()), (Some("v2"), Some("follow_up")));
    assert_eq!(notice.message, natter_hub::reply::DEFAULT_FOLLOW_UP);
    assert_eq!(notice.author.as_deref(), Some("Natter"), "the bot says it");
    // Once: the next answer comes without it.
    visitor.say("v3", "the total is doubled").await;
    let plain = next_bot(&mut visitor).await;
    assert_eq!(plain.reply_to.as_deref(), Some("v3"));
    visitor.say("v4", "hello").await;
    let plain = next_bot(&mut visitor).await;
    assert_eq!((plain.reply_to.as_deref(), plain.category.as_deref()), (Some("v4"), Some("greeting")));

    // Ada is back: the bot is silent again; she answers, and leaves again; the bot answers and
    // says it anew (a person did follow up in between).
    let mut feed = ada.feed().await;
    visitor
        .until(|m| matches!(m, ServerMessage::Availability(a) if a.online == Some(true)).then_some(()))
        .await;
    visitor.say("v5", "still there?").await;
    let seen = record(&mut feed, |c| c.last_role == Some(Role::User)).await;
    assert!(seen.handoff && seen.follow_up_seq > 0, "{seen:?}");
    ada.post(&format!("/inbox/api/conversations/{id}/reply"), json!({"text":"Fixed.","id":"a2"})).await;
    visitor
        .until(|m| match m {
            ServerMessage::Bot(b) => panic!("the bot answered with an operator online: {b:?}"),
            ServerMessage::Agent(a) if a.id == "a2" => Some(()),
            _ => None,
        })
        .await;
    drop(feed);
    visitor
        .until(|m| matches!(m, ServerMessage::Availability(a) if a.online == Some(false)).then_some(()))
        .await;
    visitor.say("v6", "thanks, one more thing").await;
    assert_eq!(next_bot(&mut visitor).await.reply_to.as_deref(), Some("v6"));
    assert_eq!(next_bot(&mut visitor).await.category.as_deref(), Some("follow_up"));
}

#[tokio::test]
async fn availability_is_shown_only_on_a_hub_with_operators() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = db_in(dir.path());
    let hub = hub_on(&db).await;
    // No operator accounts: nobody will answer in person, so the widget is told nothing
    // (`online: null`), not "away".
    let (mut visitor, _) = hub.tab(&session("nobody")).await;
    assert_eq!(
        visitor.recv_data().await,
        ServerMessage::Availability(natter_protocol::Availability { online: None })
    );
    // The first operator is added while the widget is connected: it now says "away".
    add_operator(&db, "ada", "Ada", PASSWORD);
    visitor
        .until(|m| matches!(m, ServerMessage::Availability(a) if a.online == Some(false)).then_some(()))
        .await;
    let (mut late, _) = hub.tab(&session("late")).await;
    assert_eq!(
        late.recv_data().await,
        ServerMessage::Availability(natter_protocol::Availability { online: Some(false) })
    );
    // The last one is removed: nothing to show again.
    let (ok, out) = hub_command(&["--db", &db, "operator", "remove", "ada"], "");
    assert!(ok, "{out}");
    visitor.until(|m| matches!(m, ServerMessage::Availability(a) if a.online.is_none()).then_some(())).await;
}

/// Every inbox API answers 401 without a session, and a visitor's session or token does not
/// count as one.
#[tokio::test]
async fn every_inbox_api_and_the_socket_need_an_operator_session() {
    let (hub, _dir) = hub_with_operators().await;
    let http = reqwest::Client::new();
    let base = hub.url("");
    let gets = [
        "/inbox/api/me",
        "/inbox/api/operators",
        "/inbox/api/conversations",
        "/inbox/api/conversations/c_0000000000000000",
        "/inbox/api/conversations/c_0000000000000000/messages",
        "/inbox/api/canned",
    ];
    let posts = [
        "/inbox/api/signout",
        "/inbox/api/conversations/c_0000000000000000/reply",
        "/inbox/api/conversations/c_0000000000000000/notes",
        "/inbox/api/conversations/c_0000000000000000/assign",
        "/inbox/api/conversations/c_0000000000000000/close",
        "/inbox/api/conversations/c_0000000000000000/reopen",
        "/inbox/api/conversations/c_0000000000000000/read",
        "/inbox/api/canned",
    ];
    // A real visitor session, as the widget holds it.
    let mut tab = Tab::connect(&format!("ws://{}/ws/chat", hub.addr)).await;
    tab.send(json!({"type":"auth"})).await;
    let ServerMessage::Welcome(w) = tab.recv_data().await else { panic!("welcome") };
    let visitor_session = w.session.expect("issued");
    for credentials in [
        None,
        Some(("x-natter-session", visitor_session.clone())),
        Some(("authorization", format!("Bearer {visitor_session}"))),
        Some(("cookie", "natter_operator=forged".to_string())),
    ] {
        for path in gets {
            let mut r = http.get(format!("{base}{path}"));
            if let Some((k, v)) = &credentials {
                r = r.header(*k, v);
            }
            let r = r.send().await.expect("get");
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "GET {path} with {credentials:?}");
            let body: serde_json::Value = r.json().await.expect("a JSON error");
            assert_eq!(body["code"], json!("unauthorized"));
        }
        for path in posts.iter().copied().chain(["/inbox/api/canned/x"]) {
            let method =
                if path == "/inbox/api/canned/x" { reqwest::Method::DELETE } else { reqwest::Method::POST };
            let mut r = http
                .request(method, format!("{base}{path}"))
                .header("origin", &base)
                .json(&json!({"text":"x"}));
            if let Some((k, v)) = &credentials {
                r = r.header(*k, v);
            }
            assert_eq!(
                r.send().await.expect("post").status(),
                StatusCode::UNAUTHORIZED,
                "{path} with {credentials:?}"
            );
        }
        // The operator socket refuses before upgrading.
        let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            format!("ws://{}/inbox/ws", hub.addr),
        )
        .expect("request");
        request.headers_mut().insert("origin", base.parse().expect("header"));
        if let Some((k, v)) = &credentials {
            request.headers_mut().insert(*k, v.parse().expect("header"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("the operator socket opened without a session: {:?}", other.map(|_| ())),
        }
    }
}

/// A cross-site page cannot make a signed-in operator's browser change anything, sign in, or
/// open the operator socket; the CSRF token is required too.
#[tokio::test]
async fn cross_site_requests_are_refused() {
    let (hub, _dir) = hub_with_operators().await;
    let base = hub.url("");
    let ada = sign_in(&base, "ada", PASSWORD).await;
    let http = reqwest::Client::new();
    let post = |origin: Option<&str>, csrf: Option<&str>, site: Option<&str>| {
        let mut r = http
            .post(format!("{base}/inbox/api/canned"))
            .header("cookie", &ada.cookie)
            .json(&json!({"shortcut":"x","text":"y"}));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(c) = csrf {
            r = r.header("x-natter-csrf", c);
        }
        if let Some(s) = site {
            r = r.header("sec-fetch-site", s);
        }
        r.send()
    };
    let csrf = ada.csrf.as_str();
    assert_eq!(
        post(Some("https://evil.example"), Some(csrf), None).await.expect("post").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(post(None, Some(csrf), None).await.expect("post").status(), StatusCode::FORBIDDEN);
    assert_eq!(
        post(Some(&base), Some(csrf), Some("cross-site")).await.expect("post").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(post(Some(&base), None, None).await.expect("post").status(), StatusCode::FORBIDDEN);
    assert_eq!(post(Some(&base), Some("0123"), None).await.expect("post").status(), StatusCode::FORBIDDEN);
    assert_eq!(
        post(Some(&base), Some(csrf), Some("same-origin")).await.expect("post").status(),
        StatusCode::CREATED
    );
    // Login CSRF: a sign-in posted from another site.
    let r = http
        .post(format!("{base}/inbox/api/signin"))
        .header("origin", "https://evil.example")
        .json(&json!({"name":"ada","password":PASSWORD}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Cross-site WebSocket hijacking.
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/inbox/ws", hub.addr),
    )
    .expect("request");
    request.headers_mut().insert("cookie", ada.cookie.parse().expect("header"));
    request.headers_mut().insert("origin", "https://evil.example".parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a cross-site operator socket opened: {:?}", other.map(|_| ())),
    }
    // Signing out ends the session for good.
    let (status, _) = ada.post("/inbox/api/signout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ada.get("/inbox/api/me").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_in_is_rate_limited_and_says_nothing_about_which_names_exist() {
    let (hub, _dir) = hub_with_operators().await;
    let base = hub.url("");
    let http = reqwest::Client::new();
    let attempt = |name: &'static str, password: &'static str| {
        http.post(format!("{base}/inbox/api/signin"))
            .header("origin", &base)
            .json(&json!({"name":name,"password":password}))
            .send()
    };
    let nobody: serde_json::Value =
        attempt("nobody", "whatever it is").await.expect("post").json().await.expect("json");
    let wrong: serde_json::Value =
        attempt("ada", "not the password").await.expect("post").json().await.expect("json");
    assert_eq!(nobody["message"], wrong["message"], "an unknown name and a wrong password read alike");
    for _ in 0..4 {
        assert_eq!(
            attempt("ada", "not the password").await.expect("post").status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = attempt("ada", PASSWORD).await.expect("post");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    let retry: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    let said: serde_json::Value = limited.json().await.expect("json");
    assert_eq!(
        said["message"],
        json!(format!("too many sign-in attempts; wait {retry} seconds and try again")),
        "the page says how long, as the header does"
    );
    assert_eq!(
        attempt("bob", PASSWORD).await.expect("post").status(),
        StatusCode::OK,
        "other operators are not locked out"
    );
    assert!(hub.metric("natter_signin_refused_total").await >= 6);
}

#[tokio::test]
async fn a_sign_in_name_no_operator_can_have_is_refused_before_the_rate_limiter() {
    // The limiter keeps a bucket per failed name; a name that cannot exist must not get one
    // (else each attempt could park up to the body limit in the hub's memory).
    let (hub, _dir) = hub_with_operators().await;
    let base = hub.url("");
    let http = reqwest::Client::new();
    for (name, says) in [("x".repeat(20_000), "at most 64 characters"), ("ada lovelace".into(), "a-z, 0-9")] {
        let r = http
            .post(format!("{base}/inbox/api/signin"))
            .header("origin", &base)
            .json(&json!({"name": name, "password": "whatever it is"}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let text = r.text().await.expect("body");
        assert!(text.contains(says) && text.len() < 300, "{text}");
    }
    assert_eq!(hub.metric("natter_signin_refused_total").await, 0, "no password was tried");
}

#[tokio::test]
async fn the_inbox_app_is_served_with_a_strict_policy() {
    let hub = TestHub::start().await;
    let r = reqwest::get(hub.url("/inbox")).await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(r.text().await.expect("text").contains("app.js"));
    // The memory engine keeps no inbox, and says so.
    let r = reqwest::Client::new()
        .post(hub.url("/inbox/api/signin"))
        .header("origin", hub.url(""))
        .json(&json!({"name":"ada","password":"x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.expect("text").contains("--db"));
}

/// "Operators online" counts people, not their connections: Ada with the inbox open in two
/// tabs is one operator online, Bob makes two, and Ada closing one tab leaves two.
#[tokio::test]
async fn operators_online_counts_operators_not_their_tabs() {
    let (hub, _dir) = hub_with_operators().await;
    let base = hub.url("");
    let ada = sign_in(&base, "ada", PASSWORD).await;
    let bob = sign_in(&base, "bob", PASSWORD).await;
    let online = |want: u32| {
        move |e: InboxEvent| matches!(e, InboxEvent::Availability { online } if online == want).then_some(())
    };
    let mut first = ada.feed().await;
    first.until(online(1)).await;
    let second = ada.feed().await;
    // The second tab's arrival is announced with the count it makes: still one.
    let counted = first.until(|e| match e {
        InboxEvent::Availability { online } => Some(online),
        _ => None,
    });
    assert_eq!(counted.await, 1, "one operator in two tabs");
    let mut bobs = bob.feed().await;
    bobs.until(online(2)).await;
    drop(second.ws);
    let counted = first.until(|e| match e {
        InboxEvent::Availability { online } => Some(online),
        _ => None,
    });
    assert_eq!(counted.await, 2, "Ada still has a tab open");
    drop(first);
    bobs.until(online(1)).await;
}
