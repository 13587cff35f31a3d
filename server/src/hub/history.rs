//! Attaching a connection to a conversation: the `history` it gets first (from the ring when
//! it can answer, from the store when not), the gap it is told about when part of what it
//! asked for is gone, and the HTTP long-poll, which is an attach without a subscription.

use std::sync::Arc;

use natter_protocol::{ErrorCode, Gap, History, ServerMessage};
use tokio::sync::watch;

use super::conversation::{Conversation, Subscriber};
use super::lifecycle::WaitingPoll;
use super::ring::weight;
use super::rooms::Joining;
use super::{Frame, Hub, Outbox, Refusal, Slot};
use crate::address::AddrKey;
use crate::budget::{self, FrameBudget, Payment};
use crate::store::{ConversationKey, HistoryPage, StoreError, StoredFrame};

/// What a connection wants on attach: a resume point or the recent history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// Everything after this seq.
    After(u64),
    /// The recent history (`--recent` messages).
    Recent,
}

/// Who pays for a `history` answer: its bytes are sent like any other frame, so they are
/// charged like one — to the client address's `--address-frame-budget` and, when a WebSocket
/// asked, to that connection's `--frame-budget`. Without this a `join` (after=0) / `leave`
/// loop on a room with 1 MB of history made the hub send 30 MB a second for 3 KB received.
#[derive(Debug)]
pub(crate) struct Payer<'a> {
    /// The client address.
    pub(crate) addr: AddrKey,
    /// The asking connection's frame budget; `None` for an HTTP request.
    pub(crate) budget: Option<&'a mut FrameBudget>,
}

impl<'a> Payer<'a> {
    /// A WebSocket's payer: its address and its frame budget.
    pub(crate) fn connection(addr: AddrKey, budget: &'a mut FrameBudget) -> Payer<'a> {
        Payer { addr, budget: Some(budget) }
    }

    /// An HTTP request's payer: its address alone.
    pub(crate) fn request(addr: AddrKey) -> Payer<'static> {
        Payer { addr, budget: None }
    }
}

/// A `history` answer as the hub builds it: the stored frames stay the text they are kept as,
/// and [`Replay::encode`] splices them into the frame ([`History::splice`]) rather than parse
/// and write each one again. A resume of 300 messages is then one copy of their bytes.
#[derive(Debug)]
pub(crate) struct Replay {
    /// The room, or none for the support conversation.
    pub(crate) room: Option<String>,
    /// Stored frames, in seq order.
    pub(crate) messages: Vec<StoredFrame>,
    /// `false` when some of what was asked for could no longer be delivered; `gap` says which.
    pub(crate) complete: bool,
    /// The seqs that could not be delivered, when `complete` is false.
    pub(crate) gap: Option<Gap>,
    /// The newest seq of the conversation at the time of this answer.
    pub(crate) last_seq: u64,
    /// A long-poll's answer: its share of `--max-replay-in-flight`, for the HTTP handler to
    /// keep until the answer is written (see `http::json_text`). `None` otherwise.
    pub(crate) held: Option<Slot>,
}

impl Replay {
    /// The `history` frame's JSON text, as `ServerMessage::History` would serialise it.
    pub(crate) fn encode(&self) -> String {
        History::splice(self.room.as_deref(), &self.messages, self.complete, self.gap, self.last_seq)
    }

    /// What the frame costs the one who asked: its messages' bytes (by [`weight`]) plus one
    /// frame's overhead.
    pub(crate) fn cost(&self) -> u64 {
        let bytes: usize = self.messages.iter().map(weight).sum();
        budget::cost(bytes, 1)
    }
}

/// Times the store is read again when the fan-out moved past a page while it was read.
const ATTACH_ATTEMPTS: usize = 3;

impl Hub {
    /// Subscribes a connection to its session's conversation and queues the `history` frame
    /// (missed messages for `After`, recent ones for `Recent`). Returns the use of the
    /// conversation held for the client's address (`--max-conversations-per-address`), for the
    /// connection to keep while it is subscribed (`None` when there is no limit). `fresh`: the
    /// session was issued with this connection, so its history is known to be empty and is not
    /// read.
    pub(crate) async fn attach_session(
        &self,
        session: &Arc<str>,
        since: Since,
        outbox: &Outbox,
        member_id: &Arc<str>,
        payer: &mut Payer<'_>,
        fresh: bool,
    ) -> Result<Option<Slot>, Refusal> {
        let key = ConversationKey::Session(session.clone());
        let held = self.hold_conversations(payer.addr, 1)?;
        self.attach(&key, since, Some((outbox, member_id)), None, payer, fresh).await?;
        Ok(held)
    }

