//! The Redis engine on its own, against a real `redis-server` per test: several stores on one
//! Redis act as several hubs. Seq across hubs, de-duplication across hubs, one delivery order
//! for every hub, history and trimming, rooms, presence with expiry, and Redis going away.

mod support_redis;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use natter_hub::store::redis::{RedisOptions, RedisStore};
use natter_hub::store::{ConversationKey, Draft, Event, RoomRecord, Store, StoreError};
use natter_protocol::{ConversationMessage, Member, Pong, RoomMessage, ServerMessage};
use support_redis::RedisServer;
use tokio::sync::mpsc::UnboundedReceiver;

fn session(s: &str) -> ConversationKey {
    ConversationKey::Session(s.into())
}

fn room(r: &str) -> ConversationKey {
    ConversationKey::Room(r.into())
}

fn user_draft(session: &str, id: &str) -> Draft {
    Draft {
        id: id.into(),
        message: ServerMessage::User(ConversationMessage {
            id: id.into(),
            seq: 0,
            message: format!("text of {id}"),
            timestamp: "2026-11-22T00:00:00Z".into(),
            session_id: session.into(),
            ..Default::default()
        }),
        operator: None,
    }
}

fn chat_draft(r: &str, id: &str) -> Draft {
    chat_from(r, "m1", id)
}

fn chat_from(r: &str, member: &str, id: &str) -> Draft {
    Draft {
        id: id.into(),
        message: ServerMessage::Chat(RoomMessage {
            room: r.into(),
            id: id.into(),
            seq: 0,
            message: format!("text of {id}"),
            timestamp: "2026-11-22T00:00:00Z".into(),
            from: Member { id: member.into(), name: None, verified: false },
        }),
        operator: None,
    }
}

/// Operator `operator`'s reply (display name "Support", which both operators share).
fn agent_draft(session: &str, operator: &str, id: &str) -> Draft {
    Draft {
        id: id.into(),
        message: ServerMessage::Agent(ConversationMessage {
            id: id.into(),
            message: format!("{operator} says {id}"),
            session_id: session.into(),
            author: Some("Support".into()),
            ..Default::default()
        }),
        operator: Some(operator.into()),
    }
}

fn marker(n: u64) -> Event {
    Event::Ephemeral {
        key: session("marker"),
        message: ServerMessage::Pong(Pong {
            nonce: Some(serde_json::Value::from(n).into()),
            timestamp: "t".into(),
        }),
        from: None,
    }
}

async fn hub(redis: &RedisServer) -> RedisStore {
    hub_with(redis, |_| {}).await
}

async fn hub_with(redis: &RedisServer, f: impl FnOnce(&mut RedisOptions)) -> RedisStore {
    let mut options = RedisOptions::new(redis.url());
    f(&mut options);
    RedisStore::connect(options).await.expect("connect to redis")
}

/// Receives events until the marker `n` (published after everything the test wants to see; the
/// channel keeps one order, so everything published before the marker is in the list).
async fn until_marker(rx: &mut UnboundedReceiver<Event>, n: u64) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("events keep coming")
            .expect("stream open");
        if event == marker(n) {
            return out;
        }
        out.push(event);
    }
}

fn stored(events: &[Event]) -> Vec<(ConversationKey, u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Stored { key, message } => {
                Some((key.clone(), message.seq().unwrap_or(0), message.id().unwrap_or("").to_owned()))
            }
            Event::Ephemeral { .. } | Event::Inbox(_) => None,
        })
        .collect()
}

