//! Counters and gauges for `GET /metrics`, written by hand in the Prometheus text format.
//!
//! A handful of atomics is all the hub needs; a metrics crate would cost more than it saves.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use natter_protocol::ErrorCode;

/// A budget or cap that refused something, for `natter_limited_total{limit=…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// `--rate-per-sec` / `--rate-burst`, per session.
    Session,
    /// `--address-rate-per-sec` / `--address-rate-burst`, per client address.
    Address,
    /// `--address-connect-rate-per-sec` / `--address-connect-burst`: connections turned away
    /// as they were accepted.
    AddressConnects,
    /// `--frame-budget`, per WebSocket: frames refused.
    FrameBudget,
    /// `--frame-budget`: connections cut with 4029.
    FrameBudgetCut,
    /// `--address-frame-budget`, all WebSockets of one client address together: frames refused.
    AddressFrameBudget,
    /// `--frame-budget` as read off the wire (`crate::wire`): a WebSocket held back.
    WireThrottled,
    /// `--frame-budget` as read off the wire: a WebSocket held back for too long, cut with 4029.
    WireCut,
    /// `--max-connections`.
    Connections,
    /// `--max-connections-per-address`.
    ConnectionsPerAddress,
    /// `--max-polls`.
    Polls,
    /// `--max-polls-per-address`.
    PollsPerAddress,
    /// `--max-replay-in-flight`, all addresses together.
    ReplayInFlight,
    /// `--max-replay-in-flight`, one address's quarter.
    ReplayInFlightPerAddress,
    /// `--max-conversations`, when no conversation could be forgotten.
    Conversations,
    /// `--max-conversations-per-address`: a join, connection or long-poll of an address that
    /// keeps its most conversations in memory.
    ConversationsPerAddress,
    /// `--room-creations-per-hour`.
    RoomCreations,
    /// `--max-context`.
    Context,
    /// Identity-token renewals on one WebSocket (`auth` after the first).
    Renewals,
    /// One address's quarter of the reply engine's places (the reply is shed to the fallback).
    RepliesPerAddress,
    /// `--max-rooms-per-connection`: a join past it.
    RoomsPerConnection,
    /// Inbox requests from one address with session cookies that name no session.
    SessionLookups,
    /// `--address-conversations-per-hour`: a visitor message that would open a conversation.
    ConversationOpenings,
    /// `--new-conversations-per-sec`: the follow-up of a new conversation's first message that
    /// went at once, unpaced, because the most that may wait were waiting.
    NewConversations,
    /// `--address-store-bytes-per-day`: a message refused because its address (or IPv6
    /// network) has had its day's bytes stored.
    AddressStoreBytes,
    /// `--min-free-disk`: a client's message refused because the database's disk is almost full.
    MinFreeDisk,
    /// CORS preflights (`OPTIONS /api/…`) of one address past their own bucket, the size of
    /// `--address-rate-*`.
    Preflights,
    /// An operator sign-in refused because its lane of the password-check queue was full.
    PasswordChecks,
    /// `--send-queue-bytes`: a connection closed with 4001 because a frame would pass its
    /// queue's bytes.
    SendQueueBytes,
    /// `--address-send-queue-bytes`: a connection closed with 4001 because a frame would pass
    /// the bytes queued to its address's (or IPv6 network's) connections together.
    AddressSendQueueBytes,
}

impl Limit {
    /// Every limit, in declaration order.
    pub(crate) const ALL: [Limit; 30] = [
        Limit::Session,
        Limit::Address,
        Limit::AddressConnects,
        Limit::FrameBudget,
        Limit::FrameBudgetCut,
        Limit::AddressFrameBudget,
        Limit::WireThrottled,
        Limit::WireCut,
        Limit::Connections,
        Limit::ConnectionsPerAddress,
        Limit::Polls,
        Limit::PollsPerAddress,
        Limit::ReplayInFlight,
        Limit::ReplayInFlightPerAddress,
        Limit::Conversations,
        Limit::ConversationsPerAddress,
        Limit::RoomCreations,
        Limit::Context,
        Limit::Renewals,
        Limit::RepliesPerAddress,
        Limit::RoomsPerConnection,
        Limit::SessionLookups,
        Limit::ConversationOpenings,
        Limit::NewConversations,
        Limit::AddressStoreBytes,
        Limit::MinFreeDisk,
        Limit::Preflights,
        Limit::PasswordChecks,
        Limit::SendQueueBytes,
        Limit::AddressSendQueueBytes,
    ];

