//! `cargo bench --bench teamsync` (wrapped by `scripts/bench.sh`): the figures BENCHMARKS.md
//! keeps, measured on data the bench generates itself, in one run.
//!
//! Why it is shaped like this: peak memory is only meaningful per process, so every figure
//! is measured in a fresh child process (this same executable re-run with `--phase …`) that
//! reports its own `VmHWM` from `/proc/self/status` — no `unsafe` `getrusage` needed (the
//! crate forbids `unsafe`). The simulators live in the parent, so a child's peak is the
//! client's alone (sheet + snapshot + plan + executor + history), not the tenant's.
//! The `validate` figures run the CLI's own `commands::run` in the child (the release
//! binary's `main` is nothing more than that call), so they measure the real command.
//!
//! Sizes (environment): `BENCH_ROWS` (100000), `BENCH_ROWS_SMALL` (20000),
//! `BENCH_APPLY_USERS` (10000), `BENCH_SPEEDUP_USERS` (1000), `BENCH_RATE` (100),
//! `BENCH_LATENCY_MS` (50), `BENCH_CONCURRENCY` (8, the tenant default), `BENCH_BURST` (5,
//! the tenant default). `BENCH_QUICK=1` shrinks everything for a smoke run;
//! `BENCH_ONLY=validate,plan,history,apply,speedup,sim,hostile` runs some parts only
//! (`hostile`: workbooks at the hostile-sheet caps, see `benches/hostile/mod.rs`).
//!
//! Throttling (only when named: `BENCH_ONLY=throttle,throttle-header,mixed`, they take
//! minutes): whole
//! syncs (snapshot, plan, apply with read-back, as `teamsync sync` runs them, through
//! `connect::Tenant::open` from a tenant table) with the client settings
//! (`rate_per_second = 200`, `concurrency = 16`, every other key at its default) against
//! the Fusion simulator allowing `BENCH_THROTTLE_RATE` (30) req/s with a burst of
//! `BENCH_THROTTLE_BURST` (5) and `BENCH_THROTTLE_LATENCY_MS` (25) per answer, for each of
//! `BENCH_THROTTLE_USERS` (150,600,2000) renamed users; `mixed` adds 30 % random 429s,
//! 10 % 5xx and 1 % dropped connections for `BENCH_MIXED_USERS` (1000); `throttle-header`
//! repeats `throttle` with the tenant sending `x-ms-throttle-limit-percentage`. The figures come
//! from the simulator's request log (429s, answered requests, sends before a Retry-After
//! ended) and the history (failed items).
//! Many tenants (only when named: `BENCH_ONLY=tenants`): `sync --all` over
//! `BENCH_TENANTS` (100) simulated tenants, each throttling at its own rate, at each
//! `--parallel-tenants` of `BENCH_PARALLEL` (1,4,16,100); see `benches/tenants/mod.rs`.
//! Results: printed as Markdown, and written to `target/bench/results.json`.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use teamsync::apply::{self, ApplyOptions, JobTarget};
use teamsync::connector::fusion::{FusionConnector, FusionSettings, TokenSource};
use teamsync::connector::retry::RetryPolicy;
use teamsync::connector::{Connector, Gate};
use teamsync::history::{History, ItemResult, ItemStatus, NewItem, NewJob};
use teamsync::model::JobKind;
use teamsync::plan::{self, PlanInput};
use teamsync::template::TemplateSet;
use teamsync::validate::{validate_files, SheetOptions};
use teamsync_sim::fusion::{self as fsim, FusionSim, RunningSim};
use teamsync_sim::SimOptions;

#[path = "hostile/mod.rs"]
mod hostile;
#[path = "tenants/mod.rs"]
mod tenants;

