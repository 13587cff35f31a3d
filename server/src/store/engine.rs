//! Pieces the durable engines (`sqlite`, `redis`) share: putting a seq into a stored frame and
//! fanning the ordered delivery stream out to whoever called
//! [`Store::subscribe`](super::Store::subscribe).

use std::sync::Mutex;

use natter_protocol::ServerMessage;
use tokio::sync::mpsc;

use super::{Event, StoreError};

/// Sets the `seq` of a storable frame; any other frame is a fault of the caller.
pub(crate) fn set_seq(message: &mut ServerMessage, seq: u64) -> Result<(), StoreError> {
    message.set_seq(seq).map_err(|e| StoreError::Backend(e.to_string()))
}

/// The receiving ends of the delivery stream.
///
/// The channel is made when the engine is, so events emitted before the hub subscribes are kept
/// rather than lost; the first `subscribe()` takes that receiver. A later `subscribe()` (a test,
/// a second consumer) gets a new channel that sees events from then on.
pub(crate) struct Subscribers {
    state: Mutex<SubscriberState>,
}

struct SubscriberState {
    first: Option<mpsc::UnboundedReceiver<Event>>,
    senders: Vec<mpsc::UnboundedSender<Event>>,
}

impl Subscribers {
    /// A fan-out with its first receiver waiting to be taken.
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Subscribers { state: Mutex::new(SubscriberState { first: Some(rx), senders: vec![tx] }) }
    }

    /// A receiver of every event emitted from now on (the first one: from the start).
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = state.first.take() {
            return rx;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        state.senders.push(tx);
        rx
    }

    /// Emits events in the given order to every live receiver. Taking the lock once per batch
    /// keeps two emitters from interleaving inside one batch.
    pub(crate) fn emit_all(&self, events: impl IntoIterator<Item = Event>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut closed = false;
        for event in events {
            // The last receiver gets the event itself, the others a clone (one receiver, the
            // usual case, costs no clone).
            if let Some((last, rest)) = state.senders.split_last() {
                for tx in rest {
                    closed |= tx.send(event.clone()).is_err();
                }
                closed |= last.send(event).is_err();
            }
        }
        if closed {
            // Receivers that were dropped are forgotten.
            state.senders.retain(|tx| !tx.is_closed());
        }
    }

    /// Emits one event.
    pub(crate) fn emit(&self, event: Event) {
        self.emit_all(std::iter::once(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConversationKey;
    use natter_protocol::{ConversationMessage, Pong};

    fn ev(n: u64) -> Event {
        Event::Stored {
            key: ConversationKey::Session("s1".into()),
            message: ServerMessage::User(ConversationMessage { seq: n, ..Default::default() }),
        }
    }

    #[test]
    fn events_before_the_first_subscribe_are_kept() {
        let subs = Subscribers::new();
        subs.emit(ev(1));
        let mut rx = subs.subscribe();
        subs.emit(ev(2));
        assert_eq!(rx.try_recv().ok(), Some(ev(1)));
        assert_eq!(rx.try_recv().ok(), Some(ev(2)));
    }

    #[test]
    fn a_second_subscriber_sees_what_comes_after_it() {
        let subs = Subscribers::new();
        let mut a = subs.subscribe();
        subs.emit(ev(1));
        let mut b = subs.subscribe();
        subs.emit(ev(2));
        drop(a.try_recv());
        assert_eq!(a.try_recv().ok(), Some(ev(2)));
        assert_eq!(b.try_recv().ok(), Some(ev(2)));
        assert!(b.try_recv().is_err());
    }

    #[test]
    fn only_stored_kinds_take_a_seq() {
        let mut m = ServerMessage::User(ConversationMessage::default());
        set_seq(&mut m, 7).map_err(|e| e.to_string()).expect("user frames are storable");
        assert_eq!(m.seq(), Some(7));
        let mut pong = ServerMessage::Pong(Pong { nonce: None, timestamp: String::new() });
        assert!(set_seq(&mut pong, 1).is_err());
    }
}
