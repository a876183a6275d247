//! A real OpenID provider for end-to-end tests: `node tests/oidc/server.js` (the pinned
//! `oidc-provider` npm package), started on `127.0.0.1:0`, plus a scripted devInteractions login.
//!
//! The provider speaks standard OAuth 2.0 / OpenID Connect: PKCE (S256) required,
//! `client_secret_basic`, opaque access tokens, rotating refresh tokens where replaying a
//! consumed one revokes the whole grant (or, with `start_with(.., false)`, refresh tokens that
//! are never rotated), RFC 7009 revocation, RFC 7662 introspection and RP-initiated logout.
//! `offline_access` (a refresh token) is only granted when the authorization request carries
//! `prompt=consent`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

/// The client registered in `tests/oidc/server.js` (its defaults).
pub const OIDC_CLIENT_ID: &str = "token-handler";
pub const OIDC_CLIENT_SECRET: &str = "oidc-provider-secret";

/// How long `start` waits for the issuer line. Only a guard against a wedged process: the wait
/// ends as soon as the line is printed.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// More hops than devInteractions ever needs (auth → login → auth → consent → auth → client).
const MAX_HOPS: usize = 16;

/// A running `oidc-provider` (Node) process; killed on drop.
#[derive(Debug)]
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`, exactly as the provider puts it in `iss`.
    pub issuer: String,
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
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        let package = dir.join("node_modules/oidc-provider/package.json");
        assert!(
            package.is_file(),
            "{} is missing: the oidc-provider npm package is not installed; run ./scripts/test.sh \
             (or `npm ci` in tests/oidc)",
            package.display()
        );

        let mut child = Command::new("node")
            .arg("server.js")
            .current_dir(&dir)
            .env("REDIRECT_URI", redirect_uri)
            .env("POST_LOGOUT_REDIRECT_URI", post_logout_redirect_uri)
            .env("ACCESS_TOKEN_TTL", access_token_ttl_secs.to_string())
            .env("CLIENT_ID", OIDC_CLIENT_ID)
            .env("CLIENT_SECRET", OIDC_CLIENT_SECRET)
            .env("ROTATE_REFRESH_TOKEN", if rotate { "1" } else { "0" })
            // The server exits when its stdin closes: no orphan if this test process dies.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `node` (Node.js is needed for the oidc-provider tests; run ./scripts/test.sh): {e}")
            });

        let stdout = child.stdout.take().expect("child stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                let line = lines
                    .next_line()
                    .await
                    .expect("read oidc-provider stdout")
                    .unwrap_or_else(|| {
                        panic!(
                            "node tests/oidc/server.js exited before printing its issuer \
                             (see its stderr above; run ./scripts/test.sh if modules are missing)"
                        )
                    });
                let parsed = serde_json::from_str::<serde_json::Value>(&line).ok();
                match parsed.as_ref().and_then(|v| v["issuer"].as_str()) {
                    Some(issuer) => break issuer.to_owned(),
                    // Not ours (the server routes notices to stderr, but be lenient).
                    None => eprintln!("oidc-provider stdout: {line}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("oidc-provider printed no issuer within {START_TIMEOUT:?}"));

        // Keep draining stdout so the child can never block on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("oidc-provider stdout: {line}");
            }
        });

        OidcProvider { issuer, child }
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

    /// [`OidcProvider::login`] as the account `user` (every login id is an account).
    pub async fn login_as(&self, authorize_url: &str, user: &str) -> String {
        // A fresh jar per login: devInteractions keeps its state in cookies
        // (`_interaction`, `_interaction_resume`, `_session`, each with `.sig`).
        let client = Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .expect("build reqwest client for the oidc-provider login");
        let issuer_prefix = format!("{}/", self.issuer);

        let mut url = Url::parse(authorize_url).expect("authorize_url is an absolute URL");
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .expect("GET authorize_url at oidc-provider");

        for _ in 0..MAX_HOPS {
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .expect("oidc-provider redirect has a Location")
                    .to_str()
                    .expect("Location is ASCII");
                let next = url.join(location).expect("Location is a valid URL");
                if !next.as_str().starts_with(&issuer_prefix) {
                    // Left the provider: this is the redirect to the client's redirect_uri.
                    return next.to_string();
                }
                url = next;
                response = client
                    .get(url.clone())
                    .send()
                    .await
                    .expect("GET at oidc-provider");
                continue;
            }

            let body = response.text().await.expect("read oidc-provider page");
            assert_eq!(
                status,
                StatusCode::OK,
                "oidc-provider answered {url} with {status}: {body}"
            );
            let form = Form::parse(&body)
                .unwrap_or_else(|| panic!("no form on the oidc-provider page {url}: {body}"));
            let mut fields = form.hidden;
            // The login page carries a hidden `prompt=login`; the consent page `prompt=consent`.
            if fields.iter().any(|(k, v)| k == "prompt" && v == "login") {
                fields.push(("login".to_owned(), user.to_owned()));
                fields.push(("password".to_owned(), "any-password".to_owned()));
            }
            url = url.join(&form.action).expect("form action is a valid URL");
            response = client
                .post(url.clone())
                .form(&fields)
                .send()
                .await
                .expect("POST form at oidc-provider");
        }
        panic!("oidc-provider login did not reach the redirect_uri within {MAX_HOPS} hops (last: {url})");
    }
}

impl OidcProvider {
    /// RFC 7662 introspection of `token` (access or refresh) by the test client: `active`, and
    /// `sub` when active. Spends nothing, so a test can ask whether a grant is alive and still
    /// use its refresh token afterwards.
    pub async fn introspect(&self, token: &str) -> serde_json::Value {
        Client::new()
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth(OIDC_CLIENT_ID, Some(OIDC_CLIENT_SECRET))
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
        let r = Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(OIDC_CLIENT_ID, Some(OIDC_CLIENT_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .expect("token endpoint");
        r.status() == 200
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Best effort: the process may already be gone. Dropping `child` closes its stdin too.
        let _ = self.child.start_kill();
    }
}

/// The first `<form>` of a devInteractions page: its action and hidden inputs.
#[derive(Debug)]
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
}

impl Form {
    fn parse(html: &str) -> Option<Form> {
        let start = html.find("<form")?;
        let html = &html[start..];
        let end = html.find("</form>").unwrap_or(html.len());
        let form = &html[..end];
        let action = attribute(tag_at(form, 0), "action")?;
        let mut hidden = Vec::new();
        let mut rest = form;
        while let Some(i) = rest.find("<input") {
            let tag = tag_at(rest, i);
            if attribute(tag, "type").as_deref() == Some("hidden") {
                if let Some(name) = attribute(tag, "name") {
                    hidden.push((name, attribute(tag, "value").unwrap_or_default()));
                }
            }
            rest = &rest[i + tag.len()..];
        }
        Some(Form { action, hidden })
    }
}

/// The tag starting at `html[at..]`, up to and including its `>`.
fn tag_at(html: &str, at: usize) -> &str {
    let tag = &html[at..];
    tag.find('>').map_or(tag, |end| &tag[..=end])
}

/// A double-quoted attribute's value, HTML entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(decode_entities(&tag[start..start + len]))
}

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
