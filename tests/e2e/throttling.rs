//! Throttling, as a user meets it: the real binary, configured as the user had it
//! (`rate_per_second = 200`, `concurrency = 16`), against each backend's simulator
//! allowing far less (a token bucket of a few requests per second with a small burst,
//! 25 ms latency). Every run must end with no failed item, never send before a
//! Retry-After ends (the simulator's request log has arrival times), read its snapshot
//! through the throttling, and record the 429s and the rate it settled at; a job stopped
//! by throttling past `max_throttle_minutes`, or killed, is finished by `resume`.
//!
//! Small tenants and strict limits keep each test to a few seconds.

use super::support::{repo, Run, Workspace};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use teamsync_sim::common::conn::Background;
use teamsync_sim::fusion::FusionSim;
use teamsync_sim::liveplatform::LivePlatformSim;
use teamsync_sim::portsip::PortsipSim;
use teamsync_sim::ump::UmpSim;
use teamsync_sim::SimOptions;

const TOKEN: &str = "throttling-e2e-token";
const TOKEN_VAR: &str = "THROTTLING_E2E_TOKEN";
/// The client: far above what the simulators allow.
const CLIENT: &str = "rate_per_second = 200\nconcurrency = 16\nrequest_timeout_s = 5\n";

/// A tenant of `rate` requests per second, a burst of `burst`, 25 ms per answer.
fn throttling(rate: u32, burst: u32, token: bool) -> SimOptions {
    SimOptions {
        token: token.then(|| TOKEN.to_string()),
        rate_limit: Some(rate),
        burst: Some(burst),
        latency_ms: 25,
        ..SimOptions::default()
    }
}

/// Throttles every API request (429, Retry-After: 1) while on, in front of the
/// simulator: a tenant that stops serving for a while. Switched on by the test, or by
/// itself after `after_writes` writes.
#[derive(Clone, Default)]
struct Storm {
    on: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    after_writes: Option<u64>,
}

impl Storm {
    fn layer(&self, router: axum::Router) -> axum::Router {
        let storm = self.clone();
        router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let storm = storm.clone();
                async move {
                    let api = !req.uri().path().starts_with("/_sim");
                    if api && req.method() != axum::http::Method::GET {
                        let n = storm.writes.fetch_add(1, Ordering::SeqCst) + 1;
                        if storm.after_writes.is_some_and(|a| n == a + 1) {
                            storm.on.store(true, Ordering::SeqCst);
                        }
                    }
                    if api && storm.on.load(Ordering::SeqCst) {
                        return axum::response::Response::builder()
                            .status(429)
                            .header("Retry-After", "1")
                            .body(axum::body::Body::from("storm"))
                            .unwrap_or_default();
                    }
                    next.run(req).await
                }
            },
        ))
    }
}

struct Tenant {
    server: Background,
    /// The `[tenants.t]` table pointing at it.
    table: String,
}

impl Tenant {
    fn base(&self) -> String {
        self.server.base_url()
    }

    async fn log(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/_sim/requests", self.base()))
            .await
            .expect("request log")
            .json()
            .await
            .expect("request log json");
        v["requests"].as_array().cloned().unwrap_or_default()
    }
}

async fn fusion(opts: SimOptions, storm: &Storm) -> Tenant {
    let sim = FusionSim::open(None, Some(&repo().join("samples/tenant.json")), opts).unwrap();
    let t = sim.tenant_path();
    let server = Background::spawn(storm.layer(sim.router())).await.unwrap();
    let table = format!(
        "backend = \"fusion\"\nbase_url = {:?}\ndraas_instance = {:?}\ntenant_uuid = {:?}\n\
         subscription_id = {}\ntoken_env = \"{TOKEN_VAR}\"\n",
        server.base_url(),
        t.draas_instance,
        t.tenant_uuid,
        t.subscription_id
    );
    Tenant { server, table }
}

async fn portsip(opts: SimOptions) -> Tenant {
    let seed = repo().join("samples/portsip-tenant.json");
    let sim = PortsipSim::open(None, Some(&seed), opts).unwrap();
    let server = Background::spawn(sim.router()).await.unwrap();
    let table = format!(
        "backend = \"portsip\"\nbase_url = {:?}\ntoken_env = \"{TOKEN_VAR}\"\n",
        server.base_url()
    );
    Tenant { server, table }
}

