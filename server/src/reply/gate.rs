//! How many reply-engine calls run at once, hub-wide: at most `--reply-concurrency` in flight,
//! at most `--reply-queue` waiting for a free slot (first come, first served), and past that a
//! refusal at once, so a flood of visitor messages cannot open a thousand webhook requests or
//! LLM streams, nor pile up waiters without end.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

/// The limit on calls in flight and on calls waiting.
#[derive(Debug)]
pub struct CallGate {
    slots: Semaphore,
    /// Slots in all (`--reply-concurrency`).
    limit: usize,
    /// Callers waiting for a slot now.
    waiting: AtomicUsize,
    /// Most callers that may wait.
    queue: usize,
}

/// A slot to call the engine in; the slot is free again when this is dropped.
#[derive(Debug)]
#[must_use = "the call's slot is released when this is dropped"]
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
}

/// Why [`CallGate::enter`] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Takes one waiter off the count when dropped, also when the wait is cancelled (the reply's
/// deadline passed while it was queued).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CallGate {
    /// At most `concurrency` calls at once (at least 1) and `queue` waiting (0: none wait).
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let limit = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        CallGate { slots: Semaphore::new(limit), limit, waiting: AtomicUsize::new(0), queue }
    }

    /// A slot: at once when one is free, after the callers queued before this one when the
    /// queue has room, else [`Full`] at once.
    pub async fn enter(&self) -> Result<Slot<'_>, Full> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(Slot { _permit: permit });
        }
        // Count this caller in before checking, so two racing callers cannot both take the
        // last place in the queue.
        let before = self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting);
        if before >= self.queue {
            return Err(Full);
        }
        // Tokio's semaphore is fair: waiters get slots in the order they asked.
        let permit = self.slots.acquire().await.map_err(|_| Full)?;
        drop(waiting);
        Ok(Slot { _permit: permit })
    }

    /// Callers waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Calls holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;

    #[tokio::test]
    async fn holds_calls_to_the_limit_and_queues_then_refuses() {
        let gate = CallGate::new(2, 1);
        let a = gate.enter().await.expect("first slot");
        let _b = gate.enter().await.expect("second slot");
        assert_eq!(gate.in_flight(), 2);
        // The third waits in the queue; the fourth finds the queue full.
        let mut third = Box::pin(gate.enter());
        assert!(third.as_mut().now_or_never().is_none());
        assert_eq!(gate.waiting(), 1);
        assert_eq!(gate.enter().await.map(|_| ()), Err(Full));
        assert_eq!(gate.waiting(), 1, "a refused caller leaves no trace");
        drop(a);
        let _c = third.await.expect("the queued caller gets the freed slot");
        assert_eq!(gate.waiting(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_wait_frees_its_place() {
        let gate = CallGate::new(1, 1);
        let _a = gate.enter().await.expect("slot");
        let mut waiter = Box::pin(gate.enter());
        assert!(waiter.as_mut().now_or_never().is_none());
        assert_eq!(gate.waiting(), 1);
        drop(waiter);
        assert_eq!(gate.waiting(), 0);
        let mut next = Box::pin(gate.enter());
        assert!(next.as_mut().now_or_never().is_none(), "the place in the queue is free again");
    }

    #[tokio::test]
    async fn no_queue_refuses_at_once() {
        let gate = CallGate::new(1, 0);
        let _a = gate.enter().await.expect("slot");
        assert_eq!(gate.enter().await.map(|_| ()), Err(Full));
    }
}
