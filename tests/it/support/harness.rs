//! The single-replica set-up most suites use: the TokenIDP emulator, an echo upstream and the
//! real proxy in-process, each on 127.0.0.1:0.

use super::echo::Echo;
use super::*;
use token_handler::demo::tokenidp::{Client, Issued, Options, TokenIdp};
use tokio::net::TcpListener;

/// Emulator + echo upstream + proxy for one flavor.
pub struct Harness {
    pub idp: TokenIdp,
    pub echo: Echo,
    pub proxy: Proxy,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(flavor: Flavor) -> Harness {
        Harness::with(flavor, &[], KEY1).await
    }

    pub async fn with(flavor: Flavor, tweaks: &[(&str, &str)], keys: &str) -> Harness {
        Harness::build(flavor, tweaks, keys, |_| {}).await
    }

    /// The full set-up: the proxy's port is bound first so the emulator can register its
    /// callback URL; `options` may adjust the emulator.
    pub async fn build(
        flavor: Flavor,
        tweaks: &[(&str, &str)],
        keys: &str,
        options: impl FnOnce(&mut Options),
    ) -> Harness {
        Harness::build_at(flavor, tweaks, keys, None, options).await
    }

    /// Like [`Harness::with`] for a browser that reaches the proxy through a gateway at
    /// `public` (`http://host:port`): the callback and post-logout URLs, the proxy's and the
    /// emulator's, are the gateway's.
    pub async fn behind(
        flavor: Flavor,
        tweaks: &[(&str, &str)],
        keys: &str,
        public: &str,
    ) -> Harness {
        Harness::build_at(flavor, tweaks, keys, Some(public), |_| {}).await
    }

    async fn build_at(
        flavor: Flavor,
        tweaks: &[(&str, &str)],
        keys: &str,
        public: Option<&str>,
        options: impl FnOnce(&mut Options),
    ) -> Harness {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let own_url = format!("http://{}", listener.local_addr().expect("addr"));
        let proxy_url = public.map_or(own_url, str::to_string);
        let mut opts = Options {
            style: flavor.style(),
            clients: vec![Client {
                client_id: CLIENT_ID.into(),
                secret: Some(CLIENT_SECRET.into()),
                redirect_uris: vec![format!("{proxy_url}/auth/callback")],
                post_logout_redirect_uris: vec![format!("{proxy_url}/")],
                ..Client::default()
            }],
            ..Options::default()
        };
        options(&mut opts);
        let idp = TokenIdp::start(
            TcpListener::bind("127.0.0.1:0").await.expect("bind idp"),
            opts,
        )
        .await
        .expect("idp starts");
        let echo = Echo::start().await;
        let redirect = format!("redirect_uri = \"{proxy_url}/auth/callback\"");
        let post_logout = format!("post_logout_redirect_uri = \"{proxy_url}/\"");
        let mut all: Vec<(&str, &str)> = vec![("idp", &redirect), ("idp", &post_logout)];
        all.extend_from_slice(tweaks);
        let toml = config_toml(&idp.url(), &echo.url(), flavor.dialect(), &all);
        let proxy = Proxy::start_on(listener, &toml, keys).await;
        Harness {
            idp,
            echo,
            proxy,
            http: client(),
        }
    }

    /// Logs in through the real endpoints: `/auth/login` → the IdP (automatic login) → the
    /// callback. Returns the callback's response; `jar` holds the cookies afterwards.
    pub async fn browser_login(&self, jar: &mut Jar, return_to: &str) -> reqwest::Response {
        let authorize = self.start_login(jar, return_to).await;
        let callback = self.follow_idp(&authorize).await;
        self.finish_login(jar, &callback).await
    }

    /// `GET /auth/login`; returns the IdP authorization URL it redirected to.
    pub async fn start_login(&self, jar: &mut Jar, return_to: &str) -> String {
        let response = self
            .http
            .get(format!("{}/auth/login", self.proxy.url))
            .query(&[("return_to", return_to)])
            .header("cookie", jar.header())
            .send()
            .await
            .expect("login answered");
        assert_eq!(response.status(), 302, "login redirects to the IdP");
        jar.update(&response);
        location(&response)
    }

    /// Visits the IdP's authorize URL (automatic login); returns the callback URL it sent us to.
    pub async fn follow_idp(&self, authorize_url: &str) -> String {
        let response = self
            .http
            .get(authorize_url)
            .send()
            .await
            .expect("idp answered");
        assert_eq!(response.status(), 302, "the IdP redirects back");
        location(&response)
    }

    /// Visits the callback URL with the browser's cookies.
    pub async fn finish_login(&self, jar: &mut Jar, callback_url: &str) -> reqwest::Response {
        let response = self
            .http
            .get(callback_url)
            .header("cookie", jar.header())
            .send()
            .await
            .expect("callback answered");
        jar.update(&response);
        response
    }

    /// A logged-in browser: a session for the demo user, sealed by the proxy's own codec.
    /// With `expired`, the access token is already past its expiry.
    pub fn login(&self, expired: bool) -> (Jar, Issued) {
        let issued = self.idp.issue(CLIENT_ID, "demo", SCOPE);
        let jar = seal(&self.proxy.app, &issued, expired);
        (jar, issued)
    }

    /// A metric's value from the proxy's registry (0 when absent); `name` with its labels,
    /// as in the exposition (`token_handler_refreshes_total{outcome="refreshed"}`).
    pub fn metric(&self, name: &str) -> f64 {
        self.proxy
            .app
            .metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub async fn get(&self, path: &str, jar: &Jar) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.proxy.url))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("proxy answered")
    }
}