    /// The label value in `/metrics`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Limit::Session => "session_rate",
            Limit::Address => "address_rate",
            Limit::AddressConnects => "address_connects",
            Limit::FrameBudget => "frame_budget",
            Limit::FrameBudgetCut => "frame_budget_cut",
            Limit::AddressFrameBudget => "address_frame_budget",
            Limit::WireThrottled => "wire_throttled",
            Limit::WireCut => "wire_cut",
            Limit::Connections => "connections",
            Limit::ConnectionsPerAddress => "connections_per_address",
            Limit::Polls => "polls",
            Limit::PollsPerAddress => "polls_per_address",
            Limit::ReplayInFlight => "replay_in_flight",
            Limit::ReplayInFlightPerAddress => "replay_in_flight_per_address",
            Limit::Conversations => "conversations",
            Limit::ConversationsPerAddress => "conversations_per_address",
            Limit::RoomCreations => "room_creations",
            Limit::Context => "context",
            Limit::Renewals => "renewals",
            Limit::RepliesPerAddress => "replies_per_address",
            Limit::RoomsPerConnection => "rooms_per_connection",
            Limit::SessionLookups => "inbox_session_lookups",
            Limit::ConversationOpenings => "conversation_openings",
            Limit::NewConversations => "new_conversations",
            Limit::AddressStoreBytes => "address_store_bytes",
            Limit::MinFreeDisk => "min_free_disk",
            Limit::Preflights => "preflights",
            Limit::PasswordChecks => "inbox_password_checks",
            Limit::SendQueueBytes => "send_queue_bytes",
            Limit::AddressSendQueueBytes => "address_send_queue_bytes",
        }
    }
}

/// Gauges the hub computes when `/metrics` is read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    /// Conversations held in memory.
    pub(crate) conversations: usize,
    /// Rooms with members on this hub.
    pub(crate) rooms: usize,
    /// Bytes of messages held in the conversations' rings.
    pub(crate) ring_bytes: usize,
    /// Reply-engine calls in flight.
    pub(crate) reply_calls: usize,
    /// Replies waiting for a call slot.
    pub(crate) reply_waiting: usize,
    /// Follow-ups of visitor messages waiting for their address's turn.
    pub(crate) turns_waiting: usize,
    /// Follow-ups of new conversations' first messages waiting for their turn in the hub-wide
    /// pace.
    pub(crate) new_conversations_waiting: usize,
    /// History reads from the store waiting for their client address's turn.
    pub(crate) history_reads_waiting: usize,
    /// Bytes of `--max-replay-in-flight` taken by history being read from the store.
    pub(crate) replay_bytes: usize,
    /// Bytes queued to every connection (text frames not yet handed to the kernel).
    pub(crate) send_queue_bytes: usize,
    /// The most bytes queued to the connections of any one client address or IPv6 network.
    pub(crate) address_send_queue_bytes: usize,
}

