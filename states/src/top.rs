//! `top.sls`: which state files apply to which minions.
//!
//! ```yaml
//! base:
//!   '*':
//!     - common
//!   'web*':
//!     - nginx
//!   'os:Debian':
//!     - match: grain
//!     - debian
//! ```

use indexmap::IndexMap;
use protocol::Target;
use serde_json::Value;

use crate::error::StateError;

/// The state files `top.sls` gives the minion `id` with facts `grains`, in
/// order, each once.
pub fn states_for(text: &str, id: &str, grains: Option<&Value>) -> Result<Vec<String>, StateError> {
    let bad = |reason: String| StateError::Syntax {
        file: "top".into(),
        line: 0,
        reason,
    };
    let doc: IndexMap<String, IndexMap<String, Vec<Value>>> =
        serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut out: Vec<String> = Vec::new();
    for (_env, targets) in doc {
        for (expr, items) in targets {
            let mut kind = "glob".to_string();
            let mut names = Vec::new();
            for item in items {
                match item {
                    Value::String(n) => names.push(n),
                    Value::Object(m) => {
                        if let Some(Value::String(k)) = m.get("match") {
                            kind = k.clone();
                        }
                    }
                    other => {
                        return Err(bad(format!(
                            "entry {other} under {expr:?} is not a state file name"
                        )));
                    }
                }
            }
            let target = match kind.as_str() {
                "glob" => Target::Glob(expr.clone()),
                "list" => Target::list_from(&expr),
                "pcre" => Target::Regex(expr.clone()),
                "grain" => Target::Grain(expr.clone()),
                "compound" => Target::Compound(expr.clone()),
                other => return Err(bad(format!("unknown match type {other:?}"))),
            };
            let m = target.matcher().map_err(|e| bad(e.to_string()))?;
            if m.matches(id, grains) {
                for n in names {
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_select_state_files() {
        let top = "base:\n  '*':\n    - common\n  'web*':\n    - nginx\n  'os:Debian':\n    - match: grain\n    - debian\n";
        let g = serde_json::json!({"os": "Debian"});
        assert_eq!(
            states_for(top, "web1", Some(&g)).expect("top"),
            ["common", "nginx", "debian"]
        );
        assert_eq!(states_for(top, "db1", None).expect("top"), ["common"]);
    }
}
