//! Money and straight-line depreciation.
//!
//! Depreciation follows the monthly convention: an asset bought in some
//! month is depreciated for that whole month, and by the same amount every
//! month after it, `cost / (12 × depreciation_years)`, until nothing is
//! left. The book value at the end of a month is
//! `cost − round(cost × months / (12 × years))`, where `months` counts the
//! months from the purchase month to that month, both included, at most
//! `12 × years`; rounding is to the cent, half away from zero, on the
//! total, so the yearly amounts add up to the cost exactly and the book
//! value ends at zero. An asset retired (decommissioned) in some month has
//! no book value after it: what was left is written off that year, not
//! depreciated. Book values are computed, never stored.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde_json::Value;

use crate::fields::{MAX_CENTS, parse_date};

/// An amount of money in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(pub i64);

impl Money {
    /// Reads `1234`, `1234.5`, `1234.50` or `1,234.50` (digits, an optional
    /// dot with one or two decimals, commas between thousands); no sign,
    /// no exponent, at most [`MAX_CENTS`].
    pub fn parse(text: &str) -> Option<Money> {
        let t = text.trim();
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        if whole.is_empty() || frac.len() > 2 || (t.contains('.') && frac.is_empty()) {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = if whole.contains(',') {
            // Thousands separators: groups of three after the first.
            let groups: Vec<&str> = whole.split(',').collect();
            let ok = groups.first().is_some_and(|g| (1..=3).contains(&g.len()))
                && groups.iter().skip(1).all(|g| g.len() == 3);
            if !ok {
                return None;
            }
            groups.concat()
        } else {
            whole.to_owned()
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 16 {
            return None;
        }
        let units: i64 = digits.parse().ok()?;
        let cents: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().ok()? * 10,
            _ => frac.parse().ok()?,
        };
        let total = units.checked_mul(100)?.checked_add(cents)?;
        (total <= MAX_CENTS).then_some(Money(total))
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let text = String::deserialize(d)?;
        let (neg, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text.as_str()),
        };
        let m = Money::parse(rest)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an amount")))?;
        Ok(if neg { Money(-m.0) } else { m })
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("an amount with two decimals, e.g. \"1234.50\""))
            .examples(["1234.50"])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

/// An asset's finance fields as they are stored (values that do not read
/// are left out: nothing is guessed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Finance {
    /// Its vendor.
    pub vendor: Option<String>,
    /// When it was bought.
    pub purchase_date: Option<NaiveDate>,
    /// What it cost.
    pub purchase_cost: Option<Money>,
    /// The currency of the cost (ISO 4217).
    pub currency: Option<String>,
    /// When its warranty ends.
    pub warranty_end: Option<NaiveDate>,
    /// Over how many years it is depreciated.
    pub depreciation_years: Option<u32>,
}

/// The months from (year, month) `a` to `b`, both included (0 when `b`
/// is before `a`).
fn months_through(a: (i32, u32), b: (i32, u32)) -> i64 {
    let n = i64::from(b.0 - a.0) * 12 + i64::from(b.1) - i64::from(a.1) + 1;
    n.max(0)
}

/// `cost × num / den`, rounded half away from zero (all non-negative).
fn share(cost: i64, num: i64, den: i64) -> i64 {
    let n = i128::from(cost) * i128::from(num);
    let d = i128::from(den);
    i64::try_from((2 * n + d) / (2 * d)).unwrap_or(i64::MAX)
}

impl Finance {
    /// Reads the `finance` section of a document.
    pub fn from_document(finance: &Value) -> Finance {
        let text = |k: &str| finance[k].as_str().map(str::to_owned);
        Finance {
            vendor: text("vendor"),
            purchase_date: finance["purchase_date"].as_str().and_then(parse_date),
            purchase_cost: finance["purchase_cost"]
                .as_str()
                .and_then(Money::parse)
                .or_else(|| {
                    finance["purchase_cost"]
                        .as_f64()
                        .and_then(|f| Money::parse(&f.to_string()))
                }),
            currency: text("currency"),
            warranty_end: finance["warranty_end"].as_str().and_then(parse_date),
            depreciation_years: finance["depreciation_years"]
                .as_u64()
                .and_then(|y| u32::try_from(y).ok())
                .filter(|y| *y > 0),
        }
    }

