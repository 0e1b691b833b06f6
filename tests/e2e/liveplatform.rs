//! AudioCodes Live Platform: the simulator against the documents' examples (contract), the
//! connector against the simulator and against a misbehaving server, and the real binary
//! auditing a sheet against a Live Platform tenant (plan shows drift; apply and sync
//! refuse before sending anything).

use crate::support::{fixture, repo, Workspace};
use serde_json::{json, Value};
use std::sync::Arc;
use teamsync::connector::http::TokenSource;
use teamsync::connector::liveplatform::{LivePlatformConnector, LivePlatformSettings};
use teamsync::connector::{Connector, ConnectorError, Gate};
use teamsync_sim::common::conn::Background;
use teamsync_sim::liveplatform::{self as lpsim, LivePlatformSim};
use teamsync_sim::SimOptions;

const GUID: &str = "3f2a5c8e-1b4d-4e6f-9a7b-2c8d0e1f3a5b";
const TOKEN: &str = "lp-test-token";

fn seed() -> std::path::PathBuf {
    repo().join("samples/liveplatform-tenant.json")
}

async fn sim_with(opts: SimOptions) -> Background {
    let sim = LivePlatformSim::open(None, Some(&seed()), opts).expect("seed");
    lpsim::start(sim).await.expect("start")
}

async fn sim() -> Background {
    sim_with(SimOptions {
        token: Some(TOKEN.into()),
        ..SimOptions::default()
    })
    .await
}

async fn get(s: &Background, path_and_query: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}{path_and_query}", s.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn log(s: &Background) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/_sim/requests", s.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"].as_array().cloned().unwrap_or_default()
}

fn users_path(q: &str) -> String {
    format!("/api/v3/customer/{GUID}/user{q}")
}

fn read_fixture(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("liveplatform/{name}"))).unwrap(),
    )
    .unwrap()
}

// ---- contract: the simulator answers as the documents' examples ----

#[tokio::test]
async fn first_page_of_ten_is_the_documents_example() {
    let s = sim().await;
    let (status, _, body) = get(&s, &users_path("?pageNumber=1&pageSize=10")).await;
    assert_eq!(status, 200);
    assert_eq!(body, read_fixture("users-page-1.json"));
    // The defaults are page 1 and the example's size.
    let (_, _, default) = get(&s, &users_path("")).await;
    assert_eq!(default, body);
}

#[tokio::test]
async fn pages_cover_every_user_once_and_end_empty() {
    let s = sim().await;
    let mut ids = std::collections::BTreeSet::new();
    for n in 1..=4 {
        let (_, _, b) = get(&s, &users_path(&format!("?pageNumber={n}&pageSize=10"))).await;
        assert_eq!(b["currentPage"], n);
        assert_eq!(
            (b["totalPages"].as_u64(), b["totalRecords"].as_u64()),
            (Some(4), Some(37))
        );
        let data = b["data"].as_array().unwrap();
        assert_eq!(data.len(), if n == 4 { 7 } else { 10 });
        for u in data {
            assert!(ids.insert(u["Identity"].as_str().unwrap().to_string()));
            // Every user has exactly the example's keys.
            let keys: Vec<_> = u.as_object().unwrap().keys().cloned().collect();
            let want: Vec<_> = read_fixture("users-page-1.json")["data"][0]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            assert_eq!(keys, want);
        }
    }
    assert_eq!(ids.len(), 37);
    let (status, _, b) = get(&s, &users_path("?pageNumber=5&pageSize=10")).await;
    assert_eq!(status, 200);
    assert_eq!(b["data"], json!([]));
    let (_, _, b) = get(&s, &users_path("?pageSize=10000")).await;
    assert_eq!(
        (
            b["totalPages"].as_u64(),
            b["data"].as_array().unwrap().len()
        ),
        (Some(1), 37)
    );
}

#[tokio::test]
async fn licensed_users_have_the_documents_shape_and_criteria() {
    let s = sim().await;
    let (status, _, body) = get(&s, &format!("/api/v2/customer/{GUID}/licensedUsers")).await;
    assert_eq!(status, 200);
    let got = body.as_array().unwrap();
    // The document's example is another tenant (m365x89839532); the sample holds the same
    // users on the v3 example's tenant, with the same criteria.
    for e in read_fixture("licensed-users.json").as_array().unwrap() {
        let moved = json!({
            "sipAddress": e["sipAddress"].as_str().unwrap().replace("m365x89839532", "m365x33712745"),
            "licenseCriteria": e["licenseCriteria"],
        });
        assert!(got.contains(&moved), "missing {moved}");
    }
    for e in got {
        let keys: Vec<_> = e.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["licenseCriteria", "sipAddress"]);
    }
}

