//! Pieces the durable engines (`sqlite`, `redis`) share: putting a seq into a stored frame,
//! telling which frames are storable, and fanning the ordered delivery stream out to whoever
//! called [`Store::subscribe`](super::Store::subscribe).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use natter_protocol::ServerMessage;
use tokio::sync::mpsc;

use super::{Event, StoreError};

/// Sets the `seq` of a storable frame (`user`, `bot`, `agent`, `chat`); refuses any other frame,
/// because only those have a place in a conversation's history.
pub(crate) fn set_seq(message: &mut ServerMessage, seq: u64) -> Result<(), StoreError> {
    match message {
        ServerMessage::User(m) | ServerMessage::Bot(m) | ServerMessage::Agent(m) => m.seq = seq,
        ServerMessage::Chat(m) => m.seq = seq,
        other => {
            return Err(StoreError::Backend(format!("a {} frame cannot be stored", kind(other))));
        }
    }
    Ok(())
}

/// The frame's `type` as it is on the wire (kept in an indexed column so the database can be
/// queried without parsing JSON).
pub(crate) fn kind(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::User(_) => "user",
        ServerMessage::Bot(_) => "bot",
        ServerMessage::Agent(_) => "agent",
        ServerMessage::System(_) => "system",
        ServerMessage::Chat(_) => "chat",
        ServerMessage::Typing(_) => "typing",
        ServerMessage::UserJoined(_) => "user_joined",
        ServerMessage::UserLeft(_) => "user_left",
        ServerMessage::RoomInfo(_) => "room_info",
        ServerMessage::CursorPosition(_) => "cursor_position",
        ServerMessage::ChainUpdate(_) => "chain_update",
        ServerMessage::Ack(_) => "ack",
        ServerMessage::History(_) => "history",
        ServerMessage::Error(_) => "error",
        ServerMessage::Pong(_) => "pong",
    }
}

/// Milliseconds since the Unix epoch by the wall clock (what retention compares against).
pub(crate) fn unix_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// RFC 3339 UTC with milliseconds (`2026-11-22T00:24:04.123Z`), the form the protocol's
/// timestamps use.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    crate::util::rfc3339(since.as_secs(), since.subsec_millis())
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
    fn rfc3339_formats_utc() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_307_044_123);
        assert_eq!(rfc3339(t), "2026-11-22T00:24:04.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
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