async fn poll_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn an_id_is_unique_per_sender_across_hubs() {
    let redis = RedisServer::start();
    let a = hub(&redis).await;
    let b = hub(&redis).await;
    let mut rx = b.subscribe();
    let design = room("design");
    let first = a.append(&design, chat_from("design", "u_m", "c-01")).await.expect("append");
    let other = b.append(&design, chat_from("design", "u_a", "c-01")).await.expect("append");
    let again = a.append(&design, chat_from("design", "u_a", "c-01")).await.expect("append");
    assert_eq!((first.seq, first.duplicate), (1, false));
    assert_eq!((other.seq, other.duplicate), (2, false), "another member's id is its own message");
    assert_eq!((again.seq, again.duplicate), (2, true), "a re-send through another hub is still one");
    b.publish_ephemeral(marker(3)).await.expect("marker");
    let seen = until_marker(&mut rx, 3).await;
    let senders: Vec<String> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Stored { message: ServerMessage::Chat(c), .. } => Some(c.from.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(senders, ["u_m", "u_a"], "each delivered once");
}

/// Operators' reply ids are scoped to the operator's account (not the display name they may
/// share), through any hub, and never meet the visitor's ids.
#[tokio::test]
async fn an_operators_reply_id_is_theirs_across_hubs() {
    let redis = RedisServer::start();
    let a = hub(&redis).await;
    let b = hub(&redis).await;
    let visitor = session("v1");
    let seqs = [
        a.append(&visitor, user_draft("v1", "r-1")).await.expect("append"),
        a.append(&visitor, agent_draft("v1", "ada", "r-1")).await.expect("append"),
        b.append(&visitor, agent_draft("v1", "bob", "r-1")).await.expect("append"),
        b.append(&visitor, agent_draft("v1", "ada", "r-1")).await.expect("append"),
    ]
    .map(|x| (x.seq, x.duplicate));
    assert_eq!(seqs, [(1, false), (2, false), (3, false), (2, true)]);
}

/// Ids stored before they were scoped to senders (the field is the bare id) still recognise
/// their own sender's re-send, and no longer swallow anyone else's message.
#[tokio::test]
async fn ids_stored_before_sender_scoping_still_dedupe_their_own_sender() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let frame = r#"{"type":"chat","room":"design","id":"c-01","seq":0,"message":"from M","timestamp":"t","from":{"id":"u_m"}}"#;
    let _: () = redis::pipe()
        .set("natter:seq:r:design", 1)
        .hset("natter:ids:r:design", "c-01", 1)
        .cmd("XADD")
        .arg("natter:stream:r:design")
        .arg("1-0")
        .arg("id")
        .arg("c-01")
        .arg("f")
        .arg(frame)
        .query_async(&mut conn)
        .await
        .expect("legacy data");
    let store = hub(&redis).await;
    let design = room("design");
    let mine = store.append(&design, chat_from("design", "u_m", "c-01")).await.expect("append");
    assert_eq!((mine.seq, mine.duplicate), (1, true));
    let theirs = store.append(&design, chat_from("design", "u_a", "c-01")).await.expect("append");
    assert_eq!((theirs.seq, theirs.duplicate), (2, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_share_seq_and_see_one_order() {
    let redis = RedisServer::start();
    let a = Arc::new(hub(&redis).await);
    let b = Arc::new(hub(&redis).await);
    let mut rx_a = a.subscribe();
    let mut rx_b = b.subscribe();
    let mut tasks = Vec::new();
    for (h, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        for t in 0..5 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut acks = Vec::new();
                for i in 0..40 {
                    let conv = if i % 2 == 0 { session("shared") } else { room("lobby") };
                    let id = format!("h{h}-t{t}-{i}");
                    let draft = match &conv {
                        ConversationKey::Room(r) => chat_draft(r, &id),
                        ConversationKey::Session(s) => user_draft(s, &id),
                    };
                    let appended = store.append(&conv, draft).await.expect("append");
                    assert!(!appended.duplicate);
                    acks.push((conv, appended.seq, id));
                }
                acks
            }));
        }
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("task"));
    }
    a.publish_ephemeral(marker(1)).await.expect("marker");
    let seen_a = stored(&until_marker(&mut rx_a, 1).await);
    let seen_b = stored(&until_marker(&mut rx_b, 1).await);
    assert_eq!(seen_a.len(), 400, "every message once on hub A");
    assert_eq!(seen_a, seen_b, "both hubs deliver the same messages in the same order");
    let mut last: HashMap<ConversationKey, u64> = HashMap::new();
    for (key, seq, _) in &seen_a {
        let prev = last.insert(key.clone(), *seq).unwrap_or(0);
        assert_eq!(*seq, prev + 1, "{key:?}: seq order without gaps");
    }
    let mut acked_sorted = acked.clone();
    acked_sorted.sort();
    let mut seen_sorted = seen_a.clone();
    seen_sorted.sort();
    assert_eq!(acked_sorted, seen_sorted, "what was acked is what was delivered");
}

