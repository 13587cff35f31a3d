//! The room model's rules, natively: joins confirmed before calls go out, rejoin with resume
//! after a drop, no message shown twice, presence and typing, unread, refusals.

use super::*;
use natter_protocol::{Ack, Gap, Presence, TypingNotice};

fn member(id: &str, name: &str) -> Member {
    Member { id: id.into(), name: Some(name.into()), verified: false }
}

fn out(id: &str, text: &str) -> Outgoing {
    Outgoing { id: id.into(), text: text.into(), time: "2026-01-01T00:00:00Z".into(), context: String::new() }
}

fn chat(room: &str, id: &str, seq: u64, from: &Member) -> ServerMessage {
    ServerMessage::Chat(RoomMessage {
        room: room.into(),
        id: id.into(),
        seq,
        message: format!("text {id}"),
        timestamp: "2026-01-01T00:00:01Z".into(),
        from: from.clone(),
    })
}

fn info(room: &str, members: &[Member], last_seq: u64) -> ServerMessage {
    ServerMessage::RoomInfo(RoomInfo {
        room: room.into(),
        name: Some("Design review".into()),
        members: members.to_vec(),
        member_count: members.len(),
        last_seq,
        ..RoomInfo::default()
    })
}

fn history(room: &str, messages: Vec<ServerMessage>, last_seq: u64) -> ServerMessage {
    ServerMessage::History(History { room: Some(room.into()), messages, complete: true, gap: None, last_seq })
}

fn sent(fx: &[Effect]) -> Vec<RoomOut> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendRoom(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn notices(fx: &[Effect]) -> Vec<RoomNotice> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Notify(Notice::Room { notice, .. }) => Some(notice.clone()),
            _ => None,
        })
        .collect()
}

fn ids(r: &Room) -> Vec<&str> {
    r.messages.iter().map(|m| m.id.as_str()).collect()
}

/// A model whose link is up, with the visitor `me`, joined to `room` with Ada present.
fn joined(room: &str) -> Rooms {
    let mut rooms = Rooms { me: Some("me".into()), ..Rooms::default() };
    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    rooms.join(room.into(), Some("Me".into()), Vec::new(), &mut fx);
    rooms.receive(info(room, &[member("ada", "Ada"), member("me", "Me")], 2), &mut fx);
    rooms.receive(history(room, vec![chat(room, "h1", 1, &member("ada", "Ada"))], 1), &mut fx);
    rooms
}

#[test]
fn calls_before_the_join_is_confirmed_wait_and_go_out_in_order() {
    let mut rooms = Rooms::default();
    let mut fx = Vec::new();
    assert!(rooms.join("r".into(), Some("Ada".into()), Vec::new(), &mut fx));
    assert!(sent(&fx).is_empty(), "no link yet: nothing is written");
    rooms.send("r", out("m1", "hello"), &mut fx);
    rooms.typing("r", true, &mut fx);
    rooms.relay("r", RelayKind::Update, "{\"op\":1}".into(), &mut fx);
    rooms.relay("r", RelayKind::Cursor, "{\"x\":1}".into(), &mut fx);
    rooms.relay("r", RelayKind::Update, "{\"op\":2}".into(), &mut fx);
    rooms.relay("r", RelayKind::Cursor, "{\"x\":2}".into(), &mut fx);
    assert!(sent(&fx).is_empty());
    assert_eq!(rooms.get("r").map(|r| r.messages.len()), Some(1), "the message shows at once, pending");

    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    assert_eq!(sent(&fx), [RoomOut::Join { room: "r".into(), name: Some("Ada".into()), after: None }]);
    let mut fx = Vec::new();
    rooms.receive(info("r", &[member("ada", "Ada")], 0), &mut fx);
    let room = String::from("r");
    assert_eq!(
        sent(&fx),
        [
            RoomOut::Chat { room: room.clone(), out: out("m1", "hello") },
            RoomOut::Typing { room: room.clone(), active: true },
            RoomOut::Relay { room: room.clone(), kind: RelayKind::Update, data: "{\"op\":1}".into() },
            RoomOut::Relay { room: room.clone(), kind: RelayKind::Update, data: "{\"op\":2}".into() },
            RoomOut::Relay { room, kind: RelayKind::Cursor, data: "{\"x\":2}".into() },
        ],
        "the outbox first, then the calls in order, and only the latest cursor"
    );
    assert!(notices(&fx).contains(&RoomNotice::Status(RoomStatus::Joined)));
}

