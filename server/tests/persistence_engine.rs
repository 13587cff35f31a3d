//! The SQLite engine on its own, on real database files in temp dirs: seq and de-duplication,
//! ordered delivery, history pages, rooms, reopening, retention, migrations, and a `kill -9`
//! of a process in the middle of writing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use natter_hub::store::sqlite::{SqliteOptions, SqliteStore};
use natter_hub::store::{ConversationKey, Draft, Event, RoomRecord, Store, StoreError, StoredFrame};
use natter_protocol::{ConversationMessage, Member, Pong, RoomMessage, ServerMessage};

fn session(s: &str) -> ConversationKey {
    ConversationKey::Session(s.into())
}

fn user_draft(session: &str, id: &str, text: &str) -> Draft {
    Draft {
        id: id.into(),
        message: ServerMessage::User(ConversationMessage {
            id: id.into(),
            seq: 0,
            message: text.into(),
            timestamp: "2026-11-22T00:00:00Z".into(),
            session_id: session.into(),
            ..Default::default()
        }),
        operator: None,
    }
}

fn chat_draft(room: &str, id: &str, text: &str) -> Draft {
    chat_from(room, "m1", id, text)
}

fn chat_from(room: &str, member: &str, id: &str, text: &str) -> Draft {
    Draft {
        id: id.into(),
        message: ServerMessage::Chat(RoomMessage {
            room: room.into(),
            id: id.into(),
            seq: 0,
            message: text.into(),
            timestamp: "2026-11-22T00:00:00Z".into(),
            from: Member { id: member.into(), name: Some("Ann".into()), verified: false },
        }),
        operator: None,
    }
}

fn text_of(m: &ServerMessage) -> &str {
    match m {
        ServerMessage::User(c) | ServerMessage::Bot(c) | ServerMessage::Agent(c) => &c.message,
        ServerMessage::Chat(c) => &c.message,
        _ => "",
    }
}

/// The text of a stored frame as a history page holds it.
fn stored_text(m: &StoredFrame) -> String {
    text_of(&m.parse().expect("a stored frame parses")).to_owned()
}

fn open(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(path)).expect("open the database")
}

async fn append(store: &SqliteStore, key: &ConversationKey, draft: Draft) -> (u64, bool) {
    let a = store.append(key, draft).await.expect("append");
    (a.seq, a.duplicate)
}

#[tokio::test]
async fn seq_counts_per_conversation_and_events_follow_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    let mut events = store.subscribe();
    let a = session("a");
    let b = ConversationKey::Room("lobby".into());
    assert_eq!(append(&store, &a, user_draft("a", "a1", "one")).await, (1, false));
    assert_eq!(append(&store, &a, user_draft("a", "a2", "two")).await, (2, false));
    assert_eq!(append(&store, &b, chat_draft("lobby", "b1", "hello")).await, (1, false));
    assert_eq!(append(&store, &a, user_draft("a", "a3", "three")).await, (3, false));

    let mut seen = Vec::new();
    for _ in 0..4 {
        match events.try_recv() {
            // The event is emitted before append answers, so it is already there.
            Ok(Event::Stored { key, message }) => {
                seen.push((key, message.seq(), text_of(&message).to_owned()))
            }
            other => panic!("expected a stored event, got {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            (a.clone(), Some(1), "one".to_owned()),
            (a.clone(), Some(2), "two".to_owned()),
            (b.clone(), Some(1), "hello".to_owned()),
            (a.clone(), Some(3), "three".to_owned()),
        ]
    );
    assert!(events.try_recv().is_err());
}

#[tokio::test]
async fn a_resent_id_gets_its_first_seq_and_is_not_delivered_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    let mut events = store.subscribe();
    let a = session("a");
    assert_eq!(append(&store, &a, user_draft("a", "x", "first")).await, (1, false));
    assert_eq!(append(&store, &a, user_draft("a", "y", "second")).await, (2, false));
    assert_eq!(append(&store, &a, user_draft("a", "x", "first again")).await, (1, true));
    // The same id in another conversation is another message.
    assert_eq!(append(&store, &session("b"), user_draft("b", "x", "other")).await, (1, false));
    let mut n = 0;
    while let Ok(event) = events.try_recv() {
        assert!(matches!(event, Event::Stored { .. }));
        n += 1;
    }
    assert_eq!(n, 3, "the duplicate must not be delivered");
    let page = store.history(&a, 0, 10).await.expect("history");
    let texts: Vec<_> = page.messages.iter().map(stored_text).collect();
    assert_eq!(texts, ["first", "second"]);
}

