//! Turning a granted (client, user, scopes) into tokens: the access-token and ID-token claims,
//! the stored refresh token, and the record of every secret issued.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::ids::{self, RandomUnavailable};
use super::options::{Client, User};
use super::state::{RefreshRecord, RefreshTokenState, Shared, State};

/// The ID token's `exp` is ten years after `iat`: a TokenIDP bug reproduced on purpose, so a
/// proxy that takes the session lifetime from the ID token is caught.
const ID_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The value of the access token's `aud` when an API scope was requested.
const API_AUDIENCE: &str = "api";

/// What one successful grant produced, before it is shaped for the wire.
#[derive(Clone, Debug)]
pub(super) struct Minted {
    pub access_token: String,
    /// `None` when the grant has no `offline_access`.
    pub refresh_token: Option<String>,
    pub id_token: String,
    pub expires_in: u64,
    /// `expireAt`, RFC 3339 UTC.
    pub expire_at: String,
    pub user_id: u64,
    pub scope: String,
}

/// Minting failed (OS randomness or signing): answered as TokenIDP's unhandled-error 500.
#[derive(Debug)]
pub(super) struct MintFailed;

impl From<RandomUnavailable> for MintFailed {
    fn from(_: RandomUnavailable) -> Self {
        MintFailed
    }
}

impl From<jsonwebtoken::errors::Error> for MintFailed {
    fn from(_: jsonwebtoken::errors::Error) -> Self {
        MintFailed
    }
}

/// Signs the access and ID tokens, and when `refresh_scopes` is given stores a new refresh
/// token bound to this client, user and those scopes. Runs under the state lock, so a grant is
/// checked, minted and stored as one step; nothing is stored if signing fails.
pub(super) fn mint(
    shared: &Shared,
    st: &mut State,
    client: &Client,
    user: &User,
    access_scopes: &[String],
    refresh_scopes: Option<&[String]>,
    nonce: Option<&str>,
) -> Result<Minted, MintFailed> {
    let iat = unix_now();
    let ttl = st.access_token_ttl.as_secs();
    let mut access = Map::new();
    access.insert("sub".into(), json!(subject(user)));
    access.insert("jti".into(), json!(ids::uuid()?));
    access.insert("client_id".into(), json!(client.client_id));
    access.insert("tenant_id".into(), json!("default"));
    access.insert("user_id".into(), json!(user.id.to_string()));
    access.insert("scope".into(), json!(access_scopes.join(" ")));
    access.insert("unique_name".into(), json!(user.login));
    access.insert("role".into(), json!("User"));
    access.insert("iss".into(), json!(shared.url));
    access.insert("iat".into(), json!(iat));
    access.insert("nbf".into(), json!(iat));
    access.insert("exp".into(), json!(iat + ttl));
    // `aud` only when an API scope (one with a dot, like `api.read`) was asked for.
    if access_scopes.iter().any(|s| s.contains('.')) {
        access.insert("aud".into(), json!(API_AUDIENCE));
    }
    let access_token = shared.signer.sign(&access, st.kid_mode)?;

    // ID token on every grant, refreshes included; no `nonce`, no `auth_time` (quirks).
    let id = json!({
        "iss": shared.url,
        "sub": subject(user),
        "aud": client.client_id,
        "name": user.name,
        "email": user.email,
        "iat": iat,
        "exp": iat + ID_TOKEN_LIFETIME.as_secs(),
    });
    let mut id = id.as_object().cloned().unwrap_or_default();
    insert_some(&mut id, "nonce", nonce);
    let id_token = shared.signer.sign(&id, st.kid_mode)?;

    let refresh_token = match refresh_scopes {
        Some(scopes) => {
            let token = ids::refresh_token()?;
            st.refresh_tokens.insert(
                token.clone(),
                RefreshRecord {
                    client_id: client.client_id.clone(),
                    user_id: user.id,
                    scopes: scopes.to_vec(),
                    // Sliding window: each rotation starts a fresh one, no absolute cap.
                    expires_at: Instant::now() + st.refresh_token_ttl,
                    status: RefreshTokenState::Active,
                },
            );
            Some(token)
        }
        None => None,
    };

    st.issued_secrets.push(access_token.clone());
    st.issued_secrets.push(id_token.clone());
    if let Some(t) = &refresh_token {
        st.issued_secrets.push(t.clone());
    }
    Ok(Minted {
        access_token,
        refresh_token,
        id_token,
        expires_in: ttl,
        expire_at: rfc3339(iat + ttl),
        user_id: user.id,
        scope: access_scopes.join(" "),
    })
}

/// Whether a grant with these scopes gets a refresh token: only with `offline_access`.
pub(super) fn wants_refresh_token(scopes: &[String]) -> bool {
    scopes.iter().any(|s| s == "offline_access")
}

/// `sub` of both tokens: `usr:<id>` (while `/userinfo` says the bare integer).
fn subject(user: &User) -> String {
    format!("usr:{}", user.id)
}

/// Seconds since the epoch; JWT times are wall-clock, so this cannot use `tokio::time`.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, H. Hinnant).
pub(super) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Values for `Value::Null`-free objects: the wire leaves null fields out.
pub(super) fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), Value::String(v.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_769_949_000), "2026-02-01T12:30:00Z");
    }
}
