//! Request paths as the proxy decides on them and forwards them: one rule for every request.
//!
//! Access decisions (protected or public, the proxy's own endpoints) are made on the path an
//! upstream router acts on, not on the raw bytes, so that no spelling of a path can be judged
//! public here and routed to a protected handler there (`/api/public/../admin`,
//! `/api/public/%2e%2e/admin`, `/%61pi/admin`, `//api/admin`, `/api/public;/../admin`).
//!
//! The rule, like Envoy's `normalize_path` + `path_with_escaped_slashes_action: REJECT`:
//! - unreserved characters written as escapes are decoded (RFC 3986 §6.2.2.2: `%61` → `a`,
//!   `%2E` → `.`); the path is forwarded in that form, other escapes kept as they came;
//! - refused with 400, because servers disagree on what they mean: a `.` or `..` segment
//!   (in any spelling, also before a `;` parameter: `/..;/`), an empty segment (`//`) other
//!   than a trailing slash, an encoded `/` or `\`, a literal `\`, control characters, a
//!   malformed escape, and escapes of `.` `/` `\` `%` or controls one decoding deeper
//!   (`%252e`), which servers that decode twice would resolve;
//! - the matching view is the path fully percent-decoded (what routers compare), and a
//!   segment ends at `/` or at `;` (path parameters, which Tomcat and Spring strip).

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// Not origin-form (`/…`): `*`, or nothing.
    NotAbsolute,
    DotSegment,
    EmptySegment,
    EncodedSlash,
    Backslash,
    ControlCharacter,
    BadEscape,
    /// An escape of `.`, `/`, `\`, `%` or a control character behind a `%25`.
    DoubleEncoded,
}

impl PathRefusal {
    pub fn message(self) -> &'static str {
        match self {
            PathRefusal::NotAbsolute => "the request path must start with /",
            PathRefusal::DotSegment => "the request path has a . or .. segment",
            PathRefusal::EmptySegment => "the request path has an empty segment (//)",
            PathRefusal::EncodedSlash => "the request path has an encoded / or \\",
            PathRefusal::Backslash => "the request path has a backslash",
            PathRefusal::ControlCharacter => "the request path has a control character",
            PathRefusal::BadEscape => "the request path has a malformed percent-escape",
            PathRefusal::DoubleEncoded => "the request path is percent-encoded twice",
        }
    }
}

/// A request path that passed the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath<'a> {
    /// What is forwarded upstream: unreserved escapes decoded, the rest as received.
    pub forward: Cow<'a, str>,
    /// Fully percent-decoded: what routes are matched on.
    pub decoded: Cow<'a, [u8]>,
}

impl NormalPath<'_> {
    /// The same, owning its text (for a path that came from a header, not the request line).
    pub fn into_owned(self) -> NormalPath<'static> {
        NormalPath {
            forward: Cow::Owned(self.forward.into_owned()),
            decoded: Cow::Owned(self.decoded.into_owned()),
        }
    }
}

/// Applies the rule to the path of a request target (no query).
pub fn normalize(raw: &str) -> Result<NormalPath<'_>, PathRefusal> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathRefusal::NotAbsolute);
    }
    // Most paths carry no escape: they are their own decoded form.
    let (forward, decoded) = if memchr::memchr(b'%', bytes).is_none() {
        (Cow::Borrowed(raw), Cow::Borrowed(bytes))
    } else {
        let (forward, decoded) = decode(bytes)?;
        (Cow::Owned(forward), Cow::Owned(decoded))
    };
    check_segments(&decoded)?;
    Ok(NormalPath { forward, decoded })
}

/// One pass over the escapes: the forwarded form and the fully decoded form. Bytes are
/// copied as bytes (a non-ASCII character stays the same UTF-8 sequence); only `%XX` of an
/// unreserved ASCII character is replaced, so the forwarded form stays valid UTF-8.
fn decode(bytes: &[u8]) -> Result<(String, Vec<u8>), PathRefusal> {
    let mut forward = Vec::with_capacity(bytes.len());
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            forward.push(b);
            decoded.push(b);
            i += 1;
            continue;
        }
        let value = match (bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        }
        .ok_or(PathRefusal::BadEscape)?;
        match value {
            b'/' => return Err(PathRefusal::EncodedSlash),
            b'\\' => return Err(PathRefusal::EncodedSlash),
            v if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => {
                forward.push(v)
            }
            // Kept as received (reserved characters, non-ASCII bytes, ...).
            _ => forward.extend_from_slice(&bytes[i..i + 3]),
        }
        decoded.push(value);
        i += 3;
    }
    if double_encoded(&decoded) {
        return Err(PathRefusal::DoubleEncoded);
    }
    let forward = String::from_utf8(forward).map_err(|_| PathRefusal::BadEscape)?;
    Ok((forward, decoded))
}

