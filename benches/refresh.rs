//! `cargo bench --bench refresh`: the single-user reads of a second night with
//! `--refresh incremental`, for BENCHMARKS.md's "Fewest requests (issue 16)".
//!
//! The real binary syncs a Fusion tenant (the simulator over HTTP, counted from its request
//! log) whose sheet gives every user a VRP, so a full snapshot reads every user: night 1 is
//! a full `sync` (which keeps the reads), night 2 changes 1 % of the rows' VRP and runs
//! `sync --refresh incremental`, then a plan confirms nothing is left. Sizes:
//! `BENCH_REFRESH_USERS` (3000), `BENCH_REFRESH_CHANGED_PERCENT` (1).

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use teamsync_sim::common::conn::Background;
use teamsync_sim::fusion::FusionSim;
use teamsync_sim::SimOptions;

mod fusion_seed;
use fusion_seed::{number, seed, upn};

const TOKEN: &str = "bench-refresh";
const TOKEN_VAR: &str = "BENCH_REFRESH_TOKEN";

fn sheet(path: &Path, users: usize, every: Option<usize>) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(["upn", "displayName", "number", "country", "licenses", "vrp"])?;
    for i in 0..users {
        let vrp = match every {
            Some(n) if i % n == 0 => "International",
            _ => "BE-National",
        };
        w.write_record([
            upn(i),
            format!("User {i}"),
            number(i),
            "BE".into(),
            "STANDARDPACK;MCOEV".into(),
            vrp.into(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

struct Sim {
    server: Background,
}

impl Sim {
    async fn log(&self) -> anyhow::Result<Vec<Value>> {
        let log: Value = reqwest::get(format!("{}/_sim/requests", self.server.base_url()))
            .await?
            .json()
            .await?;
        Ok(log["requests"].as_array().cloned().unwrap_or_default())
    }
    async fn clear(&self) -> anyhow::Result<()> {
        reqwest::Client::new()
            .delete(format!("{}/_sim/requests", self.server.base_url()))
            .send()
            .await?;
        Ok(())
    }
    /// (single-user GETs, all requests) since the last clear.
    async fn counts(&self) -> anyhow::Result<(usize, usize)> {
        let log = self.log().await?;
        let single = log
            .iter()
            .filter(|e| e["method"] == "GET")
            .filter(|e| e["path"].as_str().is_some_and(|p| p.contains("/user/")))
            .count();
        Ok((single, log.len()))
    }
}

fn teamsync(dir: &Path, args: &[&str]) -> anyhow::Result<(i32, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_teamsync"))
        .current_dir(dir)
        .env(TOKEN_VAR, TOKEN)
        .env_remove("TEAMSYNC_CONFIG")
        .env_remove("TEAMSYNC_DB")
        .arg("--config")
        .arg(dir.join("teamsync.toml"))
        .args(args)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

fn env(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users = env("BENCH_REFRESH_USERS", 3000);
    let percent = env("BENCH_REFRESH_CHANGED_PERCENT", 1).clamp(1, 100);
    let dir = tempfile::tempdir()?;
    let seed_path = dir.path().join("seed.json");
    seed(&seed_path, users, true, Some("BE-National"))?;
    let sim = FusionSim::open(
        None,
        Some(&seed_path),
        SimOptions {
            token: Some(TOKEN.into()),
            ..SimOptions::default()
        },
    )?;
    let t = sim.tenant_path();
    let sim = Sim {
        server: Background::spawn(sim.router()).await?,
    };
    std::fs::create_dir_all(dir.path().join("templates"))?;
    std::fs::write(
        dir.path().join("teamsync.toml"),
        format!(
            "db = \"history.db\"\ndefault_tenant = \"t\"\n\n[tenants.t]\nbackend = \"fusion\"\n\
             base_url = {:?}\ndraas_instance = {:?}\ntenant_uuid = {:?}\nsubscription_id = {}\n\
             token_env = \"{TOKEN_VAR}\"\nrate_per_second = 0\nrequest_timeout_s = 60\n",
            sim.server.base_url(),
            t.draas_instance,
            t.tenant_uuid,
            t.subscription_id
        ),
    )?;
    let sheet_path = dir.path().join("users.csv");
    sheet(&sheet_path, users, None)?;
    let (code, out) = teamsync(dir.path(), &["-q", "sync", "users.csv"])?;
    anyhow::ensure!(code == 0, "night 1: exit {code}: {out}");
    let (night1, _) = sim.counts().await?;

    sheet(&sheet_path, users, Some(100 / percent))?;
    sim.clear().await?;
    let (code, out) = teamsync(
        dir.path(),
        &["-q", "sync", "users.csv", "--refresh", "incremental"],
    )?;
    anyhow::ensure!(code == 0, "night 2: exit {code}: {out}");
    let (night2, all2) = sim.counts().await?;
    let (code, out) = teamsync(
        dir.path(),
        &[
            "--output",
            "json",
            "plan",
            "users.csv",
            "--refresh",
            "incremental",
            "--detailed-exitcode",
        ],
    )?;
    anyhow::ensure!(code == 0, "night 2 left changes (exit {code}): {out}");
    sim.server.shutdown().await;
    let changed = users.div_ceil(100 / percent);
    #[allow(
        clippy::cast_precision_loss,
        reason = "request counts are far below 2^52"
    )]
    let share = night2 as f64 / users as f64 * 100.0;
    println!("| users | changed rows | night 1 (full) single GETs | night 2 (incremental) single GETs | of users | night 2 requests in all |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!("| {users} | {changed} | {night1} | {night2} | {share:.1} % | {all2} |");
    Ok(())
}
