//! `Outbox`: a connection's bounded send queue, as the hub sees it.
//!
//! The fan-out never waits on a connection: it `try_send`s shared, already-encoded frames, and
//! a full queue marks the connection as a slow consumer, which its writer closes with 4001. A
//! connection's own answers (ack, pong, error, history) are queued even past the bound: they
//! are made by the same task that drains the queue (see `ws::drive`), so waiting for room
//! would wait forever. They stay bounded all the same, because that task drains the queue
//! before it reads the client's next frame, and each frame makes only a few answers.
//!
//! The queue is bounded in bytes as well as frames (`--send-queue-bytes`), and the bytes queued
//! to all the connections of one client address, and of its wider IPv6 networks, are counted
//! together ([`Tally`], `--address-send-queue-bytes`): a frame that would pass either bound
//! closes its connection as a slow consumer, like a full queue, so peers that never read pin a
//! bounded number of bytes however many rooms they are in. A frame's bytes are shared by every
//! recipient, so counting them in each queue over-counts, the safe way. Own answers are counted
//! too, though never refused (a `history` answer only for the address: see
//! [`Outbox::send_held`]).
//!
//! The queue is a `VecDeque` under a short mutex rather than a Tokio channel: a bounded
//! `mpsc` channel allocates ~1.5 KiB per connection up front (its shared state and a first
//! block of 32 slots), which was about a sixth of an idle connection's memory. An empty
//! queue here allocates nothing, and gives its memory back once a burst has drained.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// An encoded JSON text frame; cloning shares the bytes.
pub(crate) type Frame = tungstenite::Utf8Bytes;

/// What a connection's writer is asked to do.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Send a text frame, then drop what it holds, if anything: a `history` answer's share of
    /// `--max-replay-in-flight`, given back once the writer has handed the frame to the kernel
    /// (see [`Outbox::send_held`]). Boxed, so that it costs a pointer: every queued item, and
    /// every idle connection's future, is as large as the largest variant.
    Text(Frame, Option<Box<super::Slot>>),
    /// Send a close frame with this code and reason, then end.
    Close(u16, &'static str),
    /// Close at once with this code, dropping what is queued: the connection was told to
    /// through its [`Control`] (a full queue). Only [`Receiver::recv`] says this.
    Stop(u16),
}

/// Out-of-band stop signal: set by the fan-out when the queue is full (the queue itself cannot
/// carry it then).
#[derive(Debug, Default)]
pub(crate) struct Control {
    code: AtomicU16,
    notify: Notify,
}

impl Control {
    /// Waits until the connection is told to close; returns the close code.
    pub(crate) async fn closed(&self) -> u16 {
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
    pub(crate) fn close(&self, code: u16) -> bool {
        let first = self.code.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok();
        if first {
            self.notify.notify_waiters();
            self.notify.notify_one();
        }
        first
    }
}

/// Where a connection's queued bytes are counted besides its own queue: the hub's total (the
/// `natter_send_queue_bytes` gauge) and its client address's, with the address's wider IPv6
/// networks' (see [`crate::address::AddrKey::nested`]), each bounded by `share`.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Bytes queued to every connection of the hub.
    pub(crate) total: Option<Arc<AtomicUsize>>,
    /// Bytes queued to the connections of the address and of each wider network, narrowest
    /// first; `None` past the last (or for a connection not counted by address).
    pub(crate) levels: [Option<Arc<AtomicUsize>>; 3],
    /// The most each of `levels` may hold; 0 for no bound.
    pub(crate) share: usize,
}

impl Tally {
    fn levels(&self) -> impl Iterator<Item = &AtomicUsize> {
        self.levels.iter().flatten().map(|a| &**a)
    }

