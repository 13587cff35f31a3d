//! The log on its own: de-duplication by id, order by seq, what counts as unread and chimes,
//! the outbox as shown, acknowledgements, refusals, typing.

use super::*;
use natter_protocol::{Ack, ErrorCode, SystemNotice, TypingNotice};

const WATCHING: Attention = Attention { watching: true, muted: false };
const AWAY: Attention = Attention { watching: false, muted: false };
const AWAY_MUTED: Attention = Attention { watching: false, muted: true };

fn conv(id: &str, seq: u64) -> ConversationMessage {
    ConversationMessage { id: id.into(), seq, message: id.into(), ..Default::default() }
}

fn out(id: &str, text: &str) -> Outgoing {
    Outgoing { id: id.into(), text: text.into(), time: "t".into(), context: String::new() }
}

fn history(messages: Vec<ServerMessage>) -> History {
    let last_seq = messages.iter().filter_map(ServerMessage::seq).max().unwrap_or(0);
    History { room: None, messages, complete: true, gap: None, last_seq }
}

/// A log that has read the (empty) history the page loads with, so what comes next is news.
fn loaded() -> Log {
    let mut log = Log::restore(Vec::new(), "gap".into(), None);
    log.history(history(vec![]), AWAY, &mut Vec::new());
    log
}

fn ids(log: &Log) -> Vec<&str> {
    log.messages.iter().map(|m| m.id.as_str()).collect()
}

fn chimes(fx: &[Effect]) -> usize {
    fx.iter().filter(|e| **e == Effect::Chime).count()
}

#[test]
fn a_message_is_shown_once_however_often_it_arrives() {
    let mut log = loaded();
    let mut fx = Vec::new();
    assert!(log.write(&out("a", "hello"), &mut fx));
    log.acknowledged("a", 1, &mut fx);
    // The hub echoes it, replays it, and delivers a reply twice.
    for m in [
        ServerMessage::User(conv("a", 1)),
        ServerMessage::Bot(conv("r", 2)),
        ServerMessage::Bot(conv("r", 2)),
    ] {
        log.receive(m, true, AWAY, &mut fx);
    }
    log.history(
        history(vec![ServerMessage::User(conv("a", 1)), ServerMessage::Bot(conv("r", 2))]),
        AWAY,
        &mut fx,
    );
    assert_eq!(ids(&log), ["a", "r"]);
    assert_eq!(log.unread, 1, "the duplicate reply is not unread again");
    assert_eq!(log.messages[0].delivery, Delivery::Sent);
    assert_eq!(log.last_seq, Some(2));
}

#[test]
fn stored_messages_go_in_seq_order_ahead_of_pending_ones() {
    let mut log = loaded();
    let mut fx = Vec::new();
    log.write(&out("p", "pending"), &mut fx);
    log.receive(ServerMessage::Bot(conv("three", 3)), true, WATCHING, &mut fx);
    log.receive(ServerMessage::Bot(conv("one", 1)), true, WATCHING, &mut fx);
    log.receive(ServerMessage::Agent(conv("two", 2)), true, WATCHING, &mut fx);
    assert_eq!(ids(&log), ["one", "two", "three", "p"]);
    // A hub notice has no seq: it stays where it arrived, and stored messages that come
    // later go after it.
    let mut log = loaded();
    let notice = SystemNotice { message: "hand-over".into(), timestamp: "t".into(), room: None };
    log.receive(ServerMessage::System(notice), true, WATCHING, &mut fx);
    log.receive(ServerMessage::Bot(conv("five", 5)), true, WATCHING, &mut fx);
    assert_eq!(ids(&log), ["system-1", "five"]);
}

#[test]
fn unread_and_chime_depend_on_who_is_watching() {
    let mut log = loaded();
    let mut fx = Vec::new();
    log.receive(ServerMessage::Bot(conv("1", 1)), true, WATCHING, &mut fx);
    // The model marks what a watching visitor has in front of them as read.
    log.mark_read(&mut fx);
    assert_eq!((log.unread, chimes(&fx)), (0, 0), "seen as it arrives");
    assert!(fx.contains(&Effect::SaveRead(1)));
    let mut fx = Vec::new();
    log.receive(ServerMessage::Bot(conv("2", 2)), true, AWAY, &mut fx);
    assert_eq!((log.unread, chimes(&fx)), (1, 1));
    let mut fx = Vec::new();
    log.receive(ServerMessage::Agent(conv("3", 3)), true, AWAY_MUTED, &mut fx);
    assert_eq!((log.unread, chimes(&fx)), (2, 0), "muted: counted, silent");
    let mut fx = Vec::new();
    log.receive(ServerMessage::User(conv("4", 4)), true, AWAY, &mut fx);
    assert_eq!((log.unread, chimes(&fx)), (2, 0), "the visitor's own words from another tab");
    let notice = SystemNotice { message: "maintenance".into(), timestamp: "t".into(), room: None };
    log.receive(ServerMessage::System(notice), true, AWAY, &mut fx);
    assert_eq!((log.unread, chimes(&fx)), (3, 1), "hub notices are news too");
    log.mark_read(&mut Vec::new());
    assert_eq!(log.unread, 0);
}

