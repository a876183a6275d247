//! Token-endpoint answers: `parse_token_response` on every TokenIDP and OAuth2 success shape
//! (any key case, any envelope), error bodies, any status and arbitrary bytes, against the
//! classification invariants (Ok, Rejected, Transient).

use super::{config, NOW};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use token_handler::config::Dialect;
use token_handler::idp::{parse_token_response, IdpError, Rejection, Transient};
use token_handler::refresh::expires_at;

/// How a field name is spelled: TokenIDP answers in all of these.
#[derive(Debug, Clone, Copy)]
enum Case {
    Camel,
    Snake,
    Pascal,
}

fn spell(words: &[&str], case: Case) -> String {
    let cap = |w: &str| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    match case {
        Case::Snake => words.join("_"),
        Case::Camel => {
            words[0].to_string() + &words[1..].iter().map(|w| cap(w)).collect::<String>()
        }
        Case::Pascal => words.iter().map(|w| cap(w)).collect(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![Just(Case::Camel), Just(Case::Snake), Just(Case::Pascal)]
}

#[derive(Debug, Clone)]
enum ExpiresIn {
    Number(u64),
    Text(String),
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: Option<String>,
    id: Option<String>,
    expires_in: Option<ExpiresIn>,
    scope: Option<String>,
    case: Case,
}

fn tokens() -> impl Strategy<Value = Tokens> {
    (
        "[A-Za-z0-9._~+/=-]{0,64}",
        prop::option::of("[A-Za-z0-9+/=-]{1,88}"),
        prop::option::of("[A-Za-z0-9._-]{1,64}"),
        prop::option::of(prop_oneof![
            (0u64..400_000_000).prop_map(ExpiresIn::Number),
            (0u64..100_000).prop_map(|n| ExpiresIn::Text(n.to_string())),
        ]),
        prop::option::of("[a-z ._]{1,40}"),
        case(),
    )
        .prop_map(|(access, refresh, id, expires_in, scope, case)| Tokens {
            access,
            refresh,
            id,
            expires_in,
            scope,
            case,
        })
}

fn token_object(t: &Tokens) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert(spell(&["access", "token"], t.case), json!(t.access));
    o.insert(spell(&["token", "type"], t.case), json!("Bearer"));
    if let Some(r) = &t.refresh {
        o.insert(spell(&["refresh", "token"], t.case), json!(r));
    }
    if let Some(i) = &t.id {
        o.insert(spell(&["id", "token"], t.case), json!(i));
    }
    match &t.expires_in {
        Some(ExpiresIn::Number(n)) => {
            o.insert(spell(&["expires", "in"], t.case), json!(n));
        }
        Some(ExpiresIn::Text(s)) => {
            o.insert(spell(&["expires", "in"], t.case), json!(s));
        }
        None => {}
    }
    if let Some(s) = &t.scope {
        o.insert(spell(&["scope"], t.case), json!(s));
    }
    o
}

/// TokenIDP success bodies: `data` (guide), `value` (server) or no envelope, in any key case.
fn tokenidp_success() -> impl Strategy<Value = (Tokens, Vec<u8>)> {
    (
        tokens(),
        prop_oneof![Just(None), Just(Some("data")), Just(Some("value"))],
        case(),
        any::<bool>(),
    )
        .prop_map(|(t, envelope, outer_case, inner_flag)| {
            let mut inner = token_object(&t);
            if inner_flag {
                inner.insert(spell(&["is", "success"], t.case), json!(true));
                inner.insert(spell(&["user", "id"], t.case), json!(42));
            }
            let body = match envelope {
                None => Value::Object(inner),
                Some(key) => {
                    let mut outer = Map::new();
                    outer.insert(spell(&["is", "success"], outer_case), json!(true));
                    outer.insert(spell(&[key], outer_case), Value::Object(inner));
                    Value::Object(outer)
                }
            };
            (t, serde_json::to_vec(&body).expect("json"))
        })
}

fn check_success(
    t: &Tokens,
    result: Result<token_handler::idp::TokenResponse, IdpError>,
) -> Result<(), TestCaseError> {
    if t.access.is_empty() {
        prop_assert!(
            matches!(
                result,
                Err(IdpError::Transient {
                    kind: Transient::NoAccessToken,
                    ..
                })
            ),
            "empty access token: {:?}",
            result
        );
        return Ok(());
    }
    let r = result.map_err(|e| TestCaseError::fail(format!("expected Ok, got {e:?}")))?;
    prop_assert_eq!(r.access_token.expose(), t.access.as_str());
    prop_assert_eq!(
        r.refresh_token.as_ref().map(|x| x.expose()),
        t.refresh.as_deref()
    );
    prop_assert_eq!(r.id_token.as_ref().map(|x| x.expose()), t.id.as_deref());
    let expected = match &t.expires_in {
        Some(ExpiresIn::Number(n)) => Some(*n),
        Some(ExpiresIn::Text(s)) => s.parse().ok(),
        None => None,
    };
    prop_assert_eq!(r.expires_in, expected);
    prop_assert_eq!(r.scope.as_deref(), t.scope.as_deref());
    prop_assert!(expires_at(&r, NOW) >= NOW);
    Ok(())
}

/// Error-shaped bodies of both dialects (and a few that are no JSON object at all).
fn error_body() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        Just(""),
        Just("invalid_grant"),
        Just("invalid_client"),
        Just("unauthorized_client"),
        Just("invalid_request"),
        Just("invalid_scope"),
        Just("unsupported_grant_type"),
        Just("temporarily_unavailable"),
        Just("server_error"),
        Just("rate_limit_exceeded"),
        Just("tenant_unavailable"),
    ];
    let message = prop_oneof![
        Just("Invalid refresh token.".to_string()),
        Just("Client authentication failed.".to_string()),
        Just("An error has occurred, please contact support.".to_string()),
        "[ -~]{0,40}",
    ];
    prop_oneof![
        // TokenIDP: {"isSuccess":false,"error":{"code":"","error":"..."}} in any key case.
        (code.clone(), message.clone(), case()).prop_map(|(code, msg, c)| {
            let mut err = Map::new();
            err.insert(spell(&["code"], c), json!(code));
            err.insert(spell(&["correlation", "id"], c), json!("c"));
            err.insert(spell(&["error"], c), json!(msg));
            let mut o = Map::new();
            o.insert(spell(&["is", "success"], c), json!(false));
            o.insert(spell(&["error"], c), Value::Object(err));
            serde_json::to_vec(&o).expect("json")
        }),
        // RFC 6749 §5.2.
        (code, prop::option::of(message)).prop_map(|(code, msg)| {
            let mut o = json!({ "error": code });
            if let Some(m) = msg {
                o["error_description"] = json!(m);
            }
            serde_json::to_vec(&o).expect("json")
        }),
        Just(b"<html>Bad Gateway</html>".to_vec()),
        Just(b"{\"isSuccess\":true,\"value\":{\"access_tok".to_vec()),
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200u16),
        Just(400),
        Just(401),
        Just(403),
        Just(404),
        Just(429),
        Just(500),
        Just(502),
        Just(503),
        100u16..600,
        any::<u16>(),
    ]
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![Just(Dialect::TokenIdp), Just(Dialect::OAuth2)]
}