#[tokio::test]
async fn a_resend_to_another_hub_is_a_duplicate() {
    let redis = RedisServer::start();
    let a = hub(&redis).await;
    let b = hub(&redis).await;
    let mut rx_b = b.subscribe();
    let first = a.append(&session("s"), user_draft("s", "x")).await.expect("append");
    let again = b.append(&session("s"), user_draft("s", "x")).await.expect("append");
    assert_eq!((first.seq, first.duplicate), (1, false));
    assert_eq!((again.seq, again.duplicate), (1, true));
    let next = b.append(&session("s"), user_draft("s", "y")).await.expect("append");
    assert_eq!((next.seq, next.duplicate), (2, false));
    b.publish_ephemeral(marker(7)).await.expect("marker");
    let seen = stored(&until_marker(&mut rx_b, 7).await);
    assert_eq!(seen, vec![(session("s"), 1, "x".into()), (session("s"), 2, "y".into())]);
}

#[tokio::test]
async fn history_recent_and_trimming() {
    let redis = RedisServer::start();
    let store = hub_with(&redis, |o| o.stream_len = 20).await;
    let s = session("s");
    let empty = store.history(&s, 0, 10).await.expect("history");
    assert_eq!((empty.messages.len(), empty.last_seq, empty.first_available), (0, 0, 1));
    for i in 1..=10 {
        store.append(&s, user_draft("s", &format!("m{i}"))).await.expect("append");
    }
    let page = store.history(&s, 3, 4).await.expect("history");
    assert_eq!(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 5, 6, 7]);
    assert_eq!((page.last_seq, page.first_available), (10, 1));
    let Ok(ServerMessage::User(m)) = page.messages[0].parse() else { panic!("user frame") };
    assert_eq!((m.id.as_str(), m.seq, m.message.as_str()), ("m4", 4, "text of m4"));
    let recent = store.recent(&s, 3).await.expect("recent");
    assert_eq!(recent.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [8, 9, 10]);
    let none = store.history(&s, 0, 0).await.expect("history");
    assert_eq!((none.messages.len(), none.last_seq), (0, 10));

    // Past stream_len (plus its slack) the oldest go, and with them their ids.
    for i in 11..=60 {
        store.append(&s, user_draft("s", &format!("m{i}"))).await.expect("append");
    }
    let page = store.history(&s, 0, 1000).await.expect("history");
    assert_eq!(page.last_seq, 60);
    assert!(page.first_available > 1 && page.first_available <= 41, "first {}", page.first_available);
    let seqs: Vec<_> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (page.first_available..=60).collect::<Vec<_>>());
    assert!(seqs.len() >= 20);
    // A kept id is still a duplicate.
    let again = store.append(&s, user_draft("s", "m60")).await.expect("append");
    assert_eq!((again.seq, again.duplicate), (60, true));
}

#[tokio::test]
async fn rooms_are_shared() {
    let redis = RedisServer::start();
    let a = hub(&redis).await;
    let b = hub(&redis).await;
    let record = RoomRecord {
        room: "lobby".into(),
        name: Some("Lobby".into()),
        metadata: serde_json::json!({"topic": "x"}).into(),
        created_at: "2026-11-22T00:00:00Z".into(),
    };
    assert!(a.create_room(record.clone()).await.expect("create"));
    assert!(!b.create_room(record.clone()).await.expect("create twice"));
    assert_eq!(b.room("lobby").await.expect("room"), Some(record.clone()));
    assert_eq!(b.room("nope").await.expect("room"), None);
    let other = RoomRecord { room: "a-room".into(), name: None, ..record.clone() };
    assert!(b.create_room(other.clone()).await.expect("create"));
    assert_eq!(a.rooms(None, 100).await.expect("rooms"), vec![other, record]);
}