#[test]
fn the_first_history_is_the_conversation_so_far_later_ones_are_news() {
    let mut log = Log::restore(Vec::new(), "gap".into(), None);
    let mut fx = Vec::new();
    log.history(history(vec![ServerMessage::Bot(conv("old", 1))]), AWAY, &mut fx);
    assert_eq!(log.unread, 0);
    // No chime, no message notice for what was already there; with nothing recorded as read
    // for the session, it is recorded now.
    assert_eq!(fx, [Effect::SaveRead(1)]);
    log.history(history(vec![ServerMessage::Bot(conv("missed", 2))]), AWAY, &mut fx);
    assert_eq!(log.unread, 1);
    assert!(fx.iter().any(|e| matches!(e, Effect::Notify(Notice::Message(m)) if m.id == "missed")));
    // A resume that could not be filled says so, once, without counting as unread.
    let gap = History { complete: false, last_seq: 9, ..history(vec![]) };
    log.history(gap, AWAY, &mut fx);
    assert_eq!(log.messages.last().map(|m| m.role), Some(Role::System));
    assert_eq!((log.unread, log.last_seq), (1, Some(9)));
}

#[test]
fn a_restored_outbox_shows_as_pending_or_failed() {
    let entry = |id: &str, failed| OutboxEntry {
        id: id.into(),
        text: id.into(),
        time: "t".into(),
        context: String::new(),
        failed,
        refusals: 0,
    };
    let log = Log::restore(vec![entry("a", false), entry("b", true), entry("a", false)], "gap".into(), None);
    assert_eq!(ids(&log), ["a", "b"], "one row per id");
    assert_eq!(log.messages[0].delivery, Delivery::Pending);
    assert_eq!(log.messages[1].delivery, Delivery::Failed);
    assert!(log.messages.iter().all(|m| m.role == Role::User && m.seq.is_none()));
}

#[test]
fn writing_queues_and_shows_but_blank_is_nothing() {
    let mut log = loaded();
    let mut fx = Vec::new();
    assert!(!log.write(&out("x", " \n\t"), &mut fx));
    assert!(fx.is_empty() && log.messages.is_empty() && log.outbox.entries().is_empty());
    assert!(log.write(&out("a", "hi"), &mut fx));
    assert!(log.outbox.contains("a"));
    assert_eq!(fx[0], Effect::SaveOutbox);
    assert!(matches!(&fx[1], Effect::Notify(Notice::Message(m)) if m.delivery == Delivery::Pending));
}

#[test]
fn refusals_retry_a_few_times_then_fail_until_the_visitor_retries() {
    let mut log = loaded();
    let mut fx = Vec::new();
    log.write(&out("a", "hi"), &mut fx);
    let refusal = |code, retry_after_ms| ErrorFrame {
        code,
        message: String::new(),
        id: Some("a".into()),
        retry_after_ms,
        room: None,
    };
    let mut fx = Vec::new();
    assert!(!log.refused(&refusal(ErrorCode::RateLimited, Some(3_600_000)), &mut fx));
    assert_eq!(fx, [Effect::StartTimer { timer: Timer::Resend, ms: 60_000 }], "the hub's wait, capped");
    assert!(!log.refused(&refusal(ErrorCode::Internal, None), &mut Vec::new()));
    assert!(log.refused(&refusal(ErrorCode::Unavailable, None), &mut Vec::new()), "third time fails");
    assert_eq!(log.messages[0].delivery, Delivery::Failed);
    assert_eq!(log.outbox.first_sendable(), None);
    assert!(log.retry("a", &mut Vec::new()));
    assert_eq!(log.messages[0].delivery, Delivery::Pending);
    assert!(!log.retry("gone", &mut Vec::new()), "only what is still in the outbox can go again");
    // Refusals about nothing of ours change nothing.
    let mut fx = Vec::new();
    assert!(
        !log.refused(&ErrorFrame { id: Some("zz".into()), ..refusal(ErrorCode::TooLarge, None) }, &mut fx)
    );
    assert!(!log.refused(&ErrorFrame { id: None, ..refusal(ErrorCode::TooLarge, None) }, &mut fx));
    assert!(fx.is_empty());
}

