//! The pipeline against the embedded simulator: what a run that stops before its first
//! write leaves in the history, and the order of lock, snapshot and plan.

use super::*;
use crate::history::{JobFilter, JobStatus};
use crate::validate::SheetOptions;

fn config(dir: &Path, extra: &str) -> Config {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = format!(
        "db = \"history.db\"\ntemplates = {t:?}\nlock_dir = \"locks\"\n\n[tenants.demo]\nbackend = \"sim\"\nseed = {s:?}\nstate = \"tenant.db\"\nrate_per_second = 0\n{extra}\n",
        t = repo.join("templates").display().to_string(),
        s = repo.join("samples/tenant.json").display().to_string(),
    );
    Config::from_str(&text, dir, Some(&dir.join("teamsync.toml")), &[]).unwrap()
}

fn sheet(dir: &Path, rows: &str) -> Source {
    let p = dir.join("users.csv");
    std::fs::write(
        &p,
        format!("upn,displayName,number,country,vrp,groups,licenses,customerLicenses,template,action\n{rows}"),
    )
    .unwrap();
    Source::Sheet(SheetInput {
        path: p,
        options: SheetOptions::default(),
        mode: plan::Mode::Upsert,
        allow_removals: None,
        allow_license_removals: None,
        refresh: None,
    })
}

fn request(source: Source) -> RunRequest {
    RunRequest {
        command: Command::Sync,
        tenant: None,
        source,
        settings: RunSettings {
            verify: true,
            ..RunSettings::default()
        },
    }
}

fn jobs(db: &Path) -> Vec<crate::history::JobRow> {
    History::open(db)
        .unwrap()
        .list_jobs(&JobFilter::default(), 1, 50)
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_with_errors_is_recorded_as_a_failed_job_with_its_errors() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "");
    let s = Session {
        config: &cfg,
        db: cfg.db.clone(),
        stop: Stop::new(),
    };
    let e = execute(
        &s,
        request(sheet(d.path(), "not-an-upn,,,,,,,,,\n")),
        &mut Proceed,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.exit().code(), 2);
    let RunError::Failed(f) = e else { panic!() };
    assert_eq!(f.kind, FailKind::Sheet);
    let (bulk, _) = f.job.clone().expect("recorded");
    let j = &jobs(&cfg.db)[0];
    assert_eq!((j.id, j.status), (bulk, JobStatus::Failed));
    assert_eq!(j.reason_code.as_deref(), Some("sheet"));
    assert!(j.errors.as_ref().unwrap()[0]["row"] == 2, "{:?}", j.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_tenant_is_refused_before_the_tenant_is_opened_and_recorded() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "");
    let (_, tcfg) = cfg.tenant(None).unwrap();
    // Another process's lock, as far as this run can tell: a second open file.
    let holder = TenantLock::acquire(
        &lock_dir(&cfg),
        &tenant_identity(tcfg),
        "demo",
        Path::new("/other/history.db"),
    )
    .unwrap();
    let s = Session {
        config: &cfg,
        db: cfg.db.clone(),
        stop: Stop::new(),
    };
    let e = execute(
        &s,
        request(sheet(
            d.path(),
            "alice.martin@contoso.onmicrosoft.com,Alice,,,,,,,,\n",
        )),
        &mut Proceed,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.exit().code(), 3);
    assert!(e.to_string().contains("/other/history.db"), "{e}");
    let j = &jobs(&cfg.db)[0];
    assert_eq!(
        (j.status, j.reason_code.as_deref()),
        (JobStatus::Failed, Some("lock"))
    );
    assert!(
        !d.path().join("tenant.db").exists(),
        "the tenant was never opened"
    );
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_before_the_job_exists_is_recorded_and_sends_no_write() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "");
    let stop = Stop::new();
    stop.trigger("stopped by SIGTERM");
    let s = Session {
        config: &cfg,
        db: cfg.db.clone(),
        stop,
    };
    let e = execute(
        &s,
        request(sheet(
            d.path(),
            "alice.martin@contoso.onmicrosoft.com,Alice 2,,,,,,,,\n",
        )),
        &mut Proceed,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.exit().code(), 3);
    assert!(e.to_string().contains("stopped by SIGTERM"), "{e}");
    let j = &jobs(&cfg.db)[0];
    assert_eq!(j.reason_code.as_deref(), Some("interrupted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_runs_and_releases_its_lock() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), "");
    let s = Session {
        config: &cfg,
        db: cfg.db.clone(),
        stop: Stop::new(),
    };
    let out = execute(
        &s,
        request(sheet(
            d.path(),
            "alice.martin@contoso.onmicrosoft.com,Alice Pipeline,,,,,,,,\n",
        )),
        &mut Proceed,
    )
    .await
    .unwrap();
    let o = out.outcome.unwrap();
    assert_eq!((o.status, o.success), (JobStatus::Success, 1));
    let (_, tcfg) = cfg.tenant(None).unwrap();
    drop(
        TenantLock::acquire(&lock_dir(&cfg), &tenant_identity(tcfg), "demo", &cfg.db)
            .expect("released"),
    );
    assert!(out.history.lease("demo").unwrap().is_none());
}