#[test]
fn a_drop_rejoins_after_the_last_seq_and_resends_without_a_gap_or_a_duplicate() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.receive(chat("r", "c2", 2, &member("ada", "Ada")), &mut fx);
    rooms.link_down(&mut fx);
    assert_eq!(rooms.get("r").map(|r| r.status), Some(RoomStatus::Rejoining));
    // Typed while the link is down: shown, waiting.
    rooms.send("r", out("m3", "offline"), &mut fx);
    assert!(sent(&fx).is_empty());

    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    assert_eq!(sent(&fx), [RoomOut::Join { room: "r".into(), name: Some("Me".into()), after: Some(2) }]);
    let mut fx = Vec::new();
    rooms.receive(info("r", &[member("ada", "Ada"), member("me", "Me")], 3), &mut fx);
    assert_eq!(sent(&fx), [RoomOut::Chat { room: "r".into(), out: out("m3", "offline") }]);
    // The hub replays what came after seq 2, the message stored just before the drop is
    // echoed again (a duplicate delivery), and the re-send is acknowledged as a duplicate.
    rooms.receive(
        history(
            "r",
            vec![chat("r", "c2", 2, &member("ada", "Ada")), chat("r", "c3", 3, &member("bob", "Bob"))],
            3,
        ),
        &mut fx,
    );
    rooms.receive(chat("r", "m3", 4, &member("me", "Me")), &mut fx);
    rooms.receive(
        ServerMessage::Ack(Ack { id: "m3".into(), seq: 4, room: Some("r".into()), duplicate: true }),
        &mut fx,
    );
    let room = rooms.get("r").expect("joined");
    assert_eq!(ids(room), ["h1", "c2", "c3", "m3"]);
    assert_eq!(room.messages.iter().filter_map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(room.last_seq, Some(4));
    assert_eq!(room.unread, 2, "c2 live, c3 replayed on the rejoin; never the visitor's own");
    assert!(room.messages.iter().all(|m| m.delivery == Delivery::Sent));
}

#[test]
fn the_first_history_is_not_news_and_watched_rooms_are_read() {
    let mut rooms = joined("r");
    assert_eq!(rooms.get("r").map(|r| r.unread), Some(0));
    let mut fx = Vec::new();
    rooms.receive(chat("r", "c2", 2, &member("ada", "Ada")), &mut fx);
    assert!(notices(&fx).contains(&RoomNotice::Unread(1)));
    rooms.watch(Some("r".into()), &mut fx);
    assert_eq!(rooms.get("r").map(|r| r.unread), Some(0));
    let mut fx = Vec::new();
    rooms.receive(chat("r", "c3", 3, &member("ada", "Ada")), &mut fx);
    assert!(!notices(&fx).iter().any(|n| matches!(n, RoomNotice::Unread(_))), "watched: not unread");
}

#[test]
fn own_messages_are_pending_until_stored_and_echoes_are_not_doubled() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    assert!(rooms.send("r", out("m1", "hi"), &mut fx));
    assert_eq!(sent(&fx), [RoomOut::Chat { room: "r".into(), out: out("m1", "hi") }]);
    assert!(!rooms.send("r", out("m1", "again"), &mut fx), "an id is used once");
    assert!(!rooms.send("r", out("m2", "  "), &mut fx), "blank text is not a message");
    assert!(!rooms.send("nowhere", out("m3", "x"), &mut fx), "a room not joined");
    let mut fx = Vec::new();
    rooms.receive(chat("r", "m1", 2, &member("me", "Me")), &mut fx);
    rooms.receive(
        ServerMessage::Ack(Ack { id: "m1".into(), seq: 2, room: Some("r".into()), duplicate: false }),
        &mut fx,
    );
    assert_eq!(
        notices(&fx),
        [RoomNotice::Delivery { id: "m1".into(), delivery: Delivery::Sent, seq: Some(2) }],
        "one change, told once, however many confirmations arrive"
    );
    let room = rooms.get("r").expect("joined");
    assert_eq!(ids(room), ["h1", "m1"]);
    assert!(room.messages[1].mine);
    assert_eq!(room.unread, 0);
}

#[test]
fn a_message_from_another_tab_of_the_visitor_is_theirs_not_unread() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.receive(chat("r", "other-tab", 2, &member("me", "Me")), &mut fx);
    let room = rooms.get("r").expect("joined");
    assert!(room.messages[1].mine);
    assert_eq!(room.unread, 0);
}

#[test]
fn presence_follows_joins_leaves_and_a_rejoin() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.receive(
        ServerMessage::UserJoined(Presence {
            room: "r".into(),
            user: member("bob", "Bob"),
            timestamp: "t".into(),
        }),
        &mut fx,
    );
    // Bob types, then closes his tab: the hub says he left, and his typing ends with him.
    rooms.receive(
        ServerMessage::Typing(TypingNotice {
            room: Some("r".into()),
            role: natter_protocol::Role::User,
            from: Some(member("bob", "Bob")),
            active: true,
        }),
        &mut fx,
    );
    assert_eq!(rooms.get("r").map(|r| r.typing.len()), Some(1));
    assert!(fx.contains(&Effect::StartTimer { timer: Timer::RoomTyping, ms: TYPING_TIMEOUT_MS }));
    assert_eq!(rooms.get("r").map(|r| (r.members.len(), r.member_count)), Some((3, 3)));
    let mut fx = Vec::new();
    rooms.receive(
        ServerMessage::UserLeft(Presence {
            room: "r".into(),
            user: member("bob", "Bob"),
            timestamp: "t".into(),
        }),
        &mut fx,
    );
    assert_eq!(
        notices(&fx),
        [
            RoomNotice::Typing { member: member("bob", "Bob"), active: false },
            RoomNotice::Presence { member: member("bob", "Bob"), joined: false },
        ]
    );
    let room = rooms.get("r").expect("joined");
    assert_eq!((room.members.len(), room.member_count), (2, 2));
    assert!(room.typing.is_empty());
    // A rejoin replaces the list with who is there now.
    let mut fx = Vec::new();
    rooms.link_down(&mut fx);
    rooms.link_up(&mut fx);
    rooms.receive(info("r", &[member("me", "Me")], 1), &mut fx);
    assert_eq!(rooms.get("r").map(|r| r.members.clone()), Some(vec![member("me", "Me")]));
    assert!(notices(&fx).contains(&RoomNotice::Members));
}

