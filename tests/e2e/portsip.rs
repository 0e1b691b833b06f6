//! PortSIP: the simulator's field rules (over raw HTTP, as a client that skips validation
//! would meet them), the connector's own checks of the same rules, and the real binary
//! planning, syncing and re-planning against the simulator.

use crate::support::{fixture, repo, Run, Workspace};
use std::path::Path;
use std::sync::{Arc, Mutex};
use teamsync::connector::http::TokenSource;
use teamsync::connector::portsip::{PortsipConnector, PortsipSettings, PASSWORD_LEN};
use teamsync::connector::{Connector, Gate};
use teamsync::model::{Field, Upn, UserSpec};
use teamsync_sim::common::conn::Background;
use teamsync_sim::portsip::PortsipSim;
use teamsync_sim::SimOptions;

const TOKEN: &str = "portsip-test-token-7f3a";
const TOKEN_VAR: &str = "PORTSIP_E2E_TOKEN";

/// Bodies of the requests the test's own capture layer saw (the simulator keeps none).
type Captured = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

struct Sim {
    base: String,
    captured: Captured,
    state_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _server: Background,
}

fn rules() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("portsip/field-rules.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Starts the simulator on loopback with `seed`, a state file, a token, and a layer that
/// keeps every request body for the test to search.
async fn start(seed: &serde_json::Value) -> Sim {
    start_with(seed, SimOptions::default()).await
}

async fn start_with(seed: &serde_json::Value, opts: SimOptions) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.json");
    std::fs::write(&seed_path, seed.to_string()).unwrap();
    let state_file = dir.path().join("portsip.db");
    let opts = SimOptions {
        token: Some(TOKEN.into()),
        ..opts
    };
    let sim = PortsipSim::open(Some(&state_file), Some(&seed_path), opts).unwrap();
    let captured: Captured = Arc::default();
    let cap = captured.clone();
    let app = sim.router().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let cap = cap.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                cap.lock().unwrap().push((
                    parts.method.to_string(),
                    parts.uri.path().to_string(),
                    bytes.to_vec(),
                ));
                next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                    .await
            }
        },
    ));
    let server = Background::spawn(app).await.unwrap();
    Sim {
        base: server.base_url(),
        captured,
        state_file,
        _dir: dir,
        _server: server,
    }
}

