//! SQLite persistence through the real `natter-hub` binary: a clean restart and a `kill -9`
//! lose nothing acknowledged, a tab resuming with `after=<seq>` gets exactly what it missed,
//! and de-duplication by id survives the restart.

mod support_process;

use std::collections::HashMap;

use natter_protocol::ServerMessage;
use support_process::{HubProcess, Tab};

/// `(seq, id, kind)` of a stored frame.
fn stored(m: &ServerMessage) -> Option<(u64, String, &'static str)> {
    match m {
        ServerMessage::User(c) => Some((c.seq, c.id.clone(), "user")),
        ServerMessage::Bot(c) => Some((c.seq, c.id.clone(), "bot")),
        ServerMessage::Agent(c) => Some((c.seq, c.id.clone(), "agent")),
        ServerMessage::Chat(c) => Some((c.seq, c.id.clone(), "chat")),
        _ => None,
    }
}

/// Sends `n` user messages with ids `<prefix><i>` at once and waits for their acks.
async fn send_all(tab: &mut Tab, prefix: &str, n: usize) -> HashMap<String, u64> {
    for i in 0..n {
        tab.say(&format!("{prefix}{i}"), &format!("message {i}: hello")).await;
    }
    let mut acks = HashMap::new();
    while acks.len() < n {
        match tab.next().await {
            ServerMessage::Ack(a) => {
                assert!(!a.duplicate, "{} is new", a.id);
                acks.insert(a.id, a.seq);
            }
            ServerMessage::Error(e) => panic!("refused: {e:?}"),
            _ => {}
        }
    }
    acks
}

/// The history frame a resuming tab gets first.
async fn resume(hub: &HubProcess, session: &str, after: u64) -> (Tab, natter_protocol::History) {
    let mut tab = Tab::open(&hub.ws_url(session, Some(after))).await;
    match tab.until(|m| matches!(m, ServerMessage::History(_))).await {
        ServerMessage::History(h) => (tab, h),
        _ => unreachable!(),
    }
}

