//! JSON text the widget writes: the `auth` frame, the visitor's `user` and `typing` frames, the
//! `ping` and the persisted outbox.
//!
//! Written by hand rather than through serde: serde plus `serde_wasm_bindgen` cost about a
//! third of the wasm binary, and the widget writes a handful of small shapes. The native tests below
//! parse the output with serde_json into `natter_protocol::ClientMessage` / `OutboxEntry`, so
//! the shapes cannot drift from the protocol crate.

use crate::prelude::*;

use crate::outbox::OutboxEntry;
use crate::state::Outgoing;

#[cfg(feature = "rooms")]
mod rooms;
// Only the web layer writes them; natively the tests below and in `rooms` do.
#[cfg(feature = "rooms")]
#[cfg_attr(not(target_arch = "wasm32"), allow(unused_imports))]
pub(crate) use rooms::{room_chat_http, room_frame};

/// Appends `s` as a JSON string literal.
pub(crate) fn push_string(buf: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            // U+2028/2029 are valid JSON but break some JS consumers; escape them too.
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let n = c as u32;
                buf.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    buf.push(HEX[((n >> shift) & 0xf) as usize] as char);
                }
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

/// Appends `"name":"value"`, both as JSON string literals.
pub(crate) fn push_field(buf: &mut String, name: &str, value: &str) {
    push_string(buf, name);
    buf.push(':');
    push_string(buf, value);
}

/// The `auth` frame: the token (a signed-in user) or else the session (a returning visitor), or
/// neither (a new visitor: the hub issues a session), with the resume point and the page.
pub(crate) fn auth(token: Option<&str>, session: Option<&str>, after: Option<u64>, page: &str) -> String {
    let mut b = String::from("{\"type\":\"auth\",");
    if let Some(t) = token {
        push_field(&mut b, "token", t);
        b.push(',');
    } else if let Some(s) = session {
        push_field(&mut b, "session", s);
        b.push(',');
    }
    if let Some(a) = after {
        b.push_str("\"after\":");
        crate::compose::push_decimal(&mut b, a);
        b.push(',');
    }
    push_field(&mut b, "page", page);
    b.push('}');
    b
}

/// The `user` frame for a visitor message: the original widget's message format plus the
/// de-duplication `id`, without `sessionId` (the connection, or the HTTP request's header, says
/// whose message it is; a session is not sprayed into every message). `out.context` is the JSON
/// object's text made when the message was written (by the npm facade's `JSON.stringify`, or
/// checked by the browser's JSON when read back from storage, so it is valid JSON); without
/// one, the hub takes the page from the connection.
pub(crate) fn user_message(out: &Outgoing) -> String {
    let mut b = String::with_capacity(out.text.len() + out.context.len() + 128);
    b.push_str("{\"type\":\"user\",");
    push_field(&mut b, "id", &out.id);
    b.push(',');
    push_field(&mut b, "message", &out.text);
    b.push(',');
    push_field(&mut b, "timestamp", &out.time);
    if out.context.starts_with('{') {
        b.push_str(",\"context\":");
        b.push_str(&out.context);
    }
    b.push('}');
    b
}

/// The app-level `ping` with its nonce (echoed in the `pong`).
pub(crate) fn ping(nonce: u32) -> String {
    let mut b = String::from("{\"type\":\"ping\",\"nonce\":");
    crate::compose::push_decimal(&mut b, u64::from(nonce));
    b.push('}');
    b
}

/// The visitor's `typing` frame for the support conversation (no room).
pub(crate) fn typing(active: bool) -> &'static str {
    if active {
        r#"{"type":"typing","active":true}"#
    } else {
        r#"{"type":"typing","active":false}"#
    }
}