/// The hub's counters. Relaxed ordering throughout: each number is read on its own.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Open WebSocket connections.
    pub(crate) connections: AtomicU64,
    /// WebSocket connections accepted since start.
    pub(crate) connections_total: AtomicU64,
    /// Messages stored from clients (`user`, `chat`), duplicates excluded.
    pub(crate) messages_in: AtomicU64,
    /// Frames queued to connections by the fan-out (one per recipient).
    pub(crate) messages_out: AtomicU64,
    /// Bot replies stored.
    pub(crate) replies: AtomicU64,
    /// Operator replies stored.
    pub(crate) agent_replies: AtomicU64,
    /// Operator sign-ins refused (bad name or password, or rate-limited).
    pub(crate) signin_refused: AtomicU64,
    /// Replies the engine failed to produce (webhook / LLM errors and timeouts).
    pub(crate) reply_failures: AtomicU64,
    /// Replies answered by the fallback without asking the engine: every call slot taken and
    /// the queue full.
    pub(crate) reply_shed: AtomicU64,
    /// Re-sent messages acknowledged as duplicates.
    pub(crate) duplicates: AtomicU64,
    /// Connections closed because their send queue was full.
    pub(crate) slow_consumers: AtomicU64,
    /// Connections closed for silence past the idle timeout.
    pub(crate) stale_closed: AtomicU64,
    /// Long-polls being held now.
    pub(crate) polls_waiting: AtomicU64,
    /// Open sockets (WebSocket and HTTP), counted by the accept loop.
    pub(crate) sockets: AtomicU64,
    /// The `--max-connections` in force (0 before the accept loop runs).
    pub(crate) max_sockets: AtomicU64,
    /// Conversations forgotten to make room under `--max-conversations`.
    pub(crate) conversations_evicted: AtomicU64,
    /// Error frames / error answers sent, by code (indexed like `ErrorCode::ALL`).
    errors: [AtomicU64; ErrorCode::ALL.len()],
    /// Things refused by a budget or cap, by limit (indexed like `Limit::ALL`).
    limited: [AtomicU64; Limit::ALL.len()],
}