    /// The book value at the end of (year, month), or `None` before the
    /// purchase month or without cost, date and years.
    pub fn book_value_at_month_end(&self, year: i32, month: u32) -> Option<Money> {
        let (cost, bought, years) = (
            self.purchase_cost?,
            self.purchase_date?,
            self.depreciation_years?,
        );
        let months = months_through((bought.year(), bought.month()), (year, month));
        if months == 0 {
            return None;
        }
        let life = i64::from(years) * 12;
        let spent = share(cost.0, months.min(life), life);
        Some(Money(cost.0 - spent))
    }

    /// The book value on a day: as at the end of that day's month (the
    /// monthly convention charges whole months); `None` before the
    /// purchase month.
    pub fn book_value_on(&self, day: NaiveDate) -> Option<Money> {
        self.book_value_at_month_end(day.year(), day.month())
    }

    /// The book value at the end of `year`.
    pub fn book_value_at_year_end(&self, year: i32) -> Option<Money> {
        self.book_value_at_month_end(year, 12)
    }

    /// The book value at the start of `year`: at the end of the year
    /// before, or the cost when bought during `year`.
    fn book_value_at_year_start(&self, year: i32) -> Option<Money> {
        let bought = self.purchase_date?;
        if bought.year() == year {
            return self.purchase_cost;
        }
        self.book_value_at_year_end(year - 1)
    }

    /// The depreciation charged in `year`.
    pub fn depreciation_in_year(&self, year: i32) -> Option<Money> {
        Some(Money(
            self.book_value_at_year_start(year)?.0 - self.book_value_at_year_end(year)?.0,
        ))
    }

    /// For an asset retired on `retired` (or not): the book value at the
    /// end of `year`, the depreciation in `year` and what was written off
    /// in `year`; `None` without cost, date and years or when it was not
    /// owned during the year.
    pub fn year(&self, year: i32, retired: Option<NaiveDate>) -> Option<YearFigures> {
        let start = self.book_value_at_year_start(year)?;
        match retired {
            Some(r) if r.year() < year => None,
            Some(r) if r.year() == year => {
                let at_retirement = self
                    .book_value_at_month_end(year, r.month())
                    .unwrap_or(start);
                Some(YearFigures {
                    book_value: Money(0),
                    depreciation: Money(start.0 - at_retirement.0),
                    written_off: at_retirement,
                })
            }
            _ => {
                let end = self.book_value_at_year_end(year)?;
                Some(YearFigures {
                    book_value: end,
                    depreciation: Money(start.0 - end.0),
                    written_off: Money(0),
                })
            }
        }
    }
}

