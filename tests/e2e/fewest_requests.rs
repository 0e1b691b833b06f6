//! Fewest requests (issue 16), as an operator meets it: the real binary syncs a Fusion
//! tenant (the simulator over HTTP, its request log counting what was sent) through
//! Fusion's own bulk update, in waves when numbers move, with each user's result mapped
//! from the bulk answer, falling back to per-user requests when the tenant refuses bulk,
//! recovering a lost answer from Fusion's bulk history, and linking the two histories.

use super::support::{repo, Run, Workspace};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use teamsync_sim::common::conn::Background;
use teamsync_sim::fusion::FusionSim;
use teamsync_sim::SimOptions;

const TOKEN: &str = "fewest-requests-token";
const TOKEN_VAR: &str = "FEWEST_REQUESTS_TOKEN";

struct Tenant {
    server: Background,
    table: String,
}

impl Tenant {
    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.server.base_url()))
            .await
            .expect("sim")
            .json()
            .await
            .expect("sim json")
    }

    async fn log(&self) -> Vec<Value> {
        self.get("/_sim/requests").await["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn clear_log(&self) {
        reqwest::Client::new()
            .delete(format!("{}/_sim/requests", self.server.base_url()))
            .send()
            .await
            .expect("clear log");
    }

    /// The simulator's bulk history, newest first (the API, with the token).
    async fn bulk_history(&self, prefix: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{prefix}/users/bulk", self.server.base_url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("bulk history")
            .json()
            .await
            .expect("bulk history json")
    }

    /// A user as the simulator holds it now.
    async fn user(&self, upn: &str) -> Value {
        let state = self.get("/_sim/state").await;
        state["users"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["msTeams"]["userPrincipalName"] == upn)
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// The sample tenant behind `sim`, served with `layer` in front (a Fusion without the
/// bulk endpoint, say).
async fn fusion_with(
    opts: SimOptions,
    sim: impl FnOnce(FusionSim) -> FusionSim,
    layer: impl FnOnce(axum::Router) -> axum::Router,
) -> (Tenant, String) {
    let opts = SimOptions {
        token: Some(TOKEN.into()),
        ..opts
    };
    let s = sim(FusionSim::open(None, Some(&repo().join("samples/tenant.json")), opts).unwrap());
    let t = s.tenant_path();
    let server = Background::spawn(layer(s.router())).await.unwrap();
    let table = format!(
        "backend = \"fusion\"\nbase_url = {:?}\ndraas_instance = {:?}\ntenant_uuid = {:?}\n\
         subscription_id = {}\ntoken_env = \"{TOKEN_VAR}\"\nrate_per_second = 0\n",
        server.base_url(),
        t.draas_instance,
        t.tenant_uuid,
        t.subscription_id
    );
    (Tenant { server, table }, t.api_prefix())
}

async fn fusion(opts: SimOptions) -> (Tenant, String) {
    fusion_with(opts, |s| s, |r| r).await
}

fn workspace(tenant: &Tenant, extra: &str) -> Workspace {
    Workspace::with_tenant_table(&format!("{}{extra}", tenant.table))
}

/// Runs the binary off the async runtime (the simulator serves on it meanwhile).
async fn run(ws: &Workspace, args: &[&str]) -> Run {
    tokio::task::block_in_place(|| ws.run_with_env(args, &[(TOKEN_VAR, TOKEN)]))
}

async fn last_job(ws: &Workspace) -> Value {
    let show = run(ws, &["--output", "json", "jobs", "show", "1"]).await;
    show.code(0);
    show.json()
}

fn item<'a>(job: &'a Value, upn: &str) -> &'a Value {
    job["job_items"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["upn"] == upn))
        .unwrap_or_else(|| panic!("no item {upn} in {job}"))
}