    /// Unsubscribes a connection from its session's conversation.
    pub(crate) fn detach_session(&self, session: &Arc<str>, outbox_id: u64) {
        let key = ConversationKey::Session(session.clone());
        let mut state = self.lock();
        if let Some(conv) = state.conversations.get_mut(&key) {
            conv.subscribers.remove(&outbox_id);
            conv.last_active = tokio::time::Instant::now();
        }
    }

    /// A conversation's history after `since`, without subscribing: the HTTP long-poll of a
    /// session's conversation or of a room. Waits up to `--poll-timeout` when nothing is newer
    /// than `after`. `addr` is the client's address, whose share of `--max-replay-in-flight` a
    /// read from the store takes while it lasts, and whose `--address-frame-budget` pays for
    /// the answer's bytes (see [`Payer`]), and one of whose `--max-conversations-per-address`
    /// the poll holds while it lasts. `fresh`: `key` is the session issued with this request,
    /// known to be empty (see [`Hub::attach`]).
    pub(crate) async fn poll(
        &self,
        key: ConversationKey,
        since: Since,
        addr: AddrKey,
        fresh: bool,
    ) -> Result<Replay, Refusal> {
        let _held = self.hold_conversations(addr, 1)?;
        self.ensure_polled(std::slice::from_ref(&key), addr).await?;
        let mut delivered = {
            let mut state = self.lock();
            // Starting at 0 loses nothing: what was delivered before this point is in the
            // history read below.
            self.conversation(&mut state, &key)?
                .delivered
                .get_or_insert_with(|| watch::Sender::new(0))
                .subscribe()
        };
        let mut payer = Payer::request(addr);
        let (history, _) = self.attach(&key, since, None, None, &mut payer, fresh).await?;
        let Since::After(after) = since else { return Ok(history) };
        if !history.messages.is_empty() || !history.complete {
            return Ok(history);
        }
        let mut shutdown = self.shutdown_signal();
        {
            // A guard, not a decrement after the wait: a client that hangs up drops this
            // future mid-wait.
            let _waiting = WaitingPoll::new(&self.shared.metrics);
            tokio::select! {
                _ = delivered.wait_for(|s| *s > after) => {}
                _ = tokio::time::sleep(self.shared.config.poll_timeout) => {}
                _ = super::stopped(&mut shutdown) => {}
            }
        }
        self.attach(&key, since, None, None, &mut payer, fresh).await.map(|(h, _)| h)
    }

    /// The HTTP long-poll of several rooms in one request (a member on the HTTP fallback in
    /// many rooms): the history of the first room, in the order given, with something after
    /// what the caller has seen (or whose recent history was asked for), at once; else that of
    /// the first to get a message within `--poll-timeout`; else an empty `history` without a
    /// `room`. The client polls again with the room's new `lastSeq` (a client that moves the
    /// answered room to the end of its list is answered fairly when several are busy). The
    /// poll holds one of `addr`'s `--max-conversations-per-address` per room while it lasts:
    /// every room it waits on is kept in memory meanwhile, whether the room exists or not.
    pub(crate) async fn poll_rooms(
        &self,
        rooms: Vec<(ConversationKey, Since)>,
        addr: AddrKey,
    ) -> Result<Replay, Refusal> {
        let _held = self.hold_conversations(addr, rooms.len())?;
        let keys: Vec<ConversationKey> = rooms.iter().map(|(key, _)| key.clone()).collect();
        self.ensure_polled(&keys, addr).await?;
        let mut payer = Payer::request(addr);
        let mut delivered = Vec::with_capacity(rooms.len());
        {
            let mut state = self.lock();
            for (key, _) in &rooms {
                let conv = self.conversation(&mut state, key)?;
                delivered.push(conv.delivered.get_or_insert_with(|| watch::Sender::new(0)).subscribe());
            }
        }
        for (key, since) in &rooms {
            let (history, _) = self.attach(key, *since, None, None, &mut payer, false).await?;
            if *since == Since::Recent || !history.messages.is_empty() || !history.complete {
                return Ok(history);
            }
        }
        let mut shutdown = self.shutdown_signal();
        let news = {
            let _waiting = WaitingPoll::new(&self.shared.metrics);
            let waits = delivered.iter_mut().zip(&rooms).map(|(rx, (_, since))| {
                let after = match since {
                    Since::After(a) => *a,
                    Since::Recent => 0,
                };
                Box::pin(async move {
                    let _ = rx.wait_for(|s| *s > after).await;
                })
            });
            tokio::select! {
                (_, i, _) = futures_util::future::select_all(waits) => rooms.get(i),
                _ = tokio::time::sleep(self.shared.config.poll_timeout) => None,
                _ = super::stopped(&mut shutdown) => None,
            }
        };
        match news {
            Some((key, since)) => {
                self.attach(key, *since, None, None, &mut payer, false).await.map(|(h, _)| h)
            }
            None => Ok(Replay {
                room: None,
                messages: Vec::new(),
                complete: true,
                gap: None,
                last_seq: 0,
                held: None,
            }),
        }
    }

