//! `Outbox`: a connection's bounded send queue, as the hub sees it.
//!
//! The fan-out never waits on a connection: it `try_send`s shared, already-encoded frames, and
//! a full queue marks the connection as a slow consumer, which its writer closes with 4001. A
//! connection's own answers (ack, pong, error, history) wait for room instead, which slows only
//! the client that asked.
//!
//! The queue is a `VecDeque` under a short mutex rather than a Tokio channel: a bounded
//! `mpsc` channel allocates ~1.5 KiB per connection up front (its shared state and a first
//! block of 32 slots), which was about a sixth of an idle connection's memory. An empty
//! queue here allocates nothing, and gives its memory back once a burst has drained.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

/// An encoded JSON text frame; cloning shares the bytes.
pub type Frame = Utf8Bytes;

/// What a connection's writer is asked to do.
#[derive(Debug)]
pub enum Outgoing {
    /// Send a text frame.
    Text(Frame),
    /// Send a close frame with this code and reason, then end.
    Close(u16, &'static str),
}

/// Out-of-band stop signal: set by the fan-out when the queue is full (the queue itself cannot
/// carry it then).
#[derive(Debug, Default)]
pub struct Control {
    code: AtomicU16,
    notify: Notify,
}

impl Control {
    /// Waits until the connection is told to close; returns the close code.
    pub async fn closed(&self) -> u16 {
        loop {
            let notified = self.notify.notified();
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            notified.await;
        }
    }

