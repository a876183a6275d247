//! Base64 (RFC 4648 §4 and §5), one implementation for the whole crate: the SIMD one the data
//! path needs for cookies, wrapped so call sites say which alphabet they mean.

/// URL-safe alphabet, no padding (cookies, PKCE, JWT segments, random tokens).
pub fn url_encode(bytes: impl AsRef<[u8]>) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// Decodes URL-safe, unpadded base64; `None` for anything else.
pub fn url_decode(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    base64_simd::URL_SAFE_NO_PAD.decode_to_vec(text).ok()
}

/// Standard alphabet, padded (HTTP Basic credentials, key specs).
pub fn std_encode(bytes: impl AsRef<[u8]>) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

/// Decodes standard, padded base64; `None` for anything else.
pub fn std_decode(text: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    base64_simd::STANDARD.decode_to_vec(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors_in_both_alphabets() {
        assert_eq!(std_encode("foobar"), "Zm9vYmFy");
        assert_eq!(std_encode("fo"), "Zm8=");
        assert_eq!(url_encode([0xfb, 0xff]), "-_8");
        assert_eq!(std_encode([0xfb, 0xff]), "+/8=");
        assert_eq!(url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(std_decode("Zm8=").as_deref(), Some(&b"fo"[..]));
        assert_eq!(url_decode("Zm8="), None, "no padding in the URL alphabet");
        assert_eq!(
            std_decode("Zm8"),
            None,
            "padding required in the standard one"
        );
        assert_eq!(url_decode("+/8"), None);
    }
}
