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
    /// Extra manual fields operators may set and import, besides the
    /// built-in ones (name, site, rack, rack_unit, owner, department,
    /// business_line, asset_tag, notes, serial); text values.
    pub manual_fields: Vec<String>,
    /// Extra asset kinds, besides the built-in ones (server, vm,
    /// container_host, switch, router, firewall, load_balancer, storage,
    /// pdu, rack, site, patch_panel, other).
    pub kinds: Vec<String>,
    /// Allowed status transitions: status -> statuses it may change to.
    pub transitions: BTreeMap<String, Vec<String>>,
    /// The currency of purchase costs that name none (ISO 4217, default
    /// EUR).
    pub currency: String,
    /// Seconds between two passes that set `runs_on` of VMs from the
    /// guests their hosts report (default 60); a pass waits for asset
    /// writes to pause for 3 s, for five such periods at most.
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
            manual_fields: Vec::new(),
            kinds: Vec::new(),
            transitions: BTreeMap::from([
                t("planned", &["active", "decommissioned"]),
                t("active", &["maintenance", "decommissioned"]),
                t("maintenance", &["active", "decommissioned"]),
                t("decommissioned", &[]),
            ]),
            relate_every_secs: 60,
            currency: "EUR".into(),
        }
    }
}

/// The manual fields every master has.
pub const BUILTIN_MANUAL: &[&str] = &[
    "name",
    "site",
    "rack",
    "rack_unit",
    "owner",
    "department",
    "business_line",
    "asset_tag",
    "notes",
    "serial",
];

impl InventoryConfig {
    /// The configured manual fields that are not built in (a config that
    /// lists built-in ones keeps working).
    pub fn extra_manual_fields(&self) -> Vec<String> {
        self.manual_fields
            .iter()
            .filter(|f| !BUILTIN_MANUAL.contains(&f.as_str()))
            .cloned()
            .collect()
    }

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
