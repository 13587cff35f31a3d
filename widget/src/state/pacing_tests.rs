//! Rooms against the hub's budgets, in the whole state machine: a hub kept here as the real one
//! keeps its session rate (`--rate-per-sec` 5 after a burst of 20), its per-connection room
//! cap, its frame budget and its answers, in order, on simulated time (the model's timers fire
//! when due). Bursts of joins, leaves, messages and updates must never be refused by it, end
//! as the page asked last, and never lose a message or an update silently.

use super::rooms::{RelayKind, RoomNotice, RoomOut, RoomStatus};
use super::*;
use natter_protocol::{Ack, Budgets, History, Member, RoomInfo, Welcome, FRAME_OVERHEAD, JOIN_COST};

/// The hub's side of one connection.
struct Hub {
    now: f64,
    /// Session messages left of the burst, and when they were counted.
    tokens: f64,
    counted: f64,
    /// Bytes left of the frame budget's burst.
    bytes: f64,
    /// Rooms joined, with the name.
    rooms: Vec<(String, Option<String>)>,
    /// Every refusal for the rate (of messages or bytes) — there must be none.
    limited: Vec<String>,
    /// Every other error sent.
    errors: Vec<ErrorFrame>,
    /// Stored messages per room.
    stored: Vec<(String, String)>,
    /// Relays reached the other members, in order.
    relayed: Vec<(RelayKind, String)>,
    members: usize,
    b: Budgets,
}

impl Hub {
    fn new(members: usize) -> Hub {
        let b = Budgets::default();
        Hub {
            now: 0.0,
            tokens: f64::from(b.message_burst),
            counted: 0.0,
            bytes: b.frame_budget as f64 * 4.0,
            rooms: Vec::new(),
            limited: Vec::new(),
            errors: Vec::new(),
            stored: Vec::new(),
            relayed: Vec::new(),
            members,
            b,
        }
    }

    fn refill(&mut self) {
        let dt = self.now - self.counted;
        self.counted = self.now;
        let per_ms = f64::from(self.b.messages_per_minute) / 60_000.0;
        self.tokens = (self.tokens + dt * per_ms).min(f64::from(self.b.message_burst));
        self.bytes =
            (self.bytes + dt * self.b.frame_budget as f64 / 1000.0).min(self.b.frame_budget as f64 * 4.0);
    }

    fn error(&mut self, code: ErrorCode, room: &str, id: Option<String>, message: &str) -> ServerMessage {
        let e = ErrorFrame {
            code,
            message: message.into(),
            id,
            retry_after_ms: Some(200),
            room: Some(room.into()),
        };
        if code == ErrorCode::RateLimited {
            self.limited.push(message.into());
        } else {
            self.errors.push(e.clone());
        }
        ServerMessage::Error(e)
    }

