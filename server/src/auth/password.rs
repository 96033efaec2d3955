//! Passwords: the folder's password rule, and argon2id hashing and verification on blocking
//! threads behind a concurrency bound, with plaintext zeroized after use.
//!
//! Input: the plaintext from a sign-in, a change, a reset or an invitation acceptance, and the
//! policy folder's `[sign_in]` rule. Output: PHC strings for the store, or a yes/no. A login
//! with no stored hash (unknown user, no password set) is verified against a dummy hash made
//! with the same parameters, so it costs the same time as a wrong password.

use std::collections::HashSet;
use std::io::Read;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use portcullis_engine::{PasswordRule, SignIn};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Longest password accepted, in characters (long enough for any passphrase, short enough
/// that hashing cannot be made expensive by size).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Argon2id parameters (OWASP's first recommendation by default: 19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub lanes: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            lanes: 1,
        }
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakPassword(pub String);

/// Checks a new password against the folder's rule; `context` holds words the password must
/// not be (the login, the email, its local part).
pub fn check_rule(rule: &SignIn, password: &str, context: &[&str]) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    let min = usize::try_from(rule.min_password_length).unwrap_or(usize::MAX);
    if chars < min {
        return Err(WeakPassword(format!(
            "the password must have at least {min} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(WeakPassword(format!(
            "the password must have at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    let lower = password.to_lowercase();
    if common_passwords().contains(lower.as_str()) {
        return Err(WeakPassword(
            "the password is on the list of commonly used passwords".to_owned(),
        ));
    }
    if context.iter().any(|w| !w.is_empty() && lower == w.to_lowercase()) {
        return Err(WeakPassword(
            "the password must not be the login or the email".to_owned(),
        ));
    }
    if password.chars().all(|c| password.starts_with(c)) {
        return Err(WeakPassword(
            "the password must not repeat one character".to_owned(),
        ));
    }
    if rule.password_rule == PasswordRule::Composition {
        let missing: Vec<&str> = [
            (password.chars().any(char::is_uppercase), "an uppercase letter"),
            (password.chars().any(char::is_lowercase), "a lowercase letter"),
            (password.chars().any(|c| c.is_ascii_digit()), "a digit"),
            (
                password.chars().any(|c| !c.is_alphanumeric()),
                "a special character",
            ),
        ]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what)
        .collect();
        if !missing.is_empty() {
            return Err(WeakPassword(format!("the password needs {}", missing.join(", "))));
        }
    }
    Ok(())
}

/// The 20,000 most common passwords (Django's list, after Royce Williams' list; BSD licence),
/// lowercased.
fn common_passwords() -> &'static HashSet<String> {
    static LIST: OnceLock<HashSet<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        let gz: &[u8] = include_bytes!("common-passwords.txt.gz");
        let mut text = String::new();
        if flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .is_err()
        {
            tracing::error!("the embedded list of common passwords cannot be read");
        }
        text.lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Hashes and verifies passwords on its own `concurrency` threads, so a burst of sign-ins
/// queues instead of exhausting memory: each hash holds `memory_kib`, and a fixed set of
/// threads keeps the allocator from parking a freed 19 MiB block in an arena per thread, as
/// tokio's growing blocking pool would.
#[derive(Debug, Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
    dummy: Arc<str>,
    verifications: Arc<std::sync::atomic::AtomicU64>,
}

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The argon2 memory of a hashing thread, allocated once and reused by every
    /// verification: allocating 19 MiB per sign-in fragments the allocator's heap, which then
    /// keeps several such blocks per thread.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Verifies `password` against a PHC string with the parameters the string carries, in the
/// thread's reused memory; the outputs are compared in constant time.
fn verify_now(phc: &str, password: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (Params::try_from(&h), Algorithm::try_from(h.algorithm)) else {
        return false;
    };
    let version = h.version.map_or(Ok(Version::V0x13), Version::try_from);
    let (Ok(version), Some(salt), Some(expected)) = (version, h.salt, h.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        blocks.resize(params.block_count(), argon2::Block::default());
        argon2
            .hash_password_into_with_memory(password, salt, &mut out, &mut blocks[..])
            .is_ok()
    });
    computed && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// Starts the hashing threads; they end when the last [`Hasher`] clone is dropped.
fn hashing_threads(n: usize) -> Result<std::sync::mpsc::Sender<Job>, HashError> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || loop {
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            })
            .map_err(|e| HashError(format!("cannot start a hashing thread: {e}")))?;
    }
    Ok(tx)
}

