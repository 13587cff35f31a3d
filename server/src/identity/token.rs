//! Verifying the identity tokens (JWT, RFC 7519) a site's backend signs for its logged-in users.
//!
//! The signature check and the standard claims are the `jsonwebtoken` crate's; what this file
//! adds is policy: which algorithms a key may verify (HS256 with a shared secret, RS256 / ES256
//! with a public key — never `none`, never an HMAC keyed with a public key), which claims are
//! required (`sub`, `exp`), the longest lifetime accepted, and refusals that name their cause
//! without ever repeating the token.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use thiserror::Error;

/// Shortest shared secret accepted: an HS256 secret shorter than the hash is open to offline
/// guessing by anyone who sees one token.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// Clock skew forgiven on `exp`, `nbf` and `iat`, in seconds; also when an open connection's
/// token is checked again on the ping beat.
pub(crate) const LEEWAY_SECS: u64 = 30;

/// Longest `sub` accepted, in bytes.
const MAX_SUB_BYTES: usize = 256;

/// Longest `name` kept, in characters (longer names are cut).
const MAX_NAME_CHARS: usize = 64;

/// Why a token was refused. The message names the cause and never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts with a JSON header.
    #[error("the identity token is not a JWT (three base64url parts separated by dots)")]
    Malformed,
    /// `alg: none`.
    #[error("the identity token is unsigned (alg \"none\"); tokens must be signed")]
    Unsigned,
    /// An algorithm this hub has no key for (this is also how HS/RS confusion is refused).
    #[error("the identity token is signed with {alg}, but this hub verifies {accepted} only")]
    Algorithm {
        /// The token's `alg`.
        alg: String,
        /// What the configured keys verify.
        accepted: String,
    },
    /// The signature does not verify with any configured key.
    #[error("the identity token's signature does not verify (signed with another secret or key)")]
    Signature,
    /// `exp` has passed.
    #[error("the identity token expired {0} ago; get a fresh one")]
    Expired(HumanSecs),
    /// `nbf` is in the future.
    #[error("the identity token is not valid yet (nbf is in the future)")]
    NotYetValid,
    /// A required claim is missing.
    #[error("the identity token has no `{0}` claim; `sub` and `exp` are required")]
    Missing(&'static str),
    /// `aud` is missing on a hub run with `--identity-audience`.
    #[error("the identity token has no `aud` claim; this hub expects aud {0:?} (--identity-audience)")]
    MissingAudience(String),
    /// `aud` is not the configured audience.
    #[error("the identity token is for another audience (this hub expects aud {0:?})")]
    Audience(String),
    /// `exp` is further away than `--identity-max-lifetime` allows.
    #[error("the identity token lives {lifetime} (exp - {from}); this hub accepts at most {max} (--identity-max-lifetime)")]
    TooLongLived {
        /// Its lifetime.
        lifetime: HumanSecs,
        /// `iat` or `now`.
        from: &'static str,
        /// The limit.
        max: HumanSecs,
    },
    /// A claim has the wrong type or an unusable value.
    #[error("the identity token's claims are unusable: {0}")]
    Claim(String),
}

/// A number of seconds, shown as `90 s`, `5 min`, `3 h` or `2 days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSecs(pub u64);

impl fmt::Display for HumanSecs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            s if s < 120 => write!(f, "{s} s"),
            s if s < 7200 => write!(f, "{} min", s / 60),
            s if s < 172_800 => write!(f, "{} h", s / 3600),
            s => write!(f, "{} days", s / 86_400),
        }
    }
}

/// A user whose token verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The user's id at the site (`sub`).
    pub sub: String,
    /// `name`, cut to 64 characters, without control characters.
    pub name: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `avatar` (a URL).
    pub avatar: Option<String>,
    /// `rooms`: room ids or `prefix*` patterns this user may join; `None` when the claim is
    /// absent (no restriction).
    pub rooms: Option<Vec<String>>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl VerifiedUser {
    /// Whether the `rooms` claim lets this user into `room`: no claim lets them in anywhere; a
    /// claim lets them into the rooms it names exactly and those starting with a `prefix*`.
    pub fn may_join(&self, room: &str) -> bool {
        let Some(rooms) = &self.rooms else { return true };
        rooms.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => p == room,
        })
    }
}

