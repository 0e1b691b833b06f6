//! The people who run teamsync nightly and review it in the morning: a quiet cron line,
//! a webhook when a night fails, a metrics file, removals spelled out, a history whose job
//! ids stay put, and a CLI that completes itself.

use crate::support::{sample, Workspace};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// A webhook receiver on loopback: answers 200 to every POST and hands over its body.
fn webhook_server() -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/webhook/secret-path-token",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

fn received(rx: &mpsc::Receiver<serde_json::Value>) -> serde_json::Value {
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the webhook received the run's summary")
}

/// Cron appends stdout and stderr to one log: a quiet nightly sync adds one line, with
/// the time, the job, the counts, the exit code and the report.
#[test]
fn a_quiet_nightly_sync_logs_one_line() {
    let ws = Workspace::new();
    let r = ws.run(&[
        "-q",
        "sync",
        &sample("users.csv"),
        "--report",
        "nightly.html",
    ]);
    r.code(0);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert_eq!(r.stderr, "", "nothing else in the log");
    let line = r.stdout.trim();
    assert!(line.contains("job 1 ("), "{line}");
    assert!(line.contains("sync users.csv on demo: success"), "{line}");
    assert!(
        line.contains(" created") && line.contains(" updated"),
        "{line}"
    );
    assert!(line.contains("exit 0 (done)"), "{line}");
    assert!(line.contains("report: nightly.html"), "{line}");
    // Not a terminal: the line starts with the time.
    assert!(
        chrono::DateTime::parse_from_rfc3339(line.split(' ').next().unwrap()).is_ok(),
        "{line}"
    );
    // The night after: still one line, nothing changed.
    let again = ws.run(&["-q", "sync", &sample("users.csv")]);
    again.code(0);
    assert_eq!(again.stdout.lines().count(), 1);
    assert!(again.stdout.contains("unchanged"), "{}", again.stdout);

    // Log shippers get one JSON object per log line.
    let r = ws.run(&["--log-format", "json", "-v", "plan", &sample("users.csv")]);
    r.code(0);
    let logs: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!logs.is_empty());
    assert!(logs
        .iter()
        .all(|l| l["timestamp"].is_string() && l["level"].is_string()));

    // A sheet with errors: one line, on stderr, with the job that records it.
    let bad = ws.write("bad.csv", "upn,displayName\nnot-a-upn,X\n");
    let r = ws.run(&["-q", "sync", bad.to_str().unwrap()]);
    r.code(2);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("error: job 3 ("), "{}", r.stderr);
    assert!(r.stderr.contains("failed [sheet]"), "{}", r.stderr);
}

/// The webhook hears about every run as a documented JSON object with the tenant and
/// the counts, and the URL (a secret) appears nowhere.
#[test]
fn a_json_webhook_receives_each_run() {
    let (url, rx) = webhook_server();
    let ws = Workspace::new();
    let cfg = ws.path("config/teamsync.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replacen(
            "[tenants.demo]",
            "[notify]\nwebhook_url_env = \"NIGHTLY_HOOK_URL\"\nformat = \"json\"\n\n[tenants.demo]",
            1,
        ),
    )
    .unwrap();
    let out = ws
        .cmd()
        .env("NIGHTLY_HOOK_URL", &url)
        .args(["-v", "sync", &sample("users.csv")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = received(&rx);
    assert_eq!(v["schema"], "teamsync.notification/v1", "{v}");
    assert_eq!(v["tenant"], "demo");
    assert_eq!(v["id"], 1);
    assert_eq!(v["status"], "success");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["command"], "sync");
    assert!(v["counts"]["created"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["duration_s"].as_f64().unwrap() > 0.0);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("secret-path-token"), "{all}");
}