#[test]
fn the_visitors_own_typing_and_relays_are_not_told_back() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.receive(
        ServerMessage::Typing(TypingNotice {
            room: Some("r".into()),
            role: natter_protocol::Role::User,
            from: Some(member("me", "Me")),
            active: true,
        }),
        &mut fx,
    );
    rooms.relayed("r", RelayKind::Cursor, member("me", "Me"), "{}".into(), &mut fx);
    assert!(notices(&fx).is_empty());
    rooms.relayed("r", RelayKind::Update, member("ada", "Ada"), "{\"op\":\"add\"}".into(), &mut fx);
    assert_eq!(
        notices(&fx),
        [RoomNotice::Relay {
            kind: RelayKind::Update,
            from: member("ada", "Ada"),
            data: "{\"op\":\"add\"}".into()
        }]
    );
}

#[test]
fn typing_indicators_expire() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    let typing = |id: &str| {
        ServerMessage::Typing(TypingNotice {
            room: Some("r".into()),
            role: natter_protocol::Role::User,
            from: Some(member(id, id)),
            active: true,
        })
    };
    rooms.receive(typing("ada"), &mut fx);
    rooms.receive(typing("ada"), &mut fx);
    assert_eq!(notices(&fx).len(), 1, "still typing is not news");
    let mut fx = Vec::new();
    rooms.typing_expired(&mut fx);
    assert_eq!(notices(&fx), [RoomNotice::Typing { member: member("ada", "ada"), active: false }]);
}

#[test]
fn a_members_message_ends_their_typing() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    let typing = |id: &str, name: &str| {
        ServerMessage::Typing(TypingNotice {
            room: Some("r".into()),
            role: natter_protocol::Role::User,
            from: Some(member(id, name)),
            active: true,
        })
    };
    rooms.receive(typing("ada", "Ada"), &mut fx);
    rooms.receive(typing("bob", "Bob"), &mut fx);
    // Ada sends what she typed (and her client never says she stopped): she is no longer
    // typing at once, not when the indicator expires; Bob still is.
    let mut fx = Vec::new();
    rooms.receive(chat("r", "m2", 2, &member("ada", "Ada")), &mut fx);
    let room = rooms.get("r").expect("joined");
    assert_eq!(room.typing, [member("bob", "Bob")]);
    let told = notices(&fx);
    assert_eq!(told.first(), Some(&RoomNotice::Typing { member: member("ada", "Ada"), active: false }));
    assert!(matches!(told.last(), Some(RoomNotice::Message(m)) if m.id == "m2"));
    // The visitor's own message (echoed from another of their tabs) ends nobody's typing.
    let mut fx = Vec::new();
    rooms.receive(chat("r", "m3", 3, &member("me", "Me")), &mut fx);
    assert_eq!(rooms.get("r").map(|r| r.typing.len()), Some(1));
    assert!(!notices(&fx).iter().any(|n| matches!(n, RoomNotice::Typing { .. })));
}

