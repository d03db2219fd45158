//! The fields operators set on an asset, each with a type: manual
//! (organisation) fields and finance fields, checked from the text an
//! operator typed (or a JSON value an API client sent) into the form they
//! are stored in, with an error naming the field. Also the asset kinds.

use std::fmt;

use chrono::NaiveDate;
use serde_json::Value;
use thiserror::Error;

/// Where a field lives in the asset's document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `manual`: organisation fields.
    Manual,
    /// `finance`: purchase and depreciation.
    Finance,
}

impl Section {
    /// The section's key in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Manual => "manual",
            Section::Finance => "finance",
        }
    }
}

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Free text (one line or several), at most [`MAX_TEXT`] characters.
    Text,
    /// A whole number within a range.
    Integer {
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An amount of money, stored as a decimal text with two decimals.
    Money,
    /// A currency code (ISO 4217 shape: three letters), stored upper case.
    Currency,
}

impl FieldType {
    fn expected(self) -> String {
        match self {
            FieldType::Text => format!("text of at most {MAX_TEXT} characters"),
            FieldType::Integer { min, max } => format!("a whole number from {min} to {max}"),
            FieldType::Date => "a date (YYYY-MM-DD)".into(),
            FieldType::Money => {
                "an amount such as 1234.50 (digits, at most two decimals, no sign)".into()
            }
            FieldType::Currency => "a three-letter currency code such as EUR".into(),
        }
    }
}

/// The longest text value, in characters.
pub const MAX_TEXT: usize = 1024;
/// The largest amount of money accepted, in cents (ten trillion).
pub const MAX_CENTS: i64 = 1_000_000_000_000_000;

/// One field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// Its name.
    pub name: String,
    /// Its section.
    pub section: Section,
    /// Its type.
    pub ty: FieldType,
}

/// A checked value for a field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValue {
    /// The field's section.
    pub section: Section,
    /// The field's name (without a section prefix).
    pub name: String,
    /// The value as stored; `None` removes the field.
    pub value: Option<Value>,
}