impl Metrics {
    /// Counts one refusal answered to a client (an `error` frame or an HTTP error). The
    /// transports call this where a refusal leaves the hub, and nothing else does.
    pub(crate) fn refusal(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one thing refused by `limit` (besides the refusal's own count by code, when it
    /// was answered with one).
    pub(crate) fn limited(&self, limit: Limit) {
        if let Some(i) = Limit::ALL.iter().position(|l| *l == limit) {
            self.limited[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the gauges the hub computes.
    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        let Gauges {
            conversations,
            rooms,
            ring_bytes,
            reply_calls,
            reply_waiting,
            turns_waiting,
            new_conversations_waiting,
            history_reads_waiting,
            replay_bytes,
            send_queue_bytes,
            address_send_queue_bytes,
        } = *gauges;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        one("natter_connections", "gauge", "Open WebSocket connections.", g(&self.connections));
        one(
            "natter_connections_total",
            "counter",
            "WebSocket connections accepted.",
            g(&self.connections_total),
        );
        one("natter_conversations", "gauge", "Conversations held in memory.", conversations as u64);
        one("natter_rooms", "gauge", "Rooms with members on this hub.", rooms as u64);
        one("natter_messages_in_total", "counter", "Messages stored from clients.", g(&self.messages_in));
        one(
            "natter_messages_out_total",
            "counter",
            "Frames fanned out to connections.",
            g(&self.messages_out),
        );
        one("natter_replies_total", "counter", "Bot replies stored.", g(&self.replies));
        one("natter_agent_replies_total", "counter", "Operator replies stored.", g(&self.agent_replies));
        one(
            "natter_signin_refused_total",
            "counter",
            "Operator sign-ins refused (bad name or password, or rate-limited).",
            g(&self.signin_refused),
        );
        one(
            "natter_reply_failures_total",
            "counter",
            "Reply backend failures (answered with the fallback, or not at all).",
            g(&self.reply_failures),
        );
        one(
            "natter_reply_shed_total",
            "counter",
            "Replies answered by the fallback at once: every reply call slot taken and the queue full.",
            g(&self.reply_shed),
        );
        one("natter_reply_calls", "gauge", "Reply-engine calls in flight.", reply_calls as u64);
        one(
            "natter_reply_calls_waiting",
            "gauge",
            "Replies waiting for a reply-engine call slot.",
            reply_waiting as u64,
        );
        one(
            "natter_turns_waiting",
            "gauge",
            "Follow-ups of stored visitor messages (inbox record, reply) waiting for their client address's turn.",
            turns_waiting as u64,
        );
        one(
            "natter_new_conversations_waiting",
            "gauge",
            "Follow-ups of new conversations' first messages (inbox record, bot answer) waiting for their turn in the hub-wide pace (--new-conversations-per-sec).",
            new_conversations_waiting as u64,
        );
        one(
            "natter_history_reads_waiting",
            "gauge",
            "History reads from the store waiting for their client address's turn (they hold no share of --max-replay-in-flight meanwhile).",
            history_reads_waiting as u64,
        );
        one(
            "natter_duplicates_total",
            "counter",
            "Re-sent messages acknowledged again.",
            g(&self.duplicates),
        );
        one(
            "natter_slow_consumers_dropped_total",
            "counter",
            "Connections closed because their send queue was full.",
            g(&self.slow_consumers),
        );
        one(
            "natter_stale_connections_closed_total",
            "counter",
            "Connections closed after the idle timeout.",
            g(&self.stale_closed),
        );
        one("natter_polls_waiting", "gauge", "Long-polls being held.", g(&self.polls_waiting));
        one("natter_sockets", "gauge", "Open sockets, WebSocket and HTTP.", g(&self.sockets));
        one("natter_max_sockets", "gauge", "The --max-connections in force.", g(&self.max_sockets));
        one(
            "natter_ring_bytes",
            "gauge",
            "Bytes of recent messages held in memory for fast resume.",
            ring_bytes as u64,
        );
        one(
            "natter_replay_bytes",
            "gauge",
            "Bytes of --max-replay-in-flight taken by history being read from the store.",
            replay_bytes as u64,
        );
        one(
            "natter_send_queue_bytes",
            "gauge",
            "Bytes of frames queued to connections and not yet written (a frame shared by several is counted in each queue).",
            send_queue_bytes as u64,
        );
        one(
            "natter_address_send_queue_bytes_max",
            "gauge",
            "The most bytes queued to the connections of any one client address or IPv6 network (--address-send-queue-bytes).",
            address_send_queue_bytes as u64,
        );
        one(
            "natter_conversations_evicted_total",
            "counter",
            "Idle conversations forgotten to stay under --max-conversations.",
            g(&self.conversations_evicted),
        );
        let _ = writeln!(out, "# HELP natter_limited_total Requests, frames and connections refused by a budget or cap, by limit.");
        let _ = writeln!(out, "# TYPE natter_limited_total counter");
        for (limit, n) in Limit::ALL.iter().zip(&self.limited) {
            let _ = writeln!(out, "natter_limited_total{{limit=\"{}\"}} {}", limit.as_str(), g(n));
        }
        let _ = writeln!(out, "# HELP natter_errors_total Error answers sent, by code.");
        let _ = writeln!(out, "# TYPE natter_errors_total counter");
        for (code, n) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(out, "natter_errors_total{{code=\"{}\"}} {}", code.as_str(), g(n));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.refusal(ErrorCode::BadJson);
        Metrics::add(&m.messages_in, 3);
        m.limited(Limit::Address);
        let text = m.render(&Gauges {
            conversations: 2,
            rooms: 1,
            ring_bytes: 300,
            reply_calls: 3,
            reply_waiting: 0,
            turns_waiting: 0,
            new_conversations_waiting: 7,
            history_reads_waiting: 5,
            replay_bytes: 4096,
            send_queue_bytes: 70_000,
            address_send_queue_bytes: 65_000,
        });
        assert!(text.contains("natter_send_queue_bytes 70000\n"), "{text}");
        assert!(text.contains("natter_address_send_queue_bytes_max 65000\n"), "{text}");
        assert!(text.contains("natter_limited_total{limit=\"address_rate\"} 1\n"), "{text}");
        assert!(text.contains("natter_ring_bytes 300\n"), "{text}");
        assert!(text.contains("natter_new_conversations_waiting 7\n"), "{text}");
        assert!(text.contains("natter_history_reads_waiting 5\n"), "{text}");
        assert!(text.contains("natter_replay_bytes 4096\n"), "{text}");
        assert!(text.contains("natter_messages_in_total 3\n"), "{text}");
        assert!(text.contains("natter_errors_total{code=\"bad_json\"} 1\n"), "{text}");
        assert!(text.contains("natter_conversations 2\n"), "{text}");
        assert!(text.contains("natter_reply_calls 3\n"), "{text}");
    }
}
