//! Server-Sent Events, as the LLM backend reads them: an incremental parser with a cap on every
//! line and every event, so a server that never ends a line or an event cannot grow the hub.
//!
//! A chat-completion chunk is a few hundred bytes; [`MAX_LINE`] and [`MAX_EVENT`] leave two
//! orders of magnitude of room and stop there. A server that streams `data:` lines without the
//! blank line that ends an event would otherwise pile them all into one event.

use thiserror::Error;

/// Longest line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// Most `data` one event may hold, in bytes (its `data:` lines joined).
pub const MAX_EVENT: usize = 64 * 1024;

/// A Server-Sent Events stream that cannot be read.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum SseError {
    /// A line is longer than [`MAX_LINE`] bytes.
    #[error("an event-stream line is longer than {0} bytes")]
    LineTooLong(usize),
    /// An event's data is more than [`MAX_EVENT`] bytes (no blank line ends it).
    #[error("an event holds more than {0} bytes of data (no blank line ends it)")]
    EventTooLong(usize),
    /// A line is not UTF-8.
    #[error("an event-stream line is not UTF-8")]
    NotUtf8,
}

/// Incremental Server-Sent Events parser: feed it network chunks cut anywhere (inside a line,
/// inside a UTF-8 character, between `\r` and `\n`), get complete events' `data` back.
///
/// Follows the WHATWG rules the chat servers rely on: lines end with `\n`, `\r\n` or `\r`; a
/// blank line ends an event; `data:` lines of one event are joined with `\n`; one space after
/// the colon is dropped; comments (`:`) and other fields (`event`, `id`, `retry`) are ignored.
/// It holds at most [`MAX_LINE`] + [`MAX_EVENT`] bytes whatever it is fed.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The current line's bytes so far.
    line: Vec<u8>,
    /// The current event's data so far.
    data: String,
    /// Whether the current event has a `data` field (an empty one counts).
    has_data: bool,
    /// The previous chunk ended with `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`, pushing the `data` of every event they complete onto `events`.
    pub fn feed(&mut self, bytes: &[u8], events: &mut Vec<String>) -> Result<(), SseError> {
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line(&line, events)?;
                    self.line = line;
                    self.line.clear();
                }
                _ if self.line.len() >= MAX_LINE => return Err(SseError::LineTooLong(MAX_LINE)),
                _ => self.line.push(b),
            }
        }
        Ok(())
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<String>) -> Result<(), SseError> {
        if line.is_empty() {
            if std::mem::take(&mut self.has_data) {
                events.push(std::mem::take(&mut self.data));
            }
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            let joiner = usize::from(self.has_data);
            if self.data.len() + joiner + value.len() > MAX_EVENT {
                return Err(SseError::EventTooLong(MAX_EVENT));
            }
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(stream: &[u8], size: usize) -> Vec<String> {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for piece in stream.chunks(size) {
            p.feed(piece, &mut events).unwrap();
        }
        events
    }

    #[test]
    fn events_survive_any_chunking() {
        let stream = "data: {\"a\":\"é€😀\"}\r\n\r\n: keep-alive\n\nevent: x\ndata:one\ndata: two\n\n\
                      id: 3\rdata: [DONE]\r\rdata: unterminated";
        let want = ["{\"a\":\"é€😀\"}", "one\ntwo", "[DONE]"];
        for size in 1..=stream.len() {
            assert_eq!(parse_in_pieces(stream.as_bytes(), size), want, "chunks of {size} bytes");
        }
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        p.feed(b"data: a\r", &mut events).unwrap();
        p.feed(b"\n", &mut events).unwrap();
        assert!(events.is_empty(), "\\r\\n is one line end, not a blank line");
        p.feed(b"\r\n", &mut events).unwrap();
        assert_eq!(events, ["a"]);
    }

    #[test]
    fn empty_data_is_an_event_and_blank_lines_alone_are_not() {
        assert_eq!(parse_in_pieces(b"\n\n\ndata\n\ndata:\n\n", 3), ["", ""]);
    }

    #[test]
    fn refuses_bad_lines() {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        assert_eq!(p.feed(b"data: \xff\xfe\n", &mut events), Err(SseError::NotUtf8));
        let mut p = SseParser::new();
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(p.feed(&long, &mut events), Err(SseError::LineTooLong(MAX_LINE)));
    }

    #[test]
    fn data_lines_without_a_blank_line_stop_at_the_event_cap() {
        // Short lines, each well under the line cap, never ended by a blank line: the event's
        // data must not grow past MAX_EVENT.
        let mut p = SseParser::new();
        let mut events = Vec::new();
        let line = format!("data: {}\n", "y".repeat(1000));
        let mut fed = 0;
        let err = loop {
            if let Err(e) = p.feed(line.as_bytes(), &mut events) {
                break e;
            }
            fed += line.len();
            assert!(fed < 1024 * 1024, "still accepting after {fed} bytes");
        };
        assert_eq!(err, SseError::EventTooLong(MAX_EVENT));
        assert!(events.is_empty());
        assert!(p.data.len() <= MAX_EVENT);
        // Exactly at the cap (two lines and their joining newline) is still one event.
        let mut p = SseParser::new();
        let half = MAX_EVENT / 2;
        let exact = format!("data: {}\ndata: {}\n\n", "z".repeat(half), "z".repeat(MAX_EVENT - half - 1));
        p.feed(exact.as_bytes(), &mut events).unwrap();
        assert_eq!(events.iter().map(String::len).collect::<Vec<_>>(), [MAX_EVENT]);
    }
}
