use super::*;
use crate::model::{Field, JobKind, Upn, UserSpec};
use rusqlite::params;
use serde_json::json;

fn open() -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("sub/history.db")).unwrap();
    (dir, h)
}

fn new_job(tenant: &str) -> NewJob {
    NewJob {
        kind: JobKind::MsUsers,
        title: "nightly".into(),
        tenant: tenant.into(),
        source: "users.csv".into(),
        source_sha256: "ab".repeat(32),
    }
}

fn item(upn: &str, status: ItemStatus) -> NewItem {
    let mut spec = UserSpec::new(Upn::parse(upn).unwrap());
    spec.display_name = Field::Set(format!("User {upn}"));
    NewItem {
        upn: upn.into(),
        data: serde_json::to_value(&spec).unwrap(),
        changes: json!([{"field": "displayName", "old": null, "new": "x"}]),
        before: json!({"displayName": null}),
        plan: None,
        user_id: None,
        status,
    }
}

fn done(status: ItemStatus) -> ItemResult {
    ItemResult {
        status,
        error_code: (status == ItemStatus::Error).then(|| "400".into()),
        error_reason: (status == ItemStatus::Error).then(|| "bad number".into()),
        attempts: 1,
        user_id: Some("obj-1".into()),
        applied: vec![],
        note: None,
    }
}

#[tokio::test]
async fn schema_is_created_in_wal_mode() {
    let (_d, h) = open();
    let mode: String = h
        .read(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        h.create_job(new_job("demo"), vec![]).await.unwrap();
        for f in ["", "-wal", "-shm"] {
            let p = format!("{}{f}", h.path().display());
            let m = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(m & 0o077, 0, "{p} is readable by its owner only ({m:o})");
        }
    }
    for t in ["bulk_jobs", "job_items", "job_locks"] {
        let n: i64 = h
            .read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [t],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(n, 1, "{t}");
    }
    // Re-opening an existing database migrates nothing and works.
    let path = h.path().to_path_buf();
    drop(h);
    History::open(&path).unwrap();
}

/// Holds a live lease on job `id`, as the run executing it does.
async fn lease_for(dir: &std::path::Path, h: &History, id: i64) -> TenantLock {
    let mut g = take_lock(dir, h, "sim demo");
    g.record_lease(h).await.unwrap();
    g.set_job(id, "job").await.unwrap();
    g
}

#[tokio::test]
async fn counts_and_status_follow_the_items() {
    let (d, h) = open();
    let (id, job_id, items) = h
        .create_job(
            new_job("demo"),
            vec![
                item("a@x.com", ItemStatus::Pending),
                item("b@x.com", ItemStatus::Pending),
                item("c@x.com", ItemStatus::Unchanged),
            ],
        )
        .await
        .unwrap();
    let _lease = lease_for(d.path(), &h, id).await;
    let j = h.get_job(&id.to_string()).unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Running);
    assert_eq!(
        (
            j.total_count,
            j.success_count,
            j.unchanged_count,
            j.pending_count
        ),
        (3, 1, 1, 2)
    );
    assert_eq!(j.job_id, job_id);

    h.item_running(items[0]).await.unwrap();
    h.item_finished(items[0], done(ItemStatus::Success))
        .await
        .unwrap();
    h.item_running(items[1]).await.unwrap();
    h.item_finished(items[1], done(ItemStatus::Error))
        .await
        .unwrap();
    let j = h.finish_job(id, JobEnd::Completed).await.unwrap();
    assert_eq!(j.status, JobStatus::Partial);
    assert_eq!(
        (
            j.total_count,
            j.success_count,
            j.error_count,
            j.unchanged_count
        ),
        (3, 2, 1, 1)
    );
    assert!(j.finished_on.is_some());

    let errs = h.job_items(id, &[ItemStatus::Error]).unwrap();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].upn, "b@x.com");
    assert_eq!(errs[0].error_code.as_deref(), Some("400"));
    assert_eq!(errs[0].error_reason.as_deref(), Some("bad number"));
    assert_eq!(errs[0].user_id.as_deref(), Some("obj-1"));
}

