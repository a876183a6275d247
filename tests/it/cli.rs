//! The binary: `check`, `keygen`, exit 64 on bad config, and SIGTERM draining a request.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use token_handler::crypto::KeyRing;

const BIN: &str = env!("CARGO_BIN_EXE_token-handler");

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("th-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("token-handler.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn keygen_prints_a_usable_random_key() {
    let run = || {
        let out = Command::new(BIN)
            .arg("keygen")
            .output()
            .expect("run keygen");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    let ring = KeyRing::parse(&a).expect("keygen output is a valid key spec");
    assert!(a.starts_with(&format!("{}:", ring.current_kid())));
}

/// A `sid` or `sub` is opaque: one that begins with `-` (base64url session ids do, one in 64)
/// is a value, not an option (here the run then fails on its config, not on its arguments).
#[test]
fn sessions_end_takes_values_that_begin_with_a_hyphen() {
    for flag in ["--sid", "--sub"] {
        let out = Command::new(BIN)
            .args([
                "sessions",
                "end",
                "--config",
                "/nonexistent/th.toml",
                flag,
                "-Jx4",
            ])
            .output()
            .expect("run sessions end");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(!err.contains("unexpected argument"), "{flag}: {err}");
        assert!(err.contains("th.toml"), "{flag}: {err}");
    }
}

#[test]
fn check_lists_every_problem_and_exits_64() {
    let path = write_config(
        "bad",
        r#"
[server]
listen = "not an address"
[upstream]
url = "ftp://nowhere"
[idp]
dialect = "saml"
[session]
same_site = "sometimes"
"#,
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("TOKEN_HANDLER_COOKIE_KEYS")
        .output()
        .expect("run check");
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "server.listen",
        "upstream.url",
        "idp.dialect",
        "idp.client_id",
        "session.same_site",
        "TOKEN_HANDLER_COOKIE_KEYS",
    ] {
        assert!(
            stderr.contains(needle),
            "`{needle}` missing from:\n{stderr}"
        );
    }
    // Running with the same config fails the same way, before binding anything.
    let run = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(64));
}

#[test]
fn check_accepts_the_shipped_example_config() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/token-handler.toml");
    let out = Command::new(BIN)
        .args(["check", "--config", path])
        .env("TOKEN_HANDLER_COOKIE_KEYS", KEY1)
        .env("TOKEN_HANDLER_CLIENT_SECRET", "example")
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `check` with a config whose `[idp]` ends with `idp_extra`, with these variables set (and
/// no client secret): (exit code, stdout, stderr).
fn check_idp(
    name: &str,
    dialect: &str,
    idp_extra: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let path = write_config(
        name,
        &format!(
            r#"
[upstream]
url = "http://127.0.0.1:3000"
[idp]
dialect = "{dialect}"
issuer = "https://idp.example.com"
client_id = "spa"
redirect_uri = "https://app.example.com/auth/callback"
{idp_extra}
"#
        ),
    );
    let mut command = Command::new(BIN);
    command
        .args(["check", "--config"])
        .arg(&path)
        .env("TOKEN_HANDLER_COOKIE_KEYS", KEY1)
        .env_remove("TOKEN_HANDLER_CLIENT_SECRET")
        .env_remove("TOKEN_HANDLER_CLIENT_KEY")
        .env_remove("TOKEN_HANDLER_CLIENT_KEY_FILE");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_the_client_authentication_in_force() {
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/client_key/testdata/ec.jwk.json"
    );
    let (code, out, err) = check_idp(
        "pkjwt",
        "oauth2",
        "",
        &[("TOKEN_HANDLER_CLIENT_KEY_FILE", key)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "client authentication: private_key_jwt signed ES256 with the key in \
             TOKEN_HANDLER_CLIENT_KEY (kid ec-1); tokens: Bearer)"
        ),
        "{out}"
    );
    let private_part =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(key).expect("key"))
            .expect("jwk")["d"]
            .as_str()
            .expect("d")
            .to_owned();
    assert!(!out.contains(&private_part) && !err.contains(&private_part));

    // Workload identity: the platform's token, its expiry shown, never its content.
    let dir = write_config("assertion-dir", "").with_file_name("token.jwt");
    let now = token_handler::refresh::unix_now();
    let claims = serde_json::json!({"iss": "spa", "sub": "spa", "exp": now + 3600});
    let token = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl",
        token_handler::b64::url_encode(claims.to_string())
    );
    std::fs::write(&dir, &token).expect("token");
    let (code, out, err) = check_idp(
        "assertion",
        "oauth2",
        &format!("client_assertion_file = \"{}\"", dir.display()),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "client authentication: private_key_jwt with the platform's assertion from {}, \
             expires in ",
            dir.display()
        )),
        "{out}"
    );
    assert!(!out.contains(&token));

    let (_, out, _) = check_idp("public", "oauth2", "", &[]);
    assert!(
        out.contains("client authentication: none (a public client)"),
        "{out}"
    );
    let (code, out, err) = check_idp("dpop", "oauth2", "dpop = true", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("tokens: DPoP-bound (ES256 key per session))"),
        "{out}"
    );
    let (code, _, err) = check_idp("dpop-tokenidp", "tokenidp", "dpop = true", &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("idp.dpop: TokenIDP issues Bearer tokens only"),
        "{err}"
    );

    // TokenIDP takes no client assertion; a key that cannot sign is named, not shown.
    let (code, _, err) = check_idp(
        "tokenidp",
        "tokenidp",
        "",
        &[("TOKEN_HANDLER_CLIENT_KEY_FILE", key)],
    );
    assert_eq!(code, 64);
    assert!(
        err.contains("idp.client_auth: private_key_jwt is not accepted by TokenIDP"),
        "{err}"
    );
    let short = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/client_key/testdata/rsa1024.pem"
    );
    let (code, _, err) = check_idp(
        "short",
        "oauth2",
        "",
        &[("TOKEN_HANDLER_CLIENT_KEY_FILE", short)],
    );
    assert_eq!(code, 64);
    assert!(
        err.contains(
            "TOKEN_HANDLER_CLIENT_KEY: the key cannot sign RS256 (RSA needs at least 2048 bits"
        ),
        "{err}"
    );
}

