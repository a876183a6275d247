//! Transport and lifecycle: TLS on the listener (HTTP/1.1 and HTTP/2 by ALPN, certificate
//! re-read when its files change), h2c, `https://` upstreams verified against a CA file, and
//! cookie keys and client secret re-read from mounted files with no restart and no dropped
//! session. Certificates come from a CA generated per test.

use crate::support::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use token_handler::crypto::KeyRing;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "token-handler test CA");
        Ca {
            cert: params.self_signed(&key).expect("self-signed"),
            key,
        }
    }

    /// A leaf for localhost and 127.0.0.1: (cert PEM, key PEM, cert DER).
    fn leaf(&self, name: &str) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("th-transport-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Writes a file the way Kubernetes updates a mounted Secret: new file, then an atomic rename.
fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

async fn next_reload(rx: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed())
        .await
        .expect("the proxy reloaded the file")
        .expect("reload channel open");
}

fn https_client(ca_pem: &str, addr: std::net::SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca"))
        .resolve("localhost", addr)
        .tls_info(true)
        .build()
        .expect("client")
}

fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_speaks_http1_and_h2_and_reloads_its_certificate() {
    let ca = Ca::new();
    let dir = temp_dir("listener");
    let (cert, key, first_der) = ca.leaf("first");
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    write_atomically(&cert_path, &cert);
    write_atomically(&key_path, &key);
    let server_tweaks = [
        format!("tls_cert_file = \"{}\"", cert_path.display()),
        format!("tls_key_file = \"{}\"", key_path.display()),
        "reload_interval = \"100ms\"".to_string(),
    ];
    let tweaks: Vec<(&str, &str)> = server_tweaks
        .iter()
        .map(|l| ("server", l.as_str()))
        .collect();
    let h = Harness::with(Flavor::TokenIdpServer, &tweaks, KEY1).await;
    let (jar, issued) = h.login(false);
    let url = format!("https://localhost:{}/api/tls", h.proxy.addr.port());

    let h2 = https_client(&ca.cert.pem(), h.proxy.addr);
    let r = h2
        .get(&url)
        .header("cookie", jar.header())
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN h2");
    assert_eq!(peer_certificate(&r), first_der);
    let seen = h.echo.last();
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {}", issued.access_token))
    );

    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).expect("ca"))
        .resolve("localhost", h.proxy.addr)
        .http1_only()
        .build()
        .expect("client");
    let r = h1
        .get(&url)
        .header("cookie", jar.header())
        .send()
        .await
        .expect("https/1.1");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // Swap the certificate files under the running proxy.
    let mut reloads = h.proxy.app.reloads.subscribe();
    let (cert, key, second_der) = ca.leaf("second");
    write_atomically(&key_path, &key);
    write_atomically(&cert_path, &cert);
    while peer_certificate(
        &https_client(&ca.cert.pem(), h.proxy.addr)
            .get(&url)
            .header("cookie", jar.header())
            .send()
            .await
            .expect("https"),
    ) != second_der
    {
        next_reload(&mut reloads).await;
    }
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let r = client
        .get(format!("{}/api/h2c", h.proxy.url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("h2c");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(h.echo.last().uri, "/api/h2c");
}

/// A TLS upstream answering 200 with the Authorization it received.
async fn tls_upstream(cert_pem: &str, key_pem: &str) -> std::net::SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap_or("").to_string());
                        let body =
                            format!("secure upstream saw {}", auth.unwrap_or_default().len());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstream_is_verified_against_the_ca_file() {
    let ca = Ca::new();
    let dir = temp_dir("upstream");
    let (cert, key, _) = ca.leaf("upstream");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).expect("ca file");
    let upstream = tls_upstream(&cert, &key).await;
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let https = format!("https://127.0.0.1:{}", upstream.port());

    let ca_line = format!("ca_file = \"{}\"", ca_path.display());
    let trusted = Proxy::start(
        &config_toml(&idp.url(), &https, "tokenidp", &[("upstream", &ca_line)]),
        KEY1,
    )
    .await;
    let issued = idp.issue(CLIENT_ID, "demo", SCOPE);
    let jar = seal(&trusted.app, &issued, false);
    let r = client()
        .get(format!("{}/api/x", trusted.url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let expected = format!("Bearer {}", issued.access_token).len();
    assert_eq!(
        r.text().await.expect("body"),
        format!("secure upstream saw {expected}")
    );

    // Without the CA the upstream's certificate is not trusted: 502, never an unverified hop.
    let untrusted = Proxy::start(&config_toml(&idp.url(), &https, "tokenidp", &[]), KEY1).await;
    let jar = seal(&untrusted.app, &issued, false);
    let r = client()
        .get(format!("{}/api/x", untrusted.url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 502);
    assert_eq!(json(r).await["error"], "upstream_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_keys_and_client_secret_are_reloaded_from_mounted_files() {
    let dir = temp_dir("secrets");
    let keys_path = dir.join("cookie-keys");
    let secret_path = dir.join("client-secret");
    write_atomically(&keys_path, KEY1);
    write_atomically(&secret_path, CLIENT_SECRET);
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let echo = echo::Echo::start().await;
    let toml = config_toml(
        &idp.url(),
        &echo.url(),
        "tokenidp",
        &[("server", "reload_interval = \"100ms\"")],
    );
    let (k, s) = (
        keys_path.to_string_lossy().to_string(),
        secret_path.to_string_lossy().to_string(),
    );
    let env = move |name: &str| match name {
        "TOKEN_HANDLER_COOKIE_KEYS_FILE" => Some(k.clone()),
        "TOKEN_HANDLER_CLIENT_SECRET_FILE" => Some(s.clone()),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy = Proxy::start_with_env(listener, &toml, &env).await;
    let http = client();
    let old_session = seal(&proxy.app, &idp.issue(CLIENT_ID, "demo", SCOPE), false);

    // Rotate the cookie keys: k2 first (seals), k1 kept (opens).
    let mut reloads = proxy.app.reloads.subscribe();
    write_atomically(&keys_path, &format!("{KEY2},{KEY1}"));
    next_reload(&mut reloads).await;
    let r = http
        .get(format!("{}/api/a", proxy.url))
        .header("cookie", old_session.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(
        r.status(),
        200,
        "a session sealed with the old key still works"
    );
    let mut resealed = old_session.clone();
    resealed.update(&r);
    let k2_only = KeyRing::parse(KEY2).expect("k2");
    assert!(
        k2_only
            .open(COOKIE, resealed.session().expect("cookie"))
            .is_some(),
        "re-sealed with the new key"
    );
    assert_eq!(proxy.app.codec.keys().current_kid(), "k2");

    // Rotate the client secret at the IdP and in the mounted file: refreshes keep working.
    idp.set_client_secret(CLIENT_ID, Some("rotated-secret".into()));
    write_atomically(&secret_path, "rotated-secret");
    next_reload(&mut reloads).await;
    let expired = seal(&proxy.app, &idp.issue(CLIENT_ID, "demo", SCOPE), true);
    let r = http
        .get(format!("{}/api/b", proxy.url))
        .header("cookie", expired.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(
        r.status(),
        200,
        "the refresh authenticated with the new secret"
    );
    let basic = idp
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/token")
        .and_then(|r| r.authorization)
        .expect("basic");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim_start_matches("Basic "))
        .expect("b64");
    assert!(String::from_utf8_lossy(&decoded).ends_with(":rotated-secret"));

    // A broken key file is ignored: the previous keys stay.
    write_atomically(&keys_path, "not a key");
    next_reload(&mut reloads).await;
    assert_eq!(proxy.app.codec.keys().current_kid(), "k2");
}