    /// Makes sure each polled room exists, making the ones that do not from `addr`'s budget
    /// of room creations (`--room-creations-per-hour`; refused under `--room-creation api`),
    /// as a `join` does: a long-poll is how a client on the HTTP fallback is in a room. Polls
    /// of made-up rooms were free, and each held a conversation in memory while it waited: four
    /// addresses polling 100 made-up rooms at a time filled `--max-conversations`. A room whose
    /// conversation this hub holds was made before (a join or an earlier poll): no store read.
    async fn ensure_polled(&self, keys: &[ConversationKey], addr: AddrKey) -> Result<(), Refusal> {
        for key in keys {
            let ConversationKey::Room(room) = key else { continue };
            let held = self.lock().conversations.contains_key(key);
            if !held {
                self.ensure_room(room, addr).await.map_err(|r| r.in_room(Some(room)))?;
            }
        }
        Ok(())
    }

    /// The newest seq of `key`: from the ring when it knows, else from the store.
    pub(super) async fn last_seq(&self, key: &ConversationKey) -> Result<u64, Refusal> {
        let known = {
            let state = self.lock();
            state.conversations.get(key).and_then(|c| c.ring.last_seq())
        };
        match known {
            Some(s) => Ok(s),
            None => Ok(self.shared.store.recent(key, 1).await?.last_seq),
        }
    }

