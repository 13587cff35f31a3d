//! Turns at the work a stored visitor message brings after its acknowledgement — its inbox
//! record, the bot's answer stored and recorded —
//! taken in turn **by client address**, so that a burst of accepted messages from one address
//! (or from a few) waits behind its own rather than in front of everyone's.
//!
//! Each message is cheap, but a burst of them is not: 500 messages from fresh sessions, each
//! within its address's budget, used to start 500 follow-ups at once, each with three writes
//! and a read; on a hub with one CPU every honest message then waited behind all of them. Now
//! at most [`Turns::new`]'s `permits` follow-ups run at once; the others wait in one queue per
//! address, and a turn that ends passes to the next address in round-robin order, so a
//! visitor from an address with nothing queued waits for at most one turn of each address that
//! has (and usually for none: with no queue, a turn is taken at once). The reply engine's own
//! call, and the conversation read for it once it holds a call slot, are made outside a turn
//! (they wait on the network and the store, and have their own bounds: the reply gate and each
//! address's share of it).
//!
//! Nothing is refused here: the address's request budget has already bounded how much it can
//! queue, and the messages are stored and acknowledged; only their follow-ups wait.
//!
//! The hub keeps a second set of turns, for history reads from the store (`Hub::attach`): as
//! many at once as the store runs, the others waiting in line by client address, holding no
//! share of `--max-replay-in-flight` until their turn comes. What bounds how many one address
//! queues there is its connections and long-polls (`--max-connections-per-address`,
//! `--max-polls-per-address`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::address::AddrKey;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Turns {
    permits: usize,
    state: Mutex<Queues>,
}

#[derive(Debug, Default)]
struct Queues {
    /// Turns being taken now.
    busy: usize,
    /// Waiters of each address with any, oldest first.
    waiting: HashMap<AddrKey, VecDeque<oneshot::Sender<()>>>,
    /// Addresses with waiters, in the order their next turn comes.
    order: VecDeque<AddrKey>,
    /// Waiters in all (for `/metrics`).
    queued: usize,
}

impl Turns {
    /// At most `permits` turns at once (at least one).
    pub(crate) fn new(permits: usize) -> Arc<Turns> {
        Arc::new(Turns { permits: permits.max(1), state: Mutex::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follow-ups waiting for a turn now.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().queued
    }

    /// Waits for a turn of `addr` (see the module docs); the turn lasts while the value lives.
    pub(crate) async fn take(self: &Arc<Self>, addr: AddrKey) -> HeldTurn {
        let rx = {
            let mut guard = self.lock();
            let q = &mut *guard;
            if q.busy < self.permits && q.queued == 0 {
                q.busy += 1;
                return HeldTurn { turns: self.clone() };
            }
            let (tx, rx) = oneshot::channel();
            let queue = q.waiting.entry(addr).or_default();
            if queue.is_empty() {
                q.order.push_back(addr);
            }
            queue.push_back(tx);
            q.queued += 1;
            rx
        };
        // The turn is handed over by the one ending (see `HeldTurn::drop`), or, if this hub is
        // going away, the value is dropped: either way a turn is held from here on.
        let _ = rx.await;
        HeldTurn { turns: self.clone() }
    }

    /// Hands a turn that ended to the next address's oldest waiter, or frees it.
    fn pass(&self) {
        let mut guard = self.lock();
        let q = &mut *guard;
        while let Some(addr) = q.order.pop_front() {
            let Some(queue) = q.waiting.get_mut(&addr) else { continue };
            let next = queue.pop_front();
            let more = !queue.is_empty();
            if more {
                q.order.push_back(addr);
            } else {
                q.waiting.remove(&addr);
            }
            if let Some(tx) = next {
                q.queued -= 1;
                // A waiter that gave up (its task was dropped) cannot take the turn: try the
                // next one.
                if tx.send(()).is_ok() {
                    return;
                }
            }
        }
        q.busy = q.busy.saturating_sub(1);
    }
}

/// A turn (see the module docs); the next waiter gets it when this is dropped.
#[derive(Debug)]
#[must_use = "the turn ends when this is dropped"]
pub(crate) struct HeldTurn {
    turns: Arc<Turns>,
}

impl Drop for HeldTurn {
    fn drop(&mut self) {
        self.turns.pass();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(n: u8) -> AddrKey {
        AddrKey::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)))
    }

    #[tokio::test]
    async fn a_quiet_address_goes_before_a_busy_ones_queue() {
        let turns = Turns::new(1);
        let held = turns.take(addr(1)).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Ten follow-ups of a busy address queue up, then one of a quiet address.
        for i in 0..10 {
            let (turns, tx) = (turns.clone(), tx.clone());
            tokio::spawn(async move {
                let _turn = turns.take(addr(1)).await;
                let _ = tx.send(format!("busy {i}"));
            });
            tokio::task::yield_now().await;
        }
        let (t, tx2) = (turns.clone(), tx.clone());
        tokio::spawn(async move {
            let _turn = t.take(addr(2)).await;
            let _ = tx2.send("quiet".to_string());
        });
        tokio::task::yield_now().await;
        assert_eq!(turns.waiting(), 11);
        drop(held);
        let mut order = Vec::new();
        for _ in 0..11 {
            order.push(rx.recv().await.expect("a turn"));
        }
        assert_eq!(order[..2], ["busy 0".to_string(), "quiet".to_string()], "{order:?}");
        assert_eq!(turns.waiting(), 0);
        assert_eq!(turns.lock().busy, 0, "every turn was given back");
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_passes_its_turn_on() {
        let turns = Turns::new(1);
        let held = turns.take(addr(1)).await;
        let gave_up = tokio::spawn({
            let t = turns.clone();
            async move { t.take(addr(2)).await }
        });
        tokio::task::yield_now().await;
        gave_up.abort();
        let next = tokio::spawn({
            let t = turns.clone();
            async move { drop(t.take(addr(3)).await) }
        });
        tokio::task::yield_now().await;
        drop(held);
        next.await.expect("the live waiter got the turn");
        assert_eq!(turns.lock().busy, 0);
    }
}
