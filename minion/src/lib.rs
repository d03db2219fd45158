//! The cmdb minion: the agent behind `cmdb-minion`.
//!
//! [`run`] connects to the master, authenticates with the minion's ed25519
//! key, takes signed jobs from the publish socket, runs them and returns
//! signed results until acknowledged. [`collectors`] gather the host's asset
//! facts, also without a master (`cmdb-minion collect --stdout`).

pub mod collectors;
pub mod config;
pub mod error;
pub mod executor;
pub mod files;
pub mod identity;
pub mod modules;
pub mod outbox;
pub mod session;
pub mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::MinionConfig;
pub use error::MinionError;
use tracing::info;

/// Runs the minion until `shutdown` completes; running jobs get a moment to
/// deliver their returns.
pub async fn run(cfg: MinionConfig, shutdown: impl Future<Output = ()>) -> Result<(), MinionError> {
    let ident = identity::Identity::load(&cfg)?;
    info!(minion_id = %ident.id, master = %cfg.master, "minion starting");
    let m = Arc::new(session::Minion::new(cfg, ident)?);
    let sessions = tokio::spawn(session::run_sessions(m.clone()));
    let pushes = tokio::spawn(executor::agent_push(m.clone()));
    shutdown.await;
    info!("minion shutting down");
    m.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), m.tasks.wait()).await;
    // Tell the master, so that this host counts as offline now rather
    // than after offline_after_secs of silence.
    if let Some(link) = m.link() {
        match tokio::time::timeout(
            Duration::from_secs(2),
            link.request(protocol::RequestBody::Leaving, false),
        )
        .await
        {
            Ok(Ok(_)) => info!("told the master this minion is stopping"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not tell the master this minion is stopping")
            }
            Err(_) => tracing::warn!("the master did not answer the stopping notice in time"),
        }
    }
    m.cancel.cancel();
    let _ = sessions.await;
    let _ = pushes.await;
    m.tasks.wait().await;
    info!("minion stopped");
    Ok(())
}
