//! Who a connection or request is: a signed-in user (a verified identity token), an anonymous
//! visitor holding a session the hub issued, or — with `--open-sessions` — a session id the
//! client chose.
//!
//! # Layout
//! - [`token`]: verifying the JWTs a site's backend signs (`--identity-secret`,
//!   `--identity-public-key`, `--identity-audience`, `--identity-max-lifetime`).
//! - [`session`]: issuing and recognising session ids, and public member ids, keyed with the
//!   hub's secret (`--session-secret`, or one made at first start and kept in the store).
//! - this file: `Identity`, which turns what a client presents into a `Principal` or a
//!   refusal, and the rules that follow from who someone is (their conversation, their member
//!   id and name in rooms, which rooms they may join).
//!
//! Tokens and session ids are credentials: nothing here logs one, and no refusal repeats one.

pub mod session;
pub mod token;

use std::sync::Arc;

use natter_protocol::{validate_session_id, ErrorCode, UserProfile, Welcome};
use sha2::{Digest, Sha256};

pub use session::SessionKeys;
pub use token::{TokenError, TokenVerifier, VerifiedUser};

use crate::config::{Config, RoomAccess};
use crate::error::HubError;
use crate::hub::Refusal;
use crate::store::Store;

/// The conversation id of a signed-in user starts with this; client-chosen session ids may not
/// (with `--open-sessions`), so no one can name their way into a user's conversation.
const USER_CONVERSATION_PREFIX: &str = "user:";

/// How a client that has no session gets one, for refusals that say so.
const HOW_TO_GET_A_SESSION: &str = "connect without one (send {\"type\":\"auth\"} on /ws/chat, or call the HTTP API without a session) and keep the session the hub answers with";

/// Who is connected.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The conversation they read and write: their session id, or for a signed-in user
    /// `user:` + 32 hex digits of a hash of their `sub` (the same on every device and hub).
    pub(crate) conversation: Arc<str>,
    /// Their public member id.
    pub(crate) member_id: Arc<str>,
    /// The session an anonymous visitor holds (none for a signed-in user).
    pub(crate) session: Option<Arc<str>>,
    /// `session` was issued just now: the client must be told it.
    pub(crate) issued: bool,
    /// The verified user.
    pub(crate) user: Option<Arc<VerifiedUser>>,
}

impl Principal {
    /// The `welcome` frame telling the client who it is.
    pub(crate) fn welcome(&self) -> Welcome {
        Welcome {
            session: self.session.as_deref().map(str::to_string),
            member: self.member_id.to_string(),
            user: self.user.as_deref().map(|u| UserProfile {
                id: u.sub.clone(),
                name: u.name.clone(),
                email: u.email.clone(),
                avatar: u.avatar.clone(),
            }),
            expires_at: self.user.as_ref().map(|u| u.expires_at),
            // (The connection adds its hub's budgets.)
            budgets: None,
        }
    }

    /// When the identity stops being valid (the token's `exp`), for a signed-in user.
    pub(crate) fn expires_at(&self) -> Option<u64> {
        self.user.as_ref().map(|u| u.expires_at)
    }
}

/// The hub's identity rules and keys.
#[derive(Debug)]
pub(crate) struct Identity {
    tokens: Option<TokenVerifier>,
    sessions: SessionKeys,
    open_sessions: bool,
    room_access: RoomAccess,
}

/// The conversation id of the signed-in user `sub`.
fn user_conversation(sub: &str) -> String {
    let digest = Sha256::new().chain_update(b"natter user\0").chain_update(sub.as_bytes()).finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{USER_CONVERSATION_PREFIX}{hex}")
}