#[tokio::test]
async fn an_id_is_unique_per_sender_not_per_room() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    let mut events = store.subscribe();
    let room = ConversationKey::Room("design".into());
    // Member M uses the id the protocol docs show; member A, later, the same id.
    assert_eq!(append(&store, &room, chat_from("design", "u_m", "c-01", "from M")).await, (1, false));
    assert_eq!(append(&store, &room, chat_from("design", "u_a", "c-01", "from A")).await, (2, false));
    // Each one's re-send is still a duplicate of its own message, and delivered once.
    assert_eq!(append(&store, &room, chat_from("design", "u_a", "c-01", "A again")).await, (2, true));
    assert_eq!(append(&store, &room, chat_from("design", "u_m", "c-01", "M again")).await, (1, true));
    let mut delivered = Vec::new();
    while let Ok(Event::Stored { message, .. }) = events.try_recv() {
        delivered.push(text_of(&message).to_owned());
    }
    assert_eq!(delivered, ["from M", "from A"]);
    // A restart forgets nothing about who sent what.
    drop(store);
    let store = open(&dir.path().join("natter.db"));
    assert_eq!(append(&store, &room, chat_from("design", "u_a", "c-01", "A, restarted")).await, (2, true));
    assert_eq!(append(&store, &room, chat_from("design", "u_b", "c-01", "from B")).await, (3, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_gap_free_seqs_delivered_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(open(&dir.path().join("natter.db")));
    let mut events = store.subscribe();
    let mut tasks = Vec::new();
    for t in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..50 {
                let conv = format!("c{}", (t + i) % 5);
                let id = format!("t{t}-{i}");
                // Every tenth message is sent twice, as a client retrying would.
                let times = if i % 10 == 0 { 2 } else { 1 };
                for _ in 0..times {
                    let a = store.append(&session(&conv), user_draft(&conv, &id, &id)).await.expect("append");
                    acks.push((conv.clone(), id.clone(), a.seq, a.duplicate));
                }
            }
            acks
        }));
    }
    let mut acked: HashMap<(String, String), u64> = HashMap::new();
    let mut duplicates = 0;
    for task in tasks {
        for (conv, id, seq, duplicate) in task.await.expect("task") {
            if duplicate {
                duplicates += 1;
                assert_eq!(acked.get(&(conv, id)), Some(&seq), "a duplicate carries the first seq");
            } else {
                assert!(acked.insert((conv, id), seq).is_none());
            }
        }
    }
    assert_eq!(acked.len(), 2000);
    assert_eq!(duplicates, 200);
    let mut last: HashMap<String, u64> = HashMap::new();
    for _ in 0..2000 {
        let Some(Event::Stored { key: ConversationKey::Session(conv), message }) = events.recv().await else {
            panic!("expected a stored session message");
        };
        let seq = message.seq().expect("seq");
        let prev = last.insert(conv.to_string(), seq).unwrap_or(0);
        assert_eq!(seq, prev + 1, "conversation {conv}: events in seq order, no gap");
        let id = message.id().expect("id").to_owned();
        assert_eq!(acked.get(&(conv.to_string(), id)), Some(&seq), "event and ack agree");
    }
    assert!(events.try_recv().is_err(), "nothing delivered twice");
    for c in 0..5 {
        let page = store.history(&session(&format!("c{c}")), 0, 1000).await.expect("history");
        assert_eq!(page.messages.len(), 400);
        assert_eq!(page.last_seq, 400);
    }
}

#[tokio::test]
async fn history_pages_recent_and_first_available() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    let a = session("a");
    let empty = store.history(&a, 0, 10).await.expect("history");
    assert_eq!((empty.messages.len(), empty.last_seq, empty.first_available), (0, 0, 1));
    let empty = store.recent(&a, 10).await.expect("recent");
    assert_eq!((empty.messages.len(), empty.last_seq, empty.first_available), (0, 0, 1));
    for i in 1..=10 {
        append(&store, &a, user_draft("a", &format!("m{i}"), &format!("text {i}"))).await;
    }
    let page = store.history(&a, 3, 4).await.expect("history");
    let seqs: Vec<_> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [4, 5, 6, 7]);
    assert_eq!((page.last_seq, page.first_available), (10, 1));
    assert_eq!(stored_text(&page.messages[0]), "text 4");
    let page = store.history(&a, 10, 4).await.expect("history");
    assert!(page.messages.is_empty());
    let page = store.recent(&a, 3).await.expect("recent");
    let seqs: Vec<_> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [8, 9, 10]);
    // The stored frame is the whole frame, with its seq and id.
    let Ok(ServerMessage::User(m)) = page.messages[2].parse() else { panic!("a user frame") };
    assert_eq!((m.id.as_str(), m.seq, m.session_id.as_str()), ("m10", 10, "a"));
}