/// A hashing failure (bad parameters, a stored hash that is not a PHC string).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Hasher {
    /// A hasher with these parameters and at most `concurrency` hashes at once.
    pub fn new(p: HashParams, concurrency: usize) -> Result<Self, HashError> {
        let params =
            Params::new(p.memory_kib, p.iterations, p.lanes, None).map_err(|e| HashError(e.to_string()))?;
        let mut h = Hasher {
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            jobs: hashing_threads(concurrency.max(1))?,
            dummy: Arc::from(""),
            verifications: Arc::default(),
        };
        let dummy = h.hash_now(b"portcullis dummy password, never a real one")?;
        h.dummy = Arc::from(dummy.as_str());
        Ok(h)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_now(&self, password: &[u8]) -> Result<String, HashError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
        self.argon2()
            .hash_password(password, &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Runs `f` on a hashing thread, at most `concurrency` at once.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Hasher) -> R + Send + 'static,
    ) -> Result<R, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let me = self.clone();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f(&me));
            }))
            .map_err(|_| HashError("the hashing threads are gone".to_owned()))?;
        rx.await
            .map_err(|_| HashError("a hashing thread failed".to_owned()))
    }

    /// Hashes a password into a PHC string; the plaintext is zeroized when done.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, HashError> {
        self.run(move |me| me.hash_now(password.as_bytes())).await?
    }

    /// Whether `password` matches `phc`; with no hash it verifies against the dummy and
    /// answers no, taking the same time.
    pub async fn verify(&self, phc: Option<String>, password: Zeroizing<String>) -> bool {
        let real = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.to_string());
        self.run(move |me| {
            if real {
                me.verifications
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            verify_now(&phc, password.as_bytes()) && real
        })
        .await
        .unwrap_or(false)
    }

    /// Verifications against stored hashes so far (not the dummy's): the lockout test counts
    /// them.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(r: PasswordRule) -> SignIn {
        SignIn {
            password_rule: r,
            ..SignIn::default()
        }
    }

    #[test]
    fn nist_rule_checks_length_and_the_blocklist_only() {
        let r = rule(PasswordRule::Nist);
        assert!(check_rule(&r, "short", &[]).is_err());
        assert!(check_rule(&r, "password1", &[]).is_err(), "common");
        assert!(
            check_rule(&r, "Password1", &[]).is_err(),
            "common, whatever the case"
        );
        assert!(check_rule(&r, "aaaaaaaaaa", &[]).is_err());
        assert!(check_rule(&r, "alice@example.com", &["alice@example.com"]).is_err());
        assert!(
            check_rule(&r, "purple tractor umbrella", &[]).is_ok(),
            "no composition rules"
        );
        assert!(check_rule(&r, &"x".repeat(300), &[]).is_err());
    }

    #[test]
    fn composition_rule_names_what_is_missing() {
        let r = rule(PasswordRule::Composition);
        let e = check_rule(&r, "purple tractor umbrella", &[]).unwrap_err();
        assert_eq!(e.0, "the password needs an uppercase letter, a digit");
        assert!(check_rule(&r, "Purple-Tractor-9", &[]).is_ok());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let h = Hasher::new(
            HashParams {
                memory_kib: 1024,
                iterations: 1,
                lanes: 1,
            },
            2,
        )
        .unwrap();
        let phc = h.hash(Zeroizing::new("correct horse".to_owned())).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(
            h.verify(Some(phc.clone()), Zeroizing::new("correct horse".to_owned()))
                .await
        );
        assert!(
            !h.verify(Some(phc), Zeroizing::new("wrong horse".to_owned()))
                .await
        );
        assert!(!h.verify(None, Zeroizing::new("correct horse".to_owned())).await);
        assert!(
            !h.verify(Some("not a phc".to_owned()), Zeroizing::new("x".to_owned()))
                .await
        );
    }
}
