//! Small helpers with no better home: RFC 3339 timestamps, hub-made message ids and the public
//! member id derived from a session id.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The current time as RFC 3339 UTC with milliseconds (`2025-08-23T10:00:00.123Z`), the form
/// every timestamp on the wire uses.
pub fn now_rfc3339() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_millis())
}

/// Formats seconds since the Unix epoch (plus milliseconds) as RFC 3339 UTC.
///
/// Ten lines of civil-calendar arithmetic (Howard Hinnant's `civil_from_days`) instead of a date
/// crate: the hub only ever formats "now".
pub fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// Makes message ids for messages the hub writes itself (bot replies, user messages sent
/// without an id).
///
/// Ids must be unique within a conversation even when several hubs share it through Redis, so
/// each hub starts from a random 64-bit prefix. `RandomState` is seeded from the OS's random
/// source, which spares a dependency on `rand` for one number.
#[derive(Debug)]
pub struct IdMaker {
    prefix: u64,
    counter: AtomicU64,
}

impl Default for IdMaker {
    fn default() -> Self {
        IdMaker { prefix: RandomState::new().hash_one(0x6e61_7474_6572_u64), counter: AtomicU64::new(0) }
    }
}

impl IdMaker {
    /// A fresh id: `h` + 16 hex digits of this hub's prefix + a counter.
    pub fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("h{:016x}{n:x}", self.prefix)
    }
}

/// The public id of the user behind a session: `u_` + the first 16 hex digits of the SHA-256 of
/// the session id. Room members see this, never the session id, which is a bearer credential.
pub fn member_id(session: &str) -> String {
    let digest = Sha256::digest(session.as_bytes());
    let mut out = String::with_capacity(18);
    out.push_str("u_");
    for b in &digest[..8] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Checks a client-made message id: 1 to 128 bytes of printable ASCII without spaces (the same
/// alphabet as session ids, so ids are safe in logs and storage keys).
pub fn validate_message_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("message id is empty".into());
    }
    if id.len() > 128 {
        return Err(format!("message id is {} bytes long; the limit is 128", id.len()));
    }
    match id.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        Some((at, c)) => Err(format!(
            "message id contains {c:?} at byte {at}; only printable ASCII without spaces is allowed"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_755_943_200, 7), "2025-08-23T10:00:00.007Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn member_id_is_hash_prefix() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(member_id("abc"), "u_ba7816bf8f01cfea");
    }

    #[test]
    fn ids_are_unique() {
        let m = IdMaker::default();
        assert_ne!(m.next(), m.next());
        assert!(validate_message_id(&m.next()).is_ok());
        assert!(validate_message_id("a b").is_err());
        assert!(validate_message_id("").is_err());
    }
}