/// The operator's `PUT` replaces a room's name and metadata on every hub and keeps its creation
/// time; `DELETE` removes the room, its history, its ids and its presence, so the next message
/// in it is seq 1 and no id is a duplicate.
#[tokio::test]
async fn a_put_room_is_replaced_and_a_deleted_room_numbers_on() {
    let redis = RedisServer::start();
    let a = hub(&redis).await;
    let b = hub(&redis).await;
    let squatted = RoomRecord {
        room: "standup".into(),
        name: Some("Squatted".into()),
        metadata: serde_json::json!({"by": "squatter"}).into(),
        created_at: "2026-11-22T00:00:00Z".into(),
    };
    assert!(a.create_room(squatted.clone()).await.expect("create"));
    let site = RoomRecord {
        name: Some("Stand-up".into()),
        metadata: serde_json::json!({"by": "site"}).into(),
        created_at: "2026-11-30T00:00:00Z".into(),
        ..squatted.clone()
    };
    assert!(!b.put_room(site.clone()).await.expect("put"), "it existed");
    let kept = RoomRecord { created_at: squatted.created_at.clone(), ..site.clone() };
    assert_eq!(a.room("standup").await.expect("room"), Some(kept));
    let fresh = RoomRecord { room: "support".into(), ..site.clone() };
    assert!(a.put_room(fresh.clone()).await.expect("put"), "created");
    assert_eq!(b.room("support").await.expect("room"), Some(fresh));

    for i in 0..3 {
        a.append(&room("standup"), chat_draft("standup", &format!("c{i}"))).await.expect("append");
    }
    b.presence_join("standup", &Member { id: "m1".into(), name: None, verified: false }).await.expect("join");
    assert_eq!(a.remote_members("standup").await.expect("members").len(), 1);
    assert!(a.delete_room("standup").await.expect("delete"));
    assert!(!b.delete_room("standup").await.expect("delete again"), "unknown now");
    assert_eq!(b.room("standup").await.expect("room"), None);
    assert!(a.rooms(None, 100).await.expect("rooms").iter().all(|r| r.room != "standup"));
    // The messages go, the seq counter stays: a room made again numbers on after the old one.
    let page = b.recent(&room("standup"), 10).await.expect("recent");
    assert_eq!((page.messages.len(), page.last_seq, page.first_available), (0, 3, 4));
    assert!(a.remote_members("standup").await.expect("members").is_empty(), "presence went too");
    // Made again with no message, it expires when empty; made once more, it still numbers on.
    let remade = RoomRecord { created_at: "2026-11-22T00:00:00Z".into(), ..squatted.clone() };
    assert!(a.create_room(remade.clone()).await.expect("create again"));
    assert_eq!(b.expire_empty_rooms("2026-11-23T00:00:00Z".into(), Vec::new()).await.expect("expire"), 1);
    assert_eq!(a.room("standup").await.expect("room"), None);
    assert!(a.create_room(remade).await.expect("create once more"));
    let again = b.append(&room("standup"), chat_draft("standup", "c0")).await.expect("append");
    assert_eq!((again.seq, again.duplicate), (4, false), "a new message, though its id was used");
}

#[tokio::test]
async fn ephemeral_frames_reach_every_hub_once() {
    let redis = RedisServer::start();
    let a = hub(&redis).await;
    let b = hub(&redis).await;
    let mut rx_a = a.subscribe();
    let mut rx_b = b.subscribe();
    let typing = Event::Ephemeral {
        key: room("lobby"),
        message: ServerMessage::Pong(Pong { nonce: None, timestamp: "x".into() }),
        from: Some("m1".into()),
    };
    a.publish_ephemeral(typing.clone()).await.expect("publish");
    b.publish_ephemeral(marker(2)).await.expect("marker");
    assert_eq!(until_marker(&mut rx_a, 2).await, vec![typing.clone()]);
    assert_eq!(until_marker(&mut rx_b, 2).await, vec![typing]);
}

