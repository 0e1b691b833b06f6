//! Incremental refresh (issue 16): a second night over a Fusion tenant (the simulator over
//! HTTP, its request log counting the single-user GETs) trusts the history's reads of the
//! users nothing changed for, still reads and applies every change of the night, finds an
//! edit made outside teamsync on a user of tonight's rotating share, and never plans a
//! write from a stored read.

use super::support::{repo, Run, Workspace};
use serde_json::Value;
use teamsync::refresh::{day_number, in_rotation};
use teamsync_sim::common::conn::Background;
use teamsync_sim::fusion::FusionSim;
use teamsync_sim::SimOptions;

const TOKEN: &str = "incremental-refresh-token";
const TOKEN_VAR: &str = "INCREMENTAL_REFRESH_TOKEN";
/// Half the tenant every night, so the sheet below has users in tonight's share and
/// users outside it whatever the day.
const SHARE: f64 = 0.5;

/// Existing users with a number, each on an office template carrying a VRP and groups.
const USERS: &[(&str, &str, &str)] = &[
    ("bob.peeters", "be-office", "+3225405202"),
    ("charlotte.janssens", "be-office", "+3225405203"),
    ("david.maes", "be-office", "+3225405204"),
    ("emma.jacobs", "be-office", "+3225405205"),
    ("florian.mertens", "be-office", "+3225405206"),
    ("gilles.willems", "be-office", "+3225405207"),
    ("nathan.smets", "be-office", "+3225405208"),
    ("pieter.devries", "nl-office", "+31302861201"),
    ("quinten.jansen", "nl-office", "+31302861202"),
    ("rosa.bakker", "nl-office", "+31302861203"),
    ("sanne.visser", "nl-office", "+31302861204"),
    ("thijs.smit", "nl-office", "+31302861205"),
    ("zoe.vandijk", "nl-office", "+31302861206"),
    ("baptiste.moreau", "fr-office", "+33140201002"),
    ("camille.laurent", "fr-office", "+33140201003"),
    ("damien.simon", "fr-office", "+33140201004"),
    ("hugo.roux", "fr-office", "+33140201005"),
];

fn upn(local: &str) -> String {
    format!("{local}@contoso.onmicrosoft.com")
}

/// The sheet, with `vrp` and `number` overridden for some users.
fn sheet(overrides: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("upn,displayName,template,number,vrp\n");
    for (local, template, number) in USERS {
        let name: Vec<String> = local
            .split('.')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        let (number, vrp) = overrides
            .iter()
            .find(|(l, _, _)| l == local)
            .map_or((*number, ""), |(_, n, v)| (*n, *v));
        s.push_str(&format!(
            "{},{},{template},{number},{vrp}\n",
            upn(local),
            name.join(" ")
        ));
    }
    s
}

struct Tenant {
    server: Background,
    prefix: String,
    table: String,
}

impl Tenant {
    async fn start() -> Tenant {
        let opts = SimOptions {
            token: Some(TOKEN.into()),
            ..SimOptions::default()
        };
        let s = FusionSim::open(None, Some(&repo().join("samples/tenant.json")), opts).unwrap();
        let t = s.tenant_path();
        let server = Background::spawn(s.router()).await.unwrap();
        let table = format!(
            "backend = \"fusion\"\nbase_url = {:?}\ndraas_instance = {:?}\ntenant_uuid = {:?}\n\
             subscription_id = {}\ntoken_env = \"{TOKEN_VAR}\"\nrate_per_second = 0\n\
             refresh_share = {SHARE}\n",
            server.base_url(),
            t.draas_instance,
            t.tenant_uuid,
            t.subscription_id
        );
        Tenant {
            server,
            prefix: t.api_prefix(),
            table,
        }
    }

