//! Sign-in attempts are rate-limited: per operator name (a guessed password costs the guesser
//! time, not the operator their account: nothing locks), and in all (each attempt is an argon2
//! verification, tens of milliseconds of CPU, so a flood must not take the hub's cores).
//!
//! A name's bucket holds [`NAME_BURST`] failed attempts and refills one every
//! [`NAME_REFILL`]; a success forgets the name's failures. The global bucket allows
//! [`GLOBAL_BURST`] attempts at once and [`GLOBAL_PER_SEC`] a second after that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Failed attempts a name may have in a row.
pub(crate) const NAME_BURST: f64 = 5.0;

/// One more attempt for a name after this long.
pub(crate) const NAME_REFILL: Duration = Duration::from_secs(60);

/// Attempts the hub takes at once.
const GLOBAL_BURST: f64 = 20.0;

/// Attempts a second after that.
const GLOBAL_PER_SEC: f64 = 4.0;

/// Names tracked at most; past that, names whose bucket has refilled are forgotten.
const MAX_NAMES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Tokens {
    left: f64,
    at: Instant,
}

impl Tokens {
    fn refill(&mut self, now: Instant, per_sec: f64, burst: f64) {
        self.left = (self.left + now.saturating_duration_since(self.at).as_secs_f64() * per_sec).min(burst);
        self.at = now;
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct SigninLimiter {
    state: Mutex<(Tokens, HashMap<String, Tokens>)>,
}

impl Default for SigninLimiter {
    fn default() -> Self {
        SigninLimiter {
            state: Mutex::new((Tokens { left: GLOBAL_BURST, at: Instant::now() }, HashMap::new())),
        }
    }
}

fn name_rate() -> f64 {
    1.0 / NAME_REFILL.as_secs_f64()
}

impl SigninLimiter {
    /// May an attempt for `name` go ahead now? `Err` says how many milliseconds to wait.
    pub(crate) fn admit(&self, name: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (global, names) = &mut *guard;
        global.refill(now, GLOBAL_PER_SEC, GLOBAL_BURST);
        if let Some(t) = names.get_mut(name) {
            t.refill(now, name_rate(), NAME_BURST);
            if t.left < 1.0 {
                return Err(wait_ms(1.0 - t.left, name_rate()));
            }
        }
        if global.left < 1.0 {
            return Err(wait_ms(1.0 - global.left, GLOBAL_PER_SEC));
        }
        global.left -= 1.0;
        Ok(())
    }

    /// An attempt for `name` failed.
    pub(crate) fn failed(&self, name: &str) {
        let now = Instant::now();
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let names = &mut guard.1;
        if names.len() >= MAX_NAMES && !names.contains_key(name) {
            names.retain(|_, t| {
                t.refill(now, name_rate(), NAME_BURST);
                t.left < NAME_BURST
            });
        }
        let t = names.entry(name.to_owned()).or_insert(Tokens { left: NAME_BURST, at: now });
        t.refill(now, name_rate(), NAME_BURST);
        t.left = (t.left - 1.0).max(0.0);
    }

    /// An attempt for `name` succeeded: its failures are forgotten.
    pub(crate) fn succeeded(&self, name: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1.remove(name);
    }
}

fn wait_ms(missing: f64, per_sec: f64) -> u64 {
    ((missing / per_sec) * 1000.0).ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_name_gets_five_failures_then_one_a_minute_and_others_are_unaffected() {
        let l = SigninLimiter::default();
        for _ in 0..5 {
            assert!(l.admit("ada").is_ok());
            l.failed("ada");
        }
        let wait = l.admit("ada").unwrap_err();
        assert!(wait > 50_000 && wait <= 60_000, "{wait}");
        assert!(l.admit("bob").is_ok(), "another name is not held up");
        tokio::time::advance(NAME_REFILL).await;
        assert!(l.admit("ada").is_ok());
        l.succeeded("ada");
        assert!(l.admit("ada").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_names_is_bounded_in_all() {
        let l = SigninLimiter::default();
        let admitted = (0..100).filter(|i| l.admit(&format!("n{i}")).is_ok()).count();
        assert_eq!(admitted, 20);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!((0..100).filter(|i| l.admit(&format!("m{i}")).is_ok()).count(), 4);
    }
}