    /// The history frame for `since`; with `subscribe`, also registers the connection as a
    /// subscriber of `key` in the same critical section and queues `room_info` (for a join) and
    /// the history, so no live frame can overtake them or fall between them. Returns the
    /// history and whether the member is new in the room on this hub.
    ///
    /// A read from the store may build up to `--max-replay-bytes` of history. It first waits
    /// for a turn at the store's reads ([`Store::read_turns`](crate::store::Store::read_turns),
    /// served round-robin by client address, an IPv6 client by its /48), holding nothing
    /// meanwhile; with its turn it takes that much of `--max-replay-in-flight` for `addr` (see
    /// `hub::limits`), which is made the answer's size once built and given back once the
    /// answer is written (a connection) or handed over (a poll). Without it, 300 resumes from
    /// `after=0` at once from one address took a hub from 28 MB to 520 MB. The ring's answers,
    /// at most `--ring-bytes`, need none.
    ///
    /// `fresh`: `key` is a session issued in this very request, whose conversation is known to
    /// be empty (nobody else knows it yet); the ring is told so and answers, with no read.
    ///
    /// Every answer, from the ring or the store, is paid for by `payer` before it is queued or
    /// returned (see [`Payer`]); one it cannot pay for is refused with `rate_limited`, and the
    /// connection is not subscribed.
    pub(super) async fn attach(
        &self,
        key: &ConversationKey,
        since: Since,
        subscribe: Option<(&Outbox, &Arc<str>)>,
        mut joining: Option<Joining<'_>>,
        payer: &mut Payer<'_>,
        fresh: bool,
    ) -> Result<(Replay, bool), Refusal> {
        let addr = payer.addr;
        let room = match key {
            ConversationKey::Room(r) => Some(r.to_string()),
            ConversationKey::Session(_) => None,
        };
        // The hot path first: the ring answers under the lock.
        {
            let mut state = self.lock();
            let conv = self.conversation(&mut state, key)?;
            if fresh {
                // Nobody else knows the session yet: nothing can have been stored under it.
                conv.ring.known_empty();
            }
            if let Some(answered) = self.answer_from_ring(conv, since, &room, subscribe, &mut joining, payer)
            {
                return answered;
            }
        }
        // The cold path: a turn at the store's reads first, holding nothing while it waits, then
        // the share of what the read may build. Reads waiting in line took `--max-replay-bytes`
        // each: 20 addresses' session-less polls filled `--max-replay-in-flight` with shares of
        // empty answers, and had honest unread answers cut (4001) to make room for them.
        let _turn = self.shared.reads.take(read_line(addr)).await;
        {
            // Another read may have warmed the ring meanwhile.
            let mut state = self.lock();
            let conv = self.conversation(&mut state, key)?;
            if let Some(answered) = self.answer_from_ring(conv, since, &room, subscribe, &mut joining, payer)
            {
                return answered;
            }
        }
        let mut reserved = Some(self.hold_replay(addr, self.shared.config.max_replay_bytes)?);
        for _ in 0..ATTACH_ATTEMPTS {
            let mut page = self.fetch(key, since).await?;
            let mut state = self.lock();
            let conv = self.conversation(&mut state, key)?;
            if !conv.ring.merge(&page) {
                // The fan-out moved past the page while it was read (rare): read again.
                continue;
            }
            // The page, then whatever the fan-out delivered since it was read.
            let page_last = page.newest().unwrap_or(0);
            let mut messages = std::mem::take(&mut page.messages);
            if let Some(extra) = conv.ring.since(page_last.max(page.last_seq)) {
                messages.extend(extra);
            }
            let last_seq = conv.ring.last_seq().unwrap_or(page.last_seq).max(page.last_seq);
            let mut history = compose(room.clone(), since, messages, last_seq);
            cap_bytes(&mut history, since, self.shared.config.max_replay_bytes);
            let first = self.answer(conv, subscribe, joining.take(), &mut history, payer, reserved.take())?;
            return Ok((history, first));
        }
        Err(Refusal::new(ErrorCode::Unavailable, "history is changing too fast to read; reconnect"))
    }

    /// Gives `history` to the one who asked: holds its bytes of `--max-replay-in-flight`
    /// (`read`, the reservation its store read took, made the answer's size; else a new one),
    /// charges it to `payer`, and registers and queues it (see [`Hub::register`]). For a
    /// connection the reservation travels with the frame and is given back once the frame is
    /// written (see [`Hub::hold_replay`]); a long-poll's goes in [`Replay::held`], for its
    /// handler to keep while the answer is written. Called under the table's lock: it never
    /// waits.
    fn answer(
        &self,
        conv: &mut Conversation,
        subscribe: Option<(&Outbox, &Arc<str>)>,
        joining: Option<Joining<'_>>,
        history: &mut Replay,
        payer: &mut Payer<'_>,
        read: Option<Slot>,
    ) -> Result<bool, Refusal> {
        let hold = |bytes: usize| match read {
            Some(mut slot) => {
                slot.resize_replay(bytes);
                Ok(slot)
            }
            None => self.hold_replay(payer.addr, bytes),
        };
        let queued = match subscribe {
            Some((outbox, _)) => {
                let frame = history.encode();
                let mut held = hold(frame.len())?;
                held.unread_by(outbox.control());
                Some((Frame::from(frame), held))
            }
            None => {
                // Encoded by the handler; its messages' weight is about its size.
                history.held = Some(hold(history.messages.iter().map(weight).sum())?);
                None
            }
        };
        self.pay_history(payer, history)?;
        Ok(self.register(conv, subscribe, joining, history, queued))
    }

