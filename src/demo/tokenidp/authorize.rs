//! `GET`/`POST /authorize`: checks the authorization request (PKCE S256 mandatory, `openid`
//! required, exact redirect URI), logs a user in (at once, or through the HTML form), and
//! redirects back with a single-use code.

use std::collections::HashMap;
use std::time::Duration;

use http::header::SET_COOKIE;
use http::{HeaderValue, Method, StatusCode};
use tokio::time::Instant;

use super::ids;
use super::login_page::LoginPage;
use super::options::{words, LoginMode};
use super::reply::{self, method_not_allowed, Response};
use super::request::Request;
use super::state::{CodeRecord, Shared, State, SESSION_COOKIE};

/// Codes live five minutes, as in TokenIDP.
const CODE_TTL: Duration = Duration::from_secs(5 * 60);

/// Parameters without which TokenIDP answers a plain-text 400.
const REQUIRED: [&str; 6] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "code_challenge",
    "code_challenge_method",
];

/// Parameters carried through the login form in hidden fields besides the required ones.
const CARRIED_TOO: [&str; 2] = ["state", "nonce"];

/// A checked authorization request.
#[derive(Debug)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    code_challenge: String,
    state: Option<String>,
    nonce: Option<String>,
}

pub(super) fn handle(shared: &Shared, req: &Request) -> Response {
    // OIDC Core §3.1.2.1 allows both GET (query) and POST (form body).
    let pairs = match req.method {
        Method::GET => req.query_pairs(),
        Method::POST => req.form_pairs(),
        _ => return method_not_allowed(),
    };
    let mut params = HashMap::new();
    for (name, value) in pairs {
        if params.insert(name, value).is_some() {
            // RFC 6749 §3.1: parameters must not be included more than once.
            return reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "A parameter was sent more than once.",
            );
        }
    }
    let param = |name: &str| params.get(name).map(String::as_str);

    let mut st = shared.lock();
    let request = match check(&st, &params) {
        Ok(request) => request,
        Err(refusal) => return refusal.response(),
    };
    // Test hook: a consent refusal, answered the RFC 6749 §4.1.2.1 way (redirect with error).
    if param("test_error") == Some("access_denied") {
        let mut pairs = vec![
            ("error", "access_denied"),
            ("error_description", "The user denied the request."),
        ];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        return reply::redirect(&reply::append_query(&request.redirect_uri, &pairs));
    }

    let mut set_cookie = None;
    let user_id = match st.login {
        LoginMode::Auto => match st.users.first() {
            Some(user) => user.id,
            None => return reply::text(StatusCode::INTERNAL_SERVER_ERROR, "No users."),
        },
        LoginMode::Form => {
            let session = req
                .cookie(SESSION_COOKIE)
                .and_then(|id| st.sessions.get(&id).copied());
            match (req.method == Method::POST, param("login"), session) {
                (true, Some(login), _) => {
                    let password = param("password").unwrap_or("");
                    let Some(user_id) = st
                        .user_by_login(login)
                        .filter(|u| u.password == password)
                        .map(|u| u.id)
                    else {
                        let error = "Invalid login or password.";
                        return form(&st, &params, login, "", Some(error));
                    };
                    let Ok(session_id) = ids::session_id() else {
                        return reply::pascal_case_500();
                    };
                    st.sessions.insert(session_id.clone(), user_id);
                    set_cookie = Some(format!(
                        "{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax"
                    ));
                    user_id
                }
                // An existing IdP session logs in silently, like a real IdP.
                (_, None, Some(user_id)) => user_id,
                _ => {
                    let (login, password) = demo_credentials(&st);
                    return form(&st, &params, &login, &password, None);
                }
            }
        }
    };

    let Ok(code) = ids::uuid() else {
        return reply::pascal_case_500();
    };
    st.codes.insert(
        code.clone(),
        CodeRecord {
            client_id: request.client_id,
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge,
            scopes: request.scopes,
            nonce: request.nonce,
            user_id,
            expires_at: Instant::now() + CODE_TTL,
            used: false,
        },
    );
    st.issued_secrets.push(code.clone());
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        pairs.push(("state", state));
    }
    let mut resp = reply::redirect(&reply::append_query(&request.redirect_uri, &pairs));
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(SET_COOKIE, cookie);
    }
    resp
}

