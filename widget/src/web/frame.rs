//! Reading hub frames: the browser parses the JSON (`JSON.parse`, `Response.json()`), and
//! [`decode`] reads the resulting object into a `natter_protocol::ServerMessage`.
//!
//! Fields are read with `Reflect.get` instead of serde: `serde_wasm_bindgen` and the derived
//! deserialisers (an internally tagged enum buffers every frame into an intermediate tree
//! first) were about a third of the wasm binary. The tests below (in the browser, since they
//! need `JSON.parse`) read back what the protocol crate's serde writes, so this hand-written
//! reader cannot drift from the wire format; the end-to-end tests feed it a real hub's frames.

use crate::prelude::*;

use natter_protocol::inbox::ConversationState;
use natter_protocol::{
    Ack, Availability, ConversationMessage, ConversationStatus, ErrorCode, ErrorFrame, Gap, History, Member,
    Pong, Role, ServerMessage, SystemNotice, TypingNotice, UserProfile, Welcome,
};
#[cfg(feature = "rooms")]
use natter_protocol::{Presence, RoomInfo, RoomMessage};
use wasm_bindgen::{JsCast, JsValue};

/// Reads properties of a parsed JSON object (also the relays', in `web::rooms`).
pub(super) struct Obj<'a>(pub(super) &'a JsValue);