/// Checks that `history` (the answer to `after`) holds exactly seqs `after+1 ..= last_seq`, each
/// once, and every acknowledged message newer than `after` with its acknowledged seq.
fn assert_exactly_missed(history: &natter_protocol::History, after: u64, acks: &HashMap<String, u64>) {
    assert!(history.complete, "nothing is missing: {history:?}");
    let got: Vec<(u64, String, &str)> = history.messages.iter().filter_map(stored).collect();
    let seqs: Vec<u64> = got.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(
        seqs,
        ((after + 1)..=history.last_seq).collect::<Vec<_>>(),
        "exactly the missed seqs, in order"
    );
    let by_id: HashMap<&str, u64> = got.iter().map(|(s, id, _)| (id.as_str(), *s)).collect();
    assert_eq!(by_id.len(), got.len(), "no id twice");
    for (id, seq) in acks {
        if *seq > after {
            assert_eq!(by_id.get(id.as_str()), Some(seq), "acknowledged {id} (seq {seq}) is in the resume");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged_and_resume_gets_exactly_what_was_missed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut hub = HubProcess::start("hub", dir.path(), &["--db", "natter.db"]);

    // Tab B watches the conversation, then goes away at seq `seen`.
    let mut watcher = Tab::open(&hub.ws_url("visitor-1", None)).await;
    watcher.until(|m| matches!(m, ServerMessage::History(_))).await;
    let mut sender = Tab::open(&hub.ws_url("visitor-1", None)).await;
    sender.until(|m| matches!(m, ServerMessage::History(_))).await;
    let acks_first = send_all(&mut sender, "a", 20).await;
    let mut seen = 0;
    while seen < 20 {
        if let Some((seq, _, _)) = stored(&watcher.next().await) {
            assert_eq!(seq, seen + 1, "live delivery in order");
            seen = seq;
        }
    }
    watcher.close().await;

    // Tab A goes on; every acknowledged message must survive what comes next.
    let mut acks = send_all(&mut sender, "b", 200).await;
    acks.extend(acks_first);
    let max_acked = acks.values().copied().max().expect("acks");
    hub.kill9();
    assert!(hub.healthz().is_none(), "the hub is gone");

    hub.restart();
    let (mut watcher, history) = resume(&hub, "visitor-1", seen).await;
    assert!(history.last_seq >= max_acked);
    assert_exactly_missed(&history, seen, &acks);
    // The user messages themselves are all there (bot replies may or may not have been stored
    // before the kill; those that were are in the resume too).
    let users = history.messages.iter().filter(|m| matches!(m, ServerMessage::User(_))).count();
    assert_eq!(users as u64, acks.values().filter(|s| **s > seen).count() as u64);

    // De-duplication survives the crash: a resend of an old id is acknowledged with its seq
    // and not delivered again; the next new message is.
    let mut sender = Tab::open(&hub.ws_url("visitor-1", None)).await;
    sender.until(|m| matches!(m, ServerMessage::History(_))).await;
    sender.say("b7", "message 7: hello").await;
    match sender.until(|m| matches!(m, ServerMessage::Ack(_))).await {
        ServerMessage::Ack(a) => assert_eq!((a.id.as_str(), a.seq, a.duplicate), ("b7", acks["b7"], true)),
        _ => unreachable!(),
    }
    sender.say("fresh", "after the crash").await;
    let next_user = watcher.until(|m| matches!(m, ServerMessage::User(_))).await;
    let (seq, id, _) = stored(&next_user).expect("stored");
    assert_eq!(id, "fresh", "the duplicate was not delivered again");
    assert!(seq > history.last_seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_keeps_history_rooms_and_seq() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut hub = HubProcess::start("hub", dir.path(), &["--db", "natter.db"]);
    let mut tab = Tab::open(&hub.ws_url("visitor-2", None)).await;
    tab.until(|m| matches!(m, ServerMessage::History(_))).await;
    let (_, _) = tab.join("lobby", "Ann", None).await;
    for i in 0..5 {
        tab.chat("lobby", &format!("c{i}"), &format!("room message {i}")).await;
    }
    let mut room_acks = HashMap::new();
    while room_acks.len() < 5 {
        if let ServerMessage::Ack(a) = tab.next().await {
            room_acks.insert(a.id, a.seq);
        }
    }
    let acks = send_all(&mut tab, "m", 10).await;
    hub.terminate();

    hub.restart();
    let (_, history) = resume(&hub, "visitor-2", 3).await;
    assert_exactly_missed(&history, 3, &acks);
    // A new tab (no `after`) is shown the conversation so far.
    let mut fresh = Tab::open(&hub.ws_url("visitor-2", None)).await;
    let recent = fresh.until(|m| matches!(m, ServerMessage::History(_))).await;
    let ServerMessage::History(recent) = recent else { unreachable!() };
    assert_eq!(recent.last_seq, history.last_seq);
    assert!(recent.messages.iter().filter_map(stored).any(|(_, id, _)| id == "m0"));
    // The room and its messages are still there, and its seq carries on.
    let (info, room_history) = fresh.join("lobby", "Bob", Some(2)).await;
    let ServerMessage::RoomInfo(info) = info else { unreachable!() };
    assert_eq!(info.last_seq, 5);
    let ServerMessage::History(room_history) = room_history else { unreachable!() };
    let ids: Vec<String> = room_history.messages.iter().filter_map(stored).map(|(_, id, _)| id).collect();
    assert_eq!(ids, ["c2", "c3", "c4"]);
    fresh.chat("lobby", "c5", "after the restart").await;
    match fresh.until(|m| matches!(m, ServerMessage::Ack(_))).await {
        ServerMessage::Ack(a) => assert_eq!((a.seq, a.duplicate), (6, false)),
        _ => unreachable!(),
    }
    assert_eq!(room_acks["c4"], 5);
    assert!(hub.log().contains("SQLite store open"), "the log says which store runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_path_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("from-env.db");
    let mut hub =
        HubProcess::start_with_env("hub", dir.path(), &[], &[("NATTER_DB", db.to_str().expect("utf-8"))]);
    let mut tab = Tab::open(&hub.ws_url("visitor-3", None)).await;
    tab.until(|m| matches!(m, ServerMessage::History(_))).await;
    send_all(&mut tab, "e", 1).await;
    hub.terminate();
    assert!(db.exists(), "NATTER_DB names the file");
    assert!(!dir.path().join("natter.db").exists(), "and the default is not used");
}

/// The operator's `PUT` and `DELETE` of a room reach the database: a taken-over room keeps its
/// new name across a restart, and a deleted one is gone with its messages for good (a join
/// after the restart makes a new, empty room whose seq starts at 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_put_and_delete_of_a_room_are_stored() {
    const KEY: &str = "the site's key of the room API";
    let dir = tempfile::tempdir().expect("temp dir");
    let mut hub = HubProcess::start("hub", dir.path(), &["--db", "natter.db", "--api-key", KEY]);
    let http = reqwest::Client::new();
    let mut tab = Tab::open(&hub.ws_url("visitor-3", None)).await;
    tab.until(|m| matches!(m, ServerMessage::History(_))).await;
    for room in ["squatted", "doomed"] {
        tab.join(room, "Ann", None).await;
        for i in 0..3 {
            tab.chat(room, &format!("{room}-{i}"), "before").await;
            tab.until(|m| matches!(m, ServerMessage::Ack(_))).await;
        }
    }
    let put = http
        .put(hub.http("/api/rooms/squatted"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"name": "Site's"}));
    assert_eq!(put.send().await.expect("put").status(), 200);
    let delete = http.delete(hub.http("/api/rooms/doomed")).bearer_auth(KEY).send().await.expect("delete");
    assert_eq!(delete.status(), 204);
    let told =
        tab.until(|m| matches!(m, ServerMessage::Error(e) if e.room.as_deref() == Some("doomed"))).await;
    assert!(matches!(told, ServerMessage::Error(e) if e.code == natter_protocol::ErrorCode::RoomDeleted));
    hub.terminate();

    hub.restart();
    let info: serde_json::Value =
        reqwest::get(hub.http("/api/rooms/squatted")).await.expect("get").json().await.expect("json");
    assert_eq!((info["name"].as_str(), info["lastSeq"].as_u64()), (Some("Site's"), Some(3)));
    assert_eq!(reqwest::get(hub.http("/api/rooms/doomed")).await.expect("get").status(), 404);
    let mut fresh = Tab::open(&hub.ws_url("visitor-4", None)).await;
    fresh.until(|m| matches!(m, ServerMessage::History(_))).await;
    let (info, history) = fresh.join("doomed", "Bob", Some(0)).await;
    let (ServerMessage::RoomInfo(info), ServerMessage::History(history)) = (info, history) else {
        unreachable!()
    };
    // Empty, its seqs going on from the deleted room's three (kept across the restart too).
    assert_eq!((info.last_seq, info.name), (3, None));
    assert!(history.messages.is_empty(), "{history:?}");
    fresh.chat("doomed", "doomed-0", "a new room").await;
    match fresh.until(|m| matches!(m, ServerMessage::Ack(_))).await {
        ServerMessage::Ack(a) => assert_eq!((a.seq, a.duplicate), (4, false)),
        _ => unreachable!(),
    }
}
