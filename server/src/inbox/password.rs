//! Operator passwords: argon2id hashes in PHC string format (the `argon2` crate with its
//! defaults: 19 MiB, 2 passes, 1 lane — OWASP's recommended minimum), and the rules for names,
//! display names and passwords.
//!
//! Hashing and verifying cost tens of milliseconds of CPU and 19 MiB of memory on purpose. A
//! [`Hasher`] keeps its 19 MiB and works in it check after check, so the hub holds that memory
//! once per thread that checks passwords (`inbox::checks`) rather than allocating it for each
//! check on whichever thread runs it: the C allocator keeps what is freed in per-thread arenas,
//! so a few dozen failed sign-ins used to leave the hub hundreds of megabytes larger.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Shortest password accepted, in characters.
pub(crate) const MIN_PASSWORD_CHARS: usize = 10;

/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work).
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;

/// The most memory a stored hash may ask for, in KiB (argon2's `m`): four times the default.
/// Hashes are made by this hub with the default; one that asks for more (a database edited by
/// hand) matches nothing rather than making every check allocate what it says.
const MAX_MEMORY_KIB: u32 = 4 * Params::DEFAULT_M_COST;

/// Hashes and verifies in memory of its own (argon2's blocks), kept from one check to the next.
/// The memory is taken at the first check: 19 MiB with the default parameters.
#[derive(Default)]
pub(crate) struct Hasher {
    blocks: Vec<Block>,
}

impl Hasher {
    /// `count` blocks of the kept memory, grown to that when smaller.
    fn memory(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.len() < count {
            self.blocks.resize(count, Block::new());
        }
        &mut self.blocks[..count]
    }

    /// Hashes `password` with a fresh random salt and the default parameters.
    pub(crate) fn hash(&mut self, password: &str) -> Result<String, String> {
        let fail = |e: &dyn std::fmt::Display| format!("cannot hash the password: {e}");
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut raw_salt = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut raw_salt).map_err(|e| fail(&e))?;
        let memory = self.memory(params.block_count());
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            argon
                .hash_password_into_with_memory(password.as_bytes(), raw_salt, out, &mut *memory)
                .map_err(Into::into)
        })
        .map_err(|e| fail(&e))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` matches `stored` (a PHC string), checked as the `argon2` crate's
    /// `PasswordVerifier` does (the stored algorithm, version and parameters; a constant-time
    /// comparison). A malformed `stored`, or one asking for more than [`MAX_MEMORY_KIB`],
    /// matches nothing.
    pub(crate) fn verify(&mut self, password: &str, stored: &str) -> bool {
        let Ok(hash) = PasswordHash::new(stored) else { return false };
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return false };
        let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else { return false };
        let version = match hash.version.map(Version::try_from).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(&hash) else { return false };
        if params.m_cost() > MAX_MEMORY_KIB {
            tracing::warn!(memory_kib = params.m_cost(), "a stored password hash asks for too much memory");
            return false;
        }
        let mut raw_salt = [0u8; 64];
        let Ok(raw_salt) = salt.decode_b64(&mut raw_salt) else { return false };
        let argon = Argon2::new(algorithm, version, params.clone());
        let memory = self.memory(params.block_count());
        let computed = Output::init_with(expected.len(), |out| {
            argon
                .hash_password_into_with_memory(password.as_bytes(), raw_salt, out, &mut *memory)
                .map_err(Into::into)
        });
        // `Output`'s equality is constant-time.
        computed.is_ok_and(|computed| computed == expected)
    }

    /// Spends the time a real verification takes, for a sign-in with an unknown name: the
    /// answer time does not tell which names exist.
    pub(crate) fn verify_nobody(&mut self, password: &str) {
        static DUMMY: OnceLock<String> = OnceLock::new();
        let dummy = match DUMMY.get() {
            Some(dummy) => dummy,
            None => {
                let made = self.hash("no operator has this password").unwrap_or_default();
                DUMMY.get_or_init(|| made)
            }
        };
        let _ = self.verify(password, dummy);
    }
}

/// Hashes `password` with a fresh random salt, in memory of its own (for the
/// `natter-hub operator` commands, which hash once and exit).
pub(crate) fn hash(password: &str) -> Result<String, String> {
    Hasher::default().hash(password)
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

    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn argon2id_hashes_verify_only_their_password() {
        let mut hasher = Hasher::default();
        let h = hasher.hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(hasher.verify("correct horse battery", &h));
        assert!(!hasher.verify("correct horse batterY", &h));
        assert!(!hasher.verify("correct horse battery", "not a hash"));
        assert_ne!(hash("correct horse battery").expect("hash"), h, "a fresh salt every time");
        hasher.verify_nobody("anything at all");
        assert_eq!(hasher.blocks.len(), Params::default().block_count(), "19 MiB, kept");
    }

    /// The kept-memory path agrees with the crate's own hashing and verifying both ways, for
    /// the default parameters and for others a stored hash may carry.
    #[test]
    fn hashes_agree_with_the_crates_own() {
        let mut hasher = Hasher::default();
        let ours = hasher.hash("correct horse battery").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC");
        assert!(Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        for argon in [
            Argon2::default(),
            Argon2::new(
                Algorithm::Argon2i,
                Version::V0x10,
                Params::new(8 * 1024, 3, 1, None).expect("params"),
            ),
        ] {
            let theirs = argon.hash_password(b"battery staple", &salt).expect("hash").to_string();
            assert!(hasher.verify("battery staple", &theirs), "{theirs}");
            assert!(!hasher.verify("battery stapler", &theirs), "{theirs}");
        }
        let greedy = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(MAX_MEMORY_KIB + 8, 1, 1, None).expect("params"),
        );
        let theirs = greedy.hash_password(b"battery staple", &salt).expect("hash").to_string();
        assert!(!hasher.verify("battery staple", &theirs), "more memory than allowed matches nothing");
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
