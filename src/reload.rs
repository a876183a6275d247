//! Hot reload of mounted files: the TLS certificate and key, the cookie keys, the client secret
//! and the client's signing key (`private_key_jwt`).
//!
//! Kubernetes updates a mounted Secret by swapping a symlink, so the files are polled every
//! `server.reload_interval` and compared by content digest (mtimes of the link target can go
//! backwards). A file that fails to parse is logged and ignored: the previous value stays.
//! A new first cookie key seals from then on; the old keys still open, so no session drops.

use crate::app::App;
use crate::crypto::KeyRing;
use crate::secret::ClientSecret;
use ring::digest::{digest, SHA256};
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{error, info};

#[derive(Debug, Clone, Copy)]
enum What {
    Tls,
    CookieKeys,
    ClientSecret,
    ClientKey,
}

struct Watched {
    what: What,
    paths: Vec<PathBuf>,
    digest: Option<Vec<u8>>,
}

/// Starts the reload task when anything is mounted from files.
pub fn spawn(app: &Arc<App>) {
    let config = &app.config;
    let mut watched = Vec::new();
    if let Some(tls) = &config.server.tls {
        watched.push((What::Tls, vec![tls.cert.clone(), tls.key.clone()]));
    }
    if let Some(path) = &config.secrets.cookie_keys_file {
        watched.push((What::CookieKeys, vec![path.clone()]));
    }
    if let Some(path) = &config.secrets.client_secret_file {
        watched.push((What::ClientSecret, vec![path.clone()]));
    }
    if let Some(path) = &config.secrets.client_key_file {
        watched.push((What::ClientKey, vec![path.clone()]));
    }
    if watched.is_empty() {
        return;
    }
    let mut watched: Vec<Watched> = watched
        .into_iter()
        .map(|(what, paths)| {
            let digest = contents_digest(&paths);
            Watched {
                what,
                paths,
                digest,
            }
        })
        .collect();
    let app = Arc::clone(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(app.config.server.reload_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            for w in &mut watched {
                let now = contents_digest(&w.paths);
                if now.is_none() || now == w.digest {
                    continue;
                }
                w.digest = now;
                match apply(&app, w.what, &w.paths) {
                    Ok(()) => info!(what = ?w.what, "reloaded from the mounted file"),
                    Err(e) => {
                        error!(what = ?w.what, error = %e, "reload failed; keeping the previous value")
                    }
                }
                app.reloads.send_modify(|n| *n += 1);
            }
        }
    });
}

fn contents_digest(paths: &[PathBuf]) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    for path in paths {
        all.extend_from_slice(&std::fs::read(path).ok()?);
        all.push(0);
    }
    Some(digest(&SHA256, &all).as_ref().to_vec())
}

/// Why a changed file was not applied (the previous value stays).
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Keys(#[from] crate::crypto::KeyError),
    #[error("client key: {0}")]
    ClientKey(#[from] crate::client_key::ClientKeyError),
}

fn apply(app: &App, what: What, paths: &[PathBuf]) -> Result<(), ReloadError> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|source| ReloadError::Read {
                path: path.clone(),
                source,
            })
    };
    match what {
        What::Tls => {
            let key = crate::tls::load_certified_key(&paths[0], &paths[1])?;
            if let Some(cert) = &app.tls {
                cert.replace(key);
            }
        }
        What::CookieKeys => {
            let ring = KeyRing::parse(&read(&paths[0])?)?;
            let roles: Vec<String> = ring
                .roles()
                .iter()
                .map(|(kid, role)| format!("{kid} {role}"))
                .collect();
            info!(
                current_kid = ring.current_kid(),
                keys = %roles.join(", "),
                "cookie keys reloaded"
            );
            app.codec.set_keys(ring);
        }
        What::ClientSecret => {
            let secret = read(&paths[0])?;
            app.idp
                .set_secret((!secret.is_empty()).then(|| ClientSecret::new(secret)));
        }
        What::ClientKey => {
            let idp = &app.config.idp;
            let key = crate::client_key::ClientKey::parse(
                &read(&paths[0])?,
                idp.client_key_alg,
                idp.client_key_id.as_deref(),
            )?;
            info!(alg = ?key.alg(), kid = key.kid(), "client key reloaded");
            app.idp.set_client_key(key);
        }
    }
    Ok(())
}
