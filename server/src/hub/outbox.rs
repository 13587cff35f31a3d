//! `Outbox`: a connection's bounded send queue, as the hub sees it.
//!
//! The fan-out never waits on a connection: it `try_send`s shared, already-encoded frames, and
//! a full queue marks the connection as a slow consumer, which its writer closes with 4001. A
//! connection's own answers (ack, pong, error, history) wait for room instead, which slows only
//! the client that asked.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, Notify};

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

/// The sending side of one connection's queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Hub-wide connection number (logs, subscriber tables).
    pub id: u64,
    tx: mpsc::Sender<Outgoing>,
    control: Arc<Control>,
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
    pub fn new(id: u64, capacity: usize) -> (Outbox, mpsc::Receiver<Outgoing>, Arc<Control>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let control = Arc::new(Control::default());
        (Outbox { id, tx, control: control.clone() }, rx, control)
    }

    /// Queues a frame without waiting (fan-out).
    pub fn offer(&self, frame: Frame) -> Offered {
        match self.tx.try_send(Outgoing::Text(frame)) {
            Ok(()) => Offered::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                Offered::Full(self.control.close(natter_protocol::close::SLOW_CONSUMER))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offered::Gone,
        }
    }

    /// Queues a frame, waiting for room (answers to the connection's own requests). `false`
    /// when the connection is gone.
    pub async fn send(&self, frame: Frame) -> bool {
        self.tx.send(Outgoing::Text(frame)).await.is_ok()
    }

    /// Queues a close after everything already queued.
    pub async fn close_after_queue(&self, code: u16, reason: &'static str) {
        let _ = self.tx.send(Outgoing::Close(code, reason)).await;
    }
}
