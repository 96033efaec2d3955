//! TLS for the listener: rustls with the ring provider, TLS 1.3 and 1.2 only.
//!
//! Input: the PEM files of `tls_cert`, `tls_key` and, for mutual TLS, `tls_client_ca`.
//! Output: a [`Tls`] whose acceptor always uses the newest good certificate: the files are
//! checked every second, and a change (a renewal writes new files or renames them into place)
//! builds a new configuration that the next connection uses; a change that does not load (a
//! half-written file, a key that does not match) is logged and the previous certificate keeps
//! serving. Connections already open keep the certificate they started with.
//!
//! With `tls_client_ca`, a client may present a certificate signed by one of its CAs; one that
//! presents a certificate the CAs did not sign is refused during the handshake. Whether a
//! verified certificate was presented travels with each request as [`ClientCertificate`], and
//! the decision API requires it (browsers reach the page and sign-in without one).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The files TLS is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM, that sign the client certificates accepted (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// A request arrived over a connection whose client presented a certificate that a CA of
/// `tls_client_ca` signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate;

/// What the files looked like when they were last loaded: modification times and lengths.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The served TLS configuration, replaced when its files change.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    stamp: Mutex<Stamp>,
    /// Changes of the files that loaded, and that did not.
    reloads: AtomicU64,
    failures: AtomicU64,
}

impl Tls {
    /// Loads the files; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Self, String> {
        let stamp = stamp(&files);
        let config = build(&files)?;
        Ok(Self {
            files,
            current: ArcSwap::from_pointee(config),
            stamp: Mutex::new(stamp),
            reloads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// An acceptor with the newest good configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Whether client certificates are verified (mutual TLS).
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Reloads when a file changed since the last load: `Ok(true)` when a new configuration
    /// is served, `Ok(false)` when nothing changed, `Err` when the change does not load (the
    /// previous configuration stays; the same change is not retried until the files change
    /// again).
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp(&self.files);
        {
            let Ok(mut last) = self.stamp.lock() else {
                return Ok(false);
            };
            if *last == now {
                return Ok(false);
            }
            *last = now;
        }
        let config = build(&self.files).inspect_err(|_| {
            self.failures.fetch_add(1, Ordering::SeqCst);
        })?;
        self.current.store(Arc::new(config));
        self.reloads.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// (changes that loaded, changes that did not) since the start.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::SeqCst),
            self.failures.load(Ordering::SeqCst),
        )
    }

    /// Checks the files every `every` for as long as the runtime runs.
    pub fn watch(self: Arc<Self>, every: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.reload_if_changed() {
                    Ok(true) => tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but do not load; the previous certificate keeps serving")
                    }
                }
            }
        });
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    [Some(&files.cert), Some(&files.key), files.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{what} `{}`: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} `{}` holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

#[expect(
    deprecated,
    reason = "ring's provider lacks post-quantum key exchange; aws-lc-rs would bring a C build of its own"
)]
fn build(files: &TlsFiles) -> Result<ServerConfig, String> {
    let chain = certs(&files.cert, "tls_cert")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("tls_key `{}`: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca, "tls_client_ca")? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_client_ca `{}`: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("tls_client_ca `{}`: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "tls_cert `{}` and tls_key `{}` do not go together: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
