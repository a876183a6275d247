//! TokenIDP's `/token` dialect, quirks included.
//!
//! Requests are the JSON the published guide shows (`grantType`, `clientId`, `refreshToken`,
//! `scope`). Answers come in every shape the server really produces: a `data` (guide) or
//! `value` (server) envelope, camelCase or snake_case keys, an inner `isSuccess:false` with
//! no token (success means *an access token is present*, not HTTP 200), failures whose
//! `error.code` is always empty (only the status and message text tell what happened), and
//! PascalCase 500s.

use super::credentials::Credentials;
use super::response::{field, parse_answer, string_field, token_object};
use super::{Grant, IdpError, Rejection, TokenResponse, Wire};
use serde_json::{json, Map, Value};

/// The request body. Client authentication: Basic (the header, set by the caller), the secret
/// in the body, or none; TokenIDP takes no client assertion (`check` refuses the combination).
pub(super) fn request(client_id: &str, credentials: &Credentials, grant: &Grant<'_>) -> Wire {
    let mut body = match grant {
        Grant::Refresh {
            refresh_token,
            scope,
        } => {
            let mut b = json!({
                "grantType": "refresh_token",
                "clientId": client_id,
                "refreshToken": refresh_token.expose(),
            });
            if let Some(scope) = scope {
                b["scope"] = json!(scope);
            }
            b
        }
        Grant::AuthorizationCode {
            code,
            verifier,
            redirect_uri,
        } => json!({
            "grantType": "authorization_code",
            "clientId": client_id,
            "code": code.expose(),
            "codeVerifier": verifier.expose(),
            "redirectUri": redirect_uri,
        }),
    };
    // Basic and a body secret at once is a 400 at TokenIDP: send exactly one.
    if let Credentials::Body(secret) = credentials {
        body["clientSecret"] = json!(secret.expose());
    }
    Wire::new("application/json", body.to_string().into_bytes())
}

pub(super) fn parse(status: u16, body: &[u8]) -> Result<TokenResponse, IdpError> {
    let success = |outer: &Map<String, Value>| {
        // `data` (guide) or `value` (server); tolerate a bare token object too.
        let inner = ["data", "value"]
            .iter()
            .find_map(|k| field(outer, k).and_then(Value::as_object))
            .unwrap_or(outer);
        token_object(inner)
    };
    parse_answer(status, body, success, |outer| rejection(status, outer))
}

