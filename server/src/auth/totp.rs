//! Two-factor codes: TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits, as every
//! authenticator app reads from an `otpauth://` URI), recovery codes, and the sealing of TOTP
//! secrets at rest with the server's key (XChaCha20-Poly1305), so the database alone never
//! holds a usable secret.
//!
//! ```text
//! enrol ─> secret sealed, not enabled ─ confirm(first code) ─> enabled + 10 recovery codes
//!                                                               └─ disable(password + code) ─> none
//! ```

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use zeroize::Zeroizing;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of now (clock drift).
pub const WINDOW: i64 = 1;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes issued at once.
pub const RECOVERY_CODES: usize = 10;

/// RFC 4648 base32 without padding (`data-encoding`), as authenticator apps read it.
pub fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// Decodes [`base32`] (case, spaces and padding ignored, as people type it); `None` on a bad
/// character or length.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    data_encoding::BASE32_NOPAD.decode(clean.as_bytes()).ok()
}

/// The 6-digit code of a step.
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    bin % 1_000_000
}

/// The step of a Unix time.
pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The step within the window whose code `code` is (compared in constant time per step), if
/// any; the caller then makes sure no step is used twice.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: i64) -> Option<i64> {
    use subtle::ConstantTimeEq;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_seconds);
    let mut found = None;
    for step in (now - WINDOW)..=(now + WINDOW) {
        let expected = format!("{:06}", code_at(secret, step));
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The URI authenticator apps read (as a QR code) to enrol.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
        pct(issuer),
        pct(account),
        base32(secret),
        pct(issuer)
    )
}

/// What an `otpauth://` label or parameter keeps as it is: letters, digits and `-._~@`
/// (RFC 3986's unreserved characters, and `@` of an e-mail login).
const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// Fresh random bytes.
pub fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, String> {
    let mut buf = Zeroizing::new([0u8; N]);
    getrandom::fill(buf.as_mut()).map_err(|e| format!("no randomness: {e}"))?;
    Ok(buf)
}

/// Ten recovery codes, `xxxx-xxxx-xxxx-xxxx` in base32 (80 bits each).
pub fn recovery_codes() -> Result<Vec<String>, String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = random::<10>()?;
            let s = base32(bytes.as_ref()).to_lowercase();
            Ok(format!("{}-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12], &s[12..16]))
        })
        .collect()
}

/// Seals and opens TOTP secrets with the server's 256-bit key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// A sealer for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// `v1.<nonce hex>.<ciphertext hex>`.
    pub fn seal(&self, plain: &[u8]) -> Result<String, String> {
        let nonce = random::<24>()?;
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(nonce.as_ref()), plain)
            .map_err(|_| "cannot seal the secret".to_owned())?;
        Ok(format!("v1.{}.{}", hex::encode(nonce), hex::encode(&sealed)))
    }

    /// The plaintext of [`Sealer::seal`]; `None` when it was sealed with another key or altered.
    pub fn open(&self, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
        let mut parts = sealed.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let nonce = hex::decode(parts.next()?).ok()?;
        let data = hex::decode(parts.next()?).ok()?;
        if nonce.len() != 24 {
            return None;
        }
        self.cipher
            .decrypt(XNonce::from_slice(&nonce), data.as_ref())
            .ok()
            .map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vectors() {
        // RFC 6238 appendix B, SHA-1 seed, codes truncated to 6 digits.
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, 287_082),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at(secret, step_of(t)), code, "t = {t}");
        }
    }

    #[test]
    fn the_window_is_one_step_either_side() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111;
        let code = |step: i64| format!("{:06}", code_at(secret, step));
        let s = step_of(now);
        assert_eq!(matching_step(secret, &code(s), now), Some(s));
        assert_eq!(matching_step(secret, &code(s - 1), now), Some(s - 1));
        assert_eq!(matching_step(secret, &code(s + 1), now), Some(s + 1));
        assert_eq!(matching_step(secret, &code(s - 2), now), None);
        assert_eq!(matching_step(secret, &code(s + 2), now), None);
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "abcdef", now), None);
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        for n in 0..40 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base32_decode(&base32(&bytes)).unwrap(), bytes);
        }
        assert_eq!(base32_decode("MZXW 6ytb oi").unwrap(), b"foobar");
        assert!(base32_decode("MZ1").is_none());
    }

    #[test]
    fn sealing_needs_the_key() {
        let a = Sealer::new(&[7; 32]);
        let b = Sealer::new(&[8; 32]);
        let sealed = a.seal(b"totp secret").unwrap();
        assert!(!sealed.contains(&hex::encode(b"totp secret")));
        assert_eq!(a.open(&sealed).unwrap().as_slice(), b"totp secret");
        assert!(b.open(&sealed).is_none());
        assert!(a.open("v1.00.00").is_none());
        let codes = recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes[0].len(), 19);
        assert_ne!(codes[0], codes[1]);
    }

    #[test]
    fn otpauth_uri_is_escaped() {
        let uri = otpauth_uri("Portcullis", "alice@example.com", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/Portcullis:alice@example.com?secret=MZXW6YTBOI&issuer=Portcullis&algorithm=SHA1&digits=6&period=30"
        );
        // Spaces, the label's `:`, the query's `&` and non-ASCII letters are percent-encoded.
        let uri = otpauth_uri("Acme & Co", "José Ruiz:x", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20%26%20Co:Jos%C3%A9%20Ruiz%3Ax?secret=MZXW6YTBOI&issuer=Acme%20%26%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }
}