#[tokio::test]
async fn all_errors_is_error_and_nothing_to_do_is_success() {
    let (_d, h) = open();
    let (id, _, items) = h
        .create_job(new_job("demo"), vec![item("a@x.com", ItemStatus::Pending)])
        .await
        .unwrap();
    h.item_finished(items[0], done(ItemStatus::Error))
        .await
        .unwrap();
    assert_eq!(
        h.finish_job(id, JobEnd::Completed).await.unwrap().status,
        JobStatus::Error
    );

    let (id, _, _) = h
        .create_job(
            new_job("demo"),
            vec![item("a@x.com", ItemStatus::Unchanged)],
        )
        .await
        .unwrap();
    let j = h.finish_job(id, JobEnd::Completed).await.unwrap();
    assert_eq!(
        (j.status, j.success_count, j.unchanged_count),
        (JobStatus::Success, 1, 1)
    );

    let (id, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    assert_eq!(
        h.finish_job(id, JobEnd::Completed).await.unwrap().status,
        JobStatus::Success
    );
}

#[tokio::test]
async fn aborted_job_leaves_interrupted_items_pending_for_resume() {
    let (d, h) = open();
    let (id, _, items) = h
        .create_job(
            new_job("demo"),
            vec![
                item("a@x.com", ItemStatus::Pending),
                item("b@x.com", ItemStatus::Pending),
            ],
        )
        .await
        .unwrap();
    h.item_running(items[0]).await.unwrap();
    let j = h
        .finish_job(id, JobEnd::Aborted("fail-fast".into()))
        .await
        .unwrap();
    assert_eq!(j.status, JobStatus::Aborted);
    assert_eq!(j.pending_count, 2);
    let pending = h.pending_items(id).unwrap();
    assert!(pending.iter().all(|i| i.status == ItemStatus::Pending));
    let specs = h.pending_specs(id).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].display_name, Field::Set("User a@x.com".into()));

    // Resume re-plans in place; a finished item cannot be re-planned.
    let ids = h
        .replan_items(
            id,
            vec![
                item("a@x.com", ItemStatus::Unchanged),
                item("b@x.com", ItemStatus::Pending),
            ],
        )
        .await
        .unwrap();
    assert_eq!(ids, items);
    let _lease = lease_for(d.path(), &h, id).await;
    assert_eq!(
        h.get_job(&id.to_string()).unwrap().unwrap().status,
        JobStatus::Running
    );
    h.item_finished(items[1], done(ItemStatus::Success))
        .await
        .unwrap();
    let j = h.finish_job(id, JobEnd::Completed).await.unwrap();
    assert_eq!(
        (j.status, j.success_count, j.unchanged_count),
        (JobStatus::Success, 2, 1)
    );
    let e = h
        .replan_items(id, vec![item("b@x.com", ItemStatus::Pending)])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already finished"), "{e}");
    let e = h
        .replan_items(id, vec![item("zz@x.com", ItemStatus::Pending)])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not an item"), "{e}");
}

/// A tenant lock in a folder of its own (tests run in parallel).
fn take_lock(dir: &std::path::Path, h: &History, identity: &str) -> TenantLock {
    TenantLock::acquire(&dir.join("locks"), identity, "demo", h.path()).unwrap()
}

#[tokio::test]
async fn a_running_job_without_a_live_lease_reads_as_interrupted() {
    let (d, h) = open();
    let (id, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    let j = h.get_job(&id.to_string()).unwrap().unwrap();
    assert!(j.interrupted);
    assert_eq!(j.status, JobStatus::Interrupted);
    assert_eq!(j.to_fusion_json()["interrupted"], true);
    let mut g = take_lock(d.path(), &h, "sim demo");
    g.record_lease(&h).await.unwrap();
    g.set_job(id, "job-1").await.unwrap();
    let listed = &h.list_jobs(&JobFilter::default(), 1, 10).unwrap().0[0];
    assert!(!listed.interrupted);
    assert_eq!(listed.status, JobStatus::Running);
    g.release().await.unwrap();
    let j = h.get_job(&id.to_string()).unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Interrupted, "released without closing");
    h.finish_job(id, JobEnd::Completed).await.unwrap();
    assert!(!h.get_job(&id.to_string()).unwrap().unwrap().interrupted);
}

