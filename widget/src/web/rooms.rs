//! Rooms at the JS boundary: the shapes a page reads (a room's snapshot, room events), built
//! property by property like the rest of the widget's JS shapes; and the relayed collaboration
//! frames (`cursor_position`, `chain_update`), whose `data` is the page's business and is never
//! parsed in Rust: the hub's is read back with the browser's `JSON.parse`, and the page's
//! arrives as JSON text (`npm/src/rooms.js` writes it with `JSON.stringify` and refuses, at the
//! page's own call, data JSON cannot hold).
//!
//! Why not `serde_wasm_bindgen`: measured with these very shapes, its serializer with the derived
//! `Serialize` impls (and its interned-field-name cache, a `HashMap`) cost 4.2 KiB of gzipped wasm
//! that every page downloads, and its deserializer for the `joinRoom` options another 12.5 KiB
//! (serde's error messages print floats); written out, they cost a fraction of that.

use crate::state::rooms::{RelayKind, Relayed, Room, RoomLine, RoomNotice};
use natter_protocol::Member;
use wasm_bindgen::JsValue;

/// Builds a plain JS object field by field.
struct Obj(js_sys::Object);

impl Obj {
    fn new() -> Self {
        Obj(js_sys::Object::new())
    }

    /// (One function for every value type: a generic `impl Into<JsValue>` made a copy per type.)
    fn set(self, key: &str, value: JsValue) -> Self {
        let _ = js_sys::Reflect::set(&self.0, &JsValue::from_str(key), &value);
        self
    }

    fn done(self) -> JsValue {
        self.0.into()
    }
}

/// A seq, or `null`. Seqs stay far below 2^53, so a JS number holds them exactly.
fn seq(s: Option<u64>) -> JsValue {
    s.map_or(JsValue::NULL, |s| JsValue::from_f64(s as f64))
}

/// A text, or `null` (as the types say).
fn opt_str(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, JsValue::from_str)
}

/// A member: `{ id, name, verified }`.
fn member_js(m: &Member) -> JsValue {
    Obj::new()
        .set("id", m.id.as_str().into())
        .set("name", opt_str(m.name.as_deref()))
        .set("verified", m.verified.into())
        .done()
}

/// `list` as a JS array of `item`s, pushed one by one (collecting into a `js_sys::Array` made
/// a copy of its iterator machinery per list).
fn array_js<T>(list: &[T], item: fn(&T) -> JsValue) -> JsValue {
    let a = js_sys::Array::new();
    for x in list {
        a.push(&item(x));
    }
    a.into()
}

fn members_js(list: &[Member]) -> JsValue {
    array_js(list, member_js)
}

/// A room message: `{ id, seq, text, time, from, mine, state }`.
fn message_js(m: &RoomLine) -> JsValue {
    Obj::new()
        .set("id", m.id.as_str().into())
        .set("seq", seq(m.seq))
        .set("text", m.text.as_str().into())
        .set("time", m.time.as_str().into())
        .set("from", member_js(&m.from))
        .set("mine", m.mine.into())
        .set("state", m.delivery.as_str().into())
        .done()
}

/// The snapshot of `room`: `{ status, title, messages, members, memberCount, typing, unread }`,
/// what `room.messages`, `room.members`, … read (the npm module caches it until the next room
/// event).
pub(super) fn snapshot_js(room: &Room) -> JsValue {
    Obj::new()
        .set("status", room.status.as_str().into())
        .set("title", opt_str(room.title.as_deref()))
        .set("messages", array_js(&room.messages, message_js))
        .set("members", members_js(&room.members))
        .set("memberCount", (room.member_count as f64).into())
        .set("typing", members_js(&room.typing))
        .set("unread", room.unread.into())
        .done()
}

/// A relay's JSON text back into a JS value (written by `JSON.stringify` in this tab, or
/// relayed by the hub as the JSON another page sent).
fn parse(data: &str) -> JsValue {
    js_sys::JSON::parse(data).unwrap_or(JsValue::NULL)
}

