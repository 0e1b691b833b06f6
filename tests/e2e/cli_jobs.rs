//! Jobs that must survive the real world: a kill -9 mid-job, two jobs at once, bad
//! credentials. The real binary, the simulator over HTTP, real SQLite.

use crate::support::Workspace;
use std::time::{Duration, Instant};

/// A sheet of `n` users that do not exist yet (creates only).
fn new_users_sheet(ws: &Workspace, n: usize) -> String {
    let mut s = String::from("upn,displayName,country\n");
    for i in 0..n {
        s.push_str(&format!(
            "new.user{i:03}@contoso.onmicrosoft.com,New User {i:03},BE\n"
        ));
    }
    ws.write("new-users.csv", &s).display().to_string()
}

fn latest_job(ws: &Workspace) -> i64 {
    ws.history()
        .query_row("select max(id) from bulk_jobs", [], |r| r.get(0))
        .expect("a job was recorded")
}

fn item_statuses(ws: &Workspace, job: i64) -> Vec<(String, String)> {
    let db = ws.history();
    let mut st = db
        .prepare("select upn, status from job_items where bulk_id = ?1 order by upn")
        .unwrap();
    st.query_map([job], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn killed_mid_job_then_resumed_loses_nothing() {
    let ws = Workspace::with_tenant_extra("sim_latency_ms = 40\nconcurrency = 2\n");
    let sheet = new_users_sheet(&ws, 40);
    // One request per user and change, so the kill lands mid-job.
    let mut child = ws.spawn(&["sync", "--bulk-size", "0", &sheet]);
    // Wait until some items have finished, then kill -9.
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let done: i64 = rusqlite::Connection::open(ws.path("history.db"))
            .and_then(|db| {
                db.query_row(
                    "select count(*) from job_items where status in ('success','error')",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0);
        if done >= 5 || t0.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let job = latest_job(&ws);
    let before = item_statuses(&ws, job);
    assert_eq!(
        before.len(),
        40,
        "every sheet user is an item from the start"
    );
    assert!(
        before.iter().any(|(_, s)| s == "pending" || s == "running"),
        "the kill came too late to test anything: {before:?}"
    );

    let r = ws.run(&["--output", "json", "resume", &job.to_string()]);
    r.code(0);
    let after = item_statuses(&ws, job);
    assert_eq!(after.len(), 40);
    assert!(
        after
            .iter()
            .all(|(_, s)| s == "success" || s == "unchanged"),
        "{after:?}"
    );
    // The same job finished: no second job was created.
    assert_eq!(latest_job(&ws), job);
    // And the tenant holds every user exactly once.
    let plan = ws
        .run(&["--output", "json", "plan", &sheet, "--detailed-exitcode"])
        .code(0)
        .json();
    assert_eq!(plan["summary"]["operations"], 0, "{plan}");
}

#[test]
fn a_second_job_on_the_same_tenant_is_refused_while_one_runs() {
    // Every request takes 800 ms, one at a time: the first job runs for seconds. At 40 ms
    // its few bulk requests could end before the second job started, which then found
    // nothing to do (exit 0) instead of the lock.
    let ws = Workspace::with_tenant_extra("sim_latency_ms = 800\nconcurrency = 1\n");
    let sheet = new_users_sheet(&ws, 30);
    let mut first = ws.spawn(&["sync", &sheet]);
    // Wait until the first job holds the lock (its job row exists).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        let n: i64 = rusqlite::Connection::open(ws.path("history.db"))
            .and_then(|db| {
                db.query_row(
                    "select count(*) from bulk_jobs where status = 'running'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0);
        if n > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let second = ws.run(&["sync", &sheet]);
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    second.code(3);
    assert!(
        second.stderr.to_lowercase().contains("lock"),
        "{}",
        second.stderr
    );
}
