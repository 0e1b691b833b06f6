//! `BENCH_ONLY=tenants`: many tenants in one `sync --all` (issue 21). Each tenant is a
//! Fusion simulator of its own on a loopback port (started in the bench's parent process,
//! so the child's peak memory and descriptors are teamsync's alone), seeded with
//! `BENCH_TENANT_USERS` (10) users that the shared sheet renames, and throttling at a rate
//! of its own: tenant `i` allows `5 + i mod 11` req/s (5 to 15) with a burst of 5, and its
//! table says so (`rate_per_second`), as an operator who knows the tenant's limit would.
//! `BENCH_TENANTS` (100) tenants are synced by the CLI's own command
//! (`teamsync -q sync --all --parallel-tenants P`, run in a child process like the
//! validate figures) for each `P` of `BENCH_PARALLEL` (1,4,16,100), every time against
//! fresh simulators. Reported: wall time, speed-up against `P = 1` (one tenant at a
//! time), the exit code, jobs recorded, peak RSS (`VmHWM`) and peak open descriptors of
//! the child (`/proc/self/fd`, sampled every 5 ms).

use super::{child, s, write_csv, write_seed, Shape, Sim, TOKEN};
use serde_json::{json, Value};
use std::path::Path;
use teamsync_sim::SimOptions;

/// The environment variable the tenants' `token_env` names.
const TOKEN_ENV: &str = "BENCH_TENANT_TOKEN";

fn rate_of(i: usize) -> u32 {
    5 + (i % 11) as u32
}

pub(crate) async fn run(dir: &Path, quick: bool) -> anyhow::Result<Value> {
    let tenants: usize = super::env_num("BENCH_TENANTS", if quick { 10 } else { 100 });
    let users: usize = super::env_num("BENCH_TENANT_USERS", 10);
    let parallel: Vec<usize> = std::env::var("BENCH_PARALLEL").ok().map_or_else(
        || {
            if quick {
                vec![1, 10]
            } else {
                vec![1, 4, 16, 100]
            }
        },
        |v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
    );
    let rename_all = Shape {
        absent_every: 0,
        renamed_every: 1,
    };
    let seed = dir.join("seed-tenants.json");
    let sheet = dir.join("tenant-sheet.csv");
    write_seed(&seed, users, rename_all)?;
    write_csv(&sheet, users, rename_all)?;
    // The child inherits it; the config names the variable, never the token.
    std::env::set_var(TOKEN_ENV, TOKEN);
    let mut runs = Vec::new();
    for &p in &parallel {
        eprintln!("tenants: {tenants} tenants of {users} users, --parallel-tenants {p}…");
        let mut sims = Vec::with_capacity(tenants);
        for i in 0..tenants {
            let opts = SimOptions {
                token: Some(TOKEN.into()),
                rate_limit: Some(rate_of(i)),
                burst: Some(5),
                ..SimOptions::default()
            };
            sims.push(Sim::start(&seed, opts).await?.0);
        }
        let run_dir = dir.join(format!("tenants-p{p}"));
        std::fs::create_dir_all(&run_dir)?;
        let cfg = run_dir.join("teamsync.toml");
        let mut text = format!(
            "db = {:?}\ntemplates = {:?}\nlock_dir = {:?}\n",
            run_dir.join("history.db").display().to_string(),
            super::repo().join("templates").display().to_string(),
            run_dir.join("locks").display().to_string(),
        );
        for (i, sim) in sims.iter().enumerate() {
            let t = &sim.running.tenant;
            text.push_str(&format!(
                "\n[tenants.t{i:04}]\nbackend = \"fusion\"\nbase_url = {:?}\ndraas_instance = {:?}\n\
                 tenant_uuid = {:?}\nsubscription_id = {}\ntoken_env = \"{TOKEN_ENV}\"\n\
                 rate_per_second = {}\nsheet = {:?}\n",
                sim.running.base_url(),
                t.draas_instance,
                t.tenant_uuid,
                t.subscription_id,
                rate_of(i),
                sheet.display().to_string(),
            ));
        }
        std::fs::write(&cfg, text)?;
        let mut r = child(&[
            s("cli"),
            s("--config"),
            cfg.display().to_string(),
            s("-q"),
            s("sync"),
            s("--all"),
            s("--parallel-tenants"),
            p.to_string(),
        ])
        .await?;
        let db = rusqlite::Connection::open(run_dir.join("history.db"))?;
        let (jobs, ok): (i64, i64) = db.query_row(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success') FROM bulk_jobs",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let throttled: i64 = db.query_row(
            "SELECT COALESCE(SUM(throttled_count), 0) FROM bulk_jobs",
            [],
            |row| row.get(0),
        )?;
        r["parallel"] = json!(p);
        r["jobs"] = json!(jobs);
        r["jobs_success"] = json!(ok);
        r["throttled"] = json!(throttled);
        for sim in sims {
            sim.running.shutdown().await;
        }
        runs.push(r);
    }
    let base = runs
        .iter()
        .find(|r| r["parallel"] == 1)
        .and_then(|r| r["seconds"].as_f64());
    for r in &mut runs {
        if let (Some(b), Some(t)) = (base, r["seconds"].as_f64()) {
            r["speedup"] = json!(b / t.max(1e-9));
        }
    }
    let rate_sum: u32 = (0..tenants).map(rate_of).sum();
    Ok(json!({
        "tenants": tenants,
        "users_per_tenant": users,
        "rates": "5 + i mod 11 req/s (5 to 15), burst 5",
        "rate_sum": rate_sum,
        "runs": runs,
    }))
}

/// The Markdown section of the results.
pub(crate) fn render(r: &Value) -> String {
    if r.is_null() {
        return String::new();
    }
    let mut o = format!(
        "\n## Many tenants (issue 21)\n\n{} tenants of {} users each (every user renamed: a write and its read-back), each throttling at {} (sum {} req/s), `teamsync -q sync --all --parallel-tenants P`:\n\n\
         | P | wall time | speed-up vs P = 1 | exit | jobs (success) | 429s | peak RSS | peak fds |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
        r["tenants"], r["users_per_tenant"], r["rates"].as_str().unwrap_or(""), r["rate_sum"]
    );
    for run in r["runs"].as_array().into_iter().flatten() {
        o += &format!(
            "| {} | {:.1} s | {:.1}× | {} | {} ({}) | {} | {:.0} MiB | {} |\n",
            run["parallel"],
            run["seconds"].as_f64().unwrap_or(0.0),
            run["speedup"].as_f64().unwrap_or(0.0),
            run["exit"],
            run["jobs"],
            run["jobs_success"],
            run["throttled"],
            run["peak_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            run["peak_fds"],
        );
    }
    o
}
