//! Pillar and templated states through real processes: each minion's
//! pillar is compiled by the master for that minion only.

use std::path::Path;

use serde_json::{Value, json};
use tests::{Cluster, ClusterOpts};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn cluster(ids: &[&str]) -> Cluster {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(ids);
    c
}

fn states_of(v: &Value) -> Vec<&Value> {
    let mut s: Vec<&Value> = v.as_object().expect("state results").values().collect();
    s.sort_by_key(|x| x["__run_num__"].as_u64());
    s
}

#[test]
fn each_minion_sees_only_its_own_pillar() {
    let c = cluster(&["web01", "web02"]);
    let p = c.dir.path().join("pillar");
    write(
        &p.join("top.sls"),
        "base:\n  '*':\n    - common\n  web01:\n    - web01\n  web02:\n    - web02\n",
    );
    write(&p.join("common.sls"), "site:\n  port: 80\n");
    write(
        &p.join("web01.sls"),
        "web01_secret: s1\nsite:\n  port: 8081\n  host: {{ grains.id }}\n",
    );
    write(&p.join("web02/init.sls"), "web02_secret: s2\n");

    let (v, stderr, code) = c.run_json(&["*", "pillar.items"]);
    assert_eq!(code, 0, "{stderr} {v}");
    assert_eq!(
        v["web01"],
        json!({"web01_secret": "s1", "site": {"port": 8081, "host": "web01"}})
    );
    assert_eq!(
        v["web02"],
        json!({"web02_secret": "s2", "site": {"port": 80}})
    );

    let (v, _, code) = c.run_json(&["*", "pillar.get", "site:port", "none"]);
    assert_eq!(code, 0);
    assert_eq!(v, json!({"web01": 8081, "web02": 80}));
    let (v, _, _) = c.run_json(&["web02", "pillar.get", "web01_secret", "hidden"]);
    assert_eq!(v["web02"], "hidden");
    let (v, _, code) = c.run_json(&["web01", "pillar.refresh"]);
    assert_eq!((code, &v["web01"]), (0, &json!(true)));

    write(&p.join("web02/init.sls"), "broken: {{ nope }}\n");
    let (v, _, code) = c.run_json(&["web02", "pillar.items"]);
    assert_eq!(code, 1);
    let e = v["web02"].as_str().expect("error").to_owned();
    assert!(e.contains("web02/init.sls, line 1"), "{e}");
}

#[test]
fn templated_states_use_grains_pillar_and_the_command_line_pillar() {
    let c = cluster(&["web01"]);
    let srv = c.dir.path().join("srv");
    let out = c.dir.path().join("out");
    let p = c.dir.path().join("pillar");
    write(&p.join("top.sls"), "base:\n  '*':\n    - site\n");
    write(
        &p.join("site.sls"),
        "site:\n  port: 8080\n  names: [a, b]\n",
    );
    write(
        &srv.join("site/init.sls"),
        &format!(
            "{{% from 'site/map.jinja' import root %}}\n{{% for n in pillar.site.names %}}\n{root}/{{{{ grains['id'] }}}}/{{{{ n }}}}:\n  file.directory:\n    - makedirs: true\n{{% endfor %}}\n{root}/{{{{ grains['id'] }}}}/a/site.conf:\n  file.managed:\n    - source: cmdb://site/site.conf.j2\n    - template: jinja\n    - context:\n        extra: {{{{ pillar.get('extra', 'none') | yaml }}}}\n",
            root = "{{ root }}"
        ),
    );
    write(
        &srv.join("site/map.jinja"),
        &format!("{{% set root = '{}' %}}\n", out.display()),
    );
    write(
        &srv.join("site/site.conf.j2"),
        "listen {{ pillar.site.port }};\nserver_name {{ grains.id }};\nextra {{ extra }};\n",
    );
    let (v, stderr, code) = c.run_json(&["web01", "state.apply", "site", "test=true"]);
    assert_eq!(code, 0, "{stderr} {v}");
    let s = states_of(&v["web01"]);
    assert_eq!(s.len(), 3, "{v}");
    assert!(s.iter().all(|x| x["result"] == Value::Null), "{v}");
    assert!(
        s[2]["comment"]
            .as_str()
            .expect("c")
            .contains("would be created"),
        "the parent an earlier state creates counts as present: {v}"
    );
    assert!(!out.exists());

    let (v, stderr, code) = c.run_json(&[
        "web01",
        "state.apply",
        "site",
        r#"pillar={"site": {"port": 9090}, "extra": "cli"}"#,
    ]);
    assert_eq!(code, 0, "{stderr} {v}");
    assert_eq!(
        std::fs::read_to_string(out.join("web01/a/site.conf")).expect("conf"),
        "listen 9090;\nserver_name web01;\nextra cli;\n"
    );
    assert!(out.join("web01/b").is_dir());

    write(
        &srv.join("bad.sls"),
        "ok:\n  cmd.run:\n    - name: echo {{ pillar.missing }}\n",
    );
    let (v, _, code) = c.run_json(&["web01", "state.apply", "bad"]);
    assert_eq!(code, 1);
    let e = v["web01"].as_str().expect("error").to_owned();
    assert!(
        e.contains("bad.sls, line 3") && e.contains("undefined"),
        "{e}"
    );
}

