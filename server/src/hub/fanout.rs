//! The fan-out: the store's ordered delivery stream into each conversation's ring and into
//! the send queue of every connection subscribed to it.
//!
//! Everything delivered passes through here, and only what the store delivers: a message this
//! hub stored and one another hub stored (behind Redis) take the same path, so every client
//! sees one order. Each frame is encoded once and the same bytes are queued to every
//! recipient; a queue that is full marks its connection as a slow consumer (4001) instead of
//! holding up the room.

use natter_protocol::ServerMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::conversation::Conversation;
use super::outbox::{Bound, Frame, Offered, Outbox};
use super::Hub;
use crate::metrics::{Limit, Metrics};
use crate::store::{ConversationKey, Event, StoredFrame};

/// Encodes a frame once; the bytes are then shared by every recipient.
pub(crate) fn encode(message: &ServerMessage) -> Frame {
    // Serialising our own types to a String cannot fail (no maps with non-string keys, no
    // failing Serialize impls); an empty object is a harmless stand-in should it ever happen.
    Frame::from(serde_json::to_string(message).unwrap_or_else(|_| "{}".into()))
}

/// Encodes any frame (the operators' feed) once.
pub(crate) fn encode_any(message: &impl serde::Serialize) -> Frame {
    Frame::from(serde_json::to_string(message).unwrap_or_else(|_| "{}".into()))
}

/// The fan-out task: everything the store delivers, to every subscribed connection, until
/// shutdown.
pub(super) async fn run(hub: Hub, mut events: mpsc::UnboundedReceiver<Event>) {
    let mut shutdown = hub.shutdown_signal();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => hub.on_event(event),
                None => {
                    tracing::error!("the store's delivery stream ended; no more messages will be delivered");
                    return;
                }
            },
            _ = super::stopped(&mut shutdown) => return,
        }
    }
}

impl Hub {
    /// Publishes an ephemeral frame (typing, presence, relays) through the store, so that it
    /// reaches this hub's and every other hub's connections by the same path.
    pub(crate) async fn publish(&self, key: ConversationKey, message: ServerMessage, from: Option<String>) {
        if let Err(e) = self.shared.store.publish_ephemeral(Event::Ephemeral { key, message, from }).await {
            tracing::warn!(error = %e, "ephemeral publish failed");
        }
    }

    /// How many connections on this hub a frame for `key` reaches now (at least one: the
    /// sender's own answer). What a client's frame costs its budget is weighted by it. A
    /// support conversation's frames also reach every operator connection (the inbox's feed).
    pub(crate) fn audience(&self, key: &ConversationKey) -> usize {
        let state = self.lock();
        let subscribers = state.conversations.get(key).map_or(0, |c| c.subscribers.len());
        let operators = match key {
            ConversationKey::Session(_) => state.operators.len(),
            ConversationKey::Room(_) => 0,
        };
        (subscribers + operators).max(1)
    }

    /// Handles one event of the store's delivery stream.
    fn on_event(&self, event: Event) {
        let metrics = &self.shared.metrics;
        match event {
            Event::Stored { key, message } => {
                let Some(seq) = message.seq() else { return };
                self.feed_operators(&key, &message, None);
                let frame = encode(&message);
                let mut state = self.lock();
                let Some(conv) = state.conversations.get_mut(&key) else { return };
                conv.ring.push(StoredFrame { seq, json: frame.clone() });
                if let Some(delivered) = &conv.delivered {
                    delivered.send_replace(seq);
                }
                conv.last_active = Instant::now();
                deliver(metrics, conv, &frame, None, false);
            }
            Event::Ephemeral { key, message, from } => {
                if let (ConversationKey::Room(room), Some(_)) = (&key, super::rooms::deletion(&message)) {
                    self.evict_room(room, &encode(&message));
                    return;
                }
                self.feed_operators(&key, &message, from.as_deref());
                let frame = encode(&message);
                let state = self.lock();
                let Some(conv) = state.conversations.get(&key) else { return };
                let passing = matches!(message, ServerMessage::Typing(_));
                deliver(metrics, conv, &frame, from.as_deref(), passing);
            }
            Event::Inbox(event) => {
                if let natter_protocol::inbox::InboxEvent::Availability { .. } = event {
                    // Another hub's operators came or went: visitors here may need telling.
                    let hub = self.clone();
                    tokio::spawn(async move { hub.refresh_availability().await });
                }
                self.deliver_operators(&event, None);
            }
        }
    }

