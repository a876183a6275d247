//! A session's claims, sealed as one JSON text (free-form values inside a positional binary
//! format) and parsed only when something reads them.
//!
//! The proxy path never does: a session carries its `sub` and `sid` apart, and the claims serve
//! `/auth/session`, identity headers of the routes that name them, and sessions sealed before
//! `sub` had a field of its own. Parsing them on every opening cost ~1k instructions of a
//! request whose session is not in the cache of opened sessions (BENCHMARKS.md).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

/// The claims: the text they were sealed as until read; then the parsed map (reading derefs).
#[derive(Clone, Default)]
pub struct Claims {
    /// As sealed; `None` once the map may have been changed, or when built from a map.
    text: Option<Box<str>>,
    map: OnceLock<Map<String, Value>>,
}

impl Claims {
    fn parsed(&self) -> &Map<String, Value> {
        // Authenticated bytes this proxy sealed: text that does not parse cannot come from a
        // cookie (it reads as no claims, as a session that had none).
        self.map.get_or_init(|| {
            self.text
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default()
        })
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(map: Map<String, Value>) -> Claims {
        Claims {
            text: None,
            map: OnceLock::from(map),
        }
    }
}

impl Deref for Claims {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        self.parsed()
    }
}

impl DerefMut for Claims {
    fn deref_mut(&mut self) -> &mut Map<String, Value> {
        self.parsed();
        self.text = None;
        self.map.get_mut().expect("parsed just now")
    }
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parsed().fmt(f)
    }
}

impl Serialize for Claims {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&Value::Object(self.parsed().clone()).to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Claims, D::Error> {
        let text = <&str>::deserialize(d)?;
        Ok(Claims {
            text: Some(text.into()),
            map: OnceLock::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealed(claims: &Claims) -> Claims {
        postcard::from_bytes(&postcard::to_allocvec(claims).expect("seal")).expect("open")
    }

    #[test]
    fn read_after_opening_as_they_were_sealed() {
        let mut map = Map::new();
        map.insert("name".into(), "Zoë \"Q\"".into());
        map.insert("groups".into(), json!(["a", "b"]));
        let opened = sealed(&Claims::from(map.clone()));
        assert!(opened.map.get().is_none(), "not parsed on opening");
        assert_eq!(*opened, map);
        // Sealed again unread, the text goes as it came.
        let again = sealed(&sealed(&Claims::from(map.clone())));
        assert_eq!(*again, map);
    }

    #[test]
    fn a_change_is_what_gets_sealed() {
        let mut map = Map::new();
        map.insert("sub".into(), "alice".into());
        map.insert("groups".into(), json!(["a"]));
        let mut opened = sealed(&Claims::from(map));
        opened.clear();
        assert!(opened.is_empty());
        assert!(
            sealed(&opened).is_empty(),
            "the cleared claims, not the text"
        );
        let mut opened = sealed(&Claims::from(Map::new()));
        opened.insert("sub".into(), "bob".into());
        assert_eq!(sealed(&opened)["sub"], "bob");
    }

    #[test]
    fn text_that_does_not_parse_reads_as_no_claims() {
        let claims = Claims {
            text: Some("{not json".into()),
            map: OnceLock::new(),
        };
        assert!(claims.is_empty());
        assert_eq!(format!("{claims:?}"), "{}");
    }
}