/// Why a field or a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldError {
    /// No such field.
    #[error("unknown field {name:?} (manual fields: {manual}; finance fields: {finance})")]
    Unknown {
        /// The name given.
        name: String,
        /// The manual fields.
        manual: String,
        /// The finance fields.
        finance: String,
    },
    /// The value does not have the field's type.
    #[error("{section}.{name}: {value:?} is not {expected}")]
    Invalid {
        /// The field's section.
        section: &'static str,
        /// The field.
        name: String,
        /// The value given.
        value: String,
        /// What the field takes.
        expected: String,
    },
    /// A configured extra field cannot be used.
    #[error("inventory.manual_fields: {name:?} {why}")]
    BadExtra {
        /// The configured name.
        name: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// The built-in manual fields and their types.
const MANUAL: &[(&str, FieldType)] = &[
    ("name", FieldType::Text),
    ("site", FieldType::Text),
    ("rack", FieldType::Text),
    ("rack_unit", FieldType::Integer { min: 1, max: 100 }),
    ("owner", FieldType::Text),
    ("department", FieldType::Text),
    ("business_line", FieldType::Text),
    ("asset_tag", FieldType::Text),
    ("notes", FieldType::Text),
];

/// The finance fields and their types.
const FINANCE: &[(&str, FieldType)] = &[
    ("vendor", FieldType::Text),
    ("purchase_date", FieldType::Date),
    ("purchase_cost", FieldType::Money),
    ("currency", FieldType::Currency),
    ("warranty_end", FieldType::Date),
    ("depreciation_years", FieldType::Integer { min: 1, max: 50 }),
];

/// Names that are not fields of a section but mean something else when
/// set (the serial, the kind, relations): an extra field may not take them.
const RESERVED: &[&str] = &[
    "serial",
    "kind",
    "status",
    "presence",
    "asset_id",
    "minion",
    "version",
    "book_value",
    "runs_on",
    "located_in",
    "connected_to",
];

/// The fields of one master: the built-in ones and the configured extra
/// manual fields (text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    fields: Vec<FieldSpec>,
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Schema {
    /// The built-in fields and `extra_manual` text fields.
    pub fn new(extra_manual: &[String]) -> Result<Schema, FieldError> {
        let mut fields: Vec<FieldSpec> = MANUAL
            .iter()
            .map(|(n, ty)| FieldSpec {
                name: (*n).into(),
                section: Section::Manual,
                ty: *ty,
            })
            .collect();
        for name in extra_manual {
            if !plain_name(name) {
                return Err(FieldError::BadExtra {
                    name: name.clone(),
                    why: "is not a plain name (a-z, 0-9 and _, at most 64)",
                });
            }
            if MANUAL.iter().chain(FINANCE).any(|(n, _)| n == name) {
                continue;
            }
            if RESERVED.contains(&name.as_str()) {
                return Err(FieldError::BadExtra {
                    name: name.clone(),
                    why: "is a reserved name",
                });
            }
            if !fields.iter().any(|f| f.name == *name) {
                fields.push(FieldSpec {
                    name: name.clone(),
                    section: Section::Manual,
                    ty: FieldType::Text,
                });
            }
        }
        fields.extend(FINANCE.iter().map(|(n, ty)| FieldSpec {
            name: (*n).into(),
            section: Section::Finance,
            ty: *ty,
        }));
        Ok(Schema { fields })
    }

    /// The manual field names, built-in first.
    pub fn manual_names(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|f| f.section == Section::Manual)
            .map(|f| f.name.as_str())
    }

    /// The finance field names.
    pub fn finance_names(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|f| f.section == Section::Finance)
            .map(|f| f.name.as_str())
    }

    /// The field `name` names: `site`, `manual.site`, `finance:vendor`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        let name = name.trim();
        let (section, bare) = match name.split_once(['.', ':']) {
            Some(("manual", rest)) => (Some(Section::Manual), rest),
            Some(("finance", rest)) => (Some(Section::Finance), rest),
            Some(_) => return None,
            None => (None, name),
        };
        self.fields
            .iter()
            .find(|f| f.name == bare && section.is_none_or(|s| s == f.section))
    }

    fn unknown(&self, name: &str) -> FieldError {
        FieldError::Unknown {
            name: name.to_owned(),
            manual: self.manual_names().collect::<Vec<_>>().join(", "),
            finance: self.finance_names().collect::<Vec<_>>().join(", "),
        }
    }

    /// Checks the text `raw` for the field `name`; empty (or blank) text
    /// removes the field.
    pub fn parse(&self, name: &str, raw: &str) -> Result<FieldValue, FieldError> {
        let spec = self.field(name).ok_or_else(|| self.unknown(name))?;
        let bad = || FieldError::Invalid {
            section: spec.section.as_str(),
            name: spec.name.clone(),
            value: raw.to_owned(),
            expected: spec.ty.expected(),
        };
        let text = raw.trim();
        let value = if text.is_empty() {
            None
        } else {
            Some(match spec.ty {
                FieldType::Text => {
                    if text.chars().count() > MAX_TEXT
                        || text
                            .chars()
                            .any(|c| c.is_control() && c != '\n' && c != '\t')
                    {
                        return Err(bad());
                    }
                    Value::String(text.to_owned())
                }
                FieldType::Integer { min, max } => {
                    // Rack units are often written U20.
                    let digits = match spec.name.as_str() {
                        "rack_unit" => text.strip_prefix(['U', 'u']).unwrap_or(text),
                        _ => text,
                    };
                    let n: i64 = digits.parse().map_err(|_| bad())?;
                    if n < min || n > max {
                        return Err(bad());
                    }
                    Value::from(n)
                }
                FieldType::Date => Value::String(parse_date(text).ok_or_else(bad)?.to_string()),
                FieldType::Money => Value::String(
                    crate::finance::Money::parse(text)
                        .ok_or_else(bad)?
                        .to_string(),
                ),
                FieldType::Currency => {
                    if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_alphabetic()) {
                        return Err(bad());
                    }
                    Value::String(text.to_ascii_uppercase())
                }
            })
        };
        Ok(FieldValue {
            section: spec.section,
            name: spec.name.clone(),
            value,
        })
    }

    /// Checks a JSON value for the field `name` (an API body): text, a
    /// number (for amounts and whole numbers) or null (removes the field).
    pub fn parse_json(&self, name: &str, value: &Value) -> Result<FieldValue, FieldError> {
        let spec = self.field(name).ok_or_else(|| self.unknown(name))?;
        match value {
            Value::Null => self.parse(name, ""),
            Value::String(s) => self.parse(name, s),
            Value::Number(n) if matches!(spec.ty, FieldType::Money) => match n.as_f64() {
                // A JSON number keeps at most two decimals of a cent amount.
                Some(f) if f.is_finite() && f >= 0.0 => {
                    let text = n.to_string();
                    self.parse(name, &text)
                }
                _ => self.parse(name, &n.to_string()),
            },
            Value::Number(n) => self.parse(name, &n.to_string()),
            other => Err(FieldError::Invalid {
                section: spec.section.as_str(),
                name: spec.name.clone(),
                value: other.to_string(),
                expected: spec.ty.expected(),
            }),
        }
    }
}

/// A date written `YYYY-MM-DD` (a real day of the calendar).
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()
}

/// The asset kinds of one master: the built-in ones and configured extras.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kinds {
    kinds: Vec<String>,
}

/// The built-in kinds.
pub const BUILTIN_KINDS: &[&str] = &[
    "server",
    "vm",
    "container_host",
    "switch",
    "router",
    "firewall",
    "load_balancer",
    "storage",
    "pdu",
    "rack",
    "site",
    "patch_panel",
    "other",
];

/// A kind that is not one of the configured kinds.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KindError {
    /// Not a kind.
    #[error("unknown kind {given:?} (kinds: {known})")]
    Unknown {
        /// The kind given.
        given: String,
        /// The kinds there are.
        known: String,
    },
    /// A configured kind is not a plain name.
    #[error("inventory.kinds: {0:?} is not a plain name (a-z, 0-9 and _, at most 64)")]
    BadExtra(String),
}

