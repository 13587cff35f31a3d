//! Rooms inside the whole state machine: they ride on the support conversation's socket,
//! joined once it is live, joined again (resuming) after every reconnect, and their refusals
//! never look like the support conversation's.

use super::rooms::{Relayed, RoomOut, RoomStatus};
use super::*;
use natter_protocol::{Gap, Member, RoomInfo, RoomMessage, Welcome};

fn socket_of(fx: &[Effect]) -> Option<u32> {
    fx.iter().find_map(|e| match e {
        Effect::OpenSocket { socket, .. } => Some(*socket),
        _ => None,
    })
}

fn room_frames(fx: &[Effect]) -> Vec<RoomOut> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendRoom(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn frame(s: u32, message: ServerMessage) -> Event {
    Event::Frame { socket: Some(s), message }
}

fn welcome() -> ServerMessage {
    ServerMessage::Welcome(Welcome {
        session: Some("s.t".into()),
        member: "u_me".into(),
        ..Welcome::default()
    })
}

/// Opens socket `s` and has the hub welcome it; returns the effects.
fn live(m: &mut Model, s: u32) -> Vec<Effect> {
    let mut fx = update(m, Event::SocketOpened { socket: s });
    fx.extend(update(m, frame(s, welcome())));
    fx
}

fn info(room: &str) -> ServerMessage {
    ServerMessage::RoomInfo(RoomInfo { room: room.into(), member_count: 1, ..RoomInfo::default() })
}

fn chat(room: &str, id: &str, seq: u64, from: &str) -> ServerMessage {
    ServerMessage::Chat(RoomMessage {
        room: room.into(),
        id: id.into(),
        seq,
        message: id.into(),
        timestamp: "t".into(),
        from: Member { id: from.into(), name: Some(from.into()), verified: false },
    })
}

fn join(room: &str) -> Event {
    Event::Room(RoomCall::Join { room: room.into(), name: Some("Ada".into()), saved: Vec::new() })
}

#[test]
fn rooms_join_when_the_socket_is_live_and_rejoin_after_a_drop_resuming() {
    let mut m = Model::new(Init { seed: 1, online: true, ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("a socket");
    // Joined before the link is up: waits.
    assert!(room_frames(&update(&mut m, join("r"))).is_empty());
    let fx = live(&mut m, s);
    assert_eq!(room_frames(&fx), [RoomOut::Join { room: "r".into(), name: Some("Ada".into()), after: None }]);
    assert_eq!(m.rooms.me.as_deref(), Some("u_me"), "the welcome says who the visitor is in rooms");
    update(&mut m, frame(s, info("r")));
    update(&mut m, frame(s, chat("r", "c1", 1, "bob")));
    assert_eq!(m.rooms.get("r").map(|r| r.status), Some(RoomStatus::Joined));

    // The hub restarts: the socket goes, the room waits, a message typed meanwhile waits too.
    let fx = update(&mut m, Event::SocketClosed { socket: s, code: 1001 });
    assert!(fx.contains(&Effect::Notify(Notice::Room {
        room: "r".into(),
        notice: RoomNotice::Status(RoomStatus::Rejoining)
    })));
    let out = Outgoing { id: "m1".into(), text: "offline".into(), time: "t".into(), context: String::new() };
    let fx = update(&mut m, Event::Room(RoomCall::Send { room: "r".into(), out: out.clone() }));
    assert!(room_frames(&fx).is_empty());
    let s2 = socket_of(&update(&mut m, Event::TimerFired(Timer::Reconnect))).expect("reconnects");
    let fx = live(&mut m, s2);
    assert_eq!(
        room_frames(&fx),
        [RoomOut::Join { room: "r".into(), name: Some("Ada".into()), after: Some(1) }]
    );
    let fx = update(&mut m, frame(s2, info("r")));
    assert_eq!(room_frames(&fx), [RoomOut::Chat { room: "r".into(), out }]);
}

#[test]
fn a_room_refusal_is_not_an_identity_refusal() {
    let mut m = Model::new(Init { seed: 1, online: true, token: Some("t".into()), ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("a socket");
    live(&mut m, s);
    update(&mut m, join("secret"));
    let refusal = ServerMessage::Error(ErrorFrame {
        code: ErrorCode::Unauthorized,
        message: "rooms need a signed-in user".into(),
        id: None,
        retry_after_ms: None,
        room: Some("secret".into()),
    });
    let fx = update(&mut m, frame(s, refusal));
    assert!(!fx.iter().any(|e| matches!(e, Effect::RenewToken { .. } | Effect::Warn(_))), "{fx:?}");
    assert_eq!(m.link.status(), Status::Connected);
    assert_eq!(m.rooms.get("secret").map(|r| r.status), Some(RoomStatus::Refused));
}

#[test]
fn relays_of_a_stale_socket_are_dropped() {
    let mut m = Model::new(Init { seed: 1, online: true, ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("a socket");
    live(&mut m, s);
    update(&mut m, join("r"));
    update(&mut m, frame(s, info("r")));
    let relay = |socket| Event::Relayed {
        socket,
        relay: Relayed {
            room: "r".into(),
            kind: RelayKind::Cursor,
            from: Member { id: "bob".into(), name: None, verified: false },
            data: "{}".into(),
        },
    };
    assert_eq!(update(&mut m, relay(Some(s))).len(), 1);
    assert!(update(&mut m, relay(Some(s + 7))).is_empty());
}

#[test]
fn the_support_conversation_and_rooms_keep_their_own_positions() {
    let mut m = Model::new(Init { seed: 1, online: true, ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("a socket");
    live(&mut m, s);
    update(&mut m, join("r"));
    update(&mut m, frame(s, info("r")));
    update(
        &mut m,
        frame(
            s,
            ServerMessage::History(History {
                room: Some("r".into()),
                messages: vec![chat("r", "c1", 40, "bob")],
                complete: false,
                gap: Some(Gap { from: 1, to: 39 }),
                last_seq: 40,
            }),
        ),
    );
    assert_eq!(m.rooms.get("r").and_then(|r| r.last_seq), Some(40));
    assert_eq!(m.log.last_seq, None, "a room's seq is not the support conversation's");
    assert!(m.log.messages.is_empty());
}

#[test]
fn a_logout_fails_what_waits_in_the_rooms_rather_than_send_it_as_someone_else() {
    let mut m = Model::new(Init { seed: 1, online: true, ..Init::default() });
    let s = socket_of(&update(&mut m, Event::Start)).expect("a socket");
    live(&mut m, s);
    update(&mut m, join("r"));
    update(&mut m, Event::SocketClosed { socket: s, code: 1006 });
    let out = Outgoing { id: "m1".into(), text: "mine".into(), time: "t".into(), context: String::new() };
    update(&mut m, Event::Room(RoomCall::Send { room: "r".into(), out }));
    let fx = update(&mut m, Event::Logout);
    assert!(fx.contains(&Effect::Notify(Notice::Room {
        room: "r".into(),
        notice: RoomNotice::Delivery { id: "m1".into(), delivery: log::Delivery::Failed, seq: None }
    })));
    let s2 = socket_of(&fx).expect("reconnects");
    live(&mut m, s2);
    let fx = update(&mut m, frame(s2, info("r")));
    assert!(room_frames(&fx).is_empty(), "nothing goes out under the next visitor's name");
}

/// A logout (here, or in another tab of the site) leaves every room: the next visitor of a
/// shared computer is neither present in the previous one's rooms under their name nor shown
/// them. The socket is closed (which leaves the rooms at the hub) and none is joined again.
#[test]
fn a_logout_leaves_every_room_here_and_in_the_sites_other_tabs() {
    for event in [Event::Logout, Event::ForgottenElsewhere] {
        let mut m = Model::new(Init { seed: 1, online: true, ..Init::default() });
        let s = socket_of(&update(&mut m, Event::Start)).expect("a socket");
        live(&mut m, s);
        update(&mut m, join("r"));
        update(&mut m, join("q"));
        update(&mut m, frame(s, info("r")));
        update(&mut m, frame(s, info("q")));
        let fx = update(&mut m, event.clone());
        let left = |room: &str| {
            fx.contains(&Effect::Notify(Notice::Room {
                room: room.into(),
                notice: RoomNotice::Status(RoomStatus::Left),
            }))
        };
        assert!(left("r") && left("q"), "{event:?}: each room is told it was left");
        assert!(fx.contains(&Effect::CloseSocket), "{event:?}: the connection that was in them ends");
        assert!(room_frames(&fx).is_empty(), "{event:?}: nothing reaches the next socket: {fx:?}");
        assert!(m.rooms.list.is_empty(), "{event:?}");
        let s2 = socket_of(&fx).expect("reconnects");
        let fx = live(&mut m, s2);
        assert!(room_frames(&fx).is_empty(), "{event:?}: no room is joined again as the next visitor");
    }
}