    async fn state_user(&self, upn: &str) -> Value {
        let state: Value = reqwest::get(format!("{}/_sim/state", self.server.base_url()))
            .await
            .expect("sim")
            .json()
            .await
            .expect("sim json");
        state["users"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["msTeams"]["userPrincipalName"] == upn)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The single-user GETs sent since the log was last cleared, by path.
    async fn single_gets(&self) -> Vec<String> {
        let log: Value = reqwest::get(format!("{}/_sim/requests", self.server.base_url()))
            .await
            .expect("sim")
            .json()
            .await
            .expect("sim json");
        log["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["method"] == "GET")
            .filter_map(|e| e["path"].as_str())
            .filter(|p| p.contains("/user/"))
            .map(str::to_string)
            .collect()
    }

    async fn clear_log(&self) {
        reqwest::Client::new()
            .delete(format!("{}/_sim/requests", self.server.base_url()))
            .send()
            .await
            .expect("clear log");
    }

    /// An edit made outside teamsync: the user's VRP set through the API.
    async fn set_vrp(&self, upn: &str, vrp: &str) {
        let id = self.state_user(upn).await["msTeams"]["id"]
            .as_str()
            .expect("user id")
            .to_string();
        let r = reqwest::Client::new()
            .put(format!(
                "{}{}/users/{id}/vrp",
                self.server.base_url(),
                self.prefix
            ))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "vrp": vrp }))
            .send()
            .await
            .expect("set vrp");
        assert!(r.status().is_success(), "{}", r.status());
    }
}

fn workspace(tenant: &Tenant) -> Workspace {
    Workspace::with_tenant_table(&tenant.table)
}

/// Runs the binary off the async runtime (the simulator serves on it meanwhile).
async fn run(ws: &Workspace, args: &[&str]) -> Run {
    tokio::task::block_in_place(|| ws.run_with_env(args, &[(TOKEN_VAR, TOKEN)]))
}

/// Users of the sheet in tonight's rotating share, and the others.
fn tonight() -> (Vec<&'static str>, Vec<&'static str>) {
    let day = day_number(chrono::Utc::now());
    USERS
        .iter()
        .map(|(l, _, _)| *l)
        .partition(|l| in_rotation(&upn(l), day, SHARE))
}