impl Kinds {
    /// The built-in kinds and `extra` ones.
    pub fn new(extra: &[String]) -> Result<Kinds, KindError> {
        let mut kinds: Vec<String> = BUILTIN_KINDS.iter().map(|k| (*k).to_owned()).collect();
        for k in extra {
            if !plain_name(k) {
                return Err(KindError::BadExtra(k.clone()));
            }
            if !kinds.contains(k) {
                kinds.push(k.clone());
            }
        }
        Ok(Kinds { kinds })
    }

    /// The kind `text` names (any case).
    pub fn parse(&self, text: &str) -> Result<Kind, KindError> {
        let t = text.trim().to_ascii_lowercase();
        match self.kinds.iter().find(|k| **k == t) {
            Some(k) => Ok(Kind(k.clone())),
            None => Err(KindError::Unknown {
                given: text.to_owned(),
                known: self.kinds.join(", "),
            }),
        }
    }
}

/// A checked asset kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind(String);

impl Kind {
    /// The kind as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::new(&["cost_center".into(), "site".into()]).expect("schema")
    }

    fn value(name: &str, raw: &str) -> Option<Value> {
        schema()
            .parse(name, raw)
            .unwrap_or_else(|e| panic!("{name}={raw}: {e}"))
            .value
    }

    #[test]
    fn good_values_are_stored_in_their_canonical_form() {
        assert_eq!(value("site", "  FRA1 "), Some(json!("FRA1")));
        assert_eq!(value("manual.rack_unit", "42"), Some(json!(42)));
        assert_eq!(value("rack_unit", "U20"), Some(json!(20)));
        assert_eq!(
            value("purchase_date", "2024-02-29"),
            Some(json!("2024-02-29"))
        );
        assert_eq!(
            value("finance:purchase_cost", "1234.5"),
            Some(json!("1234.50"))
        );
        assert_eq!(value("purchase_cost", "1,234"), Some(json!("1234.00")));
        assert_eq!(value("purchase_cost", "0"), Some(json!("0.00")));
        assert_eq!(value("currency", "usd"), Some(json!("USD")));
        assert_eq!(value("depreciation_years", "5"), Some(json!(5)));
        assert_eq!(value("cost_center", "CC-12"), Some(json!("CC-12")));
        assert_eq!(value("notes", ""), None);
        let v = schema().parse("vendor", "Dell").expect("vendor");
        assert_eq!((v.section, v.name.as_str()), (Section::Finance, "vendor"));
        let j = schema()
            .parse_json("purchase_cost", &json!(4200))
            .expect("number");
        assert_eq!(j.value, Some(json!("4200.00")));
        let j = schema().parse_json("rack_unit", &json!(7)).expect("number");
        assert_eq!(j.value, Some(json!(7)));
        assert_eq!(
            schema()
                .parse_json("owner", &Value::Null)
                .expect("null")
                .value,
            None
        );
    }

    #[test]
    fn bad_values_name_the_field_the_value_and_the_form() {
        for (name, raw, words) in [
            (
                "purchase_date",
                "2024-13-01",
                "finance.purchase_date: \"2024-13-01\" is not a date (YYYY-MM-DD)",
            ),
            ("purchase_date", "2023-02-29", "not a date"),
            ("warranty_end", "1/2/2026", "not a date"),
            ("purchase_cost", "12.345", "at most two decimals"),
            ("purchase_cost", "-5", "no sign"),
            ("purchase_cost", "1e3", "not an amount"),
            ("purchase_cost", "NaN", "not an amount"),
            ("purchase_cost", "99999999999999999", "not an amount"),
            ("rack_unit", "0", "from 1 to 100"),
            ("rack_unit", "top", "manual.rack_unit"),
            ("depreciation_years", "51", "from 1 to 50"),
            ("currency", "EURO", "three-letter"),
            ("name", "a\u{7}b", "manual.name"),
        ] {
            let e = schema().parse(name, raw).expect_err(raw).to_string();
            assert!(
                e.contains(words) || words == "not an amount" && e.contains("is not an amount"),
                "{name}={raw}: {e}"
            );
        }
        let e = schema()
            .parse("colour", "red")
            .expect_err("unknown")
            .to_string();
        assert!(
            e.contains("unknown field \"colour\"")
                && e.contains("department")
                && e.contains("purchase_cost"),
            "{e}"
        );
        assert!(schema().parse("facts.os", "x").is_err());
        assert!(schema().parse_json("owner", &json!([1])).is_err());
        assert!(Schema::new(&["Bad Name".into()]).is_err());
        assert!(Schema::new(&["serial".into()]).is_err());
    }

    #[test]
    fn kinds_are_built_in_or_configured() {
        let k = Kinds::new(&["ups".into()]).expect("kinds");
        assert_eq!(k.parse("Switch").expect("switch").as_str(), "switch");
        assert_eq!(k.parse("ups").expect("ups").as_str(), "ups");
        let e = k.parse("spaceship").expect_err("unknown").to_string();
        assert!(
            e.contains("spaceship") && e.contains("pdu") && e.contains("ups"),
            "{e}"
        );
        assert!(Kinds::new(&["no way".into()]).is_err());
    }
}