    fn handle(&mut self, o: RoomOut) -> Vec<ServerMessage> {
        self.refill();
        let room = match &o {
            RoomOut::Join { room, .. }
            | RoomOut::Leave { room }
            | RoomOut::Chat { room, .. }
            | RoomOut::Typing { room, .. }
            | RoomOut::Relay { room, .. } => room.clone(),
        };
        let joined = self.rooms.iter().position(|(r, _)| *r == room);
        // The frame budget, as the hub counts it (an upper bound of the JSON's length).
        let (len, audience) = match &o {
            RoomOut::Join { name, .. } => (60 + name.as_ref().map_or(0, String::len) + JOIN_COST as usize, 1),
            RoomOut::Chat { out, .. } => (60 + out.id.len() + out.text.len(), self.members),
            RoomOut::Relay { data, .. } => (40 + data.len(), self.members),
            _ => (40, self.members),
        };
        let cost = ((len + room.len()) as u64 + FRAME_OVERHEAD) as f64 * audience as f64;
        if self.bytes < cost {
            return vec![self.error(ErrorCode::RateLimited, &room, None, "frame budget")];
        }
        self.bytes -= cost;
        match o {
            RoomOut::Join { name, .. } => {
                if joined.is_some() {
                    return vec![self.error(ErrorCode::InvalidMessage, &room, None, "joined already")];
                }
                if self.rooms.len() >= self.b.max_rooms as usize {
                    return vec![self.error(
                        ErrorCode::InvalidMessage,
                        &room,
                        None,
                        "in 100 rooms (--max-rooms-per-connection)",
                    )];
                }
                if self.tokens < 1.0 {
                    return vec![self.error(ErrorCode::RateLimited, &room, None, "too many messages")];
                }
                self.tokens -= 1.0;
                let me = Member { id: "u_me".into(), name: name.clone(), verified: false };
                self.rooms.push((room.clone(), name));
                vec![
                    ServerMessage::RoomInfo(RoomInfo {
                        room: room.clone(),
                        members: vec![me],
                        member_count: self.members,
                        ..RoomInfo::default()
                    }),
                    ServerMessage::History(History {
                        room: Some(room),
                        complete: true,
                        ..History::default()
                    }),
                ]
            }
            RoomOut::Leave { .. } => match joined {
                Some(i) => {
                    self.rooms.remove(i);
                    Vec::new()
                }
                None => vec![self.error(ErrorCode::NotInRoom, &room, None, "not in room")],
            },
            RoomOut::Chat { out, .. } => {
                if joined.is_none() {
                    return vec![self.error(ErrorCode::NotInRoom, &room, Some(out.id), "not in room")];
                }
                if self.tokens < 1.0 {
                    return vec![self.error(
                        ErrorCode::RateLimited,
                        &room,
                        Some(out.id),
                        "too many messages",
                    )];
                }
                self.tokens -= 1.0;
                self.stored.push((room.clone(), out.id.clone()));
                vec![ServerMessage::Ack(Ack {
                    id: out.id,
                    seq: self.stored.len() as u64,
                    room: Some(room),
                    duplicate: false,
                })]
            }
            RoomOut::Relay { kind, data, .. } => {
                if joined.is_none() {
                    return vec![self.error(ErrorCode::NotInRoom, &room, None, "not in room")];
                }
                self.relayed.push((kind, data));
                Vec::new()
            }
            RoomOut::Typing { .. } => Vec::new(),
        }
    }
}

/// A model live on socket 1, welcomed without `budgets` (the hub's defaults apply).
fn live_model() -> (Model, u32) {
    let mut m = Model::new(Init { seed: 1, online: true, ..Init::default() });
    let s = update(&mut m, Event::Start)
        .iter()
        .find_map(|e| match e {
            Effect::OpenSocket { socket, .. } => Some(*socket),
            _ => None,
        })
        .expect("a socket");
    update(&mut m, Event::SocketOpened { socket: s });
    let welcome = ServerMessage::Welcome(Welcome {
        session: Some("s.t".into()),
        member: "u_me".into(),
        ..Welcome::default()
    });
    update(&mut m, Event::Frame { socket: Some(s), message: welcome });
    (m, s)
}

/// Runs the model against `hub`: frames it writes are answered in order; the rooms' timers
/// fire when due on simulated time, until nothing is left to do or `until_ms` passes. Returns
/// the room notices the page heard.
struct Sim {
    m: Model,
    s: u32,
    hub: Hub,
    timers: Vec<(Timer, f64)>,
    heard: Vec<(String, RoomNotice)>,
    /// Set when the socket was closed by the model.
    closed: bool,
}

impl Sim {
    /// How many of the visitor's room messages were told `failed`.
    fn failed_messages(&self) -> usize {
        self.heard
            .iter()
            .filter(|(_, n)| matches!(n, RoomNotice::Delivery { delivery: log::Delivery::Failed, .. }))
            .count()
    }

    fn new(members: usize) -> Sim {
        let (m, s) = live_model();
        Sim { m, s, hub: Hub::new(members), timers: Vec::new(), heard: Vec::new(), closed: false }
    }

    fn apply(&mut self, fx: Vec<Effect>) {
        let mut answers = Vec::new();
        for e in fx {
            match e {
                Effect::SendRoom(o) => answers.extend(self.hub.handle(o)),
                Effect::StartTimer { timer, ms } if matches!(timer, Timer::RoomPace | Timer::RoomResend) => {
                    self.timers.retain(|(t, _)| *t != timer);
                    self.timers.push((timer, self.hub.now + f64::from(ms)));
                }
                Effect::CloseSocket => self.closed = true,
                Effect::Notify(Notice::Room { room, notice }) => self.heard.push((room, notice)),
                _ => {}
            }
        }
        for a in answers {
            let fx = update(&mut self.m, Event::Frame { socket: Some(self.s), message: a });
            self.apply(fx);
        }
    }

    fn call(&mut self, call: RoomCall) {
        let fx = update(&mut self.m, Event::Room(call));
        self.apply(fx);
    }

