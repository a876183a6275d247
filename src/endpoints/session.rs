//! `GET /auth/session`: what the SPA may know about its session: whether there is one, when it
//! ends, and a few ID-token claims. Never a token. Refreshes like any proxied call.

use crate::app::App;
use crate::body::{full, Body};
use crate::error::{idp_unavailable, key_unavailable};
use crate::refresh::unix_now;
use crate::request_session::{self, freshen, with_cookies, Freshened};
use crate::session::ReadOutcome;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use serde_json::{json, Value};

pub async fn session<B>(app: &App, request: &Request<B>) -> Response<Body> {
    let now = unix_now();
    let (presence, outcome) = request_session::read(app, request.headers(), now);
    match outcome {
        ReadOutcome::Absent => answer(json!({"authenticated": false})),
        ReadOutcome::UnknownKey => key_unavailable(),
        ReadOutcome::Invalid => with_cookies(
            answer(json!({"authenticated": false})),
            app.codec.clear(&presence),
        ),
        ReadOutcome::Valid {
            session,
            retired_key,
        } => match freshen(app, session, retired_key, &presence, now).await {
            Freshened::Ready { fresh, cookies } => {
                let s = fresh.session();
                let body = json!({
                    "authenticated": true,
                    "expires_at": s.started_at.saturating_add(app.config.session.lifetime.as_secs()),
                    "access_expires_at": s.access_expires_at,
                    "refreshed": fresh.new_cookies().is_some(),
                    "claims": Value::Object((*s.claims).clone()),
                });
                with_cookies(answer(body), cookies)
            }
            Freshened::Ended { clear } => {
                with_cookies(answer(json!({"authenticated": false})), clear)
            }
            Freshened::Unavailable { retry_after } => idp_unavailable(retry_after),
        },
    }
}

fn answer(body: Value) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
