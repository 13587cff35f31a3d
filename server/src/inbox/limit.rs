//! Sign-in attempts are rate-limited: per operator name (a guessed password costs the guesser
//! time, not the operator their account: nothing locks), per client address (one address may
//! not take the whole hub's share, or it could keep every operator from signing in), and in
//! all (each attempt is an argon2 verification, tens of milliseconds of CPU, so a flood must
//! not take the hub's cores).
//!
//! A name's bucket holds [`NAME_BURST`] failed attempts and refills one every
//! [`NAME_REFILL`]; a success forgets the name's failures. Anyone can fail for a name, so an
//! empty bucket does not hold up an address the name has signed in from lately (the last
//! [`KNOWN_ADDRESSES`] of them, in memory): someone guessing the name's password from elsewhere
//! cannot keep its operator out of their office. An address's bucket holds
//! [`ADDRESS_BURST`] attempts and refills one every [`ADDRESS_REFILL`]: every attempt takes
//! one when it starts (so attempts made at once are counted too) and a success gives it back,
//! so an office of operators signing in behind one address is never held up by its own
//! sign-ins. The global bucket allows [`GLOBAL_BURST`] attempts at once and
//! [`GLOBAL_PER_SEC`] a second after that.
//!
//! An IPv6 client's buckets are kept for its /64 and again for the /56 and /48 that enclose it,
//! each wider one holding and refilling its multiple of the /64's ([`crate::address::WIDER`]),
//! so a holder of a /48 cannot try 65,536 times as many passwords as one line.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::address::{AddrKey, WIDER};

/// Failed attempts a name may have in a row.
pub(crate) const NAME_BURST: f64 = 5.0;

/// One more attempt for a name after this long.
pub(crate) const NAME_REFILL: Duration = Duration::from_secs(60);

/// Addresses remembered per name as ones it signed in from (see the module docs).
pub(crate) const KNOWN_ADDRESSES: usize = 8;

/// Failed (or unfinished) attempts one client address may have in a row.
pub(crate) const ADDRESS_BURST: f64 = 10.0;

/// One more attempt for an address after this long: an address alone gets at most a
/// twenty-fourth of the hub's sustained rate.
pub(crate) const ADDRESS_REFILL: Duration = Duration::from_secs(6);

/// Requests with a session cookie that names no session (made up, or ended) one client address
/// may make in a row: each is a read of the store, and a guessed cookie is a guessed sign-in.
pub(crate) const LOOKUP_BURST: f64 = 100.0;

/// One more such request for an address after this long (ten a second).
pub(crate) const LOOKUP_REFILL: Duration = Duration::from_millis(100);

/// Attempts the hub takes at once.
const GLOBAL_BURST: f64 = 20.0;

/// Attempts a second after that.
const GLOBAL_PER_SEC: f64 = 4.0;

/// Names (and addresses) tracked at most; past that, those whose bucket has refilled are
/// forgotten.
const MAX_KEYS: usize = 10_000;

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

/// Buckets by key (a name, an address), each starting full.
#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, Tokens>,
    per_sec: f64,
    burst: f64,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(every: Duration, burst: f64) -> Buckets<K> {
        Buckets { map: HashMap::new(), per_sec: 1.0 / every.as_secs_f64(), burst }
    }

    /// How long (ms) until `key` has a token; `None` when it has one now.
    fn wait(&mut self, key: &K, now: Instant) -> Option<u64> {
        let t = self.map.get_mut(key)?;
        t.refill(now, self.per_sec, self.burst);
        (t.left < 1.0).then(|| wait_ms(1.0 - t.left, self.per_sec))
    }

    /// Adds `delta` tokens to `key`'s bucket (within 0 and the burst), making room in the table
    /// first when it is full.
    fn add(&mut self, key: &K, delta: f64, now: Instant) {
        let (per_sec, burst) = (self.per_sec, self.burst);
        if self.map.len() >= MAX_KEYS && !self.map.contains_key(key) {
            self.map.retain(|_, t| {
                t.refill(now, per_sec, burst);
                t.left < burst
            });
        }
        let t = self.map.entry(key.clone()).or_insert(Tokens { left: burst, at: now });
        t.refill(now, per_sec, burst);
        t.left = (t.left + delta).clamp(0.0, burst);
    }
}

