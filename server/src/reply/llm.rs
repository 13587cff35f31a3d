//! The LLM backend: an OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM,
//! llama.cpp server, …) answers, streamed.
//!
//! Each visitor message becomes `POST {--llm-url}/chat/completions` with `stream: true`, the
//! system prompt (with the visitor's page filled in), the last `--llm-history` messages of the
//! conversation and the new message. The answer is Server-Sent Events:
//! `data: {"choices":[{"delta":{"content":"…"}}]}` lines, ending with `data: [DONE]`. The
//! stream is consumed as it arrives ([`SseParser`] reassembles lines cut anywhere between
//! network chunks) while the hub keeps the bot's `typing` indicator on; the whole text is stored
//! as one `bot` message (category `llm`), cut at `--reply-max-chars`.
//!
//! An HTTP error status, an `error` object in the stream, a stream that ends before `[DONE]`
//! (or a `finish_reason`), or silence longer than `--reply-timeout` is a [`ReplyError`]; the
//! partial text is dropped and the hub stores the [`Fallback`] answer.

use std::time::Duration;

use futures_util::StreamExt as _;
use natter_protocol::Role;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::webhook::{describe, parse_url, read_capped, shown};
use super::{clip, Fallback, Reply, ReplyEngine, ReplyError, ReplyRequest};
use crate::store::BoxFuture;

/// The system prompt used without `--llm-system-prompt`; `{page}` becomes the visitor's page.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are the friendly support assistant of this website, answering \
visitors in a small chat window. The visitor is on {page}. Answer in the visitor's language, in a few \
short sentences of plain text (no Markdown, no headings). Use the page they are on to understand what \
they are asking about. If you do not know the answer, say so honestly and offer to pass the question \
to a human colleague; never invent facts, prices or links.";

/// Category stored on LLM replies.
const CATEGORY: &str = "llm";

/// Longest SSE line accepted; a chunk of a chat stream is a few hundred bytes.
const MAX_LINE: usize = 1024 * 1024;

/// How much of an error answer's body is read (and quoted in the log line).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Settings of an [`LlmEngine`] (from the `--llm-*` and `--reply-*` flags).
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Base URL (`--llm-url`); the engine POSTs to `{base}/chat/completions`.
    pub base_url: String,
    /// Model name (`--llm-model`).
    pub model: String,
    /// Bearer token (`--llm-api-key`).
    pub api_key: Option<String>,
    /// System prompt with `{page}` (`--llm-system-prompt`), [`DEFAULT_SYSTEM_PROMPT`] when `None`.
    pub system_prompt: Option<String>,
    /// Earlier messages sent along (`--llm-history`).
    pub history: usize,
    /// `max_tokens` (`--llm-max-tokens`, 0 for none).
    pub max_tokens: u32,
    /// Longest silence (`--reply-timeout`).
    pub timeout: Duration,
    /// Longest reply in characters (`--reply-max-chars`).
    pub max_chars: usize,
}

/// Answers with an OpenAI-compatible chat model, streamed.
#[derive(Debug)]
pub struct LlmEngine {
    client: reqwest::Client,
    endpoint: Url,
    /// The endpoint without query, for log lines.
    shown: String,
    authorization: Option<HeaderValue>,
    settings: LlmSettings,
    fallback: Fallback,
}

/// One chat message of the request.
#[derive(Debug, Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// The request body.
#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

/// One streamed chunk (only the fields the hub reads; servers add many more).
#[derive(Debug, Deserialize)]
struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    /// Some servers report a failure mid-stream as `{"error": {...}}`.
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
}

/// A Server-Sent Events stream that cannot be read.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum SseError {
    /// A line is longer than the parser accepts.
    #[error("an event-stream line is longer than {0} bytes")]
    LineTooLong(usize),
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
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        Ok(())
    }
}

/// What one event of the stream means.
#[derive(Debug, PartialEq)]
struct Step {
    /// More text (possibly empty: role-only or keep-alive chunks).
    text: String,
    /// The answer is complete (`[DONE]`, or a `finish_reason`).
    done: bool,
}

