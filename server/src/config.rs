//! Server configuration: one immutable [`Config`], resolved once at start.
//!
//! Layers, later ones winning: the defaults below → `portcullis.toml` (unknown keys are an
//! error) → `PORTCULLIS_*` environment variables → command-line flags. The binary reads the
//! file and the environment and hands the flags in as a [`Layer`]; tests build a `Config`
//! directly. Limits are typed, each with a named default, so nothing is a magic number.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8180";
/// The default policy folder.
pub const DEFAULT_POLICIES: &str = "policies";
/// The default user store of `portcullis serve`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "portcullis.db";
/// The default config file, read when present.
pub const DEFAULT_CONFIG_FILE: &str = "portcullis.toml";
/// The `Host` names answered by default (besides the listen address): loopback only, so a
/// web page that rebinds its own name to 127.0.0.1 reaches nothing.
pub const DEFAULT_ALLOWED_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// A secret whose `Debug` never shows it (the store's one wrapper, for the service API key
/// too).
pub use portcullis_store::Secret;

/// Limits on what one client may send, against memory exhaustion and slow clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most checks in one batch request.
    pub max_batch: usize,
    /// Deepest JSON nesting accepted in a body.
    pub max_json_depth: usize,
    /// Time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time one request may take, body included.
    pub request_timeout: Duration,
}

impl Limits {
    /// 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// 1,000 checks.
    pub const DEFAULT_MAX_BATCH: usize = 1_000;
    /// 64 levels.
    pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;
    /// 5 seconds.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
    /// 10 seconds.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_batch: Self::DEFAULT_MAX_BATCH,
            max_json_depth: Self::DEFAULT_MAX_JSON_DEPTH,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Sign-in settings of the server (the rules themselves live in the policy folder's
/// `[sign_in]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInConfig {
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after it began, whatever its use.
    pub session_lifetime: Duration,
    /// argon2id memory, in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_lanes: u32,
    /// Password hashes computed at once (each holds `argon2_memory_kib`).
    pub max_concurrent_hashes: usize,
    /// The file holding the 256-bit key that seals TOTP secrets (64 hex characters); with a
    /// SQLite store and no setting, `<database>.key`, created on first use.
    pub secret_key_file: Option<PathBuf>,
    /// A program run for each password-reset link, the link's JSON on its standard input
    /// (the application's mailer); without one, links are issued to no one.
    pub password_reset_command: Option<PathBuf>,
    /// Passkeys: the relying party they are registered for; `None` turns them off.
    pub passkeys: Option<crate::auth::passkey::PasskeyConfig>,
}

impl SignInConfig {
    /// 30 minutes.
    pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
    /// 12 hours.
    pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self {
            session_idle: Self::DEFAULT_SESSION_IDLE,
            session_lifetime: Self::DEFAULT_SESSION_LIFETIME,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_lanes: 1,
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, usize::from),
            secret_key_file: None,
            password_reset_command: None,
            passkeys: None,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved configuration of `portcullis serve`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The policy folder.
    pub policies: PathBuf,
    /// A static entities file (Cedar JSON entity array), reloaded with the policies.
    pub entities: Option<PathBuf>,
    /// The service API key the decision endpoints require, when set.
    pub api_key: Option<Secret>,
    /// Request limits.
    pub limits: Limits,
    /// How much each cache keeps.
    pub caches: crate::cache::CacheSizes,
    /// Quiet time after the last file event before a reload starts.
    pub reload_debounce: Duration,
    /// Watch the policy folder for changes.
    pub watch: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// The user store (`postgres://…`, or a SQLite file); `None` serves without one.
    pub database_url: Option<String>,
    /// Sign-in settings.
    pub sign_in: SignInConfig,
    /// The names a request's `Host` may carry (ports aside; `*` allows any); the listen
    /// address is always allowed. Others answer 421 `host_not_allowed`.
    pub allowed_hosts: Vec<String>,
    /// The URL clients reach this server at (`https://authz.example.com`), as the AuthZEN
    /// metadata advertises it; `None`: `http://` and the listen address.
    pub public_url: Option<String>,
    /// After SIGTERM, how long the server keeps answering (with `GET /readyz` at 503) before
    /// it stops accepting, so a load balancer takes it out of rotation first.
    pub drain_delay: Duration,
    /// After it stops accepting, how long requests in flight may take before the remaining
    /// connections are closed; `None`: the request timeout and a second.
    pub shutdown_grace: Option<Duration>,
    /// TLS: the certificate, key and client CA files; `None` serves plain HTTP.
    pub tls: Option<crate::tls::TlsFiles>,
    /// The product owner's console: `GET /` may preview, save and undo edits of
    /// `roles.toml` and try the folder as one of its users (`/v1/console/*`). Off by default;
    /// beyond loopback the service API key guards it like the decision API.
    pub console: bool,
}

impl Config {
    /// 50 ms of quiet before a reload.
    pub const DEFAULT_RELOAD_DEBOUNCE: Duration = Duration::from_millis(50);

