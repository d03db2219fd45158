//! The year-end audit: per department, business line or site, the assets
//! owned during the year by kind and status, what they cost, their book
//! value at the end of the year, the depreciation charged in it, and the
//! assets bought and retired in it and whose warranty ends the next year.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::finance::{Finance, Money};

/// What the audit groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The manual field `department`.
    Department,
    /// The manual field `business_line`.
    BusinessLine,
    /// The manual field `site`.
    Site,
}

/// A grouping the audit does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group_by {0:?}: give department, business_line or site")]
pub struct BadGroup(pub String);

impl GroupBy {
    /// Reads `department`, `business_line` or `site`.
    pub fn parse(text: &str) -> Result<GroupBy, BadGroup> {
        match text.trim() {
            "department" => Ok(GroupBy::Department),
            "business_line" => Ok(GroupBy::BusinessLine),
            "site" => Ok(GroupBy::Site),
            other => Err(BadGroup(other.to_owned())),
        }
    }

    /// The manual field grouped by.
    pub fn field(self) -> &'static str {
        match self {
            GroupBy::Department => "department",
            GroupBy::BusinessLine => "business_line",
            GroupBy::Site => "site",
        }
    }
}

/// One asset as the audit sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditAsset {
    /// Its kind.
    pub kind: String,
    /// Its status.
    pub status: String,
    /// Its value of the field grouped by.
    pub group: Option<String>,
    /// Its finance fields.
    pub finance: Finance,
    /// When it was entered (for assets without a purchase date).
    pub added_on: Option<NaiveDate>,
    /// When it was decommissioned, if it was.
    pub retired_on: Option<NaiveDate>,
}

/// Amounts in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    /// Purchase cost of the assets with one.
    pub purchase_cost: Money,
    /// Book value at the end of the year.
    pub book_value: Money,
    /// Depreciation charged in the year.
    pub depreciation: Money,
    /// Book value left on assets retired in the year.
    pub written_off: Money,
}

/// The figures of one group (or of all assets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditGroup {
    /// The group's value (`(none)` for assets without one; `total` for the
    /// total).
    pub group: String,
    /// Assets owned during the year.
    pub assets: usize,
    /// Of which, by kind.
    pub by_kind: BTreeMap<String, usize>,
    /// Of which, by status (as it is now).
    pub by_status: BTreeMap<String, usize>,
    /// Amounts by currency.
    pub totals: BTreeMap<String, Totals>,
    /// Assets bought (or entered, without a purchase date) in the year.
    pub bought: usize,
    /// Assets retired in the year.
    pub retired: usize,
    /// Assets whose warranty ends in the next year.
    pub warranty_next_year: usize,
    /// Assets without a purchase cost, date or depreciation period (no
    /// book value).
    pub no_finance: usize,
}

/// The year-end audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditReport {
    /// The year.
    pub year: i32,
    /// What it is grouped by.
    pub group_by: GroupBy,
    /// The groups, by name (`(none)` last).
    pub groups: Vec<AuditGroup>,
    /// All of them.
    pub total: AuditGroup,
}

/// The label of assets without a value for the field grouped by.
pub const NO_GROUP: &str = "(none)";

impl AuditGroup {
    fn add(&mut self, a: &AuditAsset, year: i32, currency: &str) {
        self.assets += 1;
        *self.by_kind.entry(a.kind.clone()).or_default() += 1;
        *self.by_status.entry(a.status.clone()).or_default() += 1;
        let f = &a.finance;
        let entered = f.purchase_date.or(a.added_on);
        if entered.is_some_and(|d| d.year() == year) {
            self.bought += 1;
        }
        if a.retired_on.is_some_and(|d| d.year() == year) {
            self.retired += 1;
        }
        if f.warranty_end.is_some_and(|d| d.year() == year + 1) {
            self.warranty_next_year += 1;
        }
        let cur = f.currency.clone().unwrap_or_else(|| currency.to_owned());
        match (f.purchase_cost, f.year(year, a.retired_on)) {
            (Some(cost), Some(y)) => {
                let t = self.totals.entry(cur).or_default();
                t.purchase_cost.0 += cost.0;
                t.book_value.0 += y.book_value.0;
                t.depreciation.0 += y.depreciation.0;
                t.written_off.0 += y.written_off.0;
            }
            (Some(cost), None) => {
                self.totals.entry(cur).or_default().purchase_cost.0 += cost.0;
                self.no_finance += 1;
            }
            (None, _) => self.no_finance += 1,
        }
    }
}

