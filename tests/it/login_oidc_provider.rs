//! The same end-to-end suite against a real OpenID provider: the `oidc-provider` npm package
//! (tests/oidc), with PKCE, `client_secret_basic`, rotating refresh tokens where a reused one
//! revokes the whole grant, RFC 7009 revocation and RP-initiated logout.

use crate::support::echo::Echo;
use crate::support::oidc_provider::{OidcProvider, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET};
use crate::support::*;
use std::time::Duration;
use token_handler::refresh::unix_now;
use token_handler::session::ReadOutcome;

struct Oidc {
    provider: OidcProvider,
    echo: Echo,
    proxy: Proxy,
    http: reqwest::Client,
}

impl Oidc {
    async fn start() -> Oidc {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        // Access tokens live 4 s: a refresh is due half-way (the 5 s skew is capped at half the
        // lifetime), on whole seconds. With 2 s it was due at the next second boundary after
        // the login, so the first API call, which must carry the login's token, refreshed
        // whenever the login ended late in its second (seen under load).
        let provider =
            OidcProvider::start(&format!("{url}/auth/callback"), &format!("{url}/"), 4).await;
        let echo = Echo::start().await;
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
[upstream]
url = "{upstream}"
[idp]
dialect = "oauth2"
issuer = "{issuer}"
client_id = "{OIDC_CLIENT_ID}"
client_auth = "client_secret_basic"
scope = "openid offline_access profile email"
redirect_uri = "{url}/auth/callback"
post_logout_redirect_uri = "{url}/"
extra_authorize_params = {{ prompt = "consent" }}
[session]
refresh_skew = "5s"
"#,
            upstream = echo.url(),
            issuer = provider.issuer,
        );
        let env = |name: &str| match name {
            "TOKEN_HANDLER_COOKIE_KEYS" => Some(KEY1.to_string()),
            "TOKEN_HANDLER_CLIENT_SECRET" => Some(OIDC_CLIENT_SECRET.to_string()),
            _ => None,
        };
        let proxy = Proxy::start_with_env(listener, &toml, &env).await;
        Oidc {
            provider,
            echo,
            proxy,
            http: client(),
        }
    }

    async fn login(&self) -> Jar {
        let mut jar = Jar::default();
        let r = self
            .http
            .get(format!("{}/auth/login?return_to=/home", self.proxy.url))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 302);
        jar.update(&r);
        let authorize = location(&r);
        assert!(
            authorize.contains("prompt=consent") && authorize.contains("nonce="),
            "{authorize}"
        );
        let callback = self.provider.login(&authorize).await;
        let r = self
            .http
            .get(&callback)
            .header("cookie", jar.header())
            .send()
            .await
            .expect("callback");
        let status = r.status();
        jar.update(&r);
        assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
        assert!(jar.session().is_some());
        jar
    }

    async fn get(&self, path: &str, jar: &Jar) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.proxy.url))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("answered")
    }

    fn session(&self, jar: &Jar) -> token_handler::session::Session {
        let mut headers = http::HeaderMap::new();
        headers.insert("cookie", jar.header().parse().expect("hv"));
        match self
            .proxy
            .app
            .codec
            .read(&self.proxy.app.codec.incoming(&headers), unix_now())
        {
            ReadOutcome::Valid { session, .. } => session,
            other => panic!("no session: {other:?}"),
        }
    }

    /// Waits until the jar's access token is due for a refresh (a time window, not an event).
    async fn wait_for_expiry(&self, jar: &Jar) {
        let s = self.session(jar);
        let due = s.access_expires_at - (s.access_expires_at - s.access_issued_at) / 2;
        while unix_now() < due {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether `refresh_token` still refreshes at the provider (spends it: a last check).
    pub async fn grant_alive(&self, refresh_token: &str) -> bool {
        self.provider.grant_alive(refresh_token).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_api_call_refresh_with_rotation_and_logout_with_revocation() {
    let o = Oidc::start().await;
    let mut jar = o.login().await;
    let first = o.session(&jar);
    assert_eq!(first.claims["sub"], "oidc-user");
    assert_eq!(first.claims["name"], "OIDC Test User");

    let r = o.get("/api/me", &jar).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        o.echo.last().header("authorization"),
        Some(format!("Bearer {}", first.access_token.expose()))
    );
    let session = json(o.get("/auth/session", &jar).await).await;
    assert_eq!(session["authenticated"], true);
    assert_eq!(session["claims"]["email"], "oidc-user@example.com");

    o.wait_for_expiry(&jar).await;
    let r = o.get("/api/me", &jar).await;
    assert_eq!(r.status(), 200);
    jar.update(&r);
    let second = o.session(&jar);
    assert_ne!(
        second.access_token.expose(),
        first.access_token.expose(),
        "refreshed"
    );
    assert_ne!(
        second.refresh_token.expose(),
        first.refresh_token.expose(),
        "rotated"
    );
    assert_eq!(
        o.echo.last().header("authorization"),
        Some(format!("Bearer {}", second.access_token.expose()))
    );

    let r = o
        .http
        .post(format!("{}/auth/logout", o.proxy.url))
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    jar.update(&r);
    assert!(jar.session().is_none());
    let logout_url = json(r).await["logout_url"]
        .as_str()
        .expect("logout_url")
        .to_string();
    assert!(
        logout_url.starts_with(&format!(
            "{}/session/end?client_id={OIDC_CLIENT_ID}",
            o.provider.issuer
        )),
        "{logout_url}"
    );
    assert!(
        !logout_url.contains("id_token_hint"),
        "no token in a URL by default"
    );
    assert!(
        !o.grant_alive(second.refresh_token.expose()).await,
        "RFC 7009 revocation at logout"
    );
    assert_eq!(o.get("/api/me", &jar).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_requests_at_expiry_keep_the_grant() {
    let o = Oidc::start().await;
    let jar = o.login().await;
    o.wait_for_expiry(&jar).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let http = o.http.clone();
        let url = format!("{}/api/item/{i}", o.proxy.url);
        let cookie = jar.header();
        tasks.push(tokio::spawn(async move {
            let r = http
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("answered");
            (r.status().as_u16(), session_set_cookies(&r))
        }));
    }
    let mut new_jar = jar.clone();
    for task in tasks {
        let (status, cookies) = task.await.expect("task");
        assert_eq!(status, 200, "no request lost the session");
        for line in cookies {
            new_jar.set(&line);
        }
    }
    // This provider revokes the whole grant when a refresh token is spent twice: a further
    // refresh through the proxy proves it was spent once.
    o.wait_for_expiry(&new_jar).await;
    let r = o.get("/api/after", &new_jar).await;
    assert_eq!(r.status(), 200, "the grant survived the storm");
    let mut latest = new_jar.clone();
    latest.update(&r);
    assert!(
        o.grant_alive(o.session(&latest).refresh_token.expose())
            .await
    );
}
