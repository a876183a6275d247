//! `POST /token`: TokenIDP's lenient request parsing, its client-authentication rules, and the
//! `refresh_token` and `authorization_code` grants.

use http::header::AUTHORIZATION;
use http::Method;
use tokio::time::Instant;

use super::faults;
use super::grant::{self, Minted};
use super::options::{words, Client, Fault};
use super::reply::{self, method_not_allowed, Failure, Response};
use super::request::{parse_params, Params, Request};
use super::state::{constant_time_eq, CodeRefusal, RefreshRefusal, Shared, State};

/// The cookie TokenIDP's "cookie delivery mode" sets, and that a refresh without a body token
/// falls back to.
const REFRESH_COOKIE: &str = "tt_refresh";

/// Whether a `/token` request asks for the refresh grant (for `refresh_calls`, counted
/// before any fault answers).
pub(super) fn is_refresh(req: &Request) -> bool {
    parse_params(req).is_ok_and(|p| p.get("granttype") == Some("refresh_token"))
}

/// Serves `POST /token`, after the injected fault (if any) had its say.
pub(super) async fn handle(shared: &Shared, req: &Request) -> Response {
    let fault = shared.lock().fault.clone();
    if let Fault::Slow(delay) = fault {
        tokio::time::sleep(delay).await;
    } else if let Some(resp) = faults::response(&fault) {
        return resp;
    }
    if req.method != Method::POST {
        return method_not_allowed();
    }
    let mut st = shared.lock();
    let style = st.style;
    match serve(shared, &mut st, req) {
        Ok(minted) => reply::success(style, &minted),
        Err(failure) => {
            tracing::debug!(?failure, "tokenidp emulator refused a token request");
            reply::failure(style, &failure)
        }
    }
}

fn serve(shared: &Shared, st: &mut State, req: &Request) -> Result<Minted, Failure> {
    let params = parse_params(req)?;
    let grant_type = params
        .get("granttype")
        .ok_or(Failure::invalid_request("grant_type is required."))?
        .to_owned();
    let client = authenticated_client(st, req, &params, &grant_type)?;
    if !client.grants.contains(&grant_type) {
        return Err(Failure::unauthorized_client());
    }
    match grant_type.as_str() {
        "refresh_token" => refresh(shared, st, &client, &params, req),
        "authorization_code" => authorization_code(shared, st, &client, &params),
        // client_credentials, password, device_code, CIBA: real TokenIDP grants the emulator
        // does not need.
        _ => Err(Failure::unsupported_grant_type()),
    }
}

/// Authenticates the client of a request by TokenIDP's rules (also used by RFC 7009 revocation,
/// which passes a `purpose` other than a grant type, so a confidential client needs its secret).
pub(super) fn authenticated_client(
    st: &State,
    req: &Request,
    params: &Params,
    purpose: &str,
) -> Result<Client, Failure> {
    let basic = basic_credentials(req)?;
    authenticate(st, basic, params, purpose).cloned()
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
/// Other schemes are ignored; a malformed Basic header fails client authentication.
fn basic_credentials(req: &Request) -> Result<Option<(String, String)>, Failure> {
    let Some(value) = req.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let fail = Failure::client_authentication_failed;
    let value = value.to_str().map_err(|_| fail())?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = crate::b64::std_decode(encoded.trim()).ok_or_else(fail)?;
    let decoded = String::from_utf8(decoded).map_err(|_| fail())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(fail)?;
    let id = form_decode(id).ok_or_else(fail)?;
    let secret = form_decode(secret).ok_or_else(fail)?;
    Ok(Some((id, secret)))
}

/// `application/x-www-form-urlencoded` decoding of one component: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// TokenIDP's client authentication: Basic, or `client_secret` in the body, or none.
fn authenticate<'a>(
    st: &'a State,
    basic: Option<(String, String)>,
    params: &Params,
    grant_type: &str,
) -> Result<&'a Client, Failure> {
    let fail = Failure::client_authentication_failed;
    let body_id = params.get("clientid");
    let body_secret = params.get("clientsecret").filter(|s| !s.is_empty());
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if body_secret.is_some() {
                return Err(Failure::invalid_request(
                    "Use only one client authentication method.",
                ));
            }
            if body_id.is_some_and(|b| b != id) {
                return Err(Failure::invalid_request(
                    "client_id does not match the Authorization header.",
                ));
            }
            let secret = Some(secret).filter(|s| !s.is_empty());
            (id, secret)
        }
        None => (
            body_id.ok_or_else(fail)?.to_owned(),
            body_secret.map(str::to_owned),
        ),
    };
    let client = st.client(&client_id).ok_or_else(fail)?;
    if !client.enabled {
        return Err(fail());
    }
    match (&client.secret, secret) {
        // A public client must not send a secret at all.
        (None, Some(_)) => Err(fail()),
        (Some(expected), Some(given))
            if !constant_time_eq(expected.as_bytes(), given.as_bytes()) =>
        {
            Err(fail())
        }
        // Quirk: a confidential client may *refresh* without its secret; every other grant
        // needs it.
        (Some(_), None) if grant_type != "refresh_token" => Err(fail()),
        _ => Ok(client),
    }
}

/// The refresh grant, rotation always on: the old token is consumed and a new one, bound to
/// the same client, user and grant scopes, starts a new sliding window.
fn refresh(
    shared: &Shared,
    st: &mut State,
    client: &Client,
    params: &Params,
    req: &Request,
) -> Result<Minted, Failure> {
    let cookie = req.cookie(REFRESH_COOKIE);
    let token = params
        .get("refreshtoken")
        .filter(|t| !t.is_empty())
        .or(cookie.as_deref())
        .ok_or(Failure::invalid_refresh_token())?
        .to_owned();
    let requested = params.get("scope").map(words).filter(|s| !s.is_empty());
    let granted = st
        .check_refresh(&token, client, requested, Instant::now())
        .map_err(|refusal| match refusal {
            RefreshRefusal::InvalidToken => Failure::invalid_refresh_token(),
            RefreshRefusal::InvalidScope => Failure::invalid_scope(),
        })?;
    let minted = grant::mint(
        shared,
        st,
        client,
        &granted.user,
        &granted.access_scopes,
        Some(&granted.grant_scopes),
        None,
    )
    .map_err(|_| Failure::Internal)?;
    st.consume(&token);
    Ok(minted)
}

/// The code exchange. A bad or used code and a PKCE mismatch answer TokenIDP's PascalCase 500
/// (a quirk); a refresh token comes only with `offline_access`.
fn authorization_code(
    shared: &Shared,
    st: &mut State,
    client: &Client,
    params: &Params,
) -> Result<Minted, Failure> {
    let code = params.get("code").ok_or(Failure::BadCode)?;
    let (user, scopes, nonce) = st
        .redeem_code(
            code,
            &client.client_id,
            params.get("redirecturi"),
            params.get("codeverifier"),
            Instant::now(),
        )
        .map_err(|refusal| match refusal {
            CodeRefusal::BadCode => Failure::BadCode,
            CodeRefusal::RedirectMismatch => Failure::invalid_redirect_uri(),
        })?;
    let refresh_scopes = grant::wants_refresh_token(&scopes).then_some(scopes.as_slice());
    grant::mint(
        shared,
        st,
        client,
        &user,
        &scopes,
        refresh_scopes,
        nonce.as_deref(),
    )
    .map_err(|_| Failure::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decode_handles_plus_and_percent() {
        assert_eq!(form_decode("a+b%2B%2F%3D").as_deref(), Some("a b+/="));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }
}
