//! `[inventory]` in the master's config: how assets are kept.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[inventory]`: how assets are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// Seconds without a heartbeat after which a minion's asset is offline
    /// (default 300).
    pub offline_after_secs: u64,
    /// Change records kept per asset besides the first one (0: all). The
    /// first record and the latest change are never dropped.
    pub history_keep: usize,
    /// Fact paths (keys joined by `:`, `*` for any key) that change on every
    /// collect; they are kept current but not recorded as changes.
    pub volatile: Vec<String>,
    /// Manual fields operators may set and import.
    pub manual_fields: Vec<String>,
    /// Allowed status transitions: status -> statuses it may change to.
    pub transitions: BTreeMap<String, Vec<String>>,
    /// Seconds between two passes that set `runs_on` of VMs from the
    /// guests their hosts report (default 60).
    pub relate_every_secs: u64,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        let t =
            |from: &str, to: &[&str]| (from.to_owned(), to.iter().map(|s| s.to_string()).collect());
        InventoryConfig {
            offline_after_secs: 300,
            history_keep: 0,
            volatile: [
                "uptime_seconds",
                "mounts:*:used_bytes",
                "mounts:*:available_bytes",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            manual_fields: [
                "site",
                "rack",
                "rack_unit",
                "owner",
                "business_line",
                "notes",
                "asset_tag",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            transitions: BTreeMap::from([
                t("planned", &["active", "decommissioned"]),
                t("active", &["maintenance", "decommissioned"]),
                t("maintenance", &["active", "decommissioned"]),
                t("decommissioned", &[]),
            ]),
            relate_every_secs: 60,
        }
    }
}

impl InventoryConfig {
    /// Whether the status may change from `from` to `to`.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        self.transitions
            .get(from)
            .is_some_and(|tos| tos.iter().any(|t| t == to))
    }

    /// Checks the statuses and field names, naming what is wrong.
    pub fn check(&self) -> Result<(), String> {
        const STATUSES: [&str; 4] = ["planned", "active", "maintenance", "decommissioned"];
        for (from, tos) in &self.transitions {
            for s in std::iter::once(from).chain(tos) {
                if !STATUSES.contains(&s.as_str()) {
                    return Err(format!(
                        "inventory.transitions: unknown status {s:?} (statuses: {})",
                        STATUSES.join(", ")
                    ));
                }
            }
        }
        for f in &self.manual_fields {
            if f.is_empty() || !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "inventory.manual_fields: {f:?} is not a plain name"
                ));
            }
        }
        Ok(())
    }
}
