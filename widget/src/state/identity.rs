//! The identity part of the model: who the widget says it is to the hub, and what happens when
//! the hub disagrees.
//!
//! - An anonymous visitor holds a session the hub issued (kept in storage across reloads); a
//!   widget without one asks for one (`auth` without a session, or an HTTP call without one) and
//!   keeps what the `welcome` (or the `X-Natter-Session` header) brings.
//! - A signed-in user holds the identity token the page gave (`identityToken`, `identify()`);
//!   it is kept in memory only, never in storage or a URL.
//! - The hub refusing the session (`bad_session`, close 4003) makes the widget forget it and
//!   get a new one; refusing the token (`unauthorized`, close 4401) holds the link and asks the
//!   page for a fresh token (`tokenExpired`), then connects again with it. The outbox is never
//!   touched by any of this: what the visitor typed goes out once the hub accepts them.
//! - The conversation shown follows who the hub says the widget is: when a `welcome` names
//!   another conversation than the last one (a login, a logout, another user), the log starts
//!   over with that conversation's history.
//! - What has been read is kept per conversation ([`Identity::conversation`] names it): a read
//!   record of another one (a refused session, another user) never counts for the one shown.

use crate::prelude::*;

use natter_protocol::Welcome;

/// What the widget presents to the hub, and what the hub last said it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    /// The anonymous session the hub issued.
    pub session: Option<String>,
    /// The identity token the page gave, for a signed-in user.
    pub token: Option<String>,
    /// The page has been asked for a fresh token and has not given one yet.
    pub renewing: bool,
    /// A fresh token went to the hub on the open socket and has not been answered: a refusal
    /// now answers the renewal, and the connection carries on with the token it has.
    pub renewal_sent: bool,
    /// The signed-in user the hub verified: `(id, name)`.
    pub user: Option<(String, Option<String>)>,
    /// Which conversation the last `welcome` opened: `(true, user id)` or `(false, session)`.
    conversation: Option<(bool, String)>,
}

/// What a `welcome` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Welcomed {
    /// The hub issued a session to keep (or the kept one changed).
    pub new_session: bool,
    /// The conversation is not the one shown so far: the log must start over.
    pub other_conversation: bool,
}

impl Identity {
    /// The identity a page starts with: the session kept in storage, the token from the options.
    pub(crate) fn new(session: Option<String>, token: Option<String>) -> Self {
        Identity { session, token: token.filter(|t| !t.is_empty()), ..Identity::default() }
    }

    /// The conversation shown, named by a digest (so that storage's read record does not hold
    /// the session a second time): the one the last `welcome` opened, else the anonymous
    /// session's. `None` while unknown: a token the hub has not answered yet (whose user only
    /// the hub can name), or a new visitor before the hub issued a session.
    pub(crate) fn conversation(&self) -> Option<u64> {
        match (&self.conversation, &self.token, &self.session) {
            (Some((user, id)), _, _) => Some(digest(*user, id)),
            (None, None, Some(session)) => Some(digest(false, session)),
            _ => None,
        }
    }

    /// Reads a `welcome`.
    pub(super) fn welcomed(&mut self, w: &Welcome) -> Welcomed {
        self.renewal_sent = false;
        let mut new_session = false;
        if let Some(s) = &w.session {
            new_session = self.session.as_deref() != Some(s.as_str());
            self.session = Some(s.clone());
        }
        self.user = w.user.as_ref().map(|u| (u.id.clone(), u.name.clone()));
        let conversation = match (&w.user, &w.session) {
            (Some(u), _) => Some((true, u.id.clone())),
            (None, Some(s)) => Some((false, s.clone())),
            (None, None) => None,
        };
        let other_conversation = self.conversation.is_some() && self.conversation != conversation;
        self.conversation = conversation;
        Welcomed { new_session, other_conversation }
    }

    /// A session the hub issued over HTTP (the `X-Natter-Session` header); returns whether it is
    /// new. Ignored for a signed-in user, whose conversation does not depend on it.
    pub(super) fn issued(&mut self, session: String) -> bool {
        if self.token.is_some() || self.session.as_deref() == Some(session.as_str()) {
            return false;
        }
        self.session = Some(session);
        true
    }

    /// The hub refused the session: forget it (the next connection gets a new one).
    pub(super) fn session_refused(&mut self) {
        self.session = None;
    }