/// Whether an asset was owned at some time during `year`.
fn owned_in(a: &AuditAsset, year: i32) -> bool {
    let Some(start) = a.finance.purchase_date.or(a.added_on) else {
        return false;
    };
    start.year() <= year && a.retired_on.is_none_or(|r| r.year() >= year)
}

/// The audit of `year` over `assets`, grouped by `group_by`; amounts
/// without a currency count in `default_currency`.
pub fn audit(
    year: i32,
    group_by: GroupBy,
    default_currency: &str,
    assets: impl IntoIterator<Item = AuditAsset>,
) -> AuditReport {
    let mut groups: BTreeMap<String, AuditGroup> = BTreeMap::new();
    let mut total = AuditGroup {
        group: "total".into(),
        ..AuditGroup::default()
    };
    for a in assets.into_iter().filter(|a| owned_in(a, year)) {
        let name = a
            .group
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .unwrap_or(NO_GROUP)
            .to_owned();
        groups
            .entry(name.clone())
            .or_insert_with(|| AuditGroup {
                group: name,
                ..AuditGroup::default()
            })
            .add(&a, year, default_currency);
        total.add(&a, year, default_currency);
    }
    let none = groups.remove(NO_GROUP);
    let mut groups: Vec<AuditGroup> = groups.into_values().collect();
    groups.extend(none);
    AuditReport {
        year,
        group_by,
        groups,
        total,
    }
}

/// The columns of [`AuditReport::table`].
pub const COLUMNS: &[&str] = &[
    "group",
    "currency",
    "assets",
    "by_kind",
    "by_status",
    "purchase_cost",
    "book_value",
    "depreciation",
    "written_off",
    "bought",
    "retired",
    "warranty_next_year",
    "no_finance",
];

