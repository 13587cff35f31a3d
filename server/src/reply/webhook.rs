//! The webhook backend: each visitor message is POSTed as JSON to the customer's endpoint,
//! which answers the reply.
//!
//! Request (`Content-Type: application/json`):
//!
//! ```json
//! {"sessionId":"…","messageId":"…","message":"the dropdown is stuck","context":{"page":"/pricing"},
//!  "page":"/pricing","timestamp":"2026-11-22T10:00:00.000Z",
//!  "identity":{"id":"42","name":"Ada Lovelace","email":"ada@example.com"}}
//! ```
//!
//! `identity` is present only for a signed-in user, from the identity token the hub verified;
//! `context` and `page` come from the visitor's browser and are not verified.
//!
//! With `--webhook-secret` the request carries `X-Natter-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the exact body bytes keyed with the secret; the receiver recomputes it over
//! the raw body and compares in constant time (and may reject old `timestamp`s against
//! replays). The answer is `200 {"reply": "text"}` (optionally with `"category"`), or
//! `{"reply": null}` / `204` for no reply. Anything else — another status, a body that is not
//! that JSON or larger than 256 KiB, silence longer than `--reply-idle-timeout` — is a
//! [`ReplyError`] and the hub stores the [`Fallback`] answer; so it does when the whole answer
//! takes longer than `--reply-timeout` (the hub's deadline: it drops the call).

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{clip, Fallback, Reply, ReplyEngine, ReplyError, ReplyRequest};
use crate::clock::now_rfc3339;
use crate::store::BoxFuture;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Natter-Signature";

/// Largest webhook answer read; a reply is at most a few thousand characters.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Category stored on webhook replies that name none.
const CATEGORY: &str = "webhook";

/// Longest category kept from a webhook's answer, in characters.
const MAX_CATEGORY_CHARS: usize = 64;

/// Posts visitor messages to a URL and stores what it answers.
#[derive(Debug)]
pub struct WebhookEngine {
    client: reqwest::Client,
    url: Url,
    /// The URL without its query, for log lines (a query may hold a token).
    shown: String,
    secret: Option<Vec<u8>>,
    idle_timeout: Duration,
    max_chars: usize,
    fallback: Fallback,
}

/// The JSON body sent to the webhook.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Delivery<'a> {
    session_id: &'a str,
    message_id: &'a str,
    message: &'a str,
    context: Option<&'a natter_protocol::Json>,
    page: Option<&'a str>,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<&'a super::Identity>,
    /// Whether an operator is online to take over (so the answer can say what happens next).
    operators_online: bool,
}

/// What the webhook answers.
#[derive(Debug, Deserialize)]
struct Answer {
    reply: Option<String>,
    #[serde(default)]
    category: Option<String>,
    /// `true` asks for a person (see `Reply::handoff`).
    #[serde(default)]
    handoff: bool,
}

/// `sha256=<hex HMAC-SHA256 of body keyed with secret>`, the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Parses and checks an http(s) URL given by `flag`.
pub(crate) fn parse_url(flag: &str, value: &str) -> Result<Url, String> {
    let url = Url::parse(value.trim()).map_err(|e| format!("{flag} {value:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{flag} {value:?} must be an http:// or https:// URL"));
    }
    Ok(url)
}

/// The URL without query or fragment, for logs.
pub(crate) fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    u.to_string()
}

/// `e` with its causes ("error sending request: client error (Connect): tcp connect error:
/// Connection refused"): reqwest's own message alone does not say what went wrong. The URL is
/// left out; the caller names the endpoint.
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Why [`read_capped`] gave no body.
#[derive(Debug)]
pub(crate) enum Capped {
    /// The body is larger than the limit.
    TooLarge(String),
    /// The sender went silent past the client's read timeout.
    Silent(String),
    /// The connection broke.
    Broken(String),
}