/// Why an authorization request was refused. Never redirected back: TokenIDP answers these
/// itself, plain text for a missing parameter, JSON `{"error","error_description"}` otherwise.
#[derive(Debug)]
enum Refusal {
    Missing(&'static str),
    Invalid {
        error: &'static str,
        description: String,
    },
}

impl Refusal {
    fn response(&self) -> Response {
        match self {
            Refusal::Missing(name) => reply::text(
                StatusCode::BAD_REQUEST,
                &format!("Missing required parameter: {name}"),
            ),
            Refusal::Invalid { error, description } => {
                reply::oauth_error(StatusCode::BAD_REQUEST, error, description)
            }
        }
    }
}

/// Validates the request as TokenIDP does.
fn check(st: &State, params: &HashMap<String, String>) -> Result<AuthRequest, Refusal> {
    for name in REQUIRED {
        if params.get(name).is_none_or(|v| v.is_empty()) {
            return Err(Refusal::Missing(name));
        }
    }
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let error = |error: &'static str, description: &str| {
        Err(Refusal::Invalid {
            error,
            description: description.to_owned(),
        })
    };
    let Some(client) = st.client(get("client_id")) else {
        return error("invalid_request", "Unknown client_id.");
    };
    if !client.enabled {
        return error("unauthorized_client", "The client is disabled.");
    }
    // Exact string match, no normalization (RFC 6749 §3.1.2.3, and TokenIDP's behaviour).
    if !client
        .redirect_uris
        .iter()
        .any(|u| u == get("redirect_uri"))
    {
        return error(
            "invalid_request",
            "redirect_uri is not registered for this client.",
        );
    }
    if get("response_type") != "code" {
        return error(
            "unsupported_response_type",
            "Only response_type=code is supported.",
        );
    }
    if !client.grants.iter().any(|g| g == "authorization_code") {
        return error(
            "unauthorized_client",
            "The authorization_code grant is not enabled for this client.",
        );
    }
    // PKCE is mandatory and always S256 (RFC 7636 §4.2, §4.3).
    if get("code_challenge_method") != "S256" {
        return error("invalid_request", "code_challenge_method must be S256.");
    }
    let challenge = get("code_challenge");
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !(43..=128).contains(&challenge.len()) || !challenge.bytes().all(unreserved) {
        return error("invalid_request", "code_challenge is malformed.");
    }
    let scopes = words(get("scope"));
    if !scopes.iter().any(|s| s == "openid") {
        return error("invalid_scope", "scope must contain openid.");
    }
    if let Some(bad) = scopes.iter().find(|s| !client.scopes.contains(s)) {
        return error(
            "invalid_scope",
            &format!("Scope {bad} is not allowed for this client."),
        );
    }
    // `nonce` is ignored by TokenIDP (its ID tokens never carry it); the OAuth2 style, which
    // stands for a standard OpenID provider, echoes it.
    let nonce = (st.style == super::options::ResponseStyle::OAuth2)
        .then(|| params.get("nonce").cloned())
        .flatten();
    Ok(AuthRequest {
        nonce,
        client_id: client.client_id.clone(),
        redirect_uri: get("redirect_uri").to_owned(),
        scopes,
        code_challenge: challenge.to_owned(),
        state: params.get("state").cloned(),
    })
}

/// The first user's credentials: the form's prefilled values and hint.
fn demo_credentials(st: &State) -> (String, String) {
    st.users
        .first()
        .map(|u| (u.login.clone(), u.password.clone()))
        .unwrap_or_default()
}

fn form(
    st: &State,
    params: &HashMap<String, String>,
    login: &str,
    password: &str,
    error: Option<&str>,
) -> Response {
    let (demo_login, demo_password) = demo_credentials(st);
    let hidden = REQUIRED
        .iter()
        .chain(&CARRIED_TOO)
        .filter_map(|name| params.get(*name).map(|v| (*name, v.as_str())))
        .collect();
    let page = LoginPage {
        hidden,
        login,
        password,
        hint: (!demo_login.is_empty()).then_some((demo_login.as_str(), demo_password.as_str())),
        error,
    };
    let mut resp = reply::html(StatusCode::OK, page.render());
    // The page carries a PKCE challenge and state: keep it out of caches.
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}
