//! A real OpenID provider for end-to-end tests: `node tests/oidc/server.js` (the pinned
//! `oidc-provider` npm package), started on `127.0.0.1:0`, plus a scripted devInteractions login.
//!
//! The provider speaks standard OAuth 2.0 / OpenID Connect: PKCE (S256) required,
//! `client_secret_basic` (or `private_key_jwt`, `ProviderOptions::private_key_jwt`), opaque
//! access tokens, rotating refresh tokens where replaying a
//! consumed one revokes the whole grant (or, with `start_with(.., false)`, refresh tokens that
//! are never rotated), RFC 7009 revocation, RFC 7662 introspection and RP-initiated logout.
//! `offline_access` (a refresh token) is only granted when the authorization request carries
//! `prompt=consent`.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Client;
use tokio::process::{Child, Command};

use super::provider_browser::ProviderBrowser;

/// The client registered in `tests/oidc/server.js` (its defaults).
pub const OIDC_CLIENT_ID: &str = "token-handler";
pub const OIDC_CLIENT_SECRET: &str = "oidc-provider-secret";

/// The `kid` of the provider's only signing key (RS256), as its JWKS publishes it.
pub const SIGNING_KID: &str = "test-rs256";

/// How to start the provider: [`OidcProvider::start_opts`].
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// The client's only `redirect_uri` (the proxy's `/auth/callback`).
    pub redirect_uri: String,
    /// The client's only `post_logout_redirect_uri`.
    pub post_logout_redirect_uri: String,
    /// Access-token lifetime, in seconds.
    pub access_token_ttl_secs: u64,
    /// Whether each refresh issues a new refresh token (otherwise the same one is returned and
    /// stays valid).
    pub rotate: bool,
    /// DPoP and resource indicators ([`DpopOptions`]); the default changes nothing.
    pub dpop: DpopOptions,
    /// Enables Back-Channel Logout with this `backchannel_logout_uri` on the client
    /// (`backchannel_logout_session_required`: ID and logout tokens carry `sid`). Loopback
    /// addresses are allowed.
    pub backchannel_logout_uri: Option<String>,
    /// Whether the provider hands its private signing key over ([`OidcProvider::signing_key`],
    /// [`OidcProvider::sign`]).
    pub expose_signing_key: bool,
    /// The client authenticates with `private_key_jwt` and has no secret: the provider
    /// generates its keys ([`OidcProvider::client_key`]) and records the client assertions it
    /// accepts ([`OidcProvider::client_assertions`]).
    pub private_key_jwt: bool,
    /// The client must push its authorization requests (RFC 9126,
    /// `require_pushed_authorization_requests`); a classic one is refused.
    pub require_par: bool,
}

/// The provider's DPoP (RFC 9449) and resource-indicator (RFC 8707) options (tests/oidc/server.js
/// documents them). Whatever they are, the provider accepts DPoP proofs signed ES256, PS256 or
/// RS256, and serves what it did at `/__test/tokens` ([`OidcProvider::issued_jkts`],
/// [`OidcProvider::nonce_refusals`], [`OidcProvider::test_view`]).
#[derive(Debug, Clone, Default)]
pub struct DpopOptions {
    /// `DPOP=1`: the client's access tokens must be DPoP-bound (`dpop_bound_access_tokens`): a
    /// token request without a proof gets `400 invalid_grant`. Otherwise DPoP is optional (a
    /// proof that is sent still binds the token).
    pub required: bool,
    /// `DPOP_NONCE=1`: the token endpoint answers a proof without the provider's current nonce
    /// with `400 {"error":"use_dpop_nonce"}` and a `DPoP-Nonce` header.
    pub nonce: bool,
    /// `RESOURCE`: the default resource (audience) of every grant: access tokens become JWTs
    /// (`typ: at+jwt`, `aud` this URL, `cnf.jkt` when DPoP-bound), for the code exchange and
    /// refreshes alike, without the client sending `resource`. The token response's `scope`
    /// then lists resource scopes only ("api:read api:write" when requested, else ""). Refresh
    /// tokens stay opaque and revocable.
    pub resource: Option<String>,
}

