//! `state.apply`, `state.highstate`, `state.show_sls`: the states crate fed
//! with state files from the master's file roots (or local ones with
//! `cmdb-minion call --local`).

use std::collections::BTreeMap;

use std::sync::Arc;

use serde_json::{Map, Value, json};
use states::sls::{Loader, SlsFile};
use states::template::{FileFetch, Renderer, Vars};

use super::{CallContext, FileSource, Outcome};

/// Retcode Salt uses when a state fails.
const STATE_FAILED: i32 = 2;

struct FileLoader {
    files: FileSource,
    rt: tokio::runtime::Handle,
}

impl FileLoader {
    fn fetch(&self, path: &str) -> Result<Vec<u8>, String> {
        self.files.fetch_blocking(path, &self.rt)
    }

    /// The same file source, for the template engine's includes.
    fn shared(&self) -> FileFetch {
        let (files, rt) = (self.files.clone(), self.rt.clone());
        Arc::new(move |path: &str| files.fetch_blocking(path, &rt))
    }
}

impl Loader for FileLoader {
    fn load(&self, sls: &str) -> Result<SlsFile, String> {
        if sls.is_empty() || sls.contains('/') || sls.split('.').any(str::is_empty) {
            return Err(format!("{sls:?} is not a state file name"));
        }
        let base = sls.replace('.', "/");
        let (path, bytes) = [format!("{base}.sls"), format!("{base}/init.sls")]
            .into_iter()
            .find_map(|p| self.fetch(&p).ok().map(|b| (p, b)))
            .ok_or_else(|| {
                format!("no state file {base}.sls or {base}/init.sls in the file roots")
            })?;
        let text = String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8"))?;
        Ok(SlsFile { path, text })
    }
}

/// The variables templates of this run see: the facts, and the pillar
/// from the master with the `pillar=` argument merged over it.
async fn template_vars(
    ctx: &CallContext,
    kwargs: &BTreeMap<String, String>,
) -> Result<Vars, String> {
    let mut pillar = super::pillar::fetch(ctx).await?;
    if let Some(text) = kwargs.get("pillar") {
        states::pillar::merge(&mut pillar, super::pillar::parse_override(text)?);
    }
    Ok(Vars {
        grains: ctx.facts().await,
        pillar,
        opts: json!({"id": ctx.id, "test": test_mode(kwargs), "saltenv": "base"}),
        saltenv: "base".into(),
    })
}

fn test_mode(kwargs: &BTreeMap<String, String>) -> bool {
    kwargs
        .get("test")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "1"))
}

fn sls_names(args: &[String]) -> Vec<String> {
    args.iter()
        .flat_map(|a| a.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn run_states(
    ctx: &CallContext,
    names: Option<Vec<String>>,
    kwargs: &BTreeMap<String, String>,
) -> Outcome {
    let files = match ctx.files() {
        Ok(f) => f,
        Err(e) => return Outcome::fail(e, 1),
    };
    let test = test_mode(kwargs);
    let vars = match template_vars(ctx, kwargs).await {
        Ok(v) => v,
        Err(e) => return Outcome::fail(e, 1),
    };
    let backup_dir = ctx.state_dir.join("file_backup");
    let rt = tokio::runtime::Handle::current();
    let id = ctx.id.clone();
    let joined =
        tokio::task::spawn_blocking(move || -> Result<(Map<String, Value>, bool), String> {
            let loader = FileLoader { files, rt };
            let renderer = Renderer::new(vars, Some(loader.shared()));
            let names = match names {
                Some(n) => n,
                None => {
                    let top = loader
                        .fetch("top.sls")
                        .map_err(|e| format!("top.sls: {e}"))?;
                    let top =
                        String::from_utf8(top).map_err(|_| "top.sls is not UTF-8".to_string())?;
                    let top = renderer
                        .render("top.sls", &top, None)
                        .map_err(|e| e.to_string())?;
                    states::top::states_for(&top, &id, Some(&renderer.vars().grains))
                        .map_err(|e| e.to_string())?
                }
            };
            if names.is_empty() {
                return Err("No states found for this minion".into());
            }
            let list =
                states::sls::compile_with(&loader, &names, &renderer).map_err(|e| e.to_string())?;
            let plan = states::order::plan(&list).map_err(|e| e.to_string())?;
            let fetch = |p: &str| loader.fetch(p);
            let listing = |p: &str| loader.files.list_blocking(p, &loader.rt);
            let mut sctx = states::Context::new(test, &fetch, backup_dir, &renderer);
            sctx.list = &listing;
            Ok(states::apply(&list, &plan, &sctx))
        })
        .await;
    match joined {
        Ok(Ok((results, ok))) => Outcome {
            data: Value::Object(results),
            success: ok,
            retcode: if ok { 0 } else { STATE_FAILED },
        },
        Ok(Err(e)) => Outcome::fail(e, 1),
        Err(e) => Outcome::fail(format!("state run failed: {e}"), 1),
    }
}

/// `state.apply [sls,…] [test=true]`: without names, the highstate.
pub async fn apply(
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    let names = sls_names(args);
    let names = (!names.is_empty()).then_some(names);
    run_states(ctx, names, kwargs).await
}

/// `state.highstate [test=true]`: every state file `top.sls` gives this minion.
pub async fn highstate(kwargs: &BTreeMap<String, String>, ctx: &CallContext) -> Outcome {
    run_states(ctx, None, kwargs).await
}

/// `state.show_sls sls,…`: the compiled states, without running them.
pub async fn show_sls(args: &[String], ctx: &CallContext) -> Outcome {
    let files = match ctx.files() {
        Ok(f) => f,
        Err(e) => return Outcome::fail(e, 1),
    };
    let names = sls_names(args);
    if names.is_empty() {
        return Outcome::fail("state.show_sls needs a state file name", 1);
    }
    let vars = match template_vars(ctx, &BTreeMap::new()).await {
        Ok(v) => v,
        Err(e) => return Outcome::fail(e, 1),
    };
    let rt = tokio::runtime::Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        let loader = FileLoader { files, rt };
        let renderer = Renderer::new(vars, Some(loader.shared()));
        let list =
            states::sls::compile_with(&loader, &names, &renderer).map_err(|e| e.to_string())?;
        states::order::plan(&list).map_err(|e| e.to_string())?;
        let mut out = Map::new();
        for s in list {
            let reqs: Vec<Value> = s
                .requisites
                .iter()
                .map(|r| json!({r.kind.as_str(): {r.module.clone().unwrap_or_default(): r.target}}))
                .collect();
            let entry = out
                .entry(s.id.clone())
                .or_insert_with(|| json!({"__sls__": s.sls}));
            entry[s.module.clone()] =
                json!([s.function, {"name": s.name}, {"args": s.args}, {"requisites": reqs}]);
        }
        Ok::<_, String>(out)
    })
    .await;
    match joined {
        Ok(Ok(out)) => Outcome::ok(Value::Object(out)),
        Ok(Err(e)) => Outcome::fail(e, 1),
        Err(e) => Outcome::fail(e.to_string(), 1),
    }
}
