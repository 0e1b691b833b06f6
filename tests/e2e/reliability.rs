//! Reliability harness: whole jobs against the Fusion simulator under the failures a real
//! tenant produces — throttling with Retry-After, 5xx, dropped connections, lost answers,
//! latency spikes past the request timeout, `kill -9` followed by `resume`, and a simulator
//! restart mid-job — each followed by the same four checks:
//!
//! 1. every UPN of the sheet has exactly one item in the job, in a final state;
//! 2. the tenant ends as the sheet wants it: a fresh plan has zero operations;
//! 3. no number is held by two users or accounts (`/_sim/state`);
//! 4. nothing reached the simulator before a 429's Retry-After expired (`/_sim/requests`).
//!
//! Kept under a minute in total: small sheets, Retry-After waits of one second, short
//! timeouts. The heavy figures live in `benches/teamsync.rs`.

use super::support::{repo, Workspace};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use teamsync::apply::{self, ApplyOptions, JobOutcome, JobTarget};
use teamsync::connector::fusion::{FusionConnector, FusionSettings, TokenSource};
use teamsync::connector::{Connector, Gate};
use teamsync::history::History;
use teamsync::model::{JobKind, UserSpec};
use teamsync::plan::{self, PlanInput};
use teamsync::template::TemplateSet;
use teamsync::validate::{validate_files, SheetOptions};
use teamsync_sim::common::conn;
use teamsync_sim::fusion::{FusionSim, TenantPath};
use teamsync_sim::SimOptions;

const TOKEN: &str = "reliability-token";

fn seed() -> PathBuf {
    repo().join("samples/tenant.json")
}

/// The demo sheet (creates, number moves, clears, a disable) plus a rename of every other
/// tenant user, so a job has enough users to be interrupted and enough kinds of operation
/// to go wrong.
fn sheet_text() -> String {
    let base = std::fs::read_to_string(repo().join("samples/users.csv")).expect("users.csv");
    let in_sheet: BTreeSet<String> = base
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(str::to_lowercase)
        .collect();
    let tenant: Value =
        serde_json::from_str(&std::fs::read_to_string(seed()).expect("seed")).expect("seed json");
    let mut out = base.trim_end().to_string();
    for u in tenant["users"].as_array().expect("users") {
        let upn = u["msTeams"]["userPrincipalName"]
            .as_str()
            .unwrap_or_default();
        let name = u["msTeams"]["displayName"].as_str().unwrap_or_default();
        if !in_sheet.contains(&upn.to_lowercase()) {
            out.push_str(&format!("\n{upn},{name} (synced),,,,,,,,"));
        }
    }
    out.push('\n');
    out
}

fn specs_of(sheet: &Path) -> Vec<UserSpec> {
    let templates = TemplateSet::load_dir(&repo().join("templates")).expect("templates");
    let v = validate_files(&[sheet.to_path_buf()], &SheetOptions::default(), &templates);
    assert!(v.errors.is_empty(), "sheet errors: {:?}", v.errors);
    v.specs
}

// ------------------------------------------------------------------ a simulator we control

/// Delays every `every`-th API request by `delay` (or, with `first_user_read`, only the
/// first single-user GET of each user): reads before they are handled (the client gives up
/// first), writes after (applied, but the answer comes too late).
#[derive(Clone, Copy)]
struct Spikes {
    every: u64,
    delay: Duration,
    first_user_read: bool,
}

/// A simulator served from this process on a listener we choose (so it can come back on
/// the same port), optionally behind latency spikes.
struct Served {
    addr: std::net::SocketAddr,
    path: TenantPath,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(
    sim: FusionSim,
    listener: tokio::net::TcpListener,
    spikes: Option<Spikes>,
) -> Served {
    let addr = listener.local_addr().expect("addr");
    let path = sim.tenant_path();
    let mut app = sim.router();
    if let Some(sp) = spikes {
        let n = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        app = app.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let (n, seen) = (n.clone(), seen.clone());
                async move {
                    let path = req.uri().path().to_string();
                    let read = req.method() == axum::http::Method::GET;
                    let hit = if sp.first_user_read {
                        read && path.contains("/msteams/user/") && seen.lock().unwrap().insert(path)
                    } else {
                        !path.starts_with("/_sim")
                            && n.fetch_add(1, Ordering::SeqCst) % sp.every == sp.every - 1
                    };
                    if hit && read {
                        tokio::time::sleep(sp.delay).await;
                    }
                    let resp = next.run(req).await;
                    if hit && !read {
                        tokio::time::sleep(sp.delay).await;
                    }
                    resp
                }
            },
        ));
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<conn::ConnMeta>();
        let _ = axum::serve(conn::KillableListener::new(listener), app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Served {
        addr,
        path,
        stop: Some(tx),
        task,
    }
}