/// Whether the once-decoded path holds an escape that a second decoding would turn into a
/// path separator, a dot, another `%` or a control character.
fn double_encoded(decoded: &[u8]) -> bool {
    memchr::memchr_iter(b'%', decoded).any(|i| {
        match (
            decoded.get(i + 1).copied().and_then(hex),
            decoded.get(i + 2).copied().and_then(hex),
        ) {
            (Some(h), Some(l)) => {
                let v = h << 4 | l;
                matches!(v, b'.' | b'/' | b'\\' | b'%') || v < 0x20 || v == 0x7f
            }
            _ => false,
        }
    })
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes the segment check must look at: separators, `;`, `\`, control characters.
static SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = c < 0x20
            || c == 0x7f
            || c == b'/' as usize
            || c == b';' as usize
            || c == b'\\' as usize;
        c += 1;
    }
    table
};

/// Segment checks on the decoded path (which starts with `/`), in one pass: it runs on every
/// request.
fn check_segments(decoded: &[u8]) -> Result<(), PathRefusal> {
    // Start of the current segment, and the end of its name (a `;` ends the name).
    let mut start = 1;
    let mut name_end = None;
    for i in 1..=decoded.len() {
        let byte = decoded.get(i).copied();
        if byte.is_some_and(|c| !SPECIAL[usize::from(c)]) {
            continue;
        }
        match byte {
            Some(c) if c < 0x20 || c == 0x7f => return Err(PathRefusal::ControlCharacter),
            Some(b'\\') => return Err(PathRefusal::Backslash),
            Some(b';') if name_end.is_none() => name_end = Some(i),
            Some(b'/') | None => {
                let name = &decoded[start..name_end.unwrap_or(i)];
                if name == b"." || name == b".." {
                    return Err(PathRefusal::DotSegment);
                }
                // `/` alone and a trailing slash are fine; `//` anywhere else is not.
                if i == start && i < decoded.len() {
                    return Err(PathRefusal::EmptySegment);
                }
                start = i + 1;
                name_end = None;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether the decoded path `path` lies under `prefix` (a normalised configured prefix, no
/// trailing slash; empty for `/`): equal to it, or continuing with `/` or `;`. With
/// `ignore_case`, ASCII case is ignored (an upstream may route case-insensitively).
pub fn under(path: &[u8], prefix: &[u8], ignore_case: bool) -> bool {
    if path.len() < prefix.len() {
        return false;
    }
    let (head, rest) = path.split_at(prefix.len());
    let same = if ignore_case {
        head.eq_ignore_ascii_case(prefix)
    } else {
        head == prefix
    };
    same && matches!(rest.first(), None | Some(b'/' | b';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(raw: &str) -> Result<String, PathRefusal> {
        normalize(raw).map(|p| p.forward.into_owned())
    }

    #[test]
    fn ordinary_paths_pass_unchanged_and_borrowed() {
        for raw in [
            "/",
            "/api/orders",
            "/api/orders/",
            "/file.json",
            "/a/.hidden",
            "/a/..b",
            "/a;v=1/b",
        ] {
            let p = normalize(raw).expect(raw);
            assert!(matches!(p.forward, Cow::Borrowed(_)), "{raw}");
            assert_eq!(p.forward, raw);
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_kept() {
        assert_eq!(forward("/%61pi/admin").as_deref(), Ok("/api/admin"));
        assert_eq!(forward("/a%2Eb").as_deref(), Ok("/a.b"));
        assert_eq!(forward("/a%20b/%C3%A9").as_deref(), Ok("/a%20b/%C3%A9"));
        // Found by the fuzzer: non-ASCII characters next to an escape came out as mojibake.
        assert_eq!(forward("/café%41").as_deref(), Ok("/caféA"));
        assert_eq!(
            forward("//\u{fffd}%5F").map(|_| ()),
            Err(PathRefusal::EmptySegment)
        );
        assert_eq!(forward("/\u{fffd}%5F").as_deref(), Ok("/\u{fffd}_"));
        let p = normalize("/a%20b/%C3%A9").expect("valid");
        assert_eq!(&p.decoded[..], "/a b/é".as_bytes());
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use PathRefusal::*;
        for (raw, why) in [
            ("/api/public/../admin", DotSegment),
            ("/api/public/./admin", DotSegment),
            ("/api/public/%2e%2e/admin", DotSegment),
            ("/api/public/.%2E/admin", DotSegment),
            ("/api/public/..;/admin", DotSegment),
            ("/api/public/..;x=1/admin", DotSegment),
            ("/api/..", DotSegment),
            ("/api/public%2F..%2Fadmin", EncodedSlash),
            ("/api/public%2f..%2fadmin", EncodedSlash),
            ("/api%5cadmin", EncodedSlash),
            ("//api/admin", EmptySegment),
            ("/api//admin", EmptySegment),
            ("/api\\admin", Backslash),
            ("/api/%00admin", ControlCharacter),
            ("/api/%0d%0a", ControlCharacter),
            ("/api/%zz", BadEscape),
            ("/api/%2", BadEscape),
            ("/api/public/%252e%252e/admin", DoubleEncoded),
            ("/api/public%252Fadmin", DoubleEncoded),
            ("/api/%25%32%65", DoubleEncoded),
            ("*", NotAbsolute),
            ("", NotAbsolute),
        ] {
            assert_eq!(normalize(raw).map(|_| ()), Err(why), "{raw}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under(b"/api/public", b"/api/public", false));
        assert!(under(b"/api/public/x", b"/api/public", false));
        assert!(under(b"/api/public;a=b/x", b"/api/public", false));
        assert!(!under(b"/api/publicity", b"/api/public", false));
        assert!(!under(b"/api", b"/api/public", false));
        assert!(under(b"/anything", b"", false));
        assert!(!under(b"/API/public", b"/api/public", false));
        assert!(under(b"/API/admin", b"/api", true));
    }
}