/// Reads one event's data.
fn step(data: &str) -> Result<Step, String> {
    if data.trim() == "[DONE]" {
        return Ok(Step { text: String::new(), done: true });
    }
    let chunk: ChatChunk = serde_json::from_str(data)
        .map_err(|e| format!("malformed stream chunk ({e}): {}", clip(data, 200)))?;
    if let Some(error) = chunk.error {
        return Err(format!("the server reported an error: {}", clip(&error.to_string(), 300)));
    }
    let mut text = String::new();
    let mut finished = false;
    for choice in chunk.choices {
        if let Some(content) = choice.delta.and_then(|d| d.content) {
            text.push_str(&content);
        }
        finished |= choice.finish_reason.is_some();
    }
    // A finish_reason ends the answer even on servers that send no [DONE] after it.
    Ok(Step { text, done: finished })
}

impl LlmEngine {
    /// An engine for `settings`; fails with a message naming the flag when one is unusable.
    pub fn new(settings: LlmSettings, fallback: Fallback) -> Result<Self, String> {
        let base = parse_url("--llm-url", &settings.base_url)?;
        let endpoint = Url::parse(&format!("{}/chat/completions", base.as_str().trim_end_matches('/')))
            .map_err(|e| format!("--llm-url {:?} cannot take /chat/completions: {e}", settings.base_url))?;
        if settings.model.trim().is_empty() {
            return Err("--llm-model is empty; name the model to ask (gpt-4o-mini, llama3.2, …)".into());
        }
        let authorization = match settings.api_key.as_deref().filter(|k| !k.is_empty()) {
            None => None,
            Some(key) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| "--llm-api-key holds characters an HTTP header cannot carry".to_string())?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        // No overall timeout: a long answer may stream for a while. The silence limit is applied
        // per read instead (`read_timeout`), plus connecting.
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .read_timeout(settings.timeout)
            .user_agent(concat!("natter-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the LLM HTTP client: {e}"))?;
        Ok(LlmEngine { client, shown: shown(&endpoint), endpoint, authorization, settings, fallback })
    }

    /// The request body for `request`.
    fn body<'a>(&'a self, request: &'a ReplyRequest, system: &'a str) -> ChatRequest<'a> {
        let mut messages = Vec::with_capacity(request.history.len() + 2);
        messages.push(ChatMessage { role: "system", content: system });
        let skip = request.history.len().saturating_sub(self.settings.history);
        for turn in &request.history[skip..] {
            let role = match turn.role {
                Role::User => "user",
                // Operators speak for the site, as the assistant does.
                Role::Bot | Role::Agent => "assistant",
                Role::System => continue,
            };
            messages.push(ChatMessage { role, content: &turn.text });
        }
        messages.push(ChatMessage { role: "user", content: &request.message });
        ChatRequest {
            model: &self.settings.model,
            messages,
            stream: true,
            max_tokens: (self.settings.max_tokens > 0).then_some(self.settings.max_tokens),
        }
    }

    async fn call(&self, request: &ReplyRequest) -> Result<Option<Reply>, ReplyError> {
        let fail = |what: String| ReplyError::Backend(format!("llm {}: {what}", self.shown));
        let timed_out =
            || fail(format!("silent for longer than {:?} (--reply-timeout)", self.settings.timeout));
        let page = match request.page().filter(|p| !p.is_empty()) {
            None => "an unknown page of the site",
            Some("/") => "the home page",
            Some(p) => p,
        };
        let system =
            self.settings.system_prompt.as_deref().unwrap_or(DEFAULT_SYSTEM_PROMPT).replace("{page}", page);
        let mut post = self.client.post(self.endpoint.clone()).json(&self.body(request, &system));
        if let Some(auth) = &self.authorization {
            post = post.header(AUTHORIZATION, auth.clone());
        }
        let response = post.send().await.map_err(|e| {
            if e.is_timeout() {
                timed_out()
            } else {
                fail(format!("request failed: {}", describe(e)))
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            let body = read_capped(response, MAX_ERROR_BODY).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            return Err(fail(format!("answered HTTP {status}: {}", clip(&text, 300))));
        }
        let mut stream = response.bytes_stream();
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut text = String::new();
        // Stop reading once the text is surely longer than what will be stored.
        let enough = self.settings.max_chars.saturating_add(1);
        'read: loop {
            let chunk = match stream.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) if e.is_timeout() => return Err(timed_out()),
                Some(Err(e)) => return Err(fail(format!("the stream broke: {}", describe(e)))),
                None => return Err(fail("the stream ended before [DONE]".into())),
            };
            parser.feed(&chunk, &mut events).map_err(|e| fail(e.to_string()))?;
            for data in events.drain(..) {
                let step = step(&data).map_err(fail)?;
                text.push_str(&step.text);
                if step.done {
                    break 'read;
                }
            }
            if text.chars().count() > enough {
                tracing::debug!(max = self.settings.max_chars, "LLM reply reached --reply-max-chars; cut");
                break;
            }
        }
        if text.trim().is_empty() {
            return Err(fail("the answer is empty".into()));
        }
        Ok(Some(Reply { text: clip(&text, self.settings.max_chars), category: Some(CATEGORY.to_string()) }))
    }
}