fn counts(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl AuditReport {
    /// The report as a flat table: one row per group and currency (a group
    /// without amounts has one row with an empty currency), the total last.
    pub fn table(&self) -> (Vec<String>, Vec<Vec<Value>>) {
        let mut rows = Vec::new();
        for g in self.groups.iter().chain(std::iter::once(&self.total)) {
            let base = |currency: &str, t: Option<&Totals>| {
                let money = |m: Option<Money>| m.map_or(Value::Null, |m| json!(m.to_string()));
                vec![
                    json!(g.group),
                    json!(currency),
                    json!(g.assets),
                    json!(counts(&g.by_kind)),
                    json!(counts(&g.by_status)),
                    money(t.map(|t| t.purchase_cost)),
                    money(t.map(|t| t.book_value)),
                    money(t.map(|t| t.depreciation)),
                    money(t.map(|t| t.written_off)),
                    json!(g.bought),
                    json!(g.retired),
                    json!(g.warranty_next_year),
                    json!(g.no_finance),
                ]
            };
            if g.totals.is_empty() {
                rows.push(base("", None));
            }
            for (currency, t) in &g.totals {
                rows.push(base(currency, Some(t)));
            }
        }
        (COLUMNS.iter().map(|c| (*c).to_owned()).collect(), rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Option<NaiveDate> {
        crate::fields::parse_date(s)
    }

    fn asset(
        kind: &str,
        status: &str,
        group: Option<&str>,
        cost: &str,
        bought: &str,
        years: u64,
        retired: Option<&str>,
    ) -> AuditAsset {
        AuditAsset {
            kind: kind.into(),
            status: status.into(),
            group: group.map(str::to_owned),
            finance: Finance::from_document(&json!({
                "purchase_cost": cost, "purchase_date": bought, "depreciation_years": years,
            })),
            added_on: day("2026-11-01"),
            retired_on: retired.and_then(day),
        }
    }

    #[test]
    fn an_audit_of_a_small_fleet_by_hand() {
        let mut db1 = asset(
            "server",
            "active",
            Some("finance"),
            "4800",
            "2024-03-15",
            4,
            None,
        );
        db1.finance.warranty_end = day("2026-03-15");
        let mut usd = asset(
            "server",
            "active",
            Some("finance"),
            "300",
            "2025-12-01",
            1,
            None,
        );
        usd.finance.currency = Some("USD".into());
        let fleet = vec![
            // 2025: 1200.00 depreciated, book 2600.00, warranty ends 2026.
            db1,
            // 1000.00 / 36 months, bought 2025: 333.33, book 666.67.
            asset(
                "server",
                "active",
                Some("finance"),
                "1000",
                "2025-01-10",
                3,
                None,
            ),
            // Fully depreciated at the end of 2024: 0 and 0.
            asset(
                "server",
                "decommissioned",
                Some("finance"),
                "2400",
                "2021-01-01",
                4,
                Some("2026-02-01"),
            ),
            // 20.00 a month; 2025: 240.00, book 600.00.
            asset(
                "switch",
                "active",
                Some("network"),
                "1200",
                "2023-07-01",
                5,
                None,
            ),
            // 10.00 a month from June 2025: 70.00, book 530.00.
            asset(
                "pdu",
                "planned",
                Some("network"),
                "600",
                "2025-06-01",
                5,
                None,
            ),
            // 100.00 a month from January 2023: book 2400.00 at the end of
            // 2024; retired in April 2025 after 4 more months (400.00
            // depreciated), the 2000.00 left written off.
            asset(
                "storage",
                "decommissioned",
                None,
                "4800",
                "2023-01-01",
                4,
                Some("2025-04-30"),
            ),
            // Retired before 2025: not in the audit.
            asset(
                "server",
                "decommissioned",
                None,
                "100",
                "2020-01-01",
                1,
                Some("2024-06-01"),
            ),
            // Bought after 2025: not in the audit.
            asset("server", "active", None, "100", "2026-01-01", 1, None),
            // In dollars: 25.00 a month, one month in 2025.
            usd,
        ];
        let r = audit(2025, GroupBy::Department, "EUR", fleet);
        let names: Vec<&str> = r.groups.iter().map(|g| g.group.as_str()).collect();
        assert_eq!(names, ["finance", "network", "(none)"]);
        let fin = &r.groups[0];
        assert_eq!(fin.assets, 4);
        assert_eq!(fin.by_status.get("active"), Some(&3));
        assert_eq!(fin.bought, 2);
        assert_eq!(fin.retired, 0);
        assert_eq!(fin.warranty_next_year, 1);
        let eur = &fin.totals["EUR"];
        assert_eq!(eur.purchase_cost, Money(820_000));
        assert_eq!(eur.book_value, Money(326_667));
        assert_eq!(eur.depreciation, Money(153_333));
        let usd = &fin.totals["USD"];
        assert_eq!(
            (usd.purchase_cost, usd.book_value, usd.depreciation),
            (Money(30_000), Money(27_500), Money(2_500))
        );
        let net = &r.groups[1];
        assert_eq!(net.assets, 2);
        assert_eq!(net.by_kind.get("pdu"), Some(&1));
        assert_eq!(net.totals["EUR"].book_value, Money(113_000));
        assert_eq!(net.totals["EUR"].depreciation, Money(31_000));
        let none = &r.groups[2];
        assert_eq!((none.assets, none.retired), (1, 1));
        assert_eq!(none.totals["EUR"].depreciation, Money(40_000));
        assert_eq!(none.totals["EUR"].written_off, Money(200_000));
        assert_eq!(none.totals["EUR"].book_value, Money(0));
        assert_eq!(r.total.assets, 7);
        assert_eq!(r.total.totals["EUR"].purchase_cost, Money(1_480_000));
        assert_eq!(r.total.totals["EUR"].depreciation, Money(224_333));
        let (cols, rows) = r.table();
        assert_eq!(cols.len(), COLUMNS.len());
        // finance EUR, finance USD, network, (none), total EUR, total USD.
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0][0], json!("finance"));
        assert_eq!(rows[0][6], json!("3266.67"));
        assert_eq!(rows[5][1], json!("USD"));
        assert_eq!(GroupBy::parse("colour"), Err(BadGroup("colour".into())));
    }
}
