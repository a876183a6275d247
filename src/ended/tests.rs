use super::*;
use crate::secret::{AccessToken, RefreshToken};

const LIFETIME: u64 = 1000;

fn record(cap: usize) -> EndedSessions {
    EndedSessions::new(cap, None, Arc::new(Metrics::new()))
}

fn session(id: &str, sub: &str, sid: &str, started_at: u64) -> Session {
    Session {
        id: id.into(),
        refresh_token: RefreshToken::new("r"),
        access_token: AccessToken::new("a"),
        access_expires_at: 0,
        access_issued_at: started_at,
        scope: String::new(),
        claims: Default::default(),
        id_token: None,
        started_at,
        sub: Some(sub.into()),
        sid: Some(sid.into()),
        last_used_at: started_at,
        dpop: None,
        dpop_bound: false,
    }
}

#[test]
fn a_logout_ends_that_session_until_its_absolute_end() {
    let ended = record(10);
    let s = session("a", "alice", "sid-1", 100);
    assert_eq!(ended.check(&s, 150), None);
    ended.apply(Entry::session("a", 100, LIFETIME, 150), 150);
    assert_eq!(ended.check(&s, 150), Some(Reason::Logout));
    assert_eq!(ended.check(&s, 1099), Some(Reason::Logout));
    assert_eq!(ended.check(&s, 1100), None, "past its absolute end");
    assert_eq!(ended.check(&session("b", "alice", "sid-1", 100), 150), None);
    // Expired entries go when the next one arrives.
    ended.apply(Entry::session("c", 2000, LIFETIME, 2000), 2000);
    assert_eq!(ended.len(), 1);
}

#[test]
fn a_sid_ends_every_session_of_that_idp_session_and_only_those() {
    let ended = record(10);
    ended.apply(
        Entry::named(Kind::Sid, "sid-1", Reason::Backchannel, LIFETIME, 200),
        200,
    );
    assert_eq!(
        ended.check(&session("a", "alice", "sid-1", 100), 200),
        Some(Reason::Backchannel)
    );
    assert_eq!(
        ended.check(&session("b", "alice", "sid-1", 300), 300),
        Some(Reason::Backchannel),
        "an IdP session that ended ends whatever started in it"
    );
    assert_eq!(ended.check(&session("c", "alice", "sid-2", 100), 200), None);
    let mut no_sid = session("d", "alice", "x", 100);
    no_sid.sid = None;
    assert_eq!(ended.check(&no_sid, 200), None);
}

#[test]
fn a_sub_ends_the_sessions_begun_by_then_not_later_logins() {
    let ended = record(10);
    ended.apply(
        Entry::named(Kind::Sub, "alice", Reason::Operator, LIFETIME, 200),
        200,
    );
    assert_eq!(
        ended.check(&session("a", "alice", "s1", 100), 250),
        Some(Reason::Operator)
    );
    assert_eq!(
        ended.check(&session("b", "alice", "s2", 200), 250),
        Some(Reason::Operator),
        "begun in the same second: ended"
    );
    assert_eq!(ended.check(&session("c", "alice", "s3", 201), 250), None);
    assert_eq!(ended.check(&session("d", "bob", "s1", 100), 250), None);
    // A later end of the same user moves the line.
    ended.apply(
        Entry::named(Kind::Sub, "alice", Reason::Operator, LIFETIME, 300),
        300,
    );
    assert_eq!(
        ended.check(&session("c", "alice", "s3", 201), 300),
        Some(Reason::Operator)
    );
    assert_eq!(ended.len(), 1);
    // Sealed before sessions carried `sub`: its claims name the user.
    let mut older = session("e", "x", "s4", 100);
    older.sub = None;
    older.claims.insert("sub".into(), "alice".into());
    assert_eq!(ended.check(&older, 300), Some(Reason::Operator));
}

#[test]
fn bounded_dropping_the_soonest_to_end() {
    let ended = record(3);
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        ended.apply(Entry::session(id, i as u64, LIFETIME, 0), 0);
    }
    assert_eq!(ended.len(), 3);
    assert_eq!(
        ended.check(&session("a", "u", "s", 0), 1),
        None,
        "the soonest to end went first"
    );
    assert!(ended.check(&session("d", "u", "s", 3), 1).is_some());
    // Ending the same session again does not grow the record.
    ended.apply(Entry::session("d", 3, LIFETIME, 1), 1);
    assert_eq!(ended.len(), 3);
}

#[tokio::test]
async fn a_logout_token_is_used_once_and_a_revocation_made_once() {
    let ended = record(10);
    assert!(ended.first_use("iss\0jti-1", 500, 100).await);
    assert!(!ended.first_use("iss\0jti-1", 500, 200).await, "replayed");
    assert!(ended.first_use("iss\0jti-2", 500, 200).await);
    assert!(
        ended.first_use("iss\0jti-1", 900, 600).await,
        "forgotten once it cannot be accepted anyway"
    );
    assert!(ended.first_revocation("a", 100).await);
    assert!(!ended.first_revocation("a", 100).await);
}
