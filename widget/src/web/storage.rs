//! `localStorage`: the session id, the outbox, what the session has read and the mute switch.
//!
//! Storage can be missing or throw (sandboxed iframes, Safari private mode, a full quota); the
//! widget then works for the life of the page without persistence instead of failing.

use crate::outbox::OutboxEntry;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Storage;

const SESSION_KEY: &str = "natter:session";
const MUTED_KEY: &str = "natter:muted";

/// A stored message's context, re-written by the browser's JSON: anything but a JSON object
/// (storage is the page's to change) becomes none, so that it can never break the frame it is
/// spliced into.
fn valid_context(text: String) -> String {
    match js_sys::JSON::parse(&text) {
        Ok(v) if v.is_object() && !js_sys::Array::is_array(&v) => {
            js_sys::JSON::stringify(&v).map(String::from).unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// Access to `localStorage`, if the page has it.
pub(crate) struct Store {
    storage: Option<Storage>,
}

impl Store {
    /// Opens `localStorage`.
    pub(crate) fn open() -> Store {
        let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
        Store { storage }
    }

    fn get(&self, key: &str) -> Option<String> {
        self.storage.as_ref()?.get_item(key).ok().flatten()
    }

    fn set(&self, key: &str, value: &str) {
        if let Some(s) = &self.storage {
            // A full quota loses persistence, not the message: it stays in memory.
            let _ = s.set_item(key, value);
        }
    }

    fn remove(&self, key: &str) {
        if let Some(s) = &self.storage {
            let _ = s.remove_item(key);
        }
    }

    /// The session id shared by every tab of this site, made on first use.
    pub(crate) fn session_id(&self) -> String {
        if let Some(id) = self.get(SESSION_KEY).filter(|id| natter_protocol::validate_session_id(id).is_ok())
        {
            return id;
        }
        let id = super::random::hex_id();
        self.set(SESSION_KEY, &id);
        id
    }

    /// Whether the visitor muted the chime on an earlier visit.
    pub(crate) fn muted(&self) -> bool {
        self.get(MUTED_KEY).as_deref() == Some("1")
    }

    /// Remembers the mute switch.
    pub(crate) fn set_muted(&self, muted: bool) {
        if muted {
            self.set(MUTED_KEY, "1")
        } else {
            self.remove(MUTED_KEY)
        }
    }

    /// The key under which the session's read position is kept; other tabs watch it.
    pub(crate) fn read_key(session: &str) -> String {
        format!("natter:read:{session}")
    }

    /// The newest `seq` this session has read in an open panel, on any page or tab.
    pub(crate) fn read_seq(&self, session: &str) -> Option<u64> {
        self.get(&Self::read_key(session))?.parse().ok()
    }

    /// Records that the session has read up to `seq` (never moving it back: another tab may
    /// have read further meanwhile).
    pub(crate) fn save_read(&self, session: &str, seq: u64) {
        if self.read_seq(session).is_none_or(|r| seq > r) {
            self.set(&Self::read_key(session), &seq.to_string());
        }
    }

    fn outbox_key(session: &str) -> String {
        format!("natter:outbox:{session}")
    }

    /// The outbox a previous page of this session left behind.
    pub(crate) fn outbox(&self, session: &str) -> Vec<OutboxEntry> {
        let Some(text) = self.get(&Self::outbox_key(session)) else { return Vec::new() };
        let Ok(list) = js_sys::JSON::parse(&text).and_then(|v| v.dyn_into::<js_sys::Array>()) else {
            return Vec::new();
        };
        let read = |v: &JsValue, k: &str| js_sys::Reflect::get(v, &JsValue::from_str(k)).ok();
        list.iter()
            .filter_map(|e| {
                Some(OutboxEntry {
                    id: read(&e, "id")?.as_string()?,
                    text: read(&e, "text")?.as_string()?,
                    time: read(&e, "time")?.as_string().unwrap_or_default(),
                    context: read(&e, "context")
                        .and_then(|c| c.as_string())
                        .map(valid_context)
                        .unwrap_or_default(),
                    failed: read(&e, "failed").and_then(|f| f.as_bool()).unwrap_or(false),
                    refusals: 0,
                })
            })
            .collect()
    }

    /// Persists this tab's outbox, keeping what other tabs of the session left there unless
    /// this tab saw it acknowledged (removes the key when nothing is left).
    pub(crate) fn save_outbox(&self, session: &str, entries: &[OutboxEntry], acked: &[String]) {
        let key = Self::outbox_key(session);
        let all = crate::outbox::merge_for_storage(entries, self.outbox(session), acked);
        if all.is_empty() {
            return self.remove(&key);
        }
        self.set(&key, &crate::wire::outbox(&all));
    }
}
