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
    }
}

#[tokio::test]
async fn schema_is_created_in_wal_mode() {
    let (_d, h) = open();
    let mode: String = h
        .read(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
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

#[tokio::test]
async fn counts_and_status_follow_the_items() {
    let (_d, h) = open();
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
    let j = h.finish_job(id, false).await.unwrap();
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
        h.finish_job(id, false).await.unwrap().status,
        JobStatus::Error
    );

    let (id, _, _) = h
        .create_job(
            new_job("demo"),
            vec![item("a@x.com", ItemStatus::Unchanged)],
        )
        .await
        .unwrap();
    let j = h.finish_job(id, false).await.unwrap();
    assert_eq!(
        (j.status, j.success_count, j.unchanged_count),
        (JobStatus::Success, 1, 1)
    );

    let (id, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    assert_eq!(
        h.finish_job(id, false).await.unwrap().status,
        JobStatus::Success
    );
}

#[tokio::test]
async fn aborted_job_leaves_interrupted_items_pending_for_resume() {
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
    h.item_running(items[0]).await.unwrap();
    let j = h.finish_job(id, true).await.unwrap();
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
    assert_eq!(
        h.get_job(&id.to_string()).unwrap().unwrap().status,
        JobStatus::Running
    );
    h.item_finished(items[1], done(ItemStatus::Success))
        .await
        .unwrap();
    let j = h.finish_job(id, false).await.unwrap();
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

#[tokio::test]
async fn a_running_job_without_a_lock_reads_as_interrupted() {
    let (_d, h) = open();
    let (id, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    let j = h.get_job(&id.to_string()).unwrap().unwrap();
    assert!(j.interrupted);
    assert_eq!(j.to_fusion_json()["interrupted"], true);
    let g = h.acquire_lock("demo").await.unwrap();
    g.set_job(id).await.unwrap();
    assert!(!h.list_jobs(&JobFilter::default(), 1, 10).unwrap().0[0].interrupted);
    g.release().await.unwrap();
    h.finish_job(id, false).await.unwrap();
    assert!(!h.get_job(&id.to_string()).unwrap().unwrap().interrupted);
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
    h.finish_job(a, false).await.unwrap();
    h.finish_job(b, true).await.unwrap();

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
    h.finish_job(id, false).await.unwrap();
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

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[tokio::test]
async fn a_live_lock_is_never_taken_over() {
    let (_d, h) = open();
    let g = h.acquire_lock("demo").await.unwrap();
    let e = h.acquire_lock("demo").await.err().unwrap();
    match &e {
        HistoryError::LockHeld { host, pid, .. } => {
            assert_eq!(*pid, std::process::id());
            assert_eq!(host, &LockHolder::current().host);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("lock held by"), "{e}");
    // Another tenant is independent.
    let other = h.acquire_lock("acme").await.unwrap();
    g.release().await.unwrap();
    let again = h.acquire_lock("demo").await.unwrap();
    assert!(!again.is_lost());
    again.release().await.unwrap();
    other.release().await.unwrap();
    assert!(h.lock_info("demo").unwrap().is_none());
}

#[tokio::test]
async fn a_lock_whose_pid_is_gone_on_this_host_is_taken_over() {
    if !std::path::Path::new("/proc/self").exists() {
        return; // liveness by /proc only exists on Linux
    }
    let (_d, h) = open();
    let dead = LockHolder {
        host: LockHolder::current().host,
        pid: dead_pid(),
    };
    let g = h
        .acquire_lock_as("demo", dead.clone(), lock::pid_alive)
        .await
        .unwrap();
    std::mem::forget(g); // the holder "died" without releasing
    assert_eq!(h.lock_info("demo").unwrap().unwrap().pid, dead.pid);
    let mine = h.acquire_lock("demo").await.unwrap();
    assert_eq!(
        h.lock_info("demo").unwrap().unwrap().pid,
        std::process::id()
    );
    mine.release().await.unwrap();
}

#[tokio::test]
async fn a_lock_on_another_host_is_stale_only_after_its_heartbeat_ages() {
    let (_d, h) = open();
    let remote = LockHolder {
        host: "other-host.example".into(),
        pid: 1,
    };
    let g = h.acquire_lock_as("demo", remote, |_| true).await.unwrap();
    std::mem::forget(g);
    // Fresh heartbeat: held (we cannot see the other host's processes).
    assert!(matches!(
        h.acquire_lock("demo").await,
        Err(HistoryError::LockHeld { .. })
    ));
    let old = rfc3339(chrono::Utc::now() - chrono::Duration::minutes(6));
    h.write(move |c| Ok(c.execute("UPDATE job_locks SET heartbeat_on = ?1", [old])?))
        .await
        .unwrap();
    let mine = h.acquire_lock("demo").await.unwrap();
    mine.release().await.unwrap();
}

#[test]
fn staleness_rule() {
    let me = LockHolder {
        host: "h1".into(),
        pid: 10,
    };
    let now = chrono::Utc::now();
    let lock = |host: &str, age_s: i64| LockInfo {
        tenant: "t".into(),
        host: host.into(),
        pid: 77,
        bulk_id: None,
        acquired_on: rfc3339(now),
        heartbeat_on: rfc3339(now - chrono::Duration::seconds(age_s)),
    };
    assert!(!lock::is_stale(&lock("h1", 5), &me, now, |_| true));
    assert!(lock::is_stale(&lock("h1", 5), &me, now, |_| false));
    assert!(
        !lock::is_stale(&lock("h2", 5), &me, now, |_| false),
        "pid checks only apply on our host"
    );
    assert!(!lock::is_stale(&lock("h2", 290), &me, now, |_| true));
    assert!(lock::is_stale(&lock("h2", 301), &me, now, |_| true));
}

#[tokio::test]
async fn a_lost_lock_is_noticed_by_the_heartbeat() {
    let (_d, h) = open();
    let g = h.acquire_lock("demo").await.unwrap();
    // Someone else took it over (we were stalled past STALE_AFTER).
    h.write(|c| Ok(c.execute("UPDATE job_locks SET token = 'theirs'", [])?))
        .await
        .unwrap();
    assert!(!g.is_lost());
    // Drive one heartbeat by hand rather than waiting 10 s.
    assert!(!g.heartbeat().await.unwrap());
    assert!(g.is_lost());
    drop(g);
    // The dropped guard must not delete the lock it no longer owns.
    h.write(|_| Ok(())).await.unwrap();
    assert!(h.lock_info("demo").unwrap().is_some());
}

#[tokio::test]
async fn prune_deletes_old_jobs_with_their_items() {
    let (_d, h) = open();
    let (old, _, _) = h
        .create_job(
            new_job("demo"),
            vec![item("a@x.com", ItemStatus::Unchanged)],
        )
        .await
        .unwrap();
    h.finish_job(old, false).await.unwrap();
    let (locked, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    let (recent, _, _) = h.create_job(new_job("demo"), vec![]).await.unwrap();
    h.finish_job(recent, false).await.unwrap();
    let g = h.acquire_lock("demo").await.unwrap();
    g.set_job(locked).await.unwrap();
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
        h.finish_job(id, false).await.unwrap().status,
        JobStatus::Success
    );
}

/// History write rate: `cargo test --lib history::tests::write_rate -- --ignored --nocapture`.
/// 10,000 item updates (running + finished = 20,000 writes) from 16 concurrent writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
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
    h.finish_job(id, false).await.unwrap();
    println!(
        "create job with {n} items: {create:?}; {} item writes in {upd:?} = {:.0} writes/s",
        2 * n,
        (2 * n) as f64 / upd.as_secs_f64()
    );
}