#[tokio::test]
async fn everything_survives_reopening_and_seq_and_dedup_carry_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    let room = RoomRecord {
        room: "lobby".into(),
        name: Some("Lobby".into()),
        metadata: serde_json::json!({"topic": "general"}).into(),
        created_at: "2026-11-22T00:00:00Z".into(),
    };
    {
        let store = open(&path);
        assert!(store.create_room(room.clone()).await.expect("create"));
        append(&store, &session("a"), user_draft("a", "a1", "one")).await;
        append(&store, &session("a"), user_draft("a", "a2", "two")).await;
        append(&store, &ConversationKey::Room("lobby".into()), chat_draft("lobby", "c1", "hi")).await;
    }
    let store = open(&path);
    let mut events = store.subscribe();
    assert_eq!(append(&store, &session("a"), user_draft("a", "a2", "two again")).await, (2, true));
    assert_eq!(append(&store, &session("a"), user_draft("a", "a3", "three")).await, (3, false));
    let page = store.history(&session("a"), 0, 10).await.expect("history");
    assert_eq!(page.messages.iter().map(stored_text).collect::<Vec<_>>(), ["one", "two", "three"]);
    let Ok(Event::Stored { message, .. }) = events.try_recv() else { panic!("one event") };
    assert_eq!(message.seq(), Some(3));
    assert!(events.try_recv().is_err());
    assert!(!store.create_room(room.clone()).await.expect("create again"), "already exists");
    assert_eq!(store.room("lobby").await.expect("room"), Some(room.clone()));
    assert_eq!(store.room("nope").await.expect("room"), None);
    let lobby = store.history(&ConversationKey::Room("lobby".into()), 0, 10).await.expect("history");
    assert_eq!(lobby.last_seq, 1);
}

#[tokio::test]
async fn rooms_are_listed_by_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    for id in ["b", "a", "c"] {
        let record = RoomRecord {
            room: id.into(),
            name: None,
            metadata: serde_json::json!({}).into(),
            created_at: "2026-11-22T00:00:00Z".into(),
        };
        assert!(store.create_room(record).await.expect("create"));
    }
    let ids: Vec<_> = store.rooms(None, 100).await.expect("rooms").into_iter().map(|r| r.room).collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

/// A deleted room's messages go and its seq counter stays: made again under its id, it numbers
/// on after the old one's last seq (so a client resuming from before misses nothing), and, as
/// it holds no message, it expires when empty like a room that never had one.
#[tokio::test]
async fn a_deleted_room_numbers_on_and_expires_when_empty_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    let record = |id: &str| RoomRecord {
        room: id.into(),
        name: None,
        metadata: serde_json::json!({}).into(),
        created_at: "2026-11-22T00:00:00Z".into(),
    };
    let key = ConversationKey::Room("doomed".into());
    assert!(store.create_room(record("doomed")).await.expect("create"));
    assert!(store.create_room(record("kept")).await.expect("create"));
    for i in 0..3 {
        append(&store, &key, chat_draft("doomed", &format!("c{i}"), "before")).await;
    }
    append(&store, &ConversationKey::Room("kept".into()), chat_draft("kept", "k0", "stays")).await;
    assert!(store.delete_room("doomed").await.expect("delete"));
    let page = store.recent(&key, 10).await.expect("recent");
    assert_eq!((page.messages.len(), page.last_seq, page.first_available), (0, 3, 4));
    // Made again: an id used before is a new message, numbered after the deleted ones.
    assert!(store.create_room(record("doomed")).await.expect("create again"));
    let page = store.recent(&key, 10).await.expect("recent");
    assert_eq!(page.last_seq, 3, "the counter survived the deletion");
    drop(store);
    let store = open(&dir.path().join("natter.db"));
    let expired = store.expire_empty_rooms("2026-11-23T00:00:00Z".into(), Vec::new()).await.expect("expire");
    assert_eq!(expired, 1, "the remade room holds no message; the other does");
    assert!(store.room("doomed").await.expect("room").is_none());
    assert!(store.room("kept").await.expect("room").is_some());
    assert!(store.create_room(record("doomed")).await.expect("create a third time"));
    assert_eq!(append(&store, &key, chat_draft("doomed", "c0", "after")).await, (4, false));
}