#[test]
fn a_refused_join_is_told_and_not_retried_but_a_rate_limited_one_is() {
    let mut rooms = Rooms::default();
    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    rooms.join("secret".into(), None, Vec::new(), &mut fx);
    rooms.join("busy".into(), None, Vec::new(), &mut fx);
    // Written before the hub answered the join.
    assert!(rooms.send("secret", out("early", "anyone here?"), &mut fx));
    rooms.typing("secret", true, &mut fx);
    let refusal = |room: &str, code: ErrorCode| {
        ServerMessage::Error(ErrorFrame {
            code,
            message: format!("no to {room}"),
            id: None,
            retry_after_ms: Some(500),
            room: Some(room.into()),
        })
    };
    let mut fx = Vec::new();
    assert_eq!(rooms.receive(refusal("secret", ErrorCode::Forbidden), &mut fx), None);
    assert_eq!(rooms.get("secret").map(|r| r.status), Some(RoomStatus::Refused));
    assert!(notices(&fx)
        .contains(&RoomNotice::Error { code: ErrorCode::Forbidden, message: "no to secret".into() }));
    // What waited fails rather than staying pending for ever; nothing more can be said there.
    assert!(notices(&fx).contains(&RoomNotice::Delivery {
        id: "early".into(),
        delivery: Delivery::Failed,
        seq: None
    }));
    let secret = rooms.get("secret").map(|r| (r.messages[0].delivery, r.queued.len()));
    assert_eq!(secret, Some((Delivery::Failed, 0)));
    assert!(!rooms.send("secret", out("late", "hello?"), &mut fx));
    assert!(!rooms.retry("secret", "early", &mut fx));
    assert_eq!(rooms.get("secret").map(|r| r.messages.len()), Some(1));
    let mut fx = Vec::new();
    rooms.receive(refusal("busy", ErrorCode::RateLimited), &mut fx);
    assert_eq!(fx, [Effect::StartTimer { timer: Timer::RoomResend, ms: 500 }]);
    let mut fx = Vec::new();
    rooms.resend(&mut fx);
    assert_eq!(
        sent(&fx),
        [RoomOut::Join { room: "busy".into(), name: None, after: None }],
        "not the refused one"
    );
    // Joining a refused room again is a fresh try.
    let mut fx = Vec::new();
    assert!(rooms.join("secret".into(), None, Vec::new(), &mut fx));
    assert_eq!(sent(&fx), [RoomOut::Join { room: "secret".into(), name: None, after: None }]);
    // An error about no room is the support conversation's.
    let other = ServerMessage::error(ErrorCode::Unauthorized, "token expired");
    assert_eq!(rooms.receive(other.clone(), &mut fx), Some(other));
}

#[test]
fn refused_messages_are_retried_then_failed_and_can_be_retried_by_hand() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.send("r", out("m1", "hi"), &mut fx);
    let refusal = |code| {
        ServerMessage::Error(ErrorFrame {
            code,
            message: "slow down".into(),
            id: Some("m1".into()),
            retry_after_ms: None,
            room: Some("r".into()),
        })
    };
    // Asked to wait, it waits, however often: a flood of messages is only slowed down.
    for _ in 0..10 {
        let mut fx = Vec::new();
        rooms.receive(refusal(ErrorCode::RateLimited), &mut fx);
        assert_eq!(fx, [Effect::StartTimer { timer: Timer::RoomResend, ms: 2_000 }]);
    }
    // Other retryable refusals are tried a few times, then shown as failed.
    for _ in 0..2 {
        let mut fx = Vec::new();
        rooms.receive(refusal(ErrorCode::Unavailable), &mut fx);
        assert_eq!(fx, [Effect::StartTimer { timer: Timer::RoomResend, ms: 2_000 }]);
    }
    let mut fx = Vec::new();
    rooms.receive(refusal(ErrorCode::Unavailable), &mut fx);
    assert!(notices(&fx).contains(&RoomNotice::Delivery {
        id: "m1".into(),
        delivery: Delivery::Failed,
        seq: None
    }));
    let mut fx = Vec::new();
    rooms.resend(&mut fx);
    assert!(sent(&fx).is_empty(), "a failed message waits for the visitor");
    assert!(rooms.retry("r", "m1", &mut fx));
    assert_eq!(sent(&fx), [RoomOut::Chat { room: "r".into(), out: out("m1", "hi") }]);
}

#[test]
fn not_in_room_rejoins() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    let e = ServerMessage::Error(ErrorFrame {
        code: ErrorCode::NotInRoom,
        message: "join first".into(),
        id: None,
        retry_after_ms: None,
        room: Some("r".into()),
    });
    rooms.receive(e, &mut fx);
    assert_eq!(sent(&fx), [RoomOut::Join { room: "r".into(), name: Some("Me".into()), after: Some(1) }]);
    assert_eq!(rooms.get("r").map(|r| r.status), Some(RoomStatus::Rejoining));
}

#[test]
fn an_incomplete_history_says_what_is_missing() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.receive(
        ServerMessage::History(History {
            room: Some("r".into()),
            messages: vec![],
            complete: false,
            gap: Some(Gap { from: 2, to: 40 }),
            last_seq: 41,
        }),
        &mut fx,
    );
    assert!(
        matches!(&notices(&fx)[..], [RoomNotice::Error { code: ErrorCode::Unavailable, message }] if message.contains("2 to 40"))
    );
    assert_eq!(rooms.get("r").and_then(|r| r.last_seq), Some(41));
}

#[test]
fn leaving_tells_the_hub_only_on_a_live_link_and_forgets_the_room() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    assert!(rooms.leave("r", &mut fx));
    assert_eq!(sent(&fx), [RoomOut::Leave { room: "r".into() }]);
    assert!(notices(&fx).contains(&RoomNotice::Status(RoomStatus::Left)));
    assert!(rooms.get("r").is_none());
    assert!(!rooms.leave("r", &mut fx));
    // Frames about a room left since are dropped, not returned as the support conversation's.
    let mut fx = Vec::new();
    assert_eq!(rooms.receive(chat("r", "late", 9, &member("ada", "Ada")), &mut fx), None);
    assert!(fx.is_empty());
    let mut rooms = joined("r");
    rooms.link_down(&mut fx);
    let mut fx = Vec::new();
    rooms.leave("r", &mut fx);
    assert!(sent(&fx).is_empty(), "a dropped link has left every room already");
}

