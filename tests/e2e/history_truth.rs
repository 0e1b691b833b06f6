//! The job history tells the truth (issue 15): the real binary against a simulator slow
//! enough to interrupt, and after every scenario `PRAGMA integrity_check` on the history.
//!
//! - kill -9 at many points, then `resume`, then `jobs revert` + `apply --plan`: the
//!   tenant is back exactly as it was, and no user the job changed reads "unchanged";
//! - SIGTERM: the job ends interrupted, the lock is free, the printed `resume` command
//!   finishes it; a second signal exits at once;
//! - two syncs started a second apart: the second sends nothing and exits 3, even with
//!   another `--db`, and is recorded there as a failed run;
//! - a wrong token: exit 3 and a failed job in `jobs list`;
//! - a user created before its number was refused: the item says so and revert removes it;
//! - the history on a tiny file system that fills mid-job (a real tmpfs in a user and
//!   mount namespace, `unshare -rm`): the job stops, every write the tenant received has
//!   its intent in the history, and resume finishes from there; a read-only history is
//!   refused before any request and still listed.

use crate::support::{repo, sample, Workspace};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use teamsync_sim::common::conn::Background;
use teamsync_sim::fusion::{FusionSim, TenantPath};
use teamsync_sim::SimOptions;

const TOKEN: &str = "history-truth-token";

