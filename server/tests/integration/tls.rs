//! TLS in the server, with certificates generated here (rcgen): HTTPS only on a TLS port, the
//! metadata's `https://`, mutual TLS on the decision API, and a renewed certificate served
//! without a restart (a broken one is not).

#![expect(deprecated, reason = "ring's rustls provider, as the server uses")]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use portcullis_server::tls::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;
use serde_json::{json, Value};

use crate::common::{olivia_creates, start, Fixture, DEADLINE};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let pem = p.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(p, key),
    }
}

/// A certificate and key (PEM) for `names`, signed by `ca`, for a server or a client.
fn leaf(ca: &Ca, name: &str, client: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn der(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// One HTTPS request on a new connection: (status, body, the server's leaf certificate), or
/// the connection's error.
async fn https(
    addr: std::net::SocketAddr,
    trust: &str,
    client: Option<&(String, String)>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value, CertificateDer<'static>), String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    roots.add(der(trust)).unwrap();
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![der(cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        DEADLINE,
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap();
    let res = tokio::time::timeout(DEADLINE, sender.send_request(req))
        .await
        .map_err(|_| "request timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    // JSON, or the text of `/metrics`.
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, v, peer))
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_api_and_the_metadata_says_https() {
    let f = Fixture::new();
    let ca = new_ca("test CA");
    let (cert, key) = leaf(&ca, "localhost", false);
    let mut config = f.config();
    config.tls = Some(TlsFiles {
        cert: write(f.dir.path(), "cert.pem", &cert),
        key: write(f.dir.path(), "key.pem", &key),
        client_ca: None,
    });
    let server = start(config).await;
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let (s, b, peer) = https(
        server.addr,
        &ca.pem,
        None,
        "POST",
        "/v1/authorize",
        Some(&olivia_creates()),
    )
    .await
    .unwrap();
    assert_eq!((s, b["decision"].as_str()), (200, Some("allow")), "{b}");
    assert_eq!(peer, der(&cert));
    let (_, meta, _) = https(
        server.addr,
        &ca.pem,
        None,
        "GET",
        "/.well-known/authzen-configuration",
        None,
    )
    .await
    .unwrap();
    assert_eq!(meta["policy_decision_point"], server.url(), "{meta}");
    // Plain HTTP to the TLS port gets no answer of the API.
    let plain = crate::common::Http::at(format!("http://{}", server.addr));
    let r = plain.try_send("GET", "/healthz", Vec::new()).await;
    assert!(r.as_ref().map_or(true, |(s, _)| *s != 200), "{r:?}");
    // A client that does not trust the CA cannot connect.
    let other = new_ca("another CA");
    assert!(https(server.addr, &other.pem, None, "GET", "/healthz", None)
        .await
        .is_err());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_guards_the_decision_api_only() {
    let f = Fixture::new();
    let ca = new_ca("server CA");
    let clients = new_ca("client CA");
    let (cert, key) = leaf(&ca, "localhost", false);
    let mut config = f.config();
    config.tls = Some(TlsFiles {
        cert: write(f.dir.path(), "cert.pem", &cert),
        key: write(f.dir.path(), "key.pem", &key),
        client_ca: Some(write(f.dir.path(), "clients.pem", &clients.pem)),
    });
    let server = start(config).await;
    let app = leaf(&clients, "orders-service", true);
    let body = olivia_creates();

    let (s, b, _) = https(server.addr, &ca.pem, None, "POST", "/v1/authorize", Some(&body))
        .await
        .unwrap();
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("client_certificate_required")),
        "{b}"
    );
    let (s, b, _) = https(
        server.addr,
        &ca.pem,
        Some(&app),
        "POST",
        "/v1/authorize",
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!((s, b["decision"].as_str()), (200, Some("allow")), "{b}");
    let evaluation = json!({ "subject": { "type": "User", "id": "olivia" }, "action": { "name": "shipment.create" },
                             "resource": { "type": "Shipment", "id": "s1" } });
    let (s, _, _) = https(
        server.addr,
        &ca.pem,
        None,
        "POST",
        "/access/v1/evaluation",
        Some(&evaluation),
    )
    .await
    .unwrap();
    assert_eq!(s, 401);
    let (s, b, _) = https(
        server.addr,
        &ca.pem,
        Some(&app),
        "POST",
        "/access/v1/evaluation",
        Some(&evaluation),
    )
    .await
    .unwrap();
    assert_eq!((s, &b["decision"]), (200, &json!(true)), "{b}");
    // Liveness and the page need no client certificate.
    let (s, _, _) = https(server.addr, &ca.pem, None, "GET", "/healthz", None)
        .await
        .unwrap();
    assert_eq!(s, 200);
    // A certificate from a CA the server does not list is refused in the handshake.
    let stranger = leaf(&new_ca("stranger CA"), "intruder", true);
    let r = https(
        server.addr,
        &ca.pem,
        Some(&stranger),
        "POST",
        "/v1/authorize",
        Some(&body),
    )
    .await;
    assert!(r.is_err() || r.as_ref().is_ok_and(|(s, _, _)| *s != 200), "{r:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let f = Fixture::new();
    let ca = new_ca("renewing CA");
    let (old, key) = leaf(&ca, "localhost", false);
    let cert_path = write(f.dir.path(), "cert.pem", &old);
    let key_path = write(f.dir.path(), "key.pem", &key);
    let mut config = f.config();
    config.tls = Some(TlsFiles {
        cert: cert_path.clone(),
        key: key_path.clone(),
        client_ca: None,
    });
    let server = start(config).await;
    let peer = |_: ()| async {
        https(server.addr, &ca.pem, None, "GET", "/healthz", None)
            .await
            .unwrap()
            .2
    };
    assert_eq!(peer(()).await, der(&old));

    // A broken edit (a key that does not match the certificate): the old one keeps serving.
    let (_, other_key) = leaf(&ca, "localhost", false);
    std::fs::write(&key_path, &other_key).unwrap();
    let tls = server.tls.clone().unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while tls.reload_counts().1 == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broken edit was never looked at"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(tls.reload_counts().0, 0);
    assert_eq!(peer(()).await, der(&old), "a broken pair is never served");

    // The renewal: a new certificate and its key, as a renewal tool writes them.
    let (new, new_key) = leaf(&ca, "localhost", false);
    std::fs::write(&key_path, &new_key).unwrap();
    std::fs::write(&cert_path, &new).unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if peer(()).await == der(&new) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both show in the metrics: one renewal served, the broken edit (and perhaps the moment
    // between the two writes of the renewal) refused.
    let (s, metrics, _) = https(server.addr, &ca.pem, None, "GET", "/metrics", None)
        .await
        .unwrap();
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert_eq!(s, 200);
    assert!(
        metrics.contains("\nportcullis_tls_reloads_total 1\n"),
        "{metrics}"
    );
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_tls_reload_failures_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 1), "{metrics}");
    server.shutdown().await;
}