#[test]
fn frames_of_the_support_conversation_are_handed_back() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    let ack = ServerMessage::Ack(Ack { id: "u1".into(), seq: 5, room: None, duplicate: false });
    assert_eq!(rooms.receive(ack.clone(), &mut fx), Some(ack));
    let h = ServerMessage::History(History {
        room: None,
        messages: vec![],
        complete: true,
        gap: None,
        last_seq: 0,
    });
    assert_eq!(rooms.receive(h.clone(), &mut fx), Some(h));
    assert!(fx.is_empty());
}

#[test]
fn queued_updates_are_bounded() {
    let mut rooms = Rooms::default();
    let mut fx = Vec::new();
    rooms.join("r".into(), None, Vec::new(), &mut fx);
    for i in 0..UPDATES_KEPT + 5 {
        rooms.relay("r", RelayKind::Update, format!("{i}"), &mut fx);
    }
    assert_eq!(notices(&fx).iter().filter(|n| matches!(n, RoomNotice::Error { .. })).count(), 5);
    let said = format!("more than {UPDATES_KEPT} updates waited to be sent; the oldest was dropped");
    assert!(notices(&fx).iter().all(|n| match n {
        RoomNotice::Error { code, message } => *code == ErrorCode::TooLarge && *message == said,
        _ => true,
    }));
    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    rooms.receive(info("r", &[], 0), &mut fx);
    let relays: Vec<RoomOut> = sent(&fx).into_iter().filter(|o| matches!(o, RoomOut::Relay { .. })).collect();
    assert_eq!(relays.len(), UPDATES_KEPT);
    assert_eq!(relays[0], RoomOut::Relay { room: "r".into(), kind: RelayKind::Update, data: "5".into() });
}

#[test]
fn a_bad_room_id_is_refused_without_asking_the_hub() {
    let mut rooms = Rooms::default();
    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    assert!(!rooms.join("no spaces please".into(), None, Vec::new(), &mut fx));
    assert!(sent(&fx).is_empty());
    assert_eq!(rooms.get("no spaces please").map(|r| r.status), Some(RoomStatus::Refused));
    assert!(
        matches!(&notices(&fx)[..], [RoomNotice::Status(RoomStatus::Refused), RoomNotice::Error { code: ErrorCode::InvalidMessage, message }] if message.contains("no spaces please"))
    );
}

fn http(fx: &[Effect]) -> Vec<RoomHttp> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::RoomHttp(h) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

/// The rooms' long-poll of `rooms` (each after its seq), number `poll`.
fn poll_of(rooms: &[(&str, Option<u64>)], poll: u32) -> RoomHttp {
    RoomHttp::Poll { rooms: rooms.iter().map(|(r, s)| ((*r).to_string(), *s)).collect(), poll }
}

#[test]
fn the_http_fallback_polls_each_room_and_posts_its_messages_in_order() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.link_down(&mut fx);
    rooms.send("r", out("m1", "one"), &mut fx);
    rooms.send("r", out("m2", "two"), &mut fx);
    rooms.typing("r", true, &mut fx);
    let mut fx = Vec::new();
    rooms.http_up(&mut fx);
    assert_eq!(
        http(&fx),
        [
            RoomHttp::Post { room: "r".into(), out: out("m1", "one"), name: Some("Me".into()) },
            poll_of(&[("r", Some(1))], 1),
        ],
        "resumes after the last seq; one message at a time"
    );
    assert_eq!(rooms.get("r").map(|r| r.status), Some(RoomStatus::Http));
    assert!(sent(&fx).is_empty(), "typing waits for the WebSocket");

    // The first is stored; the second goes.
    let mut fx = Vec::new();
    let ack = |id: &str, seq| {
        ServerMessage::Ack(Ack { id: id.into(), seq, room: Some("r".into()), duplicate: false })
    };
    rooms.posted("r", "m1", Some(ack("m1", 2)), &mut fx);
    assert_eq!(
        http(&fx),
        [RoomHttp::Post { room: "r".into(), out: out("m2", "two"), name: Some("Me".into()) }]
    );
    // A network failure: resent later, not lost.
    let mut fx = Vec::new();
    rooms.posted("r", "m2", None, &mut fx);
    assert_eq!(fx, [Effect::StartTimer { timer: Timer::RoomResend, ms: RESEND_DELAY_MS }]);
    let mut fx = Vec::new();
    rooms.resend(&mut fx);
    assert_eq!(
        http(&fx),
        [RoomHttp::Post { room: "r".into(), out: out("m2", "two"), name: Some("Me".into()) }]
    );
    rooms.posted("r", "m2", Some(ack("m2", 3)), &mut fx);

    // The poll brings a message of Ada's (and our own, already shown): each once.
    let mut fx = Vec::new();
    rooms.poll_done(
        1,
        Some(History {
            room: Some("r".into()),
            messages: vec![
                chat("r", "m1", 2, &member("me", "Me")),
                chat("r", "c4", 4, &member("ada", "Ada")),
            ],
            complete: true,
            gap: None,
            last_seq: 4,
        }),
        &mut fx,
    );
    assert_eq!(http(&fx), [poll_of(&[("r", Some(4))], 2)]);
    assert_eq!(ids(rooms.get("r").expect("joined")), ["h1", "m1", "m2", "c4"], "in seq order");
    // A late answer of an old poll is ignored; a failed poll is retried after a delay.
    let mut fx = Vec::new();
    rooms.poll_done(1, None, &mut fx);
    assert!(fx.is_empty());
    rooms.poll_done(2, None, &mut fx);
    assert_eq!(fx, [Effect::StartTimer { timer: Timer::RoomPoll, ms: RESEND_DELAY_MS }]);
    let mut fx = Vec::new();
    rooms.repoll(&mut fx);
    assert_eq!(http(&fx), [poll_of(&[("r", Some(4))], 3)]);

    // The WebSocket is back: polls stop, the room is joined on it, resuming, and the typing
    // that waited goes out once the join is confirmed.
    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    assert_eq!(http(&fx), [RoomHttp::StopPoll]);
    assert_eq!(sent(&fx), [RoomOut::Join { room: "r".into(), name: Some("Me".into()), after: Some(4) }]);
    let mut fx = Vec::new();
    rooms.receive(info("r", &[member("me", "Me")], 4), &mut fx);
    assert_eq!(sent(&fx), [RoomOut::Typing { room: "r".into(), active: true }]);
}