    /// Asks the connection to close with `code`; `true` for the first request.
    pub fn close(&self, code: u16) -> bool {
        let first = self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok();
        if first {
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
        first
    }
}

/// Queued frames above which a drained queue frees its buffer instead of keeping it.
const KEEP_CAPACITY: usize = 16;

/// The state both ends of a queue share.
#[derive(Debug)]
struct Queue {
    state: Mutex<QueueState>,
    capacity: usize,
    /// Wakes the writer: a frame arrived or the last sender left.
    readable: Notify,
    /// Wakes senders waiting for room: the queue stopped being full or the writer left.
    writable: Notify,
}

#[derive(Debug)]
struct QueueState {
    frames: VecDeque<Outgoing>,
    /// Live [`Outbox`] clones; the writer's `recv` ends when none is left.
    senders: usize,
    receiver_gone: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every critical section leaves the state consistent; a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` if there is room; `Err(item)` when full, `Ok(false)` when the writer is gone.
    fn push(&self, item: Outgoing) -> Result<bool, Outgoing> {
        let mut s = self.lock();
        if s.receiver_gone {
            return Ok(false);
        }
        if s.frames.len() >= self.capacity {
            return Err(item);
        }
        s.frames.push_back(item);
        drop(s);
        self.readable.notify_one();
        Ok(true)
    }

    /// Queues `item`, waiting for room; `false` when the writer is gone.
    async fn push_waiting(&self, mut item: Outgoing) -> bool {
        loop {
            let room = self.writable.notified();
            tokio::pin!(room);
            // Registered before looking, so a pop between the look and the wait is not missed.
            room.as_mut().enable();
            match self.push(item) {
                Ok(queued) => return queued,
                Err(back) => item = back,
            }
            room.await;
        }
    }

    fn pop(&self) -> Option<Outgoing> {
        let mut s = self.lock();
        let was_full = s.frames.len() >= self.capacity;
        let item = s.frames.pop_front();
        if s.frames.is_empty() && s.frames.capacity() > KEEP_CAPACITY {
            s.frames = VecDeque::new();
        }
        drop(s);
        if was_full && item.is_some() {
            self.writable.notify_waiters();
        }
        item
    }
}

/// The sending side of one connection's queue. Cheap to clone.
#[derive(Debug)]
pub struct Outbox {
    /// Hub-wide connection number (logs, subscriber tables).
    pub id: u64,
    queue: Arc<Queue>,
    control: Arc<Control>,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        Outbox { id: self.id, queue: self.queue.clone(), control: self.control.clone() }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let last = {
            let mut s = self.queue.lock();
            s.senders -= 1;
            s.senders == 0
        };
        if last {
            self.queue.readable.notify_one();
        }
    }
}

/// The writer's side of a connection's queue.
#[derive(Debug)]
pub struct Receiver {
    queue: Arc<Queue>,
}

/// [`Receiver::try_recv`] found nothing queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

impl Receiver {
    /// The next queued item; `None` once the queue is empty and every [`Outbox`] is gone.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            if let Some(item) = self.queue.pop() {
                return Some(item);
            }
            if self.queue.lock().senders == 0 {
                // A sender may have queued something just before leaving.
                return self.queue.pop();
            }
            // `notify_one` keeps a permit when nobody waits, so a push between the look
            // above and this wait still wakes it.
            self.queue.readable.notified().await;
        }
    }

    /// The next queued item without waiting.
    pub fn try_recv(&mut self) -> Result<Outgoing, Empty> {
        self.queue.pop().ok_or(Empty)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.lock().frames.is_empty()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        {
            let mut s = self.queue.lock();
            s.receiver_gone = true;
            s.frames = VecDeque::new();
        }
        self.queue.writable.notify_waiters();
    }
}

/// Result of [`Outbox::offer`].
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// Queued.
    Queued,
    /// The queue was full: the connection has been told to close; `true` the first time.
    Full(bool),
    /// The connection is gone.
    Gone,
}

impl Outbox {
    /// A new queue of `capacity` frames: the outbox, the writer's receiver and the control.
    pub fn new(id: u64, capacity: usize) -> (Outbox, Receiver, Arc<Control>) {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState { frames: VecDeque::new(), senders: 1, receiver_gone: false }),
            capacity: capacity.max(1),
            readable: Notify::new(),
            writable: Notify::new(),
        });
        let control = Arc::new(Control::default());
        (Outbox { id, queue: queue.clone(), control: control.clone() }, Receiver { queue }, control)
    }

    /// Queues a frame without waiting (fan-out).
    pub fn offer(&self, frame: Frame) -> Offered {
        match self.queue.push(Outgoing::Text(frame)) {
            Ok(true) => Offered::Queued,
            Ok(false) => Offered::Gone,
            Err(_) => Offered::Full(self.control.close(natter_protocol::close::SLOW_CONSUMER)),
        }
    }

    /// Queues a frame, waiting for room (answers to the connection's own requests). `false`
    /// when the connection is gone.
    pub async fn send(&self, frame: Frame) -> bool {
        self.queue.push_waiting(Outgoing::Text(frame)).await
    }

    /// Queues a close after everything already queued.
    pub async fn close_after_queue(&self, code: u16, reason: &'static str) {
        let _ = self.queue.push_waiting(Outgoing::Close(code, reason)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Frame {
        Frame::from(s.to_string())
    }

    #[tokio::test]
    async fn bounded_in_order_and_ends_when_senders_leave() {
        let (outbox, mut rx, control) = Outbox::new(1, 2);
        assert_eq!(outbox.offer(text("a")), Offered::Queued);
        assert_eq!(outbox.offer(text("b")), Offered::Queued);
        assert_eq!(outbox.offer(text("c")), Offered::Full(true));
        assert_eq!(outbox.offer(text("d")), Offered::Full(false));
        assert_eq!(control.closed().await, natter_protocol::close::SLOW_CONSUMER);
        assert!(matches!(rx.recv().await, Some(Outgoing::Text(t)) if t.as_str() == "a"));
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(t)) if t.as_str() == "b"));
        assert_eq!(rx.try_recv().err(), Some(Empty));
        let second = outbox.clone();
        drop(outbox);
        assert!(second.send(text("e")).await);
        drop(second);
        assert!(matches!(rx.recv().await, Some(Outgoing::Text(t)) if t.as_str() == "e"));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_sender_gets_room_when_the_writer_takes_a_frame() {
        let (outbox, mut rx, _control) = Outbox::new(1, 1);
        assert!(outbox.send(text("a")).await);
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.send(text("b")).await }
        });
        tokio::task::yield_now().await;
        assert!(matches!(rx.recv().await, Some(Outgoing::Text(t)) if t.as_str() == "a"));
        assert!(waiting.await.expect("sender task"));
        assert!(matches!(rx.recv().await, Some(Outgoing::Text(t)) if t.as_str() == "b"));
    }

    #[tokio::test]
    async fn senders_learn_when_the_writer_is_gone() {
        let (outbox, rx, _control) = Outbox::new(1, 1);
        assert!(outbox.send(text("a")).await);
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.send(text("b")).await }
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(!waiting.await.expect("sender task"));
        assert_eq!(outbox.offer(text("c")), Offered::Gone);
    }
}