/// The worked example of docs/states.md: a site with a template, pillar
/// and a restart on change, with a stand-in for the service.
#[test]
fn worked_example_on_three_minions_test_then_real_then_idempotent() {
    let ids = ["web01", "web02", "web03"];
    let c = cluster(&ids);
    let base = c.dir.path().join("hosts");
    let (srv, p) = (c.dir.path().join("srv"), c.dir.path().join("pillar"));
    write(&p.join("top.sls"), "base:\n  'web*':\n    - site\n");
    write(
        &p.join("site.sls"),
        &format!(
            "site:\n  server_name: {{{{ grains['id'] }}}}.example.com\n  port: 8080\n  \
             root: {b}/{{{{ grains['id'] }}}}/www\n  conf_dir: {b}/{{{{ grains['id'] }}}}/conf\n  \
             restart: echo restarted >> {b}/{{{{ grains['id'] }}}}/restarts\n",
            b = base.display()
        ),
    );
    write(
        &srv.join("site/init.sls"),
        "{% set site = pillar['site'] %}\n\
         site-root:\n  file.directory:\n    - name: {{ site.root }}\n    - makedirs: true\n\n\
         site-index:\n  file.managed:\n    - name: {{ site.root }}/index.html\n    - contents: \"hello from {{ grains['id'] }}\"\n\n\
         site-config:\n  file.managed:\n    - name: {{ site.conf_dir }}/site.conf\n    - source: cmdb://site/site.conf.j2\n    - template: jinja\n    - makedirs: true\n    - context:\n        site: {{ site | json }}\n\n\
         site-restart:\n  cmd.wait:\n    - name: {{ site.restart }}\n    - watch:\n      - file: site-config\n",
    );
    write(
        &srv.join("site/site.conf.j2"),
        "server {\n    listen {{ site.port }};\n    server_name {{ site.server_name }};\n    root {{ site.root }};\n}\n",
    );
    let (v, stderr, code) = c.run_json(&["web*", "state.apply", "site", "test=true"]);
    assert_eq!(code, 0, "{stderr} {v}");
    for id in ids {
        let s = states_of(&v[id]);
        assert_eq!(s.len(), 4, "{v}");
        assert!(s[..3].iter().all(|x| x["result"] == Value::Null), "{v}");
        assert!(
            s[1]["comment"]
                .as_str()
                .expect("c")
                .contains("would be created"),
            "index.html's directory comes from site-root: {v}"
        );
    }
    assert!(!base.exists(), "a dry run changes nothing");

    let (v, stderr, code) = c.run_json(&["web*", "state.apply", "site"]);
    assert_eq!(code, 0, "{stderr} {v}");
    for id in ids {
        let conf = std::fs::read_to_string(base.join(id).join("conf/site.conf")).expect("conf");
        assert_eq!(
            conf,
            format!(
                "server {{\n    listen 8080;\n    server_name {id}.example.com;\n    root {}/{id}/www;\n}}\n",
                base.display()
            )
        );
        assert_eq!(
            std::fs::read_to_string(base.join(id).join("restarts")).expect("restarted"),
            "restarted\n"
        );
    }

    let (v, _, code) = c.run_json(&["web*", "state.apply", "site"]);
    assert_eq!(code, 0);
    for id in ids {
        assert!(
            states_of(&v[id]).iter().all(|x| x["changes"] == json!({})),
            "second run changes nothing: {v}"
        );
        assert_eq!(
            std::fs::read_to_string(base.join(id).join("restarts")).expect("restarts"),
            "restarted\n",
            "no restart without a change"
        );
    }
}
