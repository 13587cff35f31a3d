//! `FrameBudget`: how much one WebSocket may make the hub send (`--frame-budget`).
//!
//! Every frame a client sends costs what it makes the hub do: its size plus [`FRAME_OVERHEAD`]
//! (parsing, the answer, the bookkeeping), times the connections it reaches (a 60 KB
//! `cursor_position` in a room of 20 costs 1.2 MB; a `ping` about 300 bytes). Every kind of
//! frame draws on it — chat, user, join, leave, typing, relays, pings, bad frames — so none
//! can be used to get round it.
//!
//! A token bucket of bytes, refilled at the budget per second up to four seconds' worth. A
//! frame it cannot pay for is refused (`rate_limited`, with how long to wait) and still costs
//! what it would have: a client that slows down when told recovers at once, one that keeps
//! sending runs into debt, and once it owes a whole burst it is cut (4029, reconnect after a
//! delay) before it can cost the hub or the other members anything more.
//!
//! Connections cost nothing to open, so a frame paid for here is also paid for out of its
//! client address's budget, all its WebSockets together (`--address-frame-budget`, kept in
//! `hub/limits.rs`): forty connections flooding at their own budget each are forty times one,
//! and the address's budget is what stops them. A frame the address cannot pay for is refused
//! the same way, and still costs its connection, so a connection that keeps sending is cut.

use natter_protocol::ErrorCode;
use tokio::time::Instant;

use crate::address::AddrKey;
use crate::hub::{Hub, Refusal};
use crate::metrics::Limit;

/// What every frame costs on top of its size, in bytes.
pub(crate) const FRAME_OVERHEAD: u64 = natter_protocol::FRAME_OVERHEAD;

/// How many seconds of budget a connection may spend at once (and owe before it is cut).
pub(crate) const BURST_SECONDS: f64 = 4.0;

/// What [`FrameBudget::spend`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spent {
    /// Paid: handle the frame.
    Paid,
    /// Not paid: refuse the frame; the budget allows it again after this many milliseconds.
    Refused {
        /// Milliseconds until a frame of the same cost would be paid.
        wait_ms: u64,
    },
    /// Owes more than a whole burst: close the connection (4029).
    Cut,
}

/// See the module docs. 24 bytes per connection (the budget in force is the hub's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameBudget {
    /// Bytes that may be spent now; negative while in debt.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl FrameBudget {
    /// A full budget for a connection allowed `rate` bytes per second.
    pub(crate) fn full(rate: u64, now: Instant) -> FrameBudget {
        FrameBudget { tokens: burst(rate), at: now }
    }

    /// Spends `cost` bytes at `now` out of `rate` bytes per second (0: no limit).
    pub(crate) fn spend(&mut self, cost: u64, rate: u64, now: Instant) -> Spent {
        if rate == 0 {
            return Spent::Paid;
        }
        let rate_f = rate as f64;
        let burst = burst(rate);
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate_f;
        self.tokens = (self.tokens + refill).min(burst);
        self.at = now;
        let cost = cost as f64;
        if self.tokens >= cost {
            self.tokens -= cost;
            return Spent::Paid;
        }
        self.tokens -= cost;
        if self.tokens < -burst {
            return Spent::Cut;
        }
        // Until the debt is paid and this cost is available again.
        let wait_ms = ((cost - self.tokens) / rate_f * 1000.0).ceil() as u64;
        Spent::Refused { wait_ms: wait_ms.max(1) }
    }
}

/// What paying for one frame came to, as the connection must act on it (counted in
/// `natter_limited_total`).
#[derive(Debug)]
pub(crate) enum Payment {
    /// Paid: handle the frame.
    Paid,
    /// Not paid: answer with this `rate_limited` refusal instead of handling the frame.
    Refused(Refusal),
    /// Owes a whole burst: close the connection with 4029.
    Cut,
}

impl FrameBudget {
    /// Pays `cost` bytes out of the hub's `--frame-budget`, then out of the budget of `addr`,
    /// the connection's client address (`--address-frame-budget`); `id` is the frame's
    /// client-made id, for the refusal to carry.
    pub(crate) fn pay(&mut self, hub: &Hub, addr: AddrKey, cost: u64, id: Option<String>) -> Payment {
        let rate = hub.config().frame_budget;
        match self.spend(cost, rate, Instant::now()) {
            Spent::Paid => match hub.charge_address_frames(addr, cost) {
                Ok(()) => Payment::Paid,
                Err(r) => Payment::Refused(r.with_id(id)),
            },
            Spent::Refused { wait_ms } => {
                hub.metrics().limited(Limit::FrameBudget);
                let mut r = Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "this connection is sending more than the hub relays for one connection ({rate} bytes per \
                         second, counting each frame once per recipient); wait {wait_ms} ms"
                    ),
                )
                .with_id(id);
                r.retry_after_ms = Some(wait_ms);
                Payment::Refused(r)
            }
            Spent::Cut => {
                hub.metrics().limited(Limit::FrameBudgetCut);
                Payment::Cut
            }
        }
    }
}

fn burst(rate: u64) -> f64 {
    rate as f64 * BURST_SECONDS
}

/// What a frame of `bytes` reaching `audience` connections costs.
pub(crate) fn cost(bytes: usize, audience: usize) -> u64 {
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    let audience = u64::try_from(audience.max(1)).unwrap_or(u64::MAX);
    bytes.saturating_add(FRAME_OVERHEAD).saturating_mul(audience)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_refusals_then_the_cut() {
        let rate = 1000;
        let t0 = Instant::now();
        let mut b = FrameBudget::full(rate, t0);
        // Four seconds' worth at once.
        assert_eq!(b.spend(4000, rate, t0), Spent::Paid);
        // Then refused, told how long to wait: the debt of 500 and the 500 itself, at 1000/s.
        assert_eq!(b.spend(500, rate, t0), Spent::Refused { wait_ms: 1000 });
        // A client that waits is served again.
        assert_eq!(b.spend(500, rate, t0 + Duration::from_millis(1000)), Spent::Paid);
        // One that keeps going owes a whole burst soon and is cut.
        let now = t0 + Duration::from_millis(1000);
        let outcomes: Vec<Spent> = (0..9).map(|_| b.spend(500, rate, now)).collect();
        assert!(outcomes[..7].iter().all(|s| matches!(s, Spent::Refused { .. })), "{outcomes:?}");
        assert_eq!(outcomes.last(), Some(&Spent::Cut));
    }

    #[test]
    fn costs_grow_with_size_and_audience() {
        assert_eq!(cost(0, 0), FRAME_OVERHEAD);
        assert_eq!(cost(60_000, 20), (60_000 + FRAME_OVERHEAD) * 20);
        let mut b = FrameBudget::full(0, Instant::now());
        assert_eq!(b.spend(u64::MAX, 0, Instant::now()), Spent::Paid, "0 is no limit");
    }
}