#[test]
fn acknowledged_ids_are_remembered_up_to_a_limit() {
    let mut log = loaded();
    let mut fx = Vec::new();
    for i in 0..=ACKED_KEPT {
        let ack = Ack { id: format!("m{i}"), seq: i as u64 + 1, ..Default::default() };
        log.receive(ServerMessage::Ack(ack), true, AWAY, &mut fx);
    }
    assert_eq!(log.acked.len(), ACKED_KEPT);
    assert_eq!(log.acked.first().map(String::as_str), Some("m1"), "the oldest is forgotten");
    log.acknowledged("m1", 2, &mut fx);
    assert_eq!(log.acked.len(), ACKED_KEPT, "no id twice");
}

#[test]
fn typing_follows_the_bot_and_operators_in_the_support_conversation_only() {
    let mut log = loaded();
    let typing = |role, room: Option<&str>| {
        ServerMessage::Typing(TypingNotice { room: room.map(Into::into), role, from: None, active: true })
    };
    let mut fx = Vec::new();
    log.receive(typing(Role::User, None), true, AWAY, &mut fx);
    log.receive(typing(Role::Bot, Some("lobby")), true, AWAY, &mut fx);
    assert!(!log.typing && fx.is_empty(), "{fx:?}");
    log.receive(typing(Role::Agent, None), true, AWAY, &mut fx);
    assert!(log.typing);
    assert!(fx.iter().any(|e| matches!(e, Effect::StartTimer { timer: Timer::Typing, .. })));
    log.receive(ServerMessage::Agent(conv("r", 1)), true, AWAY, &mut fx);
    assert!(!log.typing, "the answer ends it");
    log.receive(typing(Role::Bot, None), true, AWAY, &mut fx);
    log.typing_expired();
    assert!(!log.typing);
}

#[test]
fn unread_is_what_came_after_the_last_read_seq_on_any_page_and_tab() {
    // The next page of a session that had read up to seq 1: the history brings 2 and 3.
    let mut log = Log::restore(Vec::new(), "gap".into(), Some(1));
    let mut fx = Vec::new();
    let h = history(vec![
        ServerMessage::Bot(conv("a", 1)),
        ServerMessage::User(conv("b", 2)),
        ServerMessage::Bot(conv("c", 3)),
        ServerMessage::Agent(conv("d", 4)),
    ]);
    log.history(h, AWAY, &mut fx);
    assert_eq!(log.unread, 2, "the bot's and the operator's after seq 1, not the visitor's own");
    assert_eq!(chimes(&fx), 0, "history at load does not chime");
    assert!(!fx.iter().any(|e| matches!(e, Effect::SaveRead(_))));
    // Another tab read up to 3, then up to 4; an older report changes nothing.
    log.read_elsewhere(3);
    assert_eq!(log.unread, 1);
    log.read_elsewhere(4);
    log.read_elsewhere(2);
    assert_eq!(log.unread, 0);
    // A new answer counts again.
    log.receive(ServerMessage::Bot(conv("e", 5)), true, AWAY, &mut fx);
    assert_eq!(log.unread, 1);
}

#[test]
fn operators_replies_keep_their_name_and_availability_and_closing_are_kept() {
    let mut log = loaded();
    let mut fx = Vec::new();
    assert_eq!(log.available, None, "a hub without an inbox says nothing");
    log.receive(
        ServerMessage::Availability(natter_protocol::Availability { online: Some(true) }),
        true,
        AWAY,
        &mut fx,
    );
    assert_eq!(log.available, Some(true));
    let agent = ConversationMessage { author: Some("Ada Lovelace".into()), ..conv("a1", 1) };
    let bot = ConversationMessage { author: Some("Natter".into()), ..conv("b1", 2) };
    log.receive(ServerMessage::Agent(agent), true, AWAY, &mut fx);
    log.receive(ServerMessage::Bot(bot), true, AWAY, &mut fx);
    assert_eq!(log.messages[0].author.as_deref(), Some("Ada Lovelace"));
    assert_eq!(log.messages[1].author, None, "only operators are named");

    let closed = natter_protocol::ConversationStatus {
        status: ConversationState::Closed,
        timestamp: "2026-11-22T10:00:00Z".into(),
    };
    log.receive(ServerMessage::ConversationStatus(closed), true, AWAY, &mut fx);
    assert_eq!(log.closed.as_deref(), Some("2026-11-22T10:00:00Z"));
    log.receive(
        ServerMessage::Availability(natter_protocol::Availability { online: Some(false) }),
        true,
        AWAY,
        &mut fx,
    );
    assert_eq!(log.available, Some(false));
    // The last operator account was removed: there is nobody to be online, so nothing is shown
    // (not "Away", which promises that someone comes back).
    log.receive(
        ServerMessage::Availability(natter_protocol::Availability { online: None }),
        true,
        AWAY,
        &mut fx,
    );
    assert_eq!(log.available, None);
    // The visitor writes again: the conversation is open again.
    log.receive(ServerMessage::User(conv("u1", 3)), true, AWAY, &mut fx);
    assert_eq!(log.closed, None);
}
