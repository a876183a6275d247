//! A cookie-key rotation reaching three replicas at different moments, as kubelet updates each
//! pod's mounted Secret on its own schedule: each replica reads its own
//! `TOKEN_HANDLER_COOKIE_KEYS_FILE`, and a browser keeps calling them round-robin while the
//! files change one by one.

use super::{clears_session, statuses, REFRESHED, REJECTED};
use crate::support::cluster::{newest, Cluster, Options};
use crate::support::redis_server::RedisServer;
use crate::support::*;
use base64::Engine;
use std::path::{Path, PathBuf};
use std::time::Duration;

const STAGED: &str = "staged:";

/// One key file per replica, each holding `KEY1`.
fn key_files(name: &str) -> Vec<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "th-rotation-{}-{name}-{}",
        std::process::id(),
        token_handler::crypto::random_token(6)
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let files: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("keys-{i}"))).collect();
    for f in &files {
        write_atomically(f, KEY1);
    }
    files
}

/// As Kubernetes updates a mounted Secret: a new file, then an atomic rename.
fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Writes replica `i`'s key file and returns once that replica has re-read it (bounded),
/// checking it holds the key ids `kids` and seals with `sealing`.
async fn update(c: &Cluster, files: &[PathBuf], i: usize, spec: &str, kids: &str, sealing: &str) {
    let mut reloads = c.proxies[i].app.reloads.subscribe();
    write_atomically(&files[i], spec);
    tokio::time::timeout(Duration::from_secs(10), reloads.changed())
        .await
        .expect("the replica re-read its key file")
        .expect("reload channel open");
    let ring = c.proxies[i].app.codec.key_ring();
    assert_eq!(
        format!("{ring:?}"),
        format!("KeyRing {{ key_ids: {kids} }}")
    );
    assert_eq!(ring.current_kid(), sealing, "replica {i} seals with");
}

/// The id of the key that sealed the browser's session cookie (the sealed value's header:
/// version, kid length, kid).
fn sealed_with(jar: &Jar) -> String {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jar.session().expect("a session cookie"))
        .expect("base64url");
    String::from_utf8(raw[2..2 + raw[1] as usize].to_vec()).expect("kid")
}

/// The browser's calls, round-robin over the replicas: each must succeed and keep the session.
struct Browser {
    jar: Jar,
    calls: usize,
}

impl Browser {
    async fn call(&mut self, c: &Cluster) {
        let replica = self.calls % c.proxies.len();
        let r = c
            .get(replica, &format!("/api/{}", self.calls), &self.jar)
            .await;
        assert_eq!(r.status(), 200, "call {} (replica {replica})", self.calls);
        assert!(
            !clears_session(&r),
            "call {} cleared the cookie",
            self.calls
        );
        self.jar.update(&r);
        self.calls += 1;
    }

    async fn round(&mut self, c: &Cluster) {
        for _ in 0..c.proxies.len() {
            self.call(c).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rotation_reaching_replicas_at_different_moments_logs_nobody_out() {
    let files = key_files("staged");
    let redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        redis_url: Some(redis.url()),
        server: "reload_interval = \"100ms\"\n".into(),
        key_files: files.clone(),
        ..Options::default()
    })
    .await;
    let mut browser = Browser {
        jar: c.login().await,
        calls: 0,
    };
    browser.round(&c).await;

    // Step 1, one replica after the other: the new key staged (opens, never seals).
    for i in 0..3 {
        let spec = format!("{KEY1},{STAGED}{KEY2}");
        update(&c, &files, i, &spec, r#"["k1", "k2"]"#, "k1").await;
        browser.round(&c).await;
    }
    assert_eq!(sealed_with(&browser.jar), "k1", "a staged key never seals");

    // Step 2, one replica at a time: the new key seals. Replicas still on step 1 open what the
    // switched ones seal, and do not re-seal it backwards.
    for i in 0..3 {
        update(
            &c,
            &files,
            i,
            &format!("{KEY2},{KEY1}"),
            r#"["k2", "k1"]"#,
            "k2",
        )
        .await;
        browser.round(&c).await;
        if i == 0 {
            // A refresh storm while the replicas seal with different keys: they share one
            // `/token` call through Redis (keys hashed without the cookie keys; the shared
            // result sealed by one opens on the others).
            let before = c.refreshes();
            c.wait_for_expiry(&browser.jar).await;
            let results = c.storm(&browser.jar, 30).await;
            assert!(
                results.iter().all(|(s, _)| *s == 200),
                "{:?}",
                statuses(&results)
            );
            assert!(!results
                .iter()
                .flat_map(|(_, lines)| lines)
                .any(|l| l.contains("Max-Age=0")));
            assert_eq!(c.refreshes(), before + 1.0, "one /token call");
            browser.jar = newest(&browser.jar, &results);
        }
    }
    browser.round(&c).await;
    assert_eq!(sealed_with(&browser.jar), "k2");

    // Step 3: the old key removed, again one replica at a time.
    for i in 0..3 {
        update(&c, &files, i, KEY2, r#"["k2"]"#, "k2").await;
        browser.round(&c).await;
    }
    let rt = c.session(&browser.jar).refresh_token.expose().to_string();
    assert!(c.provider.active(&rt).await, "the grant is alive");
    assert_eq!(c.count(REJECTED), 0.0);
    assert!(c.count(REFRESHED) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_prepended_on_one_replica_only_gets_503_elsewhere_never_a_logout() {
    let files = key_files("prepended");
    let c = Cluster::build(Options {
        server: "reload_interval = \"100ms\"\n".into(),
        key_files: files.clone(),
        // No refresh during this test: what is seen is the cookie keys alone.
        access_ttl: 60,
        ..Options::default()
    })
    .await;
    let mut jar = c.login().await;

    // The old procedure: the new key prepended at once, on one replica only (the others
    // have not received the Secret yet). It re-seals the browser's cookie with the new key.
    update(
        &c,
        &files,
        0,
        &format!("{KEY2},{KEY1}"),
        r#"["k2", "k1"]"#,
        "k2",
    )
    .await;
    let r = c.get(0, "/api/a", &jar).await;
    assert_eq!(r.status(), 200);
    jar.update(&r);
    assert_eq!(sealed_with(&jar), "k2");

    // The other replicas cannot open it: 503 key_unavailable with Retry-After, the cookie kept.
    for replica in [1, 2] {
        let r = c.get(replica, "/api/b", &jar).await;
        assert_eq!(r.status(), 503, "replica {replica}");
        assert!(r.headers().contains_key("retry-after"));
        assert!(session_set_cookies(&r).is_empty(), "the cookie is kept");
        assert_eq!(json(r).await["error"], "key_unavailable");
    }
    // The browser's next try on the first replica works, and on another one as soon as that
    // one has the key.
    assert_eq!(c.get(0, "/api/c", &jar).await.status(), 200);
    update(
        &c,
        &files,
        1,
        &format!("{KEY2},{KEY1}"),
        r#"["k2", "k1"]"#,
        "k2",
    )
    .await;
    let r = c.get(1, "/api/d", &jar).await;
    assert_eq!(r.status(), 200);
    assert!(!clears_session(&r));
}
