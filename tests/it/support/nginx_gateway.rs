//! The harness behind a real nginx: the proxy with its forward-auth listener, the echo API and
//! the emulator, and nginx in front of them with the documented config
//! ([`super::nginx::forward_auth_conf`]). Every answer nginx gives is kept, to be scanned for
//! tokens.

use super::nginx::{forward_auth_conf, Nginx, StartError};
use super::{Flavor, Harness, Jar, COOKIE, KEY1};
use std::sync::Mutex;

const FORWARD_AUTH: [(&str, &str); 2] = [
    ("forward_auth", "listen = \"127.0.0.1:0\""),
    ("forward_auth", "gateway = \"nginx\""),
];

/// The harness behind nginx.
pub struct Gateway {
    pub h: Harness,
    pub nginx: Nginx,
    /// Every answer nginx gave (status, headers, body), to scan for tokens.
    answers: Mutex<Vec<String>>,
}

/// What nginx answered, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_string())
    }

    /// The `Set-Cookie` lines for the session cookie (base name and chunks).
    pub fn session_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_string())
            .filter(|l| l.starts_with(COOKIE))
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON: {}", self.body))
    }

    /// The proxy's JSON error, as the SPA reads it: status, content type, code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(self.json()["error"], code, "{}", self.body);
    }
}

/// nginx on a port reserved before the harness (the IdP and the proxy must know the callback
/// URL): when another process takes it before nginx binds it, all again on a fresh one.
pub async fn gateway(tweaks: &[(&str, &str)]) -> Gateway {
    gateway_with(tweaks, |_, conf| conf).await
}

/// Like [`gateway`], with the documented config changed by `edit` first.
pub async fn gateway_with(
    tweaks: &[(&str, &str)],
    edit: impl Fn(&Harness, String) -> String,
) -> Gateway {
    let mut all = FORWARD_AUTH.to_vec();
    all.extend_from_slice(tweaks);
    for _ in 0..5 {
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = reserved.local_addr().expect("addr").port();
        let public = format!("http://127.0.0.1:{port}");
        let h = Harness::behind(Flavor::TokenIdpServer, &all, KEY1, &public).await;
        let verify = h.proxy.verify_url.clone().expect("forward-auth listener");
        let conf = forward_auth_conf(port, &h.proxy.url, &verify, &h.echo.url());
        let conf = edit(&h, conf);
        drop(reserved);
        match Nginx::try_start(port, &conf).await {
            Ok(nginx) => {
                return Gateway {
                    h,
                    nginx,
                    answers: Mutex::default(),
                }
            }
            Err(StartError::AddressInUse) => continue,
            Err(StartError::Failed(log)) => panic!("nginx did not start: {log}"),
        }
    }
    panic!("no port for nginx in 5 tries");
}

impl Gateway {
    /// A browser's request to nginx: `path_or_url` below nginx's URL (or whole), the jar's
    /// cookies, `extra` headers, a body for unsafe methods.
    pub async fn send(
        &self,
        method: &str,
        path_or_url: &str,
        jar: &Jar,
        extra: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.nginx.url())
        };
        let mut request = self
            .h
            .http
            .request(method.parse().expect("method"), url)
            .header("cookie", jar.header());
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.expect("nginx answered");
        let answer = Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        };
        self.answers.lock().expect("answers").push(format!(
            "{} {:?}\n{}",
            answer.status, answer.headers, answer.body
        ));
        answer
    }

    pub async fn get(&self, path: &str, jar: &Jar) -> Answer {
        self.send("GET", path, jar, &[], None).await
    }

    /// A login through nginx: `/auth/login` → the IdP → nginx's `/auth/callback`.
    pub async fn browser_login(&self) -> Jar {
        let mut jar = Jar::default();
        let login = self.get("/auth/login?return_to=/", &jar).await;
        assert_eq!(login.status, 302, "{}", self.nginx.error_log());
        update(&mut jar, &login);
        let authorize = login.header("location").expect("to the IdP");
        let callback = self.h.follow_idp(&authorize).await;
        assert!(
            callback.starts_with(&format!("{}/auth/callback?", self.nginx.url())),
            "{callback}"
        );
        let done = self.get(&callback, &jar).await;
        assert_eq!(
            done.status, 200,
            "the page that goes on to return_to: {}",
            done.body
        );
        update(&mut jar, &done);
        assert!(jar.session().is_some(), "a session cookie");
        jar
    }

    /// No answer nginx gave carried a token the IdP issued (access, refresh, ID, code).
    pub fn assert_no_token_reached_the_browser(&self) {
        let secrets = self.h.idp.issued_secrets();
        assert!(!secrets.is_empty());
        let answers = self.answers.lock().expect("answers");
        assert!(!answers.is_empty());
        for answer in answers.iter() {
            for secret in &secrets {
                assert!(!answer.contains(secret.as_str()), "a token in {answer}");
            }
        }
    }

    /// The Bearer tokens the API received for `uri`, in order.
    pub fn bearers(&self, uri: &str) -> Vec<Option<String>> {
        let records = self.h.echo.records();
        let seen = records.iter().filter(|r| r.uri == uri);
        seen.map(|r| r.header("authorization")).collect()
    }
}

pub fn update(jar: &mut Jar, answer: &Answer) {
    for line in answer.headers.get_all("set-cookie") {
        jar.set(line.to_str().expect("ascii"));
    }
}
