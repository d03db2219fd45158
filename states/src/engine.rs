//! Applying a plan of states: requisites, test mode, results and timing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::modules;
use crate::order::Plan;
use crate::sls::{ReqKind, State};
use crate::template::Renderer;

/// Fetches `cmdb://` sources from the master.
pub type Fetch<'a> = &'a dyn Fn(&str) -> Result<Vec<u8>, String>;

/// Lists the files below a `cmdb://` directory.
pub type List<'a> = &'a dyn Fn(&str) -> Result<Vec<crate::roots::Listed>, String>;

fn no_listing(path: &str) -> Result<Vec<crate::roots::Listed>, String> {
    Err(format!("cannot list cmdb://{path}: no file server"))
}

/// What the state modules may use.
pub struct Context<'a> {
    /// Lists `cmdb://` directories (`file.recurse`).
    pub list: List<'a>,
    /// Test mode: change nothing, say what would change.
    pub test: bool,
    /// Fetches `cmdb://path` files.
    pub fetch: Fetch<'a>,
    /// Where replaced files are backed up.
    pub backup_dir: PathBuf,
    /// Renders `template: jinja` files with the run's grains and pillar.
    pub renderer: &'a Renderer,
    /// In test mode, the files and directories earlier states of the run
    /// would have created or changed.
    pub predicted: Predicted,
}

impl<'a> Context<'a> {
    /// A context with nothing predicted yet.
    pub fn new(
        test: bool,
        fetch: Fetch<'a>,
        backup_dir: PathBuf,
        renderer: &'a Renderer,
    ) -> Context<'a> {
        Context {
            list: &no_listing,
            test,
            fetch,
            backup_dir,
            renderer,
            predicted: Predicted::default(),
        }
    }

    /// Whether `path` is a directory, or (in test mode) one an earlier
    /// state would have created.
    pub fn is_dir(&self, path: &Path) -> bool {
        path.is_dir() || self.test && self.predicted.is_dir(path)
    }

    /// Whether `path` exists, or (in test mode) an earlier state would have
    /// created it.
    pub fn exists(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok() || self.test && self.predicted.entry(path).is_some()
    }

    /// The file's bytes: in test mode those an earlier state would have
    /// written, otherwise those on disk.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        if self.test
            && let Some(Entry::File(data)) = self.predicted.entry(path)
        {
            return Some(data);
        }
        std::fs::read(path).ok()
    }

    /// In test mode, remembers that `path` would be a directory (with its
    /// parents).
    pub fn predict_dir(&self, path: &Path) {
        if self.test {
            self.predicted.set(path, Entry::Dir);
        }
    }

    /// In test mode, remembers what `path` would hold (its parents become
    /// directories).
    pub fn predict_file(&self, path: &Path, data: Vec<u8>) {
        if self.test {
            if let Some(parent) = path.parent() {
                self.predicted.set(parent, Entry::Dir);
            }
            self.predicted.set(path, Entry::File(data));
        }
    }
}

/// What an earlier state of a test run would have made of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir,
    /// A file with these bytes.
    File(Vec<u8>),
}

/// The paths earlier states of a test run would have created, so later
/// states judge them as present.
#[derive(Debug, Default)]
pub struct Predicted {
    paths: RefCell<BTreeMap<PathBuf, Entry>>,
}

impl Predicted {
    fn set(&self, path: &Path, entry: Entry) {
        let mut paths = self.paths.borrow_mut();
        if entry == Entry::Dir {
            for a in path.ancestors().skip(1) {
                if a.as_os_str().is_empty() || a.is_dir() {
                    break;
                }
                paths.insert(a.to_path_buf(), Entry::Dir);
            }
        }
        paths.insert(path.to_path_buf(), entry);
    }

    fn entry(&self, path: &Path) -> Option<Entry> {
        self.paths.borrow().get(path).cloned()
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.entry(path) == Some(Entry::Dir)
    }
}

/// The outcome of one state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateResult {
    /// `Some(true)` succeeded, `Some(false)` failed, `None` would change (test mode).
    pub result: Option<bool>,
    /// What happened, in words.
    pub comment: String,
    /// What changed (or would change).
    pub changes: Value,
}

