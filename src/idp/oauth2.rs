//! Standard OAuth 2.0 token requests and answers (RFC 6749 §4.1.3, §5, §6; RFC 7636).
//!
//! Form-encoded requests (refresh tokens in Base64 carry `+/=`, which the form encoder
//! percent-encodes), `client_secret_basic` or `client_secret_post`, §5.1 success JSON and
//! §5.2 error codes mapped to rejected/transient.

use super::response::{classify_failure, seconds_field, string_field};
use super::{Grant, IdpError, Rejection, TokenResponse, Transient, Wire};
use crate::config::ClientAuth;
use crate::secret::{AccessToken, ClientSecret, IdToken, RefreshToken};
use serde_json::{Map, Value};

pub(super) fn request(
    client_id: &str,
    secret: Option<&ClientSecret>,
    auth: ClientAuth,
    grant: &Grant<'_>,
) -> Wire {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    match grant {
        Grant::Refresh {
            refresh_token,
            scope,
        } => {
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", refresh_token.expose());
            if let Some(scope) = scope {
                form.append_pair("scope", scope);
            }
        }
        Grant::AuthorizationCode {
            code,
            verifier,
            redirect_uri,
        } => {
            form.append_pair("grant_type", "authorization_code");
            form.append_pair("code", code.expose());
            form.append_pair("redirect_uri", redirect_uri);
            form.append_pair("code_verifier", verifier.expose());
        }
    }
    // RFC 6749 §2.3.1: with Basic the client is identified by the header alone.
    match (auth, secret) {
        (ClientAuth::Basic, Some(_)) => {}
        (ClientAuth::Body, Some(secret)) => {
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", secret.expose());
        }
        _ => {
            form.append_pair("client_id", client_id);
        }
    }
    Wire {
        content_type: "application/x-www-form-urlencoded",
        body: form.finish().into_bytes(),
        basic: auth == ClientAuth::Basic,
    }
}

pub(super) fn parse(status: u16, body: &[u8]) -> Result<TokenResponse, IdpError> {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let object = parsed.ok_or(IdpError::transient(Transient::MalformedBody))?;
        let Some(access_token) = string_field(&object, "accesstoken") else {
            return Err(IdpError::transient(Transient::NoAccessToken));
        };
        return Ok(TokenResponse {
            access_token: AccessToken::new(access_token),
            refresh_token: string_field(&object, "refreshtoken").map(RefreshToken::new),
            id_token: string_field(&object, "idtoken").map(IdToken::new),
            expires_in: seconds_field(&object, "expiresin"),
            scope: string_field(&object, "scope"),
        });
    }
    let error = parsed.as_ref().and_then(|o| {
        let code = o.get("error")?.as_str()?.to_string();
        let description = o
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        Some((code, description.to_string()))
    });
    let rejection = match error {
        // RFC 6749 §5.2 codes are verdicts on this grant or client.
        Some((code, description)) => {
            let reason = match code.as_str() {
                "invalid_grant" => Some(Rejection::InvalidGrant),
                "invalid_client" | "unauthorized_client" => Some(Rejection::InvalidClient),
                "invalid_request" | "invalid_scope" | "unsupported_grant_type" => {
                    Some(Rejection::Other)
                }
                // `temporarily_unavailable`, `server_error`, `slow_down`, unknown codes: not a verdict.
                _ => None,
            };
            reason.map(|r| {
                let detail = if description.is_empty() {
                    code
                } else {
                    format!("{code}: {description}")
                };
                (r, detail)
            })
        }
        None => None,
    };
    Err(classify_failure(status, rejection))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_form_encoded_with_plus_slash_equals_escaped() {
        let rt = RefreshToken::new("ab+/cd==");
        let s = ClientSecret::new("sec");
        let grant = Grant::Refresh {
            refresh_token: &rt,
            scope: None,
        };
        let basic = request("c", Some(&s), ClientAuth::Basic, &grant);
        assert_eq!(basic.content_type, "application/x-www-form-urlencoded");
        assert_eq!(
            String::from_utf8(basic.body).expect("utf8"),
            "grant_type=refresh_token&refresh_token=ab%2B%2Fcd%3D%3D"
        );
        assert!(basic.basic);
        let post = request("c", Some(&s), ClientAuth::Body, &grant);
        assert!(String::from_utf8(post.body)
            .expect("utf8")
            .ends_with("&client_id=c&client_secret=sec"));
        let public = request("c", None, ClientAuth::None, &grant);
        assert!(String::from_utf8(public.body)
            .expect("utf8")
            .ends_with("&client_id=c"));
    }

    #[test]
    fn success_and_error_codes() {
        let ok = parse(
            200,
            br#"{"access_token":"a","token_type":"Bearer","expires_in":60,"refresh_token":"r","scope":"openid"}"#,
        )
        .expect("ok");
        assert_eq!(ok.expires_in, Some(60));
        assert_eq!(ok.scope.as_deref(), Some("openid"));
        assert!(matches!(
            parse(
                400,
                br#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#
            ),
            Err(IdpError::Rejected {
                reason: Rejection::InvalidGrant,
                ..
            })
        ));
        assert!(matches!(
            parse(401, br#"{"error":"invalid_client"}"#),
            Err(IdpError::Rejected {
                reason: Rejection::InvalidClient,
                ..
            })
        ));
        assert!(matches!(
            parse(400, br#"{"error":"temporarily_unavailable"}"#),
            Err(IdpError::Transient {
                kind: Transient::Status(400),
                ..
            })
        ));
        assert!(matches!(
            parse(503, br#"{"error":"server_error"}"#),
            Err(IdpError::Transient {
                kind: Transient::Status(503),
                ..
            })
        ));
    }
}
