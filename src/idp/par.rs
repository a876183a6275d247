//! Pushed authorization requests (RFC 9126): a login's authorization parameters go to the IdP
//! in a back-channel POST, authenticated like a token request, and the browser gets only
//! `client_id` and the `request_uri` the IdP answered with. Nothing about the request (its
//! `state`, PKCE challenge, scopes) travels through, or can be changed in, the browser.
//!
//! The client authenticates exactly as at the token endpoint (`credentials.rs`). A signed
//! assertion keeps its usual `aud` (the token endpoint, or the issuer): RFC 9126 §2 makes the
//! PAR endpoint accept the issuer, the token endpoint's URL and its own URL as audience.
//!
//! Answers are classified like `/token` answers: no answer, a timeout, 5xx, 429, an unreadable
//! or oversized body → transient (the login answers `idp_unavailable`); a 400/401 with an OAuth
//! error (`invalid_request`, `invalid_client`, ...) → the IdP refused this login request.

use super::credentials::Credentials;
use super::response::{self, classify_failure};
use super::{IdpClient, IdpError, Rejection, Transient};
use crate::metrics::OutcomeLabel;
use serde_json::{Map, Value};
use tracing::{debug, instrument};
use url::Url;

/// The IdP's answer to a pushed request (RFC 9126 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRequest {
    /// The reference the browser carries to the authorization endpoint.
    pub request_uri: String,
    /// How long the IdP keeps it, in seconds.
    pub expires_in: Option<u64>,
}

impl IdpClient {
    /// Pushes a login's authorization parameters (in the order given, `client_id` among them)
    /// to the PAR endpoint, with the client's authentication.
    #[instrument(skip_all)]
    pub async fn push_authorization(
        &self,
        params: &[(String, String)],
    ) -> Result<PushedRequest, IdpError> {
        let not_known = || IdpError::transient(Transient::NotDiscovered);
        let metadata = self.metadata().ok_or_else(not_known)?;
        let endpoint = metadata.par_endpoint.clone().ok_or_else(not_known)?;
        let credentials = self.credentials(metadata)?;
        let started = tokio::time::Instant::now();
        let result = self.send_pushed(endpoint, &credentials, params).await;
        let outcome = match &result {
            Ok(_) => "pushed",
            Err(IdpError::Rejected { .. }) => "refused",
            Err(IdpError::Transient { .. }) => "unavailable",
        };
        let elapsed = started.elapsed();
        self.metrics()
            .par_seconds
            .get_or_create(&OutcomeLabel { outcome })
            .observe(elapsed.as_secs_f64());
        debug!(
            outcome,
            elapsed_ms = elapsed.as_millis() as u64,
            "pushed authorization request endpoint answered"
        );
        result
    }

    /// The one request to the PAR endpoint: every header it carries is set here.
    async fn send_pushed(
        &self,
        endpoint: Url,
        credentials: &Credentials,
        params: &[(String, String)],
    ) -> Result<PushedRequest, IdpError> {
        let client_id = self.config().client_id.as_str();
        let span = self.traces().idp("idp.par", "POST", &endpoint);
        let mut request = self
            .http()
            .post(endpoint)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(form(params, credentials));
        if let Some(basic) = credentials.basic_header(client_id) {
            request = request.header(http::header::AUTHORIZATION, basic);
        }
        let response = crate::trace::inject_reqwest(&span, request)
            .send()
            .await
            .map_err(|e| {
                crate::trace::record_error(&span);
                response::unreachable("pushed authorization request endpoint", &e)
            })?;
        let status = response.status().as_u16();
        crate::trace::record_status(&span, status, status >= 400);
        let retry_after = response::retry_after(response.headers());
        let body = response::read_limited(response, self.config().max_response_bytes)
            .await
            .map_err(|kind| IdpError::Transient { kind, retry_after })?;
        parse(status, &body).map_err(|e| match e {
            IdpError::Transient {
                kind,
                retry_after: None,
            } => IdpError::Transient { kind, retry_after },
            other => other,
        })
    }
}

/// The form body: the authorization parameters, then the client's proof (its secret or
/// assertion; `client_id` is among the parameters already, and appears once).
fn form(params: &[(String, String)], credentials: &Credentials) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in params {
        form.append_pair(key, value);
    }
    credentials.append_proof(&mut form);
    form.finish()
}