    fn run(&mut self, until_ms: f64) {
        while let Some(i) =
            (0..self.timers.len()).min_by(|&a, &b| self.timers[a].1.total_cmp(&self.timers[b].1))
        {
            let (timer, due) = self.timers.remove(i);
            if due > until_ms {
                self.timers.push((timer, due));
                break;
            }
            self.hub.now = self.hub.now.max(due);
            let fx = update(&mut self.m, Event::TimerFired(timer));
            self.apply(fx);
        }
    }

    fn status(&self, room: &str) -> Option<RoomStatus> {
        self.m.rooms.get(room).map(|r| r.status)
    }
}

fn join(room: &str, name: &str) -> RoomCall {
    RoomCall::Join { room: room.into(), name: Some(name.into()), saved: Vec::new() }
}

fn leave(room: &str) -> RoomCall {
    RoomCall::Leave { room: room.into() }
}

fn send(room: &str, id: &str) -> RoomCall {
    let out = Outgoing { id: id.into(), text: id.into(), time: "t".into(), context: String::new() };
    RoomCall::Send { room: room.into(), out }
}

#[test]
fn a_burst_of_joins_and_leaves_ends_joined_as_the_last_name_and_its_message_goes() {
    for cycles in [1, 5, 25, 2000] {
        let mut sim = Sim::new(2);
        for _ in 0..cycles {
            sim.call(join("r", "C"));
            sim.call(leave("r"));
        }
        sim.call(join("r", "Final"));
        sim.run(600_000.0);
        assert_eq!(sim.status("r"), Some(RoomStatus::Joined), "{cycles} cycles");
        assert_eq!(sim.hub.rooms, [("r".to_string(), Some("Final".to_string()))], "{cycles} cycles");
        let members = &sim.m.rooms.get("r").map(|r| r.members.clone()).unwrap_or_default();
        assert_eq!(members.iter().map(|m| m.name.as_deref()).collect::<Vec<_>>(), [Some("Final")]);
        sim.call(send("r", "final says hi"));
        sim.run(600_000.0);
        assert_eq!(sim.hub.stored, [("r".to_string(), "final says hi".to_string())]);
        assert!(sim.hub.limited.is_empty(), "{cycles} cycles: {:?}", sim.hub.limited);
        assert!(sim.hub.errors.is_empty(), "{cycles} cycles: {:?}", sim.hub.errors);
        let errors = sim.heard.iter().filter(|(_, n)| matches!(n, RoomNotice::Error { .. })).count();
        assert_eq!(errors, 0, "{cycles} cycles");
    }
}

#[test]
fn a_join_answered_after_the_page_left_and_joined_again_as_someone_else_ends_as_the_last() {
    let mut sim = Sim::new(2);
    // The answers are held back: the join is on the wire while the page changes its mind.
    let fx = update(&mut sim.m, Event::Room(join("r", "First")));
    let frames: Vec<Effect> = fx.into_iter().filter(|e| matches!(e, Effect::SendRoom(_))).collect();
    assert_eq!(frames.len(), 1);
    assert!(
        update(&mut sim.m, Event::Room(leave("r"))).iter().all(|e| !matches!(e, Effect::SendRoom(_))),
        "no leave crossing the join"
    );
    let fx = update(&mut sim.m, Event::Room(join("r", "Second")));
    assert!(fx.iter().all(|e| !matches!(e, Effect::SendRoom(_))), "no second join while the first is due");
    sim.apply(frames);
    sim.run(10_000.0);
    assert_eq!(sim.status("r"), Some(RoomStatus::Joined));
    assert_eq!(sim.hub.rooms, [("r".to_string(), Some("Second".to_string()))]);
    assert!(sim.hub.errors.is_empty() && sim.hub.limited.is_empty(), "{:?}", sim.hub.errors);
}

#[test]
fn a_rate_limited_join_is_retried_with_backoff_and_never_refused() {
    let mut sim = Sim::new(1);
    // Other tabs of the session have spent twenty seconds' worth of its messages.
    sim.hub.tokens = -100.0;
    sim.call(join("r", "A"));
    assert_eq!(sim.status("r"), Some(RoomStatus::Joining));
    assert_eq!(sim.hub.limited.len(), 1);
    sim.run(120_000.0);
    assert_eq!(sim.status("r"), Some(RoomStatus::Joined));
    // The hub asks for 200 ms each time; asking again every 200 ms for twenty seconds would
    // be a hundred refusals. The delay doubles instead.
    assert!(sim.hub.limited.len() <= 12, "{} refusals", sim.hub.limited.len());
}

