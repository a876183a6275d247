//! A browser at the test `oidc-provider` (tests/oidc/server.js): one cookie jar for the
//! provider's own cookies (`_session`, `_interaction`, ... with their `.sig`), kept across calls,
//! so a second login reuses the provider session (the same `sid`) and an RP-initiated logout ends
//! it. The proxy's cookies are not in it: the tests carry those in a [`super::Jar`].

use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use url::Url;

use super::oidc_provider::OidcProvider;

/// More hops than devInteractions ever needs (auth → login → auth → consent → auth → client).
const MAX_HOPS: usize = 16;

/// One user's browser at the provider; clones share the jar.
#[derive(Debug, Clone)]
pub struct ProviderBrowser {
    client: Client,
}

/// Where an RP-initiated logout ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedOut {
    /// The last answer: the redirect off the provider (303 to the post-logout URI), or the
    /// provider's final page (200 "signed out" when no post-logout URI was given).
    pub status: StatusCode,
    /// The URL it redirected to off the provider, or the URL of that final page.
    pub url: String,
}

/// How a walk through the provider's pages stopped.
enum Stop {
    /// A redirect off the provider: `status` and the absolute target.
    Left { status: StatusCode, url: Url },
    /// A page without a form.
    Page {
        status: StatusCode,
        url: Url,
        body: String,
    },
}

impl Default for ProviderBrowser {
    fn default() -> ProviderBrowser {
        ProviderBrowser::new()
    }
}

impl ProviderBrowser {
    /// A browser with an empty cookie jar (no provider session yet).
    pub fn new() -> ProviderBrowser {
        ProviderBrowser {
            client: Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .expect("build reqwest client for the oidc-provider browser"),
        }
    }

    /// Drives the devInteractions login + consent for `authorize_url` (the full URL the proxy's
    /// /auth/login redirected to) as the account `user`, and returns the final redirect URL
    /// (`<redirect_uri>?code=...&state=...&iss=...`), without following it. With a provider
    /// session already in this browser (as the same user), only consent (or nothing) is asked.
    ///
    /// If the provider redirects back with an error instead (`?error=...`), that URL is returned
    /// as well; anything else (an error page, too many hops) panics with the response.
    pub async fn login(&self, provider: &OidcProvider, authorize_url: &str, user: &str) -> String {
        let url = Url::parse(authorize_url).expect("authorize_url is an absolute URL");
        let fill = |fields: &mut Vec<(String, String)>| {
            // The login page carries a hidden `prompt=login`; the consent page `prompt=consent`.
            if fields.iter().any(|(k, v)| k == "prompt" && v == "login") {
                fields.push(("login".to_owned(), user.to_owned()));
                fields.push(("password".to_owned(), "any-password".to_owned()));
            }
        };
        match self.walk(provider, url, fill).await {
            Stop::Left { url, .. } => url.to_string(),
            Stop::Page { status, url, body } => {
                panic!("oidc-provider answered {url} with {status} and no form: {body}")
            }
        }
    }

    /// RP-initiated logout of this browser's provider session: `GET {issuer}/session/end` with
    /// `client_id` and `post_logout_redirect_uri`, then the confirm form posted with
    /// `logout=yes` ("Yes, sign me out": every client of the session is logged out, and those
    /// with a `backchannel_logout_uri` get their logout token before the provider answers).
    /// Follows the provider's redirects until one leaves it; does not follow that one.
    pub async fn end_session(
        &self,
        provider: &OidcProvider,
        client_id: &str,
        post_logout_redirect_uri: &str,
    ) -> LoggedOut {
        let mut url = Url::parse(&format!("{}/session/end", provider.issuer)).expect("issuer URL");
        url.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
        let fill = |fields: &mut Vec<(String, String)>| {
            // The confirm page's form has only `xsrf` (`logout` is its submit button); without a
            // provider session the auto-posting form carries `logout=yes` already.
            if !fields.iter().any(|(k, _)| k == "logout") {
                fields.push(("logout".to_owned(), "yes".to_owned()));
            }
        };
        match self.walk(provider, url, fill).await {
            Stop::Left { status, url } => LoggedOut {
                status,
                url: url.to_string(),
            },
            Stop::Page { status, url, body } => {
                assert_eq!(status, StatusCode::OK, "oidc-provider at {url}: {body}");
                LoggedOut {
                    status,
                    url: url.to_string(),
                }
            }
        }
    }

    /// GETs `url`, then follows redirects within the provider and posts every form it finds (its
    /// hidden fields, completed by `fill`), until a redirect leaves the provider or a page has
    /// no form. Panics on a non-200 page with a form, or after `MAX_HOPS`.
    async fn walk(
        &self,
        provider: &OidcProvider,
        mut url: Url,
        fill: impl Fn(&mut Vec<(String, String)>),
    ) -> Stop {
        let issuer_prefix = format!("{}/", provider.issuer);
        let mut response = self.send(self.client.get(url.clone()), &url).await;
        for _ in 0..MAX_HOPS {
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .expect("oidc-provider redirect has a Location")
                    .to_str()
                    .expect("Location is ASCII");
                let next = url.join(location).expect("Location is a valid URL");
                if !next.as_str().starts_with(&issuer_prefix) {
                    // Left the provider (the client's redirect_uri or post-logout URI).
                    return Stop::Left { status, url: next };
                }
                url = next;
                response = self.send(self.client.get(url.clone()), &url).await;
                continue;
            }

            let body = response.text().await.expect("read oidc-provider page");
            let Some(form) = Form::parse(&body) else {
                return Stop::Page { status, url, body };
            };
            assert_eq!(
                status,
                StatusCode::OK,
                "oidc-provider answered {url} with {status}: {body}"
            );
            let mut fields = form.hidden;
            fill(&mut fields);
            url = url.join(&form.action).expect("form action is a valid URL");
            response = self
                .send(self.client.post(url.clone()).form(&fields), &url)
                .await;
        }
        panic!("oidc-provider did not send the browser off within {MAX_HOPS} hops (last: {url})");
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &Url) -> Response {
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("oidc-provider request to {url}: {e}"))
    }
}

/// The first `<form>` of a provider page: its action and hidden inputs.
#[derive(Debug)]
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
}

impl Form {
    fn parse(html: &str) -> Option<Form> {
        let start = html.find("<form")?;
        let html = &html[start..];
        let end = html.find("</form>").unwrap_or(html.len());
        let form = &html[..end];
        let action = attribute(tag_at(form, 0), "action")?;
        let mut hidden = Vec::new();
        let mut rest = form;
        while let Some(i) = rest.find("<input") {
            let tag = tag_at(rest, i);
            if attribute(tag, "type").as_deref() == Some("hidden") {
                if let Some(name) = attribute(tag, "name") {
                    hidden.push((name, attribute(tag, "value").unwrap_or_default()));
                }
            }
            rest = &rest[i + tag.len()..];
        }
        Some(Form { action, hidden })
    }
}

/// The tag starting at `html[at..]`, up to and including its `>`.
fn tag_at(html: &str, at: usize) -> &str {
    let tag = &html[at..];
    tag.find('>').map_or(tag, |end| &tag[..=end])
}

/// A double-quoted attribute's value, HTML entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(decode_entities(&tag[start..start + len]))
}

fn decode_entities(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