#[tokio::test]
async fn retention_deletes_old_messages_but_never_resets_seq() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    let a = session("a");
    for i in 1..=3 {
        append(&store, &a, user_draft("a", &format!("m{i}"), "old")).await;
    }
    let later = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(store.purge_older_than(later).await.expect("purge"), 3);
    let page = store.history(&a, 0, 10).await.expect("history");
    assert_eq!((page.messages.len(), page.last_seq, page.first_available), (0, 3, 4));
    assert_eq!(append(&store, &a, user_draft("a", "m4", "new")).await, (4, false));
    assert_eq!(append(&store, &a, user_draft("a", "m5", "new")).await, (5, false));
    let page = store.history(&a, 0, 10).await.expect("history");
    let seqs: Vec<_> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!((page.last_seq, page.first_available), (5, 4));
    let recent = store.recent(&a, 10).await.expect("recent");
    assert_eq!(recent.first_available, 4);
    // Nothing newer than the cutoff goes.
    let earlier = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.purge_older_than(earlier).await.expect("purge"), 0);
}

#[tokio::test]
async fn the_retention_sweep_runs_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = SqliteOptions::new(dir.path().join("natter.db"));
    options.retention = Some(Duration::from_millis(1));
    options.retention_interval = Duration::from_millis(20);
    let store = SqliteStore::open(options).expect("open");
    let a = session("a");
    append(&store, &a, user_draft("a", "m1", "short-lived")).await;
    // A real wait: the sweep runs on the writer thread's own clock. Polled, generous deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = store.history(&a, 0, 10).await.expect("history");
        if page.messages.is_empty() {
            assert_eq!((page.last_seq, page.first_available), (1, 2));
            break;
        }
        assert!(Instant::now() < deadline, "the sweep never deleted the message");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn memory_database_works_without_a_file() {
    let store = SqliteStore::open(SqliteOptions::new(":memory:")).expect("open");
    let mut events = store.subscribe();
    let a = session("a");
    assert_eq!(append(&store, &a, user_draft("a", "m1", "one")).await, (1, false));
    assert_eq!(append(&store, &a, user_draft("a", "m1", "one")).await, (1, true));
    assert_eq!(append(&store, &a, user_draft("a", "m2", "two")).await, (2, false));
    let page = store.history(&a, 1, 10).await.expect("history");
    assert_eq!(page.messages.iter().map(stored_text).collect::<Vec<_>>(), ["two"]);
    let record = RoomRecord {
        room: "r".into(),
        name: None,
        metadata: serde_json::json!({"a": 1}).into(),
        created_at: "2026-11-22T00:00:00Z".into(),
    };
    assert!(store.create_room(record.clone()).await.expect("create"));
    assert_eq!(store.rooms(None, 100).await.expect("rooms"), vec![record]);
    assert!(matches!(events.try_recv(), Ok(Event::Stored { .. })));
}

#[tokio::test]
async fn a_frame_that_cannot_be_stored_is_refused_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    let a = session("a");
    let pong = Draft {
        id: "p".into(),
        message: ServerMessage::Pong(Pong { nonce: None, timestamp: String::new() }),
        operator: None,
    };
    let (bad, good) = tokio::join!(store.append(&a, pong), store.append(&a, user_draft("a", "m1", "fine")));
    assert!(matches!(bad, Err(StoreError::Backend(_))));
    assert_eq!(good.expect("the other append of the batch").seq, 1);
}

#[tokio::test]
async fn ephemeral_frames_go_to_subscribers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("natter.db"));
    let mut events = store.subscribe();
    let frame = ServerMessage::Pong(Pong { nonce: None, timestamp: "t".into() });
    let event = Event::Ephemeral { key: session("a"), message: frame, from: Some("m1".into()) };
    store.publish_ephemeral(event.clone()).await.expect("publish");
    assert_eq!(events.try_recv().ok(), Some(event));
    assert!(store.healthy());
}

