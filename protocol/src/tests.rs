//! Compatibility with the original widget's message format and a round trip of every message type.

use super::*;
use serde_json::json;

/// The original widget's example message, byte for byte as its design document shows it (the `context` comment replaced
/// by an object, since JSON has no comments).
const ORIGINAL_FORMAT: &str = r#"{
  "type": "user",
  "message": "Text content",
  "timestamp": "2025-08-23T10:00:00Z",
  "sessionId": "session-xxx",
  "context": { "page": "/tickets/42" }
}"#;

#[test]
fn original_format_parses_unchanged() {
    let msg: ClientMessage = serde_json::from_str(ORIGINAL_FORMAT).expect("the original format parses");
    assert_eq!(
        msg,
        ClientMessage::User(UserSend {
            id: None,
            message: "Text content".into(),
            timestamp: Some("2025-08-23T10:00:00Z".into()),
            session_id: Some("session-xxx".into()),
            context: Some(json!({"page": "/tickets/42"}).into()),
        })
    );
}

#[test]
fn original_format_minimal_and_empty_context() {
    let msg: ClientMessage = serde_json::from_str(r#"{"type":"user","message":"hi","context":{}}"#).unwrap();
    assert!(matches!(msg, ClientMessage::User(UserSend { ref message, .. }) if message == "hi"));
}

#[test]
fn unknown_fields_are_ignored() {
    let msg: ClientMessage =
        serde_json::from_str(r#"{"type":"ping","nonce":7,"futureField":{"a":1}}"#).unwrap();
    assert_eq!(msg, ClientMessage::Ping(Ping { nonce: Some(json!(7).into()) }));
}

#[test]
fn unknown_type_and_missing_field_are_errors() {
    assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"teleport"}"#).is_err());
    assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"chat","message":"x"}"#).is_err());
    assert!(serde_json::from_str::<ClientMessage>(r#"{"message":"x"}"#).is_err());
}

fn client_examples() -> Vec<(ClientMessage, serde_json::Value)> {
    vec![
        (
            ClientMessage::Auth(Auth {
                token: Some("eyJ.x.y".into()),
                session: None,
                after: Some(7),
                page: Some("/pricing".into()),
            }),
            json!({"type":"auth","token":"eyJ.x.y","after":7,"page":"/pricing"}),
        ),
        (
            ClientMessage::User(UserSend {
                id: Some("m1".into()),
                message: "hello".into(),
                timestamp: Some("2026-11-22T10:00:00Z".into()),
                session_id: Some("s1".into()),
                context: Some(json!({"page": "/"}).into()),
            }),
            json!({"type":"user","id":"m1","message":"hello","timestamp":"2026-11-22T10:00:00Z","sessionId":"s1","context":{"page":"/"}}),
        ),
        (
            ClientMessage::Chat(ChatSend {
                room: "general".into(),
                id: Some("c1".into()),
                message: "hi all".into(),
                name: None,
            }),
            json!({"type":"chat","room":"general","id":"c1","message":"hi all"}),
        ),
        (
            ClientMessage::Join(Join { room: "general".into(), name: Some("Ada".into()), after: Some(3) }),
            json!({"type":"join","room":"general","name":"Ada","after":3}),
        ),
        (ClientMessage::Leave(Leave { room: "general".into() }), json!({"type":"leave","room":"general"})),
        (
            ClientMessage::Typing(TypingSend { room: None, active: true }),
            json!({"type":"typing","active":true}),
        ),
        (
            ClientMessage::CursorPosition(RelaySend { room: "r".into(), data: json!({"x":1,"y":2}).into() }),
            json!({"type":"cursor_position","room":"r","data":{"x":1,"y":2}}),
        ),
        (
            ClientMessage::ChainUpdate(RelaySend {
                room: "r".into(),
                data: json!({"node":"a","op":"add"}).into(),
            }),
            json!({"type":"chain_update","room":"r","data":{"node":"a","op":"add"}}),
        ),
        (ClientMessage::Ping(Ping { nonce: None }), json!({"type":"ping"})),
    ]
}

fn conv(id: &str, seq: u64) -> ConversationMessage {
    ConversationMessage {
        id: id.into(),
        seq,
        message: "text".into(),
        timestamp: "2026-11-22T10:00:00.000Z".into(),
        session_id: "s1".into(),
        ..Default::default()
    }
}

fn member() -> Member {
    Member { id: "u_1a2b".into(), name: Some("Ada".into()), verified: false }
}

fn server_examples() -> Vec<(ServerMessage, serde_json::Value)> {
    let ts = "2026-11-22T10:00:00.000Z";
    vec![
        (
            ServerMessage::Welcome(Welcome {
                session: Some("9f2c.51ab".into()),
                member: "u_1a2b".into(),
                user: None,
                expires_at: None,
                budgets: None,
            }),
            json!({"type":"welcome","session":"9f2c.51ab","member":"u_1a2b"}),
        ),
        (
            ServerMessage::Welcome(Welcome {
                session: Some("9f2c.51ab".into()),
                member: "u_1a2b".into(),
                user: None,
                expires_at: None,
                budgets: Some(Budgets::default()),
            }),
            json!({"type":"welcome","session":"9f2c.51ab","member":"u_1a2b",
                   "budgets":{"messagesPerMinute":300,"messageBurst":20,"frameBudget":1_048_576,"maxRooms":100}}),
        ),
        (
            ServerMessage::Welcome(Welcome {
                session: None,
                member: "u_77aa".into(),
                user: Some(UserProfile {
                    id: "42".into(),
                    name: Some("Ada".into()),
                    email: Some("ada@example.com".into()),
                    avatar: None,
                }),
                expires_at: Some(1_790_000_000),
                budgets: None,
            }),
            json!({"type":"welcome","member":"u_77aa","user":{"id":"42","name":"Ada","email":"ada@example.com"},"expiresAt":1_790_000_000u64}),
        ),
        (
            ServerMessage::User(conv("m1", 1)),
            json!({"type":"user","id":"m1","seq":1,"message":"text","timestamp":ts,"sessionId":"s1"}),
        ),
        (
            ServerMessage::Bot(ConversationMessage {
                category: Some("greeting".into()),
                reply_to: Some("m1".into()),
                ..conv("b1", 2)
            }),
            json!({"type":"bot","id":"b1","seq":2,"message":"text","timestamp":ts,"sessionId":"s1","category":"greeting","replyTo":"m1"}),
        ),
        (
            ServerMessage::Agent(ConversationMessage { author: Some("Sam".into()), ..conv("a1", 3) }),
            json!({"type":"agent","id":"a1","seq":3,"message":"text","timestamp":ts,"sessionId":"s1","author":"Sam"}),
        ),
        (
            ServerMessage::System(SystemNotice {
                message: "restarting".into(),
                timestamp: ts.into(),
                room: None,
            }),
            json!({"type":"system","message":"restarting","timestamp":ts}),
        ),
        (
            ServerMessage::Chat(RoomMessage {
                room: "general".into(),
                id: "c1".into(),
                seq: 4,
                message: "hi".into(),
                timestamp: ts.into(),
                from: member(),
            }),
            json!({"type":"chat","room":"general","id":"c1","seq":4,"message":"hi","timestamp":ts,"from":{"id":"u_1a2b","name":"Ada"}}),
        ),
        (
            ServerMessage::Typing(TypingNotice { room: None, role: Role::Bot, from: None, active: true }),
            json!({"type":"typing","role":"bot","active":true}),
        ),
        (
            ServerMessage::UserJoined(Presence {
                room: "general".into(),
                user: member(),
                timestamp: ts.into(),
            }),
            json!({"type":"user_joined","room":"general","user":{"id":"u_1a2b","name":"Ada"},"timestamp":ts}),
        ),
        (
            ServerMessage::UserLeft(Presence {
                room: "general".into(),
                user: member(),
                timestamp: ts.into(),
            }),
            json!({"type":"user_left","room":"general","user":{"id":"u_1a2b","name":"Ada"},"timestamp":ts}),
        ),
        (
            ServerMessage::RoomInfo(RoomInfo {
                room: "general".into(),
                name: Some("General".into()),
                metadata: json!({"topic":"x"}).into(),
                members: vec![member()],
                member_count: 1,
                last_seq: 4,
                created_at: ts.into(),
            }),
            json!({"type":"room_info","room":"general","name":"General","metadata":{"topic":"x"},"members":[{"id":"u_1a2b","name":"Ada"}],"memberCount":1,"lastSeq":4,"createdAt":ts}),
        ),
        (
            ServerMessage::CursorPosition(RelayNotice {
                room: "r".into(),
                from: member(),
                data: json!({"x":1}).into(),
            }),
            json!({"type":"cursor_position","room":"r","from":{"id":"u_1a2b","name":"Ada"},"data":{"x":1}}),
        ),
        (
            ServerMessage::ChainUpdate(RelayNotice {
                room: "r".into(),
                from: member(),
                data: json!([1, 2]).into(),
            }),
            json!({"type":"chain_update","room":"r","from":{"id":"u_1a2b","name":"Ada"},"data":[1,2]}),
        ),
        (
            ServerMessage::Ack(Ack { id: "m1".into(), seq: 1, room: None, duplicate: false }),
            json!({"type":"ack","id":"m1","seq":1}),
        ),
        (
            ServerMessage::Ack(Ack {
                id: "c1".into(),
                seq: 4,
                room: Some("general".into()),
                duplicate: true,
            }),
            json!({"type":"ack","id":"c1","seq":4,"room":"general","duplicate":true}),
        ),
        (
            ServerMessage::History(History {
                room: None,
                messages: vec![ServerMessage::User(conv("m9", 9))],
                complete: false,
                gap: Some(Gap { from: 3, to: 8 }),
                last_seq: 9,
            }),
            json!({"type":"history","messages":[{"type":"user","id":"m9","seq":9,"message":"text","timestamp":ts,"sessionId":"s1"}],"complete":false,"gap":{"from":3,"to":8},"lastSeq":9}),
        ),
        (
            ServerMessage::Error(ErrorFrame {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                id: Some("m2".into()),
                retry_after_ms: Some(500),
                room: None,
            }),
            json!({"type":"error","code":"rate_limited","message":"slow down","id":"m2","retryAfterMs":500}),
        ),
        (
            ServerMessage::Pong(Pong { nonce: Some(json!("n").into()), timestamp: ts.into() }),
            json!({"type":"pong","nonce":"n","timestamp":ts}),
        ),
        (
            ServerMessage::Availability(Availability { online: Some(true) }),
            json!({"type":"availability","online":true}),
        ),
        (
            ServerMessage::Availability(Availability { online: None }),
            json!({"type":"availability","online":null}),
        ),
        (
            ServerMessage::ConversationStatus(ConversationStatus {
                status: inbox::ConversationState::Closed,
                timestamp: ts.into(),
            }),
            json!({"type":"conversation_status","status":"closed","timestamp":ts}),
        ),
    ]
}

#[test]
fn every_client_message_round_trips() {
    for (msg, wire) in client_examples() {
        assert_eq!(serde_json::to_value(&msg).unwrap(), wire, "encode {msg:?}");
        assert_eq!(serde_json::from_value::<ClientMessage>(wire).unwrap(), msg);
    }
}

#[test]
fn every_server_message_round_trips() {
    for (msg, wire) in server_examples() {
        assert_eq!(serde_json::to_value(&msg).unwrap(), wire, "encode {msg:?}");
        assert_eq!(serde_json::from_value::<ServerMessage>(wire).unwrap(), msg);
    }
}

/// `kind()` is the serde `type` tag of every variant, in both directions, and the examples
/// above cover every name in `KINDS` (`kind()` itself is an exhaustive match, so a new variant
/// cannot be added without a name; adding it to `KINDS` and the examples is this test's ask).
#[test]
fn kind_is_the_type_tag_of_every_variant() {
    let mut seen = std::collections::BTreeSet::new();
    for (msg, wire) in client_examples() {
        assert_eq!(wire["type"], json!(msg.kind()), "{msg:?}");
        seen.insert(msg.kind());
    }
    assert_eq!(seen, ClientMessage::KINDS.into_iter().collect(), "an example of every client message");
    let mut seen = std::collections::BTreeSet::new();
    for (msg, wire) in server_examples() {
        assert_eq!(wire["type"], json!(msg.kind()), "{msg:?}");
        seen.insert(msg.kind());
    }
    assert_eq!(seen, ServerMessage::KINDS.into_iter().collect(), "an example of every hub message");
    for role in Role::ALL {
        assert_eq!(serde_json::to_value(role).unwrap(), json!(role.as_str()));
    }
}

#[test]
fn only_stored_kinds_take_a_seq() {
    for (mut msg, _) in server_examples() {
        let storable = matches!(msg.kind(), "user" | "bot" | "agent" | "chat");
        match msg.set_seq(77) {
            Ok(()) => {
                assert!(storable, "{msg:?}");
                assert_eq!(msg.seq(), Some(77));
            }
            Err(e) => {
                assert!(!storable, "{msg:?}");
                assert_eq!(e.kind, msg.kind());
            }
        }
    }
}

#[test]
fn every_error_code_has_its_wire_name() {
    for code in ErrorCode::ALL {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        assert_eq!(serde_json::from_value::<ErrorCode>(json!(code.as_str())).unwrap(), code);
    }
    // A code from a newer hub still parses.
    assert_eq!(serde_json::from_value::<ErrorCode>(json!("quota_exceeded")).unwrap(), ErrorCode::Unknown);
}

#[test]
fn verified_members_say_so_and_others_do_not() {
    let m = Member { verified: true, ..member() };
    assert_eq!(serde_json::to_value(&m).unwrap(), json!({"id":"u_1a2b","name":"Ada","verified":true}));
    assert_eq!(serde_json::to_value(member()).unwrap(), json!({"id":"u_1a2b","name":"Ada"}));
}

/// Credentials never reach a log through `Debug`.
#[test]
fn debug_never_shows_a_token_or_a_session() {
    let auth = Auth {
        token: Some("eyJhbGciOiJIUzI1NiJ9.secret".into()),
        session: Some("feedc0de.tag".into()),
        after: None,
        page: None,
    };
    let welcome = Welcome { session: Some("feedc0de.tag".into()), ..Default::default() };
    for text in [format!("{auth:?}"), format!("{:?}", ClientMessage::Auth(auth)), format!("{welcome:?}")] {
        assert!(!text.contains("secret") && !text.contains("feedc0de"), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }
}

#[test]
fn seq_and_id_accessors() {
    let m = ServerMessage::Bot(conv("b", 5));
    assert_eq!((m.seq(), m.id()), (Some(5), Some("b")));
    let p = ServerMessage::Pong(Pong::default());
    assert_eq!((p.seq(), p.id()), (None, None));
}

/// Every JSON example in docs/protocol.md parses as the message the section it stands in says:
/// the documentation cannot drift from the types.
#[test]
fn every_documented_example_parses() {
    let doc = include_str!("../../docs/protocol.md");
    let mut section = "";
    let mut in_json = false;
    let mut checked = 0;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = h;
        } else if line.starts_with("```json") {
            in_json = true;
        } else if line.starts_with("```") {
            in_json = false;
        } else if in_json && !line.trim().is_empty() {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON in {section}: {line}: {e}"));
            let as_client = serde_json::from_value::<ClientMessage>(value.clone());
            let as_server = serde_json::from_value::<ServerMessage>(value);
            match section {
                s if s.starts_with("Client") || s.starts_with("HTTP") => {
                    as_client.unwrap_or_else(|e| panic!("{line}: not a client message: {e}"));
                }
                s if s.starts_with("Hub") => {
                    as_server.unwrap_or_else(|e| panic!("{line}: not a hub message: {e}"));
                }
                s if s.starts_with("Inbox") => {
                    let inbox = serde_json::from_str::<inbox::InboxEvent>(line)
                        .map(|_| ())
                        .or_else(|_| serde_json::from_str::<inbox::InboxCommand>(line).map(|_| ()));
                    inbox.unwrap_or_else(|e| panic!("{line}: not an inbox frame: {e}"));
                }
                _ => assert!(as_client.is_ok() || as_server.is_ok(), "{line}: neither direction parses"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} examples found in docs/protocol.md");
}

#[test]
fn a_deleted_room_is_an_error_naming_the_room() {
    let text = r#"{"type":"error","code":"room_deleted","message":"the operator deleted room \"standup\"","room":"standup"}"#;
    let parsed: ServerMessage = serde_json::from_str(text).unwrap();
    let ServerMessage::Error(frame) = &parsed else { panic!("{parsed:?}") };
    assert_eq!(
        (frame.code, frame.room.as_deref(), frame.id.as_deref()),
        (ErrorCode::RoomDeleted, Some("standup"), None)
    );
    assert!(!frame.code.is_retryable());
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(back, serde_json::from_str::<serde_json::Value>(text).unwrap());
}

#[test]
fn a_spliced_history_is_the_text_serde_writes() {
    let mut quoted = conv("q\"1", 7);
    quoted.message = "a \"quoted\" line\nand a \\ backslash, é, \u{202e}".into();
    quoted.context = Some(RawJson::from_string(r#"{"seq":0,"page":"/x"}"#.into()).unwrap());
    let chat = ServerMessage::Chat(RoomMessage {
        id: "c1".into(),
        seq: 8,
        room: "lo\"bby".into(),
        from: member(),
        message: "hi".into(),
        timestamp: "2026-11-30T00:00:00Z".into(),
    });
    let stored = [ServerMessage::User(quoted), chat];
    let texts: Vec<String> = stored.iter().map(|m| serde_json::to_string(m).unwrap()).collect();
    for room in [None, Some("lo\"bby\u{7}")] {
        for gap in [None, Some(Gap { from: 2, to: 6 })] {
            for n in [0, 1, 2] {
                let parsed = ServerMessage::History(History {
                    room: room.map(Into::into),
                    messages: stored[..n].to_vec(),
                    complete: gap.is_none(),
                    gap,
                    last_seq: 8,
                });
                let spliced = History::splice(room, &texts[..n], gap.is_none(), gap, 8);
                assert_eq!(
                    spliced,
                    serde_json::to_string(&parsed).unwrap(),
                    "room {room:?}, gap {gap:?}, {n}"
                );
                assert_eq!(ServerMessage::from_json(&spliced).unwrap(), parsed);
            }
        }
    }
}
