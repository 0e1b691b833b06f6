//! `cargo bench --bench cores`: `teamsync validate` of a 100,000-row CSV on one core and on
//! every core, for BENCHMARKS.md's "validate on every core" (issue 16).
//!
//! The release binary, run as a user runs it, on two generated sheets: the shape
//! (`upn,displayName,number,country`, every number Belgian and written in full) and an HR
//! export (templates, seven countries, national and international forms, a department
//! and a location, a few bad rows). One core is `taskset -c 0` (the process's affinity
//! mask, which `teamsync` reads to size its threads); every core is the same command
//! unpinned. Each figure is the median of `BENCH_CORES_RUNS` runs (default 7), the modes
//! interleaved so a busy neighbour slows all of them. Rows: `BENCH_CORES_ROWS` (100000).
//! The ceiling line is what the machine gives this work at that moment: two independent
//! processes, each validating half the sheet pinned to its own CPU.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sheet: every row a valid Belgian number in E.164.
fn plain(path: &Path, rows: usize) -> anyhow::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "upn,displayName,number,country")?;
    for i in 0..rows {
        writeln!(
            w,
            "user{i:06}@contoso.com,User {i},+322{:07},BE",
            5_000_000 + i
        )?;
    }
    Ok(())
}

/// An HR export: templates from `templates/`, numbers of seven countries in the forms
/// people type (national with spaces, international with dashes), one row in 500 with a
/// number that does not parse.
fn hr(path: &Path, rows: usize) -> anyhow::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        w,
        "userPrincipalName,displayName,phoneNumber,usageLocation,template,department,city"
    )?;
    for i in 0..rows {
        let n = i % 100_000;
        let (country, number) = match i % 7 {
            0 => (
                "BE",
                format!("02 5{:02} {:02} {:02}", n / 10_000, n / 100 % 100, n % 100),
            ),
            1 => ("NL", format!("+31-20-{:07}", 5_000_000 + n)),
            2 => (
                "FR",
                format!(
                    "01 4{} {:02} {:02} {:02}",
                    n / 1_000_000,
                    n / 10_000 % 100,
                    n / 100 % 100,
                    n % 100
                ),
            ),
            3 => ("DE", format!("+49 30 {:08}", 20_000_000 + n)),
            4 => (
                "GB",
                format!("020 7{:03} {:04}", n / 10_000 % 1000, n % 10_000),
            ),
            5 => (
                "US",
                format!("+1 212-5{:02}-{:04}", n / 10_000 % 100, n % 10_000),
            ),
            _ => ("IE", format!("+353 1 {:07}", 4_000_000 + n)),
        };
        let number = if i % 500 == 499 {
            "12ab".to_string()
        } else {
            number
        };
        let template = if country == "BE" { "be-office" } else { "" };
        writeln!(
            w,
            "user{i:06}@contoso.com,\"Doe, User {i}\",{number},{country},{template},Dept {},City {}",
            i % 40,
            i % 12
        )?;
    }
    Ok(())
}

/// One run of `teamsync validate sheet` (with `args`), pinned to CPU 0 or not: its wall
/// time.
fn run(bin: &Path, sheet: &Path, args: &[&str], pinned: bool) -> anyhow::Result<Duration> {
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("validate")
        .arg(sheet)
        .args(args)
        .current_dir(repo());
    let start = Instant::now();
    let out = cmd.output()?;
    let took = start.elapsed();
    // Exit 2 is a sheet with errors (the HR sheet has some): still a full validation.
    anyhow::ensure!(
        matches!(out.status.code(), Some(0 | 2)),
        "validate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// The machine's ceiling for this work: two independent runs at once, each on half the
/// sheet and pinned to its own CPU (no threads, nothing shared), timed together.
fn halves(bin: &Path, halves: &[PathBuf; 2], args: &[&str]) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let children = halves
        .iter()
        .enumerate()
        .map(|(cpu, sheet)| {
            Command::new("taskset")
                .arg("-c")
                .arg(cpu.to_string())
                .arg(bin)
                .arg("validate")
                .arg(sheet)
                .args(args)
                .current_dir(repo())
                .stdout(std::process::Stdio::null())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut c in children {
        let status = c.wait()?;
        anyhow::ensure!(matches!(status.code(), Some(0 | 2)), "validate failed");
    }
    Ok(start.elapsed())
}

/// The sheet's header and its rows split in two files.
fn split(sheet: &Path) -> anyhow::Result<[PathBuf; 2]> {
    let text = std::fs::read_to_string(sheet)?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let rows: Vec<&str> = lines.collect();
    let (a, b) = rows.split_at(rows.len() / 2);
    let out = [sheet.with_extension("a.csv"), sheet.with_extension("b.csv")];
    for (path, part) in out.iter().zip([a, b]) {
        std::fs::write(path, format!("{header}\n{}\n", part.join("\n")))?;
    }
    Ok(out)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let rows = env_usize("BENCH_CORES_ROWS", 100_000);
    let runs = env_usize("BENCH_CORES_RUNS", 7).max(1);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_teamsync"));
    if Command::new("taskset").arg("-V").output().is_err() {
        anyhow::bail!("`taskset` (util-linux) is needed to pin one run to one core");
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("validate on every core: {rows} rows, {runs} runs each, {cores} cores here");
    let dir = tempfile::tempdir()?;
    type Make = fn(&Path, usize) -> anyhow::Result<()>;
    // The HR export's department and city are not teamsync columns.
    let sheets: [(&str, Make, &[&str]); 2] = [
        ("issue sheet (BE, E.164)", plain, &[]),
        ("HR export", hr, &["--ignore-unknown-columns"]),
    ];
    for (name, make, args) in sheets {
        let sheet = dir
            .path()
            .join(format!("{}.csv", name.split(' ').next().unwrap_or("s")));
        make(&sheet, rows)?;
        // One untimed run each way: the file in the page cache, the binary loaded.
        run(&bin, &sheet, args, true)?;
        run(&bin, &sheet, args, false)?;
        let parts = split(&sheet)?;
        let (mut one, mut every, mut apart) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            one.push(run(&bin, &sheet, args, true)?);
            every.push(run(&bin, &sheet, args, false)?);
            if cores >= 2 {
                apart.push(halves(&bin, &parts, args)?);
            }
        }
        let (one, every) = (median(one), median(every));
        let rate = |d: Duration| rows as f64 / d.as_secs_f64();
        println!(
            "{name:<24} one core {:>6.3} s ({:>7.0} rows/s)   {cores} cores {:>6.3} s ({:>7.0} rows/s)   speed-up {:.2}x",
            one.as_secs_f64(),
            rate(one),
            every.as_secs_f64(),
            rate(every),
            one.as_secs_f64() / every.as_secs_f64()
        );
        if !apart.is_empty() {
            let apart = median(apart);
            println!(
                "{:<24} ceiling: two independent half-sheet runs, one per core, {:.3} s ({:.2}x)",
                "",
                apart.as_secs_f64(),
                one.as_secs_f64() / apart.as_secs_f64()
            );
        }
    }
    Ok(())
}