#[test]
fn a_database_from_a_newer_hub_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)", []).expect("insert");
    drop(conn);
    match SqliteStore::open(SqliteOptions::new(&path)) {
        Err(StoreError::Backend(e)) => assert!(e.contains("newer"), "{e}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[test]
fn reopening_runs_no_migration_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    drop(open(&path));
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("versions");
    let all: Vec<i64> = (1..=i64::from(natter_hub::store::sqlite::SCHEMA_VERSION)).collect();
    assert_eq!(versions, all);
}

/// The schema a hub of version 1 wrote (kept here as it shipped: a migration is never edited).
const SCHEMA_V1: &str =
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
    INSERT INTO schema_version VALUES (1, 0);
    CREATE TABLE conversations (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
        last_seq INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
    CREATE TABLE messages (conversation INTEGER NOT NULL REFERENCES conversations(id),
        seq INTEGER NOT NULL, msg_id TEXT NOT NULL, kind TEXT NOT NULL, created_at INTEGER NOT NULL,
        frame TEXT NOT NULL, UNIQUE (conversation, seq), UNIQUE (conversation, msg_id));
    CREATE INDEX messages_by_age ON messages (created_at);
    CREATE TABLE rooms (room TEXT PRIMARY KEY, name TEXT, metadata TEXT NOT NULL, created_at TEXT NOT NULL);";

/// A database written before ids were scoped to senders is migrated: every stored message
/// keeps its seq, re-sends by its own sender are still duplicates, and another member may now
/// use an id someone used before.
#[tokio::test]
async fn a_version_1_database_migrates_to_sender_scoped_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.execute_batch(SCHEMA_V1).expect("v1 schema");
        conn.execute_batch(
            "INSERT INTO conversations (id, key, last_seq, created_at) VALUES (1, 's:sess-1', 2, 0), (2, 'r:design', 1, 0);",
        )
        .expect("conversations");
        let mut insert = conn
            .prepare("INSERT INTO messages (conversation, seq, msg_id, kind, created_at, frame) VALUES (?1, ?2, ?3, ?4, 0, ?5)")
            .expect("prepare");
        let frames = [
            (
                1,
                1,
                "m-1",
                r#"{"type":"user","id":"m-1","seq":1,"message":"hi","timestamp":"t","sessionId":"sess-1"}"#,
            ),
            (
                1,
                2,
                "h-1",
                r#"{"type":"bot","id":"h-1","seq":2,"message":"hello","timestamp":"t","sessionId":"sess-1"}"#,
            ),
            (
                2,
                1,
                "c-01",
                r#"{"type":"chat","room":"design","id":"c-01","seq":1,"message":"from M","timestamp":"t","from":{"id":"u_m"}}"#,
            ),
        ];
        for (conv, seq, id, frame) in frames {
            let kind = if frame.contains(r#""type":"user""#) {
                "user"
            } else if frame.contains(r#""type":"bot""#) {
                "bot"
            } else {
                "chat"
            };
            insert.execute(rusqlite::params![conv, seq, id, kind, frame]).expect("insert");
        }
    }
    let store = open(&path);
    let room = ConversationKey::Room("design".into());
    let visitor = session("sess-1");
    assert_eq!(append(&store, &visitor, user_draft("sess-1", "m-1", "hi again")).await, (1, true));
    assert_eq!(append(&store, &room, chat_from("design", "u_m", "c-01", "M again")).await, (1, true));
    assert_eq!(append(&store, &room, chat_from("design", "u_a", "c-01", "from A")).await, (2, false));
    // The visitor's id cannot collide with the bot's either.
    assert_eq!(append(&store, &visitor, user_draft("sess-1", "h-1", "mine")).await, (3, false));
    let page = store.history(&room, 0, 10).await.expect("history");
    assert_eq!(page.messages.iter().map(stored_text).collect::<Vec<_>>(), ["from M", "from A"]);
}

