//! WebSocket close codes the hub uses, and what a client should do after each.
//!
//! Standard codes (1000–1015) keep their RFC 6455 meaning; 4000–4999 are Natter's own. [`advice`]
//! says what to do after a code; [`should_reconnect`] is its yes/no summary.

/// Normal closure (the client asked, or the widget was destroyed). Do not reconnect.
pub const NORMAL: u16 = 1000;
/// The hub is shutting down or restarting. Reconnect (with backoff) and resume.
pub const GOING_AWAY: u16 = 1001;
/// Policy violation: the origin is not allowed, or no `auth` frame came in time. Give up.
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
/// The session was refused (the hub did not issue it, or its secret was rotated). Forget it
/// and reconnect without one: the hub issues a new session (and a new, empty conversation).
pub const BAD_SESSION: u16 = 4003;
/// The connection sent far too much too fast. Reconnect after a delay.
pub const RATE_LIMITED: u16 = 4029;
/// The signed identity is invalid or has expired (the `error` frame before the close names the
/// reason). Get a fresh token from the site's backend and reconnect with it; reconnecting with
/// the same token is refused again.
pub const UNAUTHORIZED: u16 = 4401;

/// What a client should do after the hub closed with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// Reconnect (with backoff) and resume with `after`.
    Reconnect,
    /// Forget the session, reconnect without one, and keep the new session the hub issues.
    NewSession,
    /// Get a fresh token (the site's backend signs one), then reconnect with it.
    FreshToken,
    /// Do not reconnect.
    GiveUp,
}

/// What a client should do after the hub closed with `code`.
///
/// Unknown codes reconnect: a transient failure wrongly treated as final loses a visitor, while
/// a final one wrongly retried only costs a backed-off attempt.
pub fn advice(code: u16) -> Advice {
    match code {
        NORMAL | POLICY => Advice::GiveUp,
        BAD_SESSION => Advice::NewSession,
        UNAUTHORIZED => Advice::FreshToken,
        _ => Advice::Reconnect,
    }
}

/// Whether a client should connect again after the hub closed with `code` (for
/// [`BAD_SESSION`] and [`UNAUTHORIZED`], after doing what [`advice`] says first).
pub fn should_reconnect(code: u16) -> bool {
    advice(code) != Advice::GiveUp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_or_give_up() {
        for code in [GOING_AWAY, TOO_BIG, INTERNAL, SLOW_CONSUMER, STALE, RATE_LIMITED, 1006, 4999] {
            assert!(should_reconnect(code), "{code}");
            assert_eq!(advice(code), Advice::Reconnect, "{code}");
        }
        for code in [NORMAL, POLICY] {
            assert!(!should_reconnect(code), "{code}");
        }
        assert_eq!(advice(BAD_SESSION), Advice::NewSession);
        assert_eq!(advice(UNAUTHORIZED), Advice::FreshToken);
        assert!(should_reconnect(UNAUTHORIZED) && should_reconnect(BAD_SESSION));
    }
}