fn planned<'a>(plan: &'a Value, upn: &str) -> Option<&'a Value> {
    plan["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["upn"] == upn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_night_trusts_the_history_and_still_applies_every_change() {
    let tenant = Tenant::start().await;
    let ws = workspace(&tenant);
    let (share, others) = tonight();
    assert!(
        share.len() >= 2 && others.len() >= 3,
        "{share:?} {others:?}"
    );
    let n = USERS.len();

    // Night 1: a full sync reads every user (its rows carry a VRP) and keeps the reads.
    ws.write("users.csv", &sheet(&[]));
    run(&ws, &["sync", "users.csv"]).await.code(0);
    let kept: i64 = ws
        .history()
        .query_row(
            "SELECT count(*) FROM user_reads WHERE tenant = 't'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, i64::try_from(n).unwrap());

    // A full plan reads every user again: the figure to beat.
    tenant.clear_log().await;
    let full = run(&ws, &["--output", "json", "plan", "users.csv"]).await;
    full.code(0);
    assert_eq!(tenant.single_gets().await.len(), n);
    assert_eq!(full.json()["refresh"]["mode"], "full");

    // Night 2, nothing changed: only tonight's share is read.
    tenant.clear_log().await;
    let plan = run(
        &ws,
        &[
            "--output",
            "json",
            "plan",
            "users.csv",
            "--refresh",
            "incremental",
        ],
    )
    .await;
    plan.code(0);
    let p = plan.json();
    let gets = tenant.single_gets().await;
    assert_eq!(gets.len(), share.len(), "{gets:#?}");
    assert_eq!(p["refresh"]["mode"], "incremental", "{p}");
    assert_eq!(p["refresh"]["trusted"], others.len(), "{p}");
    assert_eq!(p["refresh"]["read"], share.len(), "{p}");
    assert_eq!(p["summary"]["operations"], 0, "{p}");
    let human = run(&ws, &["plan", "users.csv", "--refresh", "incremental"]).await;
    human.code(0);
    let line = format!(
        "refresh: incremental — {} of {n} users' details trusted from the history (read within 7 days), {} read",
        others.len(),
        share.len()
    );
    assert!(human.stdout.contains(&line), "{}", human.stdout);

    // The changes of the night (a VRP and a number, both on users outside tonight's
    // share) are read, applied and verified.
    let (vrp_user, number_user) = (others[0], others[1]);
    let number = if USERS
        .iter()
        .any(|(l, t, _)| *l == number_user && *t == "be-office")
    {
        "+3225405230"
    } else if USERS
        .iter()
        .any(|(l, t, _)| *l == number_user && *t == "nl-office")
    {
        "+31302861230"
    } else {
        "+33140201020"
    };
    let template_number = USERS.iter().find(|(l, _, _)| *l == vrp_user).unwrap().2;
    ws.write(
        "users.csv",
        &sheet(&[
            (vrp_user, template_number, "International"),
            (number_user, number, ""),
        ]),
    );
    tenant.clear_log().await;
    let sync = run(
        &ws,
        &[
            "--output",
            "json",
            "sync",
            "users.csv",
            "--refresh",
            "incremental",
        ],
    )
    .await;
    sync.code(0);
    let gets = tenant.single_gets().await;
    // Tonight's share, the two changed rows, and the read-back of the VRP change (only
    // the single GET shows a VRP): far fewer than one per user.
    assert!(gets.len() <= share.len() + 3, "{gets:#?}");
    assert!(gets.len() < n, "{gets:#?}");
    let v = tenant.state_user(&upn(vrp_user)).await;
    assert_eq!(v["msTeams"]["vrp"], "International", "{v}");
    let u = tenant.state_user(&upn(number_user)).await;
    assert_eq!(u["draas"]["phoneNumber"], number, "{u}");
    run(
        &ws,
        &[
            "plan",
            "users.csv",
            "--refresh",
            "incremental",
            "--detailed-exitcode",
        ],
    )
    .await
    .code(0);

    // An edit outside teamsync on a user of tonight's share is found tonight.
    let edited = upn(share[0]);
    tenant.set_vrp(&edited, "Global").await;
    let plan = run(
        &ws,
        &[
            "--output",
            "json",
            "plan",
            "users.csv",
            "--refresh",
            "incremental",
            "--detailed-exitcode",
        ],
    )
    .await;
    plan.code(4);
    let p = plan.json();
    let user = planned(&p, &edited).expect("the edited user is planned");
    assert!(user["changes"].to_string().contains("Global"), "{user}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_the_plan_would_change_is_read_again_before_it_is_planned() {
    let tenant = Tenant::start().await;
    let ws = workspace(&tenant);
    let (_, others) = tonight();
    ws.write("users.csv", &sheet(&[]));
    run(&ws, &["sync", "users.csv"]).await.code(0);
    // The stored read of a trusted user says a VRP the tenant does not have: a plan from
    // it would change the user, so it is read, and the tenant (already as the sheet says)
    // wins.
    let stale = upn(others[0]);
    let changed = ws
        .history()
        .execute(
            "UPDATE user_reads SET details = json_set(details, '$.vrp', 'Global') WHERE upn = ?1",
            [&stale],
        )
        .unwrap();
    assert_eq!(changed, 1);
    tenant.clear_log().await;
    let plan = run(
        &ws,
        &[
            "--output",
            "json",
            "plan",
            "users.csv",
            "--refresh",
            "incremental",
            "--detailed-exitcode",
        ],
    )
    .await;
    plan.code(0);
    let p = plan.json();
    assert_eq!(p["summary"]["operations"], 0, "{p}");
    assert_eq!(p["refresh"]["trusted"], others.len() - 1, "{p}");
    let id = tenant.state_user(&stale).await["msTeams"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gets = tenant.single_gets().await;
    assert!(gets.iter().any(|g| g.ends_with(&id)), "{gets:#?}");
}
