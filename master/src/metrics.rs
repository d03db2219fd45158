//! `GET /metrics`: the master's figures in the Prometheus text format.
//! Counters are kept as things happen; gauges (minions by key state and
//! presence, session key holders, store size) are read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::server::Shared;

/// Labels of `cmdb_minions`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `accepted`, `pending`, `rejected` or `denied`.
    pub state: String,
}

/// Labels of `cmdb_minions_presence`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PresenceLabels {
    /// `online` or `offline`.
    pub presence: String,
}

/// Labels of `cmdb_api_requests`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's pattern (`/v1/assets/{key}`), or `unmatched`.
    pub route: String,
    /// The method.
    pub method: String,
    /// The status answered.
    pub status: u16,
}

/// Every metric.
pub struct Metrics {
    registry: Registry,
    /// Jobs published.
    pub jobs_published: Counter,
    /// Returns stored (new ones only).
    pub returns_stored: Counter,
    /// API requests by route, method and status.
    pub api_requests: Family<RequestLabels, Counter>,
    minions: Family<StateLabels, Gauge>,
    presence: Family<PresenceLabels, Gauge>,
    store_bytes: Gauge,
    holders: Gauge,
    epoch: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let jobs_published = Counter::default();
        let returns_stored = Counter::default();
        let api_requests = Family::<RequestLabels, Counter>::default();
        let minions = Family::<StateLabels, Gauge>::default();
        let presence = Family::<PresenceLabels, Gauge>::default();
        let store_bytes = Gauge::default();
        let holders = Gauge::default();
        let epoch = Gauge::default();
        let mut registry = Registry::with_prefix("cmdb");
        registry.register("jobs_published", "Jobs published", jobs_published.clone());
        registry.register(
            "returns_stored",
            "Job returns stored",
            returns_stored.clone(),
        );
        registry.register(
            "api_requests",
            "API requests by route, method and status",
            api_requests.clone(),
        );
        registry.register("minions", "Minion keys by state", minions.clone());
        registry.register(
            "minions_presence",
            "Minions by presence (heard from within offline_after_secs)",
            presence.clone(),
        );
        registry.register(
            "store_size_bytes",
            "Size of the store on disk",
            store_bytes.clone(),
        );
        registry.register(
            "session_key_holders",
            "Minions handed the current session key since it was made \
             (at the master's start and at each rotation): those with a session now",
            holders.clone(),
        );
        registry.register(
            "session_key_epoch",
            "Epoch of the current session key (the peers of a cluster share it)",
            epoch.clone(),
        );
        Metrics {
            registry,
            holders,
            epoch,
            jobs_published,
            returns_stored,
            api_requests,
            minions,
            presence,
            store_bytes,
        }
    }
}

impl Metrics {
    /// Reads the gauges and renders every metric as Prometheus text.
    pub fn render(&self, shared: &Shared) -> String {
        if let Ok(listing) = shared.pki.list() {
            for (state, n) in [
                ("accepted", listing.accepted.len()),
                ("pending", listing.pending.len()),
                ("rejected", listing.rejected.len()),
                ("denied", listing.denied.len()),
            ] {
                self.minions
                    .get_or_create(&StateLabels {
                        state: state.into(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        let (online, offline) = shared.presence.counts();
        for (presence, n) in [("online", online), ("offline", offline)] {
            self.presence
                .get_or_create(&PresenceLabels {
                    presence: presence.into(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.holders
            .set(i64::try_from(shared.keyring.holder_count()).unwrap_or(i64::MAX));
        self.epoch
            .set(i64::try_from(shared.keyring.session().0).unwrap_or(i64::MAX));
        if let Ok(bytes) = shared.store.size_on_disk() {
            self.store_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            out = format!("# metrics could not be encoded: {e}\n");
        }
        out
    }
}
