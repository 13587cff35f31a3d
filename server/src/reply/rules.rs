//! The default reply engine: keyword rules loaded from a TOML file (`server/rules.toml` ships
//! inside the hub; `--rules PATH` loads another).
//!
//! Matching is by whole words, case-insensitively: the message and every keyword are cut into
//! words the same way (letters, digits and inner apostrophes), and a keyword matches when its
//! words appear consecutively in the message. So "hi" matches "Hi!" but not "this", and
//! "drop-down" matches "drop down". The first rule in file order with a matching keyword wins.
//!
//! `{page}` in a reply is the one piece of visitor data the rules echo, and the widget turns
//! `http(s)://…` in a bot's text into a link: so only a plain path is echoed ([`page_phrase`]:
//! a leading `/`, letters, digits and `/-_.~%+`, at most 60 characters, so never a scheme, a
//! `//host` or a bidi control). Anything else reads "this page", and a full `http(s)://` URL
//! is echoed as its path only. The bot never puts a link in a visitor's mouth.
//!
//! A rule with `handoff = true` asks for a person (the built-in file has one for "human",
//! "agent", "talk to someone", …): its `reply` is said when an operator is online (who then
//! takes over), its `away_reply` when nobody is (the bot keeps answering; the away reply says
//! that a person will follow up). The file's `follow_up` text is what the bot says, once, when
//! it answers in a handed-over conversation while nobody is online (see `hub/reply.rs`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use super::{Reply, ReplyEngine, ReplyError, ReplyRequest, DEFAULT_FOLLOW_UP};
use crate::store::BoxFuture;

/// The rules file shipped with the hub, used when `--rules` is not given.
pub const DEFAULT_RULES: &str = include_str!("../../rules.toml");

/// A rules file that could not be used; the message names the file and the problem.
#[derive(Debug, Error)]
#[error("rules file {path}: {problem}")]
pub struct RulesError {
    /// The file (`<built-in rules.toml>` for the shipped one).
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    author: Option<String>,
    fallback: String,
    #[serde(default)]
    follow_up: Option<String>,
    #[serde(default)]
    rule: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    category: String,
    keywords: Vec<String>,
    reply: String,
    #[serde(default)]
    handoff: bool,
    #[serde(default)]
    away_reply: Option<String>,
}

#[derive(Debug)]
struct Rule {
    category: String,
    /// Each keyword as its words.
    keywords: Vec<Vec<String>>,
    reply: String,
    /// Asks for a person.
    handoff: bool,
    /// Said instead of `reply` when nobody is online (handoff rules).
    away_reply: Option<String>,
}

/// What the rules answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    /// The rule's category; `None` for the fallback.
    pub category: Option<&'a str>,
    /// The text, `{page}` filled in.
    pub text: String,
    /// The rule asks for a person.
    pub handoff: bool,
    /// The text is a handoff rule's `away_reply`, which says a person will follow up.
    pub says_follow_up: bool,
}

/// Keyword rules with a fallback answer.
#[derive(Debug)]
pub struct RulesEngine {
    author: Option<String>,
    rules: Vec<Rule>,
    fallback: String,
    /// Said once when the bot answers in a handed-over conversation while nobody is online.
    follow_up: String,
}

/// Cuts text into lowercase words: runs of letters and digits, with apostrophes inside a word
/// kept (`doesn't`), everything else a separator.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '\u{2019}'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '\u{2019}').replace('\u{2019}', "'").to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

impl RulesEngine {
    /// The rules shipped with the hub.
    pub fn builtin() -> Result<Self, RulesError> {
        Self::parse(DEFAULT_RULES, "<built-in rules.toml>")
    }