/// An asset's figures for one year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearFigures {
    /// Its book value at the end of the year.
    pub book_value: Money,
    /// The depreciation charged in the year.
    pub depreciation: Money,
    /// What was left when it was retired during the year.
    pub written_off: Money,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fin(cost: &str, bought: &str, years: u32) -> Finance {
        Finance::from_document(&json!({
            "purchase_cost": cost, "purchase_date": bought, "depreciation_years": years
        }))
    }

    #[test]
    fn money_reads_and_prints_two_decimals() {
        for (text, cents) in [
            ("1234", 123_400),
            ("1234.5", 123_450),
            ("1234.05", 123_405),
            ("1,234.50", 123_450),
            ("0.01", 1),
        ] {
            assert_eq!(Money::parse(text), Some(Money(cents)), "{text}");
        }
        for bad in [
            "", "-1", "1.", ".5", "1.234", "1e3", "12,34", "1,2345", "abc", "NaN",
        ] {
            assert_eq!(Money::parse(bad), None, "{bad}");
        }
        assert_eq!(Money(123_405).to_string(), "1234.05");
        assert_eq!(Money(-5).to_string(), "-0.05");
        assert_eq!(serde_json::to_value(Money(1)).expect("json"), json!("0.01"));
    }

    #[test]
    fn straight_line_monthly_by_hand() {
        // 4800.00 over 4 years: 100.00 a month. Bought 2024-03-15: March to
        // December 2024 is 10 months, 1000.00; book 3800.00.
        let f = fin("4800", "2024-03-15", 4);
        assert_eq!(f.book_value_at_month_end(2024, 2), None);
        assert_eq!(f.book_value_at_year_end(2024), Some(Money(380_000)));
        assert_eq!(f.depreciation_in_year(2024), Some(Money(100_000)));
        // 2025: 12 months, 1200.00; book 2600.00.
        assert_eq!(f.depreciation_in_year(2025), Some(Money(120_000)));
        assert_eq!(f.book_value_at_year_end(2025), Some(Money(260_000)));
        // 48 months end with February 2028: 0.00, never below.
        assert_eq!(f.book_value_at_month_end(2028, 1), Some(Money(10_000)));
        assert_eq!(f.book_value_at_month_end(2028, 2), Some(Money(0)));
        assert_eq!(f.book_value_at_year_end(2030), Some(Money(0)));
        assert_eq!(f.depreciation_in_year(2028), Some(Money(20_000)));
        assert_eq!(f.depreciation_in_year(2029), Some(Money(0)));
    }

    #[test]
    fn uneven_amounts_round_on_the_total_and_add_up_to_the_cost() {
        // 1000.00 over 3 years = 27.777… a month. Bought January 2025:
        // end 2025 12/36 → 333.33 spent; end 2026 24/36 → 666.67;
        // end 2027 → 1000.00.
        let f = fin("1000", "2025-01-10", 3);
        assert_eq!(f.book_value_at_year_end(2025), Some(Money(66_667)));
        assert_eq!(f.book_value_at_year_end(2026), Some(Money(33_333)));
        assert_eq!(f.book_value_at_year_end(2027), Some(Money(0)));
        let total: i64 = (2025..=2028)
            .map(|y| f.depreciation_in_year(y).expect("dep").0)
            .sum();
        assert_eq!(total, 100_000);
        assert_eq!(f.depreciation_in_year(2026), Some(Money(33_334)));
    }

    #[test]
    fn a_leap_day_purchase_and_a_retirement_mid_year() {
        // Bought 2024-02-29, 1200.00 over 1 year: 100.00 a month from
        // February 2024; gone at the end of January 2025.
        let f = fin("1200", "2024-02-29", 1);
        assert_eq!(f.book_value_at_year_end(2024), Some(Money(10_000)));
        assert_eq!(f.book_value_at_month_end(2025, 1), Some(Money(0)));
        // 4800.00 over 4 years from March 2024, retired in June 2025: 6
        // months of 2025 depreciated (600.00), 3200.00 written off.
        let g = fin("4800", "2024-03-15", 4);
        let r = NaiveDate::from_ymd_opt(2025, 6, 20);
        let y = g.year(2025, r).expect("2025");
        assert_eq!(y.depreciation, Money(60_000));
        assert_eq!(y.written_off, Money(320_000));
        assert_eq!(y.book_value, Money(0));
        assert_eq!(g.year(2026, r), None, "not owned in 2026");
        assert_eq!(g.year(2024, r).expect("2024").book_value, Money(380_000));
    }

    #[test]
    fn nothing_is_guessed_without_cost_date_and_years() {
        assert_eq!(
            Finance::from_document(&json!({"purchase_cost": "100"})).book_value_at_year_end(2025),
            None
        );
        assert_eq!(
            Finance::from_document(&json!({"purchase_cost": "x", "purchase_date": "2024-01-01", "depreciation_years": 3}))
                .depreciation_in_year(2024),
            None
        );
    }
}
