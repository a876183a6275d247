//! `[[routes]]`: the allowlist (404 and 405 before any upstream), two upstreams by prefix, the
//! session rule of each route, and identity headers the browser cannot forge.

use crate::support::echo::Echo;
use crate::support::*;

struct Routed {
    h: Harness,
    /// The second upstream (`/files`); `h.echo` is the first (`/api`, `/public`).
    files: Echo,
}

async fn routed() -> Routed {
    let files = Echo::start().await;
    let tail = format!(
        r#"
[[routes]]
path = "/api"
methods = ["GET", "POST"]
session = "required"
[routes.identity_headers]
X-Auth-Request-User = "sub"
X-Auth-Request-Email = "email"

[[routes]]
path = "/api/public"
session = "none"

[[routes]]
path = "/files"
upstream = "{}"
session = "optional"
connect_timeout = "1s"
"#,
        files.url()
    );
    let tail: &'static str = Box::leak(tail.into_boxed_str());
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("session", "claims = [\"sub\", \"email\"]"), ("tail", tail)],
        KEY1,
    )
    .await;
    Routed { h, files }
}

async fn send(h: &Harness, method: &str, path: &str, jar: &Jar, forged: bool) -> reqwest::Response {
    let mut request = h
        .http
        .request(
            method.parse().expect("method"),
            format!("{}{path}", h.proxy.url),
        )
        .header("cookie", jar.header())
        .header("x-csrf", "1");
    if forged {
        request = request
            .header("x-auth-request-user", "admin")
            .header("X-Auth-Request-Email", "root@example.com");
    }
    request.send().await.expect("answered")
}

#[tokio::test]
async fn what_no_route_allows_touches_no_upstream() {
    let r = routed().await;
    let (jar, _) = r.h.login(false);
    for path in ["/", "/other", "/apix", "/fil", "/auth2/x"] {
        let resp = send(&r.h, "GET", path, &jar, false).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(json(resp).await["error"], "not_found");
    }
    let resp = send(&r.h, "DELETE", "/api/items/1", &jar, false).await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST, HEAD");
    assert!(
        r.h.echo.records().is_empty(),
        "the first upstream saw nothing"
    );
    assert!(
        r.files.records().is_empty(),
        "the second upstream saw nothing"
    );
}

#[tokio::test]
async fn each_route_its_upstream_and_its_session_rule() {
    let r = routed().await;
    let (jar, issued) = r.h.login(false);
    let bearer = format!("Bearer {}", issued.access_token);

    // required: the token and the identity, whatever the browser claimed to be.
    let resp = send(&r.h, "GET", "/api/items", &jar, true).await;
    assert_eq!(resp.status(), 200);
    let seen = r.h.echo.last();
    assert_eq!(seen.header("authorization"), Some(bearer.clone()));
    assert_eq!(
        seen.header("x-auth-request-user").as_deref(),
        Some("usr:42")
    );
    // Non-ASCII as UTF-8 percent-encoding: a header value stays one header value.
    assert_eq!(
        seen.header("x-auth-request-email").as_deref(),
        Some("zo%C3%AB@example.com")
    );
    assert!(
        seen.headers.get_all("x-auth-request-user").iter().count() == 1,
        "one value: ours"
    );
    // Any ASCII case reaches the route that protects it.
    let resp = send(&r.h, "GET", "/API/items", &Jar::default(), false).await;
    assert_eq!(resp.status(), 401);

    // none: forwarded without a token or our cookie, even with a session; forged identity gone.
    let before = r.h.echo.records().len();
    let resp = send(&r.h, "GET", "/api/public/status", &jar, true).await;
    assert_eq!(resp.status(), 200);
    let records = r.h.echo.records();
    assert_eq!(records.len(), before + 1);
    let seen = records.last().expect("record");
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(
        seen.header("x-auth-request-user"),
        None,
        "a forged identity never arrives"
    );
    assert_eq!(seen.header("x-auth-request-email"), None);
    assert!(seen
        .header("cookie")
        .is_none_or(|c| !c.contains("th_session")));

    // optional, on the second upstream: anonymous without a session, the token with one.
    let resp = send(&r.h, "GET", "/files/a.txt", &Jar::default(), true).await;
    assert_eq!(resp.status(), 200);
    let seen = r.files.last();
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-auth-request-user"), None);
    let resp = send(&r.h, "GET", "/files/a.txt", &jar, false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(r.files.last().header("authorization"), Some(bearer));
    assert_eq!(r.files.records().len(), 2);
}
