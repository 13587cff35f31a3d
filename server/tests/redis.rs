//! Several real `natter-hub` processes on one real `redis-server`: they behave as one hub.
//! Session and room fan-out across hubs in one order, presence across hubs, a hub killed under
//! its clients (who move to the other hub and lose nothing), a dead hub's members expiring,
//! and Redis restarting under a running hub.

mod support_process;
mod support_redis;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use natter_protocol::{ErrorCode, ServerMessage};
use support_process::{eventually, HubProcess, Tab};
use support_redis::RedisServer;

/// `(seq, id)` of a stored frame.
fn stored(m: &ServerMessage) -> Option<(u64, String)> {
    match m {
        ServerMessage::User(c) | ServerMessage::Bot(c) | ServerMessage::Agent(c) => {
            Some((c.seq, c.id.clone()))
        }
        ServerMessage::Chat(c) => Some((c.seq, c.id.clone())),
        _ => None,
    }
}

/// Reads until the stored frames seen (plus `seen`) cover `1..=upto`; panics on a doubled seq.
async fn collect_until(tab: &mut Tab, seen: &mut BTreeMap<u64, String>, upto: u64) {
    while seen.len() < upto as usize || seen.keys().next_back().is_some_and(|s| *s < upto) {
        if let Some((seq, id)) = stored(&tab.next().await) {
            assert!(seen.insert(seq, id.clone()).is_none(), "seq {seq} ({id}) delivered twice");
        }
    }
}

fn hubs(redis: &RedisServer, dir: &std::path::Path, extra: &[&str]) -> (HubProcess, HubProcess) {
    let url = redis.url();
    let mut args = vec!["--redis-url", url.as_str()];
    args.extend_from_slice(extra);
    (HubProcess::start("hub-a", dir, &args), HubProcess::start("hub-b", dir, &args))
}

