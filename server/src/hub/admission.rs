//! What a message must pass before the hub stores it (its id, text and context, the session's
//! rate), and how a refusal is said.
//!
//! A [`Refusal`] is made here or anywhere in the hub and travels up unchanged; the transport
//! that answers with it counts it once (`edge`), so no refusal is counted twice however
//! deep it was made.

use natter_protocol::{validate_message_id, ErrorCode, ErrorFrame, RawJson, ServerMessage};
use tokio::time::Instant;

use super::Hub;
use crate::metrics::Limit;
use crate::store::{ConversationKey, StoreError};

/// Something a client asked for that the hub refuses: becomes an `error` frame on a socket or
/// an error body with a 4xx/5xx on HTTP.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    /// The error code.
    pub(crate) code: ErrorCode,
    /// A human message naming the bad value.
    pub(crate) message: String,
    /// The id of the refused message, when it had one.
    pub(crate) id: Option<String>,
    /// For `rate_limited`: how long to wait, in milliseconds.
    pub(crate) retry_after_ms: Option<u64>,
    /// The room the refused frame was about.
    pub(crate) room: Option<String>,
    /// What the request names does not exist (an unknown conversation): an HTTP API answers
    /// 404 rather than 400. The wire code stays the one in `code`.
    pub(crate) missing: bool,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into(), id: None, retry_after_ms: None, room: None, missing: false }
    }

    /// Marks the refusal as naming something that does not exist (see `missing`).
    pub(crate) fn missing(mut self) -> Self {
        self.missing = true;
        self
    }

    /// Sets the refused message's id.
    pub(crate) fn with_id(mut self, id: Option<String>) -> Self {
        self.id = id;
        self
    }

    /// Says which room the refused frame was about (kept if already set).
    pub(crate) fn in_room(mut self, room: Option<&str>) -> Self {
        if self.room.is_none() {
            self.room = room.map(str::to_owned);
        }
        self
    }

    /// The `error` frame.
    pub(crate) fn frame(&self) -> ServerMessage {
        ServerMessage::Error(ErrorFrame {
            code: self.code,
            message: self.message.clone(),
            id: self.id.clone(),
            retry_after_ms: self.retry_after_ms,
            room: self.room.clone(),
        })
    }
}

/// A store failure, as the client hears it: `unavailable` (try again later) or `internal`.
/// Either way the same message can be sent again with the same id.
impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                Refusal::new(ErrorCode::Unavailable, format!("{m}; send it again later with the same id"))
            }
            other => Refusal::new(ErrorCode::Internal, format!("{other}; send it again with the same id")),
        }
    }
}

/// A token bucket: up to `burst` tokens, refilled at `rate` per second.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn full(burst: u32, now: Instant) -> Self {
        Bucket { tokens: f64::from(burst), at: now }
    }

    /// Takes one token at `now`; when there is none, `Err` says how many milliseconds until
    /// there will be one (at least 1).
    pub(super) fn take(&mut self, now: Instant, rate: f64, burst: u32) -> Result<(), u64> {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate;
        self.tokens = (self.tokens + refill).min(f64::from(burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - self.tokens) / rate * 1000.0).ceil() as u64;
        Err(wait_ms.max(1))
    }
}

