//! The cmdb minion: the agent behind `cmdb-minion`.
//!
//! [`run`] connects to the master, authenticates with the minion's ed25519
//! key, takes signed jobs from the publish socket, runs them and returns
//! signed results until acknowledged. The `facts` crate's collectors gather the host's asset
//! facts, also without a master (`cmdb-minion collect --stdout`).

pub mod config;
pub mod error;
pub mod executor;
pub mod files;
pub mod identity;
pub mod machine;
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

/// `cmdb-minion call`: runs one function on this host, as a job would, and
/// answers its outcome. With `local`, `cmdb://` files and state files come
/// from the config's `file_roots` and no master is needed; without it, the
/// minion's key authenticates to the master once and files come from the
/// master's file server (no jobs are taken; a running daemon is not
/// disturbed).
pub async fn call(
    cfg: MinionConfig,
    fun: &str,
    args: &[String],
    kwargs: &std::collections::BTreeMap<String, String>,
    local: bool,
    timeout: Duration,
) -> Result<modules::Outcome, MinionError> {
    let (id, minion) = if local {
        (identity::peek_id(&cfg), None)
    } else {
        let ident = identity::Identity::load(&cfg)?;
        let m = Arc::new(session::Minion::for_call(cfg.clone(), ident)?);
        session::connect_for_call(&m).await?;
        (m.ident.id.to_string(), Some(m))
    };
    let ctx = modules::CallContext {
        id,
        collect: cfg.collect_settings(),
        minion,
        timeout,
        state_dir: cfg.state_dir.clone(),
        file_roots: if local {
            cfg.file_roots.clone()
        } else {
            Vec::new()
        },
    };
    Ok(
        match tokio::time::timeout(timeout, modules::call(fun, args, kwargs, &ctx)).await {
            Ok(outcome) => outcome,
            Err(_) => modules::Outcome::fail(
                format!("the call timed out after {} s", timeout.as_secs()),
                124,
            ),
        },
    )
}

/// Runs the minion until `shutdown` completes; running jobs get a moment to
/// deliver their returns.
pub async fn run(cfg: MinionConfig, shutdown: impl Future<Output = ()>) -> Result<(), MinionError> {
    let ident = identity::Identity::load(&cfg)?;
    let masters: Vec<String> = cfg.masters().iter().map(|m| m.name.clone()).collect();
    info!(minion_id = %ident.id, master = %masters.join(", "), "minion starting");
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