    /// Loads `--rules PATH`, or the built-in rules for `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, RulesError> {
        match path {
            None => Self::builtin(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| RulesError {
                    path: p.display().to_string(),
                    problem: format!("cannot be read: {e}"),
                })?;
                Self::parse(&text, &PathBuf::from(p).display().to_string())
            }
        }
    }

    /// Parses and checks a rules file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, RulesError> {
        let err = |problem: String| RulesError { path: path.to_string(), problem };
        let file: RulesFile = toml::from_str(text).map_err(|e| err(format!("is not valid: {e}")))?;
        if file.fallback.trim().is_empty() {
            return Err(err("`fallback` is empty; it is the answer when no rule matches".into()));
        }
        if file.follow_up.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(err(
                "`follow_up` is empty; it tells a visitor that a person will follow up (leave it out for the default)"
                    .into(),
            ));
        }
        let mut rules = Vec::with_capacity(file.rule.len());
        for (i, r) in file.rule.into_iter().enumerate() {
            let n = i + 1;
            if r.category.trim().is_empty() {
                return Err(err(format!("rule {n} has an empty `category`")));
            }
            if r.reply.trim().is_empty() {
                return Err(err(format!("rule {n} ({}) has an empty `reply`", r.category)));
            }
            if r.keywords.is_empty() {
                return Err(err(format!("rule {n} ({}) has no `keywords`", r.category)));
            }
            let mut keywords = Vec::with_capacity(r.keywords.len());
            for k in &r.keywords {
                let w = words(k);
                if w.is_empty() {
                    return Err(err(format!(
                        "rule {n} ({}) has keyword {k:?} with no letters or digits",
                        r.category
                    )));
                }
                keywords.push(w);
            }
            if r.away_reply.is_some() && !r.handoff {
                return Err(err(format!(
                    "rule {n} ({}) has an `away_reply` but no `handoff = true`; only handoff rules have one",
                    r.category
                )));
            }
            if r.away_reply.as_deref().is_some_and(|a| a.trim().is_empty()) {
                return Err(err(format!("rule {n} ({}) has an empty `away_reply`", r.category)));
            }
            rules.push(Rule {
                category: r.category,
                keywords,
                reply: r.reply,
                handoff: r.handoff,
                away_reply: r.away_reply,
            });
        }
        Ok(RulesEngine {
            author: file.author,
            rules,
            fallback: file.fallback,
            follow_up: file.follow_up.unwrap_or_else(|| DEFAULT_FOLLOW_UP.to_string()),
        })
    }

    /// The `follow_up` text (see [`ReplyEngine::follow_up`]).
    pub fn follow_up(&self) -> &str {
        &self.follow_up
    }

    /// The answer for `message` on `page`: `(category, text)`, category `None` for the fallback
    /// (as an operator is online; see [`RulesEngine::answer_with`]).
    pub fn answer(&self, message: &str, page: Option<&str>) -> (Option<&str>, String) {
        let a = self.answer_with(message, page, true);
        (a.category, a.text)
    }

    /// The answer for `message` on `page`, with `operators_online` choosing between a handoff
    /// rule's `reply` and its `away_reply`.
    pub fn answer_with(&self, message: &str, page: Option<&str>, operators_online: bool) -> Answer<'_> {
        let text = words(message);
        let hit = self
            .rules
            .iter()
            .find(|r| r.keywords.iter().any(|k| text.windows(k.len()).any(|w| w == k.as_slice())));
        let (category, template, handoff, says_follow_up) = match hit {
            Some(r) => {
                let (template, away) = match (&r.away_reply, operators_online) {
                    (Some(away), false) => (away.as_str(), true),
                    _ => (r.reply.as_str(), false),
                };
                (Some(r.category.as_str()), template, r.handoff, away)
            }
            None => (None, self.fallback.as_str(), false, false),
        };
        Answer { category, text: template.replace("{page}", page_phrase(page)), handoff, says_follow_up }
    }
}

/// Longest page path the rules echo, in characters; a longer one reads badly in a sentence.
const MAX_PAGE_ECHO: usize = 60;