    /// The defaults, serving `folder`.
    pub fn new(policies: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8180)),
            policies: policies.into(),
            entities: None,
            api_key: None,
            limits: Limits::default(),
            caches: crate::cache::CacheSizes::default(),
            reload_debounce: Self::DEFAULT_RELOAD_DEBOUNCE,
            watch: true,
            log_format: LogFormat::Text,
            database_url: None,
            sign_in: SignInConfig::default(),
            allowed_hosts: DEFAULT_ALLOWED_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            public_url: None,
            drain_delay: Duration::ZERO,
            shutdown_grace: None,
            tls: None,
            console: false,
        }
    }

    /// The base URL clients reach this server at, without a trailing `/`: `public_url`, or
    /// `http://` and the listen address. Never taken from a request's `Host`.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("{}://{}", self.scheme(), self.listen),
        }
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Whether a request's `Host` header (`name` or `name:port`) names this server: one of
    /// `allowed_hosts`, or the listen address. Names compare without case.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = match host.rsplit_once(':') {
            // `[::1]:8180` and `name:8180`; a bare `[::1]` has its colons inside brackets.
            Some((name, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let listen = match self.listen.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        name.eq_ignore_ascii_case(&listen)
            || self
                .allowed_hosts
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(name))
    }

    /// Applies one layer over this config.
    pub fn apply(mut self, l: Layer) -> Self {
        if let Some(v) = l.listen {
            self.listen = v;
        }
        if let Some(v) = l.policies {
            self.policies = v;
        }
        if let Some(v) = l.entities {
            self.entities = Some(v);
        }
        if let Some(v) = l.api_key {
            self.api_key = Some(Secret::new(v));
        }
        if let Some(v) = l.max_body_bytes {
            self.limits.max_body_bytes = v;
        }
        if let Some(v) = l.max_batch {
            self.limits.max_batch = v;
        }
        if let Some(v) = l.user_cache {
            self.caches.users = v;
        }
        if let Some(v) = l.decision_cache {
            self.caches.decisions = v;
        }
        if let Some(v) = l.slice_cache {
            self.caches.slices = v;
        }
        if let Some(v) = l.max_json_depth {
            self.limits.max_json_depth = v;
        }
        if let Some(v) = l.header_read_timeout_ms {
            self.limits.header_read_timeout = Duration::from_millis(v);
        }
        if let Some(v) = l.request_timeout_ms {
            self.limits.request_timeout = Duration::from_millis(v);
        }
        if let Some(v) = l.reload_debounce_ms {
            self.reload_debounce = Duration::from_millis(v);
        }
        if let Some(v) = l.watch {
            self.watch = v;
        }
        if let Some(v) = l.log_format {
            self.log_format = v;
        }
        if let Some(v) = l.database_url {
            self.database_url = Some(v);
        }
        let si = &mut self.sign_in;
        if let Some(v) = l.session_idle_minutes {
            si.session_idle = Duration::from_secs(v.saturating_mul(60));
        }
        if let Some(v) = l.session_lifetime_minutes {
            si.session_lifetime = Duration::from_secs(v.saturating_mul(60));
        }
        if let Some(v) = l.argon2_memory_kib {
            si.argon2_memory_kib = v;
        }
        if let Some(v) = l.argon2_iterations {
            si.argon2_iterations = v;
        }
        if let Some(v) = l.argon2_lanes {
            si.argon2_lanes = v;
        }
        if let Some(v) = l.max_concurrent_hashes {
            si.max_concurrent_hashes = v;
        }
        if let Some(v) = l.secret_key_file {
            si.secret_key_file = Some(v);
        }
        if let Some(v) = l.password_reset_command {
            si.password_reset_command = Some(v);
        }
        if l.passkey_rp_id.is_some() || l.passkey_origins.is_some() || l.passkey_rp_name.is_some() {
            let mut p = si.passkeys.take().unwrap_or(crate::auth::passkey::PasskeyConfig {
                rp_id: String::new(),
                origins: Vec::new(),
                rp_name: "Portcullis".to_owned(),
            });
            if let Some(v) = l.passkey_rp_id {
                p.rp_id = v;
            }
            if let Some(v) = l.passkey_origins {
                p.origins = v;
            }
            if let Some(v) = l.passkey_rp_name {
                p.rp_name = v;
            }
            si.passkeys = Some(p);
        }
        if let Some(v) = l.allowed_hosts {
            self.allowed_hosts = v;
        }
        if let Some(v) = l.public_url {
            self.public_url = Some(v);
        }
        if let Some(v) = l.console {
            self.console = v;
        }
        if let Some(v) = l.drain_delay_ms {
            self.drain_delay = Duration::from_millis(v);
        }
        if let Some(v) = l.shutdown_grace_ms {
            self.shutdown_grace = Some(Duration::from_millis(v));
        }
        if l.tls_cert.is_some() || l.tls_key.is_some() || l.tls_client_ca.is_some() {
            let mut tls = self.tls.take().unwrap_or(crate::tls::TlsFiles {
                cert: PathBuf::new(),
                key: PathBuf::new(),
                client_ca: None,
            });
            if let Some(v) = l.tls_cert {
                tls.cert = v;
            }
            if let Some(v) = l.tls_key {
                tls.key = v;
            }
            if let Some(v) = l.tls_client_ca {
                tls.client_ca = Some(v);
            }
            self.tls = Some(tls);
        }
        self
    }

    /// Resolves defaults → file → environment → flags.
    ///
    /// `file` is the config file named by the user (it must exist), or `None` to read
    /// `portcullis.toml` when present. `env` is the process environment (or a test's).
    pub fn resolve(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Layer,
    ) -> Result<Self, ConfigError> {
        let file_layer = match file {
            Some(p) => Layer::from_file(p)?,
            None => {
                let p = Path::new(DEFAULT_CONFIG_FILE);
                if p.is_file() {
                    Layer::from_file(p)?
                } else {
                    Layer::default()
                }
            }
        };
        let config = Self::new(DEFAULT_POLICIES)
            .apply(file_layer)
            .apply(Layer::from_env(env)?)
            .apply(flags);
        let mut config = config;
        if config.database_url.is_none() {
            config.database_url = Some(DEFAULT_DATABASE.to_owned());
        }
        config.check()?;
        Ok(config)
    }

    /// Refuses configurations that would be unsafe or cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.listen.ip().is_loopback() && self.api_key.is_none() {
            return Err(ConfigError::Invalid(format!(
                "listening on `{}` beyond loopback requires an API key (`api_key`, `PORTCULLIS_API_KEY` or `--api-key`)",
                self.listen
            )));
        }
        if self.api_key.as_ref().is_some_and(|k| k.expose().len() < 16) {
            return Err(ConfigError::Invalid(
                "the API key must be at least 16 characters".to_owned(),
            ));
        }
        let si = &self.sign_in;
        if si.session_idle.is_zero() || si.session_lifetime.is_zero() || si.max_concurrent_hashes == 0 {
            return Err(ConfigError::Invalid(
                "session lifetimes and `max_concurrent_hashes` must be greater than zero".to_owned(),
            ));
        }
        if let Some(p) = &si.passkeys {
            if p.rp_id.is_empty() {
                return Err(ConfigError::Invalid(
                    "passkeys need `passkey_rp_id`: the domain the passkeys are bound to".to_owned(),
                ));
            }
            if p.origins.is_empty() {
                return Err(ConfigError::Invalid(
                    "passkeys need `passkey_origins`: the origins of the pages that use them".to_owned(),
                ));
            }
            crate::auth::passkey::Passkeys::new(p).map_err(ConfigError::Invalid)?;
        }
        if let Some(t) = &self.tls {
            if t.cert.as_os_str().is_empty() || t.key.as_os_str().is_empty() {
                return Err(ConfigError::Invalid(
                    "TLS needs both `tls_cert` and `tls_key` (and `tls_client_ca` needs them too)".to_owned(),
                ));
            }
        }
        if let Some(u) = &self.public_url {
            let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
            if rest.is_none_or(|r| r.trim_end_matches('/').is_empty() || r.contains(['?', '#', ' '])) {
                return Err(ConfigError::Invalid(format!(
                    "`public_url` must be an `https://` or `http://` URL without query or fragment, not `{u}`"
                )));
            }
        }
        let l = &self.limits;
        if l.max_body_bytes == 0 || l.max_batch == 0 || l.max_json_depth == 0 {
            return Err(ConfigError::Invalid(
                "limits must be greater than zero".to_owned(),
            ));
        }
        Ok(())
    }
}

