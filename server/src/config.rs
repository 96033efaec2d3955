//! Server configuration: every setting declared once, in [`Settings`], and resolved once at
//! start into one immutable [`Config`].
//!
//! A field of [`Settings`] is a key of `portcullis.toml`, a `PORTCULLIS_<KEY>` variable and a
//! `--key` flag of `portcullis serve`; its doc comment is the help text and its value in
//! `Settings::default` the default, both read back through its JSON Schema ([`settings`]), so
//! `--help` shows what the code uses. Layers, later ones winning: the defaults →
//! `portcullis.toml` (unknown keys are an error) → `PORTCULLIS_*` variables (unknown ones are
//! an error) → flags. Each layer is a [`Layer`] of keys; merged, they deserialize into one
//! `Settings`, typed by serde, which becomes the `Config`. Tests build a `Config` directly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default policy folder.
pub const DEFAULT_POLICIES: &str = "policies";
/// The default user store of `portcullis serve`: a SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "portcullis.db";
/// The default config file, read when present.
pub const DEFAULT_CONFIG_FILE: &str = "portcullis.toml";
/// The relying party name passkeys show by default.
const DEFAULT_RP_NAME: &str = "Portcullis";

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

impl Default for SignInConfig {
    fn default() -> Self {
        Settings::default().into_config().sign_in
    }
}

