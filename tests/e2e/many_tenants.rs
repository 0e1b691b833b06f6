//! An operator with many customer tenants: one command syncs every tenant that names its
//! sheet, side by side; a Kubernetes Indexed Job splits them into shards, each pod with
//! its own history; in the morning the histories are merged and reviewed as one.

use crate::support::{repo, sample, Run, Workspace};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The four tenants of these tests: two Fusion tenants, a UMP 365 and a PortSIP one,
/// each an embedded simulator with its own state and its own sheet.
const TENANTS: [&str; 4] = ["acme", "beta", "contoso", "delta"];

/// A workspace whose config has the four tenants (`extra` goes into each table) and a
/// tenant without a sheet, which `--all` leaves alone.
fn four_tenants(extra: &str, top: &str) -> Workspace {
    let ws = Workspace::new();
    let tenant = |name: &str, backend: &str, seed: &str, sheet: &str| {
        format!(
            "[tenants.{name}]\nbackend = \"sim\"\nsim_backend = \"{backend}\"\nseed = {seed:?}\n\
             state = \"../state/{name}.db\"\nsheet = {sheet:?}\nrate_per_second = 0\nrequest_timeout_s = 5\n{extra}\n",
            seed = sample(seed),
            sheet = sample(sheet),
        )
    };
    let cfg = format!(
        "db = \"../history.db\"\ntemplates = {templates:?}\nlock_dir = \"../locks\"\n{top}\n\n{}{}{}{}\
         [tenants.manual]\nbackend = \"sim\"\nstate = \"../state/manual.db\"\n",
        tenant("acme", "fusion", "tenant.json", "users.csv"),
        tenant("beta", "fusion", "tenant.json", "users.csv"),
        tenant("contoso", "ump", "ump-tenant.json", "ump-users.csv"),
        tenant("delta", "portsip", "portsip-tenant.json", "portsip-users.csv"),
        templates = repo().join("templates").display().to_string(),
    );
    ws.write("config/teamsync.toml", &cfg);
    ws
}