fn writes(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter(|e| e["method"] != "GET")
        .map(|e| {
            format!(
                "{} {}",
                e["method"].as_str().unwrap_or(""),
                e["path"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn bulk_puts(log: &[Value]) -> Vec<&Value> {
    log.iter()
        .filter(|e| {
            e["method"] == "PUT"
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/users/bulk"))
        })
        .collect()
}

/// Eight existing users changed (new numbers, a VRP, a rename) and two new ones.
const ONBOARDING: &str = "upn,displayName,number,country,vrp,licenses\n\
    bram.hendriks@contoso.onmicrosoft.com,Bram Hendriks,+31302861210,NL,NL-National,ENTERPRISEPACK;MCOEV\n\
    elodie.michel@contoso.onmicrosoft.com,Elodie Michel,+33140201010,FR,FR-National,STANDARDPACK;MCOEV\n\
    fabien.lefebvre@contoso.onmicrosoft.com,Fabien Lefebvre,+33140201011,FR,FR-National,ENTERPRISEPACK;MCOEV\n\
    hanne.claes@contoso.onmicrosoft.com,Hanne Claes,+3225405230,BE,BE-National,STANDARDPACK;MCOEV\n\
    ines.goossens@contoso.onmicrosoft.com,Ines Goossens,+3225405231,BE,BE-National,STANDARDPACK;MCOEV\n\
    jonas.wouters@contoso.onmicrosoft.com,Jonas Wouters,+3225405232,BE,BE-National,ENTERPRISEPACK;MCOEV\n\
    david.maes@contoso.onmicrosoft.com,David Maes-Peeters,,,,\n\
    alice.martin@contoso.onmicrosoft.com,Alice Martin,,,Global,\n\
    new.one@contoso.onmicrosoft.com,New One,+3225405233,BE,BE-National,STANDARDPACK;MCOEV\n\
    new.two@contoso.onmicrosoft.com,New Two,,NL,,\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_goes_through_fusions_bulk_update_and_links_both_histories() {
    let (tenant, prefix) = fusion(SimOptions::default()).await;
    let ws = workspace(&tenant, "bulk_size = 4\n");
    ws.write("users.csv", ONBOARDING);
    let sync = run(&ws, &["sync", "users.csv"]).await;
    sync.code(0);
    let log = tenant.log().await;
    // Ten users, four per request: three bulk requests and not one per-user write.
    let w = writes(&log);
    assert_eq!(w.len(), 3, "{w:#?}");
    assert!(w.iter().all(|w| w.ends_with("/users/bulk")), "{w:#?}");
    // Read-back: the list for everyone, the single GET only for users whose VRP changed
    // (it is only there); never for David, whose name the list shows.
    let single: Vec<&str> = log
        .iter()
        .filter(|e| {
            e["method"] == "GET" && e["path"].as_str().is_some_and(|p| p.contains("/user/"))
        })
        .filter_map(|e| e["path"].as_str())
        .collect();
    let snapshot_and_verify_gets = single.len();
    assert!(snapshot_and_verify_gets <= 2 * 9, "{single:#?}");
    let job = last_job(&ws).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["outcomes"]["created"], 2, "{job}");
    assert_eq!(job["outcomes"]["updated"], 8, "{job}");
    // The created users are there, as `POST users` would have made them: no group from
    // Fusion's default template.
    let new_two = tenant.user("new.two@contoso.onmicrosoft.com").await;
    assert_eq!(new_two["msTeams"]["location"], "NL", "{new_two}");
    assert!(
        new_two["msTeams"]["groups"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{new_two}"
    );
    let alice = tenant.user("alice.martin@contoso.onmicrosoft.com").await;
    assert_eq!(alice["msTeams"]["vrp"], "Global");
    assert_eq!(alice["msTeams"]["displayName"], "Alice Martin");
    // Both histories: Fusion's jobs are titled after ours, and `jobs show` names them.
    let fusion_jobs = tenant.bulk_history(&prefix).await;
    let titles: Vec<&str> = fusion_jobs["bulks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["title"].as_str())
        .collect();
    let job_id = job["job_id"].as_str().unwrap();
    assert_eq!(titles.len(), 3, "{fusion_jobs}");
    assert!(titles.iter().all(|t| t.contains(job_id)), "{titles:?}");
    let linked = job["backend_bulks"].as_array().unwrap();
    assert_eq!(linked.len(), 3, "{job}");
    assert!(linked.iter().all(|b| b["id"].is_i64()), "{job}");
    let human = run(&ws, &["jobs", "show", "1"]).await;
    human.code(0);
    assert!(
        human
            .stdout
            .contains("sent as 3 bulk requests (the tenant's own bulk history):"),
        "{}",
        human.stdout
    );
    for b in fusion_jobs["bulks"].as_array().unwrap() {
        assert!(
            human.stdout.contains(&format!(
                "#{} (job {})",
                b["id"],
                b["job_id"].as_str().unwrap()
            )),
            "{}",
            human.stdout
        );
    }
    // Nothing left to do.
    run(&ws, &["plan", "users.csv", "--detailed-exitcode"])
        .await
        .code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_207_fails_only_the_users_fusion_refused() {
    let (tenant, _) = fusion(SimOptions::default()).await;
    let ws = workspace(&tenant, "");
    // +3225409999 is not one of the subscription's numbers: Fusion refuses that user.
    ws.write(
        "users.csv",
        "upn,displayName,number,country,vrp,licenses\n\
         hanne.claes@contoso.onmicrosoft.com,Hanne Claes,+3225405230,BE,BE-National,STANDARDPACK;MCOEV\n\
         ines.goossens@contoso.onmicrosoft.com,Ines Goossens,+3225409999,BE,BE-National,STANDARDPACK;MCOEV\n\
         jonas.wouters@contoso.onmicrosoft.com,Jonas Wouters,+3225405232,BE,BE-National,ENTERPRISEPACK;MCOEV\n",
    );
    run(&ws, &["sync", "users.csv"]).await.code(1);
    let log = tenant.log().await;
    let puts = bulk_puts(&log);
    assert_eq!(puts.len(), 1, "{log:#?}");
    assert_eq!(puts[0]["status"], 207);
    assert_eq!(writes(&log).len(), 1);
    let job = last_job(&ws).await;
    assert_eq!(job["status"], "partial", "{job}");
    let ines = item(&job, "ines.goossens@contoso.onmicrosoft.com");
    assert_eq!(ines["status"], "error");
    assert!(
        ines["error_reason"]
            .as_str()
            .is_some_and(|r| r.contains("+3225409999") && r.contains("subscription")),
        "{ines}"
    );
    assert!(
        ines["error_code"]
            .as_str()
            .is_some_and(|c| c.parse::<i64>().is_ok()),
        "{ines}"
    );
    for ok in [
        "hanne.claes@contoso.onmicrosoft.com",
        "jonas.wouters@contoso.onmicrosoft.com",
    ] {
        assert_eq!(item(&job, ok)["status"], "success", "{job}");
    }
}

/// `refused`: bulk requests refused in front of the simulator (which does not log them).
async fn falls_back(tenant: Tenant, what: &str, refused: &AtomicUsize) {
    let ws = workspace(&tenant, "");
    ws.write("users.csv", ONBOARDING);
    let sync = run(&ws, &["sync", "users.csv"]).await;
    sync.code(0);
    let warnings = sync.stderr.matches("refuses bulk requests").count();
    assert_eq!(warnings, 1, "{what}: one warning\n{}", sync.stderr);
    let log = tenant.log().await;
    let tried = bulk_puts(&log).len() + refused.load(Ordering::SeqCst);
    assert_eq!(tried, 1, "{what}: bulk tried once");
    assert!(
        writes(&log).len() > 10,
        "{what}: per-user requests: {:#?}",
        writes(&log)
    );
    let job = last_job(&ws).await;
    assert_eq!(job["status"], "success", "{what}: {job}");
    assert_eq!(
        job["backend_bulks"].as_array().map_or(0, Vec::len),
        0,
        "{what}"
    );
    run(&ws, &["plan", "users.csv", "--detailed-exitcode"])
        .await
        .code(0);
}

/// A Fusion without the bulk endpoint: `status` for `PUT …/users/bulk`.
fn without_bulk(
    status: u16,
    refused: Arc<AtomicUsize>,
) -> impl FnOnce(axum::Router) -> axum::Router {
    move |router: axum::Router| {
        router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let refused = refused.clone();
                async move {
                    if req.method() == axum::http::Method::PUT
                        && req.uri().path().ends_with("/users/bulk")
                    {
                        refused.fetch_add(1, Ordering::SeqCst);
                        return axum::response::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(
                                r#"{"error": {"code": 1, "reason": "no such endpoint"}}"#,
                            ))
                            .unwrap_or_default();
                    }
                    next.run(req).await
                }
            },
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_refusing_bulk_gets_per_user_requests_with_one_warning() {
    let (t, _) = fusion_with(
        SimOptions::default(),
        |s| s.deny_roles(&[teamsync_sim::fusion::bulk::ROLE_BULK]),
        |r| r,
    )
    .await;
    falls_back(t, "403 missing role", &AtomicUsize::new(0)).await;
    for status in [404, 405] {
        let refused = Arc::new(AtomicUsize::new(0));
        let (t, _) = fusion_with(
            SimOptions::default(),
            |s| s,
            without_bulk(status, refused.clone()),
        )
        .await;
        falls_back(t, &status.to_string(), &refused).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_moving_between_users_is_released_in_one_wave_and_claimed_in_the_next() {
    let (tenant, prefix) = fusion(SimOptions::default()).await;
    let ws = workspace(&tenant, "");
    // Bob's number goes to Hanne; Bob takes a new one.
    ws.write(
        "users.csv",
        "upn,displayName,number,country,vrp,licenses\n\
         bob.peeters@contoso.onmicrosoft.com,Bob Peeters,+3225405240,BE,BE-National,\n\
         hanne.claes@contoso.onmicrosoft.com,Hanne Claes,+3225405202,BE,BE-National,STANDARDPACK;MCOEV\n",
    );
    run(&ws, &["sync", "users.csv"]).await.code(0);
    let log = tenant.log().await;
    assert_eq!(bulk_puts(&log).len(), 2, "{log:#?}");
    assert_eq!(writes(&log).len(), 2);
    // Fusion's history (newest first): Bob's release, then Hanne's claim.
    let h = tenant.bulk_history(&prefix).await;
    let ids: Vec<i64> = h["bulks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["id"].as_i64())
        .collect();
    let details = |id: i64| {
        let url = format!("{}{prefix}/users/bulk/{id}", tenant.server.base_url());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first = details(ids[1]).await;
    let second = details(ids[0]).await;
    assert_eq!(
        first["job_items"][0]["upn"], "bob.peeters@contoso.onmicrosoft.com",
        "{first}"
    );
    assert_eq!(
        second["job_items"][0]["upn"], "hanne.claes@contoso.onmicrosoft.com",
        "{second}"
    );
    let hanne = tenant.user("hanne.claes@contoso.onmicrosoft.com").await;
    assert_eq!(hanne["draas"]["phoneNumber"], "+3225405202");
    assert_eq!(last_job(&ws).await["status"], "success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_release_keeps_the_claim_from_being_sent() {
    let (tenant, prefix) = fusion(SimOptions::default()).await;
    let ws = workspace(&tenant, "");
    // Bob's new number is not the subscription's: his item fails, so his old number is
    // never released and Hanne's claim of it must not go out.
    ws.write(
        "users.csv",
        "upn,displayName,number,country,vrp,licenses\n\
         bob.peeters@contoso.onmicrosoft.com,Bob Peeters,+3225409999,BE,BE-National,\n\
         hanne.claes@contoso.onmicrosoft.com,Hanne Claes,+3225405202,BE,BE-National,STANDARDPACK;MCOEV\n",
    );
    run(&ws, &["sync", "users.csv"]).await.code(1);
    let log = tenant.log().await;
    assert_eq!(
        writes(&log).len(),
        1,
        "only Bob's request: {:#?}",
        writes(&log)
    );
    let h = tenant.bulk_history(&prefix).await;
    assert_eq!(h["bulks"].as_array().map_or(0, Vec::len), 1, "{h}");
    let job = last_job(&ws).await;
    let hanne = item(&job, "hanne.claes@contoso.onmicrosoft.com");
    assert_eq!(hanne["status"], "error");
    assert_eq!(hanne["error_code"], "dependency", "{hanne}");
    assert_eq!(
        item(&job, "bob.peeters@contoso.onmicrosoft.com")["status"],
        "error"
    );
    let bob = tenant.user("bob.peeters@contoso.onmicrosoft.com").await;
    assert_eq!(bob["draas"]["phoneNumber"], "+3225405202");
    assert!(tenant.user("hanne.claes@contoso.onmicrosoft.com").await["draas"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_bulk_answer_is_read_from_fusions_history_not_guessed() {
    // Every write is applied and its answer lost: only Fusion's history can tell.
    let (tenant, _) = fusion(SimOptions {
        lost_answer_rate: 1.0,
        ..SimOptions::default()
    })
    .await;
    let ws = workspace(&tenant, "");
    ws.write("users.csv", ONBOARDING);
    run(&ws, &["sync", "users.csv"]).await.code(0);
    let log = tenant.log().await;
    let puts = bulk_puts(&log);
    assert_eq!(puts.len(), 1, "sent once, never again: {log:#?}");
    assert_eq!(puts[0]["fault_kind"], "lost_answer");
    assert!(
        log.iter().any(|e| e["method"] == "GET"
            && e["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/users/bulk"))
            && e["query"].as_str().is_some_and(|q| q.contains("search="))),
        "looked up in the history: {log:#?}"
    );
    let job = last_job(&ws).await;
    assert_eq!(job["status"], "success", "{job}");
    assert_eq!(job["outcomes"]["created"], 2, "{job}");
    tenant.clear_log().await;
    run(&ws, &["plan", "users.csv", "--detailed-exitcode"])
        .await
        .code(0);
}
