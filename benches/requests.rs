//! `cargo bench --bench requests`: how many requests a job sends to a Fusion tenant (the
//! simulator over HTTP, counted from its request log), with Fusion's bulk update and
//! with one request per user and change, for BENCHMARKS.md's "Fewest requests (issue 16)".
//!
//! Figures: a 1,000-user update job (every user renamed: write requests per changed user)
//! and a 5,000-user onboarding (every user created with a number and licenses; snapshot,
//! writes and read-back all counted). Sizes: `BENCH_UPDATE_USERS` (1000),
//! `BENCH_ONBOARD_USERS` (5000).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
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

const TOKEN: &str = "bench-requests";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn upn(i: usize) -> String {
    format!("user{i:06}@contoso.com")
}

fn number(i: usize) -> String {
    format!("+322{}", 5_000_000 + i)
}

/// The sample tenant's catalogs with `present` of `users` users (each with its number,
/// E1 + Phone System); the subscription holds every user's number.
fn seed(path: &Path, users: usize, present: bool) -> anyhow::Result<()> {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(
        repo().join("samples/tenant.json"),
    )?)?;
    let licenses = doc["licenses"].as_array().cloned().unwrap_or_default();
    let sku = |p: &str| {
        licenses.iter().find(|l| l["skuPartNumber"] == p).map_or(
            Value::Null,
            |l| json!({"skuId": l["skuId"], "skuPartNumber": p}),
        )
    };
    let (e1, phone) = (sku("STANDARDPACK"), sku("MCOEV"));
    let out: Vec<Value> = (0..users)
        .filter(|_| present)
        .map(|i| {
            json!({
                "msTeams": {"id": format!("00000000-0000-4000-8000-{i:012}"),
                    "userPrincipalName": upn(i), "displayName": format!("User {i}"), "groups": [],
                    "location": "BE", "licenses": [e1, phone], "voiceEnabled": "yes", "vrp": null},
                "draas": {"id": i + 1, "connectionId": i + 1, "customerLicenses": [],
                    "numberId": i + 1, "phoneNumber": number(i), "status": "active"}
            })
        })
        .collect();
    let mut lic = licenses.clone();
    for l in &mut lic {
        l["total"] = json!(users * 2 + 1000);
        l["free"] = json!(users * 2 + 1000);
    }
    doc["users"] = Value::Array(out);
    doc["licenses"] = Value::Array(lic);
    doc["resourceAccounts"] = json!([]);
    doc["numbers"] = Value::Array((0..users).map(|i| json!(number(i))).collect());
    doc["domains"] = json!(["contoso.com"]);
    std::fs::write(path, serde_json::to_vec(&doc)?)?;
    Ok(())
}

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
    seed(&seed_path, users, present)?;
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