#[tokio::test]
async fn a_stopped_job_is_interrupted_and_listed_as_such() {
    let (_d, h) = open();
    let (id, _, items) = h
        .create_job(
            new_job("demo"),
            vec![
                item("a@x.com", ItemStatus::Pending),
                item("b@x.com", ItemStatus::Pending),
            ],
        )
        .await
        .unwrap();
    h.item_finished(items[0], done(ItemStatus::Success))
        .await
        .unwrap();
    let j = h
        .finish_job(id, JobEnd::Interrupted("stopped by SIGTERM".into()))
        .await
        .unwrap();
    assert_eq!(j.status, JobStatus::Interrupted);
    assert_eq!(j.exit().code(), 3);
    assert_eq!(j.reason.as_deref(), Some("stopped by SIGTERM"));
    assert_eq!(j.to_fusion_json()["abort_reason"], "stopped by SIGTERM");
    let f = JobFilter {
        status: Some(JobStatus::Interrupted),
        ..Default::default()
    };
    let (rows, n) = h.list_jobs(&f, 1, 10).unwrap();
    assert_eq!((n, rows[0].id), (1, id));
}

#[tokio::test]
async fn a_run_that_never_wrote_leaves_a_failed_job_with_its_errors() {
    let (_d, h) = open();
    let errors =
        json!([{"file": "users.csv", "row": 3, "column": "number", "message": "claimed twice"}]);
    let (id, job_id) = h
        .record_failed_job(
            new_job("demo"),
            FailKind::Plan,
            "1 plan error; nothing was sent".into(),
            Some(errors.clone()),
        )
        .await
        .unwrap();
    let (auth, _) = h
        .record_failed_job(
            new_job("demo"),
            FailKind::Auth,
            "authentication failed (HTTP 403)".into(),
            None,
        )
        .await
        .unwrap();
    let j = h.get_job(&job_id).unwrap().unwrap();
    assert_eq!(j.id, id);
    assert_eq!(j.status, JobStatus::Failed);
    assert_eq!(j.reason_code.as_deref(), Some("plan"));
    assert_eq!(j.errors, Some(errors));
    assert!(j.finished_on.is_some() && !j.interrupted);
    assert_eq!((j.total_count, j.exit().code()), (0, 2));
    let a = h.get_job(&auth.to_string()).unwrap().unwrap();
    assert_eq!(
        (a.reason_code.as_deref(), a.exit().code()),
        (Some("auth"), 3)
    );
    let f = JobFilter {
        status: Some(JobStatus::Failed),
        ..Default::default()
    };
    assert_eq!(h.list_jobs(&f, 1, 10).unwrap().1, 2);
}

#[tokio::test]
async fn refused_rows_of_a_resume_end_in_error_without_sending() {
    let (_d, h) = open();
    let (id, _, items) = h
        .create_job(
            new_job("demo"),
            vec![
                item("a@x.com", ItemStatus::Pending),
                item("b@x.com", ItemStatus::Pending),
            ],
        )
        .await
        .unwrap();
    h.item_finished(items[1], done(ItemStatus::Success))
        .await
        .unwrap();
    h.fail_items(
        id,
        vec![(
            "a@x.com".into(),
            "plan".into(),
            "number held by c@x.com".into(),
        )],
    )
    .await
    .unwrap();
    let a = &h.job_items(id, &[ItemStatus::Error]).unwrap()[0];
    assert_eq!(
        (a.error_code.as_deref(), a.error_reason.as_deref()),
        (Some("plan"), Some("number held by c@x.com"))
    );
    // A finished item is not touched, and the whole call fails.
    let e = h
        .fail_items(id, vec![("b@x.com".into(), "plan".into(), "x".into())])
        .await
        .unwrap_err();
    assert!(matches!(e, HistoryError::Resume(_)), "{e}");
    assert_eq!(h.job_items(id, &[ItemStatus::Success]).unwrap().len(), 1);
}

