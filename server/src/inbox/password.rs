//! Operator passwords: argon2id hashes in PHC string format (the `argon2` crate with its
//! defaults: 19 MiB, 2 passes, 1 lane — OWASP's recommended minimum), and the rules for names,
//! display names and passwords.
//!
//! Hashing and verifying cost tens of milliseconds of CPU on purpose, so callers on the async
//! runtime run them with `spawn_blocking`.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted, in characters.
pub(crate) const MIN_PASSWORD_CHARS: usize = 10;

/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work).
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes `password` with a fresh random salt.
pub(crate) fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches `stored` (a PHC string). A malformed `stored` matches nothing.
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Spends the time a real verification takes, for a sign-in with an unknown name: the answer
/// time does not tell which names exist.
pub(crate) fn verify_nobody(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("no operator has this password").unwrap_or_default());
    let _ = verify(password, dummy);
}

/// Checks a new password; the error says what is wrong.
pub(crate) fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("the password must have at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("the password must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

/// Checks a sign-in name: 1–64 of `a-z`, `0-9`, `.`, `-`, `_`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.len() > 64 {
        // Not echoed: a sign-in may send anything up to the body limit.
        return Err(format!("an operator name has at most 64 characters (this one has {})", name.len()));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!("operator name {name:?} must be 1–64 of a-z, 0-9, '.', '-', '_'"))
    }
}

/// Checks a display name: 1–64 characters without control characters.
pub(crate) fn check_display_name(name: &str) -> Result<(), String> {
    let n = name.trim().chars().count();
    if n == 0 || n > 64 || name.chars().any(char::is_control) {
        return Err(format!("display name {name:?} must be 1–64 characters without control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_only_their_password() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(hash("correct horse battery").expect("hash"), h, "a fresh salt every time");
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_name("ada").is_ok() && check_name("ada.l-2_x").is_ok());
        for bad in ["", "Ada", "a b", "ada@x", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("short").unwrap_err().contains("10 characters"));
        assert!(check_password("long enough!").is_ok());
        assert!(check_display_name("Ada L.").is_ok());
        assert!(check_display_name(" ").is_err() && check_display_name("a\nb").is_err());
    }
}