/// How the rules name the visitor's page in a reply: its path when that is a plain path,
/// "the home page" for `/` ("Sorry / feels slow" reads badly), else "this page"; the route of an
/// app that routes by hash (`/app#/checkout`) is its page. A full
/// `http(s)://host/path` gives its path. The page comes from the visitor, so nothing that could
/// become a link (a scheme, a `//host`), hide text (bidi controls) or fill the bubble is echoed.
pub fn page_phrase(page: Option<&str>) -> &str {
    let Some(page) = page else { return "this page" };
    let page = without_origin(page);
    // An app that routes by hash (`/app#/checkout`, `/#!/cart`): its route is the page.
    let page = match page.split_once('#') {
        Some((_, route)) if route.starts_with('/') => route,
        Some((_, route)) if route.starts_with("!/") => &route[1..],
        _ => page,
    };
    // Only the path: a query or fragment is noise in a sentence.
    let path = page.split(['?', '#']).next().unwrap_or_default();
    let plain = path.starts_with('/')
        && !path.starts_with("//")
        && path.chars().count() <= MAX_PAGE_ECHO
        && path.chars().all(|c| c.is_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~' | '%' | '+'));
    match path {
        "/" => "the home page",
        p if plain => p,
        _ => "this page",
    }
}

/// `page` without a leading `http://host` or `https://host` (any case); `/` when nothing
/// follows the host.
fn without_origin(page: &str) -> &str {
    let lower = |n: usize| page.get(..n).map(str::to_ascii_lowercase);
    let scheme = if lower(7).as_deref() == Some("http://") {
        7
    } else if lower(8).as_deref() == Some("https://") {
        8
    } else {
        return page;
    };
    let rest = &page[scheme..];
    rest.find('/').map_or("/", |i| &rest[i..])
}

impl ReplyEngine for RulesEngine {
    fn reply<'a>(&'a self, request: &'a ReplyRequest) -> BoxFuture<'a, Result<Option<Reply>, ReplyError>> {
        Box::pin(std::future::ready(Ok(self.fallback(request))))
    }

    fn author(&self) -> Option<&str> {
        self.author.as_deref()
    }

    /// The rules' own answer: when the hub does not get to ask (every call slot taken), the
    /// visitor still gets one.
    fn fallback(&self, request: &ReplyRequest) -> Option<Reply> {
        let a = self.answer_with(&request.message, request.page(), request.operators_online);
        Some(Reply {
            text: a.text,
            category: Some(a.category.unwrap_or("fallback").to_string()),
            handoff: a.handoff,
            says_follow_up: a.says_follow_up,
        })
    }

    fn follow_up(&self) -> &str {
        &self.follow_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(e: &RulesEngine, text: &str) -> Option<String> {
        e.answer(text, None).0.map(str::to_string)
    }

    #[test]
    fn builtin_categories() {
        let e = RulesEngine::builtin().unwrap();
        for (text, want) in [
            ("hello", "greeting"),
            ("Hi!", "greeting"),
            ("hey there", "greeting"),
            ("the page is broken", "bug"),
            ("I get an ERROR", "bug"),
            ("there is an issue", "bug"),
            ("the dropdown is stuck", "ui"),
            ("I cannot select anything", "ui"),
            ("which option?", "ui"),
            ("so slow", "performance"),
            ("it keeps loading", "performance"),
            ("the color is off", "style"),
            ("your css", "style"),
            ("nice design", "style"),
            ("hi, the dropdown is broken", "bug"),
        ] {
            assert_eq!(category(&e, text).as_deref(), Some(want), "{text}");
        }
        assert_eq!(category(&e, "this thing"), None, "'hi' must not match inside 'this'");
        assert_eq!(category(&e, "selection"), None, "whole words only");
    }

    #[test]
    fn asking_for_a_person_is_a_handoff_said_by_who_is_online() {
        let e = RulesEngine::builtin().unwrap();
        for text in ["Can I talk to someone?", "human please", "I want a real person", "agent!"] {
            let online = e.answer_with(text, None, true);
            assert!(online.handoff && online.category == Some("human"), "{text}");
            let away = e.answer_with(text, None, false);
            assert!(away.handoff && away.text != online.text, "{text}: away says something else");
            assert!(away.text.contains("follow up"), "{}", away.text);
            assert!(away.says_follow_up && !online.says_follow_up, "{text}");
        }
        assert!(!e.answer_with("hello", None, false).handoff);
        let err = RulesEngine::parse(
            "fallback = \"f\"\n[[rule]]\ncategory = \"a\"\nkeywords = [\"x\"]\nreply = \"r\"\naway_reply = \"later\"\n",
            "h.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no `handoff = true`"), "{err}");
    }

    #[test]
    fn the_follow_up_text_is_the_files_or_the_default() {
        let shipped = RulesEngine::builtin().unwrap();
        assert_eq!(shipped.follow_up(), DEFAULT_FOLLOW_UP, "the shipped file spells out the default");
        let own = RulesEngine::parse("fallback = \"f\"\nfollow_up = \"Back soon.\"\n", "o.toml").unwrap();
        assert_eq!(own.follow_up(), "Back soon.");
        let none = RulesEngine::parse("fallback = \"f\"\n", "n.toml").unwrap();
        assert_eq!(none.follow_up(), DEFAULT_FOLLOW_UP);
        let err = RulesEngine::parse("fallback = \"f\"\nfollow_up = \" \"\n", "e.toml").unwrap_err();
        assert!(err.to_string().contains("`follow_up` is empty"), "{err}");
    }

    #[test]
    fn page_is_filled_in() {
        let e = RulesEngine::builtin().unwrap();
        let (_, text) = e.answer("broken", Some("/pricing"));
        assert!(text.contains("/pricing"), "{text}");
        let (_, text) = e.answer("broken", None);
        assert!(text.contains("this page"), "{text}");
        let (_, text) = e.answer("so slow", Some("/"));
        assert!(text.contains("the home page") && !text.contains(" / "), "{text}");
    }

    #[test]
    fn visitor_pages_are_echoed_only_as_plain_paths() {
        let e = RulesEngine::builtin().unwrap();
        for (page, want) in [
            ("/pricing", "/pricing"),
            ("/docs/v1.2/install_guide", "/docs/v1.2/install_guide"),
            ("/über-uns", "/über-uns"),
            ("/pricing?plan=pro#faq", "/pricing"),
            ("/app#/checkout", "/checkout"),
            ("/#!/cart?coupon=x", "/cart"),
            ("https://www.example.com/app#/orders/42", "/orders/42"),
            ("/app#//evil.example/reset", "this page"),
            ("/app#/http://evil.example", "this page"),
            ("https://www.example.com/pricing", "/pricing"),
            ("HTTPS://evil.example/reset-password", "/reset-password"),
            ("https://www.example.com", "the home page"),
            ("/", "the home page"),
            ("", "this page"),
            ("/http://evil.example/reset-password", "this page"),
            ("/x/https://evil.example", "this page"),
            ("https://www.example.com/http://evil.example", "this page"),
            ("//evil.example/reset", "this page"),
            ("javascript:alert(1)", "this page"),
            ("pricing", "this page"),
            ("/a b", "this page"),
            ("/paypal\u{202e}lmth.exe", "this page"),
            ("/login\u{200f}", "this page"),
            ("/a@evil.example", "this page"),
        ] {
            assert_eq!(page_phrase(Some(page)), want, "{page:?}");
        }
        assert_eq!(page_phrase(None), "this page");
        let long = format!("/{}", "a".repeat(30_000));
        assert_eq!(page_phrase(Some(&long)), "this page");
        // Whatever the page, no reply holds a URL scheme (the widget links `http(s)://`).
        for page in ["/http://evil.example/reset-password", "/HtTpS://evil.example", "https://a/b:c"] {
            for message in ["hmm", "it is broken", "so slow"] {
                let (_, text) = e.answer(message, Some(page));
                assert!(!text.contains("://") && !text.contains("evil"), "{page:?} {message:?}: {text}");
            }
        }
    }

    #[test]
    fn bad_files_name_file_and_problem() {
        let e = RulesEngine::parse("fallback = ", "x.toml").unwrap_err().to_string();
        assert!(e.starts_with("rules file x.toml: is not valid"), "{e}");
        let e = RulesEngine::parse(
            "fallback = \"f\"\n[[rule]]\ncategory = \"a\"\nkeywords = []\nreply = \"r\"\n",
            "y.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "rules file y.toml: rule 1 (a) has no `keywords`");
        let e = RulesEngine::parse("fallbak = \"f\"", "z.toml").unwrap_err().to_string();
        assert!(e.contains("z.toml") && e.contains("fallbak"), "{e}");
    }
}