impl StateResult {
    /// Success with changes.
    pub fn changed(comment: impl Into<String>, changes: Value) -> StateResult {
        StateResult {
            result: Some(true),
            comment: comment.into(),
            changes,
        }
    }

    /// Success, nothing to do.
    pub fn ok(comment: impl Into<String>) -> StateResult {
        StateResult {
            result: Some(true),
            comment: comment.into(),
            changes: json!({}),
        }
    }

    /// Failure.
    pub fn fail(comment: impl Into<String>) -> StateResult {
        StateResult {
            result: Some(false),
            comment: comment.into(),
            changes: json!({}),
        }
    }

    /// Test mode: this would change.
    pub fn would(comment: impl Into<String>, changes: Value) -> StateResult {
        StateResult {
            result: None,
            comment: comment.into(),
            changes,
        }
    }

    fn has_changes(&self) -> bool {
        self.changes.as_object().is_some_and(|m| !m.is_empty())
    }
}

fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        now.subsec_micros()
    )
}

fn conditions(s: &State) -> Option<StateResult> {
    let list = |key: &str| crate::modules::arg_list(s, key).unwrap_or_default();
    let cwd = crate::modules::arg_str(s, "cwd");
    for path in list("creates") {
        if Path::new(&path).exists() {
            return Some(StateResult::ok(format!("{path} exists")));
        }
    }
    for cond in list("onlyif") {
        match crate::system::shell(&cond, cwd) {
            Ok(r) if r.ok() => {}
            Ok(_) => return Some(StateResult::ok("onlyif condition is false")),
            Err(e) => return Some(StateResult::fail(e)),
        }
    }
    for cond in list("unless") {
        match crate::system::shell(&cond, cwd) {
            Ok(r) if r.ok() => return Some(StateResult::ok("unless condition is true")),
            Ok(_) => {}
            Err(e) => return Some(StateResult::fail(e)),
        }
    }
    None
}

fn with_watch(mut r: StateResult, w: StateResult) -> StateResult {
    r.comment = format!("{}; {}", r.comment, w.comment);
    if let (Value::Object(a), Value::Object(b)) = (&mut r.changes, w.changes) {
        a.extend(b);
    }
    if w.result == Some(false) {
        r.result = Some(false);
    } else if w.result.is_none() {
        r.result = None;
    }
    r
}

