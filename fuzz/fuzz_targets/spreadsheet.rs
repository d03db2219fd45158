//! Spreadsheets for `cmdb asset import` (CSV and XLSX) and queries for
//! `--where` / `q=`: arbitrary bytes never panic, and a query that parses
//! prints to a form that parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use master::inventory::{query, sheet};

fuzz_target!(|data: &[u8]| {
    let _ = sheet::read_csv(data);
    let _ = sheet::read_xlsx(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(q) = query::parse(text)
    {
        // Quoting may lengthen a query past the limit; below it, the
        // printed form reads back as the same query.
        let printed = q.to_string();
        if printed.len() <= query::MAX_QUERY_BYTES {
            assert_eq!(query::parse(&printed).ok(), Some(q), "{printed}");
        }
    }
});
