//! CSV purchase lists: parsed and checked whole before anything is written,
//! so a bad row changes nothing.

use std::collections::BTreeMap;

/// One checked row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Line number in the file (1 is the header).
    pub line: usize,
    /// The system serial number that identifies the asset.
    pub serial: String,
    /// Manual fields to set.
    pub fields: BTreeMap<String, String>,
}

/// Parses a CSV with a header row that has a `serial` column; every other
/// column must be an allowed manual field. Returns every row, or the first
/// problem with its line number.
pub fn parse(text: &str, allowed: &[String]) -> Result<Vec<ImportRow>, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let serial_col = headers
        .iter()
        .position(|h| h == "serial")
        .ok_or("line 1: the header has no \"serial\" column")?;
    for h in &headers {
        if h != "serial" && !allowed.contains(h) {
            return Err(format!(
                "line 1: unknown column {h:?} (allowed: serial, {})",
                allowed.join(", ")
            ));
        }
    }
    let mut rows = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| format!("line {line}: {e}"))?;
        if rec.len() != headers.len() {
            return Err(format!(
                "line {line}: expected {} fields, found {}",
                headers.len(),
                rec.len()
            ));
        }
        let serial = rec.get(serial_col).unwrap_or_default().to_owned();
        if !super::is_real_serial(&serial) {
            return Err(format!(
                "line {line}: missing or placeholder serial {serial:?}"
            ));
        }
        if let Some(first) = seen.insert(serial.clone(), line) {
            return Err(format!(
                "line {line}: serial {serial:?} already on line {first}"
            ));
        }
        let fields = headers
            .iter()
            .zip(rec.iter())
            .filter(|(h, v)| *h != "serial" && !v.is_empty())
            .map(|(h, v)| (h.clone(), v.to_owned()))
            .collect();
        rows.push(ImportRow {
            line,
            serial,
            fields,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        ["site", "rack", "owner"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn good_file() {
        let rows = parse("serial,site,rack\nS1,FRA1,R12\nS2,FRA1,\n", &allowed()).expect("ok");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].fields["rack"], "R12");
        assert!(!rows[1].fields.contains_key("rack"));
    }

    #[test]
    fn bad_rows_name_their_line() {
        let e = parse("serial,site\nS1,FRA1\n,FRA2\n", &allowed()).expect_err("bad");
        assert!(e.starts_with("line 3:"), "{e}");
        let e = parse("serial,colour\nS1,red\n", &allowed()).expect_err("bad");
        assert!(e.contains("colour"), "{e}");
        let e = parse("serial,site\nS1,a\nS1,b\n", &allowed()).expect_err("dup");
        assert!(e.contains("line 3") && e.contains("line 2"), "{e}");
        let e = parse("serial,site\nS1,a,extra\n", &allowed()).expect_err("width");
        assert!(e.starts_with("line 2"), "{e}");
    }
}