    /// Counts `bytes` everywhere if every level stays within its share (always when `bounded`
    /// is false); `false`, counting nothing, when one would not.
    fn add(&self, bytes: usize, bounded: bool) -> bool {
        let share = if bounded && self.share > 0 { self.share } else { usize::MAX };
        for (i, level) in self.levels().enumerate() {
            let fits = level
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    held.checked_add(bytes).filter(|now| *now <= share)
                })
                .is_ok();
            if !fits {
                for level in self.levels().take(i) {
                    level.fetch_sub(bytes, Ordering::AcqRel);
                }
                return false;
            }
        }
        if let Some(total) = &self.total {
            total.fetch_add(bytes, Ordering::Relaxed);
        }
        true
    }

    fn sub(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        for level in self.levels() {
            level.fetch_sub(bytes, Ordering::AcqRel);
        }
        if let Some(total) = &self.total {
            total.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

/// The state both ends of a queue share.
#[derive(Debug)]
struct Queue {
    state: Mutex<QueueState>,
    capacity: usize,
    /// The most bytes the queue may hold (`--send-queue-bytes`); 0 for no bound.
    max_bytes: usize,
    /// Where its bytes are counted besides.
    tally: Tally,
    /// Wakes the writer: a frame arrived or the last sender left.
    readable: Notify,
}

#[derive(Debug)]
struct QueueState {
    frames: VecDeque<Outgoing>,
    /// Bytes of the text frames in `frames`.
    bytes: usize,
    /// Bytes of those that hold a share of `--max-replay-in-flight` (`history` answers, see
    /// [`Outbox::send_held`]): bounded by that share, they do not count towards
    /// `--send-queue-bytes`, so that a member who joins a busy room with a long history is not
    /// cut by the room's next frame before its writer takes the answer.
    held_bytes: usize,
    /// Live [`Outbox`] clones; the writer's `recv` ends when none is left.
    senders: usize,
    receiver_gone: bool,
    /// Rooms the hub took this connection out of (deleted by the operator), for the
    /// connection to forget (see [`Outbox::take_removed_rooms`]); empty (no allocation) but
    /// for that.
    removed_rooms: Vec<std::sync::Arc<str>>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every critical section leaves the state consistent; a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` if fewer than `room` frames are queued and its bytes fit the queue's and
    /// the address's bounds (`None`: always, past every bound); `Err` says which bound it did
    /// not fit, `Ok(false)` that the writer is gone.
    fn push(&self, item: Outgoing, room: Option<usize>) -> Result<bool, Bound> {
        let mut s = self.lock();
        if s.receiver_gone {
            return Ok(false);
        }
        if room.is_some_and(|room| s.frames.len() >= room) {
            return Err(Bound::Frames);
        }
        let (bytes, held) = match &item {
            Outgoing::Text(frame, held) => (frame.len(), held.is_some()),
            Outgoing::Close(..) | Outgoing::Stop(_) => (0, false),
        };
        let bounded = room.is_some();
        let counted = s.bytes - s.held_bytes;
        // A frame always fits a queue that holds nothing counted, however large.
        if bounded && self.max_bytes > 0 && counted > 0 && counted.saturating_add(bytes) > self.max_bytes {
            return Err(Bound::Bytes);
        }
        if !self.tally.add(bytes, bounded) {
            return Err(Bound::AddressBytes);
        }
        s.bytes += bytes;
        if held {
            s.held_bytes += bytes;
        }
        s.frames.push_back(item);
        drop(s);
        self.readable.notify_one();
        Ok(true)
    }

    fn pop(&self) -> Option<Outgoing> {
        let mut s = self.lock();
        let item = s.frames.pop_front();
        if let Some(Outgoing::Text(frame, held)) = &item {
            s.bytes -= frame.len();
            if held.is_some() {
                s.held_bytes -= frame.len();
            }
            self.tally.sub(frame.len());
        }
        if s.frames.is_empty() && s.frames.capacity() > 0 {
            s.frames = VecDeque::new();
        }
        item
    }
}

/// The sending side of one connection's queue. Cheap to clone.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Hub-wide connection number (logs, subscriber tables).
    pub(crate) id: u64,
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
pub(crate) struct Receiver {
    queue: Arc<Queue>,
    /// Looked at by `recv`, so the writer waits on one thing instead of two (each wait is
    /// ~90 bytes in every idle connection's task).
    control: Arc<Control>,
}

/// [`Receiver::try_recv`] found nothing queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Empty;

impl Receiver {
    /// The next queued item; `None` once the queue is empty and every [`Outbox`] is gone.
    pub(crate) async fn recv(&mut self) -> Option<Outgoing> {
        loop {
            let code = self.control.code.load(Ordering::Acquire);
            if code != 0 {
                return Some(Outgoing::Stop(code));
            }
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
    pub(crate) fn try_recv(&mut self) -> Result<Outgoing, Empty> {
        self.queue.pop().ok_or(Empty)
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.lock().frames.is_empty()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut s = self.queue.lock();
        s.receiver_gone = true;
        s.frames = VecDeque::new();
        self.queue.tally.sub(std::mem::take(&mut s.bytes));
        s.held_bytes = 0;
    }
}

/// Which bound a frame offered to a queue did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// `--send-queue` frames are queued.
    Frames,
    /// The queue's bytes would pass `--send-queue-bytes`.
    Bytes,
    /// The bytes queued to the client address's connections (or its IPv6 network's) would pass
    /// `--address-send-queue-bytes`.
    AddressBytes,
}

/// Result of [`Outbox::offer`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offered {
    /// Queued.
    Queued,
    /// The frame did not fit the bound: the connection has been told to close; `true` the
    /// first time.
    Full(bool, Bound),
    /// Left out: a frame that only says how things stand now (typing), offered to a queue
    /// already half full ([`Outbox::offer_passing`]).
    Skipped,
    /// The connection is gone.
    Gone,
}

impl Outbox {
    /// A new queue of `capacity` frames, not bounded in bytes: the outbox, the writer's
    /// receiver and the control.
    #[cfg(test)]
    pub(crate) fn new(id: u64, capacity: usize) -> (Outbox, Receiver, Arc<Control>) {
        Outbox::bounded(id, capacity, 0, Tally::default())
    }

    /// A new queue of `capacity` frames and at most `max_bytes` bytes (0: no byte bound), its
    /// bytes also counted in `tally`: the outbox, the writer's receiver and the control.
    pub(crate) fn bounded(
        id: u64,
        capacity: usize,
        max_bytes: usize,
        tally: Tally,
    ) -> (Outbox, Receiver, Arc<Control>) {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                bytes: 0,
                held_bytes: 0,
                frames: VecDeque::new(),
                senders: 1,
                receiver_gone: false,
                removed_rooms: Vec::new(),
            }),
            capacity: capacity.max(1),
            max_bytes,
            tally,
            readable: Notify::new(),
        });
        let control = Arc::new(Control::default());
        (
            Outbox { id, queue: queue.clone(), control: control.clone() },
            Receiver { queue, control: control.clone() },
            control,
        )
    }

    /// Queues a frame that only says how things stand now (a typing notice: the next one says
    /// it again) without waiting, when the queue is less than half full, and else leaves it out
    /// rather than closing the connection: a visitor flooding typing notices cannot get an
    /// operator's inbox or a room's members cut as slow consumers. Messages still go through
    /// [`Outbox::offer`], and a reader that cannot keep up with them is still closed.
    pub(crate) fn offer_passing(&self, frame: Frame) -> Offered {
        match self.queue.push(Outgoing::Text(frame, None), Some((self.queue.capacity / 2).max(1))) {
            Ok(true) => Offered::Queued,
            Ok(false) => Offered::Gone,
            Err(_) => Offered::Skipped,
        }
    }

    /// Queues a frame without waiting (fan-out); one that does not fit a bound (see the
    /// module docs) tells the connection to close as a slow consumer.
    pub(crate) fn offer(&self, frame: Frame) -> Offered {
        match self.queue.push(Outgoing::Text(frame, None), Some(self.queue.capacity)) {
            Ok(true) => Offered::Queued,
            Ok(false) => Offered::Gone,
            Err(bound) => {
                let first = self.control.close(natter_protocol::close::SLOW_CONSUMER);
                if first {
                    // Wakes a writer waiting in `recv`, which then says `Stop`.
                    self.queue.readable.notify_one();
                }
                Offered::Full(first, bound)
            }
        }
    }

    /// Queues an answer to the connection's own request, past the bound if need be (see the
    /// module doc). `false` when the connection is gone.
    pub(crate) fn send(&self, frame: Frame) -> bool {
        self.queue.push(Outgoing::Text(frame, None), None).unwrap_or(true)
    }

    /// Like [`Outbox::send`], for a frame that holds something until it is written: `held` is
    /// dropped once the connection's writer has handed the frame to the kernel, or with the
    /// queue when the connection ends first. Its bytes count towards the address's
    /// `--address-send-queue-bytes` but not the queue's `--send-queue-bytes`: what it holds
    /// bounds them already.
    pub(crate) fn send_held(&self, frame: Frame, held: super::Slot) -> bool {
        self.queue.push(Outgoing::Text(frame, Some(Box::new(held))), None).unwrap_or(true)
    }

    /// The connection's stop signal.
    pub(crate) fn control(&self) -> &Arc<Control> {
        &self.control
    }

    /// Tells the connection that the hub took it out of `room` (the room was deleted): its
    /// next frame finds it in [`Outbox::take_removed_rooms`].
    pub(crate) fn remove_room(&self, room: std::sync::Arc<str>) {
        let mut s = self.queue.lock();
        if !s.receiver_gone && !s.removed_rooms.contains(&room) {
            s.removed_rooms.push(room);
        }
    }

    /// The rooms the hub took this connection out of since the last call.
    pub(crate) fn take_removed_rooms(&self) -> Vec<std::sync::Arc<str>> {
        std::mem::take(&mut self.queue.lock().removed_rooms)
    }

    /// Queues a close after everything already queued.
    pub(crate) fn close_after_queue(&self, code: u16, reason: &'static str) {
        let _ = self.queue.push(Outgoing::Close(code, reason), None);
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
        assert_eq!(outbox.offer(text("c")), Offered::Full(true, Bound::Frames));
        assert_eq!(outbox.offer(text("d")), Offered::Full(false, Bound::Frames));
        assert_eq!(control.closed().await, natter_protocol::close::SLOW_CONSUMER);
        // The writer is told to stop before anything queued.
        assert!(matches!(rx.recv().await, Some(Outgoing::Stop(natter_protocol::close::SLOW_CONSUMER))));
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(t, _)) if t.as_str() == "a"));
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(t, _)) if t.as_str() == "b"));
        assert_eq!(rx.try_recv().err(), Some(Empty));
        let second = outbox.clone();
        drop(outbox);
        assert!(second.send(text("e")));
        drop(second);
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(t, _)) if t.as_str() == "e"));

        // A queue that was never told to stop ends when its last sender leaves.
        let (outbox, mut rx, _control) = Outbox::new(2, 2);
        let second = outbox.clone();
        drop(outbox);
        assert!(second.send(text("f")));
        drop(second);
        assert!(matches!(rx.recv().await, Some(Outgoing::Text(t, _)) if t.as_str() == "f"));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn typing_is_left_out_of_a_half_full_queue_instead_of_closing_it() {
        let (outbox, mut rx, control) = Outbox::new(1, 4);
        assert_eq!(outbox.offer_passing(text("t1")), Offered::Queued);
        assert_eq!(outbox.offer(text("m1")), Offered::Queued);
        assert_eq!(outbox.offer_passing(text("t2")), Offered::Skipped);
        assert_eq!(outbox.offer(text("m2")), Offered::Queued);
        assert_eq!(outbox.offer(text("m3")), Offered::Queued);
        assert_eq!(outbox.offer_passing(text("t3")), Offered::Skipped);
        let closed = tokio::time::timeout(std::time::Duration::from_millis(10), control.closed()).await;
        assert!(closed.is_err(), "skipped, not closed");
        let mut got = Vec::new();
        while let Ok(Outgoing::Text(t, _)) = rx.try_recv() {
            got.push(t.as_str().to_owned());
        }
        assert_eq!(got, ["t1", "m1", "m2", "m3"]);
    }

    #[tokio::test]
    async fn own_answers_are_queued_past_the_bound_in_order() {
        let (outbox, mut rx, control) = Outbox::new(1, 1);
        assert_eq!(outbox.offer(text("a")), Offered::Queued);
        assert!(outbox.send(text("b")));
        outbox.close_after_queue(natter_protocol::close::TOO_BIG, "too big");
        // The fan-out still finds the queue full.
        assert_eq!(outbox.offer(text("c")), Offered::Full(true, Bound::Frames));
        assert_eq!(control.closed().await, natter_protocol::close::SLOW_CONSUMER);
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(t, _)) if t.as_str() == "a"));
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(t, _)) if t.as_str() == "b"));
        assert!(
            matches!(rx.try_recv(), Ok(Outgoing::Close(code, _)) if code == natter_protocol::close::TOO_BIG)
        );
        assert_eq!(rx.try_recv().err(), Some(Empty));
    }

    #[tokio::test]
    async fn bytes_are_bounded_per_queue_and_per_address_and_given_back() {
        let address = Arc::new(AtomicUsize::new(0));
        let network = Arc::new(AtomicUsize::new(0));
        let total = Arc::new(AtomicUsize::new(0));
        let tally = || Tally {
            total: Some(total.clone()),
            levels: [Some(address.clone()), Some(network.clone()), None],
            share: 10,
        };
        // One queue: at most 6 bytes, but a frame always fits an empty queue.
        let (a, a_rx, a_control) = Outbox::bounded(1, 100, 6, tally());
        assert_eq!(a.offer(text("1234567")), Offered::Queued, "larger than the bound, into an empty queue");
        assert_eq!(a.offer(text("1")), Offered::Full(true, Bound::Bytes));
        assert_eq!(a_control.closed().await, natter_protocol::close::SLOW_CONSUMER);
        assert_eq!((address.load(Ordering::Relaxed), total.load(Ordering::Relaxed)), (7, 7));
        // Another connection of the address: 3 more bytes fit the share of 10, 4 do not.
        let (b, mut b_rx, _b_control) = Outbox::bounded(2, 100, 6, tally());
        assert_eq!(b.offer(text("1234")), Offered::Full(true, Bound::AddressBytes));
        assert_eq!(network.load(Ordering::Relaxed), 7, "a refused frame counts nowhere");
        assert_eq!(b.offer_passing(text("123")), Offered::Queued);
        // Own answers are counted, past every bound.
        assert!(b.send(text("12345")));
        assert_eq!((address.load(Ordering::Relaxed), network.load(Ordering::Relaxed)), (15, 15));
        assert_eq!(total.load(Ordering::Relaxed), 15);
        // What is written is given back; what a closed connection held too.
        assert!(matches!(b_rx.try_recv(), Ok(Outgoing::Text(t, _)) if t.as_str() == "123"));
        assert_eq!(address.load(Ordering::Relaxed), 12);
        drop(a_rx);
        assert_eq!(address.load(Ordering::Relaxed), 5);
        drop(b_rx);
        assert_eq!(
            (address.load(Ordering::Relaxed), network.load(Ordering::Relaxed), total.load(Ordering::Relaxed)),
            (0, 0, 0)
        );
    }

    #[tokio::test]
    async fn a_history_answer_does_not_fill_the_queues_own_bytes() {
        let hub = crate::hub::Hub::for_tests(crate::config::Config::for_tests());
        let addr = crate::address::AddrKey::of(std::net::IpAddr::from([192, 0, 2, 1]));
        let address = Arc::new(AtomicUsize::new(0));
        let tally = Tally { total: None, levels: [Some(address.clone()), None, None], share: 100 };
        let (outbox, mut rx, _control) = Outbox::bounded(1, 100, 10, tally);
        let held = hub.hold_replay(addr, 50).expect("a share");
        assert!(outbox.send_held(text(&"h".repeat(50)), held));
        assert_eq!(outbox.offer(text("12345678")), Offered::Queued, "the room's next frame");
        assert_eq!(outbox.offer(text("123")), Offered::Full(true, Bound::Bytes));
        assert_eq!(address.load(Ordering::Relaxed), 58, "counted for the address all the same");
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Text(_, Some(_)))));
        assert_eq!(address.load(Ordering::Relaxed), 8);
    }

    #[tokio::test]
    async fn senders_learn_when_the_writer_is_gone() {
        let (outbox, rx, _control) = Outbox::new(1, 1);
        assert!(outbox.send(text("a")));
        drop(rx);
        assert!(!outbox.send(text("b")));
        assert_eq!(outbox.offer(text("c")), Offered::Gone);
    }
}