    /// Charges `history`'s bytes to `payer` (see [`Payer`]); `Err` is the `rate_limited`
    /// refusal saying how long to wait. Called under the table's lock: it never waits.
    fn pay_history(&self, payer: &mut Payer<'_>, history: &Replay) -> Result<(), Refusal> {
        let cost = history.cost();
        let Some(budget) = payer.budget.as_deref_mut() else {
            return self.charge_address_frames(payer.addr, cost);
        };
        match budget.pay(self, payer.addr, cost, None) {
            Payment::Paid => Ok(()),
            Payment::Refused(r) => Err(r),
            // Owing a whole burst: refused like the rest; the connection's next frame finds the
            // debt and is cut (4029) there.
            Payment::Cut => {
                let wait = budget::BURST_SECONDS * 1000.0;
                let mut r = Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "this connection has asked for far more history than the hub sends one connection ({} bytes \
                         per second); wait {wait} ms",
                        self.shared.config.frame_budget
                    ),
                );
                r.retry_after_ms = Some(wait as u64);
                Err(r)
            }
        }
    }

    /// Answers from the ring under the table's lock, when it can (`None` when it cannot): the
    /// hot path of [`Hub::attach`], which needs no share of `--max-replay-in-flight`.
    fn answer_from_ring(
        &self,
        conv: &mut Conversation,
        since: Since,
        room: &Option<String>,
        subscribe: Option<(&Outbox, &Arc<str>)>,
        joining: &mut Option<Joining<'_>>,
        payer: &mut Payer<'_>,
    ) -> Option<Result<(Replay, bool), Refusal>> {
        let (messages, last_seq) = self.ring_answer(conv, since)?;
        let mut history =
            Replay { room: room.clone(), messages, complete: true, gap: None, last_seq, held: None };
        cap_bytes(&mut history, since, self.shared.config.max_replay_bytes);
        Some(
            self.answer(conv, subscribe, joining.take(), &mut history, payer, None)
                .map(|first| (history, first)),
        )
    }

    /// Answers from the ring when it can.
    fn ring_answer(&self, conv: &Conversation, since: Since) -> Option<(Vec<StoredFrame>, u64)> {
        let last = conv.ring.last_seq()?;
        let messages = match since {
            Since::After(after) => conv.ring.since(after)?,
            Since::Recent => conv.ring.recent(self.shared.config.recent)?,
        };
        Some((messages, last))
    }

    /// Reads what a connection should get from the store (the cold path).
    async fn fetch(&self, key: &ConversationKey, since: Since) -> Result<HistoryPage, StoreError> {
        let store = &self.shared.store;
        let max = self.shared.config.max_replay.max(1);
        match since {
            Since::Recent => store.recent(key, self.shared.config.recent).await,
            Since::After(after) => {
                let page = store.history(key, after, max).await?;
                let truncated =
                    page.messages.len() >= max && page.newest().is_some_and(|s| s < page.last_seq);
                if truncated {
                    // More was missed than one resume replays: send the newest ones and report
                    // the older part as a gap.
                    store.recent(key, max).await
                } else {
                    Ok(page)
                }
            }
        }
    }

    /// Registers a subscriber (and room presence) and queues `room_info` + `history` (`queued`:
    /// the encoded answer and what it holds until written); returns whether this is the
    /// member's first connection in the room on this hub.
    fn register(
        &self,
        conv: &mut Conversation,
        subscribe: Option<(&Outbox, &Arc<str>)>,
        joining: Option<Joining<'_>>,
        history: &Replay,
        queued: Option<(Frame, Slot)>,
    ) -> bool {
        let (Some((outbox, member_id)), Some((frame, held))) = (subscribe, queued) else { return false };
        conv.subscribers
            .insert(outbox.id, Subscriber { outbox: outbox.clone(), member_id: member_id.clone() });
        let mut first = false;
        if let Some(j) = joining {
            first = conv.add_member(j.member);
            let info = j.info(conv.members(), history.last_seq);
            self.queue_own(outbox, &ServerMessage::RoomInfo(info));
        }
        outbox.send_held(frame, held);
        first
    }
}

/// Whose line a history read waits in: the client address, an IPv6 client by its /48 (its
/// 65,536 /64s are one address here). Turns here go round-robin, so a holder of many keys gets
/// a share per key: by /56, one /48 would have 256 shares. (The pace of new conversations keys
/// by /56, as it serves addresses not served lately first; see `hub/pace.rs`.)
fn read_line(addr: AddrKey) -> AddrKey {
    addr.nested().last().map_or(addr, |(widest, _)| widest)
}