/// (tenant, status) of every job in a history, by tenant.
fn jobs(db: &Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT tenant, status FROM bulk_jobs ORDER BY tenant, id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn tenants_of(run: &Run) -> Vec<(String, String, i64)> {
    run.json()["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
                t["exit_code"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn one_command_syncs_four_tenants_side_by_side() {
    let ws = four_tenants("", "metrics_file = \"../teamsync.prom\"");
    let r = ws.run(&["sync", "--all", "--parallel-tenants", "4"]);
    r.code(0);
    // One summary table: a row per tenant, its job and its exit code; the total last.
    let table: Vec<&str> = r.stdout.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        table[0].starts_with("tenant") && table[0].ends_with("exit"),
        "{}",
        r.stdout
    );
    for (line, name) in table[1..5].iter().zip(TENANTS) {
        assert!(line.starts_with(name) && line.contains("success"), "{line}");
    }
    assert!(
        table[5].starts_with("sync 4 tenants: 4 success;") && table[5].ends_with("exit 0 (done)"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("manual"),
        "a tenant without a sheet is left alone"
    );
    // Each tenant its own job in the one history.
    let all = jobs(&ws.path("history.db"));
    assert_eq!(all, TENANTS.map(|t| (t.to_string(), "success".to_string())));
    // One metrics file serves them all, labelled by tenant.
    let prom = std::fs::read_to_string(ws.path("teamsync.prom")).unwrap();
    for t in TENANTS {
        assert!(
            prom.contains(&format!("teamsync_last_run_exit_code{{tenant=\"{t}\"}} 0")),
            "{t}: {prom}"
        );
    }

    // The second night plans nothing anywhere; the document says so per tenant.
    let again = ws.run(&["--output", "json", "sync", "--all"]);
    again.code(0);
    let doc = again.json();
    assert_eq!(doc["schema"], "teamsync.tenants/v1");
    assert_eq!(doc["command"], "sync");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["tenants_without_sheet"], serde_json::json!(["manual"]));
    for t in doc["tenants"].as_array().unwrap() {
        assert_eq!(t["status"], "success", "{t}");
        assert_eq!(t["counts"]["unchanged"], t["total"], "{t}");
        assert!(t["job_id"].is_string(), "{t}");
    }
    assert_eq!(jobs(&ws.path("history.db")).len(), 8);

    // A later run of one tenant keeps the other tenants' series.
    ws.run(&["-q", "sync", &sample("users.csv"), "--tenant", "acme"])
        .code(0);
    let prom = std::fs::read_to_string(ws.path("teamsync.prom")).unwrap();
    for t in TENANTS {
        assert_eq!(
            prom.matches(&format!("teamsync_last_run_requests{{tenant=\"{t}\"}}"))
                .count(),
            1,
            "{t}: {prom}"
        );
    }

    // plan and validate take --all the same way.
    let plan = ws.run(&["plan", "--all", "--detailed-exitcode"]);
    plan.code(0);
    assert!(
        plan.stdout.contains("plan 4 tenants: 4 no changes"),
        "{}",
        plan.stdout
    );
    let v = ws.run(&["--output", "json", "validate", "--all"]);
    v.code(0);
    assert_eq!(v.json()["schema"], "teamsync.tenants/v1");
    assert_eq!(tenants_of(&v).len(), 4);
}

/// Two pods of an Indexed Job: each shard syncs its tenants into its own history, every
/// tenant exactly once; the morning merge gives one history of four jobs.
#[test]
fn two_shards_with_their_own_histories_merge_into_one() {
    let ws = four_tenants("", "");
    let mut seen = Vec::new();
    for i in 0..2 {
        let db = format!("pod-{i}/history.db");
        let r = ws.run(&[
            "--db",
            &db,
            "--output",
            "json",
            "sync",
            "--all",
            "--shard",
            &format!("{i}/2"),
        ]);
        r.code(0);
        assert_eq!(r.json()["shard"], format!("{i}/2"));
        assert_eq!(r.json()["tenants_with_sheet"], 4);
        let here: Vec<String> = jobs(&ws.path(&db)).into_iter().map(|(t, _)| t).collect();
        assert_eq!(here.len(), 2, "shard {i}: {here:?}");
        seen.extend(here);
    }
    seen.sort();
    assert_eq!(seen, TENANTS, "every tenant exactly once over the shards");

    let m = ws.run(&["jobs", "merge", "pod-0/history.db", "pod-1/history.db"]);
    m.code(0);
    assert!(m.stdout.contains("now holds 4 jobs"), "{}", m.stdout);
    let list = ws.run(&["--output", "json", "jobs", "list"]);
    list.code(0);
    let bulks = list.json()["bulks"].as_array().unwrap().clone();
    let tenants: BTreeSet<&str> = bulks
        .iter()
        .map(|b| b["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, BTreeSet::from(TENANTS));
    let ids: BTreeSet<i64> = bulks.iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([1, 2, 3, 4]),
        "new ids, the history's own"
    );
    // Every merged job opens with its users in the one history.
    let shown = ws.run(&["--output", "json", "jobs", "show", "4"]);
    shown.code(0);
    assert!(!shown.json()["job_items"].as_array().unwrap().is_empty());
}

#[test]
fn merging_twice_adds_nothing_and_leaves_the_sources_alone() {
    let ws = four_tenants("", "");
    ws.run(&["--db", "pod-0.db", "-q", "sync", "--all", "--shard", "0/2"])
        .code(0);
    ws.run(&["--db", "pod-1.db", "-q", "sync", "--all", "--shard", "1/2"])
        .code(0);
    let before: Vec<Vec<u8>> = ["pod-0.db", "pod-1.db"]
        .iter()
        .map(|f| std::fs::read(ws.path(f)).unwrap())
        .collect();
    ws.run(&["jobs", "merge", "pod-0.db", "pod-1.db"]).code(0);
    let again = ws.run(&["--output", "json", "jobs", "merge", "pod-0.db", "pod-1.db"]);
    again.code(0);
    let doc = again.json();
    assert_eq!(doc["schema"], "teamsync.jobs-merge/v1");
    assert_eq!(doc["jobs"], 4);
    for s in doc["sources"].as_array().unwrap() {
        assert_eq!(
            (s["added"].as_i64(), s["unchanged"].as_i64()),
            (Some(0), Some(2)),
            "{s}"
        );
    }
    assert_eq!(jobs(&ws.path("history.db")).len(), 4);
    let after: Vec<Vec<u8>> = ["pod-0.db", "pod-1.db"]
        .iter()
        .map(|f| std::fs::read(ws.path(f)).unwrap())
        .collect();
    assert!(before == after, "the sources are only read");

    // Something that is not a history is refused, naming it: exit 2, nothing merged.
    let r = ws.run(&["jobs", "merge", "config/teamsync.toml"]);
    r.code(2);
    assert!(
        r.stderr
            .contains("config/teamsync.toml is not a teamsync job history"),
        "{}",
        r.stderr
    );
    assert_eq!(jobs(&ws.path("history.db")).len(), 4);
}

/// A tenant whose sheet is wrong fails on its own; the others sync; the exit code is the
/// worst tenant's (README, "Exit codes").
#[test]
fn one_failing_tenant_leaves_the_others_succeeded() {
    let ws = four_tenants("", "");
    let bad = ws.write("bad.csv", "upn,displayName\nnot-an-upn,Nobody\n");
    let cfg = std::fs::read_to_string(ws.path("config/teamsync.toml")).unwrap();
    let cfg = cfg.replacen(
        &format!("sheet = {:?}", sample("portsip-users.csv")),
        &format!("sheet = {:?}", bad.display().to_string()),
        1,
    );
    ws.write("config/teamsync.toml", &cfg);
    let r = ws.run(&["--output", "json", "sync", "--all"]);
    r.code(2);
    assert_eq!(
        tenants_of(&r),
        [
            ("acme".to_string(), "success".to_string(), 0),
            ("beta".to_string(), "success".to_string(), 0),
            ("contoso".to_string(), "success".to_string(), 0),
            ("delta".to_string(), "failed".to_string(), 2),
        ]
    );
    let delta = &r.json()["tenants"][3];
    assert_eq!(delta["reason_code"], "sheet");
    // The human table says the same, and why.
    let again = ws.run(&["sync", "--all"]);
    again.code(2);
    assert!(
        again
            .stdout
            .contains("delta: 1 error in the sheet; nothing was sent"),
        "{}",
        again.stdout
    );
    assert!(again
        .stdout
        .contains("exit 2 (invalid input, nothing sent)"));
    assert!(again.stderr.contains("bad.csv:2"), "{}", again.stderr);
}

/// SIGTERM during `sync --all`: the tenants under way stop gracefully (their jobs
/// interrupted, resumable), the ones not started are left for the next run, exit 3; the
/// next run finishes everything.
#[test]
fn sigterm_stops_every_tenant_gracefully() {
    let ws = four_tenants("sim_latency_ms = 150\nconcurrency = 1\n", "");
    let db = ws.path("history.db");
    let mut child: Child = Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
        .current_dir(ws.dir.path())
        .env_remove("TEAMSYNC_CONFIG")
        .env_remove("TEAMSYNC_DB")
        .args(["--config", "config/teamsync.toml", "--output", "json"])
        .args(["sync", "--all", "--parallel-tenants", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Both tenants under way have jobs with items being sent.
    let t0 = Instant::now();
    let running = || {
        rusqlite::Connection::open(&db)
            .ok()
            .and_then(|c| {
                c.query_row(
                    "SELECT count(DISTINCT bulk_id) FROM job_items WHERE status != 'pending'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .ok()
            })
            .unwrap_or(0)
    };
    while running() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no jobs started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = {
        let t1 = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(t1.elapsed() < Duration::from_secs(15), "did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = doc["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "interrupted").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "not started").count(),
        2,
        "{statuses:?}"
    );
    // Nothing is left running or locked; the next night finishes every tenant.
    assert!(jobs(&db).iter().all(|(_, s)| s == "interrupted"));
    let locks: Vec<_> = std::fs::read_dir(ws.path("locks")).unwrap().collect();
    assert!(locks.is_empty(), "{locks:?}");
    for job in [1, 2] {
        ws.run(&["-q", "resume", &job.to_string()]).code(0);
    }
    let last = ws.run(&["-q", "sync", "--all", "--parallel-tenants", "4"]);
    last.code(0);
}

/// The README's "Many tenants" commands, verbatim, on what a fresh clone ships: the demos
/// that name a sheet sync, plan to nothing, shard into two histories and merge.
#[test]
fn the_readme_many_tenants_commands_work_on_a_fresh_clone() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["config", "samples", "templates"] {
        let to = dir.path().join(d);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(repo().join(d)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Many tenants\n")
        .nth(1)
        .and_then(|s| s.split("\n### ").next())
        .expect("a \"Many tenants\" section");
    let cmds: Vec<Vec<&str>> = section
        .lines()
        .filter_map(|l| l.strip_prefix("cargo run -- "))
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect()
        })
        .collect();
    assert_eq!(cmds.len(), 6, "{cmds:?}");
    let mut outs = Vec::new();
    for c in &cmds {
        let out = Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
            .current_dir(dir.path())
            .env_remove("TEAMSYNC_CONFIG")
            .env_remove("TEAMSYNC_DB")
            .env("TEAMSYNC_LOCK_DIR", dir.path().join("locks"))
            .args(c)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{c:?}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outs.push(stdout);
    }
    assert!(outs[0].contains("sync 3 tenants: 3 success"), "{}", outs[0]);
    for demo in ["demo ", "demo-ump ", "demo-portsip "] {
        assert!(outs[0].contains(demo), "{demo}: {}", outs[0]);
    }
    assert!(!outs[0].contains("demo-lp"), "{}", outs[0]);
    assert!(outs[1].contains("3 no changes"), "{}", outs[1]);
    // Three jobs of the first night, and the two shards' three.
    assert!(outs[4].contains("now holds 6 jobs"), "{}", outs[4]);
}
