//! Sign-in attempts are rate-limited: per operator name (a guessed password costs the guesser
//! time, not the operator their account: nothing locks), per client address (one address may
//! not take the whole hub's share, or it could keep every operator from signing in), and in
//! all (each attempt is an argon2 verification, tens of milliseconds of CPU, so a flood must
//! not take the hub's cores).
//!
//! A name's bucket holds [`NAME_BURST`] failed attempts and refills one every
//! [`NAME_REFILL`]; a success forgets the name's failures. An address's bucket holds
//! [`ADDRESS_BURST`] attempts and refills one every [`ADDRESS_REFILL`]: every attempt takes
//! one when it starts (so attempts made at once are counted too) and a success gives it back,
//! so an office of operators signing in behind one address is never held up by its own
//! sign-ins. The hub-wide bucket allows [`GLOBAL_BURST`] attempts at once and
//! [`GLOBAL_PER_SEC`] a second after that.
//!
//! **Known addresses.** Anyone can fail for a name, and anyone anywhere can empty the hub-wide
//! bucket, so an attempt for a name from an address it has signed in from lately (the last
//! [`KNOWN_ADDRESSES`] of them, in memory) is in a lane of its own ([`Lane::Known`]): no
//! name bucket, only its own address's bucket (not the wider IPv6 networks around it), and a
//! hub-wide bucket of its own ([`KNOWN_BURST`] at once, [`KNOWN_PER_SEC`] a second). Someone
//! guessing from elsewhere cannot keep an operator out of their office, however many addresses
//! they guess from; only the addresses operators sign in from can use that lane at all.
//!
//! **Networks.** An IPv6 client's address bucket is kept for its /64 and again for the /56 and
//! /48 that enclose it. Sign-in attempts are a share of a hub-wide budget, so (as for the
//! hub's held counts, `hub::limits`) a wider network gets no more of it than one address does:
//! a holder of a /48 tries as many passwords as one line, however many /64s it spreads over,
//! where it used to get sixteen times as many — 160 at once, more than the whole hub's burst.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::checks::Lane;
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

/// Attempts from known addresses (see the module docs) the hub takes at once, besides the
/// others.
pub(crate) const KNOWN_BURST: f64 = 20.0;

/// Attempts from known addresses a second after that.
pub(crate) const KNOWN_PER_SEC: f64 = 4.0;

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
/// [`AddrKey::nested`].
#[derive(Debug)]
struct AddressBuckets(Vec<Buckets<AddrKey>>);

impl AddressBuckets {
    /// For a rate of the address's own: each wider prefix holds and refills its multiple of
    /// the first's ([`WIDER`]).
    fn rates(every: Duration, burst: f64) -> AddressBuckets {
        let times = std::iter::once(1).chain(WIDER.iter().map(|(_, times)| *times));
        AddressBuckets(times.map(|m| Buckets::new(every / m, burst * f64::from(m))).collect())
    }

    /// For a share of a hub-wide budget: each wider prefix holds and refills what the first
    /// does and no more.
    fn shares(every: Duration, burst: f64) -> AddressBuckets {
        AddressBuckets((0..=WIDER.len()).map(|_| Buckets::new(every, burst)).collect())
    }

    /// How long (ms) until `addr` itself (not its wider prefixes) has a token.
    fn wait_own(&mut self, addr: AddrKey, now: Instant) -> Option<u64> {
        self.0.first_mut().and_then(|b| b.wait(&addr, now))
    }

    /// Adds `delta` tokens to `addr`'s own bucket only.
    fn add_own(&mut self, addr: AddrKey, delta: f64, now: Instant) {
        if let Some(b) = self.0.first_mut() {
            b.add(&addr, delta, now);
        }
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
    /// The known addresses' lane.
    known_global: Tokens,
    names: Buckets<String>,
    addresses: AddressBuckets,
    /// Failed session-cookie lookups per address.
    lookups: AddressBuckets,
    /// The addresses each name signed in from lately, newest last.
    known: HashMap<String, Vec<AddrKey>>,
}

impl State {
    /// Gives `addr` back the token an attempt admitted in `lane` took.
    fn give_back(&mut self, addr: AddrKey, lane: Lane, now: Instant) {
        match lane {
            Lane::Known => self.addresses.add_own(addr, 1.0, now),
            Lane::Other => self.addresses.add(addr, 1.0, now),
        }
    }
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
                known_global: Tokens { left: KNOWN_BURST, at: Instant::now() },
                names: Buckets::new(NAME_REFILL, NAME_BURST),
                addresses: AddressBuckets::shares(ADDRESS_REFILL, ADDRESS_BURST),
                lookups: AddressBuckets::rates(LOOKUP_REFILL, LOOKUP_BURST),
                known: HashMap::new(),
            }),
        }
    }
}

