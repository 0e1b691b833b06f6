//! Every backend out of the box: the README's "Try each backend" commands run verbatim on a
//! copy of what a fresh clone ships (config, samples, templates), every backend's export
//! plans back to nothing, one number is never given to two accounts, and a retry sheet
//! keeps the columns its rows used.

use crate::support::repo;
use std::path::{Path, PathBuf};

/// What a fresh clone ships, in a scratch folder: `config/`, `samples/`, `templates/` and
/// the README. Commands run from its root with no `--config`, as a newcomer types them.
struct Checkout {
    dir: tempfile::TempDir,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn code(&self, want: i32) -> &Out {
        assert_eq!(
            self.code, want,
            "exit {} (want {want})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

impl Checkout {
    fn new() -> Checkout {
        let dir = tempfile::tempdir().unwrap();
        for d in ["config", "samples", "templates"] {
            copy_dir(&repo().join(d), &dir.path().join(d));
        }
        std::fs::copy(repo().join("README.md"), dir.path().join("README.md")).unwrap();
        Checkout { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
            .current_dir(self.dir.path())
            .env_remove("TEAMSYNC_CONFIG")
            .env_remove("TEAMSYNC_DB")
            .env_remove("TEAMSYNC_DEFAULT_TENANT")
            .env_remove("TEAMSYNC_TEMPLATES")
            .env("TEAMSYNC_LOCK_DIR", self.dir.path().join("locks"))
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The README's "Try each backend" commands, as `teamsync` arguments (`cargo run --`
    /// and the trailing comment taken off).
    fn readme_try_commands(&self) -> Vec<Vec<String>> {
        let readme = std::fs::read_to_string(self.path("README.md")).unwrap();
        let section = readme
            .split("## Try each backend")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("a \"Try each backend\" section");
        section
            .lines()
            .filter_map(|l| l.strip_prefix("cargo run -- "))
            .map(|l| {
                let l = l.split('#').next().unwrap_or("");
                l.split_whitespace().map(str::to_string).collect()
            })
            .collect()
    }
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The README's commands, verbatim, each twice: the first syncs (or audits), the second
/// finds nothing left to do.
#[test]
fn the_readme_try_each_backend_commands_work_on_a_fresh_clone() {
    let co = Checkout::new();
    let cmds = co.readme_try_commands();
    assert_eq!(cmds.len(), 6, "{cmds:?}");
    for tenant in ["demo-ump", "demo-portsip", "demo-lp", "demo-graph"] {
        assert!(
            cmds.iter().any(|c| c.iter().any(|a| a == tenant)),
            "{tenant} has a command: {cmds:?}"
        );
    }
    for c in &cmds {
        let first = co.run(&args(c));
        first.code(0);
        assert!(!first.all().contains("error"), "{c:?}: {}", first.all());
        let again = co.run(&args(c));
        again.code(0);
        if c[0] == "sync" {
            assert!(again.all().contains("No changes"), "{c:?}: {}", again.all());
        }
    }
    // The audit finds the one drift the sample sheet holds (Debra's policy).
    let lp = cmds.iter().find(|c| c.contains(&"demo-lp".into())).unwrap();
    let mut detailed = args(lp);
    detailed.push("--detailed-exitcode");
    let audit = co.run(&detailed);
    audit.code(4);
    assert!(
        audit
            .stdout
            .contains("vrp: SiteLocationTag-Unrestricted → Unrestricted"),
        "{}",
        audit.stdout
    );
    // The read-only backend refuses to sync before sending anything.
    let mut sync = args(lp);
    sync[0] = "sync";
    co.run(&sync).code(2);
}

/// `tenant export` then `plan` of that export plans nothing, on every backend, before and
/// after the samples were synced: numbers the tenant holds (UMP's `+311111120`, which
/// libphonenumber calls invalid) are valid input, and resource accounts export to a
/// resource-account sheet.
#[test]
fn every_backends_export_plans_back_to_nothing() {
    let co = Checkout::new();
    let tenants = ["demo", "demo-ump", "demo-portsip", "demo-lp", "demo-graph"];
    let check = |when: &str| {
        for t in tenants {
            let file = format!("{t}-{when}.csv");
            co.run(&["tenant", "export", "--tenant", t, "--out", &file])
                .code(0);
            let p = co.run(&["plan", &file, "--tenant", t, "--detailed-exitcode"]);
            p.code(0);
            assert!(p.all().contains("No changes"), "{t}: {}", p.all());
        }
    };
    check("seeded");
    let ump = std::fs::read_to_string(co.path("demo-ump-seeded.csv")).unwrap();
    assert!(
        ump.contains("david.smit@audiocodes.com,David Smit,+311111120,NL,International"),
        "{ump}"
    );
    let pbx = std::fs::read_to_string(co.path("demo-portsip-seeded.csv")).unwrap();
    assert!(
        pbx.starts_with(
            "upn,displayName,number,country,vrp,groups,licenses,customerLicenses,extension\n"
        ),
        "{pbx}"
    );
    assert!(
        pbx.contains("alice.martin@contoso.com,Alice Martin,+3225405201,,,,,,101"),
        "{pbx}"
    );
    for (sheet, tenant) in [
        ("samples/resource-accounts.csv", "demo"),
        ("samples/ump-users.csv", "demo-ump"),
        ("samples/portsip-users.csv", "demo-portsip"),
        ("samples/graph-users.csv", "demo-graph"),
    ] {
        co.run(&["sync", sheet, "--tenant", tenant]).code(0);
    }
    check("synced");
    let ras = co.run(&[
        "tenant",
        "export",
        "--resource-accounts",
        "--out",
        "ras.csv",
    ]);
    ras.code(0);
    let sheet = std::fs::read_to_string(co.path("ras.csv")).unwrap();
    assert!(
        sheet.starts_with("upn,accountType,displayName,number,country,vrp,customerLicenses\n"),
        "{sheet}"
    );
    assert!(
        sheet.contains("cq.brussels@contoso.onmicrosoft.com,call-queue,Brussels Reception Queue,+3225405260,BE,,"),
        "{sheet}"
    );
    let p = co.run(&["plan", "ras.csv", "--detailed-exitcode"]);
    p.code(0);
    // A number `tenant numbers` offers can be typed into a sheet.
    let free = co.run(&["tenant", "numbers", "--tenant", "demo-ump"]);
    let next = free
        .stdout
        .lines()
        .find(|l| l.starts_with("NL-Amsterdam"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    std::fs::write(
        co.path("typed.csv"),
        format!("upn,number\nemma.visser@audiocodes.com,{next}\n"),
    )
    .unwrap();
    co.run(&["plan", "typed.csv", "--tenant", "demo-ump"])
        .code(0);
}

/// One number, one account: a sheet giving `bob` the number that `frontdesk` (a PortSIP
/// user without an email, so no sheet row can name it) holds, or giving one number to two
/// rows, is refused before anything is sent.
#[test]
fn a_number_is_never_given_to_two_accounts() {
    let co = Checkout::new();
    std::fs::write(
        co.path("bob.csv"),
        "upn,number\nbob.dupont@contoso.com,+3225405200\n",
    )
    .unwrap();
    let r = co.run(&["sync", "bob.csv", "--tenant", "demo-portsip"]);
    r.code(2);
    assert!(
        r.all().contains(
            "number +3225405200 is held by PortSIP user 100000000003 (\"frontdesk\", no email)"
        ),
        "{}",
        r.all()
    );
    std::fs::write(
        co.path("twice.csv"),
        "upn,number\nbram.jansen@audiocodes.com,+31205550150\nemma.visser@audiocodes.com,+31205550150\n",
    )
    .unwrap();
    let r = co.run(&["plan", "twice.csv", "--tenant", "demo-ump"]);
    r.code(2);
    assert!(
        r.all()
            .contains("number +31205550150 is also given to bram.jansen@audiocodes.com"),
        "{}",
        r.all()
    );
    // Nothing was sent: bob still has no office number.
    let users = co.run(&[
        "--output",
        "json",
        "tenant",
        "users",
        "--tenant",
        "demo-portsip",
    ]);
    let users: serde_json::Value = serde_json::from_str(&users.stdout).unwrap();
    let bob = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["upn"] == "bob.dupont@contoso.com")
        .unwrap();
    assert!(bob["number"].is_null(), "{bob}");
}

/// A create that fails (its extension is taken) comes back in the retry sheet with its
/// extension, so fixing that one cell and syncing the sheet creates the user.
#[test]
fn a_retry_sheet_keeps_the_extension_of_a_failed_create() {
    let co = Checkout::new();
    std::fs::write(
        co.path("new.csv"),
        "upn,displayName,number,extension\n\
         carla.rossi@contoso.com,Carla Rossi,+3225405203,103\n\
         dirk.maes@contoso.com,Dirk Maes,+3225405204,101\n",
    )
    .unwrap();
    let r = co.run(&["sync", "new.csv", "--tenant", "demo-portsip"]);
    r.code(1);
    assert!(
        r.all().contains("extension number 101 is already taken"),
        "{}",
        r.all()
    );
    let job = co.run(&["--output", "json", "jobs", "list"]);
    let jobs: serde_json::Value = serde_json::from_str(&job.stdout).unwrap();
    let id = jobs["bulks"][0]["id"].to_string();
    co.run(&[
        "jobs",
        "export",
        &id,
        "--format",
        "csv",
        "--failed-only",
        "--out",
        "retry.csv",
    ])
    .code(0);
    let retry = std::fs::read_to_string(co.path("retry.csv")).unwrap();
    assert_eq!(
        retry,
        "upn,displayName,number,extension\ndirk.maes@contoso.com,Dirk Maes,+3225405204,101\n"
    );
    std::fs::write(co.path("retry.csv"), retry.replace(",101\n", ",104\n")).unwrap();
    co.run(&["sync", "retry.csv", "--tenant", "demo-portsip"])
        .code(0);
    let p = co.run(&["plan", "new.csv", "--tenant", "demo-portsip"]);
    p.code(2);
    assert!(
        p.all()
            .contains("dirk.maes@contoso.com: has extension 104 in portsip"),
        "the extension cannot change once created: {}",
        p.all()
    );
}

/// Another backend's key in a tenant table is refused (exit 2) with the tenant, the key
/// and what the backend takes; `teamsync sim` without `--seed` serves the sample tenant.
#[tokio::test]
async fn a_misplaced_key_is_refused_and_sim_serves_its_sample() {
    let co = Checkout::new();
    let cfg = std::fs::read_to_string(co.path("config/teamsync.toml")).unwrap();
    let cfg = cfg.replace(
        "subscription_id = 12\n",
        "subscription_id = 12\ncustomer_id = \"3f2a5c8e-1b4d-4e6f-9a7b-2c8d0e1f3a5b\"\n",
    );
    std::fs::write(co.path("config/teamsync.toml"), cfg).unwrap();
    let r = co.run(&["tenant", "status", "--tenant", "acme"]);
    r.code(2);
    assert!(
        r.stderr.contains("tenant \"acme\" (backend = \"fusion\"): unknown key `customer_id` (a key of liveplatform tenants); a fusion tenant takes: draas_instance, tenant_uuid, subscription_id, bulk_size, base_url"),
        "{}",
        r.stderr
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
        .current_dir(std::env::temp_dir())
        .args([
            "sim",
            "--backend",
            "portsip",
            "--listen",
            &listen,
            "--token",
            "t",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}/api/users?pagination=1&pagesize=10");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        match http.get(&url).bearer_auth("t").send().await {
            Ok(r) => break r.bytes().await.unwrap(),
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => {
                let _ = child.kill();
                panic!("the simulator did not come up: {e}");
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["count"], 3, "{v}");
}