impl Served {
    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn get(&self, what: &str) -> Value {
        reqwest::get(format!("{}/_sim/{what}", self.base_url()))
            .await
            .expect("sim admin")
            .json()
            .await
            .expect("sim admin json")
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

fn connector(s: &Served, rate: f64, burst: u32, timeout: Duration) -> Arc<dyn Connector> {
    let mut settings = FusionSettings::new(
        s.base_url(),
        s.path.draas_instance.clone(),
        s.path.tenant_uuid.clone(),
        s.path.subscription_id,
        TokenSource::Static(TOKEN.into()),
    );
    settings.http.request_timeout = timeout;
    let gate = Arc::new(Gate::new(rate, burst));
    Arc::new(FusionConnector::new(settings, gate).expect("connector"))
}

async fn make_plan(conn: &Arc<dyn Connector>, specs: &[UserSpec]) -> plan::Plan {
    let snap = conn
        .snapshot(&plan::detail_upns(specs, &conn.profile()), false)
        .await
        .expect("snapshot");
    plan::make_plan(PlanInput {
        tenant: "rel",
        mode: plan::Mode::Upsert,
        kind: JobKind::MsUsers,
        sources: vec!["reliability.csv".into()],
        source_sha256: String::new(),
        specs,
        snapshot: &snap,
        profile: conn.profile(),
        allow_removals: None,
    })
    .expect("plan")
}

// ------------------------------------------------------------------ the four checks

/// Check 1: one item per sheet UPN, each final, none failed; the job itself finished.
fn check_history(db: &Path, bulk_id: i64, specs: &[UserSpec], what: &str) {
    let c = rusqlite::Connection::open(db).expect("history");
    let mut st = c
        .prepare(
            "SELECT lower(upn), status, error_code, error_reason FROM job_items WHERE bulk_id = ?1",
        )
        .unwrap();
    let rows: Vec<(String, String, Option<String>, Option<String>)> = st
        .query_map([bulk_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut per_upn: HashMap<&str, usize> = HashMap::new();
    for (upn, status, code, reason) in &rows {
        *per_upn.entry(upn.as_str()).or_default() += 1;
        assert!(
            status == "success" || status == "unchanged",
            "{what}: {upn} ended {status} ({code:?}: {reason:?})"
        );
    }
    let want: BTreeSet<String> = specs.iter().map(|s| s.upn.to_string()).collect();
    let got: BTreeSet<String> = per_upn
        .keys()
        .map(std::string::ToString::to_string)
        .collect();
    assert_eq!(got, want, "{what}: the job's UPNs are not the sheet's");
    assert!(
        per_upn.values().all(|&n| n == 1),
        "{what}: a UPN has several items: {per_upn:?}"
    );
    let status: String = c
        .query_row(
            "SELECT status FROM bulk_jobs WHERE id = ?1",
            [bulk_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "success", "{what}: job status");
}

/// Check 2: a fresh plan of the same sheet changes nothing.
async fn check_converged(conn: &Arc<dyn Connector>, specs: &[UserSpec], what: &str) {
    let p = make_plan(conn, specs).await;
    let left: Vec<String> = p
        .users
        .iter()
        .filter(|u| !u.ops.is_empty())
        .map(|u| format!("{}: {:?}", u.upn, u.ops))
        .collect();
    assert!(
        left.is_empty(),
        "{what}: the tenant did not converge:\n{left:#?}"
    );
}

/// Check 3: no number on two holders.
fn check_numbers(state: &Value, what: &str) {
    let mut holders: HashMap<String, Vec<String>> = HashMap::new();
    for key in ["users", "resourceAccounts"] {
        for u in state[key].as_array().into_iter().flatten() {
            let upn = u["msTeams"]["userPrincipalName"].as_str().unwrap_or("?");
            let n = u["draas"]["phoneNumber"]
                .as_str()
                .or(u["msTeams"]["phoneNumber"].as_str());
            if let Some(n) = n {
                holders.entry(n.to_string()).or_default().push(upn.into());
            }
        }
    }
    let twice: Vec<_> = holders.iter().filter(|(_, h)| h.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "{what}: numbers on two holders: {twice:?}"
    );
}

/// Check 4: after a 429 answered at `t` with Retry-After `s`, nothing arrives before
/// `t + s`, except requests already under way when the answer left (`GRACE`).
fn check_retry_after(log: &Value, what: &str) -> usize {
    const GRACE_MS: i64 = 250;
    const ROUNDING_MS: i64 = 5;
    let entries: Vec<(i64, Option<u64>, String)> = log["requests"]
        .as_array()
        .expect("requests")
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
    for (t, ra, _) in &entries {
        let Some(secs) = ra else { continue };
        throttled += 1;
        assert!(*secs >= 1, "{what}: a 429 without Retry-After");
        let until = t + *secs as i64 * 1000 - ROUNDING_MS;
        let early: Vec<_> = entries
            .iter()
            .filter(|(u, _, _)| *u > t + GRACE_MS && *u < until)
            .collect();
        assert!(
            early.is_empty(),
            "{what}: sent before the Retry-After of the 429 at {t} (+{secs}s) expired: {early:?}"
        );
    }
    throttled
}

// ------------------------------------------------------------------ library scenarios

struct Scenario {
    name: &'static str,
    sim: SimOptions,
    spikes: Option<Spikes>,
    rate: f64,
    concurrency: usize,
    timeout: Duration,
    /// Only the first N users of the sheet (a shorter job).
    rows: Option<usize>,
    max_attempts: u32,
}

impl Scenario {
    /// A well-behaved tenant, a client without its own rate limit, 8 workers, 5 s timeout.
    fn new(name: &'static str) -> Scenario {
        Scenario {
            name,
            sim: SimOptions {
                token: Some(TOKEN.into()),
                ..SimOptions::default()
            },
            spikes: None,
            rate: 0.0,
            concurrency: 8,
            timeout: Duration::from_secs(5),
            rows: None,
            max_attempts: 8,
        }
    }
}

/// Runs the sheet once through the library executor against a fresh simulator, then the
/// four checks; returns the outcome and the request log for scenario-specific checks.
async fn run_scenario(sc: Scenario) -> (JobOutcome, Value) {
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("reliability.csv");
    let text = sheet_text();
    let text: String = match sc.rows {
        Some(n) => text.lines().take(n + 1).map(|l| format!("{l}\n")).collect(),
        None => text,
    };
    std::fs::write(&sheet, text).unwrap();
    let specs = specs_of(&sheet);
    let sim = FusionSim::open(None, Some(&seed()), sc.sim.clone()).expect("sim");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = serve(sim, listener, sc.spikes).await;
    let conn = connector(&served, sc.rate, 5, sc.timeout);
    let p = make_plan(&conn, &specs).await;
    assert!(
        p.users.iter().any(|u| !u.ops.is_empty()),
        "{}: nothing to do",
        sc.name
    );
    let db = dir.path().join("history.db");
    let history = History::open(&db).unwrap();
    let opts = ApplyOptions {
        concurrency: sc.concurrency,
        max_attempts: sc.max_attempts,
        retry_budget: 1000,
        max_consecutive_failures: 20,
        request_timeout: sc.timeout,
        replication_window: Duration::from_secs(10),
        verify: true,
        // Per-user requests: faults need many of them (fewest_requests.rs has bulk's).
        bulk_size: Some(0),
        limit: None,
        only: Vec::new(),
        title: sc.name.into(),
        progress: false,
    };
    let o = apply::execute(&p, conn.clone(), &history, JobTarget::New, &opts)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", sc.name));
    drop(history);
    check_history(&db, o.bulk_id, &specs, sc.name);
    let log = served.get("requests").await;
    check_retry_after(&log, sc.name);
    check_converged(&conn, &specs, sc.name).await;
    check_numbers(&served.get("state").await, sc.name);
    served.shutdown().await;
    (o, log)
}

fn count(log: &Value, pred: impl Fn(&Value) -> bool) -> usize {
    log["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| pred(e))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_tenant_with_retry_after() {
    // The client has no ceiling (nothing paced until the tenant throttles) and 8
    // workers; the tenant admits 15/s and answers the rest 429 with Retry-After: 1 s.
    // From the first 429 on, the gate paces at the rate it learned, so 429s stay few.
    let mut sc = Scenario::new("429");
    sc.sim.rate_limit = Some(15);
    let (o, log) = run_scenario(sc).await;
    let all = count(&log, |_| true);
    let throttled = count(&log, |e| e["status"] == 429);
    eprintln!("429 scenario: {throttled} of {all} requests throttled, {o:?}");
    assert!(throttled > 0, "no 429 at all: nothing was tested");
    assert!(
        throttled * 5 <= all,
        "the gate did not learn the tenant's limit: {throttled} of {all} throttled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_drops_and_lost_answers() {
    let mut sc = Scenario::new("faults");
    sc.sim.fault_rate = 0.10;
    sc.sim.lost_answer_rate = 0.10;
    sc.sim.seed_rng = 7;
    let (o, log) = run_scenario(sc).await;
    let faults = count(&log, |e| e["fault"] == true);
    let lost = count(&log, |e| e["fault_kind"] == "lost_answer");
    eprintln!("fault scenario: {faults} faults ({lost} lost answers), {o:?}");
    assert!(faults >= 5 && lost >= 1, "too few faults: {faults}, {lost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_spikes_past_the_request_timeout() {
    let (o, _log) = run_scenario(Scenario {
        spikes: Some(Spikes {
            every: 6,
            delay: Duration::from_millis(700),
            first_user_read: false,
        }),
        timeout: Duration::from_millis(300),
        ..Scenario::new("spikes")
    })
    .await;
    eprintln!("spike scenario: {o:?}");
    assert!(o.retries > 0, "no request timed out: {o:?}");
}

/// Regression: the read-back after a user's writes ran under one request timeout with no
/// retry, so a single slow answer (or a Retry-After pause on the gate) failed an item
/// whose changes had all been applied. Here the first single-user read of each user
/// answers after the timeout; every item must still end `success`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_read_back_retries_a_timed_out_read() {
    let (o, _log) = run_scenario(Scenario {
        spikes: Some(Spikes {
            every: 1,
            delay: Duration::from_millis(700),
            first_user_read: true,
        }),
        timeout: Duration::from_millis(300),
        ..Scenario::new("slow first read-back")
    })
    .await;
    assert_eq!(o.errors, 0, "{o:?}");
}

// ------------------------------------------------------------------ the real binary

/// The job the history holds (the newest), as (bulk id, status).
fn last_job(ws: &Workspace) -> Option<(i64, String)> {
    let c = ws.history();
    c.query_row(
        "SELECT id, status FROM bulk_jobs ORDER BY id DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

/// Opens a tenant state file in this process to read `/_sim/state` and re-plan.
async fn check_state_file(state: &Path, specs: &[UserSpec], what: &str) {
    let opts = SimOptions {
        token: Some(TOKEN.into()),
        ..SimOptions::default()
    };
    let sim = FusionSim::open(Some(state), None, opts).expect("state file");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = serve(sim, listener, None).await;
    let conn = connector(&served, 0.0, 5, Duration::from_secs(5));
    check_converged(&conn, specs, what).await;
    check_numbers(&served.get("state").await, what);
    served.shutdown().await;
}

/// Items of the newest job that reached `success` (0 when there is no job yet).
fn items_done(ws: &Workspace) -> u64 {
    ws.history()
        .query_row(
            "SELECT count(*) FROM job_items WHERE status = 'success' \
             AND bulk_id = (SELECT max(id) FROM bulk_jobs)",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

/// When a kill lands: after a random delay from the start (maybe before the job exists),
/// or once the running job has finished `n` (random) items.
enum KillAt {
    Delay(u64),
    ItemsDone(u64),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_then_resume() {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut interrupted = 0;
    let points = [
        KillAt::Delay(rng.random_range(200..1500)),
        KillAt::ItemsDone(rng.random_range(0..4)),
        KillAt::ItemsDone(rng.random_range(8..25)),
    ];
    for (i, at) in points.iter().enumerate() {
        let what = format!("kill -9 #{i}");
        let ws = Workspace::with_tenant_extra("sim_latency_ms = 10");
        let sheet = ws.write("reliability.csv", &sheet_text());
        let specs = specs_of(&sheet);
        let sheet_arg = sheet.display().to_string();
        // ~60 requests at 15 req/s: the job runs for about four seconds.
        let mut child = ws.spawn(&["sync", &sheet_arg, "--rate", "15"]);
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            let now = match at {
                KillAt::Delay(ms) => t0.elapsed() >= Duration::from_millis(*ms),
                KillAt::ItemsDone(n) => last_job(&ws).is_some() && items_done(&ws) >= *n,
            };
            if now {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let job = match last_job(&ws) {
            Some((id, status)) => {
                if status == "running" {
                    interrupted += 1;
                }
                let r = ws.run(&["resume", &id.to_string(), "--rate", "50"]);
                assert!(
                    r.code == 0,
                    "{what}: resume exit {}\n{}\n{}",
                    r.code,
                    r.stdout,
                    r.stderr
                );
                id
            }
            // Killed before the job was written: nothing was sent; a new run does it all.
            None => {
                ws.run(&["sync", &sheet_arg, "--rate", "50"]).code(0);
                last_job(&ws).expect("job").0
            }
        };
        check_history(&ws.path("history.db"), job, &specs, &what);
        ws.run(&["plan", &sheet_arg, "--detailed-exitcode"]).code(0);
        check_state_file(&ws.path("demo-tenant.db"), &specs, &what).await;
    }
    assert!(interrupted >= 1, "no kill landed inside a running job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_restart_mid_job() {
    let ws = Workspace::new();
    let state = ws.path("ext-tenant.db");
    let sheet = ws.write("reliability.csv", &sheet_text());
    let specs = specs_of(&sheet);
    let opts = SimOptions {
        token: Some(TOKEN.into()),
        latency_ms: 10,
        ..SimOptions::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sim = FusionSim::open(Some(&state), Some(&seed()), opts.clone()).expect("sim");
    let served = serve(sim, listener, None).await;
    let p = served.path.clone();
    let cfg = ws.path("config/teamsync.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[tenants.ext]\nbackend = \"fusion\"\nbase_url = \"http://127.0.0.1:{port}\"\n\
         draas_instance = {:?}\ntenant_uuid = {:?}\nsubscription_id = {}\n\
         token_env = \"REL_SIM_TOKEN\"\nrate_per_second = 15\nrequest_timeout_s = 2\nmax_attempts = 10\n",
        p.draas_instance, p.tenant_uuid, p.subscription_id
    ));
    std::fs::write(&cfg, text).unwrap();
    let sheet_arg = sheet.display().to_string();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
        .current_dir(ws.dir.path())
        .env_remove("TEAMSYNC_CONFIG")
        .env_remove("TEAMSYNC_DB")
        .env("REL_SIM_TOKEN", TOKEN)
        .args(["--config", &cfg.display().to_string()])
        .args(["sync", &sheet_arg, "--tenant", "ext"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn teamsync");
    // Let the job start writing, then take the tenant away for a moment.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let log_before = served.get("requests").await;
    served.shutdown().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("same port again");
    let sim = FusionSim::open(Some(&state), Some(&seed()), opts).expect("sim again");
    let served = serve(sim, listener, None).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("teamsync");
    assert!(
        out.status.success(),
        "sync across a restart: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let writes_before = count(&log_before, |e| e["method"] != "GET");
    assert!(writes_before > 0, "the restart came before any write");
    let (job, status) = last_job(&ws).expect("job");
    assert_eq!(status, "success");
    check_history(&ws.path("history.db"), job, &specs, "restart");
    check_retry_after(&served.get("requests").await, "restart");
    check_numbers(&served.get("state").await, "restart");
    let conn = connector(&served, 0.0, 5, Duration::from_secs(5));
    check_converged(&conn, &specs, "restart").await;
    served.shutdown().await;
}

/// Regression: the executor's request timeout also ran while a request waited in the
/// tenant's gate (its pacing, a Retry-After pause), so with waits longer than the timeout
/// queued requests "timed out" without being sent, and items failed after their attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_waits_do_not_count_as_request_timeouts() {
    let mut sc = Scenario::new("gate waits > timeout");
    // A client pacing itself at 2.5/s with 8 users at once: requests queue in its gate
    // for about 3 s (and its first burst meets 429s and a 1 s pause), against a 300 ms
    // timeout and 3 attempts.
    sc.sim.rate_limit = Some(3);
    sc.rate = 2.5;
    sc.max_attempts = 3;
    sc.timeout = Duration::from_millis(300);
    sc.rows = Some(12);
    let (o, log) = run_scenario(sc).await;
    assert_eq!(o.errors, 0, "{o:?}");
    assert!(count(&log, |e| e["status"] == 429) > 0, "no 429 at all");
}
