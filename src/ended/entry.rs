//! One entry of the record of ended sessions: what it names (a session, an IdP session, a
//! user), since when, until when, and why. Entries name digests, never the value: the record
//! (and Redis) holds no session id, `sid` or `sub`.

use std::fmt;

/// SHA-256 of a label, the kind and the value, cut to 128 bits: the same on every replica and
/// for the `sessions end` command whatever their keys.
pub type Digest = [u8; 16];

/// What an entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// One session of this proxy (its random id, fixed at login): `POST /auth/logout`.
    Session,
    /// Every session that logged in within one IdP session (the ID token's `sid`).
    Sid,
    /// Every session of one user (the ID token's `sub`) that began at or before the entry's `at`.
    Sub,
}

impl Kind {
    fn code(self) -> char {
        match self {
            Kind::Session => 's',
            Kind::Sid => 'i',
            Kind::Sub => 'u',
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            Kind::Session => 0,
            Kind::Sid => 1,
            Kind::Sub => 2,
        }
    }
}

/// Why a session was ended (the metric label of its refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `POST /auth/logout` (on any replica).
    Logout,
    /// A back-channel logout token from the IdP.
    Backchannel,
    /// `token-handler sessions end`.
    Operator,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Logout => "logout",
            Reason::Backchannel => "backchannel",
            Reason::Operator => "operator",
        }
    }

    fn parse(s: &str) -> Option<Reason> {
        match s {
            "logout" => Some(Reason::Logout),
            "backchannel" => Some(Reason::Backchannel),
            "operator" => Some(Reason::Operator),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub digest: Digest,
    /// Unix seconds at which it was ended (for [`Kind::Sub`]: sessions begun later live on).
    pub at: u64,
    /// Unix seconds until which it is remembered: past it, no session it names can open anyway.
    pub until: u64,
    pub reason: Reason,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("kind", &self.kind)
            .field("at", &self.at)
            .field("until", &self.until)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// Session `id` (started at `started_at`), logged out at `now`.
    pub fn session(id: &str, started_at: u64, lifetime: u64, now: u64) -> Entry {
        Entry {
            kind: Kind::Session,
            digest: digest(Kind::Session, id),
            at: now,
            until: started_at.saturating_add(lifetime),
            reason: Reason::Logout,
        }
    }

    /// Every session of IdP session `sid` or (with `Kind::Sub`) of user `sub` begun by `now`.
    /// Such a session began at most `lifetime` ago: it cannot open past `now + lifetime`.
    pub fn named(kind: Kind, value: &str, reason: Reason, lifetime: u64, now: u64) -> Entry {
        Entry {
            kind,
            digest: digest(kind, value),
            at: now,
            until: now.saturating_add(lifetime),
            reason,
        }
    }

    /// The entry as one Redis stream value: `kind:hex digest:at:until:reason`.
    pub fn encode(&self) -> String {
        let hex: String = self.digest.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}:{hex}:{}:{}:{}",
            self.kind.code(),
            self.at,
            self.until,
            self.reason.as_str()
        )
    }

    pub fn decode(text: &str) -> Option<Entry> {
        let mut parts = text.split(':');
        let kind = match parts.next()? {
            "s" => Kind::Session,
            "i" => Kind::Sid,
            "u" => Kind::Sub,
            _ => return None,
        };
        let hex = parts.next()?;
        if hex.len() != 32 {
            return None;
        }
        let mut digest = [0u8; 16];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let at = parts.next()?.parse().ok()?;
        let until = parts.next()?.parse().ok()?;
        let reason = Reason::parse(parts.next()?)?;
        parts.next().is_none().then_some(Entry {
            kind,
            digest,
            at,
            until,
            reason,
        })
    }
}

/// The label is short so that values up to 44 bytes (a UUID `sid` or `sub` included) hash in
/// one SHA-256 block: the check runs on every request while the record holds entries.
pub fn digest(kind: Kind, value: &str) -> Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"th-ended1\0");
    ctx.update(&[kind.code() as u8]);
    ctx.update(value.as_bytes());
    ctx.finish().as_ref()[..16]
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let e = Entry::named(Kind::Sub, "alice", Reason::Operator, 100, 1000);
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert!(!e.encode().contains("alice"));
        let s = Entry::session("id", 900, 100, 950);
        assert_eq!((s.until, s.reason), (1000, Reason::Logout));
        assert_eq!(Entry::decode(&s.encode()), Some(s));
        for bad in [
            "",
            "x:00000000000000000000000000000000:1:2:logout",
            "s:0000:1:2:logout",
            "s:0000000000000000000000000000000g:1:2:logout",
            "s:00000000000000000000000000000000:1:2:nope",
            "s:00000000000000000000000000000000:1:2:logout:more",
        ] {
            assert_eq!(Entry::decode(bad), None, "{bad}");
        }
        assert_ne!(digest(Kind::Sid, "a"), digest(Kind::Sub, "a"));
    }
}