/// How logs are written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
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
    /// The defaults, serving `folder` without a user store (`portcullis serve` uses
    /// `database_url`'s default; tests and embedders name one when they want one).
    pub fn new(policies: impl Into<PathBuf>) -> Self {
        let settings = Settings {
            policies: policies.into(),
            ..Settings::default()
        };
        Self {
            database_url: None,
            ..settings.into_config()
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

    /// Resolves defaults → file → environment → flags.
    ///
    /// `file` is the config file named by the user (it must exist), or `None` to read
    /// `portcullis.toml` when present. `env` is the process environment (or a test's).
    pub fn resolve(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Layer,
    ) -> Result<Self, ConfigError> {
        let file = match file {
            Some(p) => Layer::from_file(p)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                Layer::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Layer::default(),
        };
        let settings = flags
            .over(Layer::from_env(env)?.over(file))
            .settings()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let config = settings.into_config();
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

/// Every setting of `portcullis serve`, declared once: the field is the file key, the
/// `PORTCULLIS_<KEY>` variable and the `--key` flag (`x-flag` names another); its doc comment
/// is the help text; `Default` below holds the defaults. Lists are comma-separated in the
/// environment, and their flag may be repeated.
#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Listen address, `host:port`.
    pub listen: SocketAddr,
    /// The policy folder (also `portcullis serve FOLDER`).
    pub policies: PathBuf,
    /// A static entities file (Cedar JSON entity array), reloaded with the policies.
    pub entities: Option<PathBuf>,
    /// Service API key for the decision endpoints; required beyond loopback. Prefer
    /// `PORTCULLIS_API_KEY`, which does not show in the process list.
    pub api_key: Option<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most checks in one batch request.
    pub max_batch: usize,
    /// Deepest JSON nesting accepted in a body.
    pub max_json_depth: usize,
    /// Time a client has to send its request headers, in ms (then 408).
    pub header_read_timeout_ms: u64,
    /// Time one request may take, body included, in ms.
    pub request_timeout_ms: u64,
    /// Quiet time after a file change before reloading, in ms.
    pub reload_debounce_ms: u64,
    /// Watch the policy folder (off: reload on SIGHUP or `POST /v1/policy/reload` only).
    pub watch: bool,
    /// The product owner's console at `GET /`: edit `roles.toml` from the page (preview,
    /// save, undo) and try the folder as one of its users.
    pub console: bool,
    /// Log format; the filter is `PORTCULLIS_LOG` (e.g. `info,portcullis=debug`).
    pub log_format: LogFormat,
    /// The user store: `postgres://…` or a SQLite file, migrated at start.
    pub database_url: String,
    /// Stored users whose facts are kept in memory; 0 turns the cache off.
    pub user_cache: usize,
    /// Decisions kept per policy version; 0 turns the cache off.
    pub decision_cache: usize,
    /// Slices and parsed inline entities kept per policy version; 0 turns the cache off.
    pub slice_cache: usize,
    /// Entities files of at most this many entities are also held whole as Cedar entities (about 3 KB each), so questions without entities of their own need no slice; 0: never.
    pub whole_entities: usize,
    /// Minutes a session may go unused.
    pub session_idle_minutes: u64,
    /// Minutes a session lasts at most, whatever its use.
    pub session_lifetime_minutes: u64,
    /// argon2id memory of a password hash, in KiB.
    pub argon2_memory_kib: u32,
    /// argon2id passes.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_lanes: u32,
    /// Password hashes computed at once, each holding `argon2_memory_kib` (default: the
    /// cores).
    pub max_concurrent_hashes: usize,
    /// The file holding the 256-bit key that seals TOTP secrets (64 hex characters); with a
    /// SQLite store and none set, `<database>.key`, created on first use.
    pub secret_key_file: Option<PathBuf>,
    /// A program run for each password-reset link, the link's JSON on its standard input
    /// (the application's mailer); without one, links are issued to no one.
    pub password_reset_command: Option<PathBuf>,
    /// The passkeys' relying party id (a domain), which turns passkeys on.
    pub passkey_rp_id: Option<String>,
    /// The origins of the pages that use passkeys.
    pub passkey_origins: Vec<String>,
    /// The name authenticators show for the relying party.
    pub passkey_rp_name: String,
    /// The names the `Host` header may carry (`*` allows any; the listen address always
    /// does); others answer 421.
    #[schemars(extend("x-flag" = "allowed-host"))]
    pub allowed_hosts: Vec<String>,
    /// The URL clients reach this server at (e.g. `https://authz.example.com`), as the
    /// AuthZEN metadata advertises it (default: `http://` and the listen address).
    pub public_url: Option<String>,
    /// After SIGTERM, keep answering this long (with `GET /readyz` at 503) before closing the
    /// listener, so a load balancer stops sending first, in ms.
    pub drain_delay_ms: u64,
    /// Once the listener is closed, time requests in flight get to finish, in ms (default:
    /// the request timeout and a second).
    pub shutdown_grace_ms: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first), reloaded when it changes;
    /// needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// Require, on the decision API, a client certificate signed by one of these CAs (PEM):
    /// mutual TLS between the application and Portcullis.
    pub tls_client_ca: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8180)),
            policies: PathBuf::from(DEFAULT_POLICIES),
            entities: None,
            api_key: None,
            max_body_bytes: 1024 * 1024,
            max_batch: 1_000,
            max_json_depth: 64,
            header_read_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            reload_debounce_ms: 50,
            watch: true,
            console: false,
            log_format: LogFormat::Text,
            database_url: DEFAULT_DATABASE.to_owned(),
            user_cache: 100_000,
            decision_cache: 16_384,
            slice_cache: 256,
            whole_entities: 20_000,
            session_idle_minutes: 30,
            session_lifetime_minutes: 12 * 60,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_lanes: 1,
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, usize::from),
            secret_key_file: None,
            password_reset_command: None,
            passkey_rp_id: None,
            passkey_origins: Vec::new(),
            passkey_rp_name: DEFAULT_RP_NAME.to_owned(),
            allowed_hosts: ["localhost", "127.0.0.1", "[::1]"].map(str::to_owned).to_vec(),
            public_url: None,
            drain_delay_ms: 0,
            shutdown_grace_ms: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