/// `format = "teams"` and `on = "failure"`: a night that fails posts a Teams message
/// card with the failed users; a good night posts nothing.
#[test]
fn a_teams_card_tells_of_a_failed_night_only() {
    let (url, rx) = webhook_server();
    let ws = Workspace::new();
    let cfg = ws.path("config/teamsync.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replacen(
            "[tenants.demo]",
            &format!("[notify]\nwebhook_url = {url:?}\nformat = \"teams\"\non = \"failure\"\n\n[tenants.demo]"),
            1,
        ),
    )
    .unwrap();
    let sheet = ws.write(
        "people.csv",
        "upn,displayName,country,number,licenses\n\
         ok.person@contoso.onmicrosoft.com,Ok Person,BE,,\n\
         far.person@contoso.onmicrosoft.com,Far Person,BE,+3225409999,MCOEV\n",
    );
    ws.run(&["sync", sheet.to_str().unwrap()]).code(1);
    let card = received(&rx);
    assert_eq!(card["@type"], "MessageCard", "{card}");
    let facts = card["sections"][0]["facts"].as_array().unwrap();
    let fact = |n: &str| {
        facts
            .iter()
            .find(|f| f["name"] == n)
            .map(|f| f["value"].clone())
    };
    assert_eq!(fact("Tenant"), Some("demo".into()));
    assert_eq!(fact("Failed"), Some("1".into()));
    assert_eq!(fact("Created"), Some("1".into()), "{card}");
    assert!(card["sections"][1]["text"]
        .as_str()
        .unwrap()
        .contains("far.person@contoso.onmicrosoft.com"));
    // A good night: no card.
    let good = ws.write(
        "good.csv",
        "upn,displayName,country\nok.person@contoso.onmicrosoft.com,Ok Person,BE\n",
    );
    ws.run(&["sync", good.to_str().unwrap()]).code(0);
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(500))
        .is_err());
}

