//! Pure time decisions: when to refresh, and when a new access token expires.

use crate::idp::{unverified_lifetime, TokenResponse};

/// Lifetime assumed when the IdP gives neither `expires_in` nor a JWT `exp`.
pub const DEFAULT_LIFETIME_SECS: u64 = 60;
/// Longest access-token lifetime believed (a day): an `expires_in` of `1e300` is a broken
/// answer, not a reason to never refresh (or to overflow).
pub const MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// Whether an access token valid from `issued_at` to `expires_at` must be refreshed at `now`
/// (all Unix seconds, local clock). Refreshes `skew` early, but never earlier than half-way
/// through the token's life: with a skew larger than the lifetime every request would refresh.
pub fn needs_refresh(issued_at: u64, expires_at: u64, now: u64, skew: u64) -> bool {
    let lifetime = expires_at.saturating_sub(issued_at);
    let early = skew.min(lifetime / 2);
    now >= expires_at.saturating_sub(early)
}

/// Local expiry of a freshly issued access token. The earlier of `expires_in` and the JWT's
/// own `exp - iat` wins; both are *durations*, applied to the local `now`, so a local clock
/// that disagrees with the IdP's does not make tokens look expired or eternal.
pub fn expires_at(response: &TokenResponse, now: u64) -> u64 {
    let from_jwt = unverified_lifetime(response.access_token.expose());
    let lifetime = match (response.expires_in, from_jwt) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => DEFAULT_LIFETIME_SECS,
    };
    now.saturating_add(lifetime.min(MAX_LIFETIME_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::AccessToken;

    #[test]
    fn refreshes_within_skew_of_expiry() {
        // 300 s token, 30 s skew: refresh from t = 270.
        assert!(!needs_refresh(0, 300, 269, 30));
        assert!(needs_refresh(0, 300, 270, 30));
        assert!(needs_refresh(0, 300, 10_000, 30));
    }

    #[test]
    fn skew_longer_than_the_lifetime_is_capped_at_half() {
        // 20 s token, 30 s skew: refresh at t = 10, not on every request.
        assert!(!needs_refresh(0, 20, 9, 30));
        assert!(needs_refresh(0, 20, 10, 30));
        assert!(
            needs_refresh(5, 5, 5, 30),
            "a zero-lifetime token is due at once"
        );
    }

    fn response(expires_in: Option<u64>, token: &str) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new(token),
            refresh_token: None,
            id_token: None,
            expires_in,
            scope: None,
            token_type: None,
        }
    }

    #[test]
    fn earlier_of_expires_in_and_jwt_lifetime() {
        let jwt = format!(
            "h.{}.s",
            crate::b64::url_encode(r#"{"iat":5000,"exp":5100}"#)
        );
        assert_eq!(expires_at(&response(Some(300), &jwt), 1000), 1100);
        assert_eq!(expires_at(&response(Some(50), &jwt), 1000), 1050);
        assert_eq!(expires_at(&response(None, &jwt), 1000), 1100);
        assert_eq!(expires_at(&response(Some(30), "opaque"), 1000), 1030);
        assert_eq!(
            expires_at(&response(None, "opaque"), 1000),
            1000 + DEFAULT_LIFETIME_SECS
        );
        assert_eq!(
            expires_at(&response(Some(u64::MAX), "opaque"), u64::MAX - 5),
            u64::MAX,
            "a broken expires_in neither overflows nor wraps into the past"
        );
        assert_eq!(
            expires_at(&response(Some(u64::MAX), "opaque"), 1000),
            1000 + MAX_LIFETIME_SECS
        );
    }
}
