//! The master's event bus: what happens (jobs published, returns stored,
//! minions authenticating, keys changing, presence flipping, assets
//! changing) as tagged events, in Salt's style, for `GET /v1/events`.
//!
//! Events are only built while someone listens; a listener that falls
//! behind by more than the bus holds is told how many it missed.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::server::now_ms;

/// How many events the bus holds for a slow listener.
pub const CAPACITY: usize = 16_384;

/// One event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BusEvent {
    /// What happened: `cmdb/job/<jid>/new`, `cmdb/job/<jid>/ret/<id>`,
    /// `cmdb/auth`, `cmdb/key`, `cmdb/presence/<id>`,
    /// `cmdb/asset/<asset_id>/changed`, or `cmdb/lagged` when a slow
    /// listener missed events.
    pub tag: String,
    /// When, unix milliseconds.
    pub time_ms: i64,
    /// The event's data (its shape depends on the tag).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A return stored (`cmdb/job/<jid>/ret/<id>`): what it was, not its data
/// (`GET /v1/jobs/{jid}` has that), so a slow listener holds little.
#[derive(Debug, Serialize)]
pub struct ReturnEvent<'a> {
    /// The job.
    pub jid: &'a str,
    /// The minion.
    pub id: &'a str,
    /// The function.
    pub fun: &'a str,
    /// Whether it succeeded.
    pub success: bool,
    /// Its return code.
    pub retcode: i32,
}

/// A minion authenticating (`cmdb/auth`).
#[derive(Debug, Serialize)]
pub struct AuthEvent<'a> {
    /// The minion id.
    pub id: &'a str,
    /// `accepted`, `pending`, `rejected` or `denied`.
    pub result: &'a str,
    /// The key's fingerprint.
    pub fingerprint: String,
}

/// A key changed by an operator (`cmdb/key`).
#[derive(Debug, Serialize)]
pub struct KeyEvent<'a> {
    /// The minion id.
    pub id: &'a str,
    /// `accept`, `reject` or `delete`.
    pub act: &'a str,
    /// Who did it.
    pub user: &'a str,
}

/// A minion going online or offline (`cmdb/presence/<id>`).
#[derive(Debug, Serialize)]
pub struct PresenceEvent<'a> {
    /// The minion id.
    pub id: &'a str,
    /// `online` or `offline`.
    pub presence: &'a str,
}

/// An asset whose document changed (`cmdb/asset/<asset_id>/changed`).
#[derive(Debug, Serialize)]
pub struct AssetEvent<'a> {
    /// The asset id.
    pub asset_id: &'a str,
    /// Its new version.
    pub version: u64,
    /// What changed it: `collect`, `manual`, `import`, ...
    pub source: &'a str,
    /// The job or user behind it.
    pub by: &'a str,
}

/// The bus.
pub struct EventBus {
    tx: broadcast::Sender<Arc<BusEvent>>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Publishes an event to whoever listens (nothing is built otherwise).
    pub fn emit<T: Serialize>(&self, tag: impl FnOnce() -> String, data: &T) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let data = serde_json::to_value(data).unwrap_or_else(|e| {
            serde_json::Value::String(format!("event data not encodable: {e}"))
        });
        let _ = self.tx.send(Arc::new(BusEvent {
            tag: tag(),
            time_ms: now_ms(),
            data,
        }));
    }

    /// A new listener, hearing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_hear_events_and_nothing_is_built_without_one() {
        let bus = EventBus::default();
        let mut built = false;
        bus.emit(
            || {
                built = true;
                "cmdb/auth".into()
            },
            &1,
        );
        assert!(!built);
        let mut rx = bus.subscribe();
        let ev = PresenceEvent {
            id: "web01",
            presence: "offline",
        };
        bus.emit(|| "cmdb/presence/web01".into(), &ev);
        let got = rx.recv().await.expect("event");
        assert_eq!(got.tag, "cmdb/presence/web01");
        assert_eq!(got.data["presence"], "offline");
    }
}