impl Hub {
    /// Takes one token from the session's rate limit (`--rate-per-sec`, `--rate-burst`).
    pub(crate) fn rate_limit(&self, session: &std::sync::Arc<str>) -> Result<(), Refusal> {
        let config = &self.shared.config;
        if config.rate_burst == 0 || config.rate_per_sec <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let taken = {
            let mut state = self.lock();
            let conv = self.conversation(&mut state, &ConversationKey::Session(session.clone()))?;
            conv.bucket.get_or_insert_with(|| Bucket::full(config.rate_burst, now)).take(
                now,
                config.rate_per_sec,
                config.rate_burst,
            )
        };
        taken.map_err(|wait_ms| {
            self.shared.metrics.limited(Limit::Session);
            let mut r = Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "too many messages: at most {} per second after a burst of {}; wait {wait_ms} ms",
                    config.rate_per_sec, config.rate_burst
                ),
            );
            r.retry_after_ms = Some(wait_ms);
            r
        })
    }

    /// Checks what every message a client sends carries: its id when the client gave one, and
    /// its text, the `message` field (not blank, not longer than `--max-text` characters).
    pub(super) fn check_message(&self, id: &Option<String>, text: &str) -> Result<(), Refusal> {
        self.check_text_of(id, text, "`message`")
    }

    /// [`Hub::check_message`] for a text that arrives under another name: `what` names it in the
    /// refusal ("the reply (`text`)"), so an operator is told what was too long.
    pub(super) fn check_text_of(&self, id: &Option<String>, text: &str, what: &str) -> Result<(), Refusal> {
        if let Some(given) = id {
            validate_message_id(given)
                .map_err(|e| Refusal::new(ErrorCode::InvalidMessage, e.to_string()).with_id(id.clone()))?;
        }
        check_text(text, self.shared.config.max_text, what).map_err(|r| r.with_id(id.clone()))
    }

    /// Checks a visitor's `context`: at most `--max-context` bytes of JSON.
    pub(super) fn check_context(
        &self,
        id: &Option<String>,
        context: Option<&RawJson>,
    ) -> Result<(), Refusal> {
        let max = self.shared.config.max_context;
        match context {
            Some(c) if c.len() > max => {
                self.shared.metrics.limited(Limit::Context);
                Err(Refusal::new(
                    ErrorCode::TooLarge,
                    format!("`context` is {} bytes of JSON; the limit is {max}; send a smaller one", c.len()),
                )
                .with_id(id.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// Checks a text that `what` names: not blank, at most `max` characters, and no control
/// character but tab and line breaks (a NUL, an escape sequence that recolours a terminal
/// showing a log or an export, a bell).
fn check_text(text: &str, max: usize, what: &str) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err(Refusal::new(ErrorCode::InvalidMessage, format!("{what} is empty; send some text")));
    }
    let n = text.chars().count();
    if n > max {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("{what} is {n} characters long; the limit is {max}"),
        ));
    }
    let control = text.chars().enumerate().find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
    if let Some((at, c)) = control {
        return Err(Refusal::new(
            ErrorCode::InvalidMessage,
            format!(
                "{what} holds the control character U+{:04X} at character {at}; only tabs and line breaks may be sent",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, t0);
        for _ in 0..3 {
            assert_eq!(b.take(t0, 2.0, 3), Ok(()));
        }
        // Empty: at 2 per second the next token is 500 ms away.
        assert_eq!(b.take(t0, 2.0, 3), Err(500));
        assert_eq!(b.take(t0 + Duration::from_millis(250), 2.0, 3), Err(250));
        assert_eq!(b.take(t0 + Duration::from_millis(500), 2.0, 3), Ok(()));
        // A long pause refills to the burst, not beyond it.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(later, 2.0, 3), Ok(()));
        }
        assert!(b.take(later, 2.0, 3).is_err());
    }

    #[test]
    fn text_checks_name_the_problem() {
        assert!(check_text("hello", 5, "`message`").is_ok());
        let blank = check_text(" \n ", 5, "`message`").unwrap_err();
        assert_eq!(blank.code, ErrorCode::InvalidMessage);
        assert_eq!(blank.message, "`message` is empty; send some text");
        let long = check_text("héllo!", 5, "the note (`text`)").unwrap_err();
        assert_eq!(long.code, ErrorCode::TooLarge);
        assert_eq!(long.message, "the note (`text`) is 6 characters long; the limit is 5");
    }

    #[test]
    fn store_failures_become_retryable_refusals() {
        let r = Refusal::from(StoreError::Unavailable("Redis: connection refused".into()));
        assert_eq!(r.code, ErrorCode::Unavailable);
        assert!(r.code.is_retryable());
        let r = Refusal::from(StoreError::Backend("disk full".into()));
        assert_eq!(r.code, ErrorCode::Internal);
        assert!(r.message.contains("disk full"), "{}", r.message);
    }
}
