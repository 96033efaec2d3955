//! `portcullis serve`: the decision server.
//!
//! Settings are layered: defaults → `portcullis.toml` (or `--config`) → `PORTCULLIS_*`
//! environment → these flags. SIGHUP reloads the policy folder; SIGTERM and SIGINT stop
//! accepting, let in-flight requests finish, then exit 0.

use std::path::PathBuf;

use clap::Args;
use portcullis_server::config::{Config, Layer, LogFormat};
use portcullis_server::Server;
use tracing_subscriber::EnvFilter;

use super::{EXIT_ERROR, EXIT_OK};

/// Arguments of `portcullis serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The policy folder [default: policies].
    folder: Option<PathBuf>,
    /// A config file [default: portcullis.toml when present].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8180].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// A static entities file (Cedar JSON entity array), reloaded with the policies.
    #[arg(long)]
    entities: Option<PathBuf>,
    /// Service API key for the decision endpoints; required beyond loopback. Prefer
    /// `PORTCULLIS_API_KEY`, which does not show in the process list.
    #[arg(long)]
    api_key: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Most checks in one batch [default: 1000].
    #[arg(long)]
    max_batch: Option<usize>,
    /// Deepest JSON nesting accepted [default: 64].
    #[arg(long)]
    max_json_depth: Option<usize>,
    /// Time a client has to send its request headers, in ms [default: 5000].
    #[arg(long)]
    header_read_timeout_ms: Option<u64>,
    /// Time one request may take, in ms [default: 10000].
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Quiet time after a file change before reloading, in ms [default: 50].
    #[arg(long)]
    reload_debounce_ms: Option<u64>,
    /// Do not watch the policy folder (reload on SIGHUP or `POST /v1/policy/reload` only).
    #[arg(long)]
    no_watch: bool,
    /// Turn on the product owner's console at `GET /`: edit `roles.toml` from the page (preview,
    /// save, undo) and try the folder as one of its users [default: off].
    #[arg(long)]
    console: bool,
    /// Log format [default: text]; the filter is `PORTCULLIS_LOG` (e.g. `info,portcullis=debug`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// The user store: `postgres://…` or a SQLite file [default: portcullis.db].
    #[arg(long)]
    database_url: Option<String>,
    /// Stored users whose facts are kept in memory; 0 turns the cache off [default: 100000].
    #[arg(long)]
    user_cache: Option<usize>,
    /// Decisions kept per policy version; 0 turns the cache off [default: 16384].
    #[arg(long)]
    decision_cache: Option<usize>,
    /// Slices and parsed inline entities kept per policy version; 0 turns the cache off
    /// [default: 256].
    #[arg(long)]
    slice_cache: Option<usize>,
    /// A name the `Host` header may carry (repeat it for several; `*` allows any)
    /// [default: localhost, 127.0.0.1, [::1]; the listen address is always allowed].
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// The URL clients reach this server at (e.g. `https://authz.example.com`), as the AuthZEN
    /// metadata advertises it [default: http:// and the listen address].
    #[arg(long)]
    public_url: Option<String>,
    /// After SIGTERM, keep answering this long (with `GET /readyz` at 503) before closing the
    /// listener, so a load balancer stops sending first, in ms [default: 0].
    #[arg(long)]
    drain_delay_ms: Option<u64>,
    /// Once the listener is closed, time requests in flight get to finish, in ms
    /// [default: the request timeout and a second].
    #[arg(long)]
    shutdown_grace_ms: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first), reloaded when it changes.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require, on the decision API, a client certificate signed by one of these CAs (PEM):
    /// mutual TLS between the application and Portcullis.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

impl ServeArgs {
    fn layer(&self) -> Layer {
        Layer {
            listen: self.listen,
            policies: self.folder.clone(),
            entities: self.entities.clone(),
            api_key: self.api_key.clone(),
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
            max_json_depth: self.max_json_depth,
            header_read_timeout_ms: self.header_read_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
            reload_debounce_ms: self.reload_debounce_ms,
            watch: self.no_watch.then_some(false),
            console: self.console.then_some(true),
            log_format: self.log_format,
            database_url: self.database_url.clone(),
            user_cache: self.user_cache,
            decision_cache: self.decision_cache,
            slice_cache: self.slice_cache,
            allowed_hosts: (!self.allowed_hosts.is_empty()).then(|| self.allowed_hosts.clone()),
            public_url: self.public_url.clone(),
            drain_delay_ms: self.drain_delay_ms,
            shutdown_grace_ms: self.shutdown_grace_ms,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_client_ca: self.tls_client_ca.clone(),
            ..Layer::default()
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("PORTCULLIS_LOG").unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn until_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(a: ServeArgs) -> u8 {
    let config = match Config::resolve(a.config.as_deref(), std::env::vars(), a.layer()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    init_logs(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(async move {
        let root = super::root_name(&config.policies);
        let server = match Server::start(config).await {
            Ok(s) => s,
            Err(portcullis_server::StartError::Build(e)) => {
                eprint!("{}", e.diagnostics.render_human(&root));
                return EXIT_ERROR;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_ERROR;
            }
        };
        #[cfg(unix)]
        let _hup = portcullis_server::reload::on_sighup(server.reloader.trigger.clone());
        eprintln!("portcullis: serving on {}", server.url());
        until_signal().await;
        // Not ready from now on; still answering for `drain_delay`, then draining.
        server.state.start_draining();
        let delay = server.state.config.drain_delay;
        if !delay.is_zero() {
            tracing::info!(delay_ms = delay.as_millis(), "draining: /readyz answers 503");
            tokio::time::sleep(delay).await;
        }
        server.shutdown().await;
        EXIT_OK
    })
}