impl Settings {
    /// The typed `Config` these settings give. Written out by hand: the server and the tests
    /// use its shape (durations, groups that are on or off), not the flat keys of the file.
    pub fn into_config(self) -> Config {
        let ms = Duration::from_millis;
        let minutes = |m: u64| Duration::from_secs(m.saturating_mul(60));
        // A group is on when any of its keys is set; `check` says what it lacks.
        let passkeys = (self.passkey_rp_id.is_some()
            || !self.passkey_origins.is_empty()
            || self.passkey_rp_name != DEFAULT_RP_NAME)
            .then(|| crate::auth::passkey::PasskeyConfig {
                rp_id: self.passkey_rp_id.unwrap_or_default(),
                origins: self.passkey_origins,
                rp_name: self.passkey_rp_name,
            });
        let tls =
            (self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_client_ca.is_some()).then(|| {
                crate::tls::TlsFiles {
                    cert: self.tls_cert.unwrap_or_default(),
                    key: self.tls_key.unwrap_or_default(),
                    client_ca: self.tls_client_ca,
                }
            });
        Config {
            listen: self.listen,
            policies: self.policies,
            entities: self.entities,
            api_key: self.api_key.map(Secret::new),
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                max_batch: self.max_batch,
                max_json_depth: self.max_json_depth,
                header_read_timeout: ms(self.header_read_timeout_ms),
                request_timeout: ms(self.request_timeout_ms),
            },
            caches: crate::cache::CacheSizes {
                users: self.user_cache,
                decisions: self.decision_cache,
                slices: self.slice_cache,
                whole_entities: self.whole_entities,
            },
            reload_debounce: ms(self.reload_debounce_ms),
            watch: self.watch,
            log_format: self.log_format,
            database_url: Some(self.database_url),
            sign_in: SignInConfig {
                session_idle: minutes(self.session_idle_minutes),
                session_lifetime: minutes(self.session_lifetime_minutes),
                argon2_memory_kib: self.argon2_memory_kib,
                argon2_iterations: self.argon2_iterations,
                argon2_lanes: self.argon2_lanes,
                max_concurrent_hashes: self.max_concurrent_hashes,
                secret_key_file: self.secret_key_file,
                password_reset_command: self.password_reset_command,
                passkeys,
            },
            allowed_hosts: self.allowed_hosts,
            public_url: self.public_url,
            drain_delay: ms(self.drain_delay_ms),
            shutdown_grace: self.shutdown_grace_ms.map(ms),
            tls,
            console: self.console,
        }
    }
}

/// How a setting is written as text (a variable, a flag), from its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer.
    Number,
    /// `true` or `false`; a flag turns the default around (`--console`, `--no-watch`).
    Bool,
    /// Strings, comma-separated (a flag may also be repeated).
    List,
    /// A string, path, address or name.
    Text,
}

impl Kind {
    /// The value `raw` gives (a variable's, or a flag's values), `name` in errors.
    fn value(self, name: &str, raw: &[String]) -> Result<toml::Value, String> {
        let one = raw.last().map_or("", String::as_str);
        Ok(match self {
            Kind::Number => one
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| format!("`{name}` must be a number, not `{one}`"))?,
            Kind::Bool => one
                .parse::<bool>()
                .map(toml::Value::Boolean)
                .map_err(|_| format!("`{name}` must be true or false"))?,
            Kind::List => toml::Value::Array(
                raw.iter()
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| toml::Value::String(h.to_owned()))
                    .collect(),
            ),
            Kind::Text => toml::Value::String(one.to_owned()),
        })
    }
}

/// One setting as `--help` shows it, read from the JSON Schema of [`Settings`].
#[derive(Debug, Clone)]
pub struct Setting {
    /// The key in `portcullis.toml`.
    pub key: String,
    /// What it does (the field's doc comment, on one line).
    pub doc: String,
    /// The default, as text; `None` when unset by default (the doc says what that means).
    pub default: Option<String>,
    /// How it is written as text.
    pub kind: Kind,
    /// The values it takes, when they are few (`log_format`).
    pub values: Vec<String>,
    /// The long flag, without `--`.
    pub flag: String,
}

impl Setting {
    /// Its environment variable.
    pub fn env(&self) -> String {
        format!("PORTCULLIS_{}", self.key.to_uppercase())
    }

    /// Whether its flag turns it off (a setting true by default: `--no-watch`).
    pub fn flag_turns_off(&self) -> bool {
        self.kind == Kind::Bool && self.default.as_deref() == Some("true")
    }

    /// Its long flag, without `--`.
    pub fn long(&self) -> String {
        if self.flag_turns_off() {
            format!("no-{}", self.flag)
        } else {
            self.flag.clone()
        }
    }
}