/// Classifies the PAR endpoint's answer (RFC 9126 §2.2, §2.3).
fn parse(status: u16, body: &[u8]) -> Result<PushedRequest, IdpError> {
    let object: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let object = object.ok_or(IdpError::transient(Transient::MalformedBody))?;
        let request_uri = object
            .get("request_uri")
            .and_then(Value::as_str)
            .filter(|uri| !uri.is_empty())
            .ok_or(IdpError::transient(Transient::MalformedBody))?
            .to_string();
        let expires_in = object.get("expires_in").and_then(Value::as_u64);
        return Ok(PushedRequest {
            request_uri,
            expires_in,
        });
    }
    Err(classify_failure(
        status,
        object.as_ref().and_then(rejection),
    ))
}

/// An OAuth error that refuses this request (RFC 9126 §2.3 uses RFC 6749 §5.2's codes and the
/// authorization endpoint's); `temporarily_unavailable` and `server_error` are not refusals.
fn rejection(object: &Map<String, Value>) -> Option<(Rejection, String)> {
    let code = object.get("error")?.as_str()?;
    let reason = match code {
        "temporarily_unavailable" | "server_error" | "slow_down" | "" => return None,
        "invalid_client" | "unauthorized_client" => Rejection::InvalidClient,
        _ => Rejection::Other,
    };
    Some((reason, super::response::error_detail(object, code)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{ClientAssertion, ClientSecret};
    use std::sync::Arc;

    fn params() -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", "spa"),
            ("scope", "openid offline_access"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn the_form_carries_the_parameters_and_the_proof_with_one_client_id() {
        let secret = Arc::new(ClientSecret::new("s3cret"));
        assert_eq!(
            form(&params(), &Credentials::Basic(secret.clone())),
            "response_type=code&client_id=spa&scope=openid+offline_access"
        );
        assert_eq!(
            form(&params(), &Credentials::Body(secret)),
            "response_type=code&client_id=spa&scope=openid+offline_access&client_secret=s3cret"
        );
        assert_eq!(
            form(
                &params(),
                &Credentials::Assertion(ClientAssertion::new("a.b.c"))
            ),
            "response_type=code&client_id=spa&scope=openid+offline_access&client_assertion_type=\
             urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c"
        );
        assert_eq!(
            form(&params(), &Credentials::None),
            "response_type=code&client_id=spa&scope=openid+offline_access"
        );
    }

    #[test]
    fn answers_are_classified_like_token_answers() {
        assert_eq!(
            parse(
                201,
                br#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#
            )
            .expect("pushed"),
            PushedRequest {
                request_uri: "urn:ietf:params:oauth:request_uri:abc".into(),
                expires_in: Some(60)
            }
        );
        let transient = |status, body: &[u8]| match parse(status, body) {
            Err(IdpError::Transient { kind, .. }) => kind,
            other => panic!("{status}: {other:?}"),
        };
        assert_eq!(
            transient(201, br#"{"expires_in":60}"#),
            Transient::MalformedBody
        );
        assert_eq!(transient(201, b"<html>"), Transient::MalformedBody);
        assert_eq!(
            transient(503, br#"{"error":"server_error"}"#),
            Transient::Status(503)
        );
        assert_eq!(transient(429, b""), Transient::RateLimited);
        assert_eq!(
            transient(400, b"<html>bad gateway</html>"),
            Transient::Status(400)
        );
        assert_eq!(
            transient(400, br#"{"error":"temporarily_unavailable"}"#),
            Transient::Status(400)
        );
        let refused = |status, body: &[u8]| match parse(status, body) {
            Err(IdpError::Rejected { reason, detail }) => (reason, detail),
            other => panic!("{status}: {other:?}"),
        };
        assert_eq!(
            refused(
                401,
                br#"{"error":"invalid_client","error_description":"client authentication failed"}"#
            ),
            (
                Rejection::InvalidClient,
                "invalid_client: client authentication failed".to_string()
            )
        );
        assert_eq!(
            refused(400, br#"{"error":"invalid_redirect_uri"}"#),
            (Rejection::Other, "invalid_redirect_uri".to_string())
        );
    }
}