async fn open(hub: &HubProcess, session: &str, after: Option<u64>) -> (Tab, natter_protocol::History) {
    let mut tab = Tab::open(&hub.ws_url(session, after)).await;
    match tab.until(|m| matches!(m, ServerMessage::History(_))).await {
        ServerMessage::History(h) => (tab, h),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_redis_behave_as_one() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = hubs(&redis, dir.path(), &[]);

    // One session, a tab on each hub: both see every message (both tabs' and both hubs' bot
    // replies), in the same order, once.
    let (mut on_a, _) = open(&a, "visitor-1", None).await;
    let (mut on_b, _) = open(&b, "visitor-1", None).await;
    for i in 0..10 {
        on_a.say(&format!("a{i}"), "hello from hub A").await;
        on_b.say(&format!("b{i}"), "hello from hub B").await;
    }
    // 20 visitor messages and 20 bot replies.
    let (mut seen_a, mut seen_b) = (BTreeMap::new(), BTreeMap::new());
    collect_until(&mut on_a, &mut seen_a, 40).await;
    collect_until(&mut on_b, &mut seen_b, 40).await;
    assert_eq!(seen_a.keys().copied().collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    assert_eq!(seen_a, seen_b, "one order on both hubs");
    for i in 0..10 {
        assert!(
            seen_a.values().any(|id| *id == format!("a{i}"))
                && seen_a.values().any(|id| *id == format!("b{i}"))
        );
    }

    // A room with a member on each hub: presence and messages across hubs.
    let (mut ann, _) = open(&a, "visitor-ann", None).await;
    let (mut bob, _) = open(&b, "visitor-bob", None).await;
    ann.join("lobby", "Ann", None).await;
    let (info, _) = bob.join("lobby", "Bob", None).await;
    let ServerMessage::RoomInfo(info) = info else { unreachable!() };
    let mut names: Vec<_> = info.members.iter().filter_map(|m| m.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["Ann", "Bob"], "hub B lists hub A's member");
    let joined = ann.until(|m| matches!(m, ServerMessage::UserJoined(_))).await;
    let ServerMessage::UserJoined(joined) = joined else { unreachable!() };
    assert_eq!(joined.user.name.as_deref(), Some("Bob"), "hub A's member is told about hub B's");
    for i in 0..10 {
        ann.chat("lobby", &format!("ann{i}"), "hi").await;
        bob.chat("lobby", &format!("bob{i}"), "hi").await;
    }
    let (mut room_a, mut room_b) = (BTreeMap::new(), BTreeMap::new());
    collect_until(&mut ann, &mut room_a, 20).await;
    collect_until(&mut bob, &mut room_b, 20).await;
    assert_eq!(room_a.len(), 20);
    assert_eq!(room_a, room_b, "one room order on both hubs");

    // Bob's only connection goes: Ann, on the other hub, is told.
    bob.close().await;
    let left = ann.until(|m| matches!(m, ServerMessage::UserLeft(_))).await;
    let ServerMessage::UserLeft(left) = left else { unreachable!() };
    assert_eq!(left.user.name.as_deref(), Some("Bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_hub_resume_on_the_other_with_nothing_lost_or_doubled() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, b) = hubs(&redis, dir.path(), &[]);
    let (mut watcher, _) = open(&b, "visitor-1", None).await;
    let (mut client, _) = open(&a, "visitor-1", None).await;

    // The client sends 100 messages at once; the hub dies after 30 acks, mid-stream.
    let ids: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    for id in &ids {
        client.say(id, "hello").await;
    }
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    while acked.len() < 30 {
        let m = client.next().await;
        if let ServerMessage::Ack(a) = &m {
            acked.insert(a.id.clone(), a.seq);
        }
        if let Some((seq, id)) = stored(&m) {
            assert!(seen.insert(seq, id).is_none());
        }
    }
    a.kill9();
    // Whatever else was already on its way before the socket died.
    while let Some(m) = client.try_next().await {
        if let ServerMessage::Ack(a) = &m {
            acked.insert(a.id.clone(), a.seq);
        }
        if let Some((seq, id)) = stored(&m) {
            assert!(seen.insert(seq, id).is_none());
        }
    }

    // The client reconnects through the "load balancer" to hub B, resuming after what it saw.
    let resume_after = seen.keys().copied().take_while({
        let mut expect = 1;
        move |s| {
            let ok = *s == expect;
            expect += 1;
            ok
        }
    });
    let resume_after = resume_after.last().unwrap_or(0);
    seen.retain(|s, _| *s <= resume_after);
    let (mut client, history) = open(&b, "visitor-1", Some(resume_after)).await;
    assert!(history.complete, "{history:?}");
    for m in &history.messages {
        let (seq, id) = stored(m).expect("stored frame");
        assert!(seen.insert(seq, id.clone()).is_none(), "resume repeated seq {seq}");
    }
    // It resends everything not acknowledged, with the same ids.
    for id in ids.iter().filter(|id| !acked.contains_key(*id)) {
        client.say(id, "hello").await;
    }
    while acked.len() < 100 {
        let m = client.next().await;
        if let ServerMessage::Ack(a) = &m {
            if let Some(first) = acked.get(&a.id) {
                assert_eq!(*first, a.seq);
            }
            acked.insert(a.id.clone(), a.seq);
        }
        if let Some((seq, id)) = stored(&m) {
            assert!(seen.insert(seq, id).is_none(), "seq {seq} delivered twice");
        }
    }
    // A last message marks the end; everything before it must have been seen exactly once.
    client.say("last", "done").await;
    let mut last_seq = None;
    while last_seq.is_none() || seen.keys().next_back() < last_seq.as_ref() {
        let m = client.next().await;
        if let ServerMessage::Ack(a) = &m {
            last_seq = Some(a.seq);
        }
        if let Some((seq, id)) = stored(&m) {
            assert!(seen.insert(seq, id).is_none(), "seq {seq} delivered twice");
        }
    }
    let last_seq = last_seq.expect("acked");
    let upto: Vec<u64> = seen.keys().copied().filter(|s| *s <= last_seq).collect();
    assert_eq!(upto, (1..=last_seq).collect::<Vec<_>>(), "no gap");
    // Each of the 100 messages is stored once, with the seq it was acknowledged with.
    for id in &ids {
        let at: Vec<u64> = seen.iter().filter(|(_, v)| *v == id).map(|(s, _)| *s).collect();
        assert_eq!(at, vec![acked[id]], "{id} stored once, at its acknowledged seq");
    }
    // The tab that stayed on hub B saw the same conversation.
    let mut watched = BTreeMap::new();
    collect_until(&mut watcher, &mut watched, last_seq).await;
    let seen_upto: BTreeMap<u64, String> = seen.into_iter().filter(|(s, _)| *s <= last_seq).collect();
    let watched_upto: BTreeMap<u64, String> = watched.into_iter().filter(|(s, _)| *s <= last_seq).collect();
    assert_eq!(watched_upto, seen_upto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hubs_room_members_leave_for_everyone() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut a, b) = hubs(&redis, dir.path(), &["--presence-lease", "2s"]);
    let (mut ann, _) = open(&a, "visitor-ann", None).await;
    ann.join("lobby", "Ann", None).await;
    let (mut bob, _) = open(&b, "visitor-bob", None).await;
    let (info, _) = bob.join("lobby", "Bob", None).await;
    let ServerMessage::RoomInfo(info) = info else { unreachable!() };
    assert!(info.members.iter().any(|m| m.name.as_deref() == Some("Ann")));
    a.kill9();
    // Nobody said goodbye for Ann; her lease runs out and hub B tells Bob.
    let left = bob.until(|m| matches!(m, ServerMessage::UserLeft(_))).await;
    let ServerMessage::UserLeft(left) = left else { unreachable!() };
    assert_eq!(left.user.name.as_deref(), Some("Ann"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_under_a_running_hub_is_reported_and_recovered_from() {
    let mut redis = RedisServer::start_persistent();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = redis.url();
    let hub = HubProcess::start("hub", dir.path(), &["--redis-url", &url]);
    let (mut tab, _) = open(&hub, "visitor-1", None).await;
    tab.say("before", "hello").await;
    tab.until(|m| matches!(m, ServerMessage::Ack(_))).await;
    assert_eq!(hub.healthz().map(|(s, _)| s), Some(200));

    redis.stop();
    eventually("/healthz reports degraded", || {
        hub.healthz().is_some_and(|(status, body)| status == 503 && body.contains("degraded"))
    })
    .await;
    tab.say("during", "is anyone there?").await;
    match tab.until(|m| matches!(m, ServerMessage::Error(_))).await {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
            assert_eq!(e.id.as_deref(), Some("during"));
        }
        _ => unreachable!(),
    }
    assert!(hub.log().contains("lost Redis"), "the log says so:\n{}", hub.log());

    redis.restart();
    eventually("/healthz is ok again", || hub.healthz().is_some_and(|(status, _)| status == 200)).await;
    assert!(hub.log().contains("Redis reachable again"), "the log says so:\n{}", hub.log());
    // The widget's resend now goes through, and is delivered. Like the widget's outbox, resend
    // while the hub still answers `unavailable`: its command connection may come back a moment
    // after the subscription that /healthz reports on.
    // The stored `user` frame travels the pub/sub path and may arrive before the ack: keep it.
    let mut delivered = None;
    let ack = 'sending: loop {
        tab.say("during", "is anyone there?").await;
        loop {
            let is_during = |m: &ServerMessage| matches!(m, ServerMessage::User(u) if u.id == "during");
            match tab
                .until(|m| matches!(m, ServerMessage::Ack(_) | ServerMessage::Error(_)) || is_during(m))
                .await
            {
                ServerMessage::Ack(ack) => break 'sending ack,
                m if is_during(&m) => delivered = Some(m),
                ServerMessage::Error(e) if e.code == ErrorCode::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'sending;
                }
                other => panic!("expected an ack or `unavailable`, got {other:?}"),
            }
        }
    };
    assert!(!ack.duplicate);
    let delivered = match delivered {
        Some(m) => m,
        None => tab.until(|m| matches!(m, ServerMessage::User(u) if u.id == "during")).await,
    };
    assert_eq!(stored(&delivered).map(|(s, _)| s), Some(ack.seq));
}

/// A room deleted through one hub is gone on every hub: its members on the other hub are told
/// (`room_deleted`) and are no longer in it, and a join there makes a new, empty room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_deleted_through_one_hub_is_gone_on_every_hub() {
    const KEY: &str = "the site's key of the room API";
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = hubs(&redis, dir.path(), &["--api-key", KEY]);
    let (mut ann, _) = open(&a, "visitor-ann", None).await;
    ann.join("standup", "Ann", None).await;
    let (mut bob, _) = open(&b, "visitor-bob", None).await;
    bob.join("standup", "Bob", None).await;
    ann.chat("standup", "c1", "squatted").await;
    ann.until(|m| matches!(m, ServerMessage::Ack(_))).await;
    bob.until(|m| matches!(m, ServerMessage::Chat(_))).await;

    // Taken over through hub A: Bob, on hub B, sees the new name.
    let http = reqwest::Client::new();
    let put = http
        .put(a.http("/api/rooms/standup"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"name": "Stand-up"}));
    assert_eq!(put.send().await.expect("put").status(), 200);
    let seen = bob.until(|m| matches!(m, ServerMessage::RoomInfo(_))).await;
    assert!(matches!(&seen, ServerMessage::RoomInfo(i) if i.name.as_deref() == Some("Stand-up")), "{seen:?}");

    // Deleted through hub A: both are told, and Bob is no longer in it on hub B.
    let delete = http.delete(a.http("/api/rooms/standup")).bearer_auth(KEY).send().await.expect("delete");
    assert_eq!(delete.status(), 204);
    for tab in [&mut ann, &mut bob] {
        let told =
            tab.until(|m| matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::RoomDeleted)).await;
        assert!(matches!(told, ServerMessage::Error(e) if e.room.as_deref() == Some("standup")));
    }
    bob.chat("standup", "b1", "hello?").await;
    let refused = bob.until(|m| matches!(m, ServerMessage::Error(_))).await;
    assert!(
        matches!(refused, ServerMessage::Error(e) if e.code == ErrorCode::NotInRoom),
        "Bob left it on hub B"
    );
    assert_eq!(reqwest::get(b.http("/api/rooms/standup")).await.expect("get").status(), 404);
    let (info, history) = bob.join("standup", "Bob", Some(0)).await;
    let (ServerMessage::RoomInfo(info), ServerMessage::History(history)) = (info, history) else {
        unreachable!()
    };
    assert_eq!((info.last_seq, info.name, info.member_count), (1, None, 1), "nobody else: Ann was taken out");
    assert!(history.messages.is_empty(), "{history:?}");
}
