//! WebSocket close codes the hub uses, and whether a client should reconnect after each.
//!
//! Standard codes (1000–1015) keep their RFC 6455 meaning; 4000–4999 are Natter's own.

/// Normal closure (the client asked, or the widget was destroyed). Do not reconnect.
pub const NORMAL: u16 = 1000;
/// The hub is shutting down or restarting. Reconnect (with backoff) and resume.
pub const GOING_AWAY: u16 = 1001;
/// Policy violation: the origin is not allowed or the identity did not verify. Give up.
pub const POLICY: u16 = 1008;
/// A frame was larger than the hub's limit; it was refused unread. Reconnect and resume, but do
/// not send that message again.
pub const TOO_BIG: u16 = 1009;
/// The hub hit an internal error. Reconnect and resume.
pub const INTERNAL: u16 = 1011;
/// The connection could not keep up with what it was sent (its send queue filled). Reconnect
/// and resume from the last seq seen; nothing stored is lost.
pub const SLOW_CONSUMER: u16 = 4001;
/// The connection answered no ping for too long and was presumed dead. Reconnect and resume.
pub const STALE: u16 = 4002;
/// The session id is not acceptable. Give up (a new id is needed).
pub const BAD_SESSION: u16 = 4003;
/// The connection sent far too much too fast. Reconnect after a delay.
pub const RATE_LIMITED: u16 = 4029;

/// Whether a client should reconnect after the hub closed with `code`.
///
/// Unknown codes reconnect: a transient failure wrongly treated as final loses a visitor, while
/// a final one wrongly retried only costs a backed-off attempt.
pub fn should_reconnect(code: u16) -> bool {
    !matches!(code, NORMAL | POLICY | BAD_SESSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_or_give_up() {
        for code in [GOING_AWAY, TOO_BIG, INTERNAL, SLOW_CONSUMER, STALE, RATE_LIMITED, 1006, 4999] {
            assert!(should_reconnect(code), "{code}");
        }
        for code in [NORMAL, POLICY, BAD_SESSION] {
            assert!(!should_reconnect(code), "{code}");
        }
    }
}