#[tokio::test]
async fn bad_requests_are_problem_details() {
    let s = sim().await;
    let documented = [
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "errorTicket",
        "errorCode",
        "traceId",
    ];
    let cases = [
        (users_path("?pageSize=1"), "LP-InvalidPageSize"),
        (users_path("?pageSize=10001"), "LP-InvalidPageSize"),
        (users_path("?pageNumber=0"), "LP-InvalidPageNumber"),
        (users_path("?pageNumber=two"), "LP-InvalidPageNumber"),
        (users_path("?page=2"), "LP-InvalidQuery"),
        (users_path("?pageSize=5&pageSize=6"), "LP-InvalidQuery"),
        (
            "/api/v3/customer/acme/user".to_string(),
            "LP-InvalidCustomerGuid",
        ),
        (
            "/api/v3/customer/00000000-0000-4000-8000-000000000000/user".to_string(),
            "LP-UnknownCustomer",
        ),
        (
            format!("/api/v2/customer/{GUID}/licensedUsers?pageSize=5"),
            "LP-InvalidQuery",
        ),
    ];
    for (path, code) in cases {
        let (status, headers, body) = get(&s, &path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["errorCode"], code, "{path}");
        assert_eq!(body["status"], 400);
        for k in body.as_object().unwrap().keys() {
            assert!(
                documented.contains(&k.as_str()),
                "{k} is not a documented field"
            );
        }
    }
    // The API documents no write: every other method is refused.
    let r = reqwest::Client::new()
        .post(format!("{}{}", s.base_url(), users_path("")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[tokio::test]
async fn auth_and_rate_limit_as_the_fusion_simulator() {
    let s = sim_with(SimOptions {
        token: Some(TOKEN.into()),
        rate_limit: Some(1),
        ..SimOptions::default()
    })
    .await;
    let url = format!("{}{}", s.base_url(), users_path(""));
    let c = reqwest::Client::new();
    assert_eq!(c.get(&url).send().await.unwrap().status().as_u16(), 401);
    let r = c.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let _ = c.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    let r = c.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorCode"], "LP-RateLimited");
    assert_eq!(log(&s).await.len(), 4);
}

// ---- the connector against the simulator and a misbehaving server ----

fn connector(base: &str, customer: &str, token: &str, page_size: u32) -> LivePlatformConnector {
    let mut s = LivePlatformSettings::new(base, customer, TokenSource::Static(token.into()));
    s.page_size = page_size;
    s.http.retry.max_attempts = 2;
    LivePlatformConnector::new(s, Arc::new(Gate::new(0.0, 1))).unwrap()
}

#[tokio::test]
async fn snapshot_pages_and_joins_licenses() {
    let s = sim().await;
    let c = connector(&s.base_url(), GUID, TOKEN, 10);
    let snap = c.snapshot(&[], false).await.unwrap();
    assert_eq!(snap.users.len(), 37);
    assert_eq!(snap.requests, 5, "4 pages of 10 + licensed users");
    let queries: Vec<_> = log(&s)
        .await
        .iter()
        .filter_map(|e| e["query"].as_str().map(str::to_string))
        .collect();
    assert!(
        queries.contains(&"pageNumber=1&pageSize=10".to_string()),
        "{queries:?}"
    );
    let alex = snap
        .users
        .iter()
        .find(|u| u.upn.as_str() == "alexw@m365x33712745.onmicrosoft.com")
        .unwrap();
    assert_eq!(alex.number.as_ref().unwrap().to_string(), "+14255550102");
    assert_eq!(alex.licenses, ["Managed Users - By User Interface"]);
    assert_eq!(
        alex.details.as_ref().unwrap().vrp.as_deref(),
        Some("Unrestricted")
    );
    assert!(snap.catalogs.groups.is_empty());
    assert!(snap
        .catalogs
        .vrps
        .iter()
        .any(|v| v.identity == "DE-National"));
    assert!(c.check().await.unwrap().ok);
    let found = c.find_user(&alex.upn, None).await.unwrap().unwrap();
    assert_eq!(&found, alex);
    assert_eq!(
        c.read_user(&alex.id.to_uppercase()).await.unwrap().as_ref(),
        Some(alex)
    );
    assert_eq!(c.read_user("nobody").await.unwrap(), None);
}

#[tokio::test]
async fn problem_details_become_typed_errors() {
    let s = sim().await;
    let other = "00000000-0000-4000-8000-000000000000";
    match connector(&s.base_url(), other, TOKEN, 10)
        .snapshot(&[], false)
        .await
    {
        Err(ConnectorError::Rejected {
            status,
            code,
            reason,
        }) => {
            assert_eq!((status, code.as_deref()), (400, Some("LP-UnknownCustomer")));
            assert!(
                reason.contains("No customer with umpCustomerGuid"),
                "{reason}"
            );
            assert!(reason.contains("trace id 00-"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match connector(&s.base_url(), GUID, "nope", 10).check().await {
        Err(ConnectorError::Auth {
            status: 403,
            message,
        }) => {
            assert!(!message.contains("nope"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_server_ignoring_page_numbers_or_failing_is_an_error_not_a_loop() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let m = MockServer::start().await;
    let users = format!("/api/v3/customer/{GUID}/user");
    // Always page 1 of 3, whatever is asked.
    Mock::given(method("GET"))
        .and(path(users.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"currentPage": 1, "pageSize": 2, "totalPages": 3, "totalRecords": 5,
                   "data": [{"Identity": "a", "UserPrincipalName": "a@contoso.com"}]}),
        ))
        .mount(&m)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v2/customer/{GUID}/licensedUsers")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "type": "https://tools.ietf.org/html/rfc7231#section-6.6.1", "title": "Internal Server Error",
            "status": 500, "detail": "M365 connection lost", "errorTicket": "TCK-9", "errorCode": "E500"})))
        .mount(&m)
        .await;
    let c = connector(&m.uri(), GUID, TOKEN, 2);
    match c.snapshot(&[], false).await {
        Err(ConnectorError::Retryable { message, .. }) => assert!(
            message.contains("asked for page 2") || message.contains("M365 connection lost"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    // Bounded: two attempts of each read at most (max_attempts = 2), no endless paging.
    assert!(m.received_requests().await.unwrap().len() <= 6);
}

// ---- the real binary: audit, and refusals before any request ----

fn lp_workspace(base_url: &str) -> Workspace {
    let ws = Workspace::new();
    let cfg = format!(
        "db = \"../history.db\"\ntemplates = {t:?}\ndefault_tenant = \"lp\"\n\n\
         [tenants.lp]\nbackend = \"liveplatform\"\nbase_url = {base_url:?}\n\
         customer_id = \"{GUID}\"\ntoken_env = \"LP_E2E_TOKEN\"\nrate_per_second = 0\n\
         request_timeout_s = 5\n\n\
         [tenants.embedded]\nbackend = \"sim\"\nsim_backend = \"liveplatform\"\nseed = {seed:?}\n\
         state = \"../lp-state.db\"\nrate_per_second = 0\n",
        t = repo().join("templates").display().to_string(),
        seed = seed().display().to_string(),
    );
    ws.write("config/teamsync.toml", &cfg);
    ws
}

const AUDIT: &str = "upn,displayName,number,country,vrp\n\
    AdeleV@M365x33712745.OnMicrosoft.com,Adele Vance,+14255550101,US,Unrestricted\n\
    AlexW@M365x33712745.OnMicrosoft.com,Alex Wilber,+14255550199,US,SiteLocationTag-Unrestricted\n\
    LeeG@M365x33712745.OnMicrosoft.com,Lee Gu (Sales),+1 425 555 0108,US,Unrestricted\n\
    EnricoC@M365x33712745.OnMicrosoft.com,Enrico Cattaneo,+442079460123,GB,GB-National\n\
    MeganB@M365x33712745.OnMicrosoft.com,,,,-\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_plans_drift_and_writes_are_refused_before_any_request() {
    let s = sim().await;
    let ws = lp_workspace(&s.base_url());
    ws.write("audit.csv", AUDIT);
    let run = |args: &'static [&'static str]| {
        let mut c = ws.cmd();
        c.env("LP_E2E_TOKEN", TOKEN).args(args);
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) =
        tokio::task::block_in_place(|| run(&["plan", "audit.csv", "--detailed-exitcode"]));
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(out.contains("+14255550102 → +14255550199"), "{out}");
    assert!(
        out.contains("Unrestricted → SiteLocationTag-Unrestricted"),
        "{out}"
    );
    assert!(out.contains("Lee Gu → Lee Gu (Sales)"), "{out}");
    assert!(out.contains("3 unchanged"), "{out}");
    let audit_log = log(&s).await;
    assert!(!audit_log.is_empty());
    assert!(audit_log.iter().all(|e| e["method"] == "GET"));

    reqwest::Client::new()
        .delete(format!("{}/_sim/requests", s.base_url()))
        .send()
        .await
        .unwrap();
    for args in [
        &["sync", "audit.csv"][..],
        &["apply", "audit.csv", "--yes"][..],
    ] {
        let args: &'static [&'static str] = args;
        let (code, out, err) = tokio::task::block_in_place(|| run(args));
        assert_eq!(code, 2, "{args:?}\n{out}\n{err}");
        assert!(err.contains("read-only"), "{err}");
        assert!(err.contains("nothing was sent"), "{err}");
    }
    assert_eq!(log(&s).await, Vec::<Value>::new(), "no request at all");
    // Each refused run is in the history as a failed job saying why, with no items.
    let db = ws.history();
    let mut st = db
        .prepare("SELECT status, reason_code, total_count FROM bulk_jobs ORDER BY id")
        .unwrap();
    let rows: Vec<(String, String, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![
            ("failed".into(), "unsupported".into(), 0),
            ("failed".into(), "unsupported".into(), 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_tenant_lists_exports_and_round_trips() {
    let ws = lp_workspace("http://127.0.0.1:9");
    let r = tokio::task::block_in_place(|| {
        ws.run(&[
            "--output", "json", "tenant", "users", "--tenant", "embedded",
        ])
    });
    r.code(0);
    let users = r.json()["users"].clone();
    assert_eq!(users.as_array().unwrap().len(), 37);
    let r = tokio::task::block_in_place(|| {
        ws.run(&[
            "tenant",
            "export",
            "--tenant",
            "embedded",
            "--out",
            "export.csv",
        ])
    });
    r.code(0);
    let r = tokio::task::block_in_place(|| {
        ws.run(&[
            "plan",
            "export.csv",
            "--tenant",
            "embedded",
            "--detailed-exitcode",
        ])
    });
    r.code(0);
    let r = tokio::task::block_in_place(|| ws.run(&["backends"]));
    r.code(0);
    fn cells(l: &str) -> Vec<&str> {
        l.split_whitespace().collect()
    }
    let header = cells(r.stdout.lines().next().unwrap());
    let row = cells(
        r.stdout
            .lines()
            .find(|l| l.starts_with("liveplatform"))
            .unwrap(),
    );
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    // READ yes, WRITE -, CREATE -, DELETE -, GROUPS -, LICENSES -, VRP yes.
    assert_eq!(
        ["READ", "WRITE", "CREATE", "DELETE", "GROUPS", "LICENSES", "VRP"].map(col),
        ["yes", "-", "-", "-", "-", "-", "yes"]
    );
}

#[tokio::test]
async fn injected_faults_are_problem_details_or_cut_connections_and_are_logged() {
    let s = sim_with(SimOptions {
        token: Some(TOKEN.into()),
        fault_rate: 1.0,
        seed_rng: 7,
        ..SimOptions::default()
    })
    .await;
    let c = reqwest::Client::new();
    let mut answered = 0;
    for _ in 0..6 {
        match c
            .get(format!("{}{}", s.base_url(), users_path("")))
            .bearer_auth(TOKEN)
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                let code = body["errorCode"].as_str().unwrap().to_string();
                assert!(
                    (status, code.as_str()) == (500, "LP-InternalError")
                        || (status, code.as_str()) == (503, "LP-ServiceUnavailable"),
                    "{status} {code}"
                );
                answered += 1;
            }
            Err(e) => assert!(!e.is_status(), "{e}"),
        }
    }
    assert!(answered > 0);
    let entries = log(&s).await;
    assert_eq!(entries.len(), 6);
    assert!(entries.iter().all(|e| e["fault"] == true));
    // The connector gives up after its attempts with a retryable error, not a panic or a loop.
    let conn = connector(&s.base_url(), GUID, TOKEN, 10);
    assert!(matches!(
        conn.snapshot(&[], false).await,
        Err(ConnectorError::Retryable { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_command_serves_the_liveplatform_api() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    /// Stops the simulator even when an assertion fails first.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
        .current_dir(dir.path())
        .env_remove("TEAMSYNC_SIM_TOKEN")
        .args([
            "sim",
            "--backend",
            "liveplatform",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--token", TOKEN, "--state", "lp.db", "--seed"])
        .arg(seed())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = Kill(child);
    let mut line = String::new();
    tokio::task::block_in_place(|| std::io::BufReader::new(stderr).read_line(&mut line)).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let r = reqwest::Client::new()
        .get(format!("{url}?pageSize=2&pageNumber=19"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    drop(child);
    assert_eq!(r.status().as_u16(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (b["totalPages"].as_u64(), b["data"].as_array().map(Vec::len)),
        (Some(19), Some(1))
    );
    assert!(dir.path().join("lp.db").exists());
}