/// Every setting, in the order [`Settings`] declares them.
pub fn settings() -> Vec<Setting> {
    let schema = schemars::schema_for!(Settings);
    let Some(properties) = schema.get("properties").and_then(serde_json::Value::as_object) else {
        return Vec::new();
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    properties
        .iter()
        .map(|(key, p)| {
            let types: Vec<&str> = match &p["type"] {
                serde_json::Value::String(t) => vec![t.as_str()],
                serde_json::Value::Array(ts) => ts.iter().filter_map(serde_json::Value::as_str).collect(),
                _ => Vec::new(),
            };
            let kind = match types.iter().find(|t| **t != "null") {
                Some(&"integer") => Kind::Number,
                Some(&"boolean") => Kind::Bool,
                Some(&"array") => Kind::List,
                _ => Kind::Text,
            };
            let default = match &p["default"] {
                serde_json::Value::Null => None,
                serde_json::Value::Array(a) if a.is_empty() => None,
                serde_json::Value::Array(a) => Some(a.iter().map(text).collect::<Vec<_>>().join(", ")),
                v => Some(text(v)),
            };
            let values = p["enum"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(p["oneOf"].as_array().into_iter().flatten().map(|v| &v["const"]))
                .filter_map(serde_json::Value::as_str)
                .map(str::to_owned)
                .collect();
            Setting {
                key: key.clone(),
                doc: p["description"].as_str().unwrap_or_default().replace('\n', " "),
                default,
                kind,
                values,
                flag: p["x-flag"]
                    .as_str()
                    .map_or_else(|| key.replace('_', "-"), str::to_owned),
            }
        })
        .collect()
}

/// One layer of settings by key, as a file, the environment or the flags give them;
/// `Layer::default()` gives none.
#[derive(Clone, Default)]
pub struct Layer(toml::Table);

impl std::fmt::Debug for Layer {
    /// The keys only: a layer may hold the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Layer {
    /// This layer with `key` set to `value`.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `setting` from text (a variable's value, a flag's values), checked on its own so
    /// an error names `name`.
    pub fn set_text(&mut self, setting: &Setting, name: &str, raw: &[String]) -> Result<(), String> {
        let value = setting.kind.value(name, raw)?;
        let one = Layer::default().set(&setting.key, value.clone());
        one.settings().map_err(|e| format!("`{name}`: {}", e.message()))?;
        self.0.insert(setting.key.clone(), value);
        Ok(())
    }

    /// Reads a `portcullis.toml`; unknown keys are an error.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let invalid = |e: toml::de::Error| ConfigError::File(format!("invalid `{}`: {e}", path.display()));
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File(format!("cannot read `{}`: {e}", path.display())))?;
        toml::from_str::<Settings>(&text).map_err(invalid)?;
        toml::from_str(&text).map(Self).map_err(invalid)
    }

    /// Reads the `PORTCULLIS_*` variables; other variables are ignored, unknown
    /// `PORTCULLIS_*` ones are an error so a typo never goes unnoticed.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let all = settings();
        let mut layer = Self::default();
        for (k, v) in env {
            let Some(key) = k.strip_prefix("PORTCULLIS_") else {
                continue;
            };
            let key = key.to_lowercase();
            // `PORTCULLIS_LOG` is the log filter, read by the logger.
            if key == "log" {
                continue;
            }
            let Some(setting) = all.iter().find(|s| s.key == key) else {
                return Err(ConfigError::Env(format!(
                    "`{k}` names no setting (`{key}`); `portcullis serve --help` lists them"
                )));
            };
            layer.set_text(setting, &k, &[v]).map_err(ConfigError::Env)?;
        }
        Ok(layer)
    }

    /// This layer over `below`: its keys win.
    pub fn over(self, below: Layer) -> Layer {
        let mut table = below.0;
        table.extend(self.0);
        Layer(table)
    }

    /// The settings of this layer, the defaults for the keys it does not give.
    pub fn settings(&self) -> Result<Settings, toml::de::Error> {
        toml::Value::Table(self.0.clone()).try_into()
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
        let flags = Layer::default().set("max_json_depth", 9);
        let c = Config::resolve(
            Some(&file),
            env(&[("PORTCULLIS_MAX_BATCH", "20"), ("HOME", "/x")]),
            flags,
        )
        .unwrap();
        assert_eq!(c.limits.max_batch, 20);
        assert_eq!(c.limits.max_json_depth, 9);
        assert_eq!(c.policies, PathBuf::from("a"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8180");
        assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
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
        let flags = Layer::default().set("listen", "0.0.0.0:8180");
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

    #[test]
    fn env_values_are_typed_by_their_declaration() {
        let c = Config::resolve(
            None,
            env(&[
                ("PORTCULLIS_WATCH", "false"),
                ("PORTCULLIS_CONSOLE", "true"),
                ("PORTCULLIS_HEADER_READ_TIMEOUT_MS", "300"),
                ("PORTCULLIS_SESSION_IDLE_MINUTES", "5"),
                ("PORTCULLIS_SLICE_CACHE", "0"),
                ("PORTCULLIS_API_KEY", "1234567890123456"),
                ("PORTCULLIS_LOG_FORMAT", "json"),
                ("PORTCULLIS_LOG", "debug"),
            ]),
            Layer::default(),
        )
        .unwrap();
        assert!(!c.watch && c.console);
        assert_eq!(c.limits.header_read_timeout, Duration::from_millis(300));
        assert_eq!(c.sign_in.session_idle, Duration::from_secs(300));
        assert_eq!(c.caches.slices, 0);
        assert_eq!(c.api_key.unwrap().expose(), "1234567890123456");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.database_url.as_deref(), Some(DEFAULT_DATABASE));
        for (k, v, says) in [
            ("PORTCULLIS_MAX_BATCH", "ten", "must be a number"),
            ("PORTCULLIS_WATCH", "no", "must be true or false"),
            ("PORTCULLIS_LISTEN", "here", "PORTCULLIS_LISTEN"),
            (
                "PORTCULLIS_TEST_POSTGRES_URL",
                "postgres://x",
                "test_postgres_url",
            ),
        ] {
            let e = Config::resolve(None, env(&[(k, v)]), Layer::default()).unwrap_err();
            assert!(e.to_string().contains(says), "{k}={v}: {e}");
        }
    }

    #[test]
    fn groups_are_on_when_a_key_is_set_and_checked() {
        let c = Config::resolve(None, env(&[]), Layer::default()).unwrap();
        assert!(c.tls.is_none() && c.sign_in.passkeys.is_none());
        let e =
            Config::resolve(None, env(&[("PORTCULLIS_TLS_CERT", "c.pem")]), Layer::default()).unwrap_err();
        assert!(e.to_string().contains("TLS needs both"), "{e}");
        let e = Config::resolve(
            None,
            env(&[("PORTCULLIS_PASSKEY_RP_NAME", "Acme")]),
            Layer::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("passkeys need `passkey_rp_id`"), "{e}");
        let e = Config::resolve(
            None,
            env(&[("PORTCULLIS_PASSKEY_RP_ID", "example.com")]),
            Layer::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("passkeys need `passkey_origins`"), "{e}");
        let c = Config::resolve(
            None,
            env(&[
                ("PORTCULLIS_PASSKEY_RP_ID", "example.com"),
                (
                    "PORTCULLIS_PASSKEY_ORIGINS",
                    "https://example.com, https://www.example.com",
                ),
            ]),
            Layer::default(),
        )
        .unwrap();
        let p = c.sign_in.passkeys.unwrap();
        assert_eq!(p.origins.len(), 2);
        assert_eq!(p.rp_name, "Portcullis");
    }

    /// The declaration is what `--help` reads: every setting has its doc, its kind and, where
    /// it has one, the default the code uses.
    #[test]
    fn settings_are_read_from_their_declaration() {
        let all = settings();
        let get = |k: &str| all.iter().find(|s| s.key == k).unwrap();
        assert_eq!(all.len(), 36);
        assert_eq!(all[0].key, "listen", "in declaration order");
        assert!(all.iter().all(|s| !s.doc.is_empty() && !s.doc.contains('\n')));
        assert_eq!(get("max_batch").default.as_deref(), Some("1000"));
        assert_eq!(get("max_batch").kind, Kind::Number);
        assert_eq!(get("watch").default.as_deref(), Some("true"));
        assert_eq!(get("console").kind, Kind::Bool);
        assert_eq!(get("allowed_hosts").flag, "allowed-host");
        assert_eq!(
            get("allowed_hosts").default.as_deref(),
            Some("localhost, 127.0.0.1, [::1]")
        );
        assert_eq!(get("log_format").values, ["text", "json"]);
        assert_eq!(get("listen").default.as_deref(), Some("127.0.0.1:8180"));
        assert_eq!(get("api_key").default, None);
        assert_eq!(get("tls_client_ca").env(), "PORTCULLIS_TLS_CLIENT_CA");
    }

    /// The README's configuration table names settings that exist.
    #[test]
    fn the_readme_table_names_real_settings() {
        let readme = include_str!("../../README.md");
        let keys: Vec<String> = settings().into_iter().map(|s| s.key).collect();
        let table = readme
            .split_once("| key | default | |")
            .and_then(|(_, rest)| rest.split_once("\n\n"))
            .unwrap()
            .0;
        let mut rows = 0;
        for line in table.lines().filter(|l| l.starts_with("| `")) {
            let first = line.split('|').nth(1).unwrap();
            for key in first.split('`').skip(1).step_by(2) {
                assert!(keys.iter().any(|k| k == key), "README names `{key}`");
                rows += 1;
            }
        }
        assert!(rows > 20, "{rows}");
    }
}
