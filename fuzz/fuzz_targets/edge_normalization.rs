//! Fuzzes the two decisions the proxy takes on the text of a URL: the post-login destination
//! (`endpoints::return_to::validate`, the open-redirect defence) and the request-path rule
//! (`edge::path::normalize` and `under`, which decide protected vs public).
//!
//! Input: `selector (1 byte) | text` (`text` read as lossy UTF-8).
//! - even selector: `text` is a `return_to` value, checked against the origin
//!   `https://app.example.com/auth/callback`. Whatever is accepted is a path-absolute reference
//!   (`/` then neither `/` nor `\`) without controls, spaces or backslashes, lands on the origin
//!   (and not on a path starting with `//`), is accepted again as itself (a fixpoint), and one
//!   percent-decoding deeper still lands on the origin, not on a `//` path. A value that the
//!   WHATWG parser (the `url` crate, as a browser) resolves to another origin is never accepted.
//! - odd selector: `text` is a request path. An accepted path is forwarded starting with `/`;
//!   normalising the forwarded form again gives the same result; the decoded form has no
//!   controls, no `\`, no `.`/`..` segment (also before a `;`), no empty segment but a trailing
//!   one; an nginx-like reading of the *forwarded* path (decode every escape, merge slashes,
//!   remove dot segments per RFC 3986 §5.2.4) is exactly the decoded path the proxy matched on,
//!   so the upstream router and the proxy cannot disagree on which path this is; a second
//!   decoding does not turn up a `/`, `\`, dot segment or control (double encoding). `under`
//!   matches whole segments, a case-sensitive match is also a case-insensitive one, and a path
//!   judged under `/api/public` is under it for the nginx-like reading too.
//!
//! Never a panic in either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use token_handler::edge::path::{normalize, under};
use token_handler::endpoints::return_to::validate;
use url::Url;

fn origin() -> &'static Url {
    static ORIGIN: OnceLock<Url> = OnceLock::new();
    ORIGIN.get_or_init(|| Url::parse("https://app.example.com/auth/callback").expect("origin"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if selector & 1 == 0 {
        return_to(&text);
    } else {
        path(&text);
    }
});

