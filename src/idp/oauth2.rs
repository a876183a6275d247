//! Standard OAuth 2.0 token requests and answers (RFC 6749 §4.1.3, §5, §6; RFC 7636).
//!
//! Form-encoded requests (refresh tokens in Base64 carry `+/=`, which the form encoder
//! percent-encodes), `client_secret_basic`, `client_secret_post` or a client assertion
//! (`private_key_jwt`, credentials.rs), §5.1 success JSON and
//! §5.2 error codes mapped to rejected/transient.

use super::credentials::Credentials;
use super::response::{parse_answer, token_object};
use super::{Grant, IdpError, Rejection, TokenResponse, Wire};
use serde_json::{Map, Value};

pub(super) fn request(client_id: &str, credentials: &Credentials, grant: &Grant<'_>) -> Wire {
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
    credentials.append_to_form(client_id, &mut form);
    Wire::new(
        "application/x-www-form-urlencoded",
        form.finish().into_bytes(),
    )
}

pub(super) fn parse(status: u16, body: &[u8]) -> Result<TokenResponse, IdpError> {
    parse_answer(status, body, token_object, rejection)
}

/// RFC 6749 §5.2: the codes that are verdicts on this grant or client, with the description.
/// `temporarily_unavailable`, `server_error`, `slow_down` and unknown codes are not.
fn rejection(object: &Map<String, Value>) -> Option<(Rejection, String)> {
    let code = object.get("error")?.as_str()?;
    let reason = match code {
        "invalid_grant" => Rejection::InvalidGrant,
        "invalid_client" | "unauthorized_client" => Rejection::InvalidClient,
        "invalid_request" | "invalid_scope" | "unsupported_grant_type" => Rejection::Other,
        _ => return None,
    };
    Some((reason, super::response::error_detail(object, code)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::Transient;
    use crate::secret::{ClientSecret, RefreshToken};

    #[test]
    fn refresh_is_form_encoded_with_plus_slash_equals_escaped() {
        let rt = RefreshToken::new("ab+/cd==");
        let s = std::sync::Arc::new(ClientSecret::new("sec"));
        let grant = Grant::Refresh {
            refresh_token: &rt,
            scope: None,
        };
        let basic = request("c", &Credentials::Basic(s.clone()), &grant);
        assert_eq!(basic.content_type, "application/x-www-form-urlencoded");
        assert_eq!(
            String::from_utf8(basic.body).expect("utf8"),
            "grant_type=refresh_token&refresh_token=ab%2B%2Fcd%3D%3D"
        );
        let post = request("c", &Credentials::Body(s), &grant);
        assert!(String::from_utf8(post.body)
            .expect("utf8")
            .ends_with("&client_id=c&client_secret=sec"));
        let public = request("c", &Credentials::None, &grant);
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