/// Migrations 2 and 3 as they were written by a hub with the operator inbox and before
/// sender-scoped ids (schema version 3): the hub secret, then the inbox's tables.
const SCHEMA_V2_V3: &str = "CREATE TABLE hub_secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
    INSERT INTO schema_version VALUES (2, 0);
    CREATE TABLE operators (name TEXT PRIMARY KEY, display_name TEXT NOT NULL,
        password_hash TEXT NOT NULL, created_ms INTEGER NOT NULL);
    CREATE TABLE operator_sessions (token_hash TEXT PRIMARY KEY,
        operator TEXT NOT NULL REFERENCES operators(name) ON DELETE CASCADE, expires_ms INTEGER NOT NULL);
    CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator);
    CREATE TABLE inbox_conversations (id TEXT PRIMARY KEY, conversation TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL, assignee TEXT, last_activity_ms INTEGER NOT NULL, record TEXT NOT NULL);
    CREATE INDEX inbox_conversations_by_activity ON inbox_conversations (status, last_activity_ms);
    CREATE TABLE inbox_notes (id TEXT PRIMARY KEY, conversation TEXT NOT NULL, author TEXT NOT NULL,
        text TEXT NOT NULL, created_ms INTEGER NOT NULL);
    CREATE INDEX inbox_notes_by_conversation ON inbox_notes (conversation, created_ms);
    CREATE TABLE canned_replies (shortcut TEXT PRIMARY KEY, text TEXT NOT NULL);
    INSERT INTO schema_version VALUES (3, 0);";

fn agent_draft(session: &str, operator: &str, id: &str, text: &str) -> Draft {
    Draft {
        id: id.into(),
        message: ServerMessage::Agent(ConversationMessage {
            id: id.into(),
            message: text.into(),
            session_id: session.into(),
            author: Some("Ada Lovelace".into()),
            ..Default::default()
        }),
        operator: Some(operator.into()),
    }
}

/// A database written by a hub with the operator inbox (schema 3: visitor, bot and agent
/// messages, an operator with a session, a conversation record, a note, a canned reply) gets
/// sender-scoped ids as migration 4: every message keeps its seq, the inbox keeps everything,
/// re-sends are still recognised and nobody's old id swallows anyone else's new message.
#[tokio::test]
async fn a_database_with_the_operator_inbox_migrates_to_sender_scoped_ids() {
    use natter_protocol::inbox::{ConversationState, ConversationSummary};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    let record = ConversationSummary {
        id: "c_0123456789abcdef".into(),
        visitor: "u_0123456789abcdef".into(),
        status: ConversationState::Open,
        assignee: Some("ada".into()),
        last_seq: 3,
        handoff: true,
        ..Default::default()
    };
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.execute_batch(SCHEMA_V1).expect("v1 schema");
        conn.execute_batch(SCHEMA_V2_V3).expect("v2 and v3 schema");
        conn.execute_batch(
            "INSERT INTO conversations (id, key, last_seq, created_at) VALUES (1, 's:sess-1', 3, 0);
             INSERT INTO hub_secrets VALUES ('session', x'00112233');
             INSERT INTO operators VALUES ('ada', 'Ada Lovelace', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', 0);
             INSERT INTO operator_sessions VALUES ('hash-of-a-cookie', 'ada', 99999999999999);
             INSERT INTO inbox_notes VALUES ('h-note', 'c_0123456789abcdef', 'ada', 'VIP', 5);
             INSERT INTO canned_replies VALUES ('hi', 'Hello! How can I help?');",
        )
        .expect("rows");
        conn.execute(
            "INSERT INTO inbox_conversations VALUES (?1, 'sess-1', 'open', 'ada', 0, ?2)",
            rusqlite::params![record.id, serde_json::to_string(&record).expect("json")],
        )
        .expect("record");
        let frames = [
            (
                1,
                "m-1",
                "user",
                r#"{"type":"user","id":"m-1","seq":1,"message":"hi","timestamp":"t","sessionId":"sess-1"}"#,
            ),
            (
                2,
                "h-1",
                "bot",
                r#"{"type":"bot","id":"h-1","seq":2,"message":"hello","timestamp":"t","sessionId":"sess-1"}"#,
            ),
            (
                3,
                "op-1",
                "agent",
                r#"{"type":"agent","id":"op-1","seq":3,"message":"Ada here","timestamp":"t","sessionId":"sess-1","author":"Ada Lovelace"}"#,
            ),
        ];
        for (seq, id, kind, frame) in frames {
            conn.execute(
                "INSERT INTO messages (conversation, seq, msg_id, kind, created_at, frame) VALUES (1, ?1, ?2, ?3, 0, ?4)",
                rusqlite::params![seq, id, kind, frame],
            )
            .expect("message");
        }
    }
    let store = open(&path);
    let versions: Vec<i64> = rusqlite::Connection::open(&path)
        .expect("open")
        .prepare("SELECT version FROM schema_version ORDER BY version")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("versions");
    assert_eq!(versions, [1, 2, 3, 4]);

    // The messages, their seqs and the scopes of their ids.
    let visitor = session("sess-1");
    let page = store.history(&visitor, 0, 10).await.expect("history");
    assert_eq!(page.messages.iter().map(stored_text).collect::<Vec<_>>(), ["hi", "hello", "Ada here"]);
    assert_eq!(append(&store, &visitor, user_draft("sess-1", "m-1", "hi again")).await, (1, true));
    assert_eq!(append(&store, &visitor, user_draft("sess-1", "op-1", "mine")).await, (4, false));
    assert_eq!(append(&store, &visitor, agent_draft("sess-1", "ada", "m-1", "Ada again")).await, (5, false));
    assert_eq!(append(&store, &visitor, agent_draft("sess-1", "bob", "m-1", "Bob")).await, (6, false));
    assert_eq!(append(&store, &visitor, agent_draft("sess-1", "ada", "m-1", "Ada again")).await, (5, true));

    // The inbox is as it was.
    let inbox = store.inbox().expect("SQLite keeps the inbox");
    let ada = inbox.operator("ada").await.expect("read").expect("ada is still there");
    assert_eq!(ada.display_name, "Ada Lovelace");
    assert!(inbox.session("hash-of-a-cookie", 0).await.expect("read").is_some(), "her session too");
    let (kept, conversation) = inbox.conversation(&record.id).await.expect("read").expect("the record");
    assert_eq!((kept, conversation.as_str()), (record.clone(), "sess-1"));
    let notes = inbox.notes(&record.id).await.expect("read");
    assert_eq!(notes.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(), ["VIP"]);
    assert_eq!(inbox.canned().await.expect("read").len(), 1);
}