impl SigninLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May an attempt for `name` from `addr` go ahead now? `Ok` says in which lane (see the
    /// module docs), `Err` how many milliseconds to wait. An admitted attempt holds one of the
    /// address's tokens until [`Self::succeeded`].
    pub(crate) fn admit(&self, name: &str, addr: AddrKey) -> Result<Lane, u64> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.known.get(name).is_some_and(|a| a.contains(&addr)) {
            if let Some(wait) = state.addresses.wait_own(addr, now) {
                return Err(wait);
            }
            take(&mut state.known_global, now, KNOWN_PER_SEC, KNOWN_BURST)?;
            state.addresses.add_own(addr, -1.0, now);
            return Ok(Lane::Known);
        }
        if let Some(wait) = state.names.wait(&name.to_owned(), now) {
            return Err(wait);
        }
        if let Some(wait) = state.addresses.wait(addr, now) {
            return Err(wait);
        }
        take(&mut state.global, now, GLOBAL_PER_SEC, GLOBAL_BURST)?;
        state.addresses.add(addr, -1.0, now);
        Ok(Lane::Other)
    }

    /// An attempt from `addr`, admitted in `lane`, was not made after all (the hub was too busy
    /// to check it): the address gets its token back.
    pub(crate) fn gave_up(&self, addr: AddrKey, lane: Lane) {
        self.lock().give_back(addr, lane, Instant::now());
    }

    /// An attempt for `name` failed.
    pub(crate) fn failed(&self, name: &str) {
        self.lock().names.add(&name.to_owned(), -1.0, Instant::now());
    }

    /// An attempt for `name` from `addr`, admitted in `lane`, succeeded: the name's failures
    /// are forgotten, the address gets its token back and is known for the name from now on.
    pub(crate) fn succeeded(&self, name: &str, addr: AddrKey, lane: Lane) {
        let mut state = self.lock();
        let now = Instant::now();
        state.names.map.remove(name);
        state.give_back(addr, lane, now);
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

/// Takes a token from a hub-wide bucket, or says how many milliseconds until it has one.
fn take(tokens: &mut Tokens, now: Instant, per_sec: f64, burst: f64) -> Result<(), u64> {
    tokens.refill(now, per_sec, burst);
    if tokens.left < 1.0 {
        return Err(wait_ms(1.0 - tokens.left, per_sec));
    }
    tokens.left -= 1.0;
    Ok(())
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
        assert_eq!(l.admit("ada", here), Ok(Lane::Other));
        l.succeeded("ada", here, Lane::Other);
        assert_eq!(l.admit("ada", here), Ok(Lane::Known), "an address it signed in from");
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
            assert_eq!(l.admit(&name, office), Ok(Lane::Other), "operator {i} of the office");
            l.succeeded(&name, office, Lane::Other);
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
        l.succeeded("ada", office, Lane::Other);
        for _ in 0..5 {
            assert!(l.admit("ada", guesser).is_ok());
            l.failed("ada");
        }
        assert!(l.admit("ada", guesser).is_err(), "the guesser waits");
        assert!(l.admit("ada", hotel).is_err(), "so does an address the name never signed in from");
        assert_eq!(l.admit("ada", office), Ok(Lane::Known), "the office does not");
        l.succeeded("ada", office, Lane::Known);
    }

    /// Strangers anywhere emptying the hub-wide bucket do not keep an operator out of an
    /// address they signed in from: those attempts have a lane of their own. Someone at that
    /// address still has only its bucket for guesses.
    #[tokio::test(start_paused = true)]
    async fn strangers_emptying_the_hub_budget_do_not_hold_up_an_operators_known_address() {
        let l = SigninLimiter::default();
        let office = addr(1);
        assert_eq!(l.admit("ada", office), Ok(Lane::Other));
        l.succeeded("ada", office, Lane::Other);
        let strangers =
            (0..200).filter(|i| l.admit(&format!("n{i}"), addr(10 + (i % 100) as u8)).is_ok()).count();
        assert_eq!(strangers, 19, "the rest of the hub-wide bucket, emptied");
        assert!(l.admit("bob", addr(9)).is_err(), "a stranger waits");
        for i in 0..10 {
            assert_eq!(l.admit("ada", office), Ok(Lane::Known), "attempt {i} from the office");
            l.failed("ada");
        }
        assert!(l.admit("ada", office).is_err(), "the office's own address bucket is spent");
        assert!(l.admit("ada", addr(9)).is_err(), "anywhere else the name's bucket is spent too");
    }

    /// A holder of a /48 gets what one address gets in all, however many /64s it spreads
    /// over: sign-in attempts are a share of a hub-wide budget. A /64 in another /48 is not held
    /// up by it.
    #[tokio::test(start_paused = true)]
    async fn a_slash_48_gets_what_one_address_gets_and_no_more() {
        let l = SigninLimiter::default();
        let v6 = |s: String| AddrKey::of(s.parse::<std::net::IpAddr>().expect("an address"));
        // Spread over a new /64 (and /56) for each attempt, at the global rate (4 a second):
        // over 250 s one address gets its 10 at once and 41.7 more.
        let mut tried = 0;
        for i in 0..1000u32 {
            let addr = v6(format!("2001:db8:7:{:x}::1", (i % 64) * 256 + i / 64));
            if l.admit(&format!("n{i}"), addr).is_ok() {
                tried += 1;
            }
            tokio::time::advance(Duration::from_millis(250)).await;
        }
        assert!((50..=53).contains(&tried), "{tried} of 1000 attempts from one /48");
        let other = v6("2001:db8:8::1".into());
        assert!(l.admit("zed", other).is_ok(), "another /48 is not");
    }

    fn addr(n: u8) -> AddrKey {
        AddrKey::of(std::net::IpAddr::from([192, 0, 2, n]))
    }
}
