//! Requisites resolved to edges, cycles refused, and a deterministic order:
//! every state runs after what it requires, otherwise in declaration order.

use std::collections::BTreeSet;

use crate::error::StateError;
use crate::sls::{ReqKind, State};

/// The states' dependency graph and run order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// State indices in the order they run.
    pub order: Vec<usize>,
    /// For each state, the states it depends on and how.
    pub deps: Vec<Vec<(ReqKind, usize)>>,
}

fn matches(s: &State, module: Option<&str>, target: &str) -> bool {
    module.is_none_or(|m| m == s.module || m == "sls" && s.sls == target)
        && (s.id == target || s.name == target || module == Some("sls") && s.sls == target)
}

/// Salt's `order:` argument as a sort key: `first`, then numbers
/// ascending, then states without one, then `last`.
fn order_key(s: &State) -> (u8, i64) {
    match s.args.get("order") {
        Some(serde_json::Value::String(w)) if w == "first" => (0, 0),
        Some(serde_json::Value::String(w)) if w == "last" => (3, 0),
        Some(v) => match v
            .as_i64()
            .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
        {
            Some(n) => (1, n),
            None => (2, 0),
        },
        None => (2, 0),
    }
}

/// Resolves requisites and orders the states.
pub fn plan(states: &[State]) -> Result<Plan, StateError> {
    let n = states.len();
    let mut deps: Vec<BTreeSet<(ReqKind, usize)>> = vec![BTreeSet::new(); n];
    for (i, s) in states.iter().enumerate() {
        for r in &s.requisites {
            let targets: Vec<usize> = states
                .iter()
                .enumerate()
                .filter(|(j, t)| *j != i && matches(t, r.module.as_deref(), &r.target))
                .map(|(j, _)| j)
                .collect();
            if targets.is_empty() {
                return Err(StateError::MissingRequisite {
                    file: s.sls.clone(),
                    line: s.line,
                    id: s.id.clone(),
                    requisite: format!("{}{}", r.kind.as_str(), if r.reverse { "_in" } else { "" }),
                    target: match &r.module {
                        Some(m) => format!("{m}: {}", r.target),
                        None => r.target.clone(),
                    },
                });
            }
            for j in targets {
                if r.reverse {
                    deps[j].insert((r.kind, i));
                } else {
                    deps[i].insert((r.kind, j));
                }
            }
        }
    }
    let deps: Vec<Vec<(ReqKind, usize)>> =
        deps.into_iter().map(|d| d.into_iter().collect()).collect();
    // before[i]: the states that must run before i.
    let mut before: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &(kind, j) in d {
            match kind {
                ReqKind::Listen => {}
                ReqKind::Prereq => {
                    before[j].insert(i);
                }
                _ => {
                    before[i].insert(j);
                }
            }
        }
    }
    let mut indegree: Vec<usize> = before.iter().map(BTreeSet::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, b) in before.iter().enumerate() {
        for &j in b {
            dependents[j].push(i);
        }
    }
    let keys: Vec<(u8, i64)> = states.iter().map(order_key).collect();
    let mut ready: BTreeSet<((u8, i64), usize)> = (0..n)
        .filter(|i| indegree[*i] == 0)
        .map(|i| (keys[i], i))
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert((keys[d], d));
            }
        }
    }
    if order.len() < n {
        let edges: Vec<Vec<(ReqKind, usize)>> = before
            .iter()
            .map(|b| b.iter().map(|j| (ReqKind::Require, *j)).collect())
            .collect();
        return Err(StateError::Cycle(describe_cycle(states, &edges, &indegree)));
    }
    Ok(Plan { order, deps })
}

fn describe_cycle(states: &[State], deps: &[Vec<(ReqKind, usize)>], indegree: &[usize]) -> String {
    let Some(start) = (0..states.len()).find(|i| indegree[*i] > 0) else {
        return "unknown".into();
    };
    let mut path = vec![start];
    let mut cur = start;
    while let Some(&(_, next)) = deps[cur].iter().find(|(_, j)| indegree[*j] > 0) {
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let cycle: Vec<String> = path[pos..]
                .iter()
                .chain(std::iter::once(&next))
                .map(|i| format!("{} ({})", states[*i].id, states[*i].fun()))
                .collect();
            return cycle.join(" -> ");
        }
        path.push(next);
        cur = next;
    }
    states[start].id.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sls::compile;
    use crate::sls::tests::loader;

    #[test]
    fn requires_reorder_and_declaration_order_breaks_ties() {
        let l = loader(&[(
            "s",
            "b:\n  cmd.run:\n    - require:\n      - cmd: a\nc:\n  cmd.run: []\na:\n  cmd.run: []\nd:\n  cmd.run:\n    - require_in:\n      - cmd: b\n",
        )]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let p = plan(&states).expect("plan");
        let ids: Vec<&str> = p.order.iter().map(|i| states[*i].id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "d", "b"]);
    }

    #[test]
    fn cycles_and_missing_targets_are_errors() {
        let l = loader(&[(
            "s",
            "a:\n  cmd.run:\n    - require:\n      - cmd: b\nb:\n  cmd.run:\n    - watch:\n      - cmd: a\n",
        )]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let err = plan(&states).expect_err("cycle").to_string();
        assert!(
            err.contains("cycle") && err.contains("a (cmd.run)") && err.contains("b (cmd.run)"),
            "{err}"
        );
        let l = loader(&[("s", "a:\n  cmd.run:\n    - require:\n      - pkg: nope\n")]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let err = plan(&states).expect_err("missing").to_string();
        assert!(
            err.contains("s, line 1, state \"a\": requisite require pkg: nope"),
            "{err}"
        );
    }

    #[test]
    fn order_argument_and_prereq_and_listen_shape_the_order() {
        let l = loader(&[(
            "s",
            "a:\n  cmd.run: []\nb:\n  cmd.run:\n    - order: last\nc:\n  cmd.run:\n    - order: 2\nd:\n  cmd.run:\n    - order: 1\ne:\n  cmd.run:\n    - order: first\n    - listen:\n      - cmd: a\nf:\n  cmd.run:\n    - prereq:\n      - cmd: d\n",
        )]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let p = plan(&states).expect("plan");
        let ids: Vec<&str> = p.order.iter().map(|i| states[*i].id.as_str()).collect();
        assert_eq!(ids, ["e", "c", "a", "f", "d", "b"]);
    }
}
