use super::*;
use crate::secret::AccessToken;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn session(id: &str, refresh: &str, access: &str, issued: u64) -> Session {
    Session {
        id: id.into(),
        refresh_token: RefreshToken::new(refresh),
        access_token: AccessToken::new(access),
        access_expires_at: issued + 60,
        access_issued_at: issued,
        scope: String::new(),
        claims: Default::default(),
        id_token: None,
        started_at: 1,
        sub: None,
        sid: None,
        last_used_at: 0,
        dpop: None,
        dpop_bound: false,
    }
}

#[test]
fn keys_share_one_hash_slot_and_name_no_token() {
    let keys = Keys::of(&RefreshToken::new("secret-refresh-token"));
    for key in [&keys.lease, &keys.result, &keys.spent] {
        assert!(key.contains(&format!("{{{}}}", keys.hash)), "{key}");
        assert!(!key.contains("secret-refresh-token"));
    }
    assert_eq!(keys.hash.len(), 32);
}

#[test]
fn a_result_counts_only_for_its_key_and_session_and_when_newer() {
    let ring = KeyRing::parse(K1).expect("ring");
    let old = session("alice", "rt", "at-1", 100);
    let keys = Keys::of(&old.refresh_token);
    let newer = session("alice", "rt-2", "at-2", 200);
    let sealed = ring.seal(&keys.aad("result", "alice"), &newer.to_bytes());
    assert!(open_result(&ring, &keys, &old, &sealed).is_some());
    // The same value copied under another session's key opens for neither.
    let bob = session("bob", "rt-b", "at-b", 100);
    let bob_keys = Keys::of(&bob.refresh_token);
    assert!(open_result(&ring, &bob_keys, &bob, &sealed).is_none());
    // An IdP that does not rotate: the result keeps the refresh token. It counts for a
    // request holding an older session, not for one that already holds it.
    let unrotated = session("alice", "rt", "at-2", 200);
    let sealed = ring.seal(&keys.aad("result", "alice"), &unrotated.to_bytes());
    assert!(open_result(&ring, &keys, &old, &sealed).is_some());
    assert!(open_result(&ring, &keys, &unrotated, &sealed).is_none());
}
