//! Microsoft Graph: the real binary against the Graph simulator over HTTP, through the
//! client-credentials token (the secret in an environment variable), JSON batches and
//! asynchronous number operations; and the simulator's answers against the documents'
//! examples.

use crate::support::{fixture, repo, Run, Workspace};
use serde_json::{json, Value};
use teamsync_sim::common::conn::Background;
use teamsync_sim::graph::GraphSim;
use teamsync_sim::SimOptions;

const SECRET: &str = "graph-e2e-client-secret-5b1d";
const SECRET_VAR: &str = "GRAPH_E2E_SECRET";

struct Sim {
    base: String,
    tenant_id: String,
    client_id: String,
    _dir: tempfile::TempDir,
    _server: Background,
}

async fn start(opts: SimOptions) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let opts = SimOptions {
        token: Some(SECRET.into()),
        ..opts
    };
    let sim = GraphSim::open(
        Some(&dir.path().join("graph.db")),
        Some(&repo().join("samples/graph-tenant.json")),
        opts,
    )
    .unwrap();
    let (tenant_id, client_id) = sim.app();
    let server = Background::spawn(sim.router()).await.unwrap();
    Sim {
        base: server.base_url(),
        tenant_id,
        client_id,
        _dir: dir,
        _server: server,
    }
}

/// A workspace whose default tenant is the simulator, reached as a real Graph tenant.
fn workspace(sim: &Sim, extra: &str) -> Workspace {
    let ws = Workspace::new();
    let cfg = format!(
        "db = \"../history.db\"\ntemplates = {templates:?}\ndefault_tenant = \"g\"\nlock_dir = \"../locks\"\n\n\
         [tenants.g]\nbackend = \"graph\"\nbase_url = \"{base}\"\nauthority = \"{base}\"\n\
         tenant_id = \"{tenant}\"\nclient_id = \"{client}\"\nclient_secret_env = \"{SECRET_VAR}\"\n\
         voice_routing_policies = [\"BE-National\", \"International\"]\n\
         rate_per_second = 0\nrequest_timeout_s = 5\n{extra}\n",
        templates = repo().join("templates").display().to_string(),
        base = sim.base,
        tenant = sim.tenant_id,
        client = sim.client_id,
    );
    ws.write("config/teamsync.toml", &cfg);
    ws
}

async fn run(ws: &Workspace, args: &[&str]) -> Run {
    let mut c = ws.cmd();
    c.env(SECRET_VAR, SECRET).args(args);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn requests(sim: &Sim) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/_sim/requests", sim.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"].as_array().cloned().unwrap_or_default()
}

async fn job(ws: &Workspace) -> Value {
    let id: i64 = ws
        .history()
        .query_row("SELECT max(id) FROM bulk_jobs", [], |r| r.get(0))
        .unwrap();
    let show = run(ws, &["--output", "json", "jobs", "show", &id.to_string()]).await;
    show.code(0);
    show.json()
}

