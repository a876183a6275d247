//! The forward-auth listener asked directly, the way each gateway asks (the nginx suite in
//! `forward_auth_nginx.rs` puts a real gateway in between): what is allowed with which headers,
//! what is refused with which JSON, and that the browser-facing listener never answers it.

use crate::support::*;
use token_handler::demo::tokenidp::Fault;

const FORWARD_AUTH: (&str, &str) = ("forward_auth", "listen = \"127.0.0.1:0\"");
const NGINX: (&str, &str) = ("forward_auth", "gateway = \"nginx\"");

async fn harness() -> Harness {
    Harness::with(Flavor::TokenIdpServer, &[FORWARD_AUTH, NGINX], KEY1).await
}

/// nginx's question: `GET /verify` with `X-Original-Method` / `X-Original-URI`.
async fn ask(
    h: &Harness,
    method: &str,
    uri: &str,
    jar: &Jar,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let verify = h.proxy.verify_url.as_ref().expect("forward-auth listener");
    let mut request = h
        .http
        .get(format!("{verify}/verify"))
        .header("x-original-method", method)
        .header("x-original-uri", uri)
        .header("x-forwarded-host", h.proxy.addr.to_string())
        .header("cookie", jar.header());
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    request.send().await.expect("verify answered")
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_string())
}

#[tokio::test]
async fn a_valid_session_is_allowed_with_its_bearer_for_the_gateway_to_copy() {
    let h = harness().await;
    let (jar, issued) = h.login(false);
    let r = ask(&h, "GET", "/api/items?page=2", &jar, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "authorization"),
        Some(format!("Bearer {}", issued.access_token))
    );
    assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"));
    assert!(header(&r, "set-cookie").is_none(), "nothing to set");
    assert!(
        h.echo.records().is_empty(),
        "the gateway forwards, not the proxy"
    );

    // Envoy / Gateway API: the original request's own method and path below /verify.
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[FORWARD_AUTH, ("forward_auth", "gateway = \"envoy\"")],
        KEY1,
    )
    .await;
    let (jar, _) = h.login(false);
    let verify = h.proxy.verify_url.clone().expect("listener");
    let r = h
        .http
        .post(format!("{verify}/verify/api/items"))
        .header("host", h.proxy.addr.to_string())
        .header("origin", &h.proxy.url)
        .header("x-csrf", "1")
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    assert!(header(&r, "authorization").is_some());
}

#[tokio::test]
async fn refusals_are_the_proxys_json_errors_named_for_the_gateway() {
    let h = harness().await;
    let (jar, _) = h.login(false);
    // No session.
    let r = ask(&h, "GET", "/api/items", &Jar::default(), &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "x-token-handler-error").as_deref(),
        Some("login_required")
    );
    assert!(header(&r, "authorization").is_none());
    assert_eq!(json(r).await["error"], "login_required");
    // An unsafe method without the CSRF header: refused before any refresh.
    let r = ask(&h, "POST", "/api/items", &jar, &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        header(&r, "x-token-handler-error").as_deref(),
        Some("csrf_check_failed")
    );
    let r = ask(&h, "POST", "/api/items", &jar, &[("x-csrf", "1")]).await;
    assert_eq!(r.status(), 200);
    // A path the proxy itself would refuse.
    for uri in ["/api/../admin", "/api/%2e%2e/admin", "/api%2fadmin"] {
        let r = ask(&h, "GET", uri, &jar, &[]).await;
        assert_eq!(r.status(), 400, "{uri}");
        assert!(header(&r, "authorization").is_none());
    }
    // The proxy's own endpoints need no session.
    let r = ask(&h, "GET", "/auth/login?return_to=/", &Jar::default(), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "authorization").is_none());
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_cookie_handed_to_the_gateway() {
    let h = harness().await;
    let (jar, issued) = h.login(true);
    let r = ask(&h, "GET", "/api/items", &jar, &[]).await;
    assert_eq!(r.status(), 200);
    let bearer = header(&r, "authorization").expect("bearer");
    assert_ne!(
        bearer,
        format!("Bearer {}", issued.access_token),
        "a new token"
    );
    assert_eq!(h.idp.refresh_calls(), 1);
    let cookies = session_set_cookies(&r);
    assert!(!cookies.is_empty(), "the refreshed session for the browser");
    assert_eq!(
        header(&r, "x-token-handler-set-cookie-1").as_deref(),
        Some(cookies[0].as_str()),
        "the same line under a name nginx can copy"
    );

    // The IdP down: 503, the session kept (no cookie cleared).
    let (jar, _) = h.login(true);
    h.idp.set_fault(Fault::Down);
    let r = ask(&h, "GET", "/api/items", &jar, &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        header(&r, "x-token-handler-error").as_deref(),
        Some("idp_unavailable")
    );
    assert!(header(&r, "retry-after").is_some());
    assert!(session_set_cookies(&r).is_empty(), "the session is kept");
    h.idp.set_fault(Fault::None);
    assert_eq!(ask(&h, "GET", "/api/items", &jar, &[]).await.status(), 200);
}

#[tokio::test]
async fn the_browser_facing_listener_never_answers_a_gateways_question() {
    let h = harness().await;
    let (jar, issued) = h.login(false);
    // A same-origin script asking through the app's own origin (and /auth) gets no token.
    for path in ["/auth/verify", "/auth/verify/api/items"] {
        let r = h
            .http
            .get(format!("{}{path}", h.proxy.url))
            .header("x-original-method", "GET")
            .header("x-original-uri", "/api/items")
            .header("cookie", jar.header())
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), 404, "{path}");
        let headers = format!("{:?}", r.headers());
        let text = headers + &r.text().await.expect("body");
        assert!(!text.contains(&issued.access_token), "{path}: no token");
    }
}

#[tokio::test]
async fn routes_decide_for_the_gateway_too_and_identity_headers_are_always_named() {
    let tail = r#"
[[routes]]
path = "/api"
methods = ["GET"]
[routes.identity_headers]
X-Auth-Request-User = "sub"

[[routes]]
path = "/public"
session = "none"
"#;
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[FORWARD_AUTH, NGINX, ("tail", tail)],
        KEY1,
    )
    .await;
    let (jar, _) = h.login(false);
    let r = ask(&h, "GET", "/api/items", &jar, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-auth-request-user").as_deref(), Some("usr:42"));
    // Anonymous: no Bearer, and the identity header named empty so that a gateway copying only
    // what is present cannot let the browser's forged one through.
    let r = ask(
        &h,
        "GET",
        "/public/x",
        &jar,
        &[("x-auth-request-user", "admin")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "authorization").is_none());
    assert_eq!(header(&r, "x-auth-request-user").as_deref(), Some(""));
    assert_eq!(ask(&h, "GET", "/other", &jar, &[]).await.status(), 404);
    let r = ask(&h, "DELETE", "/api/items", &jar, &[("x-csrf", "1")]).await;
    assert_eq!(r.status(), 405);
    assert_eq!(
        header(&r, "x-token-handler-error").as_deref(),
        Some("method_not_allowed")
    );
}