/// One layer of settings; `None` leaves the value below it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Listen address, `host:port`.
    pub listen: Option<SocketAddr>,
    /// The policy folder.
    pub policies: Option<PathBuf>,
    /// A static entities file.
    pub entities: Option<PathBuf>,
    /// The service API key.
    pub api_key: Option<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Most checks in one batch.
    pub max_batch: Option<usize>,
    /// Deepest JSON nesting.
    pub max_json_depth: Option<usize>,
    /// Header read timeout, in milliseconds.
    pub header_read_timeout_ms: Option<u64>,
    /// Request timeout, in milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// Reload debounce, in milliseconds.
    pub reload_debounce_ms: Option<u64>,
    /// Watch the policy folder.
    pub watch: Option<bool>,
    /// Turn on the product owner's console.
    pub console: Option<bool>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// The user store URL.
    pub database_url: Option<String>,
    /// Stored users' facts kept (0: none).
    pub user_cache: Option<usize>,
    /// Decisions kept per policy version (0: none).
    pub decision_cache: Option<usize>,
    /// Slices and parsed inline entities kept per policy version (0: none).
    pub slice_cache: Option<usize>,
    /// Minutes a session may go unused.
    pub session_idle_minutes: Option<u64>,
    /// Minutes a session lasts at most.
    pub session_lifetime_minutes: Option<u64>,
    /// argon2id memory, in KiB.
    pub argon2_memory_kib: Option<u32>,
    /// argon2id passes.
    pub argon2_iterations: Option<u32>,
    /// argon2id lanes.
    pub argon2_lanes: Option<u32>,
    /// Password hashes computed at once.
    pub max_concurrent_hashes: Option<usize>,
    /// The key file sealing TOTP secrets.
    pub secret_key_file: Option<PathBuf>,
    /// The program that delivers password-reset links.
    pub password_reset_command: Option<PathBuf>,
    /// The passkeys' relying party id (a domain), which turns passkeys on.
    pub passkey_rp_id: Option<String>,
    /// The origins of the pages that use passkeys. In the environment: comma-separated.
    pub passkey_origins: Option<Vec<String>>,
    /// The name authenticators show for the relying party.
    pub passkey_rp_name: Option<String>,
    /// The `Host` names answered (replacing the loopback defaults; the listen address is
    /// always allowed). In the environment: comma-separated.
    pub allowed_hosts: Option<Vec<String>>,
    /// The URL clients reach this server at, for the AuthZEN metadata.
    pub public_url: Option<String>,
    /// Time between SIGTERM and closing the listener, in milliseconds (`/readyz` says 503).
    pub drain_delay_ms: Option<u64>,
    /// Time requests in flight get once the listener is closed, in milliseconds.
    pub shutdown_grace_ms: Option<u64>,
    /// The TLS certificate chain (PEM); with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CAs (PEM) whose client certificates the decision API then requires (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
}