#[tokio::test]
async fn lookups_by_id_and_job_id_and_listing() {
    let (_d, h) = open();
    let (a, a_job, _) = h.create_job(new_job("t1"), vec![]).await.unwrap();
    let (b, _, _) = h.create_job(new_job("t2"), vec![]).await.unwrap();
    let (c, _, _) = h.create_job(new_job("t1"), vec![]).await.unwrap();
    h.finish_job(a, JobEnd::Completed).await.unwrap();
    h.finish_job(b, JobEnd::Aborted("fail-fast".into()))
        .await
        .unwrap();

    assert_eq!(h.get_job(&a_job).unwrap().unwrap().id, a);
    assert_eq!(h.get_job(&a.to_string()).unwrap().unwrap().job_id, a_job);
    assert!(h.get_job("999").unwrap().is_none());
    assert!(h.get_job("nope").unwrap().is_none());

    let (rows, total) = h.list_jobs(&JobFilter::default(), 1, 2).unwrap();
    assert_eq!(total, 3);
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c, b]);
    let (rows, _) = h.list_jobs(&JobFilter::default(), 2, 2).unwrap();
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a]);

    let f = JobFilter {
        tenant: Some("t1".into()),
        ..Default::default()
    };
    assert_eq!(h.list_jobs(&f, 1, 10).unwrap().1, 2);
    let f = JobFilter {
        status: Some(JobStatus::Aborted),
        ..Default::default()
    };
    let (rows, n) = h.list_jobs(&f, 1, 10).unwrap();
    assert_eq!((n, rows[0].id), (1, b));
    let f = JobFilter {
        since: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        ..Default::default()
    };
    assert_eq!(h.list_jobs(&f, 1, 10).unwrap().1, 0);
    let f = JobFilter {
        until: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        ..Default::default()
    };
    assert_eq!(h.list_jobs(&f, 1, 10).unwrap().1, 3);

    let page = queries::jobs_page_json(&rows, 1, 10, 1);
    assert_eq!(page["results"], 1);
    assert_eq!(page["pages"], 1);
    assert_eq!(page["bulks"][0]["status"], "aborted");
}

#[tokio::test]
async fn details_json_has_the_fusion_shape() {
    let (_d, h) = open();
    let (id, job_id, items) = h
        .create_job(
            new_job("demo"),
            vec![
                item("a@x.com", ItemStatus::Pending),
                item("b@x.com", ItemStatus::Unchanged),
            ],
        )
        .await
        .unwrap();
    h.item_finished(items[0], done(ItemStatus::Error))
        .await
        .unwrap();
    h.finish_job(id, JobEnd::Completed).await.unwrap();
    let v = h.job_details_json(&job_id, &[]).unwrap().unwrap();
    for k in [
        "id",
        "job_id",
        "title",
        "kind",
        "status",
        "total_count",
        "success_count",
        "job_items",
        "created_on",
        "updated_on",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["kind"], "ms_users");
    assert_eq!(v["status"], "partial");
    assert_eq!(v["total_count"], 2);
    assert_eq!(v["success_count"], 1);
    let it = &v["job_items"][0];
    for k in [
        "id",
        "upn",
        "data",
        "status",
        "created_on",
        "updated_on",
        "error_code",
        "error_reason",
        "changes",
        "before",
    ] {
        assert!(it.get(k).is_some(), "missing item {k}: {it}");
    }
    assert_eq!(it["data"]["upn"], "a@x.com");
    assert_eq!(it["data"]["displayName"], "User a@x.com");
    // Timestamps are RFC 3339 UTC.
    let t = v["created_on"].as_str().unwrap();
    assert!(
        t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok(),
        "{t}"
    );
    let only_errors = h
        .job_details_json(&id.to_string(), &[ItemStatus::Error])
        .unwrap()
        .unwrap();
    assert_eq!(only_errors["job_items"].as_array().unwrap().len(), 1);
    assert!(h.job_details_json("12345", &[]).unwrap().is_none());
}