/// Reads a failure body: `{"isSuccess":false,"error":{"code":"","error":"Invalid refresh token."}}`
/// (any key case), or an OAuth-style `{"error":"...","error_description":"..."}`.
fn rejection(status: u16, outer: &Map<String, Value>) -> Option<(Rejection, String)> {
    let (code, message) = match field(outer, "error")? {
        Value::Object(err) => (
            string_field(err, "code").unwrap_or_default(),
            string_field(err, "error").unwrap_or_default(),
        ),
        Value::String(code) => (
            code.clone(),
            string_field(outer, "errordescription").unwrap_or_default(),
        ),
        _ => return None,
    };
    // `error.code` is always empty (a server bug), so the status decides: 401 is client
    // authentication (wrong secret, disabled client), 400 a refused grant or request.
    let reason = match (status, code.as_str()) {
        (401, _) | (_, "invalid_client" | "unauthorized_client") => Rejection::InvalidClient,
        (_, "invalid_grant") => Rejection::InvalidGrant,
        _ if message.to_ascii_lowercase().contains("refresh token") => Rejection::InvalidGrant,
        _ => Rejection::Other,
    };
    let detail = if message.is_empty() { code } else { message };
    Some((reason, detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::Transient;
    use crate::secret::{AuthCode, ClientSecret, CodeVerifier, RefreshToken};

    fn body(wire: &Wire) -> Value {
        serde_json::from_slice(&wire.body).expect("json")
    }

    #[test]
    fn refresh_request_is_the_guides_json() {
        let rt = RefreshToken::new("q3L+/x==");
        let wire = request(
            "tokenidp-react-dev",
            &Credentials::None,
            &Grant::Refresh {
                refresh_token: &rt,
                scope: Some("openid offline_access"),
            },
        );
        assert_eq!(wire.content_type, "application/json");
        assert_eq!(
            body(&wire),
            json!({"grantType":"refresh_token","clientId":"tokenidp-react-dev",
                   "refreshToken":"q3L+/x==","scope":"openid offline_access"})
        );
    }

    #[test]
    fn secret_goes_either_basic_or_body_never_both() {
        let rt = RefreshToken::new("r");
        let s = std::sync::Arc::new(ClientSecret::new("s"));
        let grant = Grant::Refresh {
            refresh_token: &rt,
            scope: None,
        };
        let basic = request("c", &Credentials::Basic(s.clone()), &grant);
        assert!(body(&basic).get("clientSecret").is_none());
        assert_eq!(
            body(&basic)["clientId"],
            "c",
            "the body client_id matches Basic's"
        );
        let post = request("c", &Credentials::Body(s), &grant);
        assert_eq!(body(&post)["clientSecret"], "s");
    }

    #[test]
    fn code_exchange_request() {
        let code = AuthCode::new("c0de");
        let verifier = CodeVerifier::new("v");
        let wire = request(
            "app",
            &Credentials::None,
            &Grant::AuthorizationCode {
                code: &code,
                verifier: &verifier,
                redirect_uri: "https://app/auth/callback",
            },
        );
        assert_eq!(
            body(&wire),
            json!({"grantType":"authorization_code","clientId":"app","code":"c0de",
                   "codeVerifier":"v","redirectUri":"https://app/auth/callback"})
        );
    }

    #[test]
    fn guide_and_server_success_shapes() {
        let guide = br#"{"isSuccess":true,"data":{"accessToken":"eyJ.a","refreshToken":"35b31ab0",
            "tokenType":"Bearer","expiresIn":3600}}"#;
        let t = parse(200, guide).expect("guide shape");
        assert_eq!(t.access_token.expose(), "eyJ.a");
        assert_eq!(t.refresh_token.expect("rt").expose(), "35b31ab0");
        assert_eq!(t.expires_in, Some(3600));

        let server = br#"{"isSuccess":true,"value":{"access_token":"eyJ.b","token_type":"Bearer",
            "id_token":"eyJ.i","refresh_token":"q3L+/w==","expires_in":1800,
            "expireAt":"2026-02-01T12:30:00Z","isSuccess":true,"userId":42}}"#;
        let t = parse(200, server).expect("server shape");
        assert_eq!(t.access_token.expose(), "eyJ.b");
        assert_eq!(t.refresh_token.expect("rt").expose(), "q3L+/w==");
        assert_eq!(t.id_token.expect("id").expose(), "eyJ.i");
        assert_eq!(t.expires_in, Some(1800));
        assert!(t.scope.is_none(), "TokenIDP never returns scope");

        let no_rt = br#"{"isSuccess":true,"value":{"access_token":"x","expires_in":60}}"#;
        assert!(parse(200, no_rt).expect("ok").refresh_token.is_none());
    }

    #[test]
    fn inner_failure_is_not_a_success() {
        let inner = br#"{"isSuccess":true,"value":{"isSuccess":false,"userId":0}}"#;
        assert!(matches!(
            parse(200, inner),
            Err(IdpError::Transient {
                kind: Transient::NoAccessToken,
                ..
            })
        ));
    }

    #[test]
    fn rejections_by_status_since_error_code_is_always_empty() {
        let invalid = br#"{"isSuccess":false,"error":{"code":"","correlationId":"c","userId":0,"error":"Invalid refresh token."}}"#;
        match parse(400, invalid) {
            Err(IdpError::Rejected { reason, detail }) => {
                assert_eq!(reason, Rejection::InvalidGrant);
                assert_eq!(detail, "Invalid refresh token.");
            }
            other => panic!("{other:?}"),
        }
        let client = br#"{"isSuccess":false,"error":{"code":"","correlationId":"c","userId":0,"error":"Client authentication failed."}}"#;
        assert!(matches!(
            parse(401, client),
            Err(IdpError::Rejected {
                reason: Rejection::InvalidClient,
                ..
            })
        ));
    }

    #[test]
    fn transient_shapes() {
        let pascal = br#"{"IsSuccess":false,"Error":{"Code":"","CorrelationId":"x","UserId":0,"Error":"An error has occurred, please contact support."}}"#;
        let cases: Vec<(u16, &[u8], Transient)> = vec![
            (500, pascal, Transient::Status(500)),
            (
                429,
                br#"{"error":"rate_limit_exceeded","error_description":"slow down"}"#,
                Transient::RateLimited,
            ),
            (502, b"<html>Bad Gateway</html>", Transient::Status(502)),
            (
                200,
                br#"{"isSuccess":true,"value":{"access_tok"#,
                Transient::MalformedBody,
            ),
            (200, b"<html>", Transient::MalformedBody),
            (400, b"<html>waf</html>", Transient::Status(400)),
            (
                404,
                br#"{"error":"tenant_unavailable"}"#,
                Transient::Status(404),
            ),
        ];
        for (status, body, kind) in cases {
            match parse(status, body) {
                Err(IdpError::Transient { kind: k, .. }) => assert_eq!(k, kind, "status {status}"),
                other => panic!("status {status}: {other:?}"),
            }
        }
    }
}