    /// Queues an answer to a connection's own request (its `room_info`, its `history`), past
    /// the queue's bound if need be (see [`Outbox::send`]).
    pub(super) fn queue_own(&self, outbox: &Outbox, message: &ServerMessage) {
        outbox.send(encode(message));
    }
}

/// Queues `frame` to every subscriber of `conv` except `skip_member`'s connections; a
/// `passing` one (typing) is left out of a queue already half full
/// ([`super::Outbox::offer_passing`]). Called with the table's lock held: it is the fan-out's
/// inner loop and never waits.
fn deliver(metrics: &Metrics, conv: &Conversation, frame: &Frame, skip_member: Option<&str>, passing: bool) {
    let mut sent = 0;
    for sub in conv.subscribers.values() {
        if skip_member.is_some_and(|m| *m == *sub.member_id) {
            continue;
        }
        let offered =
            if passing { sub.outbox.offer_passing(frame.clone()) } else { sub.outbox.offer(frame.clone()) };
        match offered {
            Offered::Queued => sent += 1,
            Offered::Full(true, bound) => {
                Metrics::add(&metrics.slow_consumers, 1);
                let why = match bound {
                    Bound::Frames => "send queue full (--send-queue)",
                    Bound::Bytes => {
                        metrics.limited(Limit::SendQueueBytes);
                        "send queue past its bytes (--send-queue-bytes)"
                    }
                    Bound::AddressBytes => {
                        metrics.limited(Limit::AddressSendQueueBytes);
                        "its address's send queues past their bytes (--address-send-queue-bytes)"
                    }
                };
                tracing::warn!(connection = sub.outbox.id, "slow consumer: {why}, closing with 4001");
            }
            Offered::Full(false, _) | Offered::Gone | Offered::Skipped => {}
        }
    }
    Metrics::add(&metrics.messages_out, sent);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use super::*;
    use crate::hub::conversation::Subscriber;
    use crate::hub::outbox::{Outgoing, Receiver};

    fn subscribe(conv: &mut Conversation, id: u64, member: &str, capacity: usize) -> Receiver {
        let (outbox, rx, _control) = Outbox::new(id, capacity);
        conv.subscribers.insert(id, Subscriber { outbox, member_id: Arc::from(member) });
        rx
    }

    fn queued(rx: &mut Receiver) -> Vec<String> {
        std::iter::from_fn(|| match rx.try_recv() {
            Ok(Outgoing::Text(t, _)) => Some(t.as_str().to_string()),
            _ => None,
        })
        .collect()
    }

    #[test]
    fn one_frame_to_every_subscriber_but_the_sender_and_a_full_queue_counted_once() {
        let metrics = Metrics::default();
        let mut conv = Conversation::new(4, 1 << 20);
        let mut ada = subscribe(&mut conv, 1, "u_ada", 4);
        let mut ada_tab = subscribe(&mut conv, 2, "u_ada", 4);
        let mut bob = subscribe(&mut conv, 3, "u_bob", 4);
        let mut slow = subscribe(&mut conv, 4, "u_slow", 1);

        deliver(&metrics, &conv, &Frame::from("typing".to_string()), Some("u_ada"), false);
        assert!(
            queued(&mut ada).is_empty() && queued(&mut ada_tab).is_empty(),
            "not to the sender's own tabs"
        );
        assert_eq!(queued(&mut bob), ["typing"]);
        assert_eq!(metrics.messages_out.load(Ordering::Relaxed), 2, "bob and slow");

        // `slow` never reads: its queue of one is full from here on.
        for _ in 0..3 {
            deliver(&metrics, &conv, &Frame::from("chat".to_string()), None, false);
        }
        assert_eq!(queued(&mut ada), ["chat"; 3]);
        assert_eq!(metrics.slow_consumers.load(Ordering::Relaxed), 1, "a slow consumer is counted once");
        assert!(matches!(
            slow.try_recv(),
            Ok(Outgoing::Text(t, _)) if t.as_str() == "typing"
        ));
    }
}