/// Every valid `%XX` decoded once (a malformed `%` is kept as it is), as bytes.
fn percent_decode_all(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------- return_to

fn return_to(raw: &str) {
    let origin = origin();
    let result = validate(Some(raw), origin);

    // What a browser would make of the raw value: another origin is never accepted.
    if let Ok(parsed) = origin.join(raw) {
        if parsed.origin() != origin.origin() {
            assert_eq!(
                result, None,
                "{raw:?} resolves to {parsed} and was accepted"
            );
        }
    }

    let Some(out) = result else {
        return;
    };
    let bytes = out.as_bytes();
    assert!(
        bytes.first() == Some(&b'/') && !matches!(bytes.get(1), Some(b'/' | b'\\')),
        "{raw:?} → {out:?}: not path-absolute"
    );
    assert!(
        !bytes
            .iter()
            .any(|&c| c.is_ascii_control() || c == b' ' || c == b'\\'),
        "{raw:?} → {out:?}: control, space or backslash"
    );
    let landed = origin
        .join(&out)
        .unwrap_or_else(|e| panic!("{raw:?} → {out:?} does not resolve: {e}"));
    assert_eq!(
        landed.origin(),
        origin.origin(),
        "{raw:?} → {out:?} lands on {landed}"
    );
    assert!(
        !landed.path().starts_with("//"),
        "{raw:?} → {out:?} lands on the path {}",
        landed.path()
    );
    assert_eq!(
        validate(Some(&out), origin).as_deref(),
        Some(out.as_str()),
        "{raw:?} → {out:?} is not a fixpoint"
    );

    // One decoding deeper (a server or SPA router that decodes the path again): still a path on
    // this origin, and not one starting with `//` (which a browser would read as another host).
    let once = percent_decode_all(bytes);
    let once = String::from_utf8_lossy(&once);
    if let Ok(again) = origin.join(&once) {
        assert_eq!(
            again.origin(),
            origin.origin(),
            "{raw:?} → {out:?}, decoded once {once:?}, lands on {again}"
        );
        assert!(
            !again.path().starts_with("//"),
            "{raw:?} → {out:?}, decoded once {once:?}, lands on the path {}",
            again.path()
        );
    }
}

// --------------------------------------------------------------------------------------- path

/// The name of a segment: the part before the first `;` (path parameters).
fn name(segment: &[u8]) -> &[u8] {
    segment.split(|&c| c == b';').next().unwrap_or(segment)
}

fn is_control(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

/// RFC 3986 §5.2.4 `remove_dot_segments`, on bytes.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut input: &[u8] = path;
    let mut output: Vec<u8> = Vec::with_capacity(path.len());
    let pop = |output: &mut Vec<u8>| {
        let cut = output.iter().rposition(|&c| c == b'/').unwrap_or(0);
        output.truncate(cut);
    };
    while !input.is_empty() {
        if let Some(r) = input.strip_prefix(b"../") {
            input = r; // A
        } else if let Some(r) = input.strip_prefix(b"./") {
            input = r; // A
        } else if input.starts_with(b"/./") {
            input = &input[2..]; // B
        } else if input == b"/." {
            input = b"/"; // B
        } else if input.starts_with(b"/../") {
            input = &input[3..]; // C
            pop(&mut output);
        } else if input == b"/.." {
            input = b"/"; // C
            pop(&mut output);
        } else if input == b"." || input == b".." {
            input = b""; // D
        } else {
            // E: the first segment, with its leading `/`, moves to the output.
            let start = usize::from(input[0] == b'/');
            let end = input[start..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(input.len(), |p| p + start);
            output.extend_from_slice(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

/// What an nginx-like router acts on: every escape decoded once, runs of `/` merged, then dot
/// segments removed.
fn nginx_like(path: &[u8]) -> Vec<u8> {
    let decoded = percent_decode_all(path);
    let mut merged = Vec::with_capacity(decoded.len());
    for &c in &decoded {
        if !(c == b'/' && merged.last() == Some(&b'/')) {
            merged.push(c);
        }
    }
    remove_dot_segments(&merged)
}

/// Prefixes tried on `under`, besides the path's own segment boundaries.
const PREFIXES: &[&[u8]] = &[
    b"",
    b"/api",
    b"/api/public",
    b"/API/Public",
    b"/auth",
    b"/auth/login",
    b"/a",
];

fn path(raw: &str) {
    let Ok(p) = normalize(raw) else {
        return;
    };
    let forward: &str = &p.forward;
    let decoded: &[u8] = &p.decoded;
    assert!(forward.starts_with('/'), "{raw:?} forwarded as {forward:?}");

    // Idempotent: the forwarded form is accepted as itself, with the same decoded form.
    match normalize(forward) {
        Ok(again) => {
            assert_eq!(again.forward, p.forward, "{raw:?}: forward not idempotent");
            assert_eq!(
                again.decoded,
                p.decoded,
                "{raw:?}: forwarded as {forward:?}, which decodes to {:?}, not {:?}",
                String::from_utf8_lossy(&again.decoded),
                String::from_utf8_lossy(decoded)
            );
        }
        Err(why) => panic!("{raw:?} forwarded as {forward:?}, which is refused: {why:?}"),
    }

    // The decoded form is unambiguous.
    let show = String::from_utf8_lossy(decoded);
    assert!(decoded.first() == Some(&b'/'), "{raw:?}: decoded {show:?}");
    assert!(
        !decoded.iter().any(|&c| is_control(c) || c == b'\\'),
        "{raw:?}: decoded {show:?} has a control or backslash"
    );
    let segments: Vec<&[u8]> = decoded[1..].split(|&c| c == b'/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let n = name(segment);
        assert!(
            n != b"." && n != b"..",
            "{raw:?}: decoded {show:?} has a dot segment"
        );
        assert!(
            !segment.is_empty() || i + 1 == segments.len(),
            "{raw:?}: decoded {show:?} has an empty segment"
        );
    }

    // The router's reading of what is forwarded is the path the proxy decided on.
    let reference = nginx_like(forward.as_bytes());
    assert_eq!(
        reference,
        decoded,
        "{raw:?}: forwarded as {forward:?}, which a router reads as {:?}, but decided on {show:?}",
        String::from_utf8_lossy(&reference)
    );

    // A second decoding introduces no separator, dot segment or control.
    let twice = percent_decode_all(decoded);
    let twice_show = String::from_utf8_lossy(&twice);
    let slashes = |s: &[u8]| s.iter().filter(|&&c| c == b'/').count();
    assert_eq!(
        slashes(&twice),
        slashes(decoded),
        "{raw:?}: decoded {show:?} decodes again to {twice_show:?}"
    );
    assert!(
        !twice.iter().any(|&c| is_control(c) || c == b'\\'),
        "{raw:?}: decoded {show:?} decodes again to {twice_show:?}"
    );
    assert!(
        !twice[1..]
            .split(|&c| c == b'/')
            .any(|s| matches!(name(s), b"." | b"..")),
        "{raw:?}: decoded {show:?} decodes again to the dot segments of {twice_show:?}"
    );

    // `under`: every segment boundary of the path is a prefix of it, in either case mode;
    // a case-sensitive match is also a case-insensitive one.
    let mut cuts: Vec<usize> = decoded
        .iter()
        .enumerate()
        .filter(|&(i, &c)| i > 0 && matches!(c, b'/' | b';'))
        .map(|(i, _)| i)
        .collect();
    cuts.push(decoded.len());
    for &k in &cuts {
        let prefix = &decoded[..k];
        assert!(
            under(decoded, prefix, false),
            "{show:?} not under its own prefix {:?}",
            String::from_utf8_lossy(prefix)
        );
        let upper = prefix.to_ascii_uppercase();
        assert!(
            under(decoded, &upper, true),
            "{show:?} not under {:?} ignoring case",
            String::from_utf8_lossy(&upper)
        );
    }
    for prefix in PREFIXES {
        if under(decoded, prefix, false) {
            assert!(
                under(decoded, prefix, true),
                "{show:?} under {:?} only with case",
                String::from_utf8_lossy(prefix)
            );
        }
    }
    if under(decoded, b"/api/public", false) {
        let rest = reference.strip_prefix(b"/api/public".as_slice());
        assert!(
            matches!(rest, Some([] | [b'/' | b';', ..])),
            "{raw:?}: judged under /api/public, but a router reads {:?}",
            String::from_utf8_lossy(&reference)
        );
    }
}
