use super::*;
use crate::config::ClientAuth;

const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

const MINIMAL: &str = r#"
    [upstream]
    url = "http://127.0.0.1:3000"
    [idp]
    dialect = "tokenidp"
    issuer = "https://idp.example.com"
    client_id = "spa"
    redirect_uri = "https://app.example.com/auth/callback"
"#;

#[test]
fn a_minimal_config_is_valid() {
    let c = Config::from_toml(MINIMAL, &env_with(&[(COOKIE_KEYS_ENV, KEY)])).expect("valid");
    assert!(
        c.coordination.is_none(),
        "one replica unless a Redis is named"
    );
    assert!(c.secrets.client_secret.is_none());
    assert!(c.secrets.cookie_keys_file.is_none());
}

#[test]
fn urls_with_credentials_are_refused_without_echoing_them() {
    let url = Some("http://api:hunter2@127.0.0.1:3000".to_string());
    let (url, problems) = checked(|p| p.url("upstream.url", url));
    assert!(url.is_none());
    assert_eq!(
        problems,
        ["upstream.url: must not carry credentials (user:password@)"]
    );
}

/// Every problem is listed, in the order sections are validated (the secrets where they
/// are needed: the client secret before `[idp]`, the cookie keys last): operators and
/// scripts compare `token-handler check` output, so the order is part of the interface.
#[test]
fn every_problem_is_reported_together_in_section_order() {
    let text = r#"
        [wat]
        [coordination]
        redis_url = "nope"
        [log]
        format = "yaml"
        [csrf]
        header = "bad header"
        [proxy]
        auth_prefix = "x"
        [session]
        secure = false
        [idp]
        dialect = "saml"
        client_auth = "basic"
        [upstream]
        connect_timeout = "soon"
        [server]
        listen = "nope"
        lisen = "typo"
    "#;
    let env = env_with(&[
        (CLIENT_SECRET_ENV, "x"),
        ("TOKEN_HANDLER_CLIENT_SECRET_FILE", "y"),
    ]);
    let err = Config::from_toml(text, &env).expect_err("invalid");
    let order = [
        "unknown section [wat]",
        "[server]: unknown field `lisen`",
        "upstream.url: required",
        "upstream.connect_timeout",
        "set TOKEN_HANDLER_CLIENT_SECRET or",
        "idp.dialect",
        "idp.issuer",
        "idp.client_id",
        "idp.client_auth: Basic needs a client secret",
        "idp.redirect_uri: required",
        "session.host_prefix",
        "proxy.auth_prefix",
        "csrf.header",
        "log.format",
        "coordination.redis_url",
        "TOKEN_HANDLER_COOKIE_KEYS (or",
    ];
    assert_eq!(err.0.len(), order.len(), "{:#?}", err.0);
    for (problem, start) in err.0.iter().zip(order) {
        assert!(
            problem.starts_with(start),
            "`{start}` expected, got `{problem}`"
        );
    }
}

#[test]
fn secrets_come_from_env_or_files_and_never_appear_in_errors() {
    let dir = std::env::temp_dir().join(format!("th-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key_file = dir.join("keys");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("write");
    let path = key_file.to_string_lossy().to_string();
    let env = env_with(&[
        ("TOKEN_HANDLER_COOKIE_KEYS_FILE", &path),
        (CLIENT_SECRET_ENV, "s3cr3t-value"),
    ]);
    let c = Config::from_toml(MINIMAL, &env).expect("valid");
    assert_eq!(
        c.secrets.client_secret.as_ref().map(|s| s.expose()),
        Some("s3cr3t-value")
    );
    assert_eq!(
        c.idp.client_auth,
        ClientAuth::Basic,
        "a secret defaults to Basic"
    );
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
    assert!(!format!("{c:?}").contains("AAECAwQF"));

    let bad = env_with(&[
        (COOKIE_KEYS_ENV, "k1:c2VjcmV0LWJ5dGVz"),
        (CLIENT_SECRET_ENV, "x"),
    ]);
    let err = Config::from_toml(MINIMAL, &bad).expect_err("short key");
    assert!(!err.to_string().contains("c2VjcmV0LWJ5dGVz"), "{err}");
    let both = env_with(&[
        (COOKIE_KEYS_ENV, KEY),
        ("TOKEN_HANDLER_COOKIE_KEYS_FILE", &path),
    ]);
    let err = Config::from_toml(MINIMAL, &both).expect_err("both set");
    assert!(err.to_string().contains("not both"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
