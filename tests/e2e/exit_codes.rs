//! Every row of the README's exit-code table, as a scheduler sees it: the real binary,
//! one story per row, plus the codes that used to be wrong (a missing `tenant_uuid`, an
//! unknown `sim_backend`, a missing `--out` folder) and closed pipes.

use crate::support::{sample, Run, Workspace};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// Runs teamsync with `config` instead of the workspace's.
fn with_config(
    ws: &Workspace,
    config: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("teamsync"));
    c.current_dir(ws.dir.path())
        .env_remove("TEAMSYNC_CONFIG")
        .env_remove("TEAMSYNC_DB")
        .arg("--config")
        .arg(config)
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run teamsync");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// 0: a sync that changes the tenant, then one with nothing to do.
#[test]
fn row_0_done_or_nothing_to_do() {
    let ws = Workspace::new();
    ws.run(&["sync", &sample("users.csv")]).code(0);
    let again = ws.run(&["sync", &sample("users.csv")]);
    again.code(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
}

/// 1: the job finished and some users failed (a number outside the inventory).
#[test]
fn row_1_some_items_failed() {
    let ws = Workspace::new();
    let sheet = ws.write(
        "people.csv",
        "upn,displayName,country,number,licenses\n\
         ok.person@contoso.onmicrosoft.com,Ok Person,BE,,\n\
         far.person@contoso.onmicrosoft.com,Far Person,BE,+3225409999,MCOEV\n",
    );
    let r = ws.run(&["sync", sheet.to_str().unwrap()]);
    r.code(1);
    assert!(r.stdout.contains("1 failed"), "{}", r.stdout);
}

/// 1: the operator at a terminal declines `apply`'s confirmation; nothing is recorded.
#[test]
fn row_1_apply_declined_at_the_prompt() {
    let ws = Workspace::new();
    let bin = assert_cmd::cargo::cargo_bin("teamsync");
    let cmdline = format!(
        "{} --config {} apply {}",
        bin.display(),
        ws.path("config/teamsync.toml").display(),
        sample("users.csv")
    );
    // `script` gives the command a terminal, as an operator's shell would.
    let mut child = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .current_dir(ws.dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1)");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    // Answer once the question is on the screen.
    let mut seen = String::new();
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    while !seen.contains("Apply? [y/N]") {
        buf.clear();
        let n = reader.read_until(b' ', &mut buf).unwrap();
        assert!(n > 0, "no prompt:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf));
    }
    stdin.write_all(b"n\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}{rest}");
    assert!(
        seen.contains("about "),
        "the prompt estimates the time: {seen}"
    );
    assert!(rest.contains("nothing was applied"), "{rest}");
    let jobs: i64 = ws
        .history()
        .query_row("SELECT COUNT(*) FROM bulk_jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jobs, 0, "a declined apply records nothing");
}

/// 2: invalid input, config or usage — nothing is sent.
#[test]
fn row_2_invalid_input_config_or_usage() {
    let ws = Workspace::new();
    let bad = ws.write("bad.csv", "upn,displayName\nnot-a-upn,X\n");
    ws.run(&["validate", bad.to_str().unwrap()]).code(2);
    ws.run(&["sync", bad.to_str().unwrap()]).code(2);
    // apply without a terminal and without --yes.
    ws.run(&["apply", &sample("users.csv")]).code(2);
    // A plan error: a license the tenant does not have.
    let unknown = ws.write(
        "unknown.csv",
        "upn,displayName,country,licenses\nnew.one@contoso.onmicrosoft.com,New One,BE,NOSUCHSKU\n",
    );
    let r = ws.run(&["plan", unknown.to_str().unwrap()]);
    r.code(2);
    assert!(r.stderr.contains("NOSUCHSKU"), "{}", r.stderr);
    // An unknown tenant.
    ws.run(&["plan", &sample("users.csv"), "--tenant", "nope"])
        .code(2);
}

/// 2, not 3: a Fusion tenant without `tenant_uuid` and an unknown `sim_backend` are
/// config errors.
#[test]
fn row_2_a_tenant_config_that_cannot_connect() {
    let ws = Workspace::new();
    let fusion = ws.write(
        "fusion.toml",
        "[tenants.f]\nbackend = \"fusion\"\nbase_url = \"https://fusion.example.net\"\n\
         draas_instance = \"d\"\nsubscription_id = 1\ntoken_env = \"NO_SUCH_TOKEN_VAR\"\n",
    );
    let r = with_config(&ws, &fusion, &["plan", &sample("users.csv")], &[]);
    r.code(2);
    assert!(r.stderr.contains("tenant_uuid"), "{}", r.stderr);
    let sim = ws.write(
        "sim.toml",
        &format!(
            "[tenants.s]\nbackend = \"sim\"\nsim_backend = \"nope\"\nseed = {:?}\n",
            sample("tenant.json")
        ),
    );
    let r = with_config(&ws, &sim, &["plan", &sample("users.csv")], &[]);
    r.code(2);
    assert!(r.stderr.contains("sim_backend"), "{}", r.stderr);
}

/// 2, not 1: an output folder that does not exist is a usage error, found before the
/// tenant is read, with the reason from the file system.
#[test]
fn row_2_an_output_path_that_cannot_be_written() {
    let ws = Workspace::new();
    let r = ws.run(&[
        "plan",
        &sample("users.csv"),
        "--out",
        "/missing/dir/plan.json",
    ]);
    r.code(2);
    assert!(
        r.stderr.contains("cannot write /missing/dir/plan.json"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    ws.run(&[
        "sync",
        &sample("users.csv"),
        "--report",
        "/missing/dir/r.html",
    ])
    .code(2);
    let jobs: i64 = ws
        .history()
        .query_row("SELECT COUNT(*) FROM bulk_jobs", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(jobs, 0, "refused before anything ran");
}

/// 3: the tenant cannot be read (nobody listens at its address).
#[test]
fn row_3_a_read_of_the_tenant_failed() {
    let ws = Workspace::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = ws.write(
        "down.toml",
        &format!(
            "db = \"history.db\"\nlock_dir = \"locks\"\ntemplates = {templates:?}\n[tenants.down]\nbackend = \"fusion\"\n\
             base_url = \"http://127.0.0.1:{port}\"\ndraas_instance = \"d\"\ntenant_uuid = \"t\"\n\
             subscription_id = 1\ntoken_env = \"DOWN_TOKEN\"\nmax_attempts = 1\nrequest_timeout_s = 2\n",
            templates = crate::support::repo().join("templates").display().to_string()
        ),
    );
    let r = with_config(
        &ws,
        &cfg,
        &["sync", &sample("users.csv")],
        &[("DOWN_TOKEN", "x")],
    );
    r.code(3);
    assert!(r.stderr.contains("status failed (read)"), "{}", r.stderr);
}

/// 3: another run holds the tenant's lock.
#[test]
fn row_3_another_run_holds_the_lock() {
    let ws = Workspace::with_tenant_extra("sim_latency_ms = 400");
    let mut first = ws.spawn(&["sync", &sample("users.csv")]);
    // Wait until the first run holds the lock (its lease row exists).
    let t0 = std::time::Instant::now();
    loop {
        let held: i64 = ws
            .history()
            .query_row(
                "SELECT COUNT(*) FROM job_locks WHERE tenant != ' write probe'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if held > 0 {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 30,
            "the first run never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = ws.run(&["sync", &sample("users.csv")]);
    let _ = first.kill();
    let _ = first.wait();
    second.code(3);
}

/// 4: `plan --detailed-exitcode` with changes pending; 0 once there are none.
#[test]
fn row_4_changes_pending() {
    let ws = Workspace::new();
    ws.run(&["plan", &sample("users.csv"), "--detailed-exitcode"])
        .code(4);
    ws.run(&["sync", &sample("users.csv")]).code(0);
    ws.run(&["plan", &sample("users.csv"), "--detailed-exitcode"])
        .code(0);
}

/// A reader that goes away never makes teamsync panic (101) or report a failure (1):
/// `plan … 2>&1 | head -1` and `jobs export … | head`.
#[test]
fn a_closed_pipe_ends_quietly() {
    let ws = Workspace::new();
    ws.run(&["sync", &sample("users.csv")]).code(0);
    let bin = assert_cmd::cargo::cargo_bin("teamsync");
    let cfg = ws.path("config/teamsync.toml");
    let sh = |pipeline: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "set -o pipefail; {pipeline}; echo \"codes ${{PIPESTATUS[*]}}\""
            ))
            .current_dir(ws.dir.path())
            .env("T", &bin)
            .env("CFG", &cfg)
            .env("SHEET", sample("users.csv"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Both streams into a pipe closed after one line; the warnings and the plan follow.
    let out = sh("\"$T\" --config \"$CFG\" plan \"$SHEET\" -v 2>&1 | head -1");
    assert!(out.contains("codes 0 0"), "{out}");
    let out = sh("\"$T\" --config \"$CFG\" jobs export 1 --format csv | head -1");
    assert!(out.contains("codes 0 0"), "{out}");
    let out = sh("\"$T\" --config \"$CFG\" jobs show 1 | head -2");
    assert!(out.contains("codes 0 0"), "{out}");

    // A closed stderr alone (stdout kept): the messages are lost, the command ends as it
    // would have.
    let mut child = Command::new(&bin)
        .current_dir(ws.dir.path())
        .args(["--config"])
        .arg(&cfg)
        .args(["plan", &sample("users.csv"), "--out", "p.json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(ws.path("p.json").exists());
}
