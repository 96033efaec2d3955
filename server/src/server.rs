//! A running decision server: state, reloader, listener, and its orderly shutdown.
//!
//! `Server::start` builds the first bundle (failing with every diagnostic if the folder does
//! not build), binds, starts the watcher and serves; `Server::shutdown` stops accepting,
//! lets in-flight requests finish and returns. The binary wires SIGTERM/SIGINT to it; tests
//! start servers on `127.0.0.1:0` and call it directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::reload::{self, Reloader};
use crate::state::{AppState, BuildError};

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The policy folder (or entities file) does not build.
    #[error("the policy folder does not build: {}", .0.summary())]
    Build(BuildError),
    /// The address cannot be bound.
    #[error("cannot listen on `{0}`: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The watcher cannot start.
    #[error("cannot watch the policy folder: {0}")]
    Watch(#[from] notify::Error),
    /// The user store cannot be opened or migrated.
    #[error("cannot open the user store: {0}")]
    Store(String),
    /// The TLS files do not load.
    #[error("cannot serve TLS: {0}")]
    Tls(String),
}

/// A server running on the current tokio runtime.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its shared state: the served bundle, reload status, metrics, install announcements.
    pub state: Arc<AppState>,
    /// The reloader; fire its trigger to request a reload.
    pub reloader: Reloader,
    /// The TLS configuration, when the server speaks HTTPS.
    pub tls: Option<Arc<crate::tls::Tls>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Builds, binds and starts serving.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        Self::start_with(config, Router::new()).await
    }

    /// Like `start`, with extra guarded routes (tests add a panicking one).
    pub async fn start_with(config: Config, extra: Router<Arc<AppState>>) -> Result<Self, StartError> {
        let config2 = config.clone();
        let state = tokio::task::spawn_blocking(move || AppState::open(config2))
            .await
            .unwrap_or_else(|e| {
                Err(BuildError {
                    diagnostics: portcullis_engine::Diagnostics(vec![portcullis_engine::Diagnostic::error(
                        "start::panicked",
                        e.to_string(),
                    )]),
                })
            })
            .map_err(StartError::Build)?;
        crate::manage::attach(&state).await.map_err(StartError::Store)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| StartError::Bind(config.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(config.listen, e))?;
        let _ = state.bound.set(addr);
        let reloader = reload::start(state.clone(), config.watch)?;
        let app = crate::http::router_with(state.clone(), extra);
        let tls = match &config.tls {
            Some(files) => {
                let tls = Arc::new(crate::tls::Tls::load(files.clone()).map_err(StartError::Tls)?);
                tls.clone().watch(Duration::from_secs(1));
                let _ = state.tls.set(tls.clone());
                Some(tls)
            }
            None => None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let grace = config
            .shutdown_grace
            .unwrap_or(config.limits.request_timeout + Duration::from_secs(1));
        let task = tokio::spawn(crate::listen::serve(
            listener,
            app,
            config.limits,
            tls.clone(),
            async move {
                let _ = stopped.await;
            },
            grace,
        ));
        tracing::info!(%addr, folder = %config.policies.display(), version = %state.served().snapshot.version(), "serving");
        Ok(Self {
            addr,
            state,
            reloader,
            tls,
            stop: Some(stop),
            task,
        })
    }

    /// `http://addr`, or `https://addr` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.state.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, finishes in-flight requests and returns when the connections are
    /// closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