impl Identity {
    /// The rules from `config` and the session secret: `--session-secret`, or the one `store`
    /// keeps (made and kept now at first start).
    pub(crate) async fn load(config: &Config, store: &dyn Store) -> Result<Identity, HubError> {
        let secrets: Vec<Vec<u8>> = if config.session_secrets.is_empty() {
            let fresh = session::fresh_secret().ok_or_else(|| {
                HubError::Config("the OS gave no random bytes for the session secret".into())
            })?;
            vec![store.hub_secret(fresh).await?]
        } else {
            for s in &config.session_secrets {
                if s.len() < token::MIN_SECRET_BYTES {
                    return Err(HubError::Config(format!(
                        "a --session-secret is {} bytes long; use at least {} random bytes (openssl rand -hex 32). Several secrets are separated by commas, so a secret cannot contain one",
                        s.len(),
                        token::MIN_SECRET_BYTES
                    )));
                }
            }
            config.session_secrets.iter().map(|s| s.as_bytes().to_vec()).collect()
        };
        Identity::new(config, &secrets)
    }

    /// The rules from `config` with the given session secrets (the first is current).
    pub(crate) fn new(config: &Config, secrets: &[Vec<u8>]) -> Result<Identity, HubError> {
        let tokens = TokenVerifier::new(
            &config.identity_secrets,
            &config.identity_public_keys,
            config.identity_audience.clone(),
            config.identity_max_lifetime,
        )
        .map_err(HubError::Config)?;
        let sessions =
            SessionKeys::new(secrets).ok_or_else(|| HubError::Config("no session secret".into()))?;
        Ok(Identity {
            tokens,
            sessions,
            open_sessions: config.open_sessions,
            room_access: config.room_access(),
        })
    }

    /// The public id operators know the support conversation `conversation` by (`c_…`).
    pub(crate) fn conversation_id(&self, conversation: &str) -> String {
        self.sessions.conversation_public_id(conversation)
    }

    /// Whether identity tokens can be verified here.
    pub(crate) fn verifies_tokens(&self) -> bool {
        self.tokens.is_some()
    }

    /// Who presents `token` and/or `session`: the token's user when there is a token (the session
    /// is then not needed), the session's visitor, or a new visitor with a session issued now.
    pub(crate) fn authenticate(
        &self,
        token: Option<&str>,
        session: Option<&str>,
    ) -> Result<Principal, Refusal> {
        // An empty token or session is a mistake to name, not an absent one.
        if let Some(token) = token {
            return self.user(token);
        }
        match session {
            Some(session) => self.visitor(session),
            None => self.new_visitor(),
        }
    }

    /// The signed-in user of `token`.
    pub(crate) fn user(&self, token: &str) -> Result<Principal, Refusal> {
        let Some(tokens) = &self.tokens else {
            return Err(Refusal::new(
                ErrorCode::Unauthorized,
                "this hub verifies no identity tokens (it has no --identity-secret or --identity-public-key); connect without a token",
            ));
        };
        let user = tokens.verify(token).map_err(|e| Refusal::new(ErrorCode::Unauthorized, e.to_string()))?;
        Ok(Principal {
            conversation: user_conversation(&user.sub).into(),
            member_id: self.sessions.member_of_user(&user.sub).into(),
            session: None,
            issued: false,
            user: Some(Arc::new(user)),
        })
    }

    /// The anonymous visitor holding `session`, if the hub issued it (or sessions are open).
    fn visitor(&self, session: &str) -> Result<Principal, Refusal> {
        validate_session_id(session).map_err(|e| {
            Refusal::new(
                ErrorCode::BadSession,
                format!("`session`: {e}; to get a session, {HOW_TO_GET_A_SESSION}"),
            )
        })?;
        let issued = self.sessions.is_issued(session);
        if !issued && !self.open_sessions {
            return Err(Refusal::new(
                ErrorCode::BadSession,
                format!("this session was not issued by this hub (or its secret changed); to get one, {HOW_TO_GET_A_SESSION}"),
            ));
        }
        if !issued && session.starts_with(USER_CONVERSATION_PREFIX) {
            return Err(Refusal::new(
                ErrorCode::BadSession,
                format!("session ids starting with {USER_CONVERSATION_PREFIX:?} belong to signed-in users; choose another"),
            ));
        }
        Ok(Principal {
            conversation: session.into(),
            member_id: self.sessions.member_of_session(session).into(),
            session: Some(session.into()),
            issued: false,
            user: None,
        })
    }

