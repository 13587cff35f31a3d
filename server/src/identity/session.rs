//! Sessions the hub issues, and public member ids, both keyed with the hub's secret.
//!
//! A session id is `<32 hex: 128 random bits>.<32 hex: HMAC-SHA256 tag of them, truncated to
//! 128 bits>`. The random part makes it unguessable; the tag lets every hub that shares the
//! secret recognise an id it issued without storing anything (no table of sessions to keep in
//! step across hubs or to lose at a restart). An id a client invents has no valid tag and is
//! refused, so the only way into a conversation is to have been handed its session.
//!
//! Member ids are `u_` + 16 hex digits of an HMAC of the user key (`user\0<sub>` for a signed-in
//! user, `session\0<id>` for an anonymous one): stable for everyone sharing the secret, and not
//! reversible without it (an unkeyed hash of a guessable id could be reversed by guessing).
//!
//! Keys are derived from the secret per purpose, so a session tag can never double as a member
//! id. With several secrets (rotation), the first issues and keys member ids, all verify.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Random bytes in an issued session id.
const RANDOM_BYTES: usize = 16;
/// Tag bytes in an issued session id.
const TAG_BYTES: usize = 16;

/// Keys derived from one secret.
#[derive(Clone)]
struct KeyPair {
    session: [u8; 32],
    member: [u8; 32],
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

fn derive(secret: &[u8], purpose: &[u8]) -> [u8; 32] {
    let mut m = mac(secret);
    m.update(b"natter/");
    m.update(purpose);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// Reads lower-case hex, the only spelling [`hex`] writes. Anything else is refused rather than
/// read leniently (`u8::from_str_radix` also takes upper case and a leading `+`): a session id is
/// also the conversation's key, so a second spelling of an issued id would pass its tag check
/// and open another conversation, with another member id, under the same credential.
fn unhex(text: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes.chunks_exact(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

/// The hub's session and member-id keys. `Debug` shows no key material.
#[derive(Clone)]
pub struct SessionKeys {
    /// The first issues and keys member ids; every one verifies.
    keys: Vec<KeyPair>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys").field("secrets", &self.keys.len()).finish()
    }
}

impl SessionKeys {
    /// Keys from `secrets` (at least one; the first is the current one).
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Option<SessionKeys> {
        let keys: Vec<KeyPair> = secrets
            .iter()
            .map(|s| KeyPair {
                session: derive(s.as_ref(), b"session/v1"),
                member: derive(s.as_ref(), b"member/v1"),
            })
            .collect();
        (!keys.is_empty()).then_some(SessionKeys { keys })
    }

    fn tag(key: &[u8; 32], random: &[u8]) -> HmacSha256 {
        let mut m = mac(key);
        m.update(random);
        m
    }

    /// A new session id (see the module docs). `None` only when the OS has no randomness.
    pub fn issue(&self) -> Option<String> {
        let mut random = [0u8; RANDOM_BYTES];
        getrandom::fill(&mut random).ok()?;
        let tag = Self::tag(&self.keys[0].session, &random).finalize().into_bytes();
        Some(format!("{}.{}", hex(&random), hex(&tag[..TAG_BYTES])))
    }

    /// Whether `id` is a session id issued with one of these keys (compared in constant time).
    pub fn is_issued(&self, id: &str) -> bool {
        let Some((random, tag)) = id.split_once('.') else { return false };
        let (Some(random), Some(tag)) = (unhex(random), unhex(tag)) else { return false };
        if random.len() != RANDOM_BYTES || tag.len() != TAG_BYTES {
            return false;
        }
        self.keys.iter().any(|k| Self::tag(&k.session, &random).verify_truncated_left(&tag).is_ok())
    }

    /// The public member id of a user key: `u_` + 16 hex digits.
    fn member(&self, kind: &[u8], key: &str) -> String {
        let mut m = mac(&self.keys[0].member);
        m.update(kind);
        m.update(&[0]);
        m.update(key.as_bytes());
        format!("u_{}", hex(&m.finalize().into_bytes()[..8]))
    }

    /// The member id of the anonymous visitor holding `session`.
    pub fn member_of_session(&self, session: &str) -> String {
        self.member(b"session", session)
    }

    /// The member id of the signed-in user `sub`.
    pub fn member_of_user(&self, sub: &str) -> String {
        self.member(b"user", sub)
    }

    /// The member id an operator's messages and typing carry to visitors: `op_` + 16 hex
    /// digits, keyed like member ids, so a visitor never learns the operator's sign-in name.
    pub fn member_of_operator(&self, name: &str) -> String {
        let member = self.member(b"operator", name);
        format!("op_{}", &member[2..])
    }

    /// The public id operators know a support conversation by: `c_` + 16 hex digits, keyed
    /// like member ids, so the inbox never shows (or puts in a URL) the session id, which is
    /// the visitor's credential.
    pub fn conversation_public_id(&self, conversation: &str) -> String {
        let member = self.member(b"conversation", conversation);
        format!("c_{}", &member[2..])
    }
}

/// 32 fresh random bytes for a hub secret made at first start; `None` without OS randomness.
pub(crate) fn fresh_secret() -> Option<Vec<u8>> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).ok()?;
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> SessionKeys {
        SessionKeys::new(&[secret]).expect("one secret")
    }

    #[test]
    fn issued_ids_verify_and_invented_ones_do_not() {
        let k = keys("a secret of thirty-two bytes or more!!");
        let id = k.issue().expect("randomness");
        assert_eq!(id.len(), 65);
        assert!(natter_protocol::validate_session_id(&id).is_ok(), "{id}");
        assert!(k.is_issued(&id));
        assert_ne!(k.issue(), Some(id.clone()), "every id is new");
        // The same random part with another tag, a flipped digit, other shapes: refused.
        let (random, tag) = id.split_once('.').expect("dot");
        let flipped = format!("{random}.{}{}", if tag.starts_with('0') { '1' } else { '0' }, &tag[1..]);
        for bad in [flipped.as_str(), random, "session-xxx", "a.b", "", &format!("{random}.{random}")] {
            assert!(!k.is_issued(bad), "{bad:?}");
        }
        // Another hub secret does not accept it; every hub with the same secret does.
        assert!(!keys("another secret of thirty-two bytes!!").is_issued(&id));
        assert!(keys("a secret of thirty-two bytes or more!!").is_issued(&id));
    }

    #[test]
    fn an_issued_id_has_exactly_one_spelling() {
        let k = keys("a secret of thirty-two bytes or more!!");
        // Random bytes whose hex has letters and pairs starting with 0 (0x0a → "0a").
        let random = [0x0a_u8; RANDOM_BYTES];
        let tag = SessionKeys::tag(&k.keys[0].session, &random).finalize().into_bytes();
        let id = format!("{}.{}", hex(&random), hex(&tag[..TAG_BYTES]));
        assert!(k.is_issued(&id));
        let signed = id.replacen("0a", "+a", 1);
        for other in [
            id.to_ascii_uppercase(),
            signed,
            format!("{}.{}", hex(&random).to_uppercase(), hex(&tag[..TAG_BYTES])),
        ] {
            assert!(!k.is_issued(&other), "{other}");
        }
    }

    #[test]
    fn rotation_keeps_old_sessions_and_issues_with_the_new_secret() {
        let old = keys("the old secret, thirty-two bytes long");
        let rotated = SessionKeys::new(&[
            "the new secret, thirty-two bytes long",
            "the old secret, thirty-two bytes long",
        ])
        .expect("secrets");
        let before = old.issue().expect("randomness");
        assert!(rotated.is_issued(&before));
        assert!(!old.is_issued(&rotated.issue().expect("randomness")));
    }

    #[test]
    fn member_ids_are_keyed_and_kinds_do_not_collide() {
        let k = keys("a secret of thirty-two bytes or more!!");
        let m = k.member_of_session("session-xxx");
        assert!(m.starts_with("u_") && m.len() == 18, "{m}");
        assert_eq!(m, k.member_of_session("session-xxx"), "stable");
        assert_ne!(m, keys("another secret of thirty-two bytes!!").member_of_session("session-xxx"));
        assert_ne!(k.member_of_user("42"), k.member_of_session("42"));
        // Not the old unkeyed form: u_ + sha256(session)[..16].
        use sha2::Digest;
        let unkeyed = format!("u_{}", hex(&sha2::Sha256::digest(b"session-xxx")[..8]));
        assert_ne!(m, unkeyed);
    }
}