impl Obj<'_> {
    pub(super) fn get(&self, key: &str) -> JsValue {
        js_sys::Reflect::get(self.0, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    pub(super) fn string(&self, key: &str) -> Option<String> {
        self.get(key).as_string()
    }

    /// A non-negative integer that JSON numbers represent exactly.
    fn seq(&self, key: &str) -> Option<u64> {
        let n = self.get(key).as_f64()?;
        // (`f64::fract` is `std`'s: the widget ships without it.)
        ((0.0..=9_007_199_254_740_991.0).contains(&n) && n as u64 as f64 == n).then_some(n as u64)
    }

    fn flag(&self, key: &str) -> Option<bool> {
        self.get(key).as_bool()
    }

    fn role(&self) -> Option<Role> {
        let name = self.string("role")?;
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// A member object (`from`, `user`, an entry of `members`).
    fn member(&self) -> Option<Member> {
        Some(Member {
            id: self.string("id")?,
            name: self.string("name"),
            verified: self.flag("verified").unwrap_or(false),
        })
    }

    /// The members of a `room_info`'s list that read as members (none when it is no list).
    /// Pushed one by one: a collecting iterator would be one more loop in the wasm.
    #[cfg(feature = "rooms")]
    fn members(&self) -> Vec<Member> {
        let mut list = Vec::new();
        if let Some(a) = self.0.dyn_ref::<js_sys::Array>() {
            for m in a.iter() {
                if let Some(m) = Obj(&m).member() {
                    list.push(m);
                }
            }
        }
        list
    }

    /// A `welcome`'s `budgets`, when it has every field.
    #[cfg(feature = "rooms")]
    fn budgets(&self) -> Option<natter_protocol::Budgets> {
        let b = self.get("budgets");
        let b = Obj(&b);
        // (`as` saturates: a nonsense number paces oddly, it cannot break anything.)
        let n = |k| b.get(k).as_f64();
        Some(natter_protocol::Budgets {
            messages_per_minute: n("messagesPerMinute")? as u32,
            message_burst: n("messageBurst")? as u32,
            frame_budget: n("frameBudget")? as u64,
            // (The hub says when its room cap is reached; the widget does not count.)
            ..natter_protocol::Budgets::default()
        })
    }

    pub(super) fn member_at(&self, key: &str) -> Option<Member> {
        Obj(&self.get(key)).member()
    }

    fn conversation(&self) -> Option<ConversationMessage> {
        Some(ConversationMessage {
            id: self.string("id")?,
            seq: self.seq("seq")?,
            message: self.string("message")?,
            timestamp: self.string("timestamp").unwrap_or_default(),
            session_id: self.string("sessionId").unwrap_or_default(),
            // The page context of stored messages is for the hub and operators, never shown.
            context: None,
            author: self.string("author"),
            category: self.string("category"),
            reply_to: self.string("replyTo"),
        })
    }
}

/// Decodes a parsed hub frame into a [`ServerMessage`], or `None` for frames the widget does
/// not use (the relays `cursor_position` / `chain_update`, whose free-form data `web::rooms`
/// reads without Rust parsing it) or cannot read.
///
/// The `type` names are matched as literals (a `match` needs them); the tests below hold them
/// to the protocol crate's: every [`ServerMessage::KINDS`] entry is either read back exactly
/// as serde wrote it or listed as one the widget ignores.
pub(crate) fn decode(v: &JsValue) -> Option<ServerMessage> {
    if !v.is_object() {
        return None;
    }
    let o = Obj(v);
    let kind = o.string("type")?;
    Some(match kind.as_str() {
        // Only what the widget uses: the session to keep, and who the user is.
        "welcome" => {
            let user = o.get("user");
            let user = Obj(&user);
            ServerMessage::Welcome(Welcome {
                session: o.string("session"),
                // The visitor's public id in rooms: their own messages and presence.
                #[cfg(feature = "rooms")]
                member: o.string("member").unwrap_or_default(),
                // What the rooms pace themselves to (the hub's defaults when it does not say).
                #[cfg(feature = "rooms")]
                budgets: o.budgets(),
                user: user.string("id").map(|id| UserProfile {
                    id,
                    name: user.string("name"),
                    ..UserProfile::default()
                }),
                ..Welcome::default()
            })
        }
        "user" => ServerMessage::User(o.conversation()?),
        "bot" => ServerMessage::Bot(o.conversation()?),
        "agent" => ServerMessage::Agent(o.conversation()?),
        "system" => ServerMessage::System(SystemNotice {
            message: o.string("message")?,
            timestamp: o.string("timestamp").unwrap_or_default(),
            room: o.string("room"),
        }),
        "typing" => ServerMessage::Typing(TypingNotice {
            room: o.string("room"),
            role: o.role()?,
            from: o.member_at("from"),
            active: o.flag("active")?,
        }),
        #[cfg(feature = "rooms")]
        "chat" => ServerMessage::Chat(RoomMessage {
            room: o.string("room")?,
            id: o.string("id")?,
            seq: o.seq("seq")?,
            message: o.string("message")?,
            timestamp: o.string("timestamp").unwrap_or_default(),
            from: o.member_at("from")?,
        }),
        #[cfg(feature = "rooms")]
        kind @ ("user_joined" | "user_left") => {
            // (Its `timestamp` is not read: the room model has no use for it.)
            let p =
                Presence { room: o.string("room")?, user: o.member_at("user")?, timestamp: String::new() };
            if kind == "user_joined" {
                ServerMessage::UserJoined(p)
            } else {
                ServerMessage::UserLeft(p)
            }
        }
        // The room's `metadata` is the site's, not the widget's, and its `lastSeq` and
        // `createdAt` the room model has no use for (the history's `lastSeq` it reads): not read.
        #[cfg(feature = "rooms")]
        "room_info" => ServerMessage::RoomInfo(RoomInfo {
            room: o.string("room")?,
            name: o.string("name"),
            members: Obj(&o.get("members")).members(),
            member_count: o.seq("memberCount").unwrap_or(0) as usize,
            ..RoomInfo::default()
        }),
        "ack" => ServerMessage::Ack(Ack {
            id: o.string("id")?,
            seq: o.seq("seq")?,
            room: o.string("room"),
            duplicate: o.flag("duplicate").unwrap_or(false),
        }),
        "error" => {
            let code = o.string("code").unwrap_or_default();
            ServerMessage::Error(ErrorFrame {
                code: ErrorCode::ALL.into_iter().find(|c| c.as_str() == code).unwrap_or(ErrorCode::Unknown),
                message: o.string("message").unwrap_or_default(),
                id: o.string("id"),
                retry_after_ms: o.seq("retryAfterMs"),
                room: o.string("room"),
            })
        }
        "history" => {
            let list: js_sys::Array = o.get("messages").dyn_into().ok()?;
            let gap = o.get("gap");
            let gap = Obj(&gap);
            // Pushed one by one, as `members` does: `filter_map(..).collect()` made a kilobyte
            // of iterator code around this recursive call.
            let mut messages = Vec::new();
            for m in list.iter() {
                if let Some(m) = decode(&m) {
                    messages.push(m);
                }
            }
            ServerMessage::History(History {
                room: o.string("room"),
                messages,
                complete: o.flag("complete").unwrap_or(true),
                gap: gap.seq("from").zip(gap.seq("to")).map(|(from, to)| Gap { from, to }),
                last_seq: o.seq("lastSeq").unwrap_or(0),
            })
        }
        // The nonce is not read: the widget has one ping at a time per socket, so a pong on
        // the live socket answers it (and building a JSON value would cost kilobytes of wasm).
        "pong" => {
            ServerMessage::Pong(Pong { nonce: None, timestamp: o.string("timestamp").unwrap_or_default() })
        }
        // `null`: the hub has no operators at all, and the header says nothing about them.
        "availability" => ServerMessage::Availability(Availability { online: o.flag("online") }),
        "conversation_status" => ServerMessage::ConversationStatus(ConversationStatus {
            status: match o.string("status")?.as_str() {
                "closed" => ConversationState::Closed,
                _ => ConversationState::Open,
            },
            timestamp: o.string("timestamp").unwrap_or_default(),
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_protocol::{RelayNotice, ServerMessage as M};
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    /// What the hub writes, parsed the way the browser parses it.
    fn parsed(m: &ServerMessage) -> JsValue {
        let text = serde_json::to_string(m).expect("protocol types serialise");
        js_sys::JSON::parse(&text).expect("serde writes JSON")
    }

    fn conversation(id: &str, seq: u64) -> ConversationMessage {
        ConversationMessage {
            id: id.into(),
            seq,
            message: format!("text of {id}"),
            timestamp: "2026-01-01T00:00:00Z".into(),
            session_id: "s".into(),
            // Never read: the page context is for the hub and operators.
            context: None,
            author: Some("Ada".into()),
            category: Some("greeting".into()),
            reply_to: Some("q".into()),
        }
    }

    /// One frame of every kind the widget reads, with every field it reads set.
    fn read() -> Vec<ServerMessage> {
        #[cfg_attr(not(feature = "rooms"), allow(unused_mut))]
        let mut frames = vec![
            // (A welcome's `email`, `avatar` and `expiresAt` are not read:
            // `welcome_keeps_what_the_widget_uses` checks a full one.)
            M::Welcome(Welcome { session: Some("s.t".into()), ..Welcome::default() }),
            M::Welcome(Welcome {
                user: Some(UserProfile {
                    id: "42".into(),
                    name: Some("Ada".into()),
                    ..UserProfile::default()
                }),
                ..Welcome::default()
            }),
            M::User(conversation("u", 1)),
            M::Bot(conversation("b", 2)),
            M::Agent(conversation("a", 3)),
            M::System(SystemNotice { message: "hi".into(), timestamp: "t".into(), room: Some("r".into()) }),
            M::Typing(TypingNotice { room: None, role: Role::Agent, from: None, active: true }),
            M::Ack(Ack { id: "u".into(), seq: 1, room: None, duplicate: true }),
            M::History(History {
                room: None,
                messages: vec![M::User(conversation("u", 1)), M::Bot(conversation("b", 2))],
                complete: false,
                gap: Some(Gap { from: 3, to: 4 }),
                last_seq: 9,
            }),
            M::Error(ErrorFrame {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                id: Some("u".into()),
                retry_after_ms: Some(1_500),
                room: Some("r".into()),
            }),
            M::Pong(Pong { nonce: None, timestamp: "t".into() }),
            M::Availability(Availability { online: Some(true) }),
            M::Availability(Availability { online: None }),
            M::ConversationStatus(ConversationStatus {
                status: ConversationState::Closed,
                timestamp: "t".into(),
            }),
        ];
        #[cfg(feature = "rooms")]
        frames.extend(room_frames());
        frames
    }

    /// Rooms: every field the room model reads. (A widget built without rooms ignores the kinds
    /// only rooms have.)
    fn room_frames() -> Vec<ServerMessage> {
        use natter_protocol::{Presence, RoomInfo, RoomMessage};
        vec![
            M::Welcome(Welcome { session: Some("s.t".into()), member: "u_1".into(), ..Welcome::default() }),
            M::Chat(RoomMessage {
                room: "r".into(),
                id: "c".into(),
                seq: 4,
                message: "hi all".into(),
                timestamp: "t".into(),
                from: ada(),
            }),
            M::Typing(TypingNotice {
                room: Some("r".into()),
                role: Role::User,
                from: Some(ada()),
                active: true,
            }),
            // A presence's `timestamp` is not read.
            M::UserJoined(Presence { room: "r".into(), user: ada(), timestamp: String::new() }),
            M::UserLeft(Presence { room: "r".into(), user: ada(), timestamp: String::new() }),
            M::RoomInfo(RoomInfo {
                room: "r".into(),
                name: Some("Design".into()),
                members: vec![ada(), Member { id: "u_2".into(), name: None, verified: false }],
                member_count: 140,
                // Not read: the room's `lastSeq` and `createdAt`, and the site's metadata.
                last_seq: 0,
                created_at: String::new(),
                metadata: Default::default(),
            }),
            M::Ack(Ack { id: "c".into(), seq: 4, room: Some("r".into()), duplicate: false }),
            M::History(History {
                room: Some("r".into()),
                messages: vec![M::Chat(RoomMessage {
                    room: "r".into(),
                    id: "c".into(),
                    seq: 4,
                    message: "hi all".into(),
                    timestamp: "t".into(),
                    from: ada(),
                })],
                complete: true,
                gap: None,
                last_seq: 4,
            }),
        ]
    }

    fn ada() -> Member {
        Member { id: "u_1".into(), name: Some("Ada".into()), verified: true }
    }

    /// One frame of every kind `decode` leaves alone: the relays (read by
    /// `web::rooms::decode_relay`, tested there), and without rooms the room kinds.
    fn ignored() -> Vec<ServerMessage> {
        let relay = RelayNotice { room: "r".into(), from: ada(), data: serde_json::json!({"x": 1}).into() };
        #[cfg_attr(feature = "rooms", allow(unused_mut))]
        let mut frames = vec![M::CursorPosition(relay.clone()), M::ChainUpdate(relay)];
        #[cfg(not(feature = "rooms"))]
        frames.extend(
            room_frames()
                .into_iter()
                .filter(|m| matches!(m, M::Chat(_) | M::UserJoined(_) | M::UserLeft(_) | M::RoomInfo(_))),
        );
        frames
    }

    #[wasm_bindgen_test]
    fn every_hub_kind_is_read_or_knowingly_ignored() {
        let read: Vec<&str> = read().iter().map(ServerMessage::kind).collect();
        let ignored: Vec<&str> = ignored().iter().map(ServerMessage::kind).collect();
        for kind in ServerMessage::KINDS {
            assert!(
                read.contains(&kind) != ignored.contains(&kind),
                "decide whether the widget reads `{kind}` frames, and add it to one list"
            );
        }
    }

    #[wasm_bindgen_test]
    fn frames_read_back_as_the_protocol_wrote_them() {
        for m in read() {
            assert_eq!(decode(&parsed(&m)).as_ref(), Some(&m), "{}", m.kind());
        }
        for m in ignored() {
            assert_eq!(decode(&parsed(&m)), None, "{}", m.kind());
        }
    }

    #[wasm_bindgen_test]
    fn welcome_keeps_what_the_widget_uses() {
        let full = M::Welcome(Welcome {
            session: Some("s.t".into()),
            member: "u_2".into(),
            user: Some(UserProfile {
                id: "42".into(),
                name: Some("Ada".into()),
                email: Some("a@example.com".into()),
                avatar: Some("https://example.com/a.png".into()),
            }),
            expires_at: Some(1_790_000_000),
            budgets: Some(natter_protocol::Budgets {
                messages_per_minute: 30,
                message_burst: 3,
                frame_budget: 5_000,
                max_rooms: 7,
            }),
        });
        let Some(M::Welcome(w)) = decode(&parsed(&full)) else { panic!("a welcome") };
        assert_eq!(w.session.as_deref(), Some("s.t"));
        #[cfg(feature = "rooms")]
        // (Not `maxRooms`: the hub names its room cap when it is reached.)
        assert_eq!(
            w.budgets.map(|b| (b.messages_per_minute, b.message_burst, b.frame_budget)),
            Some((30, 3, 5_000))
        );
        assert_eq!(w.user.map(|u| (u.id, u.name)), Some(("42".into(), Some("Ada".into()))));
    }

    #[wasm_bindgen_test]
    fn every_role_and_error_code_reads_back() {
        for role in Role::ALL {
            let m = M::Typing(TypingNotice { room: None, role, from: None, active: false });
            assert_eq!(decode(&parsed(&m)), Some(m));
        }
        for code in ErrorCode::ALL {
            let m = M::error(code, "x");
            assert_eq!(decode(&parsed(&m)), Some(m));
        }
    }

    #[wasm_bindgen_test]
    fn what_the_widget_cannot_read_is_nothing_not_a_guess() {
        for json in [
            "null",
            "[]",
            r#"{"type":"teleport"}"#,
            r#"{"type":"bot","id":"x"}"#,
            r#"{"type":"typing","role":"robot","active":true}"#,
            r#"{"type":"ack","id":"x","seq":-1}"#,
            r#"{"type":"ack","id":"x","seq":1.5}"#,
        ] {
            let v = js_sys::JSON::parse(json).expect("valid JSON");
            assert_eq!(decode(&v), None, "{json}");
        }
        // A code from a newer hub still reads, as `unknown`.
        let v = js_sys::JSON::parse(r#"{"type":"error","code":"future","message":"m"}"#).expect("JSON");
        assert!(matches!(decode(&v), Some(M::Error(ErrorFrame { code: ErrorCode::Unknown, .. }))));
    }
}