impl Layer {
    /// Reads a `portcullis.toml`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File(format!("cannot read `{}`: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError::File(format!("invalid `{}`: {e}", path.display())))
    }

    /// Reads the `PORTCULLIS_*` variables; other variables are ignored, unknown
    /// `PORTCULLIS_*` ones are an error so a typo never goes unnoticed.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut table = BTreeMap::new();
        for (k, v) in env {
            let Some(key) = k.strip_prefix("PORTCULLIS_") else {
                continue;
            };
            let key = key.to_lowercase();
            // `PORTCULLIS_LOG` is the log filter, read by the logger.
            if key == "log" {
                continue;
            }
            let value = match key.as_str() {
                "max_body_bytes"
                | "max_batch"
                | "max_json_depth"
                | "header_read_timeout_ms"
                | "request_timeout_ms"
                | "reload_debounce_ms"
                | "session_idle_minutes"
                | "session_lifetime_minutes"
                | "argon2_memory_kib"
                | "argon2_iterations"
                | "argon2_lanes"
                | "max_concurrent_hashes"
                | "user_cache"
                | "decision_cache"
                | "slice_cache"
                | "drain_delay_ms"
                | "shutdown_grace_ms" => v
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| ConfigError::Env(format!("`{k}` must be a number, not `{v}`")))?,
                "allowed_hosts" | "passkey_origins" => toml::Value::Array(
                    v.split(',')
                        .map(str::trim)
                        .filter(|h| !h.is_empty())
                        .map(|h| toml::Value::String(h.to_owned()))
                        .collect(),
                ),
                "watch" | "console" => v
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|_| ConfigError::Env(format!("`{k}` must be true or false")))?,
                _ => toml::Value::String(v),
            };
            table.insert(key, value);
        }
        toml::Value::Table(table.into_iter().collect())
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Env(format!("invalid environment: {e}")))
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file is unreadable or invalid.
    #[error("{0}")]
    File(String),
    /// A `PORTCULLIS_*` variable is invalid.
    #[error("{0}")]
    Env(String),
    /// The settings do not work together.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "max_batch = 10\nmax_json_depth = 8\npolicies = \"a\"\n").unwrap();
        let flags = Layer {
            max_json_depth: Some(9),
            ..Layer::default()
        };
        let c = Config::resolve(
            Some(&file),
            env(&[("PORTCULLIS_MAX_BATCH", "20"), ("HOME", "/x")]),
            flags,
        )
        .unwrap();
        assert_eq!(c.limits.max_batch, 20);
        assert_eq!(c.limits.max_json_depth, 9);
        assert_eq!(c.policies, PathBuf::from("a"));
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.limits.max_body_bytes, Limits::DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "max_bach = 10\n").unwrap();
        let e = Config::resolve(Some(&file), env(&[]), Layer::default()).unwrap_err();
        assert!(e.to_string().contains("max_bach"), "{e}");
        let e = Layer::from_env(env(&[("PORTCULLIS_LISTN", "x")])).unwrap_err();
        assert!(e.to_string().contains("listn"), "{e}");
    }

    #[test]
    fn beyond_loopback_needs_a_key() {
        let flags = Layer {
            listen: Some("0.0.0.0:8180".parse().unwrap()),
            ..Layer::default()
        };
        let e = Config::resolve(None, env(&[]), flags.clone()).unwrap_err();
        assert!(e.to_string().contains("API key"), "{e}");
        let c = Config::resolve(None, env(&[("PORTCULLIS_API_KEY", "0123456789abcdef0")]), flags).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef0"));
    }

    #[test]
    fn hosts_are_loopback_names_and_the_listen_address_by_default() {
        let c = Config::resolve(None, env(&[]), Layer::default()).unwrap();
        for ok in [
            "localhost",
            "LOCALHOST:8180",
            "127.0.0.1:8180",
            "[::1]:8180",
            "[::1]",
        ] {
            assert!(c.host_allowed(ok), "{ok}");
        }
        for no in ["evil.example", "evil.example:8180", "localhost.evil.example", ""] {
            assert!(!c.host_allowed(no), "{no}");
        }
        let c = Config::resolve(
            None,
            env(&[("PORTCULLIS_ALLOWED_HOSTS", "portal.example, api.example")]),
            Layer::default(),
        )
        .unwrap();
        assert!(c.host_allowed("portal.example:443"));
        assert!(c.host_allowed("api.example"));
        // The listen address stays allowed; the loopback names were replaced.
        assert!(c.host_allowed("127.0.0.1:8180"));
        assert!(!c.host_allowed("localhost"));
    }

    #[test]
    fn the_public_url_is_configured_never_guessed() {
        let c = Config::resolve(None, env(&[]), Layer::default()).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8180");
        let c = Config::resolve(
            None,
            env(&[("PORTCULLIS_PUBLIC_URL", "https://authz.example.com/")]),
            Layer::default(),
        )
        .unwrap();
        assert_eq!(c.base_url(), "https://authz.example.com");
        for bad in ["authz.example.com", "ftp://x", "https://", "https://x/?a=b"] {
            let e =
                Config::resolve(None, env(&[("PORTCULLIS_PUBLIC_URL", bad)]), Layer::default()).unwrap_err();
            assert!(e.to_string().contains("public_url"), "{bad}: {e}");
        }
    }
}
