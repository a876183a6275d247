//! `return_to` validation: only a same-origin relative path may be a post-login destination.
//!
//! Refused: absolute URLs and schemes (`https://x`, `javascript:`), protocol-relative
//! (`//host`), backslashes (browsers read `/\host` as `//host`), control characters (header
//! injection, and browsers strip tabs/newlines inside URLs), and the same tricks one
//! percent-encoding deeper (`/%2F%2Fhost`), since some servers decode paths again.

/// Longest `return_to` accepted.
const MAX_LEN: usize = 2048;

/// Returns the validated path (default `/`), or `None` when it is not a safe local path.
pub fn validate(raw: Option<&str>) -> Option<String> {
    let raw = match raw {
        None | Some("") => return Some("/".to_string()),
        Some(r) => r,
    };
    if raw.len() > MAX_LEN || !safe_shape(raw) {
        return None;
    }
    let decoded = percent_decode(raw)?;
    if !safe_shape(&decoded) {
        return None;
    }
    // Resolve against a placeholder origin: whatever a browser would do with it must stay on
    // that origin.
    let base = url::Url::parse("https://placeholder.invalid/").expect("static URL");
    let joined = base.join(raw).ok()?;
    if joined.origin() != base.origin() {
        return None;
    }
    let mut out = joined.path().to_string();
    if let Some(q) = joined.query() {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = joined.fragment() {
        out.push('#');
        out.push_str(f);
    }
    Some(out)
}

fn safe_shape(s: &str) -> bool {
    s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.chars().any(|c| c.is_control())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes: Vec<u8> =
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pass_and_default_to_root() {
        assert_eq!(validate(None).as_deref(), Some("/"));
        assert_eq!(validate(Some("")).as_deref(), Some("/"));
        assert_eq!(validate(Some("/dashboard")).as_deref(), Some("/dashboard"));
        assert_eq!(
            validate(Some("/a/b?x=1&y=2#top")).as_deref(),
            Some("/a/b?x=1&y=2#top")
        );
        assert_eq!(validate(Some("/a/../b")).as_deref(), Some("/b"));
        assert_eq!(
            validate(Some("/search?q=a+b")).as_deref(),
            Some("/search?q=a+b")
        );
    }

    #[test]
    fn open_redirect_corpus_is_refused() {
        for evil in [
            "//evil.example",
            "///evil.example",
            "https://evil.example",
            "http:evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/%5C%5Cevil.example",
            "/\tevil",
            "/x\r\nSet-Cookie: a=b",
            "/%0d%0aSet-Cookie:%20a=b",
            "%2F%2Fevil.example",
            " /path",
        ] {
            assert_eq!(validate(Some(evil)), None, "{evil:?} must be refused");
        }
        assert_eq!(validate(Some(&format!("/{}", "a".repeat(3000)))), None);
    }
}
