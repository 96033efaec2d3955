//! Secrets handed out once (invitation tokens, API keys) and how the store keeps them: random
//! 256-bit values, stored only as SHA-256 hex digests, compared in constant time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Result, StoreError};

/// Bytes of randomness in a token (256 bits; the house minimum is 128).
pub const TOKEN_BYTES: usize = 32;

/// A plaintext secret (a token returned once at creation, a configured API key); its `Debug`
/// is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a plaintext secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The plaintext, to show the user once or to compare.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A fresh random token, hex encoded.
pub(crate) fn random_token() -> Result<String> {
    let mut buf = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Backend(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

/// The stored form of a token: its SHA-256, hex encoded.
pub(crate) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two digests without leaking where they differ.
pub(crate) fn same_hash(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        // The stored form is SHA-256 in lowercase hex: FIPS 180-2's test vector for "abc".
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hash_token(&a), hash_token(&b));
        assert!(same_hash(&hash_token(&a), &hash_token(&a.clone())));
        assert!(!same_hash(&hash_token(&a), &hash_token(&b)));
        assert!(!same_hash("ab", "abc"), "a prefix is not the same digest");
        assert_eq!(format!("{:?}", Secret::new(a)), "Secret(***)");
    }
}