impl LlmEngine {
    /// The endpoint without query string, as log lines show it.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }
}

impl ReplyEngine for LlmEngine {
    fn reply<'a>(&'a self, request: &'a ReplyRequest) -> BoxFuture<'a, Result<Option<Reply>, ReplyError>> {
        Box::pin(self.call(request))
    }

    fn author(&self) -> Option<&str> {
        self.fallback.author()
    }

    fn history_window(&self) -> usize {
        self.settings.history
    }

    fn fallback(&self, request: &ReplyRequest) -> Option<Reply> {
        self.fallback.answer(request)
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
    fn sse_events_survive_any_chunking() {
        let stream = "data: {\"a\":\"é€😀\"}\r\n\r\n: keep-alive\n\nevent: x\ndata:one\ndata: two\n\n\
                      id: 3\rdata: [DONE]\r\rdata: unterminated";
        let want = ["{\"a\":\"é€😀\"}", "one\ntwo", "[DONE]"];
        for size in 1..=stream.len() {
            assert_eq!(parse_in_pieces(stream.as_bytes(), size), want, "chunks of {size} bytes");
        }
    }

    #[test]
    fn sse_crlf_split_between_chunks_is_one_line_end() {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        p.feed(b"data: a\r", &mut events).unwrap();
        p.feed(b"\n", &mut events).unwrap();
        assert!(events.is_empty(), "\\r\\n is one line end, not a blank line");
        p.feed(b"\r\n", &mut events).unwrap();
        assert_eq!(events, ["a"]);
    }

    #[test]
    fn sse_empty_data_is_an_event_and_blank_lines_alone_are_not() {
        assert_eq!(parse_in_pieces(b"\n\n\ndata\n\ndata:\n\n", 3), ["", ""]);
    }

    #[test]
    fn sse_refuses_bad_lines() {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        assert_eq!(p.feed(b"data: \xff\xfe\n", &mut events), Err(SseError::NotUtf8));
        let mut p = SseParser::new();
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(p.feed(&long, &mut events), Err(SseError::LineTooLong(MAX_LINE)));
    }

    #[test]
    fn steps_read_openai_chunks() {
        let s = |text: &str, done| Ok(Step { text: text.into(), done });
        assert_eq!(step("[DONE]"), s("", true));
        assert_eq!(
            step(r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#),
            s("", false)
        );
        assert_eq!(
            step(r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#),
            s("Hel", false)
        );
        assert_eq!(
            step(r#"{"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}]}"#),
            s("!", true)
        );
        assert!(step(r#"{"error":{"message":"overloaded"}}"#).unwrap_err().contains("overloaded"));
        assert!(step("{not json").unwrap_err().contains("malformed"));
    }
}
