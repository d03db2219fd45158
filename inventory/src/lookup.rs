//! Finding assets the way operators name them (asset id, minion id, serial,
//! asset tag, name, IP or MAC address) and at a past time.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use crate::{AssetRecord, ChangeRecord};

/// What a reference matched on an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// Its system serial number.
    Serial,
    /// Its asset tag.
    AssetTag,
    /// Its manual name or reported host name.
    Name,
    /// One of its IP addresses.
    Ip,
    /// One of its MAC addresses.
    Mac,
}

impl Matched {
    /// How the match is named in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Matched::Serial => "serial",
            Matched::AssetTag => "asset tag",
            Matched::Name => "name",
            Matched::Ip => "IP address",
            Matched::Mac => "MAC address",
        }
    }
}

/// A MAC address with separators and case removed (`aa:bb:…`,
/// `AA-BB-…` and `aabb.cc…` are the same address), or `None` when the text
/// is not one.
fn mac_digits(text: &str) -> Option<String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digits)
}

/// Every string in a fact value (a string or a list of them).
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// What `reference` matches on `rec` besides its asset id and minion id
/// (serial and asset tag compare without case, IPs exactly, MACs in any
/// notation), or `None`.
pub fn answers_to(rec: &AssetRecord, reference: &str) -> Option<Matched> {
    let reference = reference.trim();
    if reference.is_empty() {
        return None;
    }
    if rec
        .serial()
        .is_some_and(|s| s.eq_ignore_ascii_case(reference))
    {
        return Some(Matched::Serial);
    }
    let manual = &rec.document["manual"];
    if manual["asset_tag"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case(reference))
    {
        return Some(Matched::AssetTag);
    }
    if manual["name"]
        .as_str()
        .or_else(|| rec.facts()["host"].as_str())
        .is_some_and(|n| n.eq_ignore_ascii_case(reference))
    {
        return Some(Matched::Name);
    }
    let facts = rec.facts();
    if reference.parse::<std::net::IpAddr>().is_ok()
        && ["ipv4", "ipv6"]
            .iter()
            .any(|k| strings(&facts[*k]).contains(&reference))
    {
        return Some(Matched::Ip);
    }
    if let Some(want) = mac_digits(reference)
        && let Value::Object(ifaces) = &facts["hwaddr_interfaces"]
        && ifaces
            .values()
            .filter_map(Value::as_str)
            .any(|m| mac_digits(m).as_deref() == Some(want.as_str()))
    {
        return Some(Matched::Mac);
    }
    None
}

/// A time that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a time: give a date (2026-01-31), a date and time \
     (2026-01-31T14:00:00Z or with an offset) or unix milliseconds"
)]
pub struct BadTime(pub String);

/// Unix milliseconds from `2026-01-31` (the end of that day, UTC: an asset
/// "at" a date is as it stood when the day closed), `2026-01-31T14:00:00Z`
/// or with an offset, `2026-01-31 14:00:00` (UTC), or a number of unix
/// milliseconds.
pub fn parse_time(text: &str) -> Result<i64, BadTime> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| BadTime(text.to_owned()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d
            .succ_opt()
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .map(|end| end.and_utc().timestamp_millis() - 1)
            .ok_or_else(|| BadTime(text.to_owned()));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc).timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    Err(BadTime(text.to_owned()))
}

/// What an asset was at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// It did not exist yet.
    NotYet,
    /// It was at this version.
    Version(u64),
    /// The change records of that time were pruned (`history_keep`).
    Pruned,
}

/// The version an asset had at `at_ms`: the last change at or before that
/// time, from its history (oldest first; version 0 is never pruned).
pub fn version_at(rec: &AssetRecord, history: &[ChangeRecord], at_ms: i64) -> At {
    if rec.created_ms > at_ms {
        return At::NotYet;
    }
    let Some(v) = history
        .iter()
        .filter(|h| h.at_ms <= at_ms)
        .map(|h| h.version)
        .max()
    else {
        return At::NotYet;
    };
    // Versions follow each other in time: the answer is sure when the
    // next version is kept (it is after the time) or there is none.
    if v == rec.version || history.iter().any(|h| h.version == v + 1) {
        At::Version(v)
    } else {
        At::Pruned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(facts: Value, manual: Value) -> AssetRecord {
        let doc = json!({"facts": facts, "manual": manual, "status": "active"});
        AssetRecord::create(Some("web1".into()), doc, json!({}), 1).0
    }

    #[test]
    fn references_match_serial_tag_name_ip_and_mac() {
        let r = rec(
            json!({"serialnumber": "CZ123", "host": "web1", "ipv4": ["10.0.0.5", "127.0.0.1"],
                   "hwaddr_interfaces": {"eth0": "52:54:00:AB:cd:01"}}),
            json!({"asset_tag": "INV-0042"}),
        );
        assert_eq!(answers_to(&r, "cz123"), Some(Matched::Serial));
        assert_eq!(answers_to(&r, "inv-0042"), Some(Matched::AssetTag));
        assert_eq!(answers_to(&r, "WEB1"), Some(Matched::Name));
        assert_eq!(answers_to(&r, "10.0.0.5"), Some(Matched::Ip));
        assert_eq!(answers_to(&r, "10.0.0.50"), None);
        assert_eq!(answers_to(&r, "5254.00ab.cd01"), Some(Matched::Mac));
        assert_eq!(answers_to(&r, "52-54-00-ab-cd-01"), Some(Matched::Mac));
        assert_eq!(answers_to(&r, "52:54:00:ab:cd:02"), None);
        assert_eq!(answers_to(&r, ""), None);
        let entered = rec(json!({}), json!({"name": "sw-core-1", "serial": "FOC1234"}));
        assert_eq!(answers_to(&entered, "FOC1234"), Some(Matched::Serial));
        assert_eq!(answers_to(&entered, "sw-core-1"), Some(Matched::Name));
    }

    #[test]
    fn times_read_as_dates_datetimes_or_milliseconds() {
        // 2026-01-31T23:59:59.999Z
        assert_eq!(parse_time("2026-01-31"), Ok(1_769_903_999_999));
        assert_eq!(parse_time("2026-01-31T14:00:00Z"), Ok(1_769_868_000_000));
        assert_eq!(
            parse_time("2026-01-31T15:00:00+01:00"),
            Ok(1_769_868_000_000)
        );
        assert_eq!(parse_time("2026-01-31 14:00:00"), Ok(1_769_868_000_000));
        assert_eq!(parse_time("1769868000000"), Ok(1_769_868_000_000));
        for bad in ["", "yesterday", "2026-02-30", "2026-01-31T25:00:00Z"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_version_at_a_time_is_the_last_change_before_it() {
        let r = rec(json!({}), json!({}));
        let h = |version, at_ms| ChangeRecord {
            version,
            at_ms,
            source: crate::Source::Collect,
            jid: None,
            user: None,
            changes: Vec::new(),
            snapshot: None,
        };
        let mut r = r;
        r.version = 2;
        let history = [h(0, 1), h(1, 10), h(2, 20)];
        assert_eq!(version_at(&r, &history, 0), At::NotYet);
        assert_eq!(version_at(&r, &history, 1), At::Version(0));
        assert_eq!(version_at(&r, &history, 15), At::Version(1));
        assert_eq!(version_at(&r, &history, 20), At::Version(2));
        assert_eq!(version_at(&r, &history, 99), At::Version(2));
        r.version = 5;
        let pruned = [h(0, 1), h(4, 40), h(5, 50)];
        assert_eq!(version_at(&r, &pruned, 30), At::Pruned);
        assert_eq!(version_at(&r, &pruned, 45), At::Version(4));
    }
}