    /// The hub refused the token; returns whether the page must be asked for a fresh one now
    /// (not when it already was, or when there is no token to renew).
    pub(super) fn token_refused(&mut self) -> bool {
        if self.token.is_none() || self.renewing {
            return false;
        }
        self.renewing = true;
        true
    }

    /// The page gave a token (a fresh one, or the first after a login).
    pub(super) fn set_token(&mut self, token: String) {
        self.token = Some(token);
        self.renewing = false;
    }

    /// Logged out: no token, no session, no conversation; the next connection is a new visitor.
    pub(super) fn forget(&mut self) {
        *self = Identity::default();
    }
}

/// FNV-1a (64 bits) of a conversation's kind and id: a name for matching records, not a secret.
fn digest(user: bool, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [u8::from(user)].iter().chain(id.as_bytes()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_protocol::UserProfile;

    fn anonymous(session: &str) -> Welcome {
        Welcome { session: Some(session.into()), member: "u_1".into(), ..Welcome::default() }
    }

    fn user(id: &str) -> Welcome {
        Welcome {
            member: "u_2".into(),
            user: Some(UserProfile { id: id.into(), name: Some("Ada".into()), ..UserProfile::default() }),
            expires_at: Some(1),
            ..Welcome::default()
        }
    }

    #[test]
    fn a_new_visitor_keeps_the_issued_session() {
        let mut id = Identity::new(None, None);
        let w = id.welcomed(&anonymous("s1"));
        assert_eq!(w, Welcomed { new_session: true, other_conversation: false });
        assert_eq!(id.session.as_deref(), Some("s1"));
        // The same session again (a reconnect) changes nothing.
        assert_eq!(id.welcomed(&anonymous("s1")), Welcomed { new_session: false, other_conversation: false });
    }

    #[test]
    fn signing_in_and_out_switches_the_conversation() {
        let mut id = Identity::new(Some("s1".into()), None);
        id.welcomed(&anonymous("s1"));
        id.set_token("t".into());
        assert!(id.welcomed(&user("42")).other_conversation, "anonymous → signed in");
        assert_eq!(id.user, Some(("42".into(), Some("Ada".into()))));
        assert!(!id.welcomed(&user("42")).other_conversation, "a renewal is the same conversation");
        assert!(id.welcomed(&user("43")).other_conversation, "another user");
        id.forget();
        assert_eq!((id.token.as_deref(), id.session.as_deref()), (None, None));
        let w = id.welcomed(&anonymous("s2"));
        assert!(w.new_session && !w.other_conversation, "after logout the log was already cleared");
    }

    #[test]
    fn a_refused_token_asks_the_page_once() {
        let mut id = Identity::new(None, Some("old".into()));
        assert!(id.token_refused());
        assert!(!id.token_refused(), "asked already");
        id.set_token("fresh".into());
        assert!(!id.renewing);
        assert!(id.token_refused(), "the fresh one can expire too");
        assert!(!Identity::new(None, None).token_refused(), "no token, nothing to renew");
    }

    #[test]
    fn the_conversation_is_named_once_it_is_known() {
        let mut id = Identity::new(None, None);
        assert_eq!(id.conversation(), None, "a new visitor, before the hub issued a session");
        id.issued("s1".into());
        let s1 = id.conversation();
        assert!(s1.is_some());
        id.welcomed(&anonymous("s1"));
        assert_eq!(id.conversation(), s1, "the same conversation over either transport");
        let mut signed_in = Identity::new(Some("s1".into()), Some("t".into()));
        assert_eq!(signed_in.conversation(), None, "the user is known once the hub says who it is");
        signed_in.welcomed(&user("s1"));
        assert!(
            signed_in.conversation().is_some() && signed_in.conversation() != s1,
            "a user named like a session"
        );
        id.session_refused();
        id.welcomed(&anonymous("s2"));
        assert_ne!(id.conversation(), s1);
        id.forget();
        assert_eq!(id.conversation(), None);
    }

    #[test]
    fn sessions_issued_over_http_are_kept_unless_signed_in() {
        let mut id = Identity::new(None, None);
        assert!(id.issued("s1".into()));
        assert!(!id.issued("s1".into()));
        id.session_refused();
        assert_eq!(id.session, None);
        let mut signed_in = Identity::new(None, Some("t".into()));
        assert!(!signed_in.issued("s9".into()));
    }
}