/// The hub's session secret is made once, by the first hub to open the database, and kept
/// across restarts: sessions issued before a restart are still accepted after it.
#[tokio::test]
async fn the_hub_secret_is_made_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    let first = open(&path).hub_secret(vec![1; 32]).await.expect("secret");
    assert_eq!(first, vec![1; 32], "the first hub's fresh secret is kept");
    let store = open(&path);
    assert_eq!(store.hub_secret(vec![2; 32]).await.expect("secret"), first, "a restart keeps it");
    drop(store);
    let memory = SqliteStore::open(SqliteOptions::new(":memory:")).expect("open");
    assert_eq!(memory.hub_secret(vec![3; 32]).await.expect("secret"), vec![3; 32]);
    assert_eq!(memory.hub_secret(vec![4; 32]).await.expect("secret"), vec![3; 32]);
}

/// The child side of [`acknowledged_messages_survive_kill_9`]: appends forever and prints every
/// acknowledged id. Only runs when the parent sets the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(path) = std::env::var("NATTER_CRASH_CHILD_DB") else { return };
    let store = Arc::new(open(std::path::Path::new(&path)));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for w in 0..8 {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0u64.. {
                let id = format!("w{w}-{i}");
                let conv = format!("c{w}");
                if let Ok(a) = store.append(&session(&conv), user_draft(&conv, &id, "x")).await {
                    let _ = tx.send(format!("{conv} {id} {}", a.seq));
                }
            }
        });
    }
    let mut out = std::io::stdout().lock();
    while let Some(line) = rx.recv().await {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

#[test]
fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("NATTER_CRASH_CHILD_DB", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read");
        let parts: Vec<_> = line.split(' ').collect();
        if parts.len() == 3 {
            if let Ok(seq) = parts[2].parse::<u64>() {
                acked.push((parts[0].to_owned(), parts[1].to_owned(), seq));
            }
        }
        if acked.len() >= 3000 {
            break;
        }
    }
    // SIGKILL, mid-write: no destructor, no checkpoint, no flush.
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert!(acked.len() >= 3000, "the child acknowledged {} messages", acked.len());

    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let mut found: HashMap<(String, String), u64> = HashMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT c.key, m.msg_id, m.seq FROM messages m JOIN conversations c ON c.id = m.conversation",
        )
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
        .expect("query");
    for row in rows {
        let (key, id, seq) = row.expect("row");
        found.insert((key.trim_start_matches("s:").to_owned(), id), u64::try_from(seq).expect("seq"));
    }
    for (conv, id, seq) in &acked {
        assert_eq!(found.get(&(conv.clone(), id.clone())), Some(seq), "acknowledged {conv}/{id} lost");
    }
    // And every conversation is gap-free from 1.
    let mut per: HashMap<&str, Vec<u64>> = HashMap::new();
    for ((conv, _), seq) in &found {
        per.entry(conv).or_default().push(*seq);
    }
    for (conv, mut seqs) in per {
        seqs.sort_unstable();
        assert!(seqs.iter().enumerate().all(|(i, s)| *s == i as u64 + 1), "{conv}: gap in seqs");
    }
}