/// The outbox as stored in `localStorage`.
pub(crate) fn outbox(entries: &[OutboxEntry]) -> String {
    let mut b = String::from("[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            b.push(',');
        }
        b.push('{');
        push_field(&mut b, "id", &e.id);
        b.push(',');
        push_field(&mut b, "text", &e.text);
        b.push(',');
        push_field(&mut b, "time", &e.time);
        if !e.context.is_empty() {
            b.push(',');
            push_field(&mut b, "context", &e.context);
        }
        b.push_str(if e.failed { ",\"failed\":true}" } else { "}" });
    }
    b.push(']');
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_protocol::{Auth, ClientMessage, UserSend};

    #[test]
    fn user_frame_is_a_protocol_user_message() {
        let out = Outgoing {
            id: "abc".into(),
            text: "quote \" back\\slash\nnew\u{1}line \u{2028} émoji 🎉 </script>".into(),
            time: "2026-01-01T00:00:00.000Z".into(),
            context: r#"{"page":"/pricing?a=\"b\"","title":"Pricing","plan":{"tier":"pro"}}"#.into(),
        };
        let text = user_message(&out);
        let parsed: ClientMessage = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            parsed,
            ClientMessage::User(UserSend {
                id: Some("abc".into()),
                message: out.text.clone(),
                timestamp: Some(out.time.clone()),
                session_id: None,
                context: Some(
                    serde_json::json!({
                        "page": "/pricing?a=\"b\"", "title": "Pricing", "plan": { "tier": "pro" }
                    })
                    .into()
                ),
            })
        );
        // Without a context the field is left out: the hub then uses the connection's page.
        let bare = Outgoing { context: String::new(), ..out };
        let parsed: ClientMessage = serde_json::from_str(&user_message(&bare)).expect("valid JSON");
        assert!(matches!(parsed, ClientMessage::User(UserSend { context: None, .. })));
    }

    #[test]
    fn ping_is_a_protocol_ping() {
        let parsed: ClientMessage = serde_json::from_str(&ping(7)).expect("valid JSON");
        assert_eq!(
            parsed,
            ClientMessage::Ping(natter_protocol::Ping { nonce: Some(serde_json::json!(7).into()) })
        );
    }

    #[test]
    fn typing_frames_are_protocol_typing_messages() {
        for active in [true, false] {
            let parsed: ClientMessage = serde_json::from_str(typing(active)).expect("valid JSON");
            assert_eq!(
                parsed,
                ClientMessage::Typing(natter_protocol::TypingSend { active, ..Default::default() })
            );
        }
    }

    #[test]
    fn auth_frames_are_protocol_auth_messages() {
        let parse = |text: String| serde_json::from_str::<ClientMessage>(&text).expect("valid JSON");
        assert_eq!(
            parse(auth(Some("a.b.c"), Some("s.t"), Some(7), "/p")),
            ClientMessage::Auth(Auth {
                token: Some("a.b.c".into()),
                session: None,
                after: Some(7),
                page: Some("/p".into())
            }),
            "a token makes the session unnecessary"
        );
        assert_eq!(
            parse(auth(None, Some("s.t"), None, "/")),
            ClientMessage::Auth(Auth {
                token: None,
                session: Some("s.t".into()),
                after: None,
                page: Some("/".into())
            })
        );
        assert_eq!(
            parse(auth(None, None, Some(0), "/\"x\"")),
            ClientMessage::Auth(Auth {
                token: None,
                session: None,
                after: Some(0),
                page: Some("/\"x\"".into())
            })
        );
    }

    #[test]
    fn outbox_round_trips() {
        let entries = vec![
            OutboxEntry {
                id: "a".into(),
                text: "one\ttwo".into(),
                time: "t1".into(),
                context: r#"{"page":"/cart"}"#.into(),
                failed: false,
                refusals: 0,
            },
            OutboxEntry {
                id: "b".into(),
                text: "\"x\"".into(),
                time: "t2".into(),
                context: String::new(),
                failed: true,
                refusals: 0,
            },
        ];
        let back: Vec<OutboxEntry> = serde_json::from_str(&outbox(&entries)).expect("valid JSON");
        assert_eq!(back, entries);
        assert_eq!(outbox(&[]), "[]");
    }
}