fn record(
    s: &State,
    run_num: usize,
    res: &StateResult,
    start_time: String,
    started: Instant,
) -> Value {
    json!({
        "__id__": s.id,
        "__sls__": s.sls,
        "__run_num__": run_num,
        "name": s.name,
        "result": res.result,
        "comment": res.comment,
        "changes": res.changes,
        "start_time": start_time,
        "duration": (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
    })
}

/// Applies the plan; returns Salt's result map (`module_|-id_|-name_|-function`
/// → `{result, comment, changes, duration, start_time, __id__, __sls__,
/// __run_num__, name}`) and whether every state succeeded.
///
/// Before a state's function runs: a failed `require`/`watch` (or every
/// `require_any`) fails it; `onfail`, `onchanges`/`onchanges_any` and
/// `prereq` (the target tried in test mode would change) decide whether it
/// runs; then `creates`, `onlyif` and `unless` may say it has nothing to
/// do. After every state, `listen` targets that changed trigger the
/// listener's watch action (`mod_watch`) once each.
pub fn apply(states: &[State], plan: &Plan, ctx: &Context<'_>) -> (Map<String, Value>, bool) {
    let mut results: Vec<Option<StateResult>> = vec![None; states.len()];
    let mut out = Map::new();
    let mut all_ok = true;
    let mut probe = Context::new(true, ctx.fetch, ctx.backup_dir.clone(), ctx.renderer);
    probe.list = ctx.list;
    for (run_num, &i) in plan.order.iter().enumerate() {
        let s = &states[i];
        let started = Instant::now();
        let start_time = clock();
        let deps = &plan.deps[i];
        let of = |kind: ReqKind| -> Vec<usize> {
            deps.iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, j)| *j)
                .collect()
        };
        let failed = |js: &[usize]| -> Vec<String> {
            js.iter()
                .filter(|j| {
                    results[**j]
                        .as_ref()
                        .is_some_and(|r| r.result == Some(false))
                })
                .map(|j| states[*j].key())
                .collect()
        };
        let changed = |js: &[usize]| -> bool {
            js.iter()
                .any(|j| results[*j].as_ref().is_some_and(StateResult::has_changes))
        };
        // States that named this one in `prereq` ran before it; one that
        // failed fails it.
        let prereq_of: Vec<usize> = (0..states.len())
            .filter(|k| plan.deps[*k].contains(&(ReqKind::Prereq, i)))
            .collect();
        let hard: Vec<usize> = of(ReqKind::Require)
            .into_iter()
            .chain(of(ReqKind::Watch))
            .chain(prereq_of)
            .collect();
        let any = of(ReqKind::RequireAny);
        let onchanges: Vec<usize> = of(ReqKind::Onchanges)
            .into_iter()
            .chain(of(ReqKind::OnchangesAny))
            .collect();
        let (onfail, watch, prereq) =
            (of(ReqKind::Onfail), of(ReqKind::Watch), of(ReqKind::Prereq));
        let res = if !failed(&hard).is_empty() {
            StateResult::fail(format!(
                "One or more requisite failed: {}",
                failed(&hard).join(", ")
            ))
        } else if !any.is_empty() && failed(&any).len() == any.len() {
            StateResult::fail(format!(
                "One or more requisite failed: every require_any failed: {}",
                failed(&any).join(", ")
            ))
        } else if !onfail.is_empty() && failed(&onfail).is_empty() {
            StateResult::ok("State was not run because onfail req did not change")
        } else if !onchanges.is_empty() && !changed(&onchanges) {
            StateResult::ok("State was not run because none of the onchanges reqs changed")
        } else if !prereq.is_empty()
            && !prereq.iter().any(|j| {
                conditions(&states[*j]).is_none() && {
                    let r = modules::call(&states[*j], &probe);
                    r.result.is_none() || r.has_changes()
                }
            })
        {
            StateResult::ok("No changes detected in the prereq states; not run")
        } else if let Some(skip) = conditions(s) {
            skip
        } else {
            let r = modules::call(s, ctx);
            if r.result != Some(false)
                && changed(&watch)
                && let Some(w) = modules::watch(s, ctx)
            {
                with_watch(r, w)
            } else {
                r
            }
        };
        if res.result == Some(false) {
            all_ok = false;
        }
        out.insert(s.key(), record(s, run_num, &res, start_time, started));
        results[i] = Some(res);
    }
    let mut run_num = plan.order.len();
    for &i in &plan.order {
        let s = &states[i];
        let listen: Vec<usize> = plan.deps[i]
            .iter()
            .filter(|(k, _)| *k == ReqKind::Listen)
            .map(|(_, j)| *j)
            .collect();
        let fired = listen
            .iter()
            .any(|j| results[*j].as_ref().is_some_and(StateResult::has_changes));
        if !fired || results[i].as_ref().is_some_and(|r| r.result == Some(false)) {
            continue;
        }
        let (started, start_time) = (Instant::now(), clock());
        let Some(res) = modules::watch(s, ctx) else {
            continue;
        };
        if res.result == Some(false) {
            all_ok = false;
        }
        let key = format!("{}_|-listener_{}_|-{}_|-mod_watch", s.module, s.id, s.name);
        out.insert(key, record(s, run_num, &res, start_time, started));
        run_num += 1;
    }
    (out, all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::plan;
    use crate::sls::compile;
    use crate::sls::tests::loader;

    fn run(
        files: &[(&str, &str)],
        test: bool,
        dir: &std::path::Path,
    ) -> (Map<String, Value>, bool) {
        let l = loader(files);
        let states = compile(&l, &["s".into()]).expect("compile");
        let p = plan(&states).expect("plan");
        let fetch = |_: &str| -> Result<Vec<u8>, String> { Err("no master".into()) };
        let renderer = Renderer::new(Default::default(), None);
        let ctx = Context::new(test, &fetch, dir.join("backup"), &renderer);
        apply(&states, &p, &ctx)
    }

    fn by_id<'a>(m: &'a Map<String, Value>, id: &str) -> &'a Value {
        m.values().find(|v| v["__id__"] == id).expect("state")
    }

    #[test]
    fn a_failing_requisite_skips_dependents_and_onfail_runs() {
        let dir = tempfile::tempdir().expect("tmp");
        let marker = dir.path().join("ran");
        let sls = format!(
            "broken:\n  cmd.run:\n    - name: exit 3\nafter:\n  cmd.run:\n    - name: touch {m}\n    - require:\n      - cmd: broken\nrescue:\n  cmd.run:\n    - name: echo rescued\n    - onfail:\n      - cmd: broken\nquiet:\n  cmd.run:\n    - name: echo never\n    - onchanges:\n      - cmd: after\n",
            m = marker.display()
        );
        let (out, ok) = run(&[("s", &sls)], false, dir.path());
        assert!(!ok);
        assert_eq!(by_id(&out, "broken")["result"], false);
        assert_eq!(by_id(&out, "after")["result"], false);
        assert!(
            by_id(&out, "after")["comment"]
                .as_str()
                .expect("c")
                .contains("requisite failed")
        );
        assert!(!marker.exists());
        assert_eq!(by_id(&out, "rescue")["result"], true);
        assert_eq!(by_id(&out, "rescue")["changes"]["stdout"], "rescued");
        assert!(
            by_id(&out, "quiet")["comment"]
                .as_str()
                .expect("c")
                .contains("onchanges")
        );
    }

    #[test]
    fn any_requisites_conditions_prereq_and_listen() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().display();
        let sls = format!(
            "bad:\n  cmd.run:\n    - name: exit 1\ngood:\n  cmd.run:\n    - name: echo ok\n\
             either:\n  cmd.run:\n    - name: echo either\n    - require_any:\n      - cmd: bad\n      - cmd: good\n\
             neither:\n  cmd.run:\n    - name: echo neither\n    - require_any:\n      - cmd: bad\n\
             anychange:\n  cmd.run:\n    - name: echo changed\n    - onchanges_any:\n      - cmd: good\n\
             guarded:\n  file.managed:\n    - name: {d}/guarded\n    - contents: x\n    - unless: test -d {d}\n\
             created:\n  file.managed:\n    - name: {d}/created\n    - contents: x\n    - onlyif: true\n    - creates: {d}/nothing-here\n\
             before:\n  cmd.run:\n    - name: echo before >> {d}/log\n    - prereq:\n      - file: conf\n\
             idle:\n  cmd.run:\n    - name: echo idle >> {d}/log\n    - prereq:\n      - file: guarded\n\
             conf:\n  file.managed:\n    - name: {d}/conf\n    - contents: v1\n\
             reload:\n  cmd.wait:\n    - name: echo reload >> {d}/log\n    - listen:\n      - file: conf\n"
        );
        let (out, ok) = run(&[("s", &sls)], false, dir.path());
        assert!(!ok, "bad and neither fail");
        assert_eq!(by_id(&out, "either")["result"], true);
        assert_eq!(by_id(&out, "neither")["result"], false);
        assert_eq!(by_id(&out, "anychange")["changes"]["stdout"], "changed");
        assert!(!dir.path().join("guarded").exists(), "unless was true");
        assert!(
            dir.path().join("created").exists(),
            "onlyif true, creates absent"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log")).expect("log"),
            "before\nreload\n",
            "prereq ran before the change it guards, idle did not, the listener ran last"
        );
        let listener = out
            .keys()
            .find(|k| k.contains("listener_reload"))
            .expect("a listener result");
        assert_eq!(out[listener]["result"], true);
        let (_, _) = run(&[("s", &sls)], false, dir.path());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log")).expect("log"),
            "before\nreload\n",
            "nothing changed the second time"
        );
    }
}
