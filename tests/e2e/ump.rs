//! UMP 365: contract tests of the simulator against the document's examples
//! (`tests/fixtures/ump/`), the connector against the simulator over real HTTP, and the
//! real binary syncing a sheet into an embedded UMP tenant.

use crate::support::{fixture, repo, Workspace};
use serde_json::{json, Value};
use std::sync::Arc;
use teamsync::connector::http::TokenSource;
use teamsync::connector::ump::{UmpConnector, UmpSettings};
use teamsync::connector::{Connector, ConnectorError, Gate};
use teamsync_sim::common::conn::Background;
use teamsync_sim::ump::{start, UmpSim};
use teamsync_sim::SimOptions;

fn doc(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("ump/{name}"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn sim(opts: SimOptions) -> Background {
    let seed = repo().join("samples/ump-tenant.json");
    start(UmpSim::open(None, Some(&seed), opts).unwrap())
        .await
        .unwrap()
}

fn api(s: &Background, path: &str) -> String {
    format!("{}/sysadmin/api/{path}", s.base_url())
}

/// The JSON body of a request's answer.
async fn body(r: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>) -> Value {
    r.await.unwrap().json().await.unwrap()
}

/// Same keys, and where the document shows a value, a value of the same JSON type.
#[track_caller]
fn same_shape(got: &Value, want: &Value, what: &str) {
    let (g, w) = (got.as_object().unwrap(), want.as_object().unwrap());
    let mut gk: Vec<&String> = g.keys().collect();
    let mut wk: Vec<&String> = w.keys().collect();
    gk.sort();
    wk.sort();
    assert_eq!(gk, wk, "{what}: keys differ from the document");
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    for (k, wv) in w {
        if !wv.is_null() && !g[k].is_null() {
            assert_eq!(kind(&g[k]), kind(wv), "{what}.{k}: type differs");
        }
    }
}

#[tokio::test]
async fn contract_system_calls_answer_as_the_document_shows() {
    let s = sim(SimOptions::default()).await;
    let http = reqwest::Client::new();
    let get = |p: &str| {
        let (http, url) = (http.clone(), api(&s, p));
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut lic = get("license").await;
    assert_eq!(
        lic["Expired"], "2099-12-31",
        "the sample seed's license is current"
    );
    lic["Expired"] = json!("2020-03-31");
    assert_eq!(lic, doc("license.json"));
    assert_eq!(get("sysinfo").await, doc("sysinfo.json"));
    assert_eq!(
        get("proxy/registrarpools").await,
        doc("registrarpools.json")
    );
    assert_eq!(
        get("proxy/callpickupgroup/number/").await,
        doc("callpickupgroup.json")
    );
    assert_eq!(get("signindomain").await, doc("signindomain.json"));
    let ranges = get("numberrange").await;
    let want = doc("numberrange.json");
    for (i, w) in want["rows"].as_array().unwrap().iter().enumerate() {
        same_shape(&ranges["rows"][i], w, "numberrange row");
    }
    // Unbounded range: as seeded (10, like the document). Bounded: span 21 minus David's.
    assert_eq!(ranges["rows"][0]["NumbersAvailable"], 10);
    assert_eq!(ranges["rows"][1]["NumbersAvailable"], 20);
    assert_eq!(ranges["rows"][2]["NumbersAvailable"], 99);
}

#[tokio::test]
async fn contract_user_calls_list_detail_and_script() {
    let s = sim(SimOptions::default()).await;
    let http = reqwest::Client::new();
    let list = |body: Option<Value>| {
        let mut rb = http.post(api(&s, "proxy/endpoint/list"));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send()
    };
    let page = body(list(Some(json!({"skip": 0, "take": 2})))).await;
    let want = doc("endpoint-list.json");
    assert_eq!(page["Total"], 6);
    assert_eq!(page["Data"].as_array().unwrap().len(), 2);
    for u in page["Data"].as_array().unwrap() {
        same_shape(u, &want["Data"][0], "list user");
    }
    let all = body(list(None)).await;
    assert_eq!(all["Data"].as_array().unwrap().len(), 6);
    let last = body(list(Some(json!({"skip": 5, "take": 2})))).await;
    assert_eq!(last["Data"].as_array().unwrap().len(), 1);
    for bad in [json!({"take": 0}), json!({"page": 1}), json!({"skip": -1})] {
        let r = list(Some(bad.clone())).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["status"], 400);
        assert!(p["detail"].as_str().is_some());
    }

    let detail = |sip: &str| http.get(api(&s, &format!("proxy/endpoint/{sip}"))).send();
    let walter = body(detail("sip:walter.vanschaik@audiocodes.com")).await;
    let mut want = doc("endpoint-detail.json");
    // Our one addition to the document's detail (see sim::ump::wire::DETAIL_FIELDS).
    want["UsageLocation"] = json!("NL");
    same_shape(&walter, &want, "detail");
    for k in [
        "LineURI",
        "VoicePolicy",
        "CallPickupGroup",
        "ReplicationTicks",
        "UserPrincipalName",
    ] {
        assert_eq!(walter[k], want[k], "{k}");
    }
    let missing = detail("sip:nobody@audiocodes.com").await.unwrap();
    assert_eq!(missing.status(), 404);

    // The document's multi-attribute body, on a user without a number.
    let put = |sip: &str, body: Value| {
        http.put(api(&s, &format!("proxy/endpoint/{sip}/script")))
            .json(&body)
            .send()
    };
    let r = put("sip:bram.jansen@audiocodes.com", doc("script-update.json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bram = body(detail("sip:bram.jansen@audiocodes.com")).await;
    assert_eq!(bram["LineURI"], "tel:+3100000102");
    assert_eq!(bram["DialPlan"], "LyncAlmere.activevoice.lan");
    assert_eq!(bram["EnterpriseVoiceEnabled"], true);
    // Another user cannot take that LineURI; unknown attributes are refused.
    let taken = put(
        "sip:emma.visser@audiocodes.com",
        json!({"LineURI": "tel:+3100000102", "EnterpriseVoiceEnabled": true}),
    )
    .await
    .unwrap();
    assert_eq!(taken.status(), 409);
    let r = put("sip:emma.visser@audiocodes.com", json!({"Groups": ["x"]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Groups is not an attribute"));
}

fn connector(s: &Background, token: TokenSource) -> UmpConnector {
    let mut set = UmpSettings::new(s.base_url());
    set.http.token = token;
    set.page_size = 4;
    set.http.retry.max_attempts = 4;
    set.voice_policies = vec!["International".into(), "National".into()];
    UmpConnector::new(set, Arc::new(Gate::unlimited())).unwrap()
}

#[tokio::test]
async fn connector_reads_pages_details_ranges_and_status() {
    let s = sim(SimOptions::default()).await;
    let c = connector(&s, TokenSource::None);
    let walter = teamsync::model::Upn::parse("walter.vanschaik@audiocodes.com").unwrap();
    let snap = c
        .snapshot(std::slice::from_ref(&walter), false)
        .await
        .unwrap();
    assert_eq!(snap.users.len(), 6);
    // 2 list pages of 4, numberrange, one detail.
    assert_eq!(snap.requests, 4);
    let w = snap.users.iter().find(|u| u.upn == walter).unwrap();
    assert_eq!(w.id, "sip:walter.vanschaik@audiocodes.com");
    assert_eq!(w.number.as_ref().unwrap().to_string(), "+31365461212");
    assert_eq!(w.country.as_ref().unwrap().as_str(), "NL");
    assert_eq!(
        w.details.as_ref().unwrap().vrp.as_deref(),
        Some("International")
    );
    let ams = snap
        .number_ranges
        .iter()
        .find(|r| r.name == "NL-Amsterdam")
        .unwrap();
    assert_eq!(ams.numbers_free.len(), 99);
    assert_eq!(ams.numbers_free[0].to_string(), "+31205550101");
    let unbounded = &snap.number_ranges[0];
    assert!(unbounded.numbers_free.is_empty());
    assert_eq!(snap.catalogs.vrps.len(), 2);

    let st = c.check().await.unwrap();
    assert!(st.ok);
    assert_eq!(st.details["sysinfo"]["WebAdminVersion"], "8.0.0.413");
    assert_eq!(
        st.details["sip_domains"],
        json!(["audiocodes.com", "hostlync.com"])
    );
    assert!(c
        .read_user("sip:nobody@audiocodes.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn connector_through_an_authenticating_proxy_and_a_rate_limit() {
    let s = sim(SimOptions {
        token: Some("proxy-secret".into()),
        rate_limit: Some(3),
        ..SimOptions::default()
    })
    .await;
    let anon = connector(&s, TokenSource::None);
    let e = anon.check().await.unwrap_err();
    assert!(matches!(e, ConnectorError::Auth { status: 401, .. }), "{e}");
    let c = connector(&s, TokenSource::Static("proxy-secret".into()));
    // 2 pages, ranges and 6 details: past the burst of 3, so 429s pause the gate and the
    // reads are retried.
    let snap = c.snapshot(&[], true).await.unwrap();
    assert_eq!(snap.users.len(), 6);
    assert!(snap.users.iter().all(|u| u.details.is_some()));
    let log = body(reqwest::get(format!("{}/_sim/requests", s.base_url()))).await;
    let statuses: Vec<u64> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(!format!("{e:?}{log}").contains("proxy-secret"));
}

fn ump_workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "templates/ump-nl.toml",
        "description = \"UMP users in Amsterdam\"\ncountry = \"NL\"\nnumber_range = \"NL-Amsterdam\"\n",
    );
    ws.write(
        "config/teamsync.toml",
        &format!(
            "db = \"../history.db\"\ntemplates = \"../templates\"\ndefault_tenant = \"ump\"\n\n\
             [tenants.ump]\nbackend = \"sim\"\nsim_backend = \"ump\"\nseed = {seed:?}\n\
             state = \"../ump-tenant.db\"\nrate_per_second = 0\nrequest_timeout_s = 5\n",
            seed = repo().join("samples/ump-tenant.json").display().to_string(),
        ),
    );
    ws
}

#[test]
fn e2e_sync_a_sheet_into_ump_with_auto_numbers_then_nothing_to_do() {
    let ws = ump_workspace();
    ws.write(
        "users.csv",
        "upn,displayName,number,country,vrp,template\n\
         walter.vanschaik@audiocodes.com,Walter van Schaik,+31365461212,NL,,\n\
         bram.jansen@audiocodes.com,,+31205550101,,National,\n\
         chloe.peeters@audiocodes.com,,auto:NL-Amsterdam,NL,,\n\
         david.smit@audiocodes.com,,-,,-,\n\
         emma.visser@audiocodes.com,Emma Visser,auto,,International,ump-nl\n",
    );
    let plan = ws.run(&["plan", "users.csv"]);
    plan.code(0);
    // Anna holds …100 and bram claims …101: the autos get …102 and …103, in sheet order.
    assert!(plan.stdout.contains("+31205550102"), "{}", plan.stdout);
    assert!(plan.stdout.contains("+31205550103"), "{}", plan.stdout);
    ws.run(&["sync", "users.csv"]).code(0);
    ws.run(&["plan", "users.csv", "--detailed-exitcode"])
        .code(0);
    let again = ws.run(&["sync", "users.csv", "--output", "json"]);
    again.code(0);
    let users = ws.run(&["tenant", "users", "--output", "json"]);
    let users = users.json()["users"].clone();
    let find = |u: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["upn"] == u)
            .cloned()
            .unwrap()
    };
    let chloe = find("chloe.peeters@audiocodes.com");
    assert_eq!(chloe["number"], "+31205550102");
    assert_eq!(chloe["country"], "NL", "was BE in the seed");
    let emma = find("emma.visser@audiocodes.com");
    assert_eq!(emma["number"], "+31205550103");
    assert_eq!(emma["display_name"], "Emma Visser");
    assert_eq!(emma["country"], "NL");
    assert_eq!(find("david.smit@audiocodes.com")["number"], Value::Null);
    let ranges = ws.run(&["tenant", "numbers", "--output", "json"]).json();
    let ams = ranges["number_ranges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "NL-Amsterdam")
        .cloned()
        .unwrap();
    assert_eq!(ams["numbers_free"][0], "+31205550104");
    assert_eq!(ams["numbers_free"].as_array().unwrap().len(), 96);
    // The tenant exported as a sheet (the columns UMP cannot carry left empty) plans to
    // nothing.
    ws.run(&["tenant", "export", "--out", "export.csv"]).code(0);
    let sheet = std::fs::read_to_string(ws.path("export.csv")).unwrap();
    let mut lines = sheet.lines();
    assert_eq!(
        lines.next(),
        Some("upn,displayName,number,country,vrp,groups,licenses,customerLicenses"),
        "{sheet}"
    );
    assert!(lines.all(|l| l.ends_with(",,,")), "{sheet}");
    ws.run(&["plan", "export.csv", "--detailed-exitcode"])
        .code(0);
    // The history recorded the chosen number as the item's desired row.
    let data: String = ws
        .history()
        .query_row(
            "SELECT data FROM job_items WHERE upn = 'chloe.peeters@audiocodes.com' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(data.contains("+31205550102"), "{data}");
}

#[test]
fn e2e_fields_ump_cannot_carry_are_plan_errors() {
    let ws = ump_workspace();
    ws.write(
        "groups.csv",
        "upn,displayName,groups,licenses\n\
         walter.vanschaik@audiocodes.com,Walter van Schaik,All Company,MCOEV\n\
         new.user@audiocodes.com,New User,,\n\
         anna.dekker@audiocodes.com,Anna de Jong,,\n",
    );
    let r = ws.run(&["plan", "groups.csv"]);
    r.code(2);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("the ump backend cannot set groups"), "{all}");
    assert!(all.contains("the ump backend cannot set licenses"), "{all}");
    assert!(all.contains("cannot create users"), "{all}");
    // The display name is read, not written (the document's updatable attributes lack it):
    // another one is a plan error, the same one (walter's) none.
    assert!(
        all.contains("anna.dekker@audiocodes.com: has displayName Anna Dekker in ump; its API cannot change displayName"),
        "{all}"
    );
    assert!(
        !all.contains("walter.vanschaik@audiocodes.com: has displayName"),
        "{all}"
    );
    let st = ws.run(&["tenant", "status", "--output", "json"]);
    st.code(0);
    assert_eq!(
        st.json()["details"]["sysinfo"]["ServerName"],
        "UMP-QA.ocshost.nl"
    );
    let b = ws.run(&["backends", "--output", "json"]);
    let ump = b.json()["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["backend"] == "ump")
        .cloned()
        .unwrap();
    assert_eq!(ump["available"], true);
    assert_eq!(ump["capabilities"]["number_ranges"], true);
    assert_eq!(ump["capabilities"]["groups"], false);
}

#[tokio::test]
async fn cli_sim_backend_ump_serves_the_document_paths() {
    let ws = Workspace::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let seed = repo().join("samples/ump-tenant.json");
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("teamsync"))
        .current_dir(ws.dir.path())
        .args(["sim", "--backend", "ump", "--listen", &listen, "--seed"])
        .arg(&seed)
        .args(["--token", "proxy-t"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}/sysadmin/api/sysinfo");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let answer = loop {
        match http.get(&url).bearer_auth("proxy-t").send().await {
            Ok(r) => break r,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => {
                let _ = child.kill();
                panic!("simulator did not come up: {e}");
            }
        }
    };
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    let anon = http.get(&url).send().await.map(|r| r.status());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
    assert_eq!(body, doc("sysinfo.json"));
    assert_eq!(anon.unwrap(), 401);
    let r = ws.run(&["sim", "--backend", "nope", "--seed", "x.json"]);
    r.code(2);
    assert!(
        r.stderr.contains("available simulators: ") && r.stderr.contains("ump"),
        "{}",
        r.stderr
    );
}
