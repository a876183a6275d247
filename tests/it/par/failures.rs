//! Logins that cannot be pushed: a PAR endpoint that does not answer (a closed port, a stopped
//! provider) or refuses the client, and `pushed_authorization = "always"` with a provider that
//! advertises no PAR endpoint.

use super::{assert_pushed, start, start_login};
use crate::support::cluster::{Cluster, Credential};
use crate::support::oidc_provider::OIDC_CLIENT_SECRET;
use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A second proxy in front of `o`'s provider, with `idp_lines` added to `[idp]` and the client
/// secret `secret`. Its `redirect_uri` stays the registered one (the first replica's): the test
/// takes the callback there itself when it needs one.
async fn another_proxy(o: &Cluster, idp_lines: &str, secret: &str) -> Proxy {
    let toml = o
        .toml
        .replacen("[idp]\n", &format!("[idp]\n{idp_lines}\n"), 1);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let secret = secret.to_owned();
    let env = move |name: &str| match name {
        "TOKEN_HANDLER_COOKIE_KEYS" => Some(KEY1.to_string()),
        "TOKEN_HANDLER_CLIENT_SECRET" => Some(secret.clone()),
        _ => None,
    };
    Proxy::start_with_env(listener, &toml, &env).await
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A login that cannot be pushed is answered at once, with nothing of the client's secret in
/// the answer or the logs: 503 `idp_unavailable` when the PAR endpoint does not answer (a
/// closed port, a stopped provider), a "refused" page when it refuses the client.
#[tokio::test]
async fn unreachable_or_refusing_par_endpoints_end_the_attempt_without_leaking() {
    let capture = logs::capture();
    let mut o = start(true, Credential::Secret, "").await;
    let mut answers = String::new();

    let port = closed_port().await;
    let p = another_proxy(
        &o,
        &format!(
            "pushed_authorization_request_endpoint = \"http://127.0.0.1:{port}/request\"\n\
             pushed_authorization = \"always\""
        ),
        OIDC_CLIENT_SECRET,
    )
    .await;
    let unavailable = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        assert!(set_cookies(&r).is_empty(), "no login flow was started");
        let body = json(r).await;
        assert_eq!(body["error"], "idp_unavailable");
        body.to_string()
    };
    let r = o
        .http
        .get(format!("{}/auth/login", p.url))
        .send()
        .await
        .expect("login");
    answers.push_str(&unavailable(r).await);

    // The provider refuses a wrong secret at its PAR endpoint (401 invalid_client).
    let wrong = "not-the-client-secret";
    let p = another_proxy(&o, "", wrong).await;
    let r = o
        .http
        .get(format!("{}/auth/login", p.url))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-token-handler-error"], "bad_request");
    assert!(set_cookies(&r).is_empty(), "no login flow was started");
    let page = r.text().await.expect("page");
    assert!(page.contains("(invalid_client)"), "{page}");
    answers.push_str(&page);
    let refused = r#"token_handler_idp_par_seconds_count{outcome="refused"}"#;
    assert_eq!(
        p.app
            .metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(refused))
            .map(str::trim),
        Some("1")
    );

    // The provider stops: the proxy that discovered its PAR endpoint cannot reach it any more.
    let mut jar = Jar::default();
    let authorize = start_login(&o.http, &o.proxies[0].url, &mut jar).await;
    assert_pushed(&o, &authorize);
    o.provider.stop().await;
    let r = o.get(0, "/auth/login", &jar).await;
    answers.push_str(&unavailable(r).await);

    let logs = capture.text();
    assert!(
        logs.contains("the IdP refused the pushed authorization request"),
        "the refusal is logged"
    );
    for secret in [OIDC_CLIENT_SECRET, wrong] {
        assert!(!logs.contains(secret), "a client secret reached the logs");
        assert!(
            !answers.contains(secret),
            "a client secret reached an answer"
        );
    }
}

/// A discovery document without a PAR endpoint, served to every connection; each answer sent
/// is reported on the channel.
async fn provider_without_par() -> (String, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let document = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    })
    .to_string();
    let (served, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{document}",
                document.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            let _ = socket.shutdown().await;
            let _ = served.send(());
        }
    });
    (issuer, rx)
}

/// `always` against a provider whose metadata names no PAR endpoint: the proxy stays unready
/// and says why, discovery goes on (the provider may gain one); `auto` with the same provider
/// is ready and logs in the classic way.
#[tokio::test]
async fn always_without_an_advertised_endpoint_keeps_the_proxy_unready() {
    let capture = logs::capture();
    let (issuer, mut served) = provider_without_par().await;
    let config = |mode: &str| {
        let toml = config_toml(
            &issuer,
            "http://127.0.0.1:1",
            "oauth2",
            &[("idp", &format!("pushed_authorization = \"{mode}\""))],
        );
        token_handler::config::Config::from_toml(&toml, &env(KEY1)).expect("valid")
    };
    let app = token_handler::app::App::start(config("always")).expect("starts");
    // The first attempt, and the retry that follows its failure.
    for _ in 0..2 {
        served.recv().await.expect("discovery asked");
    }
    assert_eq!(
        token_handler::admin::readiness(&app),
        Err("IdP metadata not discovered yet")
    );
    assert!(
        capture.text().contains(
            "idp.pushed_authorization = \"always\", but neither the config nor the discovery \
             document names a pushed_authorization_request_endpoint"
        ),
        "{}",
        capture.text()
    );
    drop(app);

    let app = token_handler::app::App::start(config("auto")).expect("starts");
    tokio::time::timeout(std::time::Duration::from_secs(10), app.idp.ready())
        .await
        .expect("ready");
    let metadata = app.idp.metadata().expect("discovered");
    assert!(metadata.par_endpoint.is_none(), "auto: nothing to push to");
}
