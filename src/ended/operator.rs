//! `token-handler sessions end --sub S | --sid S`: the kill switch for incident response, without
//! the IdP. It reads the same configuration and secrets as the proxy and writes one entry to
//! the shared record (Redis); every replica refuses the sessions it names from its next read of
//! the record (`coordination.ended_sync_interval`), revoking each one's refresh token once.

use super::shared::Shared;
use super::{Entry, Kind, Reason};
use crate::config::Config;
use crate::metrics::Metrics;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("sessions end needs [coordination]: without Redis the record of ended sessions lives in the proxy's memory only (end the IdP session instead, or rotate the cookie keys to end every session)")]
    NoCoordination,
    #[error("cannot reach Redis: {0}")]
    Setup(#[from] crate::coordination::CoordinationSetupError),
    #[error("Redis did not take the entry: {0}")]
    NotShared(#[from] super::NotShared),
}

/// Ends every session of IdP session `value` (`Kind::Sid`) or of user `value` (`Kind::Sub`,
/// the sessions begun by now). Returns the entry written.
pub async fn end(config: &Config, kind: Kind, value: &str) -> Result<Entry, OperatorError> {
    let coordination = config
        .coordination
        .as_ref()
        .ok_or(OperatorError::NoCoordination)?;
    let lifetime = config.session.lifetime;
    let shared = Shared::new(coordination, lifetime, Arc::new(Metrics::new()))?;
    let now = crate::refresh::unix_now();
    let entry = Entry::named(kind, value, Reason::Operator, lifetime.as_secs(), now);
    shared.publish(entry, true).await?;
    Ok(entry)
}
