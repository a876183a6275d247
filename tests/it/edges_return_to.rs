//! Post-login redirects: every `return_to` shape through the whole login (the real proxy, the
//! TokenIDP emulator); the page the callback serves must send the browser to the proxy's own
//! origin, or `/auth/login` refuses the value.

use crate::support::*;
use url::Url;

/// `(return_to, must be refused)`: `false` means "refused, or the browser lands on the
/// proxy's own origin", checked on the page the callback serves.
const RETURN_TO: &[(&str, bool)] = &[
    ("//evil.example", true),
    ("///evil.example", true),
    ("/.//evil.example", true),
    ("/./..//evil.example", true),
    ("/a/..//evil.example", true),
    ("/a/b/../..//evil.example", true),
    ("/%2e//evil.example", true),
    ("/%2E%2e//evil.example", true),
    ("/.%2e//evil.example", true),
    ("/%2F%2Fevil.example", true),
    ("/%2f/evil.example", true),
    ("/%5Cevil.example", true),
    ("/\\evil.example", true),
    ("\\/evil.example", true),
    ("/\t/evil.example", true),
    ("/\n/evil.example", true),
    ("/%09/evil.example", true),
    (" //evil.example", true),
    ("https://evil.example/", true),
    ("https:evil.example", true),
    ("//evil.example@127.0.0.1/", true),
    ("javascript:alert(1)", true),
    ("data:text/html,hi", true),
    ("/x\r\nSet-Cookie: a=b", true),
    ("/%0d%0aSet-Cookie:%20a=b", true),
    ("http:/evil.example", false),
    ("http:evil.example", false),
    ("evil.example", false),
    ("/dashboard", false),
    ("/a/../b?x=1#top", false),
    ("/%61/b", false),
    ("/caf%C3%A9", false),
    ("/a'b\"c<d>", false),
];

#[tokio::test]
async fn return_to_corpus_through_the_whole_login_never_leaves_the_origin() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let callback = Url::parse(&format!("{}/auth/callback", h.proxy.url)).expect("url");
    let own = format!("{}/orders?id=7", h.proxy.url);
    let mut corpus: Vec<(&str, bool)> = RETURN_TO.to_vec();
    corpus.push((&own, false));
    let mut accepted = 0;
    for (raw, must_refuse) in corpus {
        let mut jar = Jar::default();
        let r = h
            .http
            .get(format!("{}/auth/login", h.proxy.url))
            .query(&[("return_to", raw)])
            .send()
            .await
            .expect("answered");
        if r.status() == 400 {
            assert!(r.headers().get("location").is_none(), "{raw:?}");
            assert_eq!(json(r).await["error"], "bad_request", "{raw:?}");
            continue;
        }
        assert!(!must_refuse, "{raw:?} must be refused at /auth/login");
        assert_eq!(r.status(), 302, "{raw:?}");
        jar.update(&r);
        let authorize = location(&r);
        let back = h.follow_idp(&authorize).await;
        let page = h.finish_login(&mut jar, &back).await;
        assert_eq!(page.status(), 200, "{raw:?}");
        let html = page.text().await.expect("page");
        for target in [
            between(&html, "content=\"0;url=", "\""),
            between(&html, "id=\"continue\" href=\"", "\""),
        ] {
            let target = unescape(&target);
            let landed = callback.join(&target).expect("the browser can resolve it");
            assert_eq!(landed.origin(), callback.origin(), "{raw:?} → {target:?}");
            assert!(!landed.path().starts_with("//"), "{raw:?} → {target:?}");
            assert!(
                target.starts_with('/') && !target[1..].starts_with(['/', '\\']),
                "{raw:?} → {target:?}: the page names a path, never the raw input"
            );
        }
        accepted += 1;
    }
    assert!(
        accepted >= 7,
        "legitimate destinations still work ({accepted})"
    );
}

#[tokio::test]
async fn a_normalised_destination_is_what_the_callback_continues_to() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    for (raw, expected) in [
        ("/a/../b?x=1#top", "/b?x=1#top"),
        ("/%61/./b", "/%61/b"),
        ("dashboard", "/dashboard"),
    ] {
        let mut jar = Jar::default();
        let page = h.browser_login(&mut jar, raw).await;
        let html = page.text().await.expect("page");
        assert_eq!(
            unescape(&between(&html, "content=\"0;url=", "\"")),
            expected,
            "{raw:?}"
        );
    }
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {text}"))
        + start.len();
    let len = text[from..].find(end).expect("end");
    text[from..from + len].to_string()
}

fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
