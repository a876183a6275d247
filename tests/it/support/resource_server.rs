//! A strict DPoP (RFC 9449) resource server for end-to-end tests: `node
//! tests/oidc/resource-server.js` (the pinned `jose` npm package), on `127.0.0.1:0`.
//!
//! It accepts a request only with `Authorization: DPoP <access token>` and one valid `DPoP`
//! proof for exactly that request (`htm`, `htu` from `X-Forwarded-Proto` + `Host` + path, `ath`,
//! fresh `iat`, unseen `jti`; with `require_nonce` its current nonce), and an access token that
//! is a JWT of the provider's JWKS for `audience` whose `cnf.jkt` is the proof key's thumbprint
//! (the provider with [`super::oidc_provider::DpopOptions`] `resource` set issues those). Accepted:
//! `200 {"ok":true,"method","path","query","sub","jkt","htu","nonce","body_length","body_sha256"}`.
//! Refused: `401`, `WWW-Authenticate: DPoP error="invalid_token"|"invalid_dpop_proof"|
//! "use_dpop_nonce", error_description="...", algs="ES256 PS256 RS256"` (only
//! `DPoP algs="ES256 PS256 RS256"` without an Authorization header) and
//! `{"error","reason","detail"}`; the reasons are listed in resource-server.js.

use std::path::PathBuf;

use reqwest::Client;
use tokio::process::{Child, Command};

/// A running resource server (Node) process; killed on drop.
#[derive(Debug)]
pub struct ResourceServer {
    url: String,
    /// Holds the piped stdin too: when this process dies, the pipe closes and the server exits.
    child: Child,
}

impl ResourceServer {
    /// Starts `node tests/oidc/resource-server.js` for the provider `issuer` (it reads the JWKS
    /// location from its discovery document, so the provider must be running) and the access
    /// token audience `audience` (the provider's `resource`); with `require_nonce`, proofs must
    /// carry the server's nonce (`use_dpop_nonce` challenges, [`ResourceServer::rotate_nonce`]).
    /// Returns once it listens.
    pub async fn start(issuer: &str, audience: &str, require_nonce: bool) -> ResourceServer {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        let package = dir.join("node_modules/jose/package.json");
        assert!(
            package.is_file(),
            "{} is missing: the jose npm package is not installed; run ./scripts/test.sh \
             (or `npm ci` in tests/oidc)",
            package.display()
        );
        let mut command = Command::new("node");
        command
            .arg("resource-server.js")
            .current_dir(&dir)
            .env("ISSUER", issuer)
            .env("AUDIENCE", audience)
            .env("REQUIRE_NONCE", if require_nonce { "1" } else { "0" });
        let (child, first) = super::node::start(
            &mut command,
            "url",
            "the resource server (tests/oidc/resource-server.js)",
        )
        .await;
        ResourceServer {
            url: first["url"].as_str().expect("url").to_owned(),
            child,
        }
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `{"accepted": n, "nonce_challenges": n, "refused": {"<reason>": n}, "requests": [{method,
    /// path, status, reason, jkt}]}` (every request outside `/__test/`, oldest first).
    pub async fn stats(&self) -> serde_json::Value {
        Client::new()
            .get(format!("{}/__test/stats", self.url))
            .send()
            .await
            .expect("resource server /__test/stats")
            .json()
            .await
            .expect("resource server stats JSON")
    }

    /// Replaces the server's nonce (with `require_nonce`: proofs carrying the old one are now
    /// challenged) and returns the new one.
    pub async fn rotate_nonce(&self) -> String {
        let body: serde_json::Value = Client::new()
            .post(format!("{}/__test/rotate-nonce", self.url))
            .send()
            .await
            .expect("resource server /__test/rotate-nonce")
            .json()
            .await
            .expect("rotate-nonce JSON");
        body["nonce"].as_str().expect("nonce").to_owned()
    }

    /// The current nonce (`None` without `require_nonce`).
    pub async fn nonce(&self) -> Option<String> {
        let body: serde_json::Value = Client::new()
            .get(format!("{}/__test/nonce", self.url))
            .send()
            .await
            .expect("resource server /__test/nonce")
            .json()
            .await
            .expect("nonce JSON");
        body["nonce"].as_str().map(str::to_owned)
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