/// The demo sheet (a create, number moves and releases, licenses, groups, VRPs, a
/// disable) where Théo is only renamed: his template would give him a usage location
/// where there was none, which the API cannot remove (README), the one change a revert
/// cannot put back.
fn revertible_sheet(ws: &Workspace) -> String {
    let text = std::fs::read_to_string(repo().join("samples/users.csv")).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("theo.fontaine@") {
                "theo.fontaine@contoso.onmicrosoft.com,Théo Fontaine,,,,,,,,".to_string()
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    ws.write("users.csv", &text).display().to_string()
}

fn integrity_ok(db: &Path) {
    let c = rusqlite::Connection::open(db).expect("history");
    let r: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(r, "ok", "{}", db.display());
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .status()
        .is_ok_and(|s| s.success())
}

fn signal(child: &Child, sig: &str) {
    assert!(
        sh(&["kill", &format!("-{sig}"), &child.id().to_string()]),
        "kill -{sig}"
    );
}

/// Waits for the child, at most `limit`; its exit code.
fn wait_for(child: &mut Child, limit: Duration) -> i32 {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("teamsync did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts teamsync in the workspace with stderr captured (the resume hint).
fn spawn(ws: &Workspace, args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
        .current_dir(ws.dir.path())
        .env_remove("TEAMSYNC_CONFIG")
        .env_remove("TEAMSYNC_DB")
        .env("TS_TRUTH_TOKEN", TOKEN)
        .arg("--config")
        .arg(ws.path("config/teamsync.toml"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn teamsync")
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// One number from the history (0 when it cannot be read yet).
fn count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row(sql, [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Items of the newest job whose first request has been recorded.
fn intents(db: &Path) -> i64 {
    count(
        db,
        "SELECT count(*) FROM job_items WHERE status IN ('running', 'success', 'error') \
         AND bulk_id = (SELECT max(id) FROM bulk_jobs)",
    )
}

fn wait_until(limit: Duration, mut what: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !what() {
        assert!(t0.elapsed() < limit, "gave up waiting");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn newest_job(db: &Path) -> (i64, String, String) {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT id, job_id, status FROM bulk_jobs ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

/// (upn, status, stored operation count, note) of a job's items.
fn items(db: &Path, job: i64) -> Vec<(String, String, usize, Option<String>)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT upn, status, plan, note FROM job_items WHERE bulk_id = ?1 ORDER BY upn")
        .unwrap();
    st.query_map([job], |r| {
        let plan: Option<String> = r.get(2)?;
        let ops = plan
            .and_then(|p| serde_json::from_str::<Value>(&p).ok())
            .and_then(|p| p["ops"].as_array().map(Vec::len))
            .unwrap_or(0);
        Ok((r.get(0)?, r.get(1)?, ops, r.get(3)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

// ---------------------------------------------------------------- a simulator we can watch

struct Sim {
    rt: tokio::runtime::Runtime,
    server: Background,
    tenant: TenantPath,
}

impl Sim {
    /// A simulator whose every answer takes `latency_ms` (before it is handled).
    fn start(latency_ms: u64) -> Sim {
        Sim::serve(latency_ms, None)
    }

    /// A simulator that applies a write at once and answers it `ms` later: a run killed
    /// while it waits leaves a change on the tenant that the history has not seen answered.
    fn with_late_answers(ms: u64) -> Sim {
        Sim::serve(0, Some(Duration::from_millis(ms)))
    }

    fn serve(latency_ms: u64, late_answers: Option<Duration>) -> Sim {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let opts = SimOptions {
            token: Some(TOKEN.into()),
            latency_ms,
            ..SimOptions::default()
        };
        let sim = FusionSim::open(None, Some(&repo().join("samples/tenant.json")), opts).unwrap();
        let tenant = sim.tenant_path();
        let mut router = sim.router();
        if let Some(delay) = late_answers {
            router = router.layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| async move {
                    let write = req.method() != axum::http::Method::GET
                        && !req.uri().path().starts_with("/_sim");
                    let answer = next.run(req).await;
                    if write {
                        tokio::time::sleep(delay).await;
                    }
                    answer
                },
            ));
        }
        let server = rt.block_on(Background::spawn(router)).unwrap();
        Sim { rt, server, tenant }
    }

    fn requests(&self) -> Vec<Value> {
        let url = format!("{}/_sim/requests", self.server.base_url());
        let v: Value = self
            .rt
            .block_on(async { reqwest::get(url).await?.json().await })
            .unwrap();
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    fn writes(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|e| e["method"] != "GET")
            .collect()
    }

    /// A workspace whose default tenant is this simulator; its token comes from
    /// `TS_TRUTH_TOKEN` (which [`spawn`] sets, and a test may set wrong).
    fn workspace(&self) -> Workspace {
        let ws = Workspace::new();
        let t = &self.tenant;
        let cfg = format!(
            "db = \"../history.db\"\ntemplates = {templates:?}\ndefault_tenant = \"real\"\nlock_dir = \"../locks\"\n\n\
             [tenants.real]\nbackend = \"fusion\"\nbase_url = {url:?}\ndraas_instance = {di:?}\n\
             tenant_uuid = {tu:?}\nsubscription_id = {sid}\ntoken_env = \"TS_TRUTH_TOKEN\"\n\
             rate_per_second = 0\nconcurrency = 2\n",
            templates = repo().join("templates").display().to_string(),
            url = self.server.base_url(),
            di = t.draas_instance,
            tu = t.tenant_uuid,
            sid = t.subscription_id,
        );
        ws.write("config/teamsync.toml", &cfg);
        ws
    }
}

/// Runs teamsync in a simulator workspace with the right token; (code, stdout, stderr).
fn run_ok(ws: &Workspace, args: &[&str]) -> String {
    let out = ws
        .cmd()
        .env("TS_TRUTH_TOKEN", TOKEN)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kill_9_at_many_points_then_resume_then_revert_restores_the_tenant() {
    // Kill right after the n-th user's first request is recorded: the simulator has
    // applied it and answers 150 ms later, so the kill lands on a change the tenant holds
    // and the history has not seen answered.
    let mut killed_in_flight = 0;
    let mut credited = 0;
    for n in [1, 3, 5, 8] {
        let what = format!("kill -9 after the intent of user {n}");
        let sim = Sim::with_late_answers(150);
        let ws = sim.workspace();
        let sheet = revertible_sheet(&ws);
        let db = ws.path("history.db");
        let before = run_ok(&ws, &["tenant", "export", "--format", "csv"]);
        let mut child = spawn(&ws, &["sync", &sheet]);
        wait_until(Duration::from_secs(20), || {
            intents(&db) >= n || child.try_wait().unwrap().is_some()
        });
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let (job, _, status) = newest_job(&db);
        if status == "running" {
            killed_in_flight += 1;
            // Nobody holds it any more: the history says so.
            let list: Value =
                serde_json::from_str(&run_ok(&ws, &["--output", "json", "jobs", "list"])).unwrap();
            assert_eq!(list["bulks"][0]["status"], "interrupted", "{what}: {list}");
            run_ok(&ws, &["resume", &job.to_string()]);
        }
        // No user this job changed reads "unchanged": a stored plan with operations
        // ended in success (some "applied before the interruption").
        let rows = items(&db, job);
        for (upn, status, ops, note) in &rows {
            let want = if *ops > 0 { "success" } else { "unchanged" };
            assert_eq!(status, want, "{what}: {upn} ({ops} ops, note {note:?})");
        }
        let applied_before = rows.iter().filter(|r| r.3.is_some()).count();
        credited += applied_before;
        eprintln!(
            "figure: {what}: job {status} at the kill; after resume {applied_before} user(s) \
             'applied before the interruption', 0 of {} changed users read unchanged",
            rows.iter().filter(|r| r.2 > 0).count()
        );
        assert_eq!(newest_job(&db).2, "success", "{what}");
        run_ok(
            &ws,
            &["jobs", "revert", &job.to_string(), "--out", "undo.json"],
        );
        run_ok(&ws, &["apply", "--plan", "undo.json", "--yes"]);
        let after = run_ok(&ws, &["tenant", "export", "--format", "csv"]);
        assert_eq!(after, before, "{what}: the tenant is not back");
        integrity_ok(&db);
    }
    assert!(killed_in_flight >= 3, "too few kills landed mid-job");
    assert!(
        credited >= 1,
        "no kill left a change applied but unanswered"
    );
}

#[test]
fn a_user_created_before_its_number_was_refused_is_recorded_and_reverted() {
    let ws = Workspace::new();
    let sheet = ws.write(
        "orphan.csv",
        "upn,displayName,number,country,licenses\n\
         new.person@contoso.onmicrosoft.com,New Person,+3225409999,BE,MCOEV;STANDARDPACK\n",
    );
    let sheet = sheet.display().to_string();
    // Per user: the create lands and the number is refused (a bulk item is all or nothing).
    ws.run(&["sync", "--bulk-size", "0", &sheet]).code(1);
    let shown = ws
        .run(&["--output", "json", "jobs", "show", "1"])
        .code(0)
        .json();
    let item = &shown["job_items"][0];
    assert_eq!(item["status"], "error");
    let reason = item["error_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("created; ")
            && reason.contains("number not assigned")
            && reason.contains("2020"),
        "{reason}"
    );
    let users = ws.run(&["tenant", "users"]).code(0).stdout.clone();
    assert!(users.contains("new.person@"), "the user exists");
    // Revert knows the job created it.
    ws.run(&["jobs", "revert", "1", "--out", "undo.json"])
        .code(0);
    ws.run(&["apply", "--plan", "undo.json", "--yes"]).code(0);
    let users = ws.run(&["tenant", "users"]).code(0).stdout.clone();
    assert!(
        !users.contains("new.person@"),
        "the created user was removed"
    );
    integrity_ok(&ws.path("history.db"));
}

#[test]
fn sigterm_interrupts_the_job_frees_the_lock_and_the_printed_resume_finishes_it() {
    let ws = Workspace::with_tenant_extra("sim_latency_ms = 40\nconcurrency = 2\n");
    let sheet = revertible_sheet(&ws);
    let db = ws.path("history.db");
    let mut child = spawn(&ws, &["sync", &sheet]);
    wait_until(Duration::from_secs(20), || intents(&db) >= 3);
    let t0 = Instant::now();
    signal(&child, "TERM");
    let code = wait_for(&mut child, Duration::from_secs(10));
    let stopped_in = t0.elapsed();
    eprintln!("figure: SIGTERM to exit: {stopped_in:?} (exit {code})");
    let err = stderr_of(&mut child);
    assert_eq!(code, 3, "{err}");
    assert!(
        stopped_in < Duration::from_secs(6),
        "took {stopped_in:?} to stop"
    );
    let (job, job_id, status) = newest_job(&db);
    assert_eq!(status, "interrupted", "{err}");
    // Items under way were recorded: nothing is left `running`.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM job_items WHERE status = 'running'"
        ),
        0
    );
    // The lock is free: no lease, no lock file, and `jobs list` finds the job.
    assert_eq!(count(&db, "SELECT count(*) FROM job_locks"), 0);
    let locks: Vec<_> = std::fs::read_dir(ws.path("locks")).unwrap().collect();
    assert!(locks.is_empty(), "{locks:?}");
    let list = ws
        .run(&[
            "--output",
            "json",
            "jobs",
            "list",
            "--status",
            "interrupted",
        ])
        .code(0)
        .json();
    assert_eq!(list["results"], 1, "{list}");
    assert_eq!(list["bulks"][0]["abort_reason"], "stopped by SIGTERM");
    // The exact command to finish it.
    let line = err
        .lines()
        .find_map(|l| {
            l.split_once("to finish it: ")
                .map(|(_, c)| c.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no resume command in:\n{err}"));
    assert!(line.ends_with(&format!("resume {job_id}")), "{line}");
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert_eq!(args[0], "--config", "{line}");
    let r = Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
        .current_dir(ws.dir.path())
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(newest_job(&db).2, "success");
    for (upn, status, ops, _) in items(&db, job) {
        assert_eq!(
            status,
            if ops > 0 { "success" } else { "unchanged" },
            "{upn}"
        );
    }
    integrity_ok(&db);
}

#[test]
fn a_second_signal_exits_at_once_and_resume_finishes_the_job() {
    // A slow tenant: a request under way would hold a graceful stop for a while.
    let ws = Workspace::with_tenant_extra("sim_latency_ms = 400\nconcurrency = 2\n");
    let sheet = revertible_sheet(&ws);
    let db = ws.path("history.db");
    let mut child = spawn(&ws, &["sync", &sheet]);
    wait_until(Duration::from_secs(30), || intents(&db) >= 1);
    let t0 = Instant::now();
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(50));
    signal(&child, "INT");
    let code = wait_for(&mut child, Duration::from_secs(5));
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(code, 3, "{}", stderr_of(&mut child));
    let (job, _, _) = newest_job(&db);
    let shown = ws.run(&["--output", "json", "jobs", "list"]).code(0).json();
    assert_eq!(shown["bulks"][0]["status"], "interrupted", "{shown}");
    ws.run(&["resume", &job.to_string()]).code(0);
    assert_eq!(newest_job(&db).2, "success");
    integrity_ok(&db);
}

#[test]
fn two_syncs_a_second_apart_the_second_sends_nothing_and_exits_3() {
    // ~40 requests two at a time, 120 ms each: the first run takes a few seconds.
    let sim = Sim::start(120);
    let ws = sim.workspace();
    let sheet = revertible_sheet(&ws);
    let mut first = spawn(&ws, &["sync", &sheet]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run ended within a second"
    );
    // Freeze the first run so every request the simulator sees next is the second's.
    signal(&first, "STOP");
    std::thread::sleep(Duration::from_millis(300));
    let seen = sim.requests().len();
    assert!(seen > 0, "the first run sent nothing in a second");
    let t0 = Instant::now();
    let second = ws
        .cmd()
        .env("TS_TRUTH_TOKEN", TOKEN)
        .args(["--db", "other.db", "sync", &sheet])
        .output()
        .unwrap();
    let took = t0.elapsed();
    eprintln!("figure: second sync refused in {took:?} (whole process)");
    let after = sim.requests().len();
    signal(&first, "CONT");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{err}");
    assert_eq!(after - seen, 0, "the second run sent requests");
    eprintln!("figure: requests the second sync sent: {}", after - seen);
    assert!(took < Duration::from_secs(3), "not at once: {took:?}");
    assert!(
        err.contains("is busy") && err.contains(&format!("pid {}", first.id())),
        "the holder is not named: {err}"
    );
    assert_eq!(wait_for(&mut first, Duration::from_secs(30)), 0);
    // The refused run is in its own history as a failed run.
    let list = ws
        .run(&[
            "--db", "other.db", "--output", "json", "jobs", "list", "--status", "failed",
        ])
        .code(0)
        .json();
    assert_eq!(list["bulks"][0]["reason_code"], "lock", "{list}");
    integrity_ok(&ws.path("history.db"));
    integrity_ok(&ws.path("other.db"));
}

#[test]
fn a_wrong_token_shows_up_in_jobs_list() {
    let sim = Sim::start(0);
    let ws = sim.workspace();
    let r = ws
        .cmd()
        .env("TS_TRUTH_TOKEN", "wrong-token-4711")
        .args(["sync", &sample("users.csv")])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(3));
    assert!(sim.writes().is_empty());
    let list = ws.run(&["jobs", "list", "--status", "failed"]);
    list.code(0);
    assert!(
        list.stdout.contains("failed") && list.stdout.contains("[auth]"),
        "{}",
        list.stdout
    );
    let j = ws.run(&["--output", "json", "jobs", "list"]).code(0).json();
    assert_eq!(j["bulks"][0]["reason_code"], "auth", "{j}");
    let shown = ws.run(&["jobs", "show", "1"]);
    shown.code(0);
    assert!(
        shown.stdout.contains("authentication failed"),
        "{}",
        shown.stdout
    );
    // The HTML report and the job's JSON say so too.
    ws.run(&[
        "jobs", "export", "1", "--format", "html", "--out", "job.html",
    ])
    .code(0);
    let html = std::fs::read_to_string(ws.path("job.html")).unwrap();
    assert!(html.contains("badge failed") && html.contains("authentication failed"));
    let shown = ws
        .run(&["--output", "json", "jobs", "show", "1"])
        .code(0)
        .json();
    assert_eq!(shown["status"], "failed");
    assert!(
        shown["abort_reason"].as_str().unwrap().contains("HTTP 403"),
        "{shown}"
    );
    // The token never reaches the history.
    let bytes = std::fs::read(ws.path("history.db")).unwrap();
    let needle = b"wrong-token-4711";
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    integrity_ok(&ws.path("history.db"));
}

// ---------------------------------------------------------------- histories that cannot be written

/// `unshare -rm` works here (user and mount namespaces without privileges).
fn namespaces() -> bool {
    let ok = Command::new("unshare")
        .args(["-rm", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("unshare -rm is not available here: skipped (needs user namespaces)");
    }
    ok
}

/// Runs `script` as `sh` in a new user and mount namespace, with `vars` in its environment.
fn in_namespace(script: &str, vars: &[(&str, String)]) -> Child {
    let mut c = Command::new("unshare");
    c.args(["-rm", "sh", "-c", script])
        .env("TS_TRUTH_TOKEN", TOKEN)
        .env("BIN", assert_cmd::cargo::cargo_bin("teamsync"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.spawn().expect("unshare")
}

#[test]
fn a_history_on_a_tiny_file_system_that_fills_mid_job_loses_no_write() {
    if !namespaces() {
        return;
    }
    let sim = Sim::start(40);
    let ws = sim.workspace();
    let sheet = revertible_sheet(&ws);
    let mnt = ws.path("tiny");
    let out = ws.path("out");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let trigger = ws.path("fill-now");
    let script = r#"
        set -e
        mount -t tmpfs -o size=4m tmpfs "$MNT"
        "$BIN" --config "$CFG" --db "$MNT/history.db" sync --bulk-size 0 "$SHEET" 2> "$OUT/stderr" &
        pid=$!
        while [ ! -e "$TRIGGER" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
        dd if=/dev/zero of="$MNT/filler" bs=4096 2>/dev/null || true
        set +e
        wait "$pid"; echo $? > "$OUT/code"
        "$BIN" --config "$CFG" --db "$MNT/history.db" jobs list > "$OUT/list" 2>&1
        while [ ! -e "$GO2" ]; do sleep 0.01; done
        "$BIN" --config "$CFG" --db "$MNT/history.db" sync "$SHEET" > /dev/null 2> "$OUT/stderr2"
        echo $? > "$OUT/code2"
        cp "$MNT"/history.db* "$OUT/"
    "#;
    let p = |p: &Path| p.display().to_string();
    let mut child = in_namespace(
        script,
        &[
            ("MNT", p(&mnt)),
            ("OUT", p(&out)),
            ("CFG", p(&ws.path("config/teamsync.toml"))),
            ("SHEET", sheet.clone()),
            ("TRIGGER", p(&trigger)),
            ("GO2", p(&ws.path("go2"))),
        ],
    );
    // Fill the disk once the job has sent a few writes.
    wait_until(Duration::from_secs(20), || sim.writes().len() >= 4);
    let filled_at = chrono::Utc::now();
    std::fs::write(&trigger, "").unwrap();
    // Once the job has stopped, a new sync on the full disk: refused before any request.
    wait_until(Duration::from_secs(30), || out.join("list").exists());
    let before_second = sim.requests().len();
    std::fs::write(ws.path("go2"), "").unwrap();
    assert_eq!(
        wait_for(&mut child, Duration::from_secs(30)),
        0,
        "{}",
        stderr_of(&mut child)
    );
    let code = std::fs::read_to_string(out.join("code")).unwrap();
    let err = std::fs::read_to_string(out.join("stderr")).unwrap();
    assert_eq!(code.trim(), "3", "{err}");
    assert!(
        err.contains("history.db") && err.contains("disk is full"),
        "the message names the file and the reason: {err}"
    );
    let err2 = std::fs::read_to_string(out.join("stderr2")).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("code2")).unwrap().trim(),
        "3",
        "{err2}"
    );
    assert!(
        err2.contains("history.db")
            && err2.contains("disk is full")
            && err2.contains("nothing was sent"),
        "{err2}"
    );
    assert_eq!(
        sim.requests().len(),
        before_second,
        "the refused sync sent requests"
    );
    let list = std::fs::read_to_string(out.join("list")).unwrap();
    assert!(
        list.contains("interrupted"),
        "jobs list on the full disk: {list}"
    );

    // Every user the tenant received a write for has it recorded: finished, or with the
    // request it was sending (a create has no id yet: its item must then be recorded too).
    let db = out.join("history.db");
    integrity_ok(&db);
    let writes = sim.writes();
    let all_users = items(&db, 1).len();
    let c = rusqlite::Connection::open(&db).unwrap();
    let recorded = |cond: &str, arg: &str| -> i64 {
        c.query_row(
            &format!(
                "SELECT count(*) FROM job_items WHERE bulk_id = 1 AND {cond} AND \
                 (status IN ('success', 'error') OR sending IS NOT NULL OR applied != '[]')"
            ),
            [arg],
            |r| r.get(0),
        )
        .unwrap()
    };
    let mut creates = 0;
    for w in &writes {
        let path = w["path"].as_str().unwrap_or("");
        match path.split("/users/").nth(1) {
            Some(rest) => {
                let id = rest.split('/').next().unwrap_or("");
                assert_eq!(
                    recorded("user_id = ?1", id),
                    1,
                    "{} {path} reached the tenant unrecorded",
                    w["method"]
                );
            }
            None => creates += 1,
        }
    }
    let recorded_creates = recorded("json_extract(plan, '$.action') = ?1", "create");
    assert!(
        recorded_creates >= i64::from(creates > 0),
        "a create reached the tenant unrecorded"
    );
    let recorded_all = recorded("?1 = ?1", "all");
    let after_fill: Vec<i64> = writes
        .iter()
        .filter_map(|w| w["time"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| (t.with_timezone(&chrono::Utc) - filled_at).num_milliseconds())
        .filter(|ms| *ms >= 0)
        .collect();
    eprintln!(
        "figure: disk filled after {} writes; {} write(s) arrived after (last {} ms after), \
         all with a recorded intent; {recorded_all} of {all_users} items record a request",
        writes.len() - after_fill.len(),
        after_fill.len(),
        after_fill.iter().max().copied().unwrap_or(0)
    );
    assert!(
        (recorded_all as usize) < all_users,
        "the disk filled after the job ended: nothing to test"
    );
    // With room again, resume finishes it from the rows it stored.
    ws.cmd()
        .env("TS_TRUTH_TOKEN", TOKEN)
        .args(["--db", &p(&db), "resume", "1"])
        .assert()
        .code(0);
    assert_eq!(newest_job(&db).2, "success");
    for (upn, status, ops, _) in items(&db, 1) {
        assert_eq!(
            status,
            if ops > 0 { "success" } else { "unchanged" },
            "{upn}"
        );
    }
    integrity_ok(&db);
}

#[test]
fn a_read_only_history_is_refused_before_any_request_and_still_listed() {
    if !namespaces() {
        return;
    }
    let sim = Sim::start(0);
    let ws = sim.workspace();
    let dir = ws.path("ro");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("history.db");
    let db_arg = db.display().to_string();
    ws.cmd()
        .env("TS_TRUTH_TOKEN", TOKEN)
        .args(["--db", &db_arg, "sync", &sample("users.csv")])
        .assert()
        .code(0);
    let seen = sim.requests().len();
    let out = ws.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let script = r#"
        mount --bind "$DIR" "$DIR" && mount -o remount,bind,ro "$DIR" || exit 99
        "$BIN" --config "$CFG" --db "$DIR/history.db" sync "$SHEET" > /dev/null 2> "$OUT/sync-err"
        echo $? > "$OUT/sync-code"
        "$BIN" --config "$CFG" --db "$DIR/history.db" jobs list > "$OUT/list" 2>&1
        echo $? > "$OUT/list-code"
        "$BIN" --config "$CFG" --db "$DIR/history.db" jobs show 1 > "$OUT/show" 2>&1
        echo $? > "$OUT/show-code"
    "#;
    let p = |p: &Path| p.display().to_string();
    let mut child = in_namespace(
        script,
        &[
            ("DIR", p(&dir)),
            ("OUT", p(&out)),
            ("CFG", p(&ws.path("config/teamsync.toml"))),
            ("SHEET", sample("users.csv")),
        ],
    );
    assert_eq!(
        wait_for(&mut child, Duration::from_secs(30)),
        0,
        "{}",
        stderr_of(&mut child)
    );
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    let err = read("sync-err");
    assert_eq!(read("sync-code").trim(), "3", "{err}");
    assert!(
        err.contains(&db_arg) && err.contains("read-only") && err.contains("nothing was sent"),
        "{err}"
    );
    assert_eq!(sim.requests().len(), seen, "a request went out");
    assert_eq!(read("list-code").trim(), "0", "{}", read("list"));
    assert!(read("list").contains("success"), "{}", read("list"));
    assert_eq!(read("show-code").trim(), "0", "{}", read("show"));
    integrity_ok(&db);
}
