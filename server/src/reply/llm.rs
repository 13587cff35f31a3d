//! The LLM backend: an OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM,
//! llama.cpp server, …) answers, streamed.
//!
//! Each visitor message becomes `POST {--llm-url}/chat/completions` with `stream: true`: the
//! operator's system message, the last `--llm-history` messages of the conversation and the new
//! message with the visitor's context ahead of it ([`prompt`](super::prompt) says what goes
//! where; no visitor data enters the system message). The answer is Server-Sent Events:
//! `data: {"choices":[{"delta":{"content":"…"}}]}` lines, ending with `data: [DONE]`. The
//! stream is consumed as it arrives ([`SseParser`] reassembles lines cut anywhere between
//! network chunks, within its caps) while the hub keeps the bot's `typing` indicator on; the
//! whole text is stored as one `bot` message (category `llm`), cut at `--reply-max-chars`.
//!
//! An HTTP error status, an `error` object in the stream, a stream that ends before `[DONE]`
//! (or a `finish_reason`), a line or event over the SSE caps, more than [`MAX_STREAM_BYTES`]
//! streamed, or silence longer than `--reply-idle-timeout` is a [`ReplyError`]; the partial text
//! is dropped and the hub stores the [`Fallback`] answer. The whole reply's deadline
//! (`--reply-timeout`) is the hub's: it drops the call, and with it the connection.

use std::time::Duration;

use futures_util::StreamExt as _;
use natter_protocol::Role;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::prompt::{system_message, user_turn};
use super::sse::SseParser;
use super::webhook::{describe, parse_url, read_capped, shown};
use super::{clip, Fallback, Reply, ReplyEngine, ReplyError, ReplyRequest};
use crate::store::BoxFuture;

pub use super::prompt::DEFAULT_SYSTEM_PROMPT;

/// Category stored on LLM replies.
const CATEGORY: &str = "llm";

/// Most bytes read from one reply's stream (events, comments, keep-alives and all). A
/// 2,000-character answer streamed token by token is about 200 KB; past this the server is
/// not answering a chat message.
pub const MAX_STREAM_BYTES: usize = 4 * 1024 * 1024;

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
    /// The operator's prompt (`--llm-system-prompt`), [`DEFAULT_SYSTEM_PROMPT`] when `None`;
    /// `{page}` in it points at the visitor context (see [`prompt`](super::prompt)).
    pub system_prompt: Option<String>,
    /// Earlier messages sent along (`--llm-history`).
    pub history: usize,
    /// `max_tokens` (`--llm-max-tokens`, 0 for none).
    pub max_tokens: u32,
    /// Longest silence: connecting, before the first bytes, between chunks
    /// (`--reply-idle-timeout`).
    pub idle_timeout: Duration,
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
    /// The system message, the same for every request.
    system: String,
    settings: LlmSettings,
    fallback: Fallback,
}

/// One chat message of the request.
#[derive(Debug, Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: std::borrow::Cow<'a, str>,
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

/// What one event of the stream means.
#[derive(Debug, PartialEq)]
struct Step {
    /// More text (possibly empty: role-only or keep-alive chunks).
    text: String,
    /// The answer is complete (`[DONE]`, or a `finish_reason`).
    done: bool,
}

/// Why an event cannot be used.
#[derive(Debug, PartialEq)]
enum BadStep {
    /// The event is not a chat-completion chunk.
    Malformed(String),
    /// The server reported an error in the stream.
    Reported(String),
}

