//! The IdP's answer to a refresh, merged into the session it refreshed: a pure function of the
//! old session, the answer and the time, so every rule of what a refresh keeps and replaces is
//! in one place and tested without a network.

use super::timing::expires_at;
use crate::idp::TokenResponse;
use crate::session::Session;

/// The session after a refresh.
#[derive(Debug)]
pub struct Merged {
    pub session: Session,
    /// The IdP issued a new refresh token: the old one is spent.
    pub rotated: bool,
}

/// `old` refreshed with `answer` at `now` (Unix seconds, local clock).
///
/// - The access token and its expiry are the answer's (expiry as `timing::expires_at` rules).
/// - No new refresh token means "keep the one you have" (RFC 6749 §6); one equal to the old
///   is not a rotation.
/// - The scope is the answer's when it names one, else the old one (RFC 6749 §5.1).
/// - An ID token is kept only by sessions that keep one (for `id_token_hint`); a new one
///   replaces it, none keeps the old.
/// - Everything that identifies the session (its id, claims, `sub`/`sid`, start) is
///   unchanged: a refresh never extends the absolute lifetime. It counts as a use (idle timeout).
pub fn merge(old: Session, answer: TokenResponse, now: u64) -> Merged {
    let rotated = answer
        .refresh_token
        .as_ref()
        .is_some_and(|new| new.expose_bytes() != old.refresh_token.expose_bytes());
    let bound = answer.dpop_bound();
    let session = Session {
        access_expires_at: expires_at(&answer, now),
        access_issued_at: now,
        access_token: answer.access_token,
        refresh_token: answer.refresh_token.unwrap_or(old.refresh_token),
        scope: answer.scope.unwrap_or(old.scope),
        id_token: if old.id_token.is_some() {
            answer.id_token.or(old.id_token)
        } else {
            None
        },
        // A refresh happens for a request: the session is in use.
        last_used_at: now,
        // Bound when the IdP says so for this token (the key itself stays the session's).
        dpop_bound: old.dpop.is_some() && bound,
        ..old
    };
    Merged { session, rotated }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{AccessToken, IdToken, RefreshToken};

    fn old() -> Session {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), "usr:42".into());
        Session {
            id: "id-1".into(),
            refresh_token: RefreshToken::new("rt-old"),
            access_token: AccessToken::new("at-old"),
            access_expires_at: 100,
            access_issued_at: 40,
            scope: "openid offline_access".into(),
            claims: claims.into(),
            id_token: Some(IdToken::new("idt-old")),
            started_at: 10,
            sub: None,
            sid: None,
            last_used_at: 0,
            dpop: None,
            dpop_bound: false,
        }
    }

    fn answer(refresh: Option<&str>) -> TokenResponse {
        TokenResponse {
            access_token: AccessToken::new("at-new"),
            refresh_token: refresh.map(RefreshToken::new),
            id_token: None,
            expires_in: Some(300),
            scope: None,
            token_type: Some("Bearer".into()),
        }
    }

    #[test]
    fn a_rotation_replaces_both_tokens_and_keeps_the_session_identity() {
        let merged = merge(old(), answer(Some("rt-new")), 1_000);
        assert!(merged.rotated);
        let s = merged.session;
        assert_eq!(s.access_token.expose(), "at-new");
        assert_eq!(s.refresh_token.expose(), "rt-new");
        assert_eq!((s.access_issued_at, s.access_expires_at), (1_000, 1_300));
        assert_eq!((s.id.as_str(), s.started_at), ("id-1", 10));
        assert_eq!(s.claims["sub"], "usr:42");
        assert_eq!(s.scope, "openid offline_access");
    }

    #[test]
    fn no_new_refresh_token_keeps_the_old_one_and_is_no_rotation() {
        let merged = merge(old(), answer(None), 1_000);
        assert!(!merged.rotated);
        assert_eq!(merged.session.refresh_token.expose(), "rt-old");
        let same = merge(old(), answer(Some("rt-old")), 1_000);
        assert!(!same.rotated, "the same token again is not a rotation");
    }

    #[test]
    fn scope_and_id_token_follow_the_answer_only_when_it_has_them() {
        let mut a = answer(None);
        a.scope = Some("openid".into());
        a.id_token = Some(IdToken::new("idt-new"));
        let s = merge(old(), a, 1_000).session;
        assert_eq!(s.scope, "openid");
        assert_eq!(s.id_token.as_ref().map(|t| t.expose()), Some("idt-new"));
        let kept = merge(old(), answer(None), 1_000).session;
        assert_eq!(kept.id_token.as_ref().map(|t| t.expose()), Some("idt-old"));
        let mut without = old();
        without.id_token = None;
        let mut a = answer(None);
        a.id_token = Some(IdToken::new("idt-new"));
        assert!(
            merge(without, a, 1_000).session.id_token.is_none(),
            "a session that keeps no ID token does not start keeping one"
        );
    }

    #[test]
    fn a_broken_lifetime_is_capped() {
        let mut a = answer(None);
        a.expires_in = Some(u64::MAX);
        let s = merge(old(), a, 1_000).session;
        assert_eq!(
            s.access_expires_at,
            1_000 + super::super::timing::MAX_LIFETIME_SECS
        );
    }

    #[test]
    fn the_dpop_key_stays_and_binding_follows_the_answers_token_type() {
        let key = crate::dpop::DpopKey::generate().expect("key");
        let mut bound_session = old();
        bound_session.dpop = Some(key.clone());
        bound_session.dpop_bound = true;
        let mut dpop_answer = answer(Some("rt-new"));
        dpop_answer.token_type = Some("dpop".into());
        let merged = merge(bound_session.clone(), dpop_answer, 1_000).session;
        assert!(merged.dpop_bound, "token_type DPoP, any case");
        assert_eq!(merged.dpop.expect("key").thumbprint(), key.thumbprint());
        // A Bearer answer is used as Bearer (never a DPoP header around an unbound token);
        // the key stays for the next refresh.
        let merged = merge(bound_session, answer(None), 1_000).session;
        assert!(!merged.dpop_bound);
        assert!(merged.dpop.is_some());
        // No key, no binding, whatever the answer says.
        let mut stray = answer(None);
        stray.token_type = Some("DPoP".into());
        assert!(!merge(old(), stray, 1_000).session.dpop_bound);
    }
}