/// The classification invariants that hold for every answer, whatever the body.
pub(super) fn check_classification(
    status: u16,
    result: &Result<token_handler::idp::TokenResponse, IdpError>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(r) => {
            prop_assert!((200..300).contains(&status), "Ok for status {}", status);
            prop_assert!(!r.access_token.expose().is_empty());
        }
        Err(IdpError::Rejected { detail, .. }) => {
            prop_assert!(
                matches!(status, 400 | 401),
                "Rejected for status {}",
                status
            );
            prop_assert!(detail.chars().count() <= 200 && !detail.chars().any(char::is_control));
        }
        Err(IdpError::Transient { .. }) => {}
    }
    if status == 429 || (500..600).contains(&status) {
        prop_assert!(
            matches!(result, Err(IdpError::Transient { .. })),
            "status {} must be transient: {:?}",
            status,
            result
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tokenidp_success_shapes_are_ok(
        (t, body) in tokenidp_success(),
        status in 200u16..300,
    ) {
        let result = parse_token_response(Dialect::TokenIdp, status, &body);
        check_classification(status, &result)?;
        check_success(&t, result)?;
    }

    #[test]
    fn oauth2_success_shapes_are_ok(t in tokens(), status in 200u16..300) {
        let body = serde_json::to_vec(&Value::Object(token_object(&t))).expect("json");
        let result = parse_token_response(Dialect::OAuth2, status, &body);
        check_classification(status, &result)?;
        check_success(&t, result)?;
    }

    #[test]
    fn any_status_and_body_obeys_the_classification(
        dialect in dialect(),
        status in status(),
        body in prop_oneof![
            error_body(),
            tokenidp_success().prop_map(|(_, b)| b),
            tokens().prop_map(|t| serde_json::to_vec(&Value::Object(token_object(&t))).expect("json")),
        ],
    ) {
        let result = parse_token_response(dialect, status, &body);
        check_classification(status, &result)?;
    }

    #[test]
    fn rejections_follow_the_status_and_code(
        c in case(),
        msg in "[ -~]{0,40}",
        code in prop_oneof![Just("invalid_grant"), Just("invalid_client"), Just("invalid_request")],
        status in prop_oneof![Just(400u16), Just(401)],
    ) {
        // TokenIDP: error.code is always empty; 401 is the client, 400 + "refresh token" the
        // grant.
        let mut err = Map::new();
        err.insert(spell(&["code"], c), json!(""));
        err.insert(spell(&["error"], c), json!(format!("Invalid refresh token. {msg}")));
        let mut outer = Map::new();
        outer.insert(spell(&["error"], c), Value::Object(err));
        let body = serde_json::to_vec(&outer).expect("json");
        match parse_token_response(Dialect::TokenIdp, status, &body) {
            Err(IdpError::Rejected { reason, .. }) => prop_assert_eq!(
                reason,
                if status == 401 { Rejection::InvalidClient } else { Rejection::InvalidGrant }
            ),
            other => prop_assert!(false, "expected a rejection, got {:?}", other),
        }
        // OAuth2: the RFC 6749 §5.2 code decides.
        let body = serde_json::to_vec(&json!({"error": code, "error_description": msg})).expect("json");
        let expected = match code {
            "invalid_grant" => Rejection::InvalidGrant,
            "invalid_client" => Rejection::InvalidClient,
            _ => Rejection::Other,
        };
        match parse_token_response(Dialect::OAuth2, status, &body) {
            Err(IdpError::Rejected { reason, .. }) => prop_assert_eq!(reason, expected),
            other => prop_assert!(false, "expected a rejection, got {:?}", other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        dialect in dialect(),
        status in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let result = parse_token_response(dialect, status, &body);
        check_classification(status, &result)?;
    }
}