#[tokio::test]
async fn a_held_tenant_lock_refuses_another_taker_and_names_the_holder() {
    let (d, h) = open();
    let mut g = take_lock(d.path(), &h, "fusion https://f.example/t1");
    g.record_lease(&h).await.unwrap();
    g.set_job(7, "20260101T000000Z-abcd").await.unwrap();
    // Another open of the same file (as a second process would) cannot take it, even for
    // another tenant name or another history.
    let e = TenantLock::acquire(
        &d.path().join("locks"),
        "fusion https://f.example/t1",
        "alias",
        std::path::Path::new("/elsewhere/h.db"),
    )
    .unwrap_err();
    match &e {
        LockError::Busy { holder, file, .. } => {
            let holder = holder.as_ref().expect("the file names its holder");
            assert_eq!(holder.pid, std::process::id());
            assert_eq!(holder.bulk_id, Some(7));
            assert_eq!(file, g.path());
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("lock") && msg.contains("20260101T000000Z-abcd"),
        "{msg}"
    );
    // Another identity is independent.
    let other = take_lock(d.path(), &h, "fusion https://f.example/t2");
    let lease = h.lease("demo").unwrap().unwrap();
    assert_eq!((lease.pid, lease.bulk_id), (std::process::id(), Some(7)));
    let path = g.path().to_path_buf();
    g.release().await.unwrap();
    assert!(!path.exists(), "a released lock file is removed");
    assert!(h.lease("demo").unwrap().is_none());
    let again = take_lock(d.path(), &h, "fusion https://f.example/t1");
    drop(again);
    drop(other);
}

#[test]
fn a_lock_held_by_another_process_is_busy_until_that_process_dies() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("locks");
    std::fs::create_dir_all(&dir).unwrap();
    let path = lock::lock_file(&dir, "ump http://u.example");
    // util-linux's flock(1) holds it the way another teamsync would.
    // `-o`: the lock stays with flock itself, not with the `sleep` it runs.
    let Ok(mut child) = std::process::Command::new("flock")
        .arg("-o")
        .arg(&path)
        .args(["sleep", "3"])
        .spawn()
    else {
        eprintln!("flock(1) is not installed; skipped");
        return;
    };
    let t0 = std::time::Instant::now();
    while !path.exists() && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let busy = TenantLock::acquire(
        &dir,
        "ump http://u.example",
        "u",
        std::path::Path::new("h.db"),
    );
    assert!(
        matches!(busy, Err(LockError::Busy { holder: None, .. })),
        "{busy:?}"
    );
    child.kill().unwrap(); // SIGKILL: the kernel drops its lock
    child.wait().unwrap();
    TenantLock::acquire(
        &dir,
        "ump http://u.example",
        "u",
        std::path::Path::new("h.db"),
    )
    .unwrap();
}

#[tokio::test]
async fn the_job_of_a_dead_holder_is_closed_as_interrupted_by_the_next_run() {
    let (d, h) = open();
    let (id, _, items) = h
        .create_job(
            new_job("demo"),
            vec![
                item("a@x.com", ItemStatus::Pending),
                item("b@x.com", ItemStatus::Pending),
            ],
        )
        .await
        .unwrap();
    h.item_running(items[0]).await.unwrap();
    // A lease left by a process that died holding a lock file that is now free.
    let mut dead = take_lock(d.path(), &h, "sim demo");
    dead.record_lease(&h).await.unwrap();
    dead.set_job(id, "dead-job").await.unwrap();
    let lock_file = dead.path().display().to_string();
    std::mem::forget(dead);
    h.write(move |c| {
        Ok(c.execute(
            "UPDATE job_locks SET lock_file = ?1 || '.gone', pid = 999999",
            [lock_file],
        )?)
    })
    .await
    .unwrap();
    let j = h.get_job(&id.to_string()).unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Interrupted, "listed as interrupted");
    let mut mine =
        TenantLock::acquire(&d.path().join("locks2"), "sim demo", "demo", h.path()).unwrap();
    mine.record_lease(&h).await.unwrap();
    let j = h.get_job(&id.to_string()).unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Interrupted);
    assert_eq!(j.reason_code.as_deref(), Some("killed"));
    assert!(h
        .pending_items(id)
        .unwrap()
        .iter()
        .all(|i| i.status == ItemStatus::Pending));
    assert_eq!(h.lease("demo").unwrap().unwrap().pid, std::process::id());
    mine.release().await.unwrap();
}

#[tokio::test]
async fn a_live_lease_from_another_lock_folder_also_makes_the_tenant_busy() {
    let (d, h) = open();
    let mut first = take_lock(d.path(), &h, "sim demo");
    first.record_lease(&h).await.unwrap();
    let mut second =
        TenantLock::acquire(&d.path().join("other-locks"), "sim demo", "demo", h.path()).unwrap();
    let e = second.record_lease(&h).await.unwrap_err();
    assert!(matches!(e, LockError::Busy { .. }), "{e}");
    first.release().await.unwrap();
}