#[test]
fn three_hundred_joins_stay_within_the_budget_and_the_rest_are_refused_naming_the_cap() {
    let mut sim = Sim::new(1);
    for i in 0..300 {
        sim.call(join(&format!("many-{i}"), "A"));
    }
    sim.run(600_000.0);
    assert!(sim.hub.limited.is_empty(), "{:?}", &sim.hub.limited[..sim.hub.limited.len().min(3)]);
    assert!(!sim.closed);
    let joined = sim.m.rooms.list.iter().filter(|r| r.status == RoomStatus::Joined).count();
    let refused = sim.m.rooms.list.iter().filter(|r| r.status == RoomStatus::Refused).count();
    assert_eq!((joined, refused), (100, 200));
    let cap_named = sim
        .heard
        .iter()
        .filter(|(_, n)| matches!(n, RoomNotice::Error { message, .. } if message.contains("--max-rooms-per-connection")))
        .count();
    assert_eq!(cap_named, 200);
    assert_eq!(sim.m.link.status(), Status::Connected);
}

#[test]
fn a_flood_of_room_messages_is_paced_and_every_one_is_stored() {
    let mut sim = Sim::new(1);
    sim.call(join("r", "A"));
    for i in 0..300 {
        sim.call(send("r", &format!("m{i}")));
    }
    sim.run(600_000.0);
    assert_eq!(sim.hub.stored.len(), 300);
    assert!(sim.hub.limited.is_empty());
    assert_eq!(sim.failed_messages(), 0);
}

#[test]
fn a_rate_limited_room_message_is_resent_after_the_wait_not_failed() {
    let mut sim = Sim::new(1);
    sim.call(join("r", "A"));
    // The session's budget went elsewhere (the support chat, another tab).
    sim.hub.tokens = -20.0;
    for i in 0..30 {
        sim.call(send("r", &format!("m{i}")));
    }
    sim.run(600_000.0);
    assert!(!sim.hub.limited.is_empty(), "the hub did refuse some");
    assert_eq!(sim.hub.stored.len(), 30);
    assert_eq!(sim.failed_messages(), 0);
}

#[test]
fn updates_past_the_frame_budget_wait_in_order_and_none_is_lost_silently() {
    let mut sim = Sim::new(3);
    sim.call(join("r", "A"));
    sim.run(1_000.0);
    let pad = "x".repeat(10_000);
    let n = 700;
    for i in 0..n {
        let data = format!("{{\"i\":{i},\"pad\":\"{pad}\"}}");
        sim.call(RoomCall::Relay { room: "r".into(), kind: RelayKind::Update, data });
    }
    sim.run(600_000.0);
    assert!(sim.hub.limited.is_empty(), "{} refused", sim.hub.limited.len());
    let dropped = sim
        .heard
        .iter()
        .filter(|(_, n)| matches!(n, RoomNotice::Error { code: ErrorCode::TooLarge, .. }))
        .count();
    // Every update either reached the room, in order, or was said to be dropped.
    assert_eq!(sim.hub.relayed.len() + dropped, n);
    assert!(dropped > 0 && dropped < n - super::rooms::UPDATES_KEPT + 1, "{dropped}");
    let order: Vec<usize> = sim
        .hub
        .relayed
        .iter()
        .map(|(_, d)| d[5..d.find(',').unwrap_or(5)].parse().unwrap_or(usize::MAX))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(order.last(), Some(&(n - 1)), "the newest always goes");
}

#[test]
fn cursors_past_the_frame_budget_coalesce_to_the_latest() {
    let mut sim = Sim::new(10);
    sim.call(join("r", "A"));
    sim.run(1_000.0);
    let pad = "x".repeat(30_000);
    // Sixty a second for six seconds, as an animation-frame loop sends them.
    for i in 0..360 {
        let data = format!("{{\"i\":{i},\"pad\":\"{pad}\"}}");
        sim.call(RoomCall::Relay { room: "r".into(), kind: RelayKind::Cursor, data });
        let until = sim.hub.now + 1000.0 / 60.0;
        sim.run(until);
        sim.hub.now = until;
    }
    sim.run(600_000.0);
    assert!(sim.hub.limited.is_empty(), "{} refused", sim.hub.limited.len());
    assert!(sim.hub.relayed.len() < 360, "coalesced under pressure");
    assert!(sim.hub.relayed.last().is_some_and(|(_, d)| d.starts_with("{\"i\":359,")), "the latest wins");
}