fn sample_seed() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("samples/portsip-tenant.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(sim: &Sim, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = http()
        .post(format!("{}{path}", sim.base))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

async fn get(sim: &Sim, path: &str) -> (u16, serde_json::Value) {
    let r = http()
        .get(format!("{}{path}", sim.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

fn new_user(name: &str, ext: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name, "password": "correct-horse-battery", "extension_number": ext,
        "email": "someone@contoso.com", "display_name": "Someone"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_enforces_the_documents_name_and_extension_rules() {
    let sim = start(&serde_json::json!({})).await;
    let rules = rules();
    let mut ext = 500;
    let mut next_ext = || {
        ext += 1;
        ext.to_string()
    };
    for name in strings(&rules["user_names"]["accepted"]) {
        let (s, b) = post(&sim, "/api/users", new_user(&name, &next_ext())).await;
        assert_eq!(s, 201, "{name:?}: {b}");
        assert!(b["id"].as_str().is_some_and(|i| !i.is_empty()), "{b}");
    }
    for (kind, code) in [
        ("invalid", "InvalidUserName"),
        ("reserved", "ReservedUserName"),
    ] {
        for name in strings(&rules["user_names"][kind]) {
            let (s, b) = post(&sim, "/api/users", new_user(&name, &next_ext())).await;
            assert_eq!((s, b["code"].as_str()), (400, Some(code)), "{name:?}: {b}");
        }
    }
    for (i, e) in strings(&rules["extension_numbers"]["accepted"])
        .iter()
        .enumerate()
    {
        let (s, b) = post(&sim, "/api/users", new_user(&format!("ext{i}"), e)).await;
        assert_eq!(s, 201, "{e:?}: {b}");
    }
    for (i, e) in strings(&rules["extension_numbers"]["invalid"])
        .iter()
        .enumerate()
    {
        let (s, b) = post(&sim, "/api/users", new_user(&format!("bad{i}"), e)).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("InvalidExtensionNumber")),
            "{e:?}: {b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_write_rules_auth_paging_and_the_documents_examples() {
    let sim = start(&sample_seed()).await;
    let examples = &rules()["examples"];
    // Missing extension, duplicates (name case-insensitively), read-only and unknown fields.
    let mut body = new_user("carol", "110");
    body.as_object_mut().unwrap().remove("extension_number");
    let (s, b) = post(&sim, "/api/users", body).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("MissingField")), "{b}");
    let (s, b) = post(&sim, "/api/users", new_user("Alice.Martin", "110")).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("UserNameExists")),
        "{b}"
    );
    let (s, b) = post(&sim, "/api/users", new_user("carol", "101")).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("ExtensionNumberExists")),
        "{b}"
    );
    let mut body = new_user("carol", "110");
    body["role"] = serde_json::json!("Superhero");
    let (s, b) = post(&sim, "/api/users", body).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("UnknownRole")), "{b}");
    let mut body = new_user("carol", "110");
    body["pasword"] = serde_json::json!("typo");
    let (s, b) = post(&sim, "/api/users", body).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("BadBody")), "{b}");
    let (s, b) = post(
        &sim,
        "/api/users/100000000001",
        serde_json::json!({"extension_number": "199"}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("ReadOnlyField")), "{b}");
    let (s, b) = post(
        &sim,
        "/api/users/100000000001",
        serde_json::json!({"name": "x"}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("ReadOnlyField")), "{b}");
    let (s, b) = post(
        &sim,
        "/api/users/999",
        serde_json::json!({"department": "x"}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("UserNotFound")), "{b}");
    let (s, _) = post(
        &sim,
        "/api/users/100000000001",
        serde_json::json!({"department": "Field", "office_phone_number": ""}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, u) = get(&sim, "/api/users/100000000001").await;
    assert_eq!(s, 200);
    assert_eq!(u["department"], "Field");
    assert_eq!(u["office_phone_number"], "");
    assert_eq!(
        u["extension_number"], "101",
        "modify leaves the extension alone"
    );

    // A created user shows the document's example language by default, never a password.
    let (s, b) = post(&sim, "/api/users", new_user("carol", "110")).await;
    assert_eq!(s, 201, "{b}");
    let (_, u) = get(&sim, &format!("/api/users/{}", b["id"].as_str().unwrap())).await;
    assert_eq!(u["language"], examples["language"]);
    assert_eq!(u["role"], "StandardUser");
    assert!(
        u.get("password").is_none() && u.get("extension_password").is_none(),
        "{u}"
    );
    let text = u.to_string() + &get(&sim, "/_sim/state").await.1.to_string();
    assert!(!text.contains("correct-horse-battery"));
    let db = state_files_text(&sim);
    assert!(!db.contains("correct-horse-battery"));
    assert!(db.contains("sha256$"), "stored as a hash");

    // Paging: `count` is the total (the document's example is a number), items per page.
    let (_, p) = get(&sim, "/api/users?pagination=1&pagesize=2").await;
    assert!(p["count"].is_u64() && examples["list_count"].is_u64());
    assert_eq!(p["count"], 4);
    assert_eq!(p["items"].as_array().unwrap().len(), 2);
    let (_, p2) = get(&sim, "/api/users?pagination=2&pagesize=2").await;
    assert_ne!(p["items"][0]["id"], p2["items"][0]["id"]);
    let (_, p3) = get(&sim, "/api/users?pagination=3&pagesize=2").await;
    assert_eq!(p3["items"].as_array().unwrap().len(), 0);
    for bad in [
        "pagesize=101",
        "pagesize=0",
        "pagination=0",
        "page=1",
        "pagesize=1&pagesize=2",
    ] {
        let (s, b) = get(&sim, &format!("/api/users?{bad}")).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("BadQuery")),
            "{bad}: {b}"
        );
    }

    // Auth: none → 401, wrong → 403; not logged in is never served.
    let r = http()
        .get(format!("{}/api/users", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http()
        .get(format!("{}/api/users", sim.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_throttles_and_faults_in_portsip_shape_and_logs_every_request() {
    let sim = start_with(
        &sample_seed(),
        SimOptions {
            rate_limit: Some(1),
            ..SimOptions::default()
        },
    )
    .await;
    let (s, _) = get(&sim, "/api/users").await;
    assert_eq!(s, 200);
    let r = http()
        .get(format!("{}/api/users", sim.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["code"], "TooManyRequests");
    let (_, log) = get(&sim, "/_sim/requests").await;
    let statuses: Vec<_> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![Some(200), Some(429)]);

    let sim = start_with(
        &sample_seed(),
        SimOptions {
            fault_rate: 1.0,
            seed_rng: 7,
            ..SimOptions::default()
        },
    )
    .await;
    for _ in 0..6 {
        let r = http()
            .get(format!("{}/api/users", sim.base))
            .bearer_auth(TOKEN)
            .send()
            .await;
        if let Ok(r) = r {
            let status = r.status().as_u16();
            // A dropped connection may surface as a bodiless 500 or a transport error.
            let b: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
            assert!(status == 500 || status == 503, "{status}");
            if !b.is_null() {
                assert!(
                    ["InternalError", "ServiceUnavailable"].contains(&b["code"].as_str().unwrap()),
                    "{b}"
                );
            }
        }
    }
    let (_, log) = get(&sim, "/_sim/requests").await;
    assert!(log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["fault"] == true));
}

fn connector(base: &str) -> PortsipConnector {
    let mut s = PortsipSettings::new(base, TokenSource::Static(TOKEN.into()));
    s.http.retry.max_attempts = 1;
    PortsipConnector::new(s, Arc::new(Gate::unlimited())).unwrap()
}

#[test]
fn connector_refuses_the_documents_bad_names_before_sending() {
    // No server at all: the profile's row rules must decide alone.
    let c = connector("https://pbx.invalid");
    let rules = rules();
    let mut checked_bad = 0;
    for name in strings(&rules["user_names"]["accepted"]) {
        let upn = Upn::parse(&format!("{name}@contoso.com")).unwrap();
        assert!(
            c.profile().row_problems(&UserSpec::new(upn)).is_empty(),
            "{name}"
        );
    }
    for kind in ["invalid", "reserved"] {
        for name in strings(&rules["user_names"][kind]) {
            // Some bad names cannot even be a UPN's local part: the sheet refuses those.
            let Ok(upn) = Upn::parse(&format!("{name}@contoso.com")) else {
                continue;
            };
            let p = c.profile().row_problems(&UserSpec::new(upn));
            assert_eq!(p.len(), 1, "{name:?}: {p:?}");
            assert_eq!(p[0].column, "upn");
            checked_bad += 1;
        }
    }
    assert!(
        checked_bad >= 10,
        "only {checked_bad} bad names reached the connector"
    );
    let upn = Upn::parse("jane@contoso.com").unwrap();
    for e in strings(&rules["extension_numbers"]["accepted"]) {
        let mut s = UserSpec::new(upn.clone());
        s.extension = Field::Set(e.clone());
        assert!(c.profile().row_problems(&s).is_empty(), "{e}");
    }
    for e in strings(&rules["extension_numbers"]["invalid"]) {
        let mut s = UserSpec::new(upn.clone());
        s.extension = Field::Set(e.clone());
        assert_eq!(c.profile().row_problems(&s)[0].column, "extension", "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_pages_through_the_list_and_reads_users() {
    let users: Vec<_> = (0..250)
        .map(|i| {
            serde_json::json!({
                "id": format!("{}", 200000000000u64 + i), "name": format!("u{i}"),
                "role": "StandardUser", "extension_number": format!("{}", 1000 + i),
                "email": format!("u{i}@contoso.com"), "display_name": format!("User {i}"),
                "office_phone_number": if i % 2 == 0 { format!("+32 2 540 {i:04}") } else { String::new() }
            })
        })
        .collect();
    let sim = start(&serde_json::json!({ "users": users })).await;
    let c = connector(&sim.base);
    let snap = c.snapshot(&[], false).await.unwrap();
    assert_eq!(snap.users.len(), 250);
    assert_eq!(snap.requests, 3, "pages of 100");
    let u0 = snap
        .users
        .iter()
        .find(|u| u.upn.as_str() == "u0@contoso.com")
        .unwrap();
    assert_eq!(u0.number.as_ref().unwrap().to_string(), "+3225400000");
    assert!(snap
        .users
        .iter()
        .find(|u| u.upn.as_str() == "u1@contoso.com")
        .unwrap()
        .number
        .is_none());
    let found = c
        .find_user(&Upn::parse("u249@contoso.com").unwrap(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "200000000249");
    let read = c.read_user(&found.id).await.unwrap().unwrap();
    assert_eq!(read, found);
    assert_eq!(c.read_user("123").await.unwrap(), None);
    let status = c.check().await.unwrap();
    assert_eq!(status.details["users"], 250);
}

/// A workspace whose default tenant is the PortSIP PBX at `base`.
fn pbx_workspace(base: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "config/teamsync.toml",
        &format!(
            "db = \"../history.db\"\ntemplates = {templates:?}\ndefault_tenant = \"pbx\"\n\n\
             [tenants.pbx]\nbackend = \"portsip\"\nbase_url = {base:?}\ntoken_env = \"{TOKEN_VAR}\"\n\
             rate_per_second = 0\nrequest_timeout_s = 5\n",
            templates = repo().join("templates").display().to_string(),
        ),
    );
    ws
}

fn run_env(ws: &Workspace, args: &[&str]) -> Run {
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

/// The simulator's state file and its WAL companion (recent writes may be only there),
/// as text (lossy), for secret searches.
fn state_files_text(sim: &Sim) -> String {
    let mut wal = sim.state_file.clone().into_os_string();
    wal.push("-wal");
    [sim.state_file.clone(), wal.into()]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// Every file under `dir`, as text (lossy), for secret searches.
fn all_files_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }
    out
}

const SHEET: &str = "upn,displayName,number,extension\n\
alice.martin@contoso.com,Alice Martin-Leroy,,\n\
bob.dupont@contoso.com,,+3225405203,\n\
carol.new@contoso.com,Carol New,+3225405202,103\n\
dave.new@contoso.com,Dave New,,104\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_plans_syncs_and_replans_to_zero_without_keeping_passwords() {
    let sim = start(&sample_seed()).await;
    let ws = pbx_workspace(&sim.base);
    let sheet = ws.write("users.csv", SHEET);
    let sheet = sheet.to_str().unwrap();
    let mut runs = vec![];

    let plan = run_env(
        &ws,
        &["--output", "json", "plan", sheet, "--detailed-exitcode"],
    );
    plan.code(4);
    let p = plan.json();
    assert_eq!(p["summary"]["create"], 2, "{p}");
    runs.push(plan);

    let sync = run_env(&ws, &["--output", "json", "sync", sheet]);
    sync.code(0);
    let job = sync.json();
    assert_eq!(job["status"], "success", "{job}");
    runs.push(sync);

    let again = run_env(
        &ws,
        &["--output", "json", "plan", sheet, "--detailed-exitcode"],
    );
    again.code(0);
    assert_eq!(again.json()["summary"]["operations"], 0, "{}", again.stdout);
    runs.push(again);

    // The PBX holds what the sheet says.
    let (_, state) = get(&sim, "/_sim/state").await;
    let by_email = |e: &str| {
        state["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == e)
            .cloned()
            .unwrap()
    };
    let carol = by_email("carol.new@contoso.com");
    assert_eq!(carol["name"], "carol.new");
    assert_eq!(carol["extension_number"], "103");
    assert_eq!(carol["office_phone_number"], "+3225405202");
    assert_eq!(
        carol["outbound_caller_ids"],
        serde_json::json!(["+3225405202"])
    );
    assert_eq!(by_email("dave.new@contoso.com")["office_phone_number"], "");
    assert_eq!(
        by_email("alice.martin@contoso.com")["display_name"],
        "Alice Martin-Leroy"
    );
    assert_eq!(
        by_email("bob.dupont@contoso.com")["office_phone_number"],
        "+3225405203"
    );

    // The generated passwords went out once and are kept nowhere.
    let creates: Vec<serde_json::Value> = sim
        .captured
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, p, _)| m == "POST" && p == "/api/users")
        .map(|(_, _, b)| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(creates.len(), 2);
    let mut secrets = vec![TOKEN.to_string()];
    for c in &creates {
        for k in ["password", "extension_password"] {
            let s = c[k].as_str().unwrap().to_string();
            assert_eq!(s.len(), PASSWORD_LEN);
            secrets.push(s);
        }
    }
    let (_, log) = get(&sim, "/_sim/requests").await;
    let everywhere = format!(
        "{}{}{}{}",
        runs.iter()
            .map(|r| format!("{}{}", r.stdout, r.stderr))
            .collect::<String>(),
        all_files_text(ws.dir.path()),
        state_files_text(&sim),
        state.to_string() + &log.to_string(),
    );
    assert!(
        everywhere.contains("carol.new@contoso.com"),
        "the search covers the history"
    );
    for s in &secrets {
        assert!(!everywhere.contains(s.as_str()), "a secret leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_refuses_a_reserved_name_with_exit_2_and_sends_nothing() {
    let sim = start(&sample_seed()).await;
    let ws = pbx_workspace(&sim.base);
    let sheet = ws.write(
        "users.csv",
        "upn,displayName,extension\ncarol.new@contoso.com,Carol,103\nAdmin@contoso.com,Admin,105\n",
    );
    for cmd in ["plan", "sync"] {
        let r = run_env(&ws, &[cmd, sheet.to_str().unwrap()]);
        r.code(2);
        assert!(r.stderr.contains(":3 [upn]"), "names the row: {}", r.stderr);
        assert!(r.stderr.contains("reserved"), "{}", r.stderr);
        assert!(r.stderr.contains("nothing was sent"), "{}", r.stderr);
    }
    let (_, log) = get(&sim, "/_sim/requests").await;
    assert_eq!(
        log["requests"],
        serde_json::json!([]),
        "no request reached the PBX"
    );
}

/// A workspace whose default tenant is the embedded PortSIP simulator (state kept).
fn embedded_workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "config/teamsync.toml",
        &format!(
            "db = \"../history.db\"\ntemplates = {templates:?}\ndefault_tenant = \"pbx\"\n\n\
             [tenants.pbx]\nbackend = \"sim\"\nsim_backend = \"portsip\"\nseed = {seed:?}\n\
             state = \"../pbx.db\"\nrate_per_second = 0\nrequest_timeout_s = 5\n",
            templates = repo().join("templates").display().to_string(),
            seed = repo()
                .join("samples/portsip-tenant.json")
                .display()
                .to_string(),
        ),
    );
    ws
}

/// The embedded `sim_backend = "portsip"` tenant, state kept between runs.
#[test]
fn embedded_portsip_tenant_syncs_once_and_refuses_what_portsip_cannot_carry() {
    let ws = embedded_workspace();
    let sheet = ws.write("users.csv", SHEET);
    let sheet = sheet.to_str().unwrap();
    let job = ws.run(&["--output", "json", "sync", sheet]).code(0).json();
    assert_eq!(job["status"], "success", "{job}");
    let p = ws
        .run(&["--output", "json", "plan", sheet, "--detailed-exitcode"])
        .code(0)
        .json();
    assert_eq!(p["summary"]["operations"], 0, "{p}");

    // The exported tenant is a sheet PortSIP can take: no country, VRP, groups or
    // licenses in it, and it plans to zero changes.
    ws.run(&["tenant", "export", "--out", "export.csv"]).code(0);
    let exported = std::fs::read_to_string(ws.path("export.csv")).unwrap();
    let mut lines = exported.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= 4, "{exported}");
    for col in ["country", "vrp", "groups", "licenses", "customerLicenses"] {
        let i = header.iter().position(|h| *h == col).unwrap();
        assert!(rows.iter().all(|r| r[i].is_empty()), "{col}: {exported}");
    }
    ws.run(&["plan", "export.csv", "--detailed-exitcode"])
        .code(0);

    // A create without an extension, a country, groups: plan errors naming row and column.
    let bad = ws.write(
        "bad.csv",
        "upn,displayName,country,groups,extension\n\
         erin.new@contoso.com,Erin,,,\n\
         alice.martin@contoso.com,,BE,,\n\
         bob.dupont@contoso.com,,,Sales,\n",
    );
    let r = ws.run(&["plan", bad.to_str().unwrap()]);
    r.code(2);
    for want in [":2 [extension]", ":3 [country]", ":4 [groups]"] {
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }

    // An existing user's extension cannot change through PortSIP's API: refused, not
    // ignored; the same extension is fine.
    let ext = ws.write(
        "ext.csv",
        "upn,extension
carol.new@contoso.com,103
dave.new@contoso.com,199
",
    );
    let r = ws.run(&["plan", ext.to_str().unwrap()]);
    r.code(2);
    assert!(r.stderr.contains(":3 [extension]"), "{}", r.stderr);
    assert!(!r.stderr.contains(":2 "), "{}", r.stderr);

    let b = ws.run(&["--output", "json", "backends"]).code(0).json()["backends"].clone();
    let row = b
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["backend"] == "portsip")
        .unwrap();
    assert_eq!(row["available"], true);
    assert_eq!(row["capabilities"]["create"], true);
    assert_eq!(row["capabilities"]["groups"], false);
}

/// A saved plan with country-less creates applies, and its drift check re-plans them
/// without asking for a country.
#[test]
fn saved_portsip_plan_applies_and_reports_drift_in_portsip_terms() {
    let ws = embedded_workspace();
    let sheet = ws.write("users.csv", SHEET);
    let sheet = sheet.to_str().unwrap();
    let plan = ws.path("plan.json");
    let plan = plan.to_str().unwrap();
    ws.run(&["plan", sheet, "--out", plan]).code(0);
    // Someone renames alice under the plan.
    let other = ws.write(
        "other.csv",
        "upn,displayName\nalice.martin@contoso.com,A. Martin\n",
    );
    ws.run(&["sync", other.to_str().unwrap()]).code(0);
    let r = ws.run(&["apply", "--yes", "--plan", plan]);
    r.code(2);
    assert!(r.stderr.contains("changed since"), "{}", r.stderr);
    assert!(r.stderr.contains("alice.martin"), "{}", r.stderr);
    assert!(!r.stderr.contains("would not plan now"), "{}", r.stderr);

    ws.run(&["plan", sheet, "--out", plan]).code(0);
    ws.run(&["apply", "--yes", "--plan", plan]).code(0);
    ws.run(&["plan", sheet, "--detailed-exitcode"]).code(0);
}

/// The sheet layer checks the `extension` column (and its alias) with row and column.
#[test]
fn sheet_extension_column_is_validated_with_row_and_column() {
    let ws = Workspace::new();
    let bad = ws.write(
        "ext.csv",
        "upn,displayName,Extension Number\na@contoso.com,A,101\nb@contoso.com,B,12\nc@contoso.com,C,-\nd@contoso.com,D,10a\n",
    );
    let r = ws.run(&["validate", bad.to_str().unwrap()]);
    r.code(2);
    for want in [
        ":3 [Extension Number (C)]",
        ":4 [Extension Number (C)]",
        ":5 [Extension Number (C)]",
    ] {
        assert!(
            r.stderr.contains(want) || r.stdout.contains(want),
            "{want}: {}{}",
            r.stdout,
            r.stderr
        );
    }
    let out = format!("{}{}", r.stdout, r.stderr);
    assert!(!out.contains(":2 ["), "{out}");
}

/// A failed-only retry sheet of a PortSIP job keeps `extension` (it once dropped the
/// column, so a failed create could not be retried from it): the create of a user whose
/// extension another user holds fails, the retry sheet names the extension, and once the
/// row is fixed it applies.
#[test]
fn portsip_retry_sheet_keeps_the_extension_column() {
    let ws = embedded_workspace();
    // 101 is alice.martin's extension: the PBX refuses the create (409).
    let sheet = ws.write(
        "users.csv",
        "upn,displayName,extension\nerin.new@contoso.com,Erin New,101\nfrank.new@contoso.com,Frank New,0105\n",
    );
    let job = ws
        .run(&["--output", "json", "sync", sheet.to_str().unwrap()])
        .code(1)
        .json();
    assert_eq!(job["status"], "partial", "{job}");
    let id = job["id"].as_i64().unwrap().to_string();
    let retry = ws.path("retry.csv");
    ws.run(&[
        "jobs",
        "export",
        &id,
        "--format",
        "csv",
        "--failed-only",
        "--out",
        retry.to_str().unwrap(),
    ])
    .code(0);
    let text = std::fs::read_to_string(&retry).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("upn,displayName,extension"), "{text}");
    assert_eq!(
        lines.next(),
        Some("erin.new@contoso.com,Erin New,101"),
        "{text}"
    );
    assert_eq!(lines.next(), None, "only the failed user: {text}");

    // Fixed in the retry sheet, the row applies.
    std::fs::write(&retry, text.replace(",101", ",106")).unwrap();
    ws.run(&["sync", retry.to_str().unwrap()]).code(0);
    ws.run(&["plan", retry.to_str().unwrap(), "--detailed-exitcode"])
        .code(0);
}