#[tokio::test]
async fn prune_deletes_old_jobs_with_their_items() {
    let (d, h) = open();
    let (old, _, _) = h
        .create_job(
            new_job("demo"),
            vec![item("a@x.com", ItemStatus::Unchanged)],
        )
        .await
        .unwrap();
    h.finish_job(old, JobEnd::Completed).await.unwrap();
    let (locked, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    let (recent, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    h.finish_job(recent, JobEnd::Completed).await.unwrap();
    let mut g = take_lock(d.path(), &h, "sim demo");
    g.record_lease(&h).await.unwrap();
    g.set_job(locked, "locked").await.unwrap();
    let ts = rfc3339(chrono::Utc::now() - chrono::Duration::days(40));
    h.write(move |c| {
        Ok(c.execute(
            "UPDATE bulk_jobs SET updated_on = ?1, finished_on = CASE WHEN finished_on IS NULL THEN NULL ELSE ?1 END \
             WHERE id IN (?2, ?3)",
            params![ts, old, locked],
        )?)
    })
    .await
    .unwrap();
    let listed: Vec<i64> = h.prunable(30).unwrap().iter().map(|j| j.id).collect();
    assert_eq!(listed, [old], "the dry run lists what prune deletes");
    assert_eq!(h.prune(30).await.unwrap(), 1);
    assert!(h.get_job(&old.to_string()).unwrap().is_none());
    assert!(
        h.get_job(&locked.to_string()).unwrap().is_some(),
        "a job holding the lock stays"
    );
    assert!(h.get_job(&recent.to_string()).unwrap().is_some());
    let orphans: i64 = h
        .read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM job_items WHERE bulk_id = ?1",
                [old],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(orphans, 0);
    g.release().await.unwrap();
}

#[tokio::test]
async fn a_failing_write_does_not_undo_its_batch_neighbours() {
    let (_d, h) = open();
    let (id, _, items) = h
        .create_job(new_job("demo"), vec![item("a@x.com", ItemStatus::Pending)])
        .await
        .unwrap();
    let (ok, bad) = tokio::join!(
        h.item_finished(items[0], done(ItemStatus::Success)),
        h.item_finished(999_999, done(ItemStatus::Success)),
    );
    ok.unwrap();
    assert!(matches!(bad, Err(HistoryError::NoSuchItem(999_999))));
    assert_eq!(
        h.finish_job(id, JobEnd::Completed).await.unwrap().status,
        JobStatus::Success
    );
}

/// History write rate: `cargo test --lib history::tests::write_rate -- --ignored --nocapture`.
/// 10,000 item updates (running + finished = 20,000 writes) from 16 concurrent writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand with --ignored --nocapture"]
async fn write_rate() {
    let (_d, h) = open();
    let n = 10_000;
    let items: Vec<NewItem> = (0..n)
        .map(|i| item(&format!("u{i}@x.com"), ItemStatus::Pending))
        .collect();
    let t0 = std::time::Instant::now();
    let (id, _, ids) = h.create_job(new_job("demo"), items).await.unwrap();
    let create = t0.elapsed();
    let t1 = std::time::Instant::now();
    let chunks: Vec<Vec<i64>> = ids.chunks(n / 16).map(<[i64]>::to_vec).collect();
    let mut set = tokio::task::JoinSet::new();
    for chunk in chunks {
        let h = h.clone();
        set.spawn(async move {
            for i in chunk {
                h.item_running(i).await.unwrap();
                h.item_finished(i, done(ItemStatus::Success)).await.unwrap();
            }
        });
    }
    while set.join_next().await.is_some() {}
    let upd = t1.elapsed();
    h.finish_job(id, JobEnd::Completed).await.unwrap();
    println!(
        "create job with {n} items: {create:?}; {} item writes in {upd:?} = {:.0} writes/s",
        2 * n,
        (2 * n) as f64 / upd.as_secs_f64()
    );
}

fn planned(upn: &str, ops: serde_json::Value, before: serde_json::Value) -> NewItem {
    let mut it = item(upn, ItemStatus::Pending);
    it.before = before.clone();
    it.plan = Some(json!({"upn": upn, "action": "update", "ops": ops, "before": before}));
    it
}

#[tokio::test]
async fn a_resume_keeps_the_jobs_before_and_credits_what_was_applied_before_the_interruption() {
    let (_d, h) = open();
    let (id, _, items) = h
        .create_job(
            new_job("demo"),
            vec![
                planned(
                    "a@x.com",
                    json!([{"op": "set_number", "number": "+3225405201"}]),
                    json!({"number": null}),
                ),
                planned(
                    "b@x.com",
                    json!([{"op": "set_vrp", "vrp": "BE"}, {"op": "set_number", "number": null}]),
                    json!({"vrp": "Old", "number": "+3225405202"}),
                ),
            ],
        )
        .await
        .unwrap();
    // Killed: a's request went out with no recorded answer; b had its VRP acknowledged.
    h.item_sending(
        items[0],
        Intent {
            step: "PUT a".into(),
            ops: vec!["set_number".into()],
            applied: vec![],
        },
    )
    .await
    .unwrap();
    h.item_sending(
        items[1],
        Intent {
            step: "PUT b number".into(),
            ops: vec!["set_number".into()],
            applied: vec!["set_vrp".into()],
        },
    )
    .await
    .unwrap();
    let a = &h.job_items(id, &[]).unwrap()[0];
    assert_eq!(a.status, ItemStatus::Running);
    assert_eq!(a.sending.as_ref().unwrap()["step"], "PUT a");
    assert!(a.may_have_changed_tenant());
    h.finish_job(id, JobEnd::Interrupted("killed".into()))
        .await
        .unwrap();
    // The fresh plan: a is as desired now, b still needs its number released, and its
    // fresh "before" no longer shows the old VRP.
    let mut fresh_a = item("a@x.com", ItemStatus::Unchanged);
    fresh_a.before = json!({});
    let mut fresh_b = planned(
        "b@x.com",
        json!([{"op": "set_number", "number": null}]),
        json!({"number": "+3225405202"}),
    );
    fresh_b.changes = json!([{"field": "number", "old": "+3225405202", "new": null}]);
    h.replan_items(id, vec![fresh_a, fresh_b]).await.unwrap();
    let rows = h.job_items(id, &[]).unwrap();
    let (a, b) = (&rows[0], &rows[1]);
    assert_eq!(a.status, ItemStatus::Success, "not `unchanged`");
    assert_eq!(a.note.as_deref(), Some("applied before the interruption"));
    assert_eq!(a.applied, vec!["set_number"]);
    assert_eq!(
        a.before,
        json!({"number": null}),
        "the job's before is kept"
    );
    assert_eq!(b.status, ItemStatus::Pending);
    assert_eq!(b.before, json!({"vrp": "Old", "number": "+3225405202"}));
    assert_eq!(b.plan.as_ref().unwrap()["before"], b.before);
    assert_eq!(b.plan.as_ref().unwrap()["ops"].as_array().unwrap().len(), 2);
    assert_eq!(b.applied, vec!["set_vrp"]);
    let j = h.get_job(&id.to_string()).unwrap().unwrap();
    assert_eq!((j.success_count, j.unchanged_count), (1, 0));
}

#[tokio::test]
async fn a_finished_item_keeps_what_was_applied_and_clears_its_intent() {
    let (_d, h) = open();
    let (id, _, items) = h
        .create_job(new_job("demo"), vec![item("a@x.com", ItemStatus::Pending)])
        .await
        .unwrap();
    h.item_sending(
        items[0],
        Intent {
            step: "POST users".into(),
            ops: vec!["create".into()],
            applied: vec![],
        },
    )
    .await
    .unwrap();
    let mut r = done(ItemStatus::Error);
    r.applied = vec!["create".into()];
    r.error_reason = Some("created; number not assigned: 2020".into());
    h.item_finished(items[0], r).await.unwrap();
    let a = &h.job_items(id, &[]).unwrap()[0];
    assert_eq!((a.status, a.sending.clone()), (ItemStatus::Error, None));
    assert_eq!(a.applied, vec!["create"]);
    assert!(
        a.may_have_changed_tenant(),
        "revert must see the created user"
    );
    assert_eq!(a.to_fusion_json()["applied"], json!(["create"]));
}

#[tokio::test]
async fn a_history_of_the_first_schema_migrates_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut c = rusqlite::Connection::open(&path).unwrap();
        schema::configure(&c).unwrap();
        schema::migrations().to_version(&mut c, 1).unwrap();
        c.execute_batch(
            "INSERT INTO bulk_jobs (job_id, kind, title, tenant, source, source_sha256, status, host, os_user, \
             teamsync_version, created_on, updated_on) VALUES ('j1', 'ms_users', 't', 'demo', 's', 'x', 'aborted', \
             'h', 'u', '0.1.0', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'); \
             INSERT INTO job_items (bulk_id, upn, data, status, created_on, updated_on) VALUES \
             (1, 'a@x.com', '{\"upn\":\"a@x.com\"}', 'pending', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'); \
             INSERT INTO job_locks (tenant, token, host, pid, bulk_id, acquired_on, heartbeat_on) VALUES \
             ('demo', 'k', 'h', 1, 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');",
        )
        .unwrap();
    }
    let h = History::open(&path).unwrap();
    let j = h.get_job("j1").unwrap().unwrap();
    assert_eq!(
        (j.status, j.reason_code.clone()),
        (JobStatus::Aborted, None)
    );
    let it = &h.job_items(j.id, &[]).unwrap()[0];
    assert_eq!((it.applied.len(), it.sending.clone()), (0, None));
    assert!(h.lease("demo").unwrap().unwrap().lock_file.is_none());
    h.record_failed_job(new_job("demo"), FailKind::Lock, "busy".into(), None)
        .await
        .unwrap();
    // Statuses outside the list are still refused.
    let bad = h
        .write(|c| Ok(c.execute("UPDATE bulk_jobs SET status = 'bogus'", [])?))
        .await;
    assert!(bad.is_err());
    let ok: String = h
        .read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[tokio::test]
async fn a_history_opened_read_only_is_refused_for_runs_and_still_read() {
    let (_d, h) = open();
    h.check_writable().await.unwrap();
    let (id, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    h.finish_job(id, JobEnd::Completed).await.unwrap();
    let path = h.path().to_path_buf();
    drop(h);
    let ro = History::open_read_only(&path).unwrap();
    assert_eq!(ro.list_jobs(&JobFilter::default(), 1, 10).unwrap().1, 1);
    let e = ro.check_writable().await.unwrap_err();
    assert!(matches!(e, HistoryError::Unwritable { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("read-only"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_history_whose_folder_cannot_be_created_is_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let e = History::open(&file.join("sub/history.db")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HistoryError::Unwritable { .. }), "{msg}");
    assert!(
        msg.contains("history.db") && msg.contains("cannot be created"),
        "{msg}"
    );
}

/// `jobs prune` may delete the newest jobs; their ids must not come back, or "job 12" in
/// an old log would point at another job.
#[tokio::test]
async fn job_ids_are_never_reused_after_a_prune() {
    let (_d, h) = open();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.create_job(new_job("demo"), vec![]).await.unwrap().0);
    }
    assert_eq!(h.delete_jobs(vec![ids[1], ids[2]]).await.unwrap(), 2);
    let (next, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    assert_eq!(
        next,
        ids[2] + 1,
        "the deleted newest id is not handed out again"
    );
}

/// A history written before ids were AUTOINCREMENT keeps its jobs and columns, and its
/// highest id is never reused once migrated.
#[tokio::test]
async fn an_older_history_is_migrated_to_ids_that_are_never_reused() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("h.db");
    {
        let mut c = rusqlite::Connection::open(&db).unwrap();
        rusqlite_migration::Migrations::from_slice(&schema::MIGRATIONS[..2])
            .to_latest(&mut c)
            .unwrap();
        for j in ["a", "b", "c"] {
            c.execute(
                "INSERT INTO bulk_jobs (job_id, kind, title, tenant, source, source_sha256, status, host, os_user, teamsync_version, created_on, updated_on, reason) \
                 VALUES (?1, 'ms_users', 't', 'demo', 's', '', 'failed', 'h', 'u', 'v', 'x', 'x', 'why')",
                [j],
            )
            .unwrap();
        }
        c.execute("DELETE FROM bulk_jobs WHERE job_id = 'c'", [])
            .unwrap();
    }
    let h = History::open(&db).unwrap();
    let kept = h.get_job("b").unwrap().unwrap();
    assert_eq!((kept.id, kept.reason.as_deref()), (2, Some("why")));
    let (next, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    assert_eq!(next, 3, "ids continue after the highest in use");
    h.delete_jobs(vec![next]).await.unwrap();
    let (after, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    assert_eq!(after, 4);
}
