//! The hub's clock on the wire: RFC 3339 UTC timestamps with milliseconds
//! (`2025-08-23T10:00:00.123Z`), the one form every timestamp in the protocol takes, and
//! milliseconds since the Unix epoch for storage.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time as RFC 3339 UTC with milliseconds (`2025-08-23T10:00:00.123Z`), the form
/// every timestamp on the wire uses.
pub(crate) fn now_rfc3339() -> String {
    rfc3339_at(SystemTime::now())
}

/// Formats seconds since the Unix epoch (plus milliseconds) as RFC 3339 UTC.
///
/// Ten lines of civil-calendar arithmetic (Howard Hinnant's `civil_from_days`) instead of a date
/// crate: the hub only ever formats the present.
pub(crate) fn rfc3339(secs: u64, millis: u32) -> String {
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

/// RFC 3339 UTC of a wall-clock time (times before 1970 read as 1970).
pub(crate) fn rfc3339_at(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_millis())
}

/// Milliseconds since the Unix epoch by the wall clock (what retention compares against).
pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Seconds since the Unix epoch now (what identity tokens' `exp` is compared against).
pub(crate) fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_755_943_200, 7), "2025-08-23T10:00:00.007Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000Z");
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_307_044_123);
        assert_eq!(rfc3339_at(t), "2026-11-22T00:24:04.123Z");
        assert_eq!(unix_ms(t), 1_795_307_044_123);
    }
}
