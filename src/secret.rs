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

secret_string!(
    /// An OAuth access token (often a JWT), sent upstream as `Authorization: Bearer`.
    AccessToken
);
secret_string!(
    /// An OAuth refresh token; only ever sent to the IdP's token endpoint.
    RefreshToken
);
secret_string!(
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

    #[test]
    fn serde_is_transparent_inside_the_sealed_session() {
        let json = serde_json::to_string(&AccessToken::new("abc")).expect("serialize");
        assert_eq!(json, "\"abc\"");
        let back: AccessToken = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back.expose(), "abc");
    }
}