/// Inbox writes (records, operators, notes) share the transaction of the batch they arrive in,
/// each in a savepoint of its own: a write that fails half-way leaves nothing behind, and the
/// writes around it are kept. Here a trigger refuses the second statement of a password change
/// (which ends the operator's sign-ins), while other writes arrive with it.
#[tokio::test]
async fn an_inbox_write_that_fails_is_undone_alone_and_its_batch_is_kept() {
    use natter_hub::store::inbox::{OperatorRecord, OperatorSession};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    let store = open(&path);
    let inbox = store.inbox().expect("the SQLite engine keeps an inbox");
    let operator = |name: &str, hash: &str| OperatorRecord {
        name: name.into(),
        display_name: name.into(),
        password_hash: hash.into(),
        created_ms: 1,
    };
    assert!(inbox.add_operator(operator("ada", "hash-1")).await.expect("add ada"));
    let far = u64::MAX / 4;
    inbox
        .put_session("token", OperatorSession { operator: "ada".into(), expires_ms: far })
        .await
        .expect("sign in");
    let db = rusqlite::Connection::open(&path).expect("open beside the hub");
    db.execute_batch(
        "CREATE TRIGGER keep_sign_ins BEFORE DELETE ON operator_sessions BEGIN SELECT RAISE(ABORT, 'sign-ins are kept'); END;",
    )
    .expect("trigger");
    // Sent together, so they reach the writer together.
    let (changed, bob, canned) = tokio::join!(
        inbox.set_password("ada", "hash-2".into()),
        inbox.add_operator(operator("bob", "hash-b")),
        inbox
            .put_canned(natter_protocol::inbox::CannedReply { shortcut: "hi".into(), text: "Hello!".into() }),
    );
    let refused = changed.expect_err("the trigger refuses the password change's second statement");
    assert!(refused.to_string().contains("sign-ins are kept"), "{refused}");
    assert!(bob.expect("bob is added"));
    canned.expect("the canned reply is kept");
    drop(store);
    // What was committed, read back from a fresh open.
    let store = open(&path);
    let inbox = store.inbox().expect("inbox");
    let ada = inbox.operator("ada").await.expect("read").expect("ada");
    assert_eq!(ada.password_hash, "hash-1", "the failed change's first statement was undone");
    assert!(inbox.session("token", 2).await.expect("read").is_some(), "ada is still signed in");
    assert!(inbox.operator("bob").await.expect("read").is_some());
    assert_eq!(inbox.canned().await.expect("read").len(), 1);
}

/// The inbox list on SQLite: pages follow the list's order (last activity, newest first, then
/// the id, highest first), each filter walks only its own records, and following `next`
/// reaches every conversation once.
#[tokio::test]
async fn the_inbox_list_pages_in_order_with_ties_by_id() {
    use natter_hub::store::inbox::{ConversationFilter, ListPosition, RecordChange};
    use natter_protocol::inbox::ConversationState;
    let store = SqliteStore::open(SqliteOptions::new(":memory:")).expect("open");
    let inbox = store.inbox().expect("sqlite keeps the inbox");
    for n in 0..7u64 {
        // Pairs share a millisecond.
        inbox
            .change_conversation(&format!("c_{n}"), &format!("s-{n}"), "u_v", 1_000 + n / 2, Vec::new())
            .await
            .expect("make");
    }
    inbox
        .update_conversation("c_4", vec![RecordChange::Status { status: ConversationState::Closed }])
        .await
        .expect("close")
        .expect("exists");
    let mut after: Option<ListPosition> = None;
    let mut found = Vec::new();
    loop {
        let page = inbox.conversations(ConversationFilter::Open, after.clone(), 2).await.expect("page");
        assert!(page.conversations.len() <= 2);
        found.extend(page.conversations.into_iter().map(|c| c.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(found.len() <= 6, "paging does not end: {found:?}");
    }
    assert_eq!(found, ["c_6", "c_5", "c_3", "c_2", "c_1", "c_0"]);
    let closed = inbox.conversations(ConversationFilter::Closed, None, 2).await.expect("page");
    assert_eq!((closed.conversations.len(), closed.next), (1, None));
}