async fn ump(opts: SimOptions) -> Tenant {
    let sim = UmpSim::open(None, Some(&repo().join("samples/ump-tenant.json")), opts).unwrap();
    let server = Background::spawn(sim.router()).await.unwrap();
    let table = format!(
        "backend = \"ump\"\nbase_url = {:?}\nvoice_policies = [\"International\", \"National\", \"Local\"]\n",
        server.base_url()
    );
    Tenant { server, table }
}

async fn liveplatform(opts: SimOptions) -> Tenant {
    let seed = repo().join("samples/liveplatform-tenant.json");
    let sim = LivePlatformSim::open(None, Some(&seed), opts).unwrap();
    let customer = sim.customer_guid();
    let server = Background::spawn(sim.router()).await.unwrap();
    let table = format!(
        "backend = \"liveplatform\"\nbase_url = {:?}\ncustomer_id = \"{customer}\"\n\
         token_env = \"{TOKEN_VAR}\"\n",
        server.base_url()
    );
    Tenant { server, table }
}

/// A workspace whose default tenant `t` is `tenant`, with the client settings
/// and `extra` keys.
fn workspace(tenant: &Tenant, extra: &str) -> Workspace {
    Workspace::with_tenant_table(&format!("{}{CLIENT}{extra}", tenant.table))
}

