//! The room frames the widget writes (`join`, `leave`, `chat`, `typing`, `cursor_position`,
//! `chain_update`), by hand like the rest of [`crate::wire`]. The tests parse each with
//! serde_json into `natter_protocol::ClientMessage`, so the shapes cannot drift.

use crate::prelude::*;

use super::push_field;
use crate::state::rooms::{RelayKind, RoomOut};

/// The body of a room message sent over the HTTP fallback: the `chat` frame plus the name the
/// visitor joined with (on the WebSocket the `join` carries it).
pub(crate) fn room_chat_http(room: &str, out: &crate::state::Outgoing, name: Option<&str>) -> String {
    let mut b = String::with_capacity(96);
    chat(&mut b, room, out);
    if let Some(n) = name {
        b.push(',');
        push_field(&mut b, "name", n);
    }
    b.push('}');
    b
}

/// Starts a frame: `{"type":"<kind>","room":"<room>"` (the caller closes it).
fn start(b: &mut String, kind: &str, room: &str) {
    b.push_str("{\"type\":\"");
    b.push_str(kind);
    b.push_str("\",");
    push_field(b, "room", room);
}

/// A `chat` frame without its closing brace (the HTTP fallback's adds the name).
fn chat(b: &mut String, room: &str, out: &crate::state::Outgoing) {
    start(b, "chat", room);
    b.push(',');
    push_field(b, "id", &out.id);
    b.push(',');
    push_field(b, "message", &out.text);
}

/// The JSON text of `frame`. `Relay` data is JSON text already (the browser's
/// `JSON.stringify` of what the page gave) and is written as it is.
pub(crate) fn room_frame(frame: &RoomOut) -> String {
    let mut b = String::with_capacity(96);
    let room = start;
    match frame {
        RoomOut::Join { room: r, name, after } => {
            room(&mut b, "join", r);
            if let Some(n) = name {
                b.push(',');
                push_field(&mut b, "name", n);
            }
            if let Some(a) = after {
                b.push_str(",\"after\":");
                crate::compose::push_decimal(&mut b, *a);
            }
        }
        RoomOut::Leave { room: r } => room(&mut b, "leave", r),
        RoomOut::Chat { room: r, out } => chat(&mut b, r, out),
        RoomOut::Typing { room: r, active } => {
            room(&mut b, "typing", r);
            b.push_str(if *active { ",\"active\":true" } else { ",\"active\":false" });
        }
        RoomOut::Relay { room: r, kind, data } => {
            room(&mut b, if *kind == RelayKind::Cursor { "cursor_position" } else { "chain_update" }, r);
            b.push_str(",\"data\":");
            if data.is_empty() {
                b.push_str("null");
            } else {
                b.push_str(data);
            }
        }
    }
    b.push('}');
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Outgoing;
    use natter_protocol::{ChatSend, ClientMessage, Join, Leave, RelaySend, TypingSend};

    fn parse(frame: RoomOut) -> ClientMessage {
        let text = room_frame(&frame);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn room_frames_are_protocol_client_messages() {
        let tricky = "quote \" back\\slash\nnew\u{1} </script> 🎉";
        assert_eq!(
            parse(RoomOut::Join { room: "r-1".into(), name: Some(tricky.into()), after: Some(7) }),
            ClientMessage::Join(Join { room: "r-1".into(), name: Some(tricky.into()), after: Some(7) })
        );
        assert_eq!(
            parse(RoomOut::Join { room: "r".into(), name: None, after: None }),
            ClientMessage::Join(Join { room: "r".into(), name: None, after: None })
        );
        assert_eq!(
            parse(RoomOut::Leave { room: "r".into() }),
            ClientMessage::Leave(Leave { room: "r".into() })
        );
        let out = Outgoing { id: "m1".into(), text: tricky.into(), time: "t".into(), context: String::new() };
        assert_eq!(
            parse(RoomOut::Chat { room: "r".into(), out }),
            ClientMessage::Chat(ChatSend {
                room: "r".into(),
                id: Some("m1".into()),
                message: tricky.into(),
                name: None
            })
        );
        let out = Outgoing { id: "m2".into(), text: "x".into(), time: "t".into(), context: String::new() };
        let http: ClientMessage =
            serde_json::from_str(&room_chat_http("r", &out, Some(tricky))).expect("JSON");
        assert_eq!(
            http,
            ClientMessage::Chat(ChatSend {
                room: "r".into(),
                id: Some("m2".into()),
                message: "x".into(),
                name: Some(tricky.into())
            })
        );
        assert_eq!(
            parse(RoomOut::Typing { room: "r".into(), active: false }),
            ClientMessage::Typing(TypingSend { room: Some("r".into()), active: false })
        );
        let data = r#"{"x":0.5,"y":[1,"two"],"s":"\"q\""}"#;
        assert_eq!(
            parse(RoomOut::Relay { room: "r".into(), kind: RelayKind::Cursor, data: data.into() }),
            ClientMessage::CursorPosition(RelaySend {
                room: "r".into(),
                data: serde_json::from_str(data).expect("JSON")
            })
        );
        assert_eq!(
            parse(RoomOut::Relay { room: "r".into(), kind: RelayKind::Update, data: String::new() }),
            ClientMessage::ChainUpdate(RelaySend { room: "r".into(), data: Default::default() })
        );
    }
}