/// Buckets of client addresses, one table per prefix length in the order of
/// [`AddrKey::nested`], each wider one holding and refilling its multiple of the first's.
#[derive(Debug)]
struct AddressBuckets(Vec<Buckets<AddrKey>>);

impl AddressBuckets {
    fn new(every: Duration, burst: f64) -> AddressBuckets {
        let times = std::iter::once(1).chain(WIDER.iter().map(|(_, times)| *times));
        AddressBuckets(times.map(|m| Buckets::new(every / m, burst * f64::from(m))).collect())
    }

    /// How long (ms) until `addr` and each of its wider prefixes has a token; `None` when they
    /// all have one now.
    fn wait(&mut self, addr: AddrKey, now: Instant) -> Option<u64> {
        addr.nested().zip(&mut self.0).filter_map(|((key, _), b)| b.wait(&key, now)).max()
    }

    /// Adds `delta` tokens to `addr`'s bucket and to each of its wider prefixes'.
    fn add(&mut self, addr: AddrKey, delta: f64, now: Instant) {
        for ((key, _), b) in addr.nested().zip(&mut self.0) {
            b.add(&key, delta, now);
        }
    }
}

/// The limiter's state, under one lock.
#[derive(Debug)]
struct State {
    global: Tokens,
    names: Buckets<String>,
    addresses: AddressBuckets,
    /// Failed session-cookie lookups per address.
    lookups: AddressBuckets,
    /// The addresses each name signed in from lately, newest last.
    known: HashMap<String, Vec<AddrKey>>,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct SigninLimiter {
    state: Mutex<State>,
}

impl Default for SigninLimiter {
    fn default() -> Self {
        SigninLimiter {
            state: Mutex::new(State {
                global: Tokens { left: GLOBAL_BURST, at: Instant::now() },
                names: Buckets::new(NAME_REFILL, NAME_BURST),
                addresses: AddressBuckets::new(ADDRESS_REFILL, ADDRESS_BURST),
                lookups: AddressBuckets::new(LOOKUP_REFILL, LOOKUP_BURST),
                known: HashMap::new(),
            }),
        }
    }
}

impl SigninLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May an attempt for `name` from `addr` go ahead now? `Err` says how many milliseconds to
    /// wait. An admitted attempt holds one of the address's tokens until [`Self::succeeded`].
    pub(crate) fn admit(&self, name: &str, addr: AddrKey) -> Result<(), u64> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(wait) = state.names.wait(&name.to_owned(), now) {
            let known = state.known.get(name).is_some_and(|a| a.contains(&addr));
            if !known {
                return Err(wait);
            }
        }
        if let Some(wait) = state.addresses.wait(addr, now) {
            return Err(wait);
        }
        state.global.refill(now, GLOBAL_PER_SEC, GLOBAL_BURST);
        if state.global.left < 1.0 {
            return Err(wait_ms(1.0 - state.global.left, GLOBAL_PER_SEC));
        }
        state.global.left -= 1.0;
        state.addresses.add(addr, -1.0, now);
        Ok(())
    }

    /// An attempt for `name` failed.
    pub(crate) fn failed(&self, name: &str) {
        self.lock().names.add(&name.to_owned(), -1.0, Instant::now());
    }

    /// An attempt for `name` from `addr` succeeded: the name's failures are forgotten and the
    /// address gets its token back.
    pub(crate) fn succeeded(&self, name: &str, addr: AddrKey) {
        let mut state = self.lock();
        state.names.map.remove(name);
        state.addresses.add(addr, 1.0, Instant::now());
        if state.known.len() >= MAX_KEYS && !state.known.contains_key(name) {
            state.known.clear();
        }
        let known = state.known.entry(name.to_owned()).or_default();
        known.retain(|a| *a != addr);
        if known.len() >= KNOWN_ADDRESSES {
            known.remove(0);
        }
        known.push(addr);
    }
}

impl SigninLimiter {
    /// May a request with a session cookie from `addr` be looked up in the store now? `Err`
    /// says how many milliseconds to wait: the address has sent [`LOOKUP_BURST`] cookies that
    /// named no session lately. Requests whose cookie is good never count.
    pub(crate) fn admit_lookup(&self, addr: AddrKey) -> Result<(), u64> {
        self.lock().lookups.wait(addr, Instant::now()).map_or(Ok(()), Err)
    }