fn run(ws: &Workspace, args: &[&str]) -> Run {
    let out = ws
        .cmd()
        .env(TOKEN_VAR, TOKEN)
        .args(args)
        .output()
        .expect("run teamsync");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary off the async runtime (the simulator serves on it meanwhile).
async fn run_async(ws: &Workspace, args: &[&str]) -> Run {
    tokio::task::block_in_place(|| run(ws, args))
}

/// The 429s in the log; panics if any request arrived while one of them still asked for
/// silence. A request's time is its arrival; a 429 is decided after the simulator's
/// 25 ms latency and reaches the client a moment later, so requests arriving within
/// `GRACE_MS` of a 429 were sent before the client heard of it (generous: the test
/// machine is shared, and a request may wait a while between its admission and the
/// socket).
fn retry_after_respected(log: &[Value], what: &str) -> usize {
    const GRACE_MS: i64 = 250;
    let entries: Vec<(i64, Option<u64>, String)> = log
        .iter()
        .map(|e| {
            let t = chrono::DateTime::parse_from_rfc3339(e["time"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            let ra = (e["status"] == 429).then(|| e["retry_after"].as_u64().unwrap_or(0));
            (t, ra, format!("{} {}", e["method"], e["path"]))
        })
        .collect();
    let mut throttled = 0;
    for (t, ra, req) in &entries {
        let Some(secs) = ra else { continue };
        throttled += 1;
        assert!(*secs >= 1, "{what}: a 429 without Retry-After: {req}");
        let until = t + *secs as i64 * 1000;
        let early: Vec<_> = entries
            .iter()
            .filter(|(u, _, _)| *u > t + GRACE_MS && *u < until)
            .collect();
        assert!(
            early.is_empty(),
            "{what}: sent before the Retry-After of the 429 at {t} ({req}, {secs} s) ended: {early:?}"
        );
    }
    throttled
}

/// The newest job's id, status and throttling as `jobs show` reports them.
fn last_job(ws: &Workspace) -> Value {
    let id: i64 = ws
        .history()
        .query_row("SELECT max(id) FROM bulk_jobs", [], |r| r.get(0))
        .expect("a job");
    let show = run(ws, &["--output", "json", "jobs", "show", &id.to_string()]);
    show.code(0);
    show.json()
}

/// Items of a `jobs show` answer not finished yet.
fn pending(job: &Value) -> usize {
    job["job_items"]
        .as_array()
        .map_or(0, |i| i.iter().filter(|i| i["status"] == "pending").count())
}

/// A sync under throttling: exit 0, every item final and none failed, the snapshot read
/// through it, no early send, the 429s and settled rate recorded, nothing left to do.
async fn sync_through_throttling(tenant: Tenant, sheet: &str, what: &str) {
    let ws = workspace(&tenant, "");
    ws.write("users.csv", sheet);
    let sync = run_async(&ws, &["sync", "users.csv"]).await;
    sync.code(0);
    assert!(
        sync.stdout.contains("throttled (429), settled at"),
        "{what}: the summary names the throttling:\n{}",
        sync.stdout
    );
    let log = tenant.log().await;
    let throttled = retry_after_respected(&log, what);
    assert!(
        throttled > 0,
        "{what}: the tenant never throttled: nothing was tested"
    );
    let job = last_job(&ws);
    assert_eq!(job["status"], "success", "{what}: {job}");
    assert_eq!(job["error_count"], 0, "{what}");
    let items = job["job_items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|i| i["status"] == "success" || i["status"] == "unchanged"),
        "{what}: {items:?}"
    );
    assert_eq!(job["throttled_count"], throttled as u64, "{what}: {job}");
    let settled = job["settled_rate"].as_f64().expect("settled rate");
    assert!(
        settled > 0.0 && settled < 200.0,
        "{what}: settled at {settled}"
    );
    run_async(&ws, &["plan", "users.csv", "--detailed-exitcode"])
        .await
        .code(0);
}

/// The sample sheet: twelve users with creates, number moves and template fields.
fn fusion_sheet() -> String {
    let base = std::fs::read_to_string(repo().join("samples/users.csv")).unwrap();
    base.trim_end().to_string() + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fusion_sync_under_throttling_fails_nothing_and_learns_the_rate() {
    let tenant = fusion(throttling(15, 3, true), &Storm::default()).await;
    sync_through_throttling(tenant, &fusion_sheet(), "fusion").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portsip_sync_under_throttling_fails_nothing() {
    let tenant = portsip(throttling(4, 2, true)).await;
    let sheet = "upn,displayName,number,extension\n\
        alice.martin@contoso.com,Alice Martin-Leroy,,\n\
        bob.dupont@contoso.com,Bob Dupont (Support),+3225405203,\n\
        carol.new@contoso.com,Carol New,+3225405202,103\n\
        dave.new@contoso.com,Dave New,,104\n\
        erin.new@contoso.com,Erin New,,105\n";
    sync_through_throttling(tenant, sheet, "portsip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ump_sync_under_throttling_fails_nothing() {
    let tenant = ump(throttling(4, 2, false)).await;
    // The shipped UMP sample: numbers, policies and an auto-allocated number (UMP never
    // changes a display name once a user exists, so the names stay as the tenant has them).
    let sheet = std::fs::read_to_string(repo().join("samples/ump-users.csv")).unwrap();
    sync_through_throttling(tenant, &sheet, "ump").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveplatform_audit_reads_through_throttling() {
    // Read-only: `plan` audits. One request per second and no burst: every read after the
    // first is throttled at least once.
    let tenant = liveplatform(throttling(1, 1, true)).await;
    let ws = workspace(&tenant, "");
    ws.write(
        "audit.csv",
        "upn,displayName\nAdeleV@M365x33712745.OnMicrosoft.com,Adele Vance (audit)\n\
         MeganB@M365x33712745.OnMicrosoft.com,\n",
    );
    let plan = run_async(&ws, &["plan", "audit.csv", "--detailed-exitcode"]).await;
    plan.code(4);
    assert!(
        plan.stdout.contains("Adele Vance (audit)"),
        "{}",
        plan.stdout
    );
    let log = tenant.log().await;
    assert!(retry_after_respected(&log, "liveplatform") > 0, "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_past_max_throttle_minutes_aborts_resumably_and_resume_finishes() {
    // The tenant serves four writes, then throttles everything: after 3 s of it the job
    // stops, aborted, with every outcome recorded and nothing failed.
    let storm = Storm {
        after_writes: Some(4),
        ..Storm::default()
    };
    let tenant = fusion(throttling(15, 3, true), &storm).await;
    // Per-user requests: the storm starts after the fourth write of a many-request job.
    let ws = workspace(&tenant, "max_throttle_minutes = 0.05\nbulk_size = 0\n");
    ws.write("users.csv", &fusion_sheet());
    let t0 = std::time::Instant::now();
    let sync = run_async(&ws, &["sync", "users.csv"]).await;
    sync.code(3);
    assert!(
        sync.stderr.contains("max_throttle_minutes"),
        "{}",
        sync.stderr
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let job = last_job(&ws);
    assert_eq!(job["status"], "aborted", "{job}");
    assert_eq!(job["error_count"], 0, "throttling fails no item: {job}");
    assert!(pending(&job) > 0, "{job}");
    assert!(job["throttled_count"].as_u64().unwrap() > 0, "{job}");
    let id = job["id"].to_string();

    // The tenant is back: resume finishes the same job.
    storm.on.store(false, Ordering::SeqCst);
    let storm_writes = storm.writes.load(Ordering::SeqCst);
    assert!(storm_writes >= 4, "{storm_writes}");
    let resume = run_async(&ws, &["resume", &id]).await;
    resume.code(0);
    let job = last_job(&ws);
    assert_eq!(job["id"].to_string(), id);
    assert_eq!(
        (job["status"].as_str(), pending(&job)),
        (Some("success"), 0)
    );
    run_async(&ws, &["plan", "users.csv", "--detailed-exitcode"])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_throttling_through_the_snapshot_past_the_bound_exits_3_before_any_write() {
    let storm = Storm::default();
    storm.on.store(true, Ordering::SeqCst);
    let tenant = fusion(throttling(15, 3, true), &storm).await;
    let ws = workspace(&tenant, "max_throttle_minutes = 0.03\n");
    ws.write("users.csv", &fusion_sheet());
    let sync = run_async(&ws, &["sync", "users.csv"]).await;
    sync.code(3);
    assert!(
        sync.stderr.contains("throttling") && sync.stderr.contains("max_throttle_minutes"),
        "{}",
        sync.stderr
    );
    assert!(!sync.stderr.contains(TOKEN));
    assert_eq!(
        storm.writes.load(Ordering::SeqCst),
        0,
        "nothing was written"
    );
    // The run is recorded as failed, with the reason, and no item.
    let job = last_job(&ws);
    assert_eq!(job["status"], "failed", "{job}");
    let reason = job["abort_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("max_throttle_minutes"), "{job}");
    assert_eq!(job["job_items"].as_array().map_or(0, Vec::len), 0, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_kill_under_throttling_completes() {
    let tenant = fusion(throttling(15, 3, true), &Storm::default()).await;
    // Per-user requests: the kill must land while the job has many left.
    let ws = workspace(&tenant, "bulk_size = 0\n");
    ws.write("users.csv", &fusion_sheet());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
        .current_dir(ws.dir.path())
        .env_remove("TEAMSYNC_CONFIG")
        .env_remove("TEAMSYNC_DB")
        .env(TOKEN_VAR, TOKEN)
        .arg("--config")
        .arg(ws.path("config/teamsync.toml"))
        .args(["sync", "users.csv"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn teamsync");
    let t0 = std::time::Instant::now();
    // Kill once the job has finished a few items (it runs for several seconds).
    loop {
        let done: i64 = if ws.path("history.db").exists() {
            ws.history()
                .query_row(
                    "SELECT count(*) FROM job_items WHERE status = 'success' \
                     AND bulk_id = (SELECT max(id) FROM bulk_jobs)",
                    [],
                    |r| r.get(0),
                )
                .unwrap_or(0)
        } else {
            0
        };
        if done >= 3 {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the sync ended before it could be killed: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the job never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let job = last_job(&ws);
    let id = job["id"].to_string();
    // The tenant still throttles, and resume's snapshot reads through it.
    let resume = run_async(&ws, &["resume", &id]).await;
    assert!(
        resume.code == 0,
        "resume: {}\n{}\n{}",
        resume.code,
        resume.stdout,
        resume.stderr
    );
    let job = last_job(&ws);
    assert_eq!(job["status"], "success", "{job}");
    let log = tenant.log().await;
    retry_after_respected(&log, "kill and resume");
    run_async(&ws, &["plan", "users.csv", "--detailed-exitcode"])
        .await
        .code(0);
}