#[tokio::test]
async fn presence_is_seen_across_hubs() {
    let redis = RedisServer::start();
    let a = hub(&redis).await;
    let b = hub(&redis).await;
    let ann = Member { id: "ann".into(), name: Some("Ann".into()), verified: false };
    let bob = Member { id: "bob".into(), name: None, verified: false };
    a.presence_join("lobby", &ann).await.expect("join");
    b.presence_join("lobby", &bob).await.expect("join");
    assert_eq!(b.remote_members("lobby").await.expect("members"), vec![ann.clone()]);
    assert_eq!(a.remote_members("lobby").await.expect("members"), vec![bob.clone()]);
    // Ann on both hubs: B's own table has her; A still reports only B's members.
    b.presence_join("lobby", &ann).await.expect("join");
    assert_eq!(a.remote_members("lobby").await.expect("members"), vec![ann.clone(), bob.clone()]);
    a.presence_leave("lobby", "ann").await.expect("leave");
    assert!(b.remote_members("lobby").await.expect("members").is_empty());
    assert!(a.remote_members("other").await.expect("members").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hubs_members_expire_with_one_user_left() {
    let redis = RedisServer::start();
    let lease = |o: &mut RedisOptions| o.presence_lease = Duration::from_millis(600);
    let dying = hub_with(&redis, lease).await;
    let b = hub_with(&redis, lease).await;
    let c = hub_with(&redis, lease).await;
    let mut rx_b = b.subscribe();
    let mut rx_c = c.subscribe();
    let ann = Member { id: "ann".into(), name: Some("Ann".into()), verified: false };
    let bob = Member { id: "bob".into(), name: None, verified: false };
    dying.presence_join("lobby", &ann).await.expect("join");
    dying.presence_join("lobby", &bob).await.expect("join");
    c.presence_join("lobby", &bob).await.expect("join"); // Bob is on another hub too
    assert_eq!(b.remote_members("lobby").await.expect("members"), vec![ann.clone(), bob.clone()]);
    // The hub dies: its tasks stop, nobody refreshes its leases, nobody says goodbye.
    drop(dying);
    // The live hubs' sweeps (every half lease) notice; a real wait, polled.
    let left = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match rx_b.recv().await {
                Some(Event::Ephemeral { key, message: ServerMessage::UserLeft(p), .. }) => break (key, p),
                Some(_) => continue,
                None => panic!("stream closed"),
            }
        }
    })
    .await
    .expect("user_left arrives");
    assert_eq!(left.0, room("lobby"));
    assert_eq!((left.1.room.as_str(), &left.1.user), ("lobby", &ann));
    // Bob is still there through hub C, which kept refreshing its lease.
    assert_eq!(b.remote_members("lobby").await.expect("members"), vec![bob]);
    // Exactly once, on every hub: sweep again on both, then a marker closes the window.
    assert_eq!(b.sweep_presence().await.expect("sweep"), 0);
    assert_eq!(c.sweep_presence().await.expect("sweep"), 0);
    b.publish_ephemeral(marker(3)).await.expect("marker");
    let more_b = until_marker(&mut rx_b, 3).await;
    assert!(more_b
        .iter()
        .all(|e| !matches!(e, Event::Ephemeral { message: ServerMessage::UserLeft(_), .. })));
    let on_c: Vec<_> = until_marker(&mut rx_c, 3)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::Ephemeral { message: ServerMessage::UserLeft(_), .. }))
        .collect();
    assert_eq!(on_c.len(), 1, "hub C is told once: {on_c:?}");
}