#[test]
fn a_room_joined_while_on_http_is_polled_at_once() {
    let mut rooms = Rooms::default();
    let mut fx = Vec::new();
    rooms.http_up(&mut fx);
    rooms.join("r".into(), Some("Ada".into()), Vec::new(), &mut fx);
    assert_eq!(http(&fx), [poll_of(&[("r", None)], 1)]);
    let mut fx = Vec::new();
    rooms.leave("r", &mut fx);
    assert_eq!(http(&fx), [RoomHttp::StopPoll]);
}

#[test]
fn rooms_on_http_share_one_long_poll_answered_room_by_room_and_fairly() {
    // A browser holds six connections to a host over HTTP/1.1: a poll a room left none for
    // sending from the fifth room on. Every room on HTTP is read by one request.
    let mut rooms = Rooms::default();
    let mut fx = Vec::new();
    rooms.http_up(&mut fx);
    for id in ["a", "b", "c"] {
        rooms.join(id.into(), Some("Me".into()), Vec::new(), &mut fx);
    }
    // Each join started the poll again with one room more; the last reads all three.
    assert_eq!(http(&fx).last(), Some(&poll_of(&[("a", None), ("b", None), ("c", None)], 3)));
    assert_eq!(http(&fx).iter().filter(|h| **h == RoomHttp::StopPoll).count(), 2);
    // The hub answers with b's history: read, and the next poll lists b last.
    let mut fx = Vec::new();
    let history = |room: &str, seq| History {
        room: Some(room.into()),
        messages: vec![chat(room, &format!("{room}{seq}"), seq, &member("ada", "Ada"))],
        complete: true,
        gap: None,
        last_seq: seq,
    };
    rooms.poll_done(3, Some(history("b", 7)), &mut fx);
    assert_eq!(ids(rooms.get("b").expect("joined")), ["b7"]);
    assert_eq!(http(&fx), [poll_of(&[("c", None), ("a", None), ("b", Some(7))], 4)]);
    // Time is up with nothing new (no room named): the same rooms are read again.
    let mut fx = Vec::new();
    let nothing = History { room: None, messages: Vec::new(), complete: true, gap: None, last_seq: 0 };
    rooms.poll_done(4, Some(nothing), &mut fx);
    assert_eq!(http(&fx), [poll_of(&[("c", None), ("a", None), ("b", Some(7))], 5)]);
    // An answer about a room left meanwhile is not read; leaving restarts the poll without it.
    let mut fx = Vec::new();
    rooms.leave("c", &mut fx);
    assert_eq!(http(&fx), [RoomHttp::StopPoll, poll_of(&[("a", None), ("b", Some(7))], 6)]);
    let mut fx = Vec::new();
    rooms.poll_done(6, Some(history("c", 2)), &mut fx);
    assert!(rooms.get("c").is_none());
    assert_eq!(http(&fx), [poll_of(&[("a", None), ("b", Some(7))], 7)]);
}

