//! Secret newtypes: tokens, codes and client secrets that must never reach a log line.
//!
//! Each type prints `[redacted]` under `Debug`, has no `Display`, and hands out its value only
//! through `.expose()`, so every place that touches the raw bytes is greppable. Serde is
//! transparent because sessions are serialized *inside* the sealed cookie.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a raw value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The raw value, for the one place that must send it on the wire.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

/// A token sealed in the session: kept as bytes, so that opening a session (every request
/// that misses the cache of opened sessions) does not check kilobytes of tokens for UTF-8
/// that only this proxy wrote, from text, into authenticated bytes (BENCHMARKS.md, "Opening
/// a session"). Serialized as text: postcard writes a string and a byte string alike (a
/// length, then the bytes), so the sealed format is unchanged; a human-readable format
/// (JSON) reads and writes a string.
macro_rules! secret_token {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(Vec<u8>);

        impl $name {
            /// Wraps a raw value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into().into_bytes())
            }

            /// The raw value as text, for the places that send it in a form or a JSON body
            /// (refresh, revocation, logout). Checked here, not when a session is opened: a
            /// value that is not UTF-8 (which no version of this proxy seals) reads as empty,
            /// which the IdP refuses.
            pub fn expose(&self) -> &str {
                std::str::from_utf8(&self.0).unwrap_or_default()
            }

            /// The raw bytes: for a header value (checked as one) or a comparison or hash.
            pub fn expose_bytes(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.serialize_str(self.expose())
                } else {
                    serializer.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    String::deserialize(deserializer).map(Self::new)
                } else {
                    deserializer.deserialize_bytes(TokenBytes).map(Self)
                }
            }
        }
    };
}

/// Reads a sealed token's bytes as they are (a string or a byte string).
struct TokenBytes;

impl<'de> serde::de::Visitor<'de> for TokenBytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Vec<u8>, E> {
        Ok(v.into_bytes())
    }
}

secret_token!(
    /// An OAuth access token (often a JWT), sent upstream as `Authorization: Bearer`.
    AccessToken
);
secret_token!(
    /// An OAuth refresh token; only ever sent to the IdP's token endpoint.
    RefreshToken
);
secret_token!(
    /// An OpenID Connect ID token, kept for `id_token_hint` at logout.
    IdToken
);
secret_string!(
    /// The OAuth client secret, read from the environment or a mounted file.
    ClientSecret
);
secret_string!(
    /// A client assertion (RFC 7523 §2.2): a JWT that authenticates this client at the IdP,
    /// signed here (`private_key_jwt`) or minted by the platform (a workload identity token).
    ClientAssertion
);
secret_string!(
    /// A Redis password (coordination), read from the environment, a mounted file or the URL.
    RedisPassword
);
secret_string!(
    /// A one-time authorization code from the IdP's redirect.
    AuthCode
);
secret_string!(
    /// A PKCE code verifier (RFC 7636), kept in the sealed login-flow cookie.
    CodeVerifier
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let values = [
            format!("{:?}", AccessToken::new("at-secret-1")),
            format!("{:?}", RefreshToken::new("rt-secret-2")),
            format!("{:?}", IdToken::new("id-secret-3")),
            format!("{:?}", ClientSecret::new("cs-secret-4")),
            format!("{:?}", AuthCode::new("code-secret-5")),
            format!("{:?}", CodeVerifier::new("cv-secret-6")),
            format!("{:?}", RedisPassword::new("redis-secret-7")),
            format!("{:?}", ClientAssertion::new("assertion-secret-8")),
        ];
        for v in &values {
            assert!(v.contains("[redacted]"), "{v}");
            assert!(!v.contains("secret-"), "{v}");
        }
        assert_eq!(RefreshToken::new("x").expose(), "x");
    }

    /// A token is sealed as the text it was: a cookie sealed by an earlier version (which
    /// held tokens as `String`) opens, and one sealed now opens in it.
    #[test]
    fn sealed_exactly_as_text() {
        let text = "eyJ.a+/=_-~";
        let sealed = postcard::to_allocvec(&RefreshToken::new(text)).expect("seal");
        assert_eq!(sealed, postcard::to_allocvec(text).expect("seal text"));
        let back: IdToken = postcard::from_bytes(&sealed).expect("open");
        assert_eq!(back.expose(), text);
        let old: String = postcard::from_bytes(&sealed).expect("open as text");
        assert_eq!(old, text);
        // Not UTF-8 (no version seals that): kept as bytes, and no text to send.
        let back: AccessToken = postcard::from_bytes(&[3, 0xff, b'a', b'b']).expect("open");
        assert_eq!(back.expose_bytes(), [0xff, b'a', b'b']);
        assert_eq!(back.expose(), "");
    }

    #[test]
    fn serde_is_transparent_inside_the_sealed_session() {
        let json = serde_json::to_string(&AccessToken::new("abc")).expect("serialize");
        assert_eq!(json, "\"abc\"");
        let back: AccessToken = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back.expose(), "abc");
    }
}