impl DpopOptions {
    fn apply(&self, command: &mut Command) {
        command
            .env("DPOP", if self.required { "1" } else { "0" })
            .env("DPOP_NONCE", if self.nonce { "1" } else { "0" })
            .env("TEST_INTROSPECT", "1");
        match &self.resource {
            Some(resource) => command.env("RESOURCE", resource),
            None => command.env_remove("RESOURCE"),
        };
    }
}

/// A running `oidc-provider` (Node) process; killed on drop.
#[derive(Debug)]
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`, exactly as the provider puts it in `iss`.
    pub issuer: String,
    /// The private signing JWK (`kid` [`SIGNING_KID`], RS256), with `expose_signing_key`.
    pub signing_key: Option<serde_json::Value>,
    /// The same key as PKCS#8 PEM, with `expose_signing_key`.
    pub signing_key_pem: Option<String>,
    /// With `private_key_jwt`: the client's private keys, `{"<kid>": {"jwk": ..., "pem": ...}}`.
    pub client_keys: Option<serde_json::Value>,
    /// Holds the piped stdin too: when this process dies, the pipe closes and the server exits.
    child: Child,
}

impl OidcProvider {
    /// Starts `node tests/oidc/server.js` (path from env!("CARGO_MANIFEST_DIR")) with the given
    /// callback and post-logout URIs and access-token TTL; returns once it printed its issuer.
    /// `rotate`: whether each refresh issues a new refresh token (otherwise the same one is
    /// returned and stays valid). Panics with a clear message if node or
    /// tests/oidc/node_modules is missing ("run ./scripts/test.sh").
    pub async fn start_with(
        redirect_uri: &str,
        post_logout_redirect_uri: &str,
        access_token_ttl_secs: u64,
        rotate: bool,
    ) -> OidcProvider {
        OidcProvider::start_opts(&ProviderOptions {
            dpop: DpopOptions::default(),
            redirect_uri: redirect_uri.to_owned(),
            post_logout_redirect_uri: post_logout_redirect_uri.to_owned(),
            access_token_ttl_secs,
            rotate,
            backchannel_logout_uri: None,
            expose_signing_key: false,
            private_key_jwt: false,
            require_par: false,
        })
        .await
    }

    /// [`OidcProvider::start_with`] with every option, Back-Channel Logout and the exposed
    /// signing key included.
    pub async fn start_opts(options: &ProviderOptions) -> OidcProvider {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        let package = dir.join("node_modules/oidc-provider/package.json");
        assert!(
            package.is_file(),
            "{} is missing: the oidc-provider npm package is not installed; run ./scripts/test.sh \
             (or `npm ci` in tests/oidc)",
            package.display()
        );

        let mut command = Command::new("node");
        options.dpop.apply(&mut command);
        command
            .arg("server.js")
            .current_dir(&dir)
            .env("REDIRECT_URI", &options.redirect_uri)
            .env(
                "POST_LOGOUT_REDIRECT_URI",
                &options.post_logout_redirect_uri,
            )
            .env(
                "ACCESS_TOKEN_TTL",
                options.access_token_ttl_secs.to_string(),
            )
            .env("CLIENT_ID", OIDC_CLIENT_ID)
            .env("CLIENT_SECRET", OIDC_CLIENT_SECRET)
            .env(
                "ROTATE_REFRESH_TOKEN",
                if options.rotate { "1" } else { "0" },
            )
            .env(
                "CLIENT_AUTH",
                if options.private_key_jwt {
                    "private_key_jwt"
                } else {
                    "client_secret_basic"
                },
            )
            .env(
                "EXPOSE_SIGNING_KEY",
                if options.expose_signing_key { "1" } else { "0" },
            )
            .env("REQUIRE_PAR", if options.require_par { "1" } else { "0" });
        match &options.backchannel_logout_uri {
            Some(uri) => command.env("BACKCHANNEL_LOGOUT_URI", uri),
            None => command.env_remove("BACKCHANNEL_LOGOUT_URI"),
        };
        let (child, first) = super::node::start(
            &mut command,
            "issuer",
            "oidc-provider (tests/oidc/server.js)",
        )
        .await;

        let signing_key = Some(first["signing_key"].clone()).filter(|k| k.is_object());
        let signing_key_pem = first["signing_key_pem"].as_str().map(str::to_owned);
        assert_eq!(
            (signing_key.is_some(), signing_key_pem.is_some()),
            (options.expose_signing_key, options.expose_signing_key),
            "the signing key is exposed exactly when asked: {first}"
        );
        let client_keys = Some(first["client_keys"].clone()).filter(|k| k.is_object());
        assert_eq!(client_keys.is_some(), options.private_key_jwt, "{first}");
        OidcProvider {
            issuer: first["issuer"].as_str().expect("issuer").to_owned(),
            signing_key,
            signing_key_pem,
            client_keys,
            child,
        }
    }

    /// A JWT over `claims`, signed RS256 with the provider's own key (`kid` [`SIGNING_KID`]), as
    /// the provider's JWKS publishes it: for forged, expired, wrong-audience... tokens.
    /// `header_typ`: the header's `typ` (e.g. `Some("logout+jwt")`); `None` leaves it out.
    /// Panics unless the provider was started with `expose_signing_key`.
    pub fn sign(&self, claims: &serde_json::Value, header_typ: Option<&str>) -> String {
        let pem = self
            .signing_key_pem
            .as_deref()
            .expect("OidcProvider::sign needs ProviderOptions::expose_signing_key");
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("the provider's PEM key");
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(SIGNING_KID.to_owned());
        header.typ = header_typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &key).expect("sign a JWT")
    }

    /// Drives the devInteractions login + consent for `authorize_url` (the full URL the proxy's
    /// /auth/login redirected to) with its own cookie jar, and returns the final redirect URL
    /// (`<redirect_uri>?code=...&state=...&iss=...`), without following it.
    ///
    /// If the provider redirects back with an error instead (`?error=...`), that URL is returned
    /// as well; anything else (an error page, too many hops) panics with the response.
    pub async fn login(&self, authorize_url: &str) -> String {
        self.login_as(authorize_url, "oidc-user").await
    }

    /// [`OidcProvider::login`] as the account `user` (every login id is an account), in a fresh
    /// [`ProviderBrowser`] (no provider session: the login page comes first).
    pub async fn login_as(&self, authorize_url: &str, user: &str) -> String {
        ProviderBrowser::new()
            .login(self, authorize_url, user)
            .await
    }
}

impl OidcProvider {
    /// The client's private key `kid` (`client-rs256`, `client-ps256` or `client-es256`) as a JWK (`jwk`) or PKCS#8 PEM
    /// (`pem`). Panics unless started with `private_key_jwt`.
    pub fn client_key(&self, kid: &str, form: &str) -> String {
        let keys = self
            .client_keys
            .as_ref()
            .expect("client keys need ProviderOptions::private_key_jwt");
        match &keys[kid][form] {
            serde_json::Value::String(pem) => pem.clone(),
            other => other.to_string(),
        }
    }

    /// A client assertion as a platform would mint one: `iss` = `sub` = the client id, `aud`
    /// the token endpoint, a fresh `jti`, valid for `lifetime_secs`, signed RS256 with the
    /// registered key `client-rs256`.
    pub fn mint_client_assertion(&self, jti: &str, lifetime_secs: u64) -> String {
        let key = EncodingKey::from_rsa_pem(self.client_key("client-rs256", "pem").as_bytes())
            .expect("the client's PEM key");
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("client-rs256".to_owned());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = serde_json::json!({
            "iss": OIDC_CLIENT_ID, "sub": OIDC_CLIENT_ID,
            "aud": format!("{}/token", self.issuer),
            "jti": jti, "iat": now, "exp": now + lifetime_secs,
        });
        jsonwebtoken::encode(&header, &claims, &key).expect("sign the assertion")
    }

    /// The client assertions the provider accepted so far, oldest first: `route` (`token`,
    /// `revocation`), `alg`, `kid` and `claims`.
    pub async fn client_assertions(&self) -> Vec<serde_json::Value> {
        Client::new()
            .get(format!("{}/test/client-assertions", self.issuer))
            .send()
            .await
            .expect("client assertions")
            .json()
            .await
            .expect("client assertions JSON")
    }

    /// The client that introspects: the proxy's own with a secret, else "test-inspector".
    fn inspector(&self) -> &'static str {
        if self.client_keys.is_some() {
            "test-inspector"
        } else {
            OIDC_CLIENT_ID
        }
    }

    /// RFC 7662 introspection of `token` (access or refresh) by the test client: `active`, and
    /// `sub` when active. Spends nothing, so a test can ask whether a grant is alive and still
    /// use its refresh token afterwards.
    pub async fn introspect(&self, token: &str) -> serde_json::Value {
        Client::new()
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth(self.inspector(), Some(OIDC_CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .expect("introspection endpoint")
            .json()
            .await
            .expect("introspection JSON")
    }

    /// Whether `token` is active at the provider (a revoked grant takes all its tokens along).
    pub async fn active(&self, token: &str) -> bool {
        self.introspect(token).await["active"] == true
    }

    /// Whether `refresh_token` still refreshes at the provider. Spends it (rotation): only for
    /// the last check of a test.
    pub async fn grant_alive(&self, refresh_token: &str) -> bool {
        let request = Client::new().post(format!("{}/token", self.issuer));
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.to_owned()),
        ];
        let request = if self.client_keys.is_some() {
            let jti = format!("grant-alive-{}", rand_suffix());
            form.push(("client_assertion_type", ASSERTION_TYPE.to_owned()));
            form.push(("client_assertion", self.mint_client_assertion(&jti, 60)));
            request
        } else {
            request.basic_auth(OIDC_CLIENT_ID, Some(OIDC_CLIENT_SECRET))
        };
        let r = request.form(&form).send().await.expect("token endpoint");
        r.status() == 200
    }
}

/// What the provider did, from `GET /__test/tokens` (tests/oidc/server.js, TEST_INTROSPECT=1, which
/// [`OidcProvider::start_opts`] always sets).
impl OidcProvider {
    /// The whole view: `access_tokens` (every access token issued, oldest first:
    /// `{jkt, aud, format, gty, token_type, client_id}`), `nonce_refusals`, `token_requests`
    /// (`{grant_type, status, dpop, error}`: `dpop` whether a `DPoP` header came) and `errors`
    /// (every error answer: `{route, status, error, error_description, dpop}`).
    pub async fn test_view(&self) -> serde_json::Value {
        Client::new()
            .get(format!("{}/__test/tokens", self.issuer))
            .send()
            .await
            .expect("oidc-provider /__test/tokens")
            .error_for_status()
            .expect("oidc-provider /__test/tokens answers")
            .json()
            .await
            .expect("oidc-provider /__test/tokens JSON")
    }

    /// The `jkt` (RFC 7638 SHA-256 thumbprint of the DPoP key, what `cnf.jkt` carries) of every
    /// access token issued so far, oldest first; `None` for a token that is not DPoP-bound.
    pub async fn issued_jkts(&self) -> Vec<Option<String>> {
        let view = self.test_view().await;
        view["access_tokens"]
            .as_array()
            .expect("access_tokens array")
            .iter()
            .map(|t| t["jkt"].as_str().map(str::to_owned))
            .collect()
    }

    /// How many answers (any endpoint) were `use_dpop_nonce` refusals.
    pub async fn nonce_refusals(&self) -> u64 {
        self.test_view().await["nonce_refusals"]
            .as_u64()
            .expect("nonce_refusals number")
    }
}

/// RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A few random hex digits (unique `jti`s across calls).
fn rand_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl OidcProvider {
    /// Stops the provider and waits until the process is gone (its port refuses connections).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Best effort: the process may already be gone. Dropping `child` closes its stdin too.
        let _ = self.child.start_kill();
    }
}
