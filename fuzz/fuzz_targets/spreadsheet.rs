//! Spreadsheets for `cmdb asset import` (CSV and XLSX) and queries for
//! `--where` / `q=`: arbitrary bytes never panic, and a query that parses
//! prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use master::inventory::{query, sheet};

fuzz_target!(|data: &[u8]| {
    let _ = sheet::read_csv(data);
    let _ = sheet::read_xlsx(data);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(q) = query::parse(text)
    {
        let printed = q.to_string();
        assert_eq!(query::parse(&printed).ok(), Some(q), "{printed}");
    }
});
