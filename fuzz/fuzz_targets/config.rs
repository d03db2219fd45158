//! Master and minion config files from arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = master::MasterConfig::parse(text);
        let _ = minion::MinionConfig::parse(text);
    }
});