#[tokio::test]
async fn connecting_to_no_redis_fails_clearly() {
    let redis = RedisServer::start();
    let url = redis.url();
    drop(redis);
    match RedisStore::connect(RedisOptions::new(url)).await {
        Err(StoreError::Unavailable(_)) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("there is no redis"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_catches_up_without_gaps_or_doubles() {
    let redis = RedisServer::start();
    let a = Arc::new(hub(&redis).await);
    let b = hub(&redis).await;
    let mut rx_a = a.subscribe();
    let s = session("s");
    for i in 0..20 {
        b.append(&s, user_draft("s", &format!("before{i}"))).await.expect("append");
    }
    // Cut hub A's subscription (Redis stays up): what B stores meanwhile must still reach A.
    let reply = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(reply.starts_with(':'), "{reply}");
    for i in 0..200 {
        b.append(&s, user_draft("s", &format!("during{i}"))).await.expect("append");
    }
    poll_until("hub A is subscribed again", || a.healthy()).await;
    b.publish_ephemeral(marker(4)).await.expect("marker");
    let seen = stored(&until_marker(&mut rx_a, 4).await);
    let seqs: Vec<u64> = seen.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=220).collect::<Vec<_>>(), "every message once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_under_a_hub_is_ridden_out() {
    let mut redis = RedisServer::start_persistent();
    let a = hub(&redis).await;
    let b = hub(&redis).await;
    let mut rx_a = a.subscribe();
    let s = session("s");
    let ann = Member { id: "ann".into(), name: None, verified: false };
    b.presence_join("lobby", &ann).await.expect("join");
    a.create_room(RoomRecord {
        room: "lobby".into(),
        name: None,
        metadata: serde_json::json!({}).into(),
        created_at: "2026-11-22T00:00:00Z".into(),
    })
    .await
    .expect("create");
    for i in 1..=5 {
        b.append(&s, user_draft("s", &format!("m{i}"))).await.expect("append");
    }
    assert!(a.healthy());

    redis.stop();
    match a.append(&s, user_draft("s", "while-down")).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(matches!(a.history(&s, 0, 10).await, Err(StoreError::Unavailable(_))));
    poll_until("hub A reports unhealthy", || !a.healthy()).await;

    redis.restart();
    poll_until("hub A is healthy again", || a.healthy()).await;
    poll_until("hub B is healthy again", || b.healthy()).await;
    // The client's resend (same id) now goes through, once.
    let appended = a.append(&s, user_draft("s", "while-down")).await.expect("append after recovery");
    assert_eq!((appended.seq, appended.duplicate), (6, false));
    let appended = b.append(&s, user_draft("s", "m6")).await.expect("append");
    assert_eq!(appended.seq, 7);
    b.publish_ephemeral(marker(5)).await.expect("marker");
    let seqs: Vec<u64> = stored(&until_marker(&mut rx_a, 5).await).iter().map(|(_, s, _)| *s).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    let page = a.history(&s, 0, 100).await.expect("history");
    assert_eq!(page.last_seq, 7);
    assert!(a.room("lobby").await.expect("room").is_some());
    assert_eq!(a.remote_members("lobby").await.expect("members"), vec![ann]);
}

/// The inbox list on Redis reads the activity index and filters as it reads, at most 5,000
/// records a page: with 5,100 closed conversations newer than three open ones, a page of
/// `open` comes back short (even empty) with a `next`, and following `next` reaches all three.
/// Conversations active in the same millisecond page by id, highest first, none twice.
#[tokio::test]
async fn the_inbox_list_pages_past_what_one_page_may_read() {
    use natter_hub::store::inbox::{ConversationFilter, ListPosition, RecordChange};
    use natter_protocol::inbox::ConversationState;
    let redis = RedisServer::start();
    let store = hub(&redis).await;
    let inbox = store.inbox().expect("redis keeps the inbox");
    // Three open ones, all at the same millisecond, older than everything else.
    for n in 0..3 {
        inbox
            .change_conversation(&format!("c_open{n}"), &format!("s-open{n}"), "u_v", 1_000, Vec::new())
            .await
            .expect("open one");
    }
    let closed = vec![RecordChange::Status { status: ConversationState::Closed }];
    for n in 0..5_100u64 {
        inbox
            .change_conversation(
                &format!("c_closed{n:05}"),
                &format!("s-closed{n}"),
                "u_v",
                2_000 + n,
                closed.clone(),
            )
            .await
            .expect("closed one");
    }
    let mut after: Option<ListPosition> = None;
    let mut found = Vec::new();
    let mut pages = 0;
    loop {
        let page = inbox.conversations(ConversationFilter::Open, after.clone(), 2).await.expect("page");
        pages += 1;
        assert!(page.conversations.len() <= 2);
        found.extend(page.conversations.into_iter().map(|c| c.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging does not end: {found:?}");
    }
    assert_eq!(found, ["c_open2", "c_open1", "c_open0"], "ties by id, highest first, once each");
    assert!(pages >= 3, "the first page stopped at the scan's bound: {pages} pages");
    let closed = inbox.conversations(ConversationFilter::Closed, None, 200).await.expect("page");
    assert_eq!(closed.conversations.len(), 200);
    assert_eq!(closed.conversations[0].id, "c_closed05099", "newest first");
    assert_eq!(
        closed.next,
        Some(ListPosition { last_activity_ms: 2_000 + 4_900, id: "c_closed04900".into() })
    );
}