#[test]
fn check_names_pushed_authorization_and_refuses_what_cannot_work() {
    let (code, out, err) = check_idp("par-auto", "oauth2", "", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "pushed authorization requests: when the IdP's discovery document advertises its \
             endpoint"
        ),
        "{out}"
    );
    let (code, out, err) = check_idp(
        "par-configured-endpoints",
        "oauth2",
        "token_endpoint = \"https://idp.example.com/token\"\n\
         authorization_endpoint = \"https://idp.example.com/auth\"\n\
         jwks_uri = \"https://idp.example.com/jwks\"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pushed authorization requests: none (no endpoint configured"),
        "{out}"
    );
    let (code, out, err) = check_idp(
        "par-explicit",
        "oauth2",
        "pushed_authorization = \"always\"\n\
         pushed_authorization_request_endpoint = \"https://idp.example.com/par\"",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pushed authorization requests: always, at https://idp.example.com/par"),
        "{out}"
    );
    let (code, _, err) = check_idp(
        "par-tokenidp",
        "tokenidp",
        "pushed_authorization = \"always\"",
        &[],
    );
    assert_eq!(code, 64);
    assert!(
        err.contains(
            "idp.pushed_authorization: \"always\" is not possible with TokenIDP: it has no \
             pushed authorization request endpoint (RFC 9126)"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_request_then_exits_0() {
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let echo = echo::Echo::start().await;
    let config = config_toml(
        &idp.url(),
        &echo.url(),
        "tokenidp",
        &[("server", "admin_listen = \"127.0.0.1:0\"")],
    );
    let mut child = child::Running::start(&config, KEY1).await;
    let (addr, admin) = (child.addr.to_string(), child.admin.to_string());
    let readyz = |admin: String| async move {
        client()
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16()
    };
    assert_eq!(
        readyz(admin.clone()).await,
        200,
        "ready once the IdP's metadata is known"
    );

    // A session whose sealed cookie the child can open (same keys).
    let issued = idp.issue(CLIENT_ID, "demo", SCOPE);
    let local = Proxy::start(&config, KEY1).await;
    let jar = seal(&local.app, &issued, false);
    let http = client();
    let in_flight = tokio::spawn({
        let url = format!("http://{addr}/slow");
        let cookie = jar.header();
        let http = http.clone();
        async move { http.get(url).header("cookie", cookie).send().await }
    });
    echo.started.notified().await;

    let status = Command::new("kill")
        .args(["-TERM", &child.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    while let Some(line) = child.logs.recv().await {
        if line.contains("shutting down") {
            break;
        }
    }
    // Stopped accepting: a new connection is refused while the old request is still open,
    // and the pod is taken out of the Service at once.
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "listener closed on SIGTERM"
    );
    assert_eq!(
        readyz(admin.clone()).await,
        503,
        "/readyz turns unready while draining"
    );
    echo.release.notify_one();
    let response = in_flight
        .await
        .expect("task")
        .expect("the in-flight request completed");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "slow done");
    assert_eq!(child.exit_code().await, Some(0));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let config = config_toml(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        "tokenidp",
        &[("server", "admin_listen = \"127.0.0.1:0\"")],
    ) + "[log]\nformat = \"json\"\n";
    let path = write_config("json", &config);
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .env("TOKEN_HANDLER_COOKIE_KEYS", KEY1)
        .env("TOKEN_HANDLER_CLIENT_SECRET", CLIENT_SECRET)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = 0;
    for line in lines.by_ref().take(3) {
        let line = line.expect("line");
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            object["level"].is_string() && object["message"].is_string(),
            "{line}"
        );
        seen += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, 3);
}
