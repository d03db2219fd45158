//! CSV purchase lists for `cmdb asset import`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let allowed: Vec<String> = ["site", "rack", "owner"].iter().map(|s| s.to_string()).collect();
        let _ = master::inventory::import::parse(text, &allowed);
    }
});