/// Keeps a `history` within `max_bytes` (by [`weight`]): the newest messages that fit (at
/// least one), the older ones reported as a gap when the client asked for them by `after`.
fn cap_bytes(history: &mut Replay, since: Since, max_bytes: usize) {
    let mut total = 0;
    let keep = history
        .messages
        .iter()
        .rev()
        .take_while(|m| {
            total += weight(m);
            total <= max_bytes
        })
        .count()
        .max(1);
    let drop = history.messages.len().saturating_sub(keep);
    if drop == 0 {
        return;
    }
    history.messages.drain(..drop);
    if let Since::After(after) = since {
        let first = history.messages.first().map_or(history.last_seq + 1, |m| m.seq);
        let from = history.gap.map_or(after + 1, |g| g.from);
        history.complete = false;
        history.gap = Some(Gap { from, to: first - 1 });
    }
}

/// Builds a `history` frame from messages read from the store (+ ring), reporting a gap when
/// the oldest ones asked for no longer exist or were more than one resume replays.
fn compose(room: Option<String>, since: Since, messages: Vec<StoredFrame>, last_seq: u64) -> Replay {
    let complete =
        Replay { room: None, messages: Vec::new(), complete: true, gap: None, last_seq, held: None };
    match since {
        Since::Recent => Replay { room, messages, ..complete },
        Since::After(after) => {
            let messages: Vec<StoredFrame> = messages.into_iter().filter(|m| m.seq > after).collect();
            let first = messages.first().map_or(last_seq + 1, |m| m.seq);
            if after < last_seq && first > after + 1 {
                let gap = Gap { from: after + 1, to: first - 1 };
                Replay { room, messages, complete: false, gap: Some(gap), last_seq, held: None }
            } else {
                Replay { room, messages, ..complete }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use natter_protocol::ConversationMessage;

    use super::*;

    fn messages(seqs: impl IntoIterator<Item = u64>) -> Vec<StoredFrame> {
        seqs.into_iter()
            .filter_map(|seq| {
                let m = ConversationMessage { seq, id: format!("m{seq}"), ..Default::default() };
                StoredFrame::encode(&ServerMessage::User(m))
            })
            .collect()
    }

    fn seqs(h: &Replay) -> Vec<u64> {
        h.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn a_resume_with_nothing_missing_is_complete() {
        let h = compose(None, Since::After(3), messages(4..=6), 6);
        assert_eq!((seqs(&h), h.complete, h.gap), (vec![4, 5, 6], true, None));
        let h = compose(None, Since::After(6), Vec::new(), 6);
        assert_eq!((seqs(&h), h.complete, h.last_seq), (vec![], true, 6));
    }

    #[test]
    fn messages_at_or_before_after_are_dropped() {
        let h = compose(Some("r".into()), Since::After(4), messages(2..=6), 6);
        assert_eq!(seqs(&h), [5, 6]);
        assert_eq!(h.room.as_deref(), Some("r"));
    }

    #[test]
    fn a_history_past_its_byte_limit_keeps_the_newest_and_reports_the_rest() {
        let each = weight(&messages(10..=10)[0]);
        let mut h = compose(None, Since::After(0), messages(1..=10), 10);
        cap_bytes(&mut h, Since::After(0), each * 3);
        assert_eq!((seqs(&h), h.complete, h.gap), (vec![8, 9, 10], false, Some(Gap { from: 1, to: 7 })));
        // A recent history is just shorter; the newest message always goes out.
        let mut h = compose(None, Since::Recent, messages(1..=10), 10);
        cap_bytes(&mut h, Since::Recent, 1);
        assert_eq!((seqs(&h), h.complete, h.gap), (vec![10], true, None));
        // Within the limit nothing changes.
        let mut h = compose(None, Since::After(5), messages(6..=10), 10);
        cap_bytes(&mut h, Since::After(5), each * 5);
        assert_eq!((seqs(&h), h.complete), (vec![6, 7, 8, 9, 10], true));
    }

    #[test]
    fn missing_oldest_messages_are_a_gap() {
        // Retention dropped 4..=7: the client hears exactly which seqs it will never get.
        let h = compose(None, Since::After(3), messages(8..=9), 9);
        assert!(!h.complete);
        assert_eq!(h.gap, Some(Gap { from: 4, to: 7 }));
        // Everything after `after` is gone.
        let h = compose(None, Since::After(3), Vec::new(), 9);
        assert_eq!(h.gap, Some(Gap { from: 4, to: 9 }));
    }

    #[test]
    fn recent_history_never_reports_a_gap() {
        let h = compose(None, Since::Recent, messages(50..=60), 60);
        assert_eq!((h.complete, h.gap, seqs(&h).len()), (true, None, 11));
    }
}
