//! Random identifiers in TokenIDP's formats: UUIDs (codes, `jti`, correlation ids) and
//! 64-byte standard-Base64 refresh tokens.

/// The OS random source failed. Handlers turn it into TokenIDP's PascalCase 500.
#[derive(Debug)]
pub(super) struct RandomUnavailable;

fn random_bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|_| RandomUnavailable)?;
    Ok(buf)
}

/// A random (version 4) UUID in its usual hyphenated lower-case form.
pub(super) fn uuid() -> Result<String, RandomUnavailable> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// A correlation id for error bodies; never fails, because an error answer must still go out.
pub(super) fn correlation_id() -> String {
    uuid().unwrap_or_else(|_| "00000000-0000-0000-0000-000000000000".to_owned())
}

/// A TokenIDP refresh token: 64 random bytes in *standard* Base64 (88 characters, with `+`,
/// `/` and `=`), not a UUID as the guide suggests. Kept that way on purpose: a client that
/// forgets to percent-encode it in a form body turns `+` into a space and breaks.
pub(super) fn refresh_token() -> Result<String, RandomUnavailable> {
    Ok(crate::b64::std_encode(random_bytes::<64>()?))
}

/// An opaque IdP browser-session id (the login form's cookie).
pub(super) fn session_id() -> Result<String, RandomUnavailable> {
    Ok(crate::b64::url_encode(random_bytes::<32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid().expect("random");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn refresh_token_is_88_standard_base64_chars() {
        let t = refresh_token().expect("random");
        assert_eq!(t.len(), 88);
        assert!(t.ends_with("=="));
        assert_eq!(crate::b64::std_decode(&t).expect("base64").len(), 64);
    }
}