    /// A new anonymous visitor with a session issued now.
    fn new_visitor(&self) -> Result<Principal, Refusal> {
        let session = self.sessions.issue().ok_or_else(|| {
            Refusal::new(ErrorCode::Internal, "the hub could not make a session id; try again")
        })?;
        let mut p = self.visitor(&session)?;
        p.issued = true;
        Ok(p)
    }

    /// Checks that `who` may join `room`: anyone with `--room-access open`; with `identified`, a
    /// signed-in user whose `rooms` claim covers the room. A signed-in user's claim applies
    /// whatever the access mode.
    pub(crate) fn may_join(&self, who: &Principal, room: &str) -> Result<(), Refusal> {
        match (&who.user, self.room_access) {
            (None, RoomAccess::Open) => Ok(()),
            (None, RoomAccess::Identified) => Err(Refusal::new(
                ErrorCode::Unauthorized,
                format!("room {room:?}: rooms on this hub are for signed-in users; connect with an identity token"),
            )),
            (Some(user), _) if user.may_join(room) => Ok(()),
            (Some(_), _) => Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("room {room:?} is not covered by the `rooms` claim of your identity token"),
            )),
        }
    }

    /// The name `who` is shown with in rooms, and whether it is verified: a signed-in user's name
    /// comes from their token (a name the client gives is ignored); a visitor's is what they gave.
    pub(crate) fn member_name(&self, who: &Principal, given: Option<String>) -> (Option<String>, bool) {
        match &who.user {
            Some(user) => (user.name.clone(), true),
            None => (given, false),
        }
    }

    /// The public member id of the anonymous visitor holding `session` (for log lines that must
    /// not name the session).
    pub(crate) fn member_of_session(&self, session: &str) -> String {
        self.sessions.member_of_session(session)
    }

    /// The member id operator `name` carries to visitors (see
    /// [`session::SessionKeys::member_of_operator`]).
    pub(crate) fn member_of_operator(&self, name: &str) -> String {
        self.sessions.member_of_operator(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(open: bool) -> Identity {
        let mut c = Config::for_tests();
        c.open_sessions = open;
        Identity::new(&c, &[b"a secret of thirty-two bytes or more!!".to_vec()]).expect("identity")
    }

    #[test]
    fn a_client_without_a_session_gets_one_and_can_come_back_with_it() {
        let id = identity(false);
        let first = id.authenticate(None, None).expect("a new visitor");
        assert!(first.issued);
        let session = first.session.clone().expect("a session");
        let again = id.authenticate(None, Some(&session)).expect("the same visitor");
        assert!(!again.issued);
        assert_eq!((again.conversation, again.member_id), (first.conversation, first.member_id));
    }

    #[test]
    fn invented_sessions_are_refused_unless_sessions_are_open() {
        let r = identity(false).authenticate(None, Some("session-xxx")).unwrap_err();
        assert_eq!(r.code, ErrorCode::BadSession);
        assert!(r.message.contains("not issued") && r.message.contains("\"auth\""), "{}", r.message);
        assert!(!r.message.contains("session-xxx"), "a refusal never repeats a credential");
        let open = identity(true).authenticate(None, Some("session-xxx")).expect("open sessions");
        assert_eq!(&*open.conversation, "session-xxx");
        // Even open sessions cannot name a signed-in user's conversation.
        let r = identity(true).authenticate(None, Some(&user_conversation("42"))).unwrap_err();
        assert_eq!(r.code, ErrorCode::BadSession);
    }

    #[test]
    fn tokens_are_refused_when_the_hub_verifies_none() {
        let r = identity(false).authenticate(Some("a.b.c"), None).unwrap_err();
        assert_eq!(r.code, ErrorCode::Unauthorized);
        assert!(r.message.contains("--identity-secret"), "{}", r.message);
    }

    #[test]
    fn user_conversations_are_stable_and_apart_from_sessions() {
        assert_eq!(user_conversation("42"), user_conversation("42"));
        assert_ne!(user_conversation("42"), user_conversation("43"));
        assert!(user_conversation("42").starts_with("user:") && user_conversation("42").len() == 37);
        assert!(validate_session_id(&user_conversation("a b\n")).is_ok(), "any sub makes a clean key");
    }
}
