//! `cargo bench --bench requests`: how many requests a job sends to a Fusion tenant (the
//! simulator over HTTP, counted from its request log), with Fusion's bulk update and
//! with one request per user and change, for BENCHMARKS.md's "Fewest requests (issue 16)".
//!
//! Figures: a 1,000-user update job (every user renamed: write requests per changed user)
//! and a 5,000-user onboarding (every user created with a number and licenses; snapshot,
//! writes and read-back all counted). Sizes: `BENCH_UPDATE_USERS` (1000),
//! `BENCH_ONBOARD_USERS` (5000).

use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use teamsync::apply::{self, ApplyOptions, JobTarget};
use teamsync::connector::fusion::{FusionConnector, FusionSettings, TokenSource};
use teamsync::connector::{Connector, Gate};
use teamsync::history::History;
use teamsync::model::JobKind;
use teamsync::plan::{self, PlanInput};
use teamsync::template::TemplateSet;
use teamsync::validate::{validate_files, SheetOptions};
use teamsync_sim::common::conn::Background;
use teamsync_sim::fusion::FusionSim;
use teamsync_sim::SimOptions;

mod fusion_seed;
use fusion_seed::{number, seed, upn};

const TOKEN: &str = "bench-requests";

fn sheet(path: &Path, users: usize, renamed: bool) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["upn", "displayName", "number", "country", "licenses"])?;
    for i in 0..users {
        let name = if renamed {
            format!("User {i} (renamed)")
        } else {
            format!("User {i}")
        };
        w.write_record([
            upn(i),
            name,
            number(i),
            "BE".into(),
            "STANDARDPACK;MCOEV".into(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

struct Counted {
    reads: usize,
    writes: usize,
    seconds: f64,
    failed: u64,
    changed: usize,
}

/// One whole job (snapshot, plan, apply with read-back) against a fresh simulator.
async fn job(users: usize, present: bool, bulk_size: Option<usize>) -> anyhow::Result<Counted> {
    let dir = tempfile::tempdir()?;
    let (seed_path, sheet_path) = (dir.path().join("seed.json"), dir.path().join("users.csv"));
    seed(&seed_path, users, present, None)?;
    sheet(&sheet_path, users, present)?;
    let opts = SimOptions {
        token: Some(TOKEN.into()),
        ..SimOptions::default()
    };
    let sim = FusionSim::open(None, Some(&seed_path), opts)?;
    let t = sim.tenant_path();
    let server = Background::spawn(sim.router()).await?;
    let mut s = FusionSettings::new(
        server.base_url(),
        t.draas_instance,
        t.tenant_uuid,
        t.subscription_id,
        TokenSource::Static(TOKEN.into()),
    );
    s.http.request_timeout = Duration::from_secs(60);
    let conn: Arc<dyn Connector> = Arc::new(FusionConnector::new(s, Arc::new(Gate::unlimited()))?);
    let t0 = Instant::now();
    let v = validate_files(
        std::slice::from_ref(&sheet_path),
        &SheetOptions::default(),
        &TemplateSet::default(),
    );
    anyhow::ensure!(v.errors.is_empty(), "sheet: {:?}", v.errors.first());
    let snap = conn
        .snapshot(&plan::detail_upns(&v.specs, &conn.profile()), false)
        .await?;
    let p = plan::make_plan(PlanInput {
        tenant: "bench",
        mode: plan::Mode::Upsert,
        kind: JobKind::MsUsers,
        sources: vec![],
        source_sha256: String::new(),
        specs: &v.specs,
        snapshot: &snap,
        profile: conn.profile(),
        allow_removals: None,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let changed = p.users.iter().filter(|u| !u.ops.is_empty()).count();
    let history = History::open(&dir.path().join("history.db"))?;
    let opts = ApplyOptions {
        concurrency: 8,
        max_attempts: 6,
        retry_budget: 1000,
        max_consecutive_failures: 0,
        request_timeout: Duration::from_secs(60),
        replication_window: Duration::from_secs(60),
        verify: true,
        bulk_size,
        limit: None,
        only: vec![],
        title: "bench".into(),
        progress: false,
    };
    let o = apply::execute(&p, conn, &history, JobTarget::New, &opts).await?;
    let seconds = t0.elapsed().as_secs_f64();
    let log: Value = reqwest::get(format!("{}/_sim/requests", server.base_url()))
        .await?
        .json()
        .await?;
    let log = log["requests"].as_array().cloned().unwrap_or_default();
    let writes = log.iter().filter(|e| e["method"] != "GET").count();
    server.shutdown().await;
    Ok(Counted {
        reads: log.len() - writes,
        writes,
        seconds,
        failed: o.errors,
        changed,
    })
}

fn env(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn line(what: &str, c: &Counted) -> String {
    format!(
        "| {what} | {} | {} | {} | {} | {:.3} | {} | {:.1} s |",
        c.changed,
        c.writes,
        c.reads,
        c.writes + c.reads,
        c.writes as f64 / c.changed.max(1) as f64,
        c.failed,
        c.seconds
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let update = env("BENCH_UPDATE_USERS", 1000);
    let onboard = env("BENCH_ONBOARD_USERS", 5000);
    println!("| job | changed users | write requests | read requests | total | writes per changed user | failed | wall |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (what, users, present) in [
        (format!("{update}-user update (renames)"), update, true),
        (
            format!("{onboard}-user onboarding (creates)"),
            onboard,
            false,
        ),
    ] {
        let bulk = job(users, present, None).await?;
        println!(
            "{}",
            line(&format!("{what}, bulk (100 per request)"), &bulk)
        );
        let per_user = job(users, present, Some(0)).await?;
        println!("{}", line(&format!("{what}, per user"), &per_user));
    }
    Ok(())
}
