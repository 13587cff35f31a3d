//! [`RawJson`]: a JSON value kept as the text it arrived as.
//!
//! A visitor's `context` is passed along, stored and replayed, but the hub never looks inside
//! it (the reply engine reads `page` when it needs to). Parsed into a `serde_json::Value`, a
//! 62 KB array of zeros became about a megabyte of tree per message; kept as text it stays
//! 62 KB, and a byte limit on it means what it says.
use crate::prelude::*;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::Json;

/// A JSON value held as its text (a `serde_json` [`RawValue`]), never as a parsed tree.
///
/// It serialises as the value itself (not as a string), so frames on the wire are unchanged.
/// Two `RawJson` are equal when they hold the same JSON value, whatever their whitespace.
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// The JSON text, exactly as received (insignificant whitespace included).
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The length of the text in bytes: what limits on context size measure.
    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    /// Whether the text is empty (never true for valid JSON; here for completeness).
    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }

    /// `null` (a copy of `serde_json`'s constant: no parser runs, so a client that only ever
    /// builds this one, like the widget's frame decoder, carries no JSON parser for it).
    pub fn null() -> RawJson {
        RawJson(Box::default())
    }

    /// `{}`: the metadata of a room created without any.
    pub fn empty_object() -> RawJson {
        // Valid JSON, so the check passes; `null` would stand in should it ever not.
        RawJson(RawValue::from_string("{}".into()).unwrap_or_default())
    }

    /// Checks that `json` is one JSON value and keeps it as it is.
    ///
    /// # Errors
    /// The `serde_json` error when `json` is not valid JSON.
    pub fn from_string(json: String) -> Result<RawJson, serde_json::Error> {
        RawValue::from_string(json).map(RawJson)
    }

    /// Parses the text into `T` (for example a [`Json`] tree, or a struct that picks one field).
    ///
    /// # Errors
    /// The `serde_json` error when the value does not fit `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl Default for RawJson {
    /// `null`, what an absent payload means.
    fn default() -> Self {
        RawJson::null()
    }
}

impl From<Json> for RawJson {
    /// The compact text of a JSON tree.
    fn from(value: Json) -> Self {
        // Writing a `Value` as JSON cannot fail; `null` (the default) stands in should it ever.
        RawJson(serde_json::value::to_raw_value(&value).unwrap_or_default())
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        if self.get() == other.get() {
            return true;
        }
        // Same value written differently (spaces, key order): compare the parsed values.
        matches!((self.parse::<Json>(), other.parse::<Json>()), (Ok(a), Ok(b)) if a == b)
    }
}

impl PartialEq<Json> for RawJson {
    /// Whether the text is that JSON value (parsed to compare; for tests and checks, not hot paths).
    fn eq(&self, other: &Json) -> bool {
        self.parse::<Json>().is_ok_and(|v| &v == other)
    }
}

impl core::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    /// Works with `serde_json`'s deserializers (text, bytes, readers and `Value`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(RawJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kept_as_text_and_written_back_as_a_value() {
        let raw: RawJson = serde_json::from_str(r#"{ "page": "/a",  "n": [0, 0] }"#).expect("parse");
        assert_eq!(raw.get(), r#"{ "page": "/a",  "n": [0, 0] }"#);
        assert_eq!(raw.len(), 30);
        #[derive(Serialize)]
        struct Frame<'a> {
            context: &'a RawJson,
        }
        let written = serde_json::to_string(&Frame { context: &raw }).expect("write");
        assert_eq!(written, r#"{"context":{ "page": "/a",  "n": [0, 0] }}"#, "the text itself");
        assert_eq!(raw, RawJson::from(json!({"n": [0, 0], "page": "/a"})), "same value");
        assert_ne!(raw, RawJson::from(json!({"page": "/b"})));
        assert!(RawJson::from_string("{nope".into()).is_err());
        #[derive(Deserialize)]
        struct Page {
            page: String,
        }
        assert_eq!(raw.parse::<Page>().map(|p| p.page).ok().as_deref(), Some("/a"));
    }
}
