//! Rooms at the JS boundary: the shapes a page reads (a room's snapshot, room events), written
//! through `serde_wasm_bindgen` on camelCase structs; the `joinRoom` options; and the
//! relayed collaboration frames (`cursor_position`, `chain_update`), whose `data` is the page's
//! business and crosses the boundary as the browser's own value, never parsed in Rust.

use crate::state::rooms::{RelayKind, Room, RoomLine, RoomNotice};
use natter_protocol::Member;
use serde::Serialize;
use wasm_bindgen::JsValue;

/// A member as JS sees it: `{ id, name, verified }`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberJs<'a> {
    id: &'a str,
    name: Option<&'a str>,
    verified: bool,
}

impl<'a> From<&'a Member> for MemberJs<'a> {
    fn from(m: &'a Member) -> Self {
        MemberJs { id: &m.id, name: m.name.as_deref(), verified: m.verified }
    }
}

/// A room message: `{ id, seq, text, time, from, mine, state }`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageJs<'a> {
    id: &'a str,
    seq: Option<u64>,
    text: &'a str,
    time: &'a str,
    from: MemberJs<'a>,
    mine: bool,
    state: &'static str,
}

impl<'a> From<&'a RoomLine> for MessageJs<'a> {
    fn from(m: &'a RoomLine) -> Self {
        MessageJs {
            id: &m.id,
            seq: m.seq,
            text: &m.text,
            time: &m.time,
            from: (&m.from).into(),
            mine: m.mine,
            state: m.delivery.as_str(),
        }
    }
}

/// What `room.messages`, `room.members`, … read: one snapshot per change, cached by the npm
/// module until the next room event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotJs<'a> {
    status: &'static str,
    title: Option<&'a str>,
    messages: Vec<MessageJs<'a>>,
    members: Vec<MemberJs<'a>>,
    member_count: usize,
    typing: Vec<MemberJs<'a>>,
    unread: u32,
}

/// A room event, as the `room` event of the wasm handle gives it (the npm module hands it to
/// the `Room` object named by `room`): `{ type, room, … }`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum EventJs<'a> {
    Message {
        room: &'a str,
        message: MessageJs<'a>,
    },
    Delivery {
        room: &'a str,
        id: &'a str,
        state: &'static str,
        seq: Option<u64>,
    },
    Presence {
        room: &'a str,
        member: MemberJs<'a>,
        joined: bool,
    },
    Members {
        room: &'a str,
    },
    Typing {
        room: &'a str,
        member: MemberJs<'a>,
        active: bool,
    },
    Cursor {
        room: &'a str,
        from: MemberJs<'a>,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        data: JsValue,
    },
    Update {
        room: &'a str,
        from: MemberJs<'a>,
        #[serde(with = "serde_wasm_bindgen::preserve")]
        data: JsValue,
    },
    Status {
        room: &'a str,
        status: &'static str,
    },
    Unread {
        room: &'a str,
        unread: u32,
    },
    Error {
        room: &'a str,
        code: &'static str,
        message: &'a str,
    },
}

fn to_js<T: Serialize>(value: &T) -> JsValue {
    // `null` rather than `undefined` for an absent name or seq, as the types say.
    let ser = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true);
    value.serialize(&ser).unwrap_or_else(|e| {
        web_sys::console::error_2(&"natter: could not describe a room:".into(), &e.into());
        JsValue::NULL
    })
}

/// The `name` of `joinRoom`'s options (`{ name }`), read as a property: `serde_wasm_bindgen`'s
/// deserialiser brings serde's error formatting (float printing included), about 15 KiB of wasm
/// for one optional string.
pub(super) fn join_name(options: &JsValue) -> Option<String> {
    if !options.is_object() {
        return None;
    }
    js_sys::Reflect::get(options, &JsValue::from_str("name")).ok()?.as_string()
}

/// The snapshot of `room`.
pub(super) fn snapshot_js(room: &Room) -> JsValue {
    to_js(&SnapshotJs {
        status: room.status.as_str(),
        title: room.title.as_deref(),
        messages: room.messages.iter().map(MessageJs::from).collect(),
        members: room.members.iter().map(MemberJs::from).collect(),
        member_count: room.member_count,
        typing: room.typing.iter().map(MemberJs::from).collect(),
        unread: room.unread,
    })
}

/// A relay's JSON text back into a JS value (written by `JSON.stringify` in this tab, or
/// relayed by the hub as the JSON another page sent).
fn parse(data: &str) -> JsValue {
    js_sys::JSON::parse(data).unwrap_or(JsValue::NULL)
}

/// The `room` event for `notice` about `room`.
pub(super) fn event_js(room: &str, notice: &RoomNotice) -> JsValue {
    to_js(&match notice {
        RoomNotice::Message(m) => EventJs::Message { room, message: m.into() },
        RoomNotice::Delivery { id, delivery, seq } => {
            EventJs::Delivery { room, id, state: delivery.as_str(), seq: *seq }
        }
        RoomNotice::Presence { member, joined } => {
            EventJs::Presence { room, member: member.into(), joined: *joined }
        }
        RoomNotice::Members => EventJs::Members { room },
        RoomNotice::Typing { member, active } => {
            EventJs::Typing { room, member: member.into(), active: *active }
        }
        RoomNotice::Relay { kind: RelayKind::Cursor, from, data } => {
            EventJs::Cursor { room, from: from.into(), data: parse(data) }
        }
        RoomNotice::Relay { kind: RelayKind::Update, from, data } => {
            EventJs::Update { room, from: from.into(), data: parse(data) }
        }
        RoomNotice::Status(s) => EventJs::Status { room, status: s.as_str() },
        RoomNotice::Unread(n) => EventJs::Unread { room, unread: *n },
        RoomNotice::Error { code, message } => EventJs::Error { room, code: code.as_str(), message },
    })
}

/// A page's `cursor(data)` / `update(data)` as JSON text, or why it cannot be sent.
pub(super) fn relay_text(data: &JsValue) -> Result<String, String> {
    if data.is_undefined() {
        return Ok("null".into());
    }
    let text = js_sys::JSON::stringify(data)
        .map_err(|_| "data could not be written as JSON (a cycle, or a BigInt)".to_string())?;
    text.as_string().ok_or_else(|| "data is not JSON (a function or a symbol)".to_string())
}

/// A relayed `cursor_position` / `chain_update` from the hub.
pub(crate) struct Relayed {
    /// The room.
    pub room: String,
    /// Which one.
    pub kind: RelayKind,
    /// Who sent it.
    pub from: Member,
    /// Its `data`, as JSON text.
    pub data: String,
}

/// Reads a parsed hub frame as a relay, or `None` if it is not one.
pub(crate) fn decode_relay(v: &JsValue) -> Option<Relayed> {
    let get =
        |o: &JsValue, k: &str| js_sys::Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    let kind = match get(v, "type").as_string()?.as_str() {
        "cursor_position" => RelayKind::Cursor,
        "chain_update" => RelayKind::Update,
        _ => return None,
    };
    let from = get(v, "from");
    let member = Member {
        id: get(&from, "id").as_string()?,
        name: get(&from, "name").as_string(),
        verified: get(&from, "verified").as_bool().unwrap_or(false),
    };
    let data = js_sys::JSON::stringify(&get(v, "data")).ok().and_then(|s| s.as_string()).unwrap_or_default();
    Some(Relayed { room: get(v, "room").as_string()?, kind, from: member, data })
}
