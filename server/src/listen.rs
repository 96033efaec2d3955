//! The accept loop: HTTP/1.1 with keep-alive, a header-read timeout, graceful shutdown.
//!
//! Input: a bound listener, the router, the limits and a shutdown signal. Each connection is
//! served by hyper with `header_read_timeout`, so a client that never finishes its headers
//! (slowloris) is cut off; if it had sent part of a request, it first gets a 408 in the JSON
//! envelope, written on a duplicate of the socket because hyper gives no response of its own
//! for that case. On shutdown the listener closes, in-flight requests finish, idle
//! connections close, and `serve` returns once all are gone (or the grace period ends).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Limits;

/// A stream that notes whether a request has started since the last response.
struct Watched {
    inner: TcpStream,
    pending: Arc<AtomicBool>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.pending.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.pending.store(false, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.pending.store(false, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

const TIMEOUT_BODY: &str =
    r#"{"error":{"code":"header_timeout","message":"the request headers took too long to arrive"}}"#;

async fn answer_timeout(spare: std::net::TcpStream) {
    let Ok(mut s) = TcpStream::from_std(spare) else {
        return;
    };
    let response = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{TIMEOUT_BODY}",
        TIMEOUT_BODY.len()
    );
    let _ = s.write_all(response.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// drains within `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        if let Some(tls) = &tls {
            // The handshake runs in the connection's task, bounded like a request head.
            let (acceptor, builder, app, watcher) =
                (tls.acceptor(), builder.clone(), app.clone(), graceful.watcher());
            tokio::spawn(async move {
                let stream =
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                let verified = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let service = tower::ServiceExt::map_request(
                    app,
                    move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                        if verified {
                            req.extensions_mut().insert(crate::tls::ClientCertificate);
                        }
                        req
                    },
                );
                let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(error = %e, "TLS connection ended with an error");
                }
            });
            continue;
        }
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        let spare = std_stream.try_clone().ok();
        let Ok(stream) = TcpStream::from_std(std_stream) else {
            continue;
        };
        let pending = Arc::new(AtomicBool::new(false));
        let io = TokioIo::new(Watched {
            inner: stream,
            pending: pending.clone(),
        });
        let conn = builder.serve_connection(io, TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                if e.is_timeout() && pending.load(Ordering::Relaxed) {
                    if let Some(spare) = spare {
                        answer_timeout(spare).await;
                    }
                } else {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}
