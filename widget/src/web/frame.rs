//! Reading hub frames: the browser parses the JSON (`JSON.parse`, `Response.json()`), and
//! [`decode`] reads the resulting object into a `natter_protocol::ServerMessage`.
//!
//! Fields are read with `Reflect.get` instead of serde: `serde_wasm_bindgen` and the derived
//! deserialisers (an internally tagged enum buffers every frame into an intermediate tree
//! first) were about a third of the wasm binary. The browser tests and the end-to-end tests feed
//! real frames through this function.

use natter_protocol::{
    Ack, ConversationMessage, ErrorCode, ErrorFrame, Gap, History, Role, ServerMessage, SystemNotice,
    TypingNotice,
};
use wasm_bindgen::{JsCast, JsValue};

/// Reads properties of a parsed JSON object.
struct Obj<'a>(&'a JsValue);

impl Obj<'_> {
    fn get(&self, key: &str) -> JsValue {
        js_sys::Reflect::get(self.0, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).as_string()
    }

    /// A non-negative integer that JSON numbers represent exactly.
    fn seq(&self, key: &str) -> Option<u64> {
        let n = self.get(key).as_f64()?;
        (n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0).then_some(n as u64)
    }

    fn flag(&self, key: &str) -> Option<bool> {
        self.get(key).as_bool()
    }

    fn role(&self) -> Option<Role> {
        Some(match self.string("role")?.as_str() {
            "user" => Role::User,
            "bot" => Role::Bot,
            "agent" => Role::Agent,
            "system" => Role::System,
            _ => return None,
        })
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
/// not use (rooms, presence, pong) or cannot read.
pub(crate) fn decode(v: &JsValue) -> Option<ServerMessage> {
    if !v.is_object() {
        return None;
    }
    let o = Obj(v);
    let kind = o.string("type")?;
    Some(match kind.as_str() {
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
            from: None,
            active: o.flag("active")?,
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
            })
        }
        "history" => {
            let list: js_sys::Array = o.get("messages").dyn_into().ok()?;
            let gap = o.get("gap");
            let gap = Obj(&gap);
            ServerMessage::History(History {
                room: o.string("room"),
                messages: list.iter().filter_map(|m| decode(&m)).collect(),
                complete: o.flag("complete").unwrap_or(true),
                gap: gap.seq("from").zip(gap.seq("to")).map(|(from, to)| Gap { from, to }),
                last_seq: o.seq("lastSeq").unwrap_or(0),
            })
        }
        _ => return None,
    })
}