#[test]
fn the_room_so_far_is_told_as_a_history_not_as_messages() {
    let mut rooms = Rooms::default();
    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    rooms.join("r".into(), None, Vec::new(), &mut fx);
    rooms.receive(info("r", &[], 1), &mut fx);
    let mut fx = Vec::new();
    rooms.receive(history("r", vec![chat("r", "h1", 1, &member("ada", "Ada"))], 1), &mut fx);
    assert_eq!(notices(&fx), [RoomNotice::History], "the page re-reads the room; no message is news");
    // A resume that brings nothing says nothing.
    let mut fx = Vec::new();
    rooms.receive(history("r", vec![], 1), &mut fx);
    assert!(notices(&fx).is_empty());
}

#[test]
fn the_visitors_own_messages_carry_the_name_the_hub_shows_them_with() {
    // A signed-in user: the page asked for "Mallory", the hub lists the token's verified name.
    let mut rooms = Rooms { me: Some("me".into()), ..Rooms::default() };
    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    rooms.join("r".into(), Some("Mallory".into()), Vec::new(), &mut fx);
    rooms.send("r", out("early", "before the join"), &mut fx);
    let from = |rooms: &Rooms, i: usize| rooms.get("r").map(|r| r.messages[i].from.clone());
    assert_eq!(from(&rooms, 0).and_then(|m| m.name), Some("Mallory".into()), "as joined, until told");
    let verified = Member { id: "me".into(), name: Some("Ada Lovelace".into()), verified: true };
    rooms.receive(info("r", &[member("bob", "Bob"), verified.clone()], 0), &mut fx);
    assert_eq!(from(&rooms, 0), Some(verified.clone()), "the pending message is shown as the others see it");
    rooms.send("r", out("later", "after it"), &mut fx);
    assert_eq!(from(&rooms, 1), Some(verified.clone()));
    // Acknowledged without an echo, it stays so.
    rooms.receive(
        ServerMessage::Ack(Ack { id: "later".into(), seq: 2, room: Some("r".into()), duplicate: false }),
        &mut fx,
    );
    assert_eq!(from(&rooms, 1), Some(verified));
}

fn saves(fx: &[Effect]) -> Vec<&str> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SaveRoomOutbox { room } => Some(room.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn what_is_written_is_saved_and_a_later_page_sends_it_once_joined() {
    // Offline: the message waits, and its room's outbox is saved.
    let mut rooms = Rooms { me: Some("me".into()), ..Rooms::default() };
    let mut fx = Vec::new();
    rooms.join("r".into(), Some("Ada".into()), Vec::new(), &mut fx);
    let mut fx = Vec::new();
    assert!(rooms.send("r", out("m1", "typed offline"), &mut fx));
    assert_eq!(saves(&fx), ["r"]);
    let saved = rooms.get("r").map(|r| r.outbox_entries().to_vec()).unwrap_or_default();
    assert_eq!(saved.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["m1"]);

    // The page is reloaded: the next page joins the room with what storage kept.
    let mut rooms = Rooms { me: Some("me".into()), ..Rooms::default() };
    let mut fx = Vec::new();
    rooms.join("r".into(), Some("Ada".into()), saved.clone(), &mut fx);
    let r = rooms.get("r").expect("joined");
    assert_eq!(ids(r), ["m1"]);
    assert_eq!((r.messages[0].mine, r.messages[0].delivery), (true, Delivery::Pending));
    assert!(sent(&fx).is_empty(), "nothing goes out before the join is confirmed");
    // Joining it again changes nothing (no second copy).
    rooms.join("r".into(), None, saved, &mut fx);
    assert_eq!(rooms.get("r").map(|r| r.messages.len()), Some(1));

    let mut fx = Vec::new();
    rooms.link_up(&mut fx);
    rooms.receive(info("r", &[member("me", "Ada")], 0), &mut fx);
    assert_eq!(sent(&fx)[1..], [RoomOut::Chat { room: "r".into(), out: out("m1", "typed offline") }]);
    // Stored: once, and taken out of storage even where another tab had left it.
    let mut fx = Vec::new();
    rooms.receive(history("r", vec![chat("r", "m1", 1, &member("me", "Ada"))], 1), &mut fx);
    rooms.receive(
        ServerMessage::Ack(Ack { id: "m1".into(), seq: 1, room: Some("r".into()), duplicate: true }),
        &mut fx,
    );
    let r = rooms.get("r").expect("joined");
    assert_eq!(ids(r), ["m1"]);
    assert_eq!(r.messages[0].delivery, Delivery::Sent);
    assert!(r.outbox_entries().is_empty());
    assert_eq!(r.done, ["m1"]);
    assert_eq!(saves(&fx), ["r"]);
}

#[test]
fn a_failed_message_is_saved_failed_and_leaving_forgets_the_saved_outbox() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.send("r", out("m1", "too long"), &mut fx);
    let refusal = ErrorFrame {
        code: ErrorCode::TooLarge,
        message: "too large".into(),
        id: Some("m1".into()),
        retry_after_ms: None,
        room: Some("r".into()),
    };
    let mut fx = Vec::new();
    rooms.receive(ServerMessage::Error(refusal), &mut fx);
    assert_eq!(saves(&fx), ["r"]);
    let saved = rooms.get("r").map(|r| r.outbox_entries().to_vec()).unwrap_or_default();
    assert!(saved[0].failed, "a later page shows it failed, with retry");
    let mut later = Rooms::default();
    later.join("r".into(), None, saved, &mut fx);
    assert_eq!(later.get("r").map(|r| r.messages[0].delivery), Some(Delivery::Failed));
    // Leaving drops what waited, in storage too (the room is no longer there to save).
    let mut fx = Vec::new();
    rooms.leave("r", &mut fx);
    assert_eq!(saves(&fx), ["r"]);
    assert!(rooms.get("r").is_none());
}