/// Reads at most `limit` bytes of `response`'s body; more is an error.
pub(crate) async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Capped> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        if e.is_timeout() {
            Capped::Silent(format!("the answer stalled: {}", describe(e)))
        } else {
            Capped::Broken(format!("reading the answer failed: {}", describe(e)))
        }
    })? {
        if body.len() + chunk.len() > limit {
            return Err(Capped::TooLarge(format!("the answer is larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl WebhookEngine {
    /// A webhook engine posting to `url` (`--webhook-url`), signing with `secret` when given;
    /// a call fails when the endpoint is silent for `idle_timeout` (connecting, before the
    /// answer, between its chunks). Fails with a message naming the flag when the URL is
    /// unusable.
    pub fn new(
        url: &str,
        secret: Option<&str>,
        idle_timeout: Duration,
        max_chars: usize,
        fallback: Fallback,
    ) -> Result<Self, String> {
        let url = parse_url("--webhook-url", url)?;
        let client = reqwest::Client::builder()
            .connect_timeout(idle_timeout)
            .read_timeout(idle_timeout)
            .user_agent(concat!("natter-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(WebhookEngine {
            client,
            shown: shown(&url),
            url,
            secret: secret.filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
            idle_timeout,
            max_chars,
            fallback,
        })
    }

    async fn call(&self, request: &ReplyRequest) -> Result<Option<Reply>, ReplyError> {
        let said = |what: String| format!("webhook {}: {what}", self.shown);
        let malformed = |what: String| ReplyError::Malformed(said(what));
        let delivery = Delivery {
            session_id: &request.session_id,
            message_id: &request.message_id,
            message: &request.message,
            context: request.context.as_ref(),
            page: request.page(),
            timestamp: now_rfc3339(),
            identity: request.identity.as_ref(),
            operators_online: request.operators_online,
        };
        let body = serde_json::to_vec(&delivery).map_err(|e| malformed(format!("cannot encode: {e}")))?;
        let mut post = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secret) = &self.secret {
            post = post.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let response = post.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                ReplyError::Timeout(said(format!(
                    "silent for longer than {:?} (--reply-idle-timeout)",
                    self.idle_timeout
                )))
            } else {
                ReplyError::Unreachable(said(format!("request failed: {}", describe(e))))
            }
        })?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let body = read_capped(response, MAX_ANSWER_BYTES).await.map_err(|e| match e {
            Capped::TooLarge(what) => malformed(what),
            Capped::Silent(what) => ReplyError::Timeout(said(what)),
            Capped::Broken(what) => ReplyError::Unreachable(said(what)),
        })?;
        if status != StatusCode::OK {
            let text = String::from_utf8_lossy(&body);
            return Err(ReplyError::Status(said(format!("answered HTTP {status}: {}", clip(&text, 200)))));
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| malformed(format!("the answer is not JSON like {{\"reply\": \"text\"}}: {e}")))?;
        let category = answer.category.map(|c| clip(&c, MAX_CATEGORY_CHARS)).filter(|c| !c.is_empty());
        let text = answer.reply.filter(|t| !t.trim().is_empty()).map(|t| clip(&t, self.max_chars));
        // `{"reply": null, "handoff": true}` asks for a person without a word of its own: the
        // hub still hands the conversation over (an empty text stores no message).
        if text.is_none() && !answer.handoff {
            return Ok(None);
        }
        Ok(Some(Reply {
            text: text.unwrap_or_default(),
            category: Some(category.unwrap_or_else(|| CATEGORY.to_string())),
            handoff: answer.handoff,
            says_follow_up: false,
        }))
    }
}

impl WebhookEngine {
    /// The endpoint without query string, as log lines show it.
    pub fn endpoint(&self) -> &str {
        &self.shown
    }
}

impl ReplyEngine for WebhookEngine {
    fn reply<'a>(&'a self, request: &'a ReplyRequest) -> BoxFuture<'a, Result<Option<Reply>, ReplyError>> {
        Box::pin(self.call(request))
    }

    fn author(&self) -> Option<&str> {
        self.fallback.author()
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
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_are_checked_and_shown_without_query() {
        assert!(parse_url("--webhook-url", "ftp://x").unwrap_err().contains("--webhook-url"));
        assert!(parse_url("--webhook-url", "not a url").unwrap_err().contains("--webhook-url"));
        let u = parse_url("--webhook-url", "https://u:p@hooks.example/natter?token=s3cret").unwrap();
        assert_eq!(shown(&u), "https://u@hooks.example/natter");
    }
}
