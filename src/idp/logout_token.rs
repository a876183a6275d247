//! Logout-token validation, as OpenID Connect Back-Channel Logout 1.0 §2.6 says: a JWT signed
//! by a key of the provider's JWKS (the same kid-tolerant lookup as ID tokens, asymmetric
//! algorithms only), `iss` the provider's issuer, `aud` our client id, `exp` in the future when
//! present, `iat` recent ([`MAX_AGE`], with [`LEEWAY`] for clocks), the back-channel logout
//! event in `events`, `sid` and/or `sub`, no `nonce`, a `jti` (replays are the caller's check),
//! and a `typ` header, when present, of `logout+jwt` (or plain `JWT`).

use super::{IdTokenError, IdpClient};
use serde_json::{Map, Value};

pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Oldest `iat` accepted, in seconds: the provider sends the token as the session ends.
pub const MAX_AGE: u64 = 300;
/// Clock difference tolerated with the provider, in seconds (both ways).
pub const LEEWAY: u64 = 60;

/// What a valid logout token ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    pub iat: u64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LogoutTokenError {
    #[error("{0}")]
    Jwt(#[from] IdTokenError),
    #[error("the logout token's typ header is {0:?}, not logout+jwt")]
    Type(String),
    #[error(
        "the provider's issuer is unknown (set idp.issuer or use discovery): iss cannot be checked"
    )]
    NoIssuer,
    #[error("the logout token has no {0}")]
    Missing(&'static str),
    #[error("the logout token carries a nonce (it would be an ID token)")]
    Nonce,
    #[error("the logout token's events claim names no back-channel logout event")]
    NoEvent,
    #[error("the logout token was issued too long ago or in the future (iat)")]
    Stale,
}

impl LogoutTokenError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            LogoutTokenError::Jwt(IdTokenError::BadSignature) => "signature",
            LogoutTokenError::Jwt(IdTokenError::Claims(_)) => "claims",
            LogoutTokenError::Jwt(IdTokenError::Jwks(_)) => "jwks",
            LogoutTokenError::Jwt(_) => "malformed",
            LogoutTokenError::Type(_) => "typ",
            LogoutTokenError::NoIssuer => "no_issuer",
            LogoutTokenError::Missing(_) => "missing_claim",
            LogoutTokenError::Nonce => "nonce",
            LogoutTokenError::NoEvent => "event",
            LogoutTokenError::Stale => "iat",
        }
    }
}

impl IdpClient {
    /// Validates a logout token at `now` (Unix seconds).
    pub async fn verify_logout_token(
        &self,
        token: &str,
        now: u64,
    ) -> Result<LogoutToken, LogoutTokenError> {
        if self.metadata().and_then(|m| m.issuer.as_deref()).is_none() {
            return Err(LogoutTokenError::NoIssuer);
        }
        let (header, claims) = self
            .verify_jwt(token, |validation| {
                validation.set_audience(&[self.config().client_id.as_str()]);
                validation.leeway = LEEWAY;
                // `exp` is checked when present (Back-Channel Logout 1.0 final requires it;
                // earlier drafts did not): `iat` bounds the age either way.
                validation.required_spec_claims = ["iss", "aud"].map(String::from).into();
            })
            .await?;
        check_claims(header.typ.as_deref(), &claims, now)
    }
}

/// The checks after the signature, `iss`, `aud` and `exp` (pure).
fn check_claims(
    typ: Option<&str>,
    claims: &Map<String, Value>,
    now: u64,
) -> Result<LogoutToken, LogoutTokenError> {
    if let Some(typ) = typ {
        let bare = typ.strip_prefix("application/").unwrap_or(typ);
        if !bare.eq_ignore_ascii_case("logout+jwt") && !bare.eq_ignore_ascii_case("JWT") {
            return Err(LogoutTokenError::Type(typ.to_string()));
        }
    }
    if claims.contains_key("nonce") {
        return Err(LogoutTokenError::Nonce);
    }
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(EVENT))
        .is_some_and(Value::is_object);
    if !has_event {
        return Err(LogoutTokenError::NoEvent);
    }
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (sub, sid) = (text("sub"), text("sid"));
    if sub.is_none() && sid.is_none() {
        return Err(LogoutTokenError::Missing("sid or sub"));
    }
    let jti = text("jti").ok_or(LogoutTokenError::Missing("jti"))?;
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or(LogoutTokenError::Missing("iat"))?;
    if iat > now + LEEWAY || iat + MAX_AGE + LEEWAY < now {
        return Err(LogoutTokenError::Stale);
    }
    Ok(LogoutToken { sub, sid, jti, iat })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    fn valid() -> Value {
        json!({"sub": "u", "sid": "s", "jti": "j", "iat": 1000, "events": {EVENT: {}}})
    }

    #[test]
    fn the_claims_the_spec_requires() {
        let ok = check_claims(Some("logout+jwt"), &claims(valid()), 1000).expect("valid");
        assert_eq!(ok.sid.as_deref(), Some("s"));
        let cases: Vec<(Option<&str>, Value, u64, &str)> = vec![
            (Some("at+jwt"), valid(), 1000, "typ"),
            (
                None,
                json!({"sub": "u", "jti": "j", "iat": 1000, "nonce": "n", "events": {EVENT: {}}}),
                1000,
                "nonce",
            ),
            (
                None,
                json!({"sub": "u", "jti": "j", "iat": 1000}),
                1000,
                "event",
            ),
            (
                None,
                json!({"sub": "u", "jti": "j", "iat": 1000, "events": {"other": {}}}),
                1000,
                "event",
            ),
            (
                None,
                json!({"sub": "u", "jti": "j", "iat": 1000, "events": {EVENT: "x"}}),
                1000,
                "event",
            ),
            (
                None,
                json!({"jti": "j", "iat": 1000, "events": {EVENT: {}}}),
                1000,
                "missing_claim",
            ),
            (
                None,
                json!({"sub": "", "jti": "j", "iat": 1000, "events": {EVENT: {}}}),
                1000,
                "missing_claim",
            ),
            (
                None,
                json!({"sub": "u", "iat": 1000, "events": {EVENT: {}}}),
                1000,
                "missing_claim",
            ),
            (
                None,
                json!({"sub": "u", "jti": "j", "events": {EVENT: {}}}),
                1000,
                "missing_claim",
            ),
            (None, valid(), 1000 + MAX_AGE + LEEWAY + 1, "iat"),
            (None, valid(), 1000 - LEEWAY - 1, "iat"),
        ];
        for (typ, c, now, reason) in cases {
            let e = check_claims(typ, &claims(c.clone()), now).expect_err(&c.to_string());
            assert_eq!(e.reason(), reason, "{c}");
        }
        assert!(check_claims(Some("JWT"), &claims(valid()), 1000 + MAX_AGE).is_ok());
        assert!(check_claims(Some("application/logout+jwt"), &claims(valid()), 1000).is_ok());
    }
}