/// The claims read from a token. `exp` and `sub` are required, but optional here: the claims
/// are read before `jsonwebtoken` validates them, and its check (through
/// [`Validation::required_spec_claims`]) names a missing one better than serde would.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
}

/// The header field this file reads itself, to name an algorithm `jsonwebtoken` cannot parse
/// (`none`, `HS512`, …).
#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// One key and the algorithm it verifies.
struct Key {
    alg: Algorithm,
    key: DecodingKey,
}

/// The configured keys and rules. Cheap to share behind an `Arc`.
pub struct TokenVerifier {
    keys: Vec<Key>,
    audience: Option<String>,
    max_lifetime: Duration,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithms", &self.keys.iter().map(|k| k.alg).collect::<Vec<_>>())
            .field("audience", &self.audience)
            .field("max_lifetime", &self.max_lifetime)
            .finish()
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A base64url JSON part of a token, read without checking anything (to name what is wrong).
fn part_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `exp` of a token whose signature verified (for saying how long ago it expired).
fn payload_exp(token: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    part_json::<Exp>(token.split('.').nth(1)?).map(|e| e.exp)
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        _ => "another algorithm",
    }
}

impl TokenVerifier {
    /// Builds a verifier from shared secrets (HS256) and PEM public key files (RS256 / ES256).
    /// `None` when neither is configured. A short secret or an unreadable key is an error
    /// naming the flag.
    pub fn new(
        secrets: &[String],
        public_keys: &[impl AsRef<Path>],
        audience: Option<String>,
        max_lifetime: Duration,
    ) -> Result<Option<TokenVerifier>, String> {
        let mut keys = Vec::new();
        for secret in secrets {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "an --identity-secret is {} bytes long; use at least {MIN_SECRET_BYTES} random bytes (openssl rand -hex 32). Several secrets are separated by commas, so a secret cannot contain one",
                    secret.len()
                ));
            }
            keys.push(Key { alg: Algorithm::HS256, key: DecodingKey::from_secret(secret.as_bytes()) });
        }
        for path in public_keys {
            let path = path.as_ref();
            let pem = std::fs::read(path)
                .map_err(|e| format!("--identity-public-key {}: cannot read it: {e}", path.display()))?;
            let key = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                Key { alg: Algorithm::RS256, key }
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                Key { alg: Algorithm::ES256, key }
            } else {
                return Err(format!(
                    "--identity-public-key {}: not a PEM RSA or P-256 public key (\"-----BEGIN PUBLIC KEY-----\")",
                    path.display()
                ));
            };
            keys.push(key);
        }
        if let Some(aud) = &audience {
            if aud.trim().is_empty() {
                return Err("--identity-audience is empty".into());
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(TokenVerifier { keys, audience, max_lifetime }))
    }

    /// The algorithms the configured keys verify, as `HS256 and RS256`.
    fn accepted(&self) -> String {
        let mut names: Vec<&str> = self.keys.iter().map(|k| alg_name(k.alg)).collect();
        names.dedup();
        names.join(" and ")
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                v.set_required_spec_claims(&["exp", "sub", "aud"]);
            }
            None => {
                v.validate_aud = false;
                v.set_required_spec_claims(&["exp", "sub"]);
            }
        }
        v
    }

    /// Verifies `token` now.
    pub fn verify(&self, token: &str) -> Result<VerifiedUser, TokenError> {
        self.verify_at(token, now_secs())
    }

    /// Verifies `token` as of `now` (seconds since the epoch) for the lifetime rule; `exp` and
    /// `nbf` are checked against the clock by `jsonwebtoken`.
    fn verify_at(&self, token: &str, now: u64) -> Result<VerifiedUser, TokenError> {
        let alg = self.algorithm_of(token)?;
        let mut last = TokenError::Signature;
        for key in self.keys.iter().filter(|k| k.alg == alg) {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(alg)) {
                Ok(data) => return self.accept(data.claims, now),
                Err(e) => {
                    last = self.explain(e.kind(), token);
                    if last != TokenError::Signature {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// The token's algorithm, when a configured key verifies it.
    fn algorithm_of(&self, token: &str) -> Result<Algorithm, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = part_json(header).ok_or(TokenError::Malformed)?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(TokenError::Unsigned);
        }
        let alg = match header.alg.as_str() {
            "HS256" => Some(Algorithm::HS256),
            "RS256" => Some(Algorithm::RS256),
            "ES256" => Some(Algorithm::ES256),
            _ => None,
        };
        match alg {
            Some(alg) if self.keys.iter().any(|k| k.alg == alg) => Ok(alg),
            _ => Err(TokenError::Algorithm {
                alg: header.alg.chars().filter(|c| c.is_ascii_graphic()).take(16).collect(),
                accepted: self.accepted(),
            }),
        }
    }

    fn explain(&self, kind: &jsonwebtoken::errors::ErrorKind, token: &str) -> TokenError {
        use jsonwebtoken::errors::ErrorKind as K;
        match kind {
            K::InvalidSignature => TokenError::Signature,
            K::ExpiredSignature => {
                TokenError::Expired(HumanSecs(now_secs().saturating_sub(payload_exp(token).unwrap_or(0))))
            }
            K::ImmatureSignature => TokenError::NotYetValid,
            K::MissingRequiredClaim(c) if c == "aud" => {
                TokenError::MissingAudience(self.audience.clone().unwrap_or_default())
            }
            K::MissingRequiredClaim(c) => TokenError::Missing(match c.as_str() {
                "exp" => "exp",
                "sub" => "sub",
                _ => "required",
            }),
            K::InvalidAudience => TokenError::Audience(self.audience.clone().unwrap_or_default()),
            K::Json(e) => TokenError::Claim(e.to_string()),
            K::InvalidAlgorithm => {
                TokenError::Algorithm { alg: "another algorithm".into(), accepted: self.accepted() }
            }
            _ => TokenError::Malformed,
        }
    }

    /// The checks after the signature and the standard claims: lifetime, `sub`, the profile.
    fn accept(&self, c: Claims, now: u64) -> Result<VerifiedUser, TokenError> {
        let exp = c.exp.ok_or(TokenError::Missing("exp"))?;
        let sub = c.sub.ok_or(TokenError::Missing("sub"))?;
        // The lifetime counts from `iat`, but never from later than now (give or take the
        // skew): an `iat` in the future would stretch how long the token lives past the limit.
        let (from, start) = match c.iat {
            Some(iat) if iat <= now.saturating_add(LEEWAY_SECS) => ("iat", iat),
            _ => ("now", now),
        };
        let lifetime = exp.saturating_sub(start);
        let max = self.max_lifetime.as_secs();
        if lifetime > max {
            return Err(TokenError::TooLongLived {
                lifetime: HumanSecs(lifetime),
                from,
                max: HumanSecs(max),
            });
        }
        if sub.is_empty() || sub.len() > MAX_SUB_BYTES {
            return Err(TokenError::Claim(format!("`sub` must be 1 to {MAX_SUB_BYTES} bytes long")));
        }
        let clean = |s: Option<String>, max: usize| {
            s.map(|s| s.chars().filter(|c| !c.is_control()).take(max).collect::<String>())
                .filter(|s| !s.trim().is_empty())
        };
        Ok(VerifiedUser {
            sub,
            name: clean(c.name, MAX_NAME_CHARS),
            email: clean(c.email, 254),
            avatar: clean(c.avatar, 2048),
            rooms: c.rooms,
            expires_at: exp,
        })
    }
}
