//! JSON text the widget writes: the visitor's `user` frame and the persisted outbox.
//!
//! Written by hand rather than through serde: serde plus `serde_wasm_bindgen` cost about a
//! third of the wasm binary, and the widget writes exactly two shapes. The native tests below
//! parse the output with serde_json into `natter_protocol::ClientMessage` / `OutboxEntry`, so
//! the shapes cannot drift from the protocol crate.

use crate::outbox::OutboxEntry;
use crate::state::Outgoing;

/// Appends `s` as a JSON string literal.
fn push_string(buf: &mut String, s: &str) {
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

fn push_field(buf: &mut String, name: &str, value: &str) {
    push_string(buf, name);
    buf.push(':');
    push_string(buf, value);
}

/// The `user` frame for a visitor message: the original widget's message format plus the
/// de-duplication `id`.
pub(crate) fn user_message(out: &Outgoing, session: &str, page: &str) -> String {
    let mut b = String::with_capacity(out.text.len() + session.len() + page.len() + 128);
    b.push_str("{\"type\":\"user\",");
    push_field(&mut b, "id", &out.id);
    b.push(',');
    push_field(&mut b, "message", &out.text);
    b.push(',');
    push_field(&mut b, "timestamp", &out.time);
    b.push(',');
    push_field(&mut b, "sessionId", session);
    b.push_str(",\"context\":{");
    push_field(&mut b, "page", page);
    b.push_str("}}");
    b
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
        b.push_str(if e.failed { ",\"failed\":true}" } else { "}" });
    }
    b.push(']');
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_protocol::{ClientMessage, UserSend};

    #[test]
    fn user_frame_is_a_protocol_user_message() {
        let out = Outgoing {
            id: "abc".into(),
            text: "quote \" back\\slash\nnew\u{1}line \u{2028} émoji 🎉 </script>".into(),
            time: "2026-01-01T00:00:00.000Z".into(),
        };
        let text = user_message(&out, "s-1", "/pricing?a=\"b\"");
        let parsed: ClientMessage = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            parsed,
            ClientMessage::User(UserSend {
                id: Some("abc".into()),
                message: out.text.clone(),
                timestamp: Some(out.time.clone()),
                session_id: Some("s-1".into()),
                context: Some(serde_json::json!({ "page": "/pricing?a=\"b\"" }).into()),
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
                failed: false,
                refusals: 0,
            },
            OutboxEntry {
                id: "b".into(),
                text: "\"x\"".into(),
                time: "t2".into(),
                failed: true,
                refusals: 0,
            },
        ];
        let back: Vec<OutboxEntry> = serde_json::from_str(&outbox(&entries)).expect("valid JSON");
        assert_eq!(back, entries);
        assert_eq!(outbox(&[]), "[]");
    }
}