    /// A request from `addr` had a cookie that named no session.
    pub(crate) fn lookup_failed(&self, addr: AddrKey) {
        self.lock().lookups.add(addr, -1.0, Instant::now());
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
        let here = addr(1);
        for _ in 0..5 {
            assert!(l.admit("ada", here).is_ok());
            l.failed("ada");
        }
        let wait = l.admit("ada", here).unwrap_err();
        assert!(wait > 50_000 && wait <= 60_000, "{wait}");
        assert!(l.admit("bob", here).is_ok(), "another name is not held up");
        tokio::time::advance(NAME_REFILL).await;
        assert!(l.admit("ada", here).is_ok());
        l.succeeded("ada", here);
        assert!(l.admit("ada", here).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_names_is_bounded_in_all() {
        let l = SigninLimiter::default();
        let admitted = (0..100).filter(|i| l.admit(&format!("n{i}"), addr(i % 50)).is_ok()).count();
        assert_eq!(admitted, 20);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!((0..100).filter(|i| l.admit(&format!("m{i}"), addr(i % 50)).is_ok()).count(), 4);
    }

    /// One address trying name after name gets its share and no more, so the hub's sign-ins
    /// stay open to every other address; its own successful sign-ins never count against it.
    #[tokio::test(start_paused = true)]
    async fn one_address_gets_its_share_and_successes_are_free() {
        let l = SigninLimiter::default();
        let (attacker, office) = (addr(1), addr(2));
        let tried = (0..100).filter(|i| l.admit(&format!("n{i}"), attacker).is_ok()).count();
        assert_eq!(tried, 10);
        let wait = l.admit("zed", attacker).unwrap_err();
        assert!(wait > 0 && wait <= 6_000, "{wait}");
        for i in 0..30 {
            let name = format!("operator{i}");
            assert!(l.admit(&name, office).is_ok(), "operator {i} of the office");
            l.succeeded(&name, office);
            tokio::time::advance(Duration::from_millis(300)).await;
        }
        // Nine seconds later the attacker has one and a half attempts back.
        assert!(l.admit("zed", attacker).is_ok(), "one more after the refill");
        assert!(l.admit("zed2", attacker).is_err());
    }

    /// Failures for a name from elsewhere do not keep it out of an address it signed in from.
    #[tokio::test(start_paused = true)]
    async fn a_guesser_elsewhere_cannot_lock_an_operator_out_of_their_office() {
        let l = SigninLimiter::default();
        let (office, guesser, hotel) = (addr(1), addr(2), addr(3));
        assert!(l.admit("ada", office).is_ok());
        l.succeeded("ada", office);
        for _ in 0..5 {
            assert!(l.admit("ada", guesser).is_ok());
            l.failed("ada");
        }
        assert!(l.admit("ada", guesser).is_err(), "the guesser waits");
        assert!(l.admit("ada", hotel).is_err(), "so does an address the name never signed in from");
        assert!(l.admit("ada", office).is_ok(), "the office does not");
        l.succeeded("ada", office);
    }

    /// A holder of a /48 gets sixteen times one address's attempts in all, however many /64s it
    /// spreads over; a /64 in another /48 is not held up by it.
    #[tokio::test(start_paused = true)]
    async fn a_slash_48_gets_sixteen_times_one_address_and_no_more() {
        let l = SigninLimiter::default();
        let v6 = |s: String| AddrKey::of(s.parse::<std::net::IpAddr>().expect("an address"));
        // Spread thinly enough that no /64 or /56 runs out first, at the global rate (4 a
        // second), which is more than the /48's (16 per six seconds): over 250 s the global
        // bucket allows 1,020 attempts, the /48 its 160 at once and 667 more.
        let mut tried = 0;
        for i in 0..1000u32 {
            let addr = v6(format!("2001:db8:7:{:x}::1", (i % 64) * 256 + i / 64));
            if l.admit(&format!("n{i}"), addr).is_ok() {
                tried += 1;
            }
            tokio::time::advance(Duration::from_millis(250)).await;
        }
        assert!((800..=830).contains(&tried), "{tried} of 1000 attempts from one /48");
        let other = v6("2001:db8:8::1".into());
        assert!(l.admit("zed", other).is_ok(), "another /48 is not");
    }

    fn addr(n: u8) -> AddrKey {
        AddrKey::of(std::net::IpAddr::from([192, 0, 2, n]))
    }
}