/// Marks the one stdout line of a child that carries its result.
const MARK: &str = "BENCH_RESULT ";
const TOKEN: &str = "bench-token-not-a-secret";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--phase") {
        let result = run_phase(&args[i + 1..]);
        println!("{MARK}{result}");
        return;
    }
    if let Err(e) = orchestrate() {
        eprintln!("bench failed: {e:#}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- sizes

struct Sizes {
    only: Option<Vec<String>>,
    rows: usize,
    rows_small: usize,
    apply_users: usize,
    speedup_users: usize,
    rate: f64,
    latency_ms: u64,
    concurrency: usize,
    burst: u32,
    throttle_users: Vec<usize>,
    mixed_users: usize,
    throttle_rate: u32,
    throttle_burst: u32,
    throttle_latency_ms: u64,
}

/// Parts that run only when `BENCH_ONLY` names them (they take minutes).
const OPT_IN: &[&str] = &["throttle", "throttle-header", "mixed", "tenants"];

fn env_num<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Sizes {
    fn wants(&self, part: &str) -> bool {
        match &self.only {
            Some(o) => o.iter().any(|p| p == part),
            None => !OPT_IN.contains(&part),
        }
    }

    fn from_env() -> Sizes {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        let (r, rs, a, s) = if quick {
            (5_000, 1_000, 300, 100)
        } else {
            (100_000, 20_000, 10_000, 1_000)
        };
        Sizes {
            only: std::env::var("BENCH_ONLY")
                .ok()
                .map(|v| v.split(',').map(|p| p.trim().to_string()).collect()),
            rows: env_num("BENCH_ROWS", r),
            rows_small: env_num("BENCH_ROWS_SMALL", rs),
            apply_users: env_num("BENCH_APPLY_USERS", a),
            speedup_users: env_num("BENCH_SPEEDUP_USERS", s),
            rate: env_num("BENCH_RATE", 100.0),
            latency_ms: env_num("BENCH_LATENCY_MS", 50),
            concurrency: env_num("BENCH_CONCURRENCY", 8),
            burst: env_num("BENCH_BURST", 5),
            throttle_users: std::env::var("BENCH_THROTTLE_USERS").ok().map_or_else(
                || {
                    if quick {
                        vec![150]
                    } else {
                        vec![150, 600, 2000]
                    }
                },
                |v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
            ),
            mixed_users: env_num("BENCH_MIXED_USERS", if quick { 100 } else { 1000 }),
            throttle_rate: env_num("BENCH_THROTTLE_RATE", 30),
            throttle_burst: env_num("BENCH_THROTTLE_BURST", 5),
            throttle_latency_ms: env_num("BENCH_THROTTLE_LATENCY_MS", 25),
        }
    }
}

// ---------------------------------------------------------------- data

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn upn(i: usize) -> String {
    format!("user{i:06}@contoso.com")
}

/// Brussels numbers `+32 2 5xx xx xx`: valid for BE, unique for i < 1,000,000.
fn number(i: usize) -> String {
    format!("+322{}", 5_000_000 + i)
}

fn display(i: usize, renamed: bool) -> String {
    if renamed {
        format!("User {i} (renamed)")
    } else {
        format!("User {i}")
    }
}

/// Which sheet users the tenant lacks (created by the plan) and which it holds under
/// another display name (renamed by the plan).
#[derive(Clone, Copy)]
struct Shape {
    absent_every: usize,
    renamed_every: usize,
}

impl Shape {
    fn absent(&self, i: usize) -> bool {
        self.absent_every > 0 && i % self.absent_every == self.absent_every - 1
    }
    fn renamed(&self, i: usize) -> bool {
        self.renamed_every > 0 && i.is_multiple_of(self.renamed_every)
    }
}

const HEADER: [&str; 5] = ["upn", "displayName", "number", "country", "licenses"];

fn write_csv(path: &Path, rows: usize, shape: Shape) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(HEADER)?;
    for i in 0..rows {
        w.write_record([
            upn(i),
            display(i, shape.renamed(i)),
            number(i),
            "BE".into(),
            "STANDARDPACK;MCOEV".into(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Numbers go in as numeric cells (Excel's habit), the rest as text.
fn write_xlsx(path: &Path, rows: usize, shape: Shape) -> anyhow::Result<()> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in HEADER.iter().enumerate() {
        ws.write_string(0, c as u16, *h)?;
    }
    for i in 0..rows {
        let r = i as u32 + 1;
        ws.write_string(r, 0, upn(i))?;
        ws.write_string(r, 1, display(i, shape.renamed(i)))?;
        let digits: f64 = number(i)[1..].parse()?;
        ws.write_number(r, 2, digits)?;
        ws.write_string(r, 3, "BE")?;
        ws.write_string(r, 4, "STANDARDPACK;MCOEV")?;
    }
    wb.save(path)?;
    Ok(())
}

/// A Fusion seed (the sample tenant's catalogs) holding users `0..users` minus the absent
/// ones, each with its number, E1 + Phone System, and the original display name.
fn write_seed(path: &Path, users: usize, shape: Shape) -> anyhow::Result<()> {
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(
        repo().join("samples/tenant.json"),
    )?)?;
    let mut doc = sample.clone();
    let licenses = sample["licenses"].as_array().cloned().unwrap_or_default();
    let sku = |part: &str| -> Value {
        licenses.iter().find(|l| l["skuPartNumber"] == part).map_or(
            Value::Null,
            |l| json!({"skuId": l["skuId"], "skuPartNumber": part}),
        )
    };
    let (e1, phone) = (sku("STANDARDPACK"), sku("MCOEV"));
    anyhow::ensure!(
        !e1.is_null() && !phone.is_null(),
        "sample tenant lacks E1/MCOEV"
    );
    let mut out = Vec::with_capacity(users);
    for i in (0..users).filter(|&i| !shape.absent(i)) {
        out.push(json!({
            "msTeams": {
                "id": format!("00000000-0000-4000-8000-{i:012}"),
                "userPrincipalName": upn(i),
                "displayName": display(i, false),
                "groups": [],
                "location": "BE",
                "licenses": [e1, phone],
                "voiceEnabled": "yes",
                "vrp": null
            },
            "draas": {
                "id": i + 1,
                "connectionId": i + 1,
                "customerLicenses": [],
                "numberId": i + 1,
                "phoneNumber": number(i),
                "status": "active"
            }
        }));
    }
    let mut lic = licenses.clone();
    for l in &mut lic {
        l["total"] = json!(users * 2 + 1000);
        l["free"] = json!(users * 2 + 1000);
    }
    doc["users"] = Value::Array(out);
    doc["licenses"] = Value::Array(lic);
    doc["resourceAccounts"] = json!([]);
    doc["numbers"] = Value::Array((0..users).map(|i| json!(number(i))).collect());
    doc["domains"] = json!(["contoso.com", "contoso.onmicrosoft.com"]);
    std::fs::write(path, serde_json::to_vec(&doc)?)?;
    Ok(())
}

fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let cfg = dir.join("teamsync.toml");
    std::fs::write(
        &cfg,
        format!(
            "db = {:?}\ntemplates = {:?}\n",
            dir.join("history.db").display().to_string(),
            repo().join("templates").display().to_string()
        ),
    )?;
    Ok(cfg)
}

// ---------------------------------------------------------------- orchestration

struct Sim {
    running: RunningSim,
}

impl Sim {
    async fn start(seed: &Path, opts: SimOptions) -> anyhow::Result<(Sim, f64)> {
        let t0 = Instant::now();
        let sim = FusionSim::open(None, Some(seed), opts)?;
        let load_s = t0.elapsed().as_secs_f64();
        Ok((
            Sim {
                running: fsim::start(sim).await?,
            },
            load_s,
        ))
    }

    fn args(&self) -> Vec<String> {
        let t = &self.running.tenant;
        vec![
            "--url".into(),
            self.running.base_url(),
            "--draas".into(),
            t.draas_instance.clone(),
            "--uuid".into(),
            t.tenant_uuid.clone(),
            "--sub".into(),
            t.subscription_id.to_string(),
        ]
    }

    /// Every request the simulator logged.
    async fn requests(&self) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/_sim/requests", self.running.base_url());
        let v: Value = reqwest::get(url).await?.json().await?;
        Ok(v.get("requests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Arrival times (ms since epoch) of the writes the simulator logged.
    async fn write_arrivals(&self) -> anyhow::Result<Vec<i64>> {
        let url = format!("{}/_sim/requests", self.running.base_url());
        let v: Value = reqwest::get(url).await?.json().await?;
        let entries = v
            .get("requests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out: Vec<i64> = entries
            .iter()
            .filter(|e| e["method"] != "GET")
            .filter_map(|e| e["time"].as_str())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}

/// Runs this executable with `--phase args…` and returns the child's result object.
async fn child(args: &[String]) -> anyhow::Result<Value> {
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe)
        .arg("--phase")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(MARK))
        .ok_or_else(|| anyhow::anyhow!("phase {args:?} printed no result:\n{stdout}"))?;
    let v: Value = serde_json::from_str(line)?;
    if let Some(e) = v.get("error") {
        anyhow::bail!("phase {:?} failed: {e}", args.first());
    }
    Ok(v)
}

fn s(v: &str) -> String {
    v.to_string()
}

fn orchestrate() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(orchestrate_async())
}

async fn orchestrate_async() -> anyhow::Result<()> {
    let z = Sizes::from_env();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let cfg = write_config(dir)?;
    let mut results = serde_json::Map::new();
    eprintln!(
        "teamsync bench: rows {}, small {}, apply {} users at {} req/s ({} ms latency, concurrency {}, burst {}), speed-up on {}",
        z.rows, z.rows_small, z.apply_users, z.rate, z.latency_ms, z.concurrency, z.burst, z.speedup_users
    );
    let shape = Shape {
        absent_every: 100,
        renamed_every: 10,
    };
    let sheet = dir.join(format!("users-{}.csv", z.rows));
    write_csv(&sheet, z.rows, shape)?;

    // 1. validate: CSV and XLSX, 100k and 20k (does memory grow with rows?); and the bare
    //    readers on the same files, to tell the reader's memory from validate's.
    if z.wants("validate") {
        let mut validate = Vec::new();
        for (fmt, rows) in [
            ("csv", z.rows_small),
            ("csv", z.rows),
            ("xlsx", z.rows_small),
            ("xlsx", z.rows),
        ] {
            let path = dir.join(format!("users-{rows}.{fmt}"));
            if fmt == "csv" {
                write_csv(&path, rows, shape)?;
            } else {
                write_xlsx(&path, rows, shape)?;
            }
            eprintln!("validate {fmt} {rows} rows…");
            let p = path.display().to_string();
            let r = child(&[s("validate"), p.clone(), cfg.display().to_string()]).await?;
            let read = child(&[s("read"), p]).await?;
            validate.push(json!({
                "format": fmt,
                "rows": rows,
                "bytes": std::fs::metadata(&path)?.len(),
                "result": r,
                "read_only": read,
            }));
        }
        results.insert("validate".into(), Value::Array(validate));
    }

    // 2. snapshot + plan: the big sheet against a tenant of the same size.
    if z.wants("plan") {
        let seed = dir.join("seed-big.json");
        write_seed(&seed, z.rows, shape)?;
        eprintln!("snapshot + plan: {} rows vs {} users…", z.rows, z.rows);
        let (sim, load_s) = Sim::start(
            &seed,
            SimOptions {
                token: Some(TOKEN.into()),
                ..SimOptions::default()
            },
        )
        .await?;
        let mut a = sim.args();
        a.splice(0..0, [s("plan"), sheet.display().to_string()]);
        let mut r = child(&a).await?;
        r["sim_seed_load_s"] = json!(load_s);
        results.insert("snapshot_plan".into(), r);
        sim.running.shutdown().await;
    }

    // 3. history writer capacity.
    if z.wants("history") {
        eprintln!("history writer: {} items…", z.apply_users);
        let r = child(&[
            s("history"),
            dir.join("history-cap.db").display().to_string(),
            z.apply_users.to_string(),
        ])
        .await?;
        results.insert("history_capacity".into(), r);
    }

    // 4. apply at the configured rate with latency.
    let rename_all = Shape {
        absent_every: 0,
        renamed_every: 1,
    };
    let latency = SimOptions {
        token: Some(TOKEN.into()),
        latency_ms: z.latency_ms,
        ..SimOptions::default()
    };
    let run_apply = |seed: PathBuf, sheet: PathBuf, db: PathBuf, rate: f64, conc: usize| {
        let latency = latency.clone();
        let burst = z.burst;
        async move {
            let (sim, _) = Sim::start(&seed, latency).await?;
            let mut a = sim.args();
            a.splice(
                0..0,
                [
                    s("apply"),
                    sheet.display().to_string(),
                    db.display().to_string(),
                    rate.to_string(),
                    burst.to_string(),
                    conc.to_string(),
                ],
            );
            let mut r = child(&a).await?;
            let w = sim.write_arrivals().await?;
            if w.len() > 1 {
                let span = (w[w.len() - 1] - w[0]) as f64 / 1000.0;
                r["writes_logged"] = json!(w.len());
                r["steady_write_rate"] = json!((w.len() - 1) as f64 / span.max(1e-3));
            }
            sim.running.shutdown().await;
            anyhow::Ok(r)
        }
    };
    if z.wants("apply") {
        let apply_seed = dir.join("seed-apply.json");
        let apply_sheet = dir.join("apply.csv");
        write_seed(&apply_seed, z.apply_users, rename_all)?;
        write_csv(&apply_sheet, z.apply_users, rename_all)?;
        eprintln!(
            "apply: {} users at {} req/s (takes at least {:.0} s)…",
            z.apply_users,
            z.rate,
            z.apply_users as f64 / z.rate
        );
        let r = run_apply(
            apply_seed,
            apply_sheet,
            dir.join("apply.db"),
            z.rate,
            z.concurrency,
        )
        .await?;
        results.insert("apply".into(), r);
    }

    // 5. speed-up over one request at a time, same simulator and latency.
    let su_seed = dir.join("seed-speedup.json");
    let su_sheet = dir.join("speedup.csv");
    write_seed(&su_seed, z.speedup_users, rename_all)?;
    write_csv(&su_sheet, z.speedup_users, rename_all)?;
    if z.wants("speedup") {
        let mut speed = serde_json::Map::new();
        for (name, rate, conc) in [
            ("sequential", 0.0, 1),
            ("configured", z.rate, z.concurrency),
            ("unlimited", 0.0, z.concurrency),
        ] {
            eprintln!("speed-up: {name} ({} users)…", z.speedup_users);
            let db = dir.join(format!("speedup-{name}.db"));
            let r = run_apply(su_seed.clone(), su_sheet.clone(), db, rate, conc).await?;
            speed.insert(name.into(), r);
        }
        results.insert("speedup".into(), Value::Object(speed));
    }

    // 6. simulator throughput, loopback, no latency.
    if z.wants("sim") {
        eprintln!("simulator throughput…");
        let (sim, _) = Sim::start(
            &su_seed,
            SimOptions {
                token: Some(TOKEN.into()),
                ..SimOptions::default()
            },
        )
        .await?;
        let mut a = sim.args();
        a.splice(0..0, [s("simload"), "3".into(), "32".into()]);
        let r = child(&a).await?;
        results.insert("sim".into(), r);
        sim.running.shutdown().await;
    }

    // 7. throttling: whole syncs against a tenant allowing far less than the client's
    //    ceiling; 8. the same with random 429s, 5xx and dropped connections.
    let throttled_tenant = SimOptions {
        token: Some(TOKEN.into()),
        rate_limit: Some(z.throttle_rate),
        burst: Some(z.throttle_burst),
        latency_ms: z.throttle_latency_ms,
        ..SimOptions::default()
    };
    if z.wants("throttle") {
        let mut runs = Vec::new();
        for &n in &z.throttle_users {
            eprintln!(
                "throttle: sync of {n} users against {} req/s, burst {}…",
                z.throttle_rate, z.throttle_burst
            );
            runs.push(run_sync(dir, n, throttled_tenant.clone(), z.throttle_rate).await?);
        }
        results.insert("throttle".into(), Value::Array(runs));
    }
    if z.wants("throttle-header") {
        // The same tenant, saying how much of its limit is used from 80 % on.
        let opts = SimOptions {
            limit_header: true,
            ..throttled_tenant.clone()
        };
        let mut runs = Vec::new();
        for &n in &z.throttle_users {
            eprintln!("throttle-header: sync of {n} users, x-ms-throttle-limit-percentage on…");
            let mut r = run_sync(dir, n, opts.clone(), z.throttle_rate).await?;
            r["limit_header"] = json!(true);
            runs.push(r);
        }
        results.insert("throttle_header".into(), Value::Array(runs));
    }
    if z.wants("mixed") {
        let opts = SimOptions {
            throttle_share: 0.3,
            error_rate: 0.1,
            drop_rate: 0.01,
            seed_rng: 14,
            ..throttled_tenant.clone()
        };
        eprintln!(
            "mixed: sync of {} users, 30 % random 429s, 10 % 5xx, 1 % drops (takes minutes)…",
            z.mixed_users
        );
        let r = run_sync(dir, z.mixed_users, opts, z.throttle_rate).await?;
        results.insert("mixed".into(), r);
    }
    // 9. workbooks at the hostile-sheet caps (default limits).
    if z.wants("hostile") {
        results.insert("hostile".into(), hostile::run(dir, &cfg).await?);
    }
    // 10. many tenants side by side (issue 21).
    if z.wants("tenants") {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        results.insert("tenants".into(), tenants::run(dir, quick).await?);
    }

    let results = Value::Object(results);
    let out_dir = repo().join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    print!("{}", render(&z, &results));
    Ok(())
}

/// One throttled sync: a fresh simulator (`opts`) seeded with `users` users, a sheet
/// renaming all of them, the `sync` child phase, then the simulator's request log.
async fn run_sync(dir: &Path, users: usize, opts: SimOptions, limit: u32) -> anyhow::Result<Value> {
    let rename_all = Shape {
        absent_every: 0,
        renamed_every: 1,
    };
    let seed = dir.join(format!("seed-sync-{users}.json"));
    let sheet = dir.join(format!("sync-{users}.csv"));
    write_seed(&seed, users, rename_all)?;
    write_csv(&sheet, users, rename_all)?;
    let db = dir.join(format!("sync-{users}-{}.db", opts.seed_rng));
    let (sim, _) = Sim::start(&seed, opts).await?;
    let mut a = sim.args();
    a.splice(
        0..0,
        [
            s("sync"),
            sheet.display().to_string(),
            db.display().to_string(),
        ],
    );
    // A run that stops (the code before the adaptive gate aborted the mixed case) is a
    // figure too, not a bench failure.
    let t0 = Instant::now();
    let mut r = match child(&a).await {
        Ok(r) => r,
        Err(e) => json!({ "aborted": format!("{e:#}"), "wall_s": t0.elapsed().as_secs_f64() }),
    };
    let log = sim.requests().await?;
    r["users"] = json!(users);
    r["log"] = throttle_figures(&log, limit);
    sim.running.shutdown().await;
    Ok(r)
}

/// From the request log: requests, 429s, answered (non-429) requests, the time the
/// tenant needed at its limit for them, and sends that arrived before a Retry-After ended
/// (a request arriving within 150 ms of a 429 was under way before the client heard of
/// it: the simulator logs arrival, decides after its latency).
fn throttle_figures(log: &[Value], limit: u32) -> Value {
    const GRACE_MS: i64 = 150;
    // (arrival ms, status, Retry-After, index in the log)
    let entries: Vec<(i64, Option<u16>, Option<u64>, usize)> = log
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let t = chrono::DateTime::parse_from_rfc3339(e["time"].as_str()?).ok()?;
            let status = e["status"].as_u64().and_then(|s| u16::try_from(s).ok());
            Some((t.timestamp_millis(), status, e["retry_after"].as_u64(), i))
        })
        .collect();
    let throttled: Vec<(i64, u64)> = entries
        .iter()
        .filter(|(_, st, _, _)| *st == Some(429))
        .map(|(t, _, ra, _)| (*t, ra.unwrap_or(0)))
        .collect();
    let mut times: Vec<(i64, usize)> = entries.iter().map(|(t, _, _, i)| (*t, *i)).collect();
    times.sort_unstable();
    let mut early = 0usize;
    let mut examples = Vec::new();
    for (t, ra) in &throttled {
        let (from, until) = (t + GRACE_MS, t + *ra as i64 * 1000);
        let lo = times.partition_point(|x| x.0 <= from);
        let hi = times.partition_point(|x| x.0 < until);
        early += hi.saturating_sub(lo);
        for &(at, i) in times.get(lo..hi).unwrap_or_default().iter().take(2) {
            if examples.len() < 6 {
                examples.push(format!(
                    "429 at {t} (Retry-After {ra} s), then {} {} at +{} ms",
                    log[i]["method"].as_str().unwrap_or("?"),
                    log[i]["path"].as_str().unwrap_or("?"),
                    at - t
                ));
            }
        }
    }
    let answered = entries
        .iter()
        .filter(|(_, st, _, _)| st.is_some_and(|s| s != 429))
        .count();
    json!({
        "requests": entries.len(),
        "throttled": throttled.len(),
        "answered": answered,
        "throttled_share": throttled.len() as f64 / entries.len().max(1) as f64,
        "ideal_s": answered as f64 / f64::from(limit.max(1)),
        "early_sends": early,
        "early_examples": examples,
    })
}

// ---------------------------------------------------------------- report

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn mib(v: &Value) -> String {
    format!("{:.1} MiB", f(v) / 1024.0)
}

fn render(z: &Sizes, r: &Value) -> String {
    let mut o = String::new();
    o += "| figure | value |\n| --- | --- |\n";
    for v in r["validate"].as_array().into_iter().flatten() {
        let res = &v["result"];
        o += &format!(
            "| validate {} {} rows ({:.1} MB) | {:.0} rows/s ({:.2} s), peak RSS {}, exit {}; the reader alone: {:.2} s, peak RSS {} |\n",
            v["format"].as_str().unwrap_or("?"),
            v["rows"],
            f(&v["bytes"]) / 1e6,
            f(&v["rows"]) / f(&res["seconds"]),
            f(&res["seconds"]),
            mib(&res["peak_kib"]),
            res["exit"],
            f(&v["read_only"]["seconds"]),
            mib(&v["read_only"]["peak_kib"]),
        );
    }
    let sp = &r["snapshot_plan"];
    if !sp.is_null() {
        o += &format!(
        "| read+validate sheet, {} rows | {:.2} s |\n| snapshot of {} tenant users | {:.2} s, {} requests |\n| plan (diff) | {:.2} s: {} users, {} operations, {} unchanged |\n| peak RSS of the whole client job (sheet + snapshot + plan) | {} |\n| (simulator seed load, not teamsync) | {:.2} s |\n",
        z.rows,
        f(&sp["validate_s"]),
        sp["tenant_users"],
        f(&sp["snapshot_s"]),
        sp["snapshot_requests"],
        f(&sp["plan_s"]),
        sp["plan_users"],
        sp["operations"],
        sp["unchanged"],
        mib(&sp["peak_kib"]),
        f(&sp["sim_seed_load_s"]),
    );
    }
    let h = &r["history_capacity"];
    if !h.is_null() {
        o += &format!(
        "| history writer capacity ({} items: create + running + finished) | {:.0} item writes/s |\n",
        h["items"],
        f(&h["writes_per_s"])
    );
    }
    let a = &r["apply"];
    if !a.is_null() {
        o += &format!(
        "| apply {} users at {} req/s, {} ms latency, concurrency {}, burst {} | {} requests in {:.1} s = {:.1} req/s = **{:.3} of the configured rate**; steady write rate {:.1}/s ({:.3}); job {} |\n| apply peak RSS | {} |\n| apply history writes | {:.0} item writes/s achieved ({} writes) |\n",
        a["users"],
        z.rate,
        z.latency_ms,
        z.concurrency,
        z.burst,
        a["requests"],
        f(&a["apply_s"]),
        f(&a["request_rate"]),
        f(&a["request_rate"]) / z.rate,
        f(&a["steady_write_rate"]),
        f(&a["steady_write_rate"]) / z.rate,
        a["status"],
        mib(&a["peak_kib"]),
        f(&a["history_writes_per_s"]),
        a["history_writes"],
    );
    }
    let sq = &r["speedup"]["sequential"];
    for name in ["configured", "unlimited"] {
        let x = &r["speedup"][name];
        if x.is_null() {
            continue;
        }
        o += &format!(
            "| speed-up on {} users, {} (rate {}, concurrency {}) vs one at a time ({:.1} s) | {:.1} s = **{:.1}x** |\n",
            x["users"],
            name,
            x["rate"],
            x["concurrency"],
            f(&sq["apply_s"]),
            f(&x["apply_s"]),
            f(&sq["apply_s"]) / f(&x["apply_s"])
        );
    }
    let mixed = [r["mixed"].clone()];
    let list = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    let (plain, header) = (list("throttle"), list("throttle_header"));
    let runs = plain
        .iter()
        .map(|x| ("throttled", x))
        .chain(header.iter().map(|x| ("throttled, near-limit header", x)))
        .chain(
            mixed
                .iter()
                .filter(|x| !x.is_null())
                .map(|x| ("mixed faults", x)),
        );
    for (kind, x) in runs {
        let l = &x["log"];
        let outcome = match x["aborted"].as_str() {
            Some(e) => format!("**stopped**: {}", e.chars().take(160).collect::<String>()),
            None => format!(
                "{}, {} failed, {} pending",
                x["status"].as_str().unwrap_or("?"),
                x["errors"],
                x["pending"]
            ),
        };
        o += &format!(
            "| sync, {} users, {kind} ({} req/s, burst {}, {} ms; client 200 req/s, concurrency 16) | {outcome}; {} requests, {} answered 429 ({:.1} %); {:.1} s vs {:.1} s at the limit = **{:.2}×**; {} sends before a Retry-After ended; settled at {} req/s |\n",
            x["users"],
            z.throttle_rate,
            z.throttle_burst,
            z.throttle_latency_ms,
            l["requests"],
            l["throttled"],
            f(&l["throttled_share"]) * 100.0,
            f(&x["wall_s"]),
            f(&l["ideal_s"]),
            f(&x["wall_s"]) / f(&l["ideal_s"]),
            l["early_sends"],
            x["settled_rate"],
        );
    }
    let sm = &r["sim"];
    if !sm.is_null() {
        o += &format!(
        "| simulator, loopback, no latency ({} clients, single-user GETs) | {:.0} req/s ({} ok, {} failed) |\n",
        sm["clients"],
        f(&sm["req_per_s"]),
        sm["ok"],
        sm["failed"]
    );
    }
    o += &hostile::render(&r["hostile"]);
    o += &tenants::render(&r["tenants"]);
    o
}

// ---------------------------------------------------------------- child phases

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn run_phase(args: &[String]) -> Value {
    let r = match args.first().map(String::as_str) {
        Some("validate") => phase_validate(&args[1..]),
        Some("read") => phase_read(&args[1..]),
        Some("cli") => phase_cli(&args[1..]),
        Some(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(async_phase(args))),
        None => Err(anyhow::anyhow!("no phase")),
    };
    match r {
        Ok(mut v) => {
            v["peak_kib"] = json!(peak_kib());
            v
        }
        Err(e) => json!({ "error": format!("{e:#}") }),
    }
}

async fn async_phase(args: &[String]) -> anyhow::Result<Value> {
    match args[0].as_str() {
        "plan" => phase_plan(&args[1..]).await,
        "apply" => phase_apply(&args[1..]).await,
        "history" => phase_history(&args[1..]).await,
        "simload" => phase_simload(&args[1..]).await,
        "sync" => phase_sync(&args[1..]).await,
        other => anyhow::bail!("unknown phase {other}"),
    }
}

/// `validate SHEET CONFIG`: the CLI command, in this process.
fn phase_validate(args: &[String]) -> anyhow::Result<Value> {
    use clap::Parser;
    let [sheet, cfg] = args else {
        anyhow::bail!("validate SHEET CONFIG")
    };
    let cli = teamsync::cli::Cli::try_parse_from([
        "teamsync", "--config", cfg, "--output", "json", "-q", "validate", sheet,
    ])?;
    let t0 = Instant::now();
    let code = match teamsync::commands::run(cli) {
        Ok(c) => c,
        Err(e) => e.exit(),
    }
    .code();
    Ok(json!({ "seconds": t0.elapsed().as_secs_f64(), "exit": code }))
}

/// `cli ARGS…`: the CLI itself (what the binary's `main` runs), timed, with the peak
/// number of open file descriptors sampled every 5 ms.
fn phase_cli(args: &[String]) -> anyhow::Result<Value> {
    use clap::Parser;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let cli = teamsync::cli::Cli::try_parse_from(
        std::iter::once("teamsync".to_string()).chain(args.iter().cloned()),
    )?;
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
                    peak.fetch_max(d.count(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let t0 = Instant::now();
    let code = match teamsync::commands::run(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", teamsync::commands::render_error(&e));
            e.exit()
        }
    }
    .code();
    let seconds = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    Ok(json!({ "seconds": seconds, "exit": code, "peak_fds": peak.load(Ordering::Relaxed) }))
}

/// `read SHEET`: the bare reader (header + rows), nothing kept, to show its memory.
fn phase_read(args: &[String]) -> anyhow::Result<Value> {
    let path = PathBuf::from(&args[0]);
    let t0 = Instant::now();
    let opts = teamsync::sheet::ReadOptions {
        sheet_name: None,
        limits: teamsync::sheet::Limits::default(),
    };
    let mut rows = 0u64;
    let reader = teamsync::sheet::SheetReader::open(&path, &opts)?;
    // Opening a workbook runs the pre-pass over it (issue 20) and reads the header.
    let open_seconds = t0.elapsed().as_secs_f64();
    for r in reader {
        r?;
        rows += 1;
    }
    Ok(json!({ "rows": rows, "seconds": t0.elapsed().as_secs_f64(), "open_seconds": open_seconds }))
}

/// `--url U --draas D --uuid T --sub N` (after the positional arguments).
fn connector(args: &[String], rate: f64, burst: u32) -> anyhow::Result<Arc<FusionConnector>> {
    let get = |k: &str| -> anyhow::Result<String> {
        let i = args
            .iter()
            .position(|a| a == k)
            .ok_or_else(|| anyhow::anyhow!("missing {k}"))?;
        args.get(i + 1)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("missing value of {k}"))
    };
    let mut s = FusionSettings::new(
        get("--url")?,
        get("--draas")?,
        get("--uuid")?,
        get("--sub")?.parse()?,
        TokenSource::Static(TOKEN.into()),
    );
    s.http.retry = RetryPolicy::default();
    let gate = Arc::new(Gate::new(rate, burst));
    Ok(Arc::new(FusionConnector::new(s, gate)?))
}

struct Planned {
    plan: plan::Plan,
    validate_s: f64,
    snapshot_s: f64,
    plan_s: f64,
    snapshot_requests: u64,
    tenant_users: usize,
}

async fn sheet_to_plan(sheet: &Path, conn: &dyn Connector) -> anyhow::Result<Planned> {
    let t0 = Instant::now();
    let templates = TemplateSet::load_dir(&repo().join("templates"))?;
    let v = validate_files(&[sheet.to_path_buf()], &SheetOptions::default(), &templates);
    anyhow::ensure!(v.errors.is_empty(), "sheet errors: {:?}", &v.errors[..1]);
    let validate_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let snap = conn
        .snapshot(&plan::detail_upns(&v.specs, &conn.profile()), false)
        .await?;
    let snapshot_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let input = PlanInput {
        tenant: "bench",
        mode: plan::Mode::Upsert,
        kind: JobKind::MsUsers,
        sources: vec![sheet.display().to_string()],
        source_sha256: String::new(),
        specs: &v.specs,
        snapshot: &snap,
        profile: conn.profile(),
        allow_removals: None,
    };
    let p = plan::make_plan(input).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Planned {
        plan: p,
        validate_s,
        snapshot_s,
        plan_s: t2.elapsed().as_secs_f64(),
        snapshot_requests: snap.requests,
        tenant_users: snap.users.len(),
    })
}

async fn phase_plan(args: &[String]) -> anyhow::Result<Value> {
    let sheet = PathBuf::from(&args[0]);
    let conn = connector(args, 0.0, 1)?;
    let p = sheet_to_plan(&sheet, conn.as_ref()).await?;
    let sum = plan::summary(&p.plan);
    Ok(json!({
        "validate_s": p.validate_s,
        "snapshot_s": p.snapshot_s,
        "plan_s": p.plan_s,
        "snapshot_requests": p.snapshot_requests,
        "tenant_users": p.tenant_users,
        "plan_users": sum.users,
        "operations": sum.operations,
        "unchanged": sum.unchanged,
    }))
}

/// `apply SHEET DB RATE BURST CONCURRENCY --url …`: plan, then the executor as `sync` runs
/// it, minus the read-back (verify off: it would double the requests, at the same rate).
async fn phase_apply(args: &[String]) -> anyhow::Result<Value> {
    let sheet = PathBuf::from(&args[0]);
    let db = PathBuf::from(&args[1]);
    let rate: f64 = args[2].parse()?;
    let burst: u32 = args[3].parse()?;
    let concurrency: usize = args[4].parse()?;
    let conn = connector(args, rate, burst)?;
    let p = sheet_to_plan(&sheet, conn.as_ref()).await?;
    let history = History::open(&db)?;
    let opts = ApplyOptions {
        concurrency,
        max_attempts: 6,
        retry_budget: 1000,
        max_consecutive_failures: 20,
        request_timeout: Duration::from_secs(30),
        replication_window: Duration::from_secs(300),
        verify: false,
        bulk_size: Some(0),
        limit: None,
        only: Vec::new(),
        title: "bench".into(),
        progress: false,
    };
    let o = apply::execute(&p.plan, conn, &history, JobTarget::New, &opts).await?;
    let secs = o.elapsed.as_secs_f64();
    // create_job writes every item once, then each changed item is written running and
    // finished.
    let changed = o.total - o.unchanged;
    let writes = o.total + 2 * changed;
    Ok(json!({
        "users": o.total,
        "rate": rate,
        "concurrency": concurrency,
        "status": o.status.as_str(),
        "success": o.success,
        "errors": o.errors,
        "requests": o.requests,
        "retries": o.retries,
        "apply_s": secs,
        "request_rate": o.requests as f64 / secs,
        "history_writes": writes,
        "history_writes_per_s": writes as f64 / secs,
    }))
}

/// `sync SHEET DB --url …`: what `teamsync sync` does, from a tenant table with the
/// issue's client settings (ceiling 200 req/s, 16 users at once) and every other key at
/// its default: the tenant opened by `connect::Tenant::open`, snapshot, plan, apply with
/// read-back. Times the whole of it.
async fn phase_sync(args: &[String]) -> anyhow::Result<Value> {
    let sheet = PathBuf::from(&args[0]);
    let db = PathBuf::from(&args[1]);
    let get = |k: &str| -> anyhow::Result<String> {
        let i = args
            .iter()
            .position(|a| a == k)
            .ok_or_else(|| anyhow::anyhow!("missing {k}"))?;
        args.get(i + 1)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("missing value of {k}"))
    };
    let table = format!(
        "backend = \"fusion\"\nbase_url = {:?}\ndraas_instance = {:?}\ntenant_uuid = {:?}\n\
         subscription_id = {}\ntoken_command = \"echo {TOKEN}\"\n\
         rate_per_second = 200\nconcurrency = 16\n",
        get("--url")?,
        get("--draas")?,
        get("--uuid")?,
        get("--sub")?
    );
    let cfg: teamsync::config::TenantConfig = toml::from_str(&table)?;
    let t0 = Instant::now();
    let tenant = teamsync::connect::Tenant::open("bench", &cfg, None).await?;
    let planned = sheet_to_plan(&sheet, tenant.connector.as_ref()).await?;
    let history = History::open(&db)?;
    let opts = ApplyOptions {
        verify: true,
        title: "throttle bench".into(),
        // Measured before bulk requests existed; kept per-user to stay comparable.
        bulk_size: Some(0),
        ..ApplyOptions::from_tenant(&cfg)
    };
    let o = apply::execute(
        &planned.plan,
        tenant.connector.clone(),
        &history,
        JobTarget::New,
        &opts,
    )
    .await?;
    let wall = t0.elapsed().as_secs_f64();
    let job = history
        .get_job(&o.bulk_id.to_string())?
        .map_or(Value::Null, |j| j.to_fusion_json());
    tenant.close().await;
    Ok(json!({
        "wall_s": wall,
        "snapshot_s": planned.snapshot_s,
        "status": o.status.as_str(),
        "total": o.total,
        "success": o.success,
        "errors": o.errors,
        "pending": o.total - o.success - o.errors,
        "requests": o.requests,
        "retries": o.retries,
        "throttled_count": job["throttled_count"],
        "settled_rate": job["settled_rate"],
    }))
}

/// `history DB N`: the writer's capacity, without a tenant: one job of N items, then every
/// item marked running and finished by N concurrent tasks.
async fn phase_history(args: &[String]) -> anyhow::Result<Value> {
    let db = PathBuf::from(&args[0]);
    let n: usize = args[1].parse()?;
    let h = History::open(&db)?;
    let items: Vec<NewItem> = (0..n)
        .map(|i| NewItem {
            upn: upn(i),
            data: json!({"upn": upn(i), "displayName": display(i, true)}),
            changes: json!([{"field": "displayName", "from": display(i, false), "to": display(i, true)}]),
            before: json!({"displayName": display(i, false)}),
            plan: None,
            user_id: Some(format!("id-{i}")),
            status: ItemStatus::Pending,
        })
        .collect();
    let t0 = Instant::now();
    let (_bulk, _job, ids) = h
        .create_job(
            NewJob {
                kind: JobKind::MsUsers,
                title: "history bench".into(),
                tenant: "bench".into(),
                source: "generated".into(),
                source_sha256: String::new(),
            },
            items,
        )
        .await?;
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let h = h.clone();
        set.spawn(async move {
            h.item_running(id).await?;
            h.item_finished(
                id,
                ItemResult {
                    status: ItemStatus::Success,
                    error_code: None,
                    error_reason: None,
                    attempts: 1,
                    user_id: None,
                    applied: vec!["set_vrp".into()],
                    note: None,
                },
            )
            .await
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(json!({ "items": n, "seconds": secs, "writes_per_s": (3 * n) as f64 / secs }))
}

/// `simload SECONDS CLIENTS --url …`: single-user GETs as fast as CLIENTS tasks can send.
async fn phase_simload(args: &[String]) -> anyhow::Result<Value> {
    let secs: u64 = args[0].parse()?;
    let clients: usize = args[1].parse()?;
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_default()
    };
    let prefix = format!(
        "{}/api/v01/draas/{}/tenants/{}/subscriptions/{}/msteams",
        get("--url"),
        get("--draas"),
        get("--uuid"),
        get("--sub")
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut set = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, prefix) = (client.clone(), prefix.clone());
        set.spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut i = c;
            while Instant::now() < deadline {
                let url = format!("{prefix}/user/00000000-0000-4000-8000-{:012}", i % 100);
                i += clients;
                match client.get(&url).bearer_auth(TOKEN).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok += 1;
                    }
                    _ => failed += 1,
                }
            }
            (ok, failed)
        });
    }
    let t0 = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    while let Some(r) = set.join_next().await {
        let (o, f) = r?;
        ok += o;
        failed += f;
    }
    let el = t0.elapsed().as_secs_f64();
    Ok(
        json!({ "clients": clients, "ok": ok, "failed": failed, "seconds": el, "req_per_s": ok as f64 / el }),
    )
}