/// The metrics file after two tenants' runs: Prometheus text a parser reads, each
/// tenant's samples kept, the last success from the history.
#[test]
fn the_metrics_file_is_prometheus_text_per_tenant() {
    let ws = Workspace::new();
    let cfg = ws.path("config/teamsync.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let second = format!(
        "\n[tenants.other]\nbackend = \"sim\"\nseed = {:?}\nstate = \"../other-tenant.db\"\nrate_per_second = 0\n",
        sample("tenant.json")
    );
    std::fs::write(
        &cfg,
        format!("metrics_file = \"../teamsync.prom\"\n{text}{second}"),
    )
    .unwrap();
    ws.run(&["sync", &sample("users.csv")]).code(0);
    let bad_night = ws.write(
        "people.csv",
        "upn,displayName,country,number,licenses\nfar.person@contoso.onmicrosoft.com,Far Person,BE,+3225409999,MCOEV\n",
    );
    ws.run(&["sync", bad_night.to_str().unwrap(), "--tenant", "other"])
        .code(1);
    let text = std::fs::read_to_string(ws.path("teamsync.prom")).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text exposition");
    let get = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == *v))
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) => v,
                ref o => panic!("{name}: {o:?}"),
            })
    };
    let demo = [("tenant", "demo")];
    let other = [("tenant", "other")];
    assert!(
        get(
            "teamsync_last_run_items",
            &[("tenant", "demo"), ("outcome", "created")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        get(
            "teamsync_last_run_items",
            &[("tenant", "other"), ("outcome", "failed")]
        ),
        Some(1.0)
    );
    assert!(get("teamsync_last_run_requests", &demo).unwrap() > 1.0);
    assert_eq!(
        get("teamsync_last_run_throttled_responses", &demo),
        Some(0.0)
    );
    assert!(get("teamsync_last_run_duration_seconds", &demo).unwrap() > 0.0);
    assert_eq!(get("teamsync_last_run_exit_code", &other), Some(1.0));
    assert_eq!(get("teamsync_last_run_success", &demo), Some(1.0));
    let now = chrono::Utc::now().timestamp() as f64;
    let success = get("teamsync_last_success_timestamp_seconds", &demo).unwrap();
    assert!((now - success).abs() < 300.0, "{success}");
    assert_eq!(
        get("teamsync_last_success_timestamp_seconds", &other),
        None,
        "the other tenant never succeeded"
    );
}

/// A template that moves staff from E3 to E1 says what it takes away, and more than the
/// threshold needs `--allow-license-removals`.
#[test]
fn license_removals_are_spelled_out_and_guarded() {
    let ws = Workspace::new();
    let upns = [
        "bob.peeters",
        "bram.hendriks",
        "camille.laurent",
        "david.maes",
        "fabien.lefebvre",
        "florian.mertens",
        "jonas.wouters",
        "julien.girard",
        "karen.dubois",
        "nathan.smets",
        "rosa.bakker",
    ];
    let rows: String = upns
        .iter()
        .map(|u| format!("{u}@contoso.onmicrosoft.com,STANDARDPACK;MCOEV\n"))
        .collect();
    let sheet = ws.write("e1.csv", &format!("upn,licenses\n{rows}"));
    let r = ws.run(&["plan", sheet.to_str().unwrap()]);
    r.code(2);
    assert!(
        r.stderr.contains("removes ENTERPRISEPACK from 11 users"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("--allow-license-removals 11"),
        "{}",
        r.stderr
    );
    let r = ws.run(&[
        "plan",
        sheet.to_str().unwrap(),
        "--allow-license-removals",
        "11",
    ]);
    r.code(0);
    assert!(
        r.stdout
            .contains("Removals: removes ENTERPRISEPACK from 11 users."),
        "{}",
        r.stdout
    );
    let j = ws
        .run(&[
            "--output",
            "json",
            "plan",
            sheet.to_str().unwrap(),
            "--allow-license-removals",
            "11",
        ])
        .code(0)
        .json();
    assert_eq!(j["schema"], "teamsync.plan/v1");
    assert_eq!(j["removals"]["licenses"]["ENTERPRISEPACK"], 11);
    assert_eq!(j["removals"]["users_losing_licenses"], 11);
}

/// Pruning lists first, asks (or takes --yes), and a pruned job's id is never given to
/// another job.
#[test]
fn pruned_job_ids_are_never_reused() {
    let ws = Workspace::new();
    ws.run(&["sync", &sample("users.csv")]).code(0);
    ws.run(&["sync", &sample("users.csv")]).code(0);
    let dry = ws.run(&["jobs", "prune", "--older-than", "0", "--dry-run"]);
    dry.code(0);
    assert!(
        dry.stdout
            .contains("2 jobs older than 0 days would be deleted"),
        "{}",
        dry.stdout
    );
    // No terminal, no --yes: refused.
    ws.run(&["jobs", "prune", "--older-than", "0"]).code(2);
    let done = ws
        .run(&[
            "--output",
            "json",
            "jobs",
            "prune",
            "--older-than",
            "0",
            "--yes",
        ])
        .code(0)
        .json();
    assert_eq!(done["pruned"], 2, "{done}");
    let job = ws
        .run(&["--output", "json", "sync", &sample("users.csv")])
        .code(0)
        .json();
    assert_eq!(job["id"], 3, "job ids 1 and 2 stay retired: {job}");
    assert_eq!(job["schema"], "teamsync.job/v1");
}

/// Completion scripts for the four shells and the manual page are generated from the
/// commands the binary has.
#[test]
fn completions_and_the_manual_are_generated() {
    let ws = Workspace::new();
    for (shell, marker) in [
        ("bash", "complete -F _teamsync"),
        ("zsh", "#compdef teamsync"),
        ("fish", "complete -c teamsync"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let r = ws.run(&["completions", shell]);
        r.code(0);
        assert!(r.stdout.contains(marker), "{shell}:\n{}", r.stdout);
        assert!(r.stdout.contains("prune"), "{shell} completes subcommands");
    }
    let man = ws.run(&["man"]);
    man.code(0);
    assert!(man.stdout.contains(".TH teamsync 1"), "{}", man.stdout);
    ws.run(&["man", "--out-dir", "man"]).code(0);
    assert!(ws.path("man/teamsync-sync.1").exists());
    // And the help of a command carries its examples.
    let help = ws.run(&["jobs", "prune", "--help"]);
    assert!(
        help.stdout.contains("Examples:\n  teamsync jobs prune"),
        "{}",
        help.stdout
    );
}