/// The `room` event for `notice` about `room`: `{ type, room, … }`, which the npm module hands
/// to the `Room` object named by `room`.
pub(super) fn event_js(room: &str, notice: &RoomNotice) -> JsValue {
    let event = |kind: &str| Obj::new().set("type", kind.into()).set("room", room.into());
    match notice {
        RoomNotice::Message(m) => event("message").set("message", message_js(m)),
        RoomNotice::Delivery { id, delivery, seq: s } => event("delivery")
            .set("id", id.as_str().into())
            .set("state", delivery.as_str().into())
            .set("seq", seq(*s)),
        RoomNotice::Presence { member, joined } => {
            event("presence").set("member", member_js(member)).set("joined", (*joined).into())
        }
        RoomNotice::Members => event("members"),
        RoomNotice::History => event("history"),
        RoomNotice::Typing { member, active } => {
            event("typing").set("member", member_js(member)).set("active", (*active).into())
        }
        RoomNotice::Relay { kind, from, data } => {
            event(if *kind == RelayKind::Cursor { "cursor" } else { "update" })
                .set("from", member_js(from))
                .set("data", parse(data))
        }
        RoomNotice::Status(st) => event("status").set("status", st.as_str().into()),
        RoomNotice::Unread(n) => event("unread").set("unread", (*n).into()),
        RoomNotice::Error { code, message } => {
            event("error").set("code", code.as_str().into()).set("message", message.as_str().into())
        }
    }
    .done()
}

/// Reads a parsed hub frame as a relay, or `None` if it is not one.
pub(crate) fn decode_relay(v: &JsValue) -> Option<Relayed> {
    let o = super::frame::Obj(v);
    let kind = match o.string("type")?.as_str() {
        "cursor_position" => RelayKind::Cursor,
        "chain_update" => RelayKind::Update,
        _ => return None,
    };
    let from = o.member_at("from")?;
    let data = js_sys::JSON::stringify(&o.get("data")).ok().and_then(|s| s.as_string()).unwrap_or_default();
    Some(Relayed { room: o.string("room")?, kind, from, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::log::Delivery;
    use crate::state::rooms::RoomStatus;
    use natter_protocol::{RelayNotice, ServerMessage};
    use serde_json::{json, Value};
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    wasm_bindgen_test_configure!(run_in_browser);

    fn ada() -> Member {
        Member { id: "u_1".into(), name: Some("Ada".into()), verified: true }
    }

    /// What the page gets, as JSON, to compare with the documented shape.
    fn json_of(v: &JsValue) -> Value {
        let text = js_sys::JSON::stringify(v).ok().and_then(|s| s.as_string()).expect("JSON");
        serde_json::from_str(&text).expect("JSON")
    }

    #[wasm_bindgen_test]
    fn relays_read_back_with_their_data_untouched() {
        let data = json!({"x": 0.25, "path": [1, "two", null, {"deep": true}], "s": "\"quoted\""});
        for (m, kind) in [
            (
                ServerMessage::CursorPosition(RelayNotice {
                    room: "r".into(),
                    from: ada(),
                    data: data.clone().into(),
                }),
                RelayKind::Cursor,
            ),
            (
                ServerMessage::ChainUpdate(RelayNotice {
                    room: "r".into(),
                    from: ada(),
                    data: data.clone().into(),
                }),
                RelayKind::Update,
            ),
        ] {
            let v = js_sys::JSON::parse(&serde_json::to_string(&m).expect("serialises")).expect("JSON");
            let r = decode_relay(&v).expect("a relay");
            assert_eq!((r.room.as_str(), r.kind, &r.from), ("r", kind, &ada()));
            assert_eq!(serde_json::from_str::<Value>(&r.data).expect("JSON text"), data);
        }
        let chat = js_sys::JSON::parse(r#"{"type":"chat","room":"r"}"#).expect("JSON");
        assert!(decode_relay(&chat).is_none());
        let anonymous =
            js_sys::JSON::parse(r#"{"type":"cursor_position","room":"r","data":{}}"#).expect("JSON");
        assert!(decode_relay(&anonymous).is_none(), "a relay without a sender is not read");
    }

    #[wasm_bindgen_test]
    fn room_events_have_the_documented_shapes() {
        let line = RoomLine {
            id: "m1".into(),
            seq: None,
            text: "hi".into(),
            time: "t".into(),
            from: Member { id: "u_2".into(), name: None, verified: false },
            mine: true,
            delivery: Delivery::Pending,
        };
        assert_eq!(
            json_of(&event_js("r", &RoomNotice::Message(line))),
            json!({"type": "message", "room": "r", "message": {"id": "m1", "seq": null, "text": "hi", "time": "t",
                "from": {"id": "u_2", "name": null, "verified": false}, "mine": true, "state": "pending"}})
        );
        let update =
            RoomNotice::Relay { kind: RelayKind::Update, from: ada(), data: r#"{"op":"add"}"#.into() };
        assert_eq!(
            json_of(&event_js("r", &update)),
            json!({"type": "update", "room": "r", "from": {"id": "u_1", "name": "Ada", "verified": true}, "data": {"op": "add"}})
        );
        assert_eq!(
            json_of(&event_js("r", &RoomNotice::Status(RoomStatus::Http))),
            json!({"type": "status", "room": "r", "status": "http"})
        );
    }
}