#[test]
fn another_person_taking_over_drops_the_saved_outbox() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.link_down(&mut fx);
    rooms.send("r", out("m1", "mine, not the next person's"), &mut fx);
    let mut fx = Vec::new();
    rooms.fail_waiting(&mut fx);
    let r = rooms.get("r").expect("joined");
    assert!(r.outbox_entries().is_empty());
    assert_eq!(r.done, ["m1"], "removed from storage even if another tab left it there");
    assert_eq!(saves(&fx), ["r"]);
}

/// After a hub restart the rejoin's `room_info` lists only those back already; a member the
/// page was told joined, coming back a moment later, is listed again without a second
/// `presence` join (they never left, as far as the page heard). Their later leave, and a
/// member who is new, are told as usual.
#[test]
fn a_member_back_after_a_hub_restart_is_not_told_as_joining_twice() {
    let presence = |user: Member, joined: bool| {
        let p = Presence { room: "r".into(), user, timestamp: "t".into() };
        if joined {
            ServerMessage::UserJoined(p)
        } else {
            ServerMessage::UserLeft(p)
        }
    };
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    rooms.link_down(&mut fx);
    rooms.link_up(&mut fx);
    // The hub restarted: only the visitor is back so far.
    rooms.receive(info("r", &[member("me", "Me")], 2), &mut fx);
    let mut fx = Vec::new();
    rooms.receive(presence(member("ada", "Ada"), true), &mut fx);
    assert_eq!(notices(&fx), [RoomNotice::Members], "Ada is listed again, not joining twice");
    let names =
        |rooms: &Rooms| rooms.get("r").map(|r| r.members.iter().map(|m| m.id.clone()).collect::<Vec<_>>());
    assert_eq!(names(&rooms), Some(vec!["me".to_string(), "ada".to_string()]));
    let mut fx = Vec::new();
    rooms.receive(presence(member("bob", "Bob"), true), &mut fx);
    assert_eq!(notices(&fx), [RoomNotice::Presence { member: member("bob", "Bob"), joined: true }]);
    let mut fx = Vec::new();
    rooms.receive(presence(member("ada", "Ada"), false), &mut fx);
    assert_eq!(notices(&fx), [RoomNotice::Presence { member: member("ada", "Ada"), joined: false }]);
    // Back again later: a join like any other.
    let mut fx = Vec::new();
    rooms.receive(presence(member("ada", "Ada"), true), &mut fx);
    assert_eq!(notices(&fx), [RoomNotice::Presence { member: member("ada", "Ada"), joined: true }]);
}

#[test]
fn a_deleted_room_is_left_with_the_reason_and_not_joined_again() {
    let mut rooms = joined("r");
    let mut fx = Vec::new();
    assert!(rooms.send("r", out("m1", "still there?"), &mut fx));
    let mut fx = Vec::new();
    let deleted = ServerMessage::Error(ErrorFrame {
        code: ErrorCode::RoomDeleted,
        message: "the site deleted room \"r\"".into(),
        id: None,
        retry_after_ms: None,
        room: Some("r".into()),
    });
    assert_eq!(rooms.receive(deleted, &mut fx), None, "a room's frame, not the support chat's");
    let told = notices(&fx);
    let reason =
        told.iter().position(|n| matches!(n, RoomNotice::Error { code: ErrorCode::RoomDeleted, .. }));
    let left = told.iter().position(|n| *n == RoomNotice::Status(RoomStatus::Left));
    assert!(reason.is_some() && reason < left, "the reason, then `left`: {told:?}");
    assert!(told.contains(&RoomNotice::Delivery { id: "m1".into(), delivery: Delivery::Failed, seq: None }));
    assert!(
        sent(&fx).is_empty(),
        "neither a leave (the hub took it out) nor a join (it would make the room again)"
    );
    assert!(rooms.get("r").is_none());
    assert!(!rooms.send("r", out("m2", "hello?"), &mut fx));
    // A drop and a reconnect later: the room is not joined again.
    let mut fx = Vec::new();
    rooms.link_down(&mut fx);
    rooms.link_up(&mut fx);
    assert!(sent(&fx).iter().all(|o| !matches!(o, RoomOut::Join { .. })), "{:?}", sent(&fx));
    // The page may join it again (a new, empty room).
    assert!(rooms.join("r".into(), Some("Me".into()), Vec::new(), &mut fx));
}
