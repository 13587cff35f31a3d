//! Noticing a link that is dead but not closed.
//!
//! A laptop that slept, a network change, a NAT that dropped its mapping or a proxy that stops
//! forwarding leave the WebSocket "open": no close event comes for minutes, and a send is
//! written into a buffer that never drains. The browser cannot tell; only an answer can. So
//! the widget expects one:
//! - when the link has been quiet for [`QUIET_MS`], it sends an app-level `ping` (the hub
//!   answers `pong` with the same nonce); it does the same at once when the page says the world
//!   may have changed (`online`, `pageshow`, the tab visible again, a frozen page resumed);
//! - every message sent on the socket awaits its `ack` (or refusal);
//! - while a pong or an ack is awaited, the hub must say *something* within
//!   [`REPLY_DEADLINE_MS`]; any frame restarts that deadline, so a slow link that is still
//!   delivering is not mistaken for a dead one.
//!
//! A missed deadline makes the model drop the socket without waiting for its close and open a
//! fresh one at once; the new one resumes after the last `seq` and re-sends the outbox (the
//! hub de-duplicates by id). So a dead link is noticed within [`BOUND_AFTER_ACTIVITY_S`] of a
//! send or a wake-up, and within [`BOUND_IDLE_S`] on a page where nothing happens (timers of
//! a hidden tab may run late: browsers throttle them). `npm/README.md` documents both bounds
//! and a test holds it to these constants.
//!
//! This is the "when to suspect" half; [`super::link`] does the reconnecting.

use crate::prelude::*;

use super::{Effect, Timer};
use natter_protocol::ServerMessage;

/// Silence on a live socket after which the widget pings the hub.
pub(crate) const QUIET_MS: u32 = 20_000;
/// How long an awaited pong or ack may go without the hub saying anything at all.
pub(crate) const REPLY_DEADLINE_MS: u32 = 8_000;
// The two bounds are what npm/README.md promises; only its test reads them in code.
/// Seconds within which a dead link is noticed after a send or a wake-up (documented).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const BOUND_AFTER_ACTIVITY_S: u32 = REPLY_DEADLINE_MS / 1000;
/// Seconds within which a dead link is noticed on an idle page (documented).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const BOUND_IDLE_S: u32 = (QUIET_MS + REPLY_DEADLINE_MS) / 1000;

/// What the widget is waiting to hear on the live socket.
#[derive(Debug, Clone, Default)]
pub(crate) struct Liveness {
    /// A live socket is being watched.
    watching: bool,
    /// The nonce of the next ping.
    next_nonce: u32,
    /// The ping whose pong is awaited (its nonce, which the hub echoes; useful when reading a
    /// socket's traffic).
    ping: Option<u32>,
    /// Ids of messages sent on this socket that have had no answer yet.
    in_flight: Vec<String>,
    /// [`Timer::ReplyDeadline`] is running.
    deadline: bool,
}

impl Liveness {
    fn awaiting(&self) -> bool {
        self.ping.is_some() || !self.in_flight.is_empty()
    }

    /// Runs the reply deadline while something is awaited, and only then.
    fn arm(&mut self, restart: bool, fx: &mut Vec<Effect>) {
        if self.awaiting() {
            if restart || !self.deadline {
                fx.push(Effect::StartTimer { timer: Timer::ReplyDeadline, ms: REPLY_DEADLINE_MS });
            }
            self.deadline = true;
        } else if self.deadline {
            self.deadline = false;
            fx.push(Effect::StopTimer(Timer::ReplyDeadline));
        }
    }

    /// A socket went live: watch it from a clean slate.
    pub(super) fn start(&mut self, fx: &mut Vec<Effect>) {
        self.stop(fx);
        self.watching = true;
        fx.push(Effect::StartTimer { timer: Timer::Quiet, ms: QUIET_MS });
    }

    /// The socket is no longer live: forget what it owed.
    pub(super) fn stop(&mut self, fx: &mut Vec<Effect>) {
        if !self.watching {
            return;
        }
        self.watching = false;
        self.ping = None;
        self.in_flight.clear();
        fx.push(Effect::StopTimer(Timer::Quiet));
        if self.deadline {
            self.deadline = false;
            fx.push(Effect::StopTimer(Timer::ReplyDeadline));
        }
    }

    /// Message `id` went out on the socket: its ack is now awaited.
    pub(super) fn sent(&mut self, id: &str, fx: &mut Vec<Effect>) {
        if !self.watching {
            return;
        }
        if !self.in_flight.iter().any(|x| x == id) {
            self.in_flight.push(id.to_string());
        }
        self.arm(false, fx);
    }

    /// Asks the hub to prove the socket works, unless a pong is awaited already.
    pub(super) fn probe(&mut self, fx: &mut Vec<Effect>) {
        if !self.watching || self.ping.is_some() {
            return;
        }
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        self.ping = Some(nonce);
        fx.push(Effect::Ping { nonce });
        self.arm(false, fx);
    }

    /// A frame arrived on the watched socket: the link is not quiet, a pong answers the ping,
    /// and a refusal answers the message it names.
    pub(super) fn heard(&mut self, message: &ServerMessage, fx: &mut Vec<Effect>) {
        if !self.watching {
            return;
        }
        fx.push(Effect::StartTimer { timer: Timer::Quiet, ms: QUIET_MS });
        match message {
            // One ping at a time, and frames of an older socket never get here: a pong on the
            // watched socket is the awaited one.
            ServerMessage::Pong(_) => self.ping = None,
            ServerMessage::Error(e) => {
                if let Some(id) = &e.id {
                    self.in_flight.retain(|x| x != id);
                }
            }
            _ => {}
        }
    }

    /// After a frame has been read: messages no longer `waiting` have had their answer. The
    /// hub has just spoken, so a deadline still needed starts again from now.
    pub(super) fn settle(&mut self, waiting: impl Fn(&str) -> bool, fx: &mut Vec<Effect>) {
        if !self.watching {
            return;
        }
        self.in_flight.retain(|id| waiting(id));
        self.arm(true, fx);
    }

    /// [`Timer::ReplyDeadline`] fired: whether the watched socket is to be given up as dead.
    pub(super) fn deadline_passed(&mut self) -> bool {
        self.deadline = false;
        self.watching && self.awaiting()
    }
}

#[cfg(test)]
mod tests;