/// Reads one event's data.
fn step(data: &str) -> Result<Step, BadStep> {
    if data.trim() == "[DONE]" {
        return Ok(Step { text: String::new(), done: true });
    }
    let chunk: ChatChunk = serde_json::from_str(data)
        .map_err(|e| BadStep::Malformed(format!("malformed stream chunk ({e}): {}", clip(data, 200))))?;
    if let Some(error) = chunk.error {
        return Err(BadStep::Reported(format!(
            "the server reported an error: {}",
            clip(&error.to_string(), 300)
        )));
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
        // The silence limit applies to connecting and to every read (waiting for the headers
        // included); the whole reply's deadline is the hub's.
        let client = reqwest::Client::builder()
            .connect_timeout(settings.idle_timeout)
            .read_timeout(settings.idle_timeout)
            .user_agent(concat!("natter-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the LLM HTTP client: {e}"))?;
        let system = system_message(settings.system_prompt.as_deref());
        Ok(LlmEngine { client, shown: shown(&endpoint), endpoint, authorization, system, settings, fallback })
    }

    /// The request body for `request`.
    fn body<'a>(&'a self, request: &'a ReplyRequest) -> ChatRequest<'a> {
        let mut messages = Vec::with_capacity(request.history.len() + 2);
        messages.push(ChatMessage { role: "system", content: self.system.as_str().into() });
        let skip = request.history.len().saturating_sub(self.settings.history);
        for turn in &request.history[skip..] {
            let role = match turn.role {
                Role::User => "user",
                // Operators speak for the site, as the assistant does.
                Role::Bot | Role::Agent => "assistant",
                Role::System => continue,
            };
            messages.push(ChatMessage { role, content: turn.text.as_str().into() });
        }
        messages.push(ChatMessage {
            role: "user",
            content: user_turn(&request.message, request.context.as_ref()),
        });
        ChatRequest {
            model: &self.settings.model,
            messages,
            stream: true,
            max_tokens: (self.settings.max_tokens > 0).then_some(self.settings.max_tokens),
        }
    }

    async fn call(&self, request: &ReplyRequest) -> Result<Option<Reply>, ReplyError> {
        let said = |what: String| format!("llm {}: {what}", self.shown);
        let silent = || {
            ReplyError::Timeout(said(format!(
                "silent for longer than {:?} (--reply-idle-timeout)",
                self.settings.idle_timeout
            )))
        };
        let malformed = |what: String| ReplyError::Malformed(said(what));
        let mut post = self.client.post(self.endpoint.clone()).json(&self.body(request));
        if let Some(auth) = &self.authorization {
            post = post.header(AUTHORIZATION, auth.clone());
        }
        let response = post.send().await.map_err(|e| {
            if e.is_timeout() {
                silent()
            } else {
                ReplyError::Unreachable(said(format!("request failed: {}", describe(e))))
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            let body = read_capped(response, MAX_ERROR_BODY).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            return Err(ReplyError::Status(said(format!("answered HTTP {status}: {}", clip(&text, 300)))));
        }
        let mut stream = response.bytes_stream();
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut text = String::new();
        let mut chars = 0usize;
        let mut streamed = 0usize;
        // Stop reading once the text is surely longer than what will be stored.
        let enough = self.settings.max_chars.saturating_add(1);
        'read: loop {
            let chunk = match stream.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) if e.is_timeout() => return Err(silent()),
                Some(Err(e)) => {
                    return Err(ReplyError::Unreachable(said(format!("the stream broke: {}", describe(e)))))
                }
                None => return Err(malformed("the stream ended before [DONE]".into())),
            };
            streamed = streamed.saturating_add(chunk.len());
            if streamed > MAX_STREAM_BYTES {
                return Err(malformed(format!("streamed more than {MAX_STREAM_BYTES} bytes for one reply")));
            }
            parser.feed(&chunk, &mut events).map_err(|e| malformed(e.to_string()))?;
            for data in events.drain(..) {
                let step = step(&data).map_err(|bad| match bad {
                    BadStep::Malformed(what) => malformed(what),
                    BadStep::Reported(what) => ReplyError::Status(said(what)),
                })?;
                chars += step.text.chars().count();
                text.push_str(&step.text);
                if step.done {
                    break 'read;
                }
            }
            if chars > enough {
                tracing::debug!(max = self.settings.max_chars, "LLM reply reached --reply-max-chars; cut");
                break;
            }
        }
        if text.trim().is_empty() {
            return Err(malformed("the answer is empty".into()));
        }
        // The model asks for a person with a marker word (see `prompt::HANDOFF_NOTE`).
        let handoff = text.contains(super::prompt::HANDOFF_MARKER);
        let text =
            if handoff { text.replace(super::prompt::HANDOFF_MARKER, "").trim().to_string() } else { text };
        // An answer that is only the marker asks for a person without a word of its own, like
        // a webhook's `{"reply": null, "handoff": true}`: the hub hands the conversation over
        // (an empty text stores no message; with nobody online the visitor hears the follow-up).
        Ok(Some(Reply {
            text: clip(&text, self.settings.max_chars),
            category: Some(CATEGORY.to_string()),
            handoff,
            says_follow_up: false,
        }))
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

    fn follow_up(&self) -> &str {
        self.fallback.follow_up()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_openai_chunks() {
        let s = |text: &str, done| Ok(Step { text: text.into(), done });
        let reported =
            |r: Result<Step, BadStep>| matches!(r, Err(BadStep::Reported(m)) if m.contains("overloaded"));
        let malformed =
            |r: Result<Step, BadStep>| matches!(r, Err(BadStep::Malformed(m)) if m.contains("malformed"));
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
        assert!(reported(step(r#"{"error":{"message":"overloaded"}}"#)));
        assert!(malformed(step("{not json")));
    }
}
