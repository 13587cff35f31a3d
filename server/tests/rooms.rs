//! Rooms and presence (the collaboration module's rooms): join → room_info + history + user_joined to the others;
//! chat; leave; user_left also when a connection drops; one presence entry per user; relays
//! reach the other members and are not stored; the room HTTP API.

mod common;

use common::{session, Tab, TestHub};
use natter_protocol::{ErrorCode, RoomInfo, ServerMessage};
use serde_json::{json, Value};

/// Joins `room` and returns its `room_info` and the room's `history`.
async fn join(tab: &mut Tab, room: &str, name: &str) -> (RoomInfo, natter_protocol::History) {
    tab.send(json!({"type": "join", "room": room, "name": name})).await;
    let info = match tab.recv_data().await {
        ServerMessage::RoomInfo(i) => i,
        other => panic!("expected room_info, got {other:?}"),
    };
    let history = tab.expect_history().await;
    assert_eq!(history.room.as_deref(), Some(room));
    (info, history)
}

fn member_id(session: &str) -> String {
    common::member_id(session)
}

#[tokio::test]
async fn join_chat_presence_and_drop() {
    let hub = TestHub::start().await;
    let (alice_sid, bob_sid) = (session("alice"), session("bob"));
    let (mut alice, _) = hub.tab(&alice_sid).await;
    let (mut bob, _) = hub.tab(&bob_sid).await;

    let (info, history) = join(&mut alice, "design", "Alice").await;
    assert_eq!(info.room, "design");
    assert_eq!(info.members.len(), 1);
    assert_eq!(info.members[0].id, member_id(&alice_sid));
    assert!(info.members[0].id.starts_with("u_") && info.members[0].id.len() == 18);
    assert!(!serde_json::to_string(&info).unwrap_or_default().contains(&alice_sid), "session id leaked");
    assert!(history.messages.is_empty());

    alice.send(json!({"type": "chat", "room": "design", "id": "c1", "message": "first"})).await;
    let ack = alice
        .until(|m| match m {
            ServerMessage::Ack(a) => Some(a),
            _ => None,
        })
        .await;
    assert_eq!((ack.seq, ack.room.as_deref()), (1, Some("design")));

    // Bob joins: he gets room_info with both members and the room's history; Alice is told.
    let (info, history) = join(&mut bob, "design", "Bob").await;
    let ids: Vec<&str> = info.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&member_id(&bob_sid).as_str()) && ids.contains(&member_id(&alice_sid).as_str()));
    assert_eq!(info.last_seq, 1);
    assert_eq!(history.messages.len(), 1);
    assert!(
        matches!(&history.messages[0], ServerMessage::Chat(c) if c.message == "first" && c.from.name.as_deref() == Some("Alice"))
    );
    let joined = alice
        .until(|m| match m {
            ServerMessage::UserJoined(p) => Some(p),
            ServerMessage::Chat(_) => None,
            other => panic!("{other:?}"),
        })
        .await;
    assert_eq!((joined.room.as_str(), joined.user.id.as_str()), ("design", member_id(&bob_sid).as_str()));
    assert_eq!(joined.user.name.as_deref(), Some("Bob"));

    // Bob chats; both get the chat frame.
    bob.send(json!({"type": "chat", "room": "design", "message": "hi alice"})).await;
    for tab in [&mut alice, &mut bob] {
        let chat = tab
            .until(|m| match m {
                ServerMessage::Chat(c) => Some(c),
                _ => None,
            })
            .await;
        assert_eq!((chat.seq, chat.message.as_str()), (2, "hi alice"));
        assert_eq!(chat.from.id, member_id(&bob_sid));
    }

    // A second tab of Alice joins: no second presence entry, no user_joined.
    let (mut alice2, _) = hub.tab(&alice_sid).await;
    let (info, _) = join(&mut alice2, "design", "Alice").await;
    assert_eq!(info.members.len(), 2, "one entry per user: {:?}", info.members);

    // Alice's first tab drops: she still has a tab, so nobody is told she left.
    drop(alice);
    // Alice's second tab leaves: now Bob gets user_left.
    alice2.send(json!({"type": "leave", "room": "design"})).await;
    let left = bob
        .until(|m| match m {
            ServerMessage::UserLeft(p) => Some(p),
            ServerMessage::UserJoined(p) => panic!("unexpected join {p:?}"),
            _ => None,
        })
        .await;
    assert_eq!(left.user.id, member_id(&alice_sid));
    // After leaving, chat is refused.
    alice2.send(json!({"type": "chat", "room": "design", "id": "late-1", "message": "still here?"})).await;
    // The refusal names the room and the message, so a client in several rooms knows which.
    match alice2.recv_data().await {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, ErrorCode::NotInRoom);
            assert_eq!((e.room.as_deref(), e.id.as_deref()), (Some("design"), Some("late-1")));
        }
        other => panic!("expected not_in_room, got {other:?}"),
    }
    alice2.send(json!({"type": "cursor_position", "room": "design", "data": {"x": 1}})).await;
    match alice2.recv_data().await {
        ServerMessage::Error(e) => {
            assert_eq!((e.code, e.room.as_deref()), (ErrorCode::NotInRoom, Some("design")))
        }
        other => panic!("expected not_in_room, got {other:?}"),
    }

    // A connection that just drops counts as leaving: Carol joins, then her socket goes.
    let carol_sid = session("carol");
    let (mut carol, _) = hub.tab(&carol_sid).await;
    join(&mut carol, "design", "Carol").await;
    let joined = bob
        .until(|m| match m {
            ServerMessage::UserJoined(p) => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(joined.user.id, member_id(&carol_sid));
    drop(carol);
    let left = bob
        .until(|m| match m {
            ServerMessage::UserLeft(p) => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(left.user.id, member_id(&carol_sid));
    assert_eq!(left.user.name.as_deref(), Some("Carol"));

    let info: RoomInfo =
        reqwest::get(hub.url("/api/rooms/design")).await.expect("get").json().await.expect("json");
    assert_eq!(info.members.len(), 1);
    assert_eq!(info.members[0].id, member_id(&bob_sid));
    assert_eq!(info.last_seq, 2);
}

#[tokio::test]
async fn relays_reach_other_members_and_are_not_stored() {
    let hub = TestHub::start().await;
    let (mut a, _) = hub.tab(&session("ra")).await;
    let (mut b, _) = hub.tab(&session("rb")).await;
    let (mut outsider, _) = hub.tab(&session("rc")).await;
    join(&mut a, "board", "A").await;
    join(&mut b, "board", "B").await;
    a.until(|m| matches!(m, ServerMessage::UserJoined(_)).then_some(())).await;

    a.send(json!({"type": "cursor_position", "room": "board", "data": {"x": 10, "y": 20}})).await;
    a.send(json!({"type": "chain_update", "room": "board", "data": {"step": 3}})).await;
    a.send(json!({"type": "typing", "room": "board", "active": true})).await;
    let m = b.recv().await;
    assert!(
        matches!(&m, ServerMessage::CursorPosition(r) if r.data == json!({"x": 10, "y": 20}) && r.room == "board"),
        "{m:?}"
    );
    let m = b.recv().await;
    assert!(matches!(&m, ServerMessage::ChainUpdate(r) if r.data == json!({"step": 3})), "{m:?}");
    let m = b.recv().await;
    assert!(
        matches!(&m, ServerMessage::Typing(t) if t.active && t.room.as_deref() == Some("board")),
        "{m:?}"
    );
    // The sender does not get its own relays back, and the outsider gets nothing.
    a.ping_works().await;
    outsider.send(json!({"type": "ping"})).await;
    assert!(matches!(outsider.recv().await, ServerMessage::Pong(_)));
    // Nothing was stored: a new member's history is empty and last_seq is 0.
    let (mut c, _) = hub.tab(&session("rd")).await;
    let (info, history) = join(&mut c, "board", "C").await;
    assert_eq!(info.last_seq, 0);
    assert!(history.messages.is_empty());
}

#[tokio::test]
async fn room_resume_with_after() {
    let hub = TestHub::start().await;
    let (mut a, _) = hub.tab(&session("ja")).await;
    join(&mut a, "log", "A").await;
    for i in 0..5 {
        a.send(json!({"type": "chat", "room": "log", "id": format!("l{i}"), "message": format!("line {i}")}))
            .await;
    }
    let mut acks = 0;
    while acks < 5 {
        if let ServerMessage::Ack(_) = a.recv().await {
            acks += 1;
        }
    }
    let (mut b, _) = hub.tab(&session("jb")).await;
    b.send(json!({"type": "join", "room": "log", "after": 3})).await;
    assert!(matches!(b.recv_data().await, ServerMessage::RoomInfo(_)));
    let h = b.expect_history().await;
    assert_eq!(h.messages.iter().filter_map(ServerMessage::seq).collect::<Vec<_>>(), [4, 5]);
    assert!(h.complete);
}

#[tokio::test]
async fn room_http_api() {
    let mut config = natter_hub::Config::for_tests();
    config.api_key = Some("operator key, 16 bytes+".into());
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    let create = |body: Value| {
        client.post(hub.url("/api/rooms")).bearer_auth("operator key, 16 bytes+").json(&body).send()
    };

    let r = create(json!({"room": "team-a", "name": "Team A", "metadata": {"topic": "design"}}))
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    let info: RoomInfo = r.json().await.expect("json");
    assert_eq!((info.room.as_str(), info.name.as_deref()), ("team-a", Some("Team A")));
    assert_eq!(info.metadata, json!({"topic": "design"}));

    let r = create(json!({"room": "team-a"})).await.expect("post");
    assert_eq!(r.status(), 409);
    assert!(
        matches!(r.json::<ServerMessage>().await.expect("json"), ServerMessage::Error(e) if e.code == ErrorCode::RoomExists)
    );
    // A body over --max-frame is too large (413), not a bad body.
    let r = create(json!({"room": "big", "metadata": {"blob": "m".repeat(70_000)}})).await.expect("post");
    assert_eq!(r.status(), 413);
    assert!(
        matches!(r.json::<ServerMessage>().await.expect("json"), ServerMessage::Error(e) if e.code == ErrorCode::TooLarge && e.message.contains("larger than the hub's limit"))
    );
    // Metadata is a JSON object of at most MAX_ROOM_METADATA_BYTES, counted on its text.
    let limit = natter_protocol::MAX_ROOM_METADATA_BYTES;
    for (metadata, status, code, says) in [
        (json!([1, 2]), 400, ErrorCode::InvalidMessage, "must be a JSON object"),
        (json!("topic"), 400, ErrorCode::InvalidMessage, "must be a JSON object"),
        // `{"b":"…"}`: 8 bytes around the string, so one byte over the limit.
        (json!({"b": "m".repeat(limit - 7)}), 413, ErrorCode::TooLarge, "the limit is 8192"),
    ] {
        let r = create(json!({"room": "meta", "metadata": metadata})).await.expect("post");
        assert_eq!(r.status(), status, "{metadata}");
        let m = r.json::<ServerMessage>().await.expect("json");
        assert!(matches!(&m, ServerMessage::Error(e) if e.code == code && e.message.contains(says)), "{m:?}");
    }
    let r = create(json!({"room": "meta", "metadata": {"b": "m".repeat(limit - 8)}})).await.expect("post");
    assert_eq!(r.status(), 201, "exactly at the limit");
    // Kept as the text it arrived as (spaces and key order too) and served back as that value.
    let text = r#"{"room":"meta-text","metadata":{ "z": 1,  "a": [true, null] }}"#;
    let r = client
        .post(hub.url("/api/rooms"))
        .bearer_auth("operator key, 16 bytes+")
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    let served = r.text().await.expect("text");
    assert!(served.contains(r#""metadata":{ "z": 1,  "a": [true, null] }"#), "{served}");

    let r = create(json!({"room": "bad room"})).await.expect("post");
    assert_eq!(r.status(), 400);
    assert!(
        matches!(r.json::<ServerMessage>().await.expect("json"), ServerMessage::Error(e) if e.code == ErrorCode::InvalidMessage && e.message.contains("bad room"))
    );

    let r = reqwest::get(hub.url("/api/rooms/nowhere")).await.expect("get");
    assert_eq!(r.status(), 404);
    assert!(
        matches!(r.json::<ServerMessage>().await.expect("json"), ServerMessage::Error(e) if e.code == ErrorCode::UnknownRoom)
    );

    // A WebSocket member shows up in the list and the info.
    let sid = session("member");
    let (mut tab, _) = hub.tab(&sid).await;
    let (info, _) = join(&mut tab, "team-a", "M").await;
    assert_eq!(info.metadata, json!({"topic": "design"}), "join sees the created room's metadata");
    let list: natter_protocol::RoomList =
        reqwest::get(hub.url("/api/rooms")).await.expect("get").json().await.expect("json");
    let team = list.rooms.iter().find(|r| r.room == "team-a").expect("listed");
    assert_eq!(team.member_count, 1);
    let info: RoomInfo =
        reqwest::get(hub.url("/api/rooms/team-a")).await.expect("get").json().await.expect("json");
    assert_eq!(info.members[0].id, member_id(&sid));
}

/// Large rooms: `room_info` lists at most ROOM_INFO_MEMBER_LIMIT members but counts them all,
/// and above `--presence-announce-limit` joins are no longer announced one by one.
#[tokio::test]
async fn large_rooms_cap_member_lists_and_announcements() {
    let mut config = natter_hub::Config::for_tests();
    config.presence_announce_limit = 3;
    let hub = TestHub::with(config).await;
    let limit = natter_protocol::ROOM_INFO_MEMBER_LIMIT;

    let mut tabs = Vec::new();
    for i in 0..3 {
        let (mut tab, _) = hub.tab(&session(&format!("m{i}"))).await;
        let (info, _) = join(&mut tab, "big", &format!("M{i}")).await;
        assert_eq!(info.member_count, i + 1);
        tabs.push(tab);
    }
    // The third join (3 members, at the limit) was announced to the first member.
    let joined = tabs[0]
        .until(|m| match m {
            ServerMessage::UserJoined(p) if p.user.name.as_deref() == Some("M2") => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(joined.room, "big");

    // Past the limit: the fourth member is not announced; the next thing the first member
    // sees is the chat sent after the join, not a user_joined.
    let (mut fourth, _) = hub.tab(&session("m3")).await;
    let (info, _) = join(&mut fourth, "big", "M3").await;
    assert_eq!(info.member_count, 4);
    fourth.send(json!({"type": "chat", "room": "big", "id": "after-join", "message": "hi"})).await;
    let next = tabs[0]
        .until(|m| match m {
            m @ (ServerMessage::UserJoined(_) | ServerMessage::Chat(_)) => Some(m),
            _ => None,
        })
        .await;
    assert!(matches!(&next, ServerMessage::Chat(c) if c.id == "after-join"), "got {next:?}");

    // Fill the room past the member-list cap.
    for i in 4..=limit {
        let (mut tab, _) = hub.tab(&session(&format!("m{i}"))).await;
        join(&mut tab, "big", &format!("M{i}")).await;
        tabs.push(tab);
    }
    let (mut last, _) = hub.tab(&session("last")).await;
    let (info, _) = join(&mut last, "big", "Last").await;
    assert_eq!(info.member_count, limit + 2);
    assert_eq!(info.members.len(), limit);
    let over_http: Value = reqwest::get(hub.url("/api/rooms/big")).await.unwrap().json().await.unwrap();
    assert_eq!(over_http["memberCount"], json!(limit + 2));
    assert_eq!(over_http["members"].as_array().map(Vec::len), Some(limit));
}

/// A room member whose WebSocket is blocked: `chat` through `POST /api/chat/messages`, the room
/// read through `GET /api/chat/poll?room=` (a long-poll woken by the next message); the
/// WebSocket members see the HTTP member's messages and the other way round.
#[tokio::test]
async fn rooms_over_the_http_fallback() {
    let hub = TestHub::start().await;
    let client = reqwest::Client::new();
    let http_sid = session("http-member");
    let post = |body: Value| {
        client.post(hub.url("/api/chat/messages")).header("x-natter-session", &http_sid).json(&body).send()
    };
    let poll = |after: u64| {
        client
            .get(hub.url(&format!("/api/chat/poll?room=fallback&after={after}")))
            .header("x-natter-session", &http_sid)
            .send()
    };

    // The first message creates the room; a re-send with the same id is acknowledged, not stored twice.
    let chat =
        json!({"type": "chat", "room": "fallback", "id": "h-1", "message": "over HTTP", "name": "Hal"});
    for duplicate in [false, true] {
        let r = post(chat.clone()).await.expect("post");
        assert_eq!(r.status(), 200);
        match r.json::<ServerMessage>().await.expect("json") {
            ServerMessage::Ack(a) => {
                assert_eq!((a.seq, a.room.as_deref(), a.duplicate), (1, Some("fallback"), duplicate));
            }
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    // A WebSocket member joins, gets it in the history with the HTTP member's name, and answers.
    let (mut ws, _) = hub.tab(&session("ws-member")).await;
    let (_, history) = join(&mut ws, "fallback", "Wes").await;
    match &history.messages[..] {
        [ServerMessage::Chat(m)] => {
            assert_eq!((m.id.as_str(), m.from.name.as_deref()), ("h-1", Some("Hal")));
            assert_eq!(m.from.id, common::member_id(&http_sid));
        }
        other => panic!("expected the HTTP member's message, got {other:?}"),
    }
    // The HTTP member's long-poll is waiting when the answer comes.
    let waiting = tokio::spawn(poll(1));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    ws.send(json!({"type": "chat", "room": "fallback", "id": "w-1", "message": "over the socket"})).await;
    let r = waiting.await.expect("join").expect("poll");
    assert_eq!(r.status(), 200);
    match r.json::<ServerMessage>().await.expect("json") {
        ServerMessage::History(h) => {
            assert_eq!(h.room.as_deref(), Some("fallback"));
            assert_eq!(h.messages.iter().filter_map(ServerMessage::id).collect::<Vec<_>>(), ["w-1"]);
        }
        other => panic!("expected the room's history, got {other:?}"),
    }
    // And the WebSocket member hears the next HTTP message live.
    post(json!({"type": "chat", "room": "fallback", "id": "h-2", "message": "again"})).await.expect("post");
    let live = ws
        .until(|m| match m {
            ServerMessage::Chat(c) if c.id == "h-2" => Some(c),
            _ => None,
        })
        .await;
    assert_eq!(live.seq, 3);

    // Refusals name the room (and the message).
    let r =
        post(json!({"type": "chat", "room": "bad room", "id": "h-3", "message": "x"})).await.expect("post");
    assert_eq!(r.status(), 400);
    match r.json::<ServerMessage>().await.expect("json") {
        ServerMessage::Error(e) => {
            assert_eq!(
                (e.code, e.room.as_deref(), e.id.as_deref()),
                (ErrorCode::InvalidMessage, Some("bad room"), Some("h-3"))
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let r = post(json!({"type": "chat", "room": "fallback", "message": "x", "name": "\u{7}bell"}))
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let r = client
        .get(hub.url("/api/chat/poll?room=no%20spaces&after=0"))
        .header("x-natter-session", &http_sid)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
}

/// A member on the HTTP fallback in several rooms reads them with one long-poll
/// (`?rooms=a,b&after=…`): at once for the first room with news, else when one of them gets a
/// message, else an empty history without a room when the time is up; bad lists are refused
/// naming what is wrong.
#[tokio::test]
async fn one_long_poll_reads_several_rooms() {
    let mut config = natter_hub::Config::for_tests();
    config.poll_timeout = std::time::Duration::from_millis(600);
    let hub = TestHub::with(config).await;
    let client = reqwest::Client::new();
    let sid = session("many-rooms");
    let post = |room: &str, id: &str| {
        client
            .post(hub.url("/api/chat/messages"))
            .header("x-natter-session", &sid)
            .json(&json!({"type": "chat", "room": room, "id": id, "message": id, "name": "Hal"}))
            .send()
    };
    let poll = |query: String| {
        client.get(hub.url(&format!("/api/chat/poll?{query}"))).header("x-natter-session", &sid).send()
    };
    let history = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        match r.json::<ServerMessage>().await.expect("json") {
            ServerMessage::History(h) => h,
            other => panic!("expected a history, got {other:?}"),
        }
    };
    for (room, id) in [("ra", "a-1"), ("rb", "b-1"), ("rc", "c-1")] {
        assert_eq!(post(room, id).await.expect("post").status(), 200);
    }
    // News in b and c: the first of them in the order asked for, at once.
    let h = history(poll("rooms=ra,rb,rc&after=1,0,0".into()).await.expect("poll")).await;
    assert_eq!((h.room.as_deref(), h.last_seq, h.messages.len()), (Some("rb"), 1, 1));
    let h = history(poll("rooms=ra,rc,rb&after=1,0,1".into()).await.expect("poll")).await;
    assert_eq!(h.room.as_deref(), Some("rc"));
    // An empty `after` entry asks for that room's recent history.
    let h = history(poll("rooms=ra,rb&after=,1".into()).await.expect("poll")).await;
    assert_eq!((h.room.as_deref(), h.messages.len()), (Some("ra"), 1));
    // Nothing new: the poll waits, and the next message in any of them answers it.
    let waiting = tokio::spawn(poll("rooms=ra,rb,rc&after=1,1,1".into()));
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    post("rc", "c-2").await.expect("post");
    let h = history(waiting.await.expect("join").expect("poll")).await;
    assert_eq!(h.room.as_deref(), Some("rc"));
    assert_eq!(h.messages.iter().filter_map(ServerMessage::id).collect::<Vec<_>>(), ["c-2"]);
    // Time up with nothing new: an empty history naming no room.
    let h = history(poll("rooms=ra,rb,rc&after=1,1,2".into()).await.expect("poll")).await;
    assert_eq!((h.room, h.messages.len()), (None, 0));

    for (query, says) in [
        ("rooms=ra,rb&after=1", "one seq per room"),
        ("rooms=ra,ra&after=1,1", "twice"),
        ("rooms=ra,bad%20room&after=1,1", "bad room"),
        ("rooms=ra&room=rb", "not both"),
        ("rooms=ra,rb&after=1,x", "whole number"),
    ] {
        let r = poll(query.into()).await.expect("poll");
        assert_eq!(r.status(), 400, "{query}");
        let m = r.json::<ServerMessage>().await.expect("json");
        assert!(
            matches!(&m, ServerMessage::Error(e) if e.code == ErrorCode::InvalidMessage && e.message.contains(says)),
            "{query}: {m:?}"
        );
    }
    let too_many: Vec<String> = (0..101).map(|i| format!("x{i}")).collect();
    let r = poll(format!("rooms={}", too_many.join(","))).await.expect("poll");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("at most 100 rooms"));
}
