//! Target expressions of every kind, compiled and matched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::Target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let grains = serde_json::json!({"os": "Debian", "ipv4": ["10.0.0.1"], "cpu": {"model": "Xeon"}});
    for t in [
        Target::Glob(text.to_owned()),
        Target::Regex(text.to_owned()),
        Target::Grain(text.to_owned()),
        Target::Compound(text.to_owned()),
        Target::list_from(text),
    ] {
        if let Ok(m) = t.matcher() {
            let _ = m.matches("web01.example.com", Some(&grains));
            let _ = m.matches(text, None);
        }
    }
});