fn no_secret(r: &Run) {
    assert!(
        !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET),
        "the secret leaked:\n{}\n{}",
        r.stdout,
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_sync_and_replan_to_zero_through_batches_and_number_operations() {
    let sim = start(SimOptions::default()).await;
    let ws = workspace(&sim, "");
    let sheet = repo().join("samples/graph-users.csv").display().to_string();
    let plan = run(&ws, &["plan", &sheet, "--detailed-exitcode"]).await;
    plan.code(4);
    assert!(
        plan.stdout.contains("+ number: (none) → +3225405202"),
        "{}",
        plan.stdout
    );
    let sync = run(&ws, &["sync", &sheet]).await;
    sync.code(0);
    no_secret(&sync);
    assert!(
        sync.stdout.contains("4 updated, 1 unchanged"),
        "{}",
        sync.stdout
    );
    let again = run(&ws, &["plan", &sheet, "--detailed-exitcode"]).await;
    again.code(0);
    assert!(again.all_contains("No changes"), "{}", again.stdout);

    let log = requests(&sim).await;
    let batches = log.iter().filter(|e| e["path"] == "/v1.0/$batch").count();
    assert!(
        batches >= 4,
        "one batch per changed user at least: {batches}"
    );
    let parts: Vec<&Value> = log
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with("$batch#")))
        .collect();
    assert!(
        parts
            .iter()
            .any(|e| e["path"].as_str().unwrap().ends_with("/assignNumber")),
        "{parts:?}"
    );
    assert!(
        parts
            .iter()
            .any(|e| e["path"].as_str().unwrap().ends_with("/unassignNumber")),
        "{parts:?}"
    );
    let polls = log
        .iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.contains("/operations("))
        })
        .count();
    assert!(polls >= 4, "every number operation polled: {polls}");
    // Each number operation's id and final status are on its user's item.
    let j = job(&ws).await;
    let noted: Vec<&str> = j["job_items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["note"].as_str())
        .filter(|n| n.contains("assignNumber") && n.contains("succeeded"))
        .collect();
    assert!(
        noted.iter().any(|n| n.contains("operation ")),
        "number operations recorded on the items: {noted:?}\n{j}"
    );
    // The tenant holds what the sheet says.
    let state: Value = reqwest::get(format!("{}/_sim/state", sim.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n202 = state["numberAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["telephoneNumber"] == "+3225405202")
        .unwrap();
    assert_eq!(
        n202["assignmentTargetId"],
        "5c802b19-3600-83f1-1767-7b9edc7f3802"
    );
    let bert = &state["users"][1];
    assert_eq!(
        bert["policyAssignments"][0]["policyType"],
        "OnlineVoiceRoutingPolicy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_number_operation_is_an_item_error_with_graphs_message() {
    let sim = start(SimOptions::default()).await;
    let ws = workspace(&sim, "");
    // +3225405299 is a conference number: Graph accepts the order, then the operation fails.
    ws.write(
        "users.csv",
        "upn,number,groups,licenses\n\
         bert.claes@contoso.onmicrosoft.com,+3225405299,All Company;Sales,ENTERPRISEPACK;MCOEV\n\
         adele.vance@contoso.onmicrosoft.com,,All Company;BE Office;Sales,\n",
    );
    let sync = run(&ws, &["sync", "users.csv"]).await;
    sync.code(1);
    let j = job(&ws).await;
    let items = j["job_items"].as_array().unwrap();
    let bert = items
        .iter()
        .find(|i| i["upn"] == "bert.claes@contoso.onmicrosoft.com")
        .unwrap_or_else(|| panic!("{j}"));
    assert_eq!(bert["status"], "error", "{bert}");
    let reason = bert["error_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("assignNumber +3225405299")
            && reason.contains("operation ")
            && reason.contains("failed")
            && reason.contains("does not have the userAssignment capability"),
        "{reason}"
    );
    assert_eq!(bert["error_code"], "operation-failed", "{bert}");
    let adele = items
        .iter()
        .find(|i| i["upn"] == "adele.vance@contoso.onmicrosoft.com")
        .unwrap();
    assert_eq!(adele["status"], "success", "{adele}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_inner_429s_converge_without_a_failed_user() {
    // A bucket of 5 requests refilled at 12/s: a batch of more parts than the bucket holds
    // gets 429s inside its 200.
    let sim = start(SimOptions {
        rate_limit: Some(12),
        burst: Some(5),
        ..SimOptions::default()
    })
    .await;
    // Paced under the tenant's rate: what still gets throttled is the batches' bursts.
    let ws = workspace(&sim, "");
    let cfg = std::fs::read_to_string(ws.path("config/teamsync.toml")).unwrap();
    ws.write(
        "config/teamsync.toml",
        &cfg.replace("rate_per_second = 0", "rate_per_second = 10"),
    );
    let sheet = repo().join("samples/graph-users.csv").display().to_string();
    let sync = run(&ws, &["sync", &sheet]).await;
    sync.code(0);
    let log = requests(&sim).await;
    let inner_429 = log
        .iter()
        .filter(|e| {
            e["path"].as_str().is_some_and(|p| p.starts_with("$batch#")) && e["status"] == 429
        })
        .count();
    assert!(inner_429 > 0, "no part was throttled: nothing was tested");
    let j = job(&ws).await;
    assert_eq!(j["status"], "success", "{j}");
    assert_eq!(j["error_count"], 0, "{j}");
    assert!(
        j["throttled_count"].as_u64().unwrap() >= inner_429 as u64,
        "{j}"
    );
    run(&ws, &["plan", &sheet, "--detailed-exitcode"])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_throttling_far_below_the_configured_ceiling_fails_no_user() {
    // The backend's default ceiling (30 req/s, Graph's documented Teams limit) against a
    // tenant that allows 8 req/s with a burst of 4: the gate must learn the real limit
    // from the 429s, whole-request and inside batches alike, and fail nobody.
    let sim = start(SimOptions {
        rate_limit: Some(8),
        burst: Some(4),
        ..SimOptions::default()
    })
    .await;
    let ws = workspace(&sim, "");
    let cfg = std::fs::read_to_string(ws.path("config/teamsync.toml")).unwrap();
    ws.write(
        "config/teamsync.toml",
        &cfg.replace("rate_per_second = 0", "rate_per_second = 30"),
    );
    let sheet = repo().join("samples/graph-users.csv").display().to_string();
    let sync = run(&ws, &["sync", &sheet]).await;
    sync.code(0);
    no_secret(&sync);
    let throttled = requests(&sim)
        .await
        .iter()
        .filter(|e| e["status"] == 429)
        .count();
    assert!(
        throttled > 0,
        "the tenant never throttled: nothing was tested"
    );
    let j = job(&ws).await;
    assert_eq!(j["status"], "success", "{j}");
    assert_eq!(j["error_count"], 0, "{j}");
    assert!(j["throttled_count"].as_u64().unwrap() > 0, "{j}");
    run(&ws, &["plan", &sheet, "--detailed-exitcode"])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_stops_before_any_write_and_is_never_shown() {
    let sim = start(SimOptions::default()).await;
    let ws = workspace(&sim, "");
    let sheet = repo().join("samples/graph-users.csv").display().to_string();
    let mut c = ws.cmd();
    c.env(SECRET_VAR, "not-the-secret-9f")
        .args(["sync", &sheet]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(!err.contains("not-the-secret-9f"), "{err}");
    assert!(requests(&sim).await.is_empty(), "nothing reached Graph");
}

/// The simulator against the documents: the batch answer's shape (the batching example),
/// the 429 body (the throttling example), the 20-request cap and `dependsOn`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_in_the_documents_shapes() {
    let sim = start(SimOptions::default()).await;
    let http = reqwest::Client::new();
    let tok: Value = http
        .post(format!("{}/{}/oauth2/v2.0/token", sim.base, sim.tenant_id))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&client_id={}&client_secret={SECRET}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
            sim.client_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_string();
    assert_eq!(tok["token_type"], "Bearer");
    let batch = |body: Value| {
        let http = http.clone();
        let token = token.clone();
        let url = format!("{}/v1.0/$batch", sim.base);
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("graph/docs_json_batching_response.json")).unwrap(),
    )
    .unwrap();
    let (status, v) = batch(json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users?$select=id,displayName&$top=2"},
        {"id": "2", "method": "PATCH", "url": "/users/nobody", "headers": {"Content-Type": "application/json"}, "body": {"displayName": "x"}},
        {"id": "3", "method": "GET", "url": "/subscribedSkus", "dependsOn": ["2"]}
    ]}))
    .await;
    assert_eq!(status, 200, "{v}");
    let answers = v["responses"].as_array().unwrap();
    let keys = |a: &Value| {
        let mut k: Vec<String> = a.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let by_id = |id: &str| answers.iter().find(|a| a["id"] == id).unwrap().clone();
    assert_eq!(keys(&by_id("1")), keys(&doc["responses"][0]));
    assert!(by_id("1")["body"]["@odata.nextLink"]
        .as_str()
        .unwrap()
        .contains("$skiptoken="));
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(
        keys(&by_id("2")["body"]["error"]),
        keys(&doc["responses"][2]["body"]["error"])
    );
    assert_eq!(
        by_id("3")["status"],
        424,
        "a failed dependency fails its dependents"
    );

    let too_many: Vec<Value> = (1..=21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/subscribedSkus"}))
        .collect();
    let (status, v) = batch(json!({ "requests": too_many })).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("20"),
        "{v}"
    );
    let (status, _) = batch(json!({"requests": [
        {"id": "1", "method": "POST", "url": "/users/x/assignLicense", "body": {}}
    ]}))
    .await;
    assert_eq!(status, 400, "a body without Content-Type refuses the batch");

    let throttling: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("graph/docs_throttling_429_response_body.json")).unwrap(),
    )
    .unwrap();
    let body = teamsync_sim::graph::GraphError::throttled(2).body();
    assert_eq!(keys(&body["error"]), keys(&throttling["error"]));
    assert_eq!(
        keys(&body["error"]["innerError"]),
        keys(&throttling["error"]["innerError"])
    );
    assert_eq!(body["error"]["code"], throttling["error"]["code"]);

    // assignLicense takes the documented request (an unknown SKU is refused by name).
    let req: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("graph/docs_user_assignlicense_request.json")).unwrap(),
    )
    .unwrap();
    let r = http
        .post(format!(
            "{}/v1.0/users/5c802b19-3600-83f1-1767-7b9edc7f3802/assignLicense",
            sim.base
        ))
        .bearer_auth(&token)
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("45715bb8-13f9-4bf6-927f-ef96c102d394"),
        "{v}"
    );
}

trait AllContains {
    fn all_contains(&self, s: &str) -> bool;
}

impl AllContains for Run {
    fn all_contains(&self, s: &str) -> bool {
        self.stdout.contains(s) || self.stderr.contains(s)
    }
}
