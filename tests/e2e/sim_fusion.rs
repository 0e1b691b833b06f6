//! Contract and behaviour tests of the Fusion simulator, over real HTTP on loopback.
//!
//! Contract tests compare each answer with the document's example (tests/fixtures/fusion):
//! same keys, same value types, field for field. Behaviour tests pin the rules the simulator
//! enforces (auth, rate limit, tokens, numbers, licenses, faults, persistence).

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use teamsync_sim::fusion::{self, FusionSim, RunningSim};
use teamsync_sim::SimOptions;

pub(crate) fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/tenant.json")
}

pub(crate) fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fusion")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("fixture json")
}

pub(crate) struct Sim {
    pub(crate) run: RunningSim,
    pub(crate) http: reqwest::Client,
    pub(crate) token: Option<String>,
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn code(&self) -> i64 {
        self.body["error"]["code"].as_i64().unwrap_or(-1)
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub(crate) async fn start_with(state: Option<&Path>, seed: &Path, opts: SimOptions) -> Sim {
    let token = opts.token.clone();
    let sim = FusionSim::open(state, Some(seed), opts).expect("open sim");
    let run = fusion::start(sim).await.expect("start sim");
    Sim {
        run,
        http: client(),
        token,
    }
}

pub(crate) async fn sim() -> Sim {
    start_with(None, &sample(), SimOptions::default()).await
}

impl Sim {
    pub(crate) fn url(&self, p: &str) -> String {
        format!("{}{}{}", self.run.base_url(), self.run.api_prefix(), p)
    }

    pub(crate) async fn try_send(
        &self,
        method: Method,
        url: String,
        body: Option<&Value>,
    ) -> Result<Answer, reqwest::Error> {
        let mut rq = self.http.request(method, url);
        if let Some(t) = &self.token {
            rq = rq.bearer_auth(t);
        }
        if let Some(b) = body {
            rq = rq.json(b);
        }
        let resp = rq.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub(crate) async fn send(&self, method: Method, p: &str, body: Option<&Value>) -> Answer {
        self.try_send(method, self.url(p), body)
            .await
            .expect("request")
    }
    pub(crate) async fn get(&self, p: &str) -> Answer {
        self.send(Method::GET, p, None).await
    }
    pub(crate) async fn put(&self, p: &str, body: &Value) -> Answer {
        self.send(Method::PUT, p, Some(body)).await
    }
    pub(crate) async fn post(&self, p: &str, body: &Value) -> Answer {
        self.send(Method::POST, p, Some(body)).await
    }

    pub(crate) async fn admin(&self, method: Method, p: &str) -> Value {
        let resp = self
            .http
            .request(method, format!("{}{}", self.run.base_url(), p))
            .send()
            .await
            .expect("admin");
        resp.json().await.unwrap_or(Value::Null)
    }

    pub(crate) async fn state(&self) -> Value {
        self.admin(Method::GET, "/_sim/state").await
    }

    pub(crate) async fn user_id(&self, upn: &str) -> String {
        let st = self.state().await;
        st["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["msTeams"]["userPrincipalName"] == upn)
            .map_or_else(
                || panic!("no user {upn}"),
                |u| u["msTeams"]["id"].as_str().unwrap().to_string(),
            )
    }

    pub(crate) async fn all_users(&self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut p = format!("/users?{query}");
            if let Some(n) = &next {
                p.push_str(&format!("&next={}", urlenc(n)));
            }
            let a = self.get(&p).await;
            assert_eq!(a.status, 200, "{p}: {}", a.body);
            out.extend(a.body["users"].as_array().unwrap().iter().cloned());
            match a.body.get("next").and_then(Value::as_str) {
                Some(n) => next = Some(n.to_string()),
                None => break,
            }
        }
        out
    }
}

pub(crate) fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(crate) const ALICE: &str = "alice.martin@contoso.onmicrosoft.com";
pub(crate) const BOB: &str = "bob.peeters@contoso.onmicrosoft.com";
pub(crate) const LUCAS: &str = "lucas.lambert@contoso.onmicrosoft.com";
pub(crate) const XANDER: &str = "xander.vos@contoso.onmicrosoft.com";
pub(crate) const MCOEV: &str = "e43b5b99-8dfb-405f-9987-dc307f34bcbd";
pub(crate) const E1: &str = "18181a46-0d4e-45cd-891e-60aabd171b4e";
pub(crate) const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";

/// Same keys (recursively) and same JSON types; arrays compare every element with the
/// example's first one.
pub(crate) fn same_shape(example: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut ek: Vec<&String> = e.keys().collect();
            let mut ak: Vec<&String> = a.keys().collect();
            ek.sort();
            ak.sort();
            if ek != ak {
                return Err(format!("{path}: keys {ak:?}, document has {ek:?}"));
            }
            for (k, v) in e {
                same_shape(v, &a[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                for (i, x) in a.iter().enumerate() {
                    same_shape(first, x, &format!("{path}[{i}]"))?;
                }
            }
            Ok(())
        }
        (Value::String(_), Value::String(_)) | (Value::Bool(_), Value::Bool(_)) => Ok(()),
        (Value::Number(e), Value::Number(a)) if e.is_i64() == a.is_i64() => Ok(()),
        (Value::Null, Value::Null) => Ok(()),
        _ => Err(format!("{path}: {actual} has another type than {example}")),
    }
}

pub(crate) fn assert_shape(example: &Value, actual: &Value) {
    if let Err(e) = same_shape(example, actual, "$") {
        panic!("shape differs from the document: {e}\nactual: {actual}");
    }
}

// ---------------------------------------------------------------- contract tests

#[tokio::test]
async fn contract_status_domains_licenses_vrps_groups() {
    let s = sim().await;
    let a = s.get("/status").await;
    assert_eq!(a.status, 200);
    assert_shape(&fixture("status"), &a.body);

    let a = s.get("/domains").await;
    assert_eq!(a.status, 200);
    assert_shape(&fixture("domains"), &a.body);
    assert_eq!(
        a.body["verifiedDomains"],
        json!(["contoso.onmicrosoft.com", "contoso.com"])
    );

    let a = s.get("/licenses").await;
    assert_eq!(a.status, 200);
    assert_shape(&fixture("licenses"), &a.body);

    let a = s.get("/vrps").await;
    assert_eq!(a.status, 200);
    assert_shape(&fixture("vrps"), &a.body);

    let a = s.get("/groups").await;
    assert_eq!(a.status, 200);
    // The document's last group is an orphan filter entry (another shape): compare with the first.
    let ex = fixture("groups");
    let first = json!({"groups": [ex["groups"][0].clone()]});
    assert_shape(&first, &a.body);
    let px = a.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["displayName"] == "Project X")
        .count();
    assert_eq!(px, 2, "the sample has two groups named Project X");
}

#[tokio::test]
async fn contract_users_list_objects_have_exactly_the_documents_keys() {
    let s = sim().await;
    let ex = fixture("users_list");
    let a = s.get("/users?page_size=3").await;
    assert_eq!(a.status, 200);
    // A page with a continuation token has the example's top-level keys.
    let top: Vec<_> = a.body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(top.len(), 2, "{top:?}");
    assert!(a.body["next"].is_string());

    let users = s.all_users("page_size=50").await;
    assert_eq!(users.len(), 40);
    let find = |upn: &str| {
        users
            .iter()
            .find(|u| u["msTeams"]["userPrincipalName"] == upn)
            .unwrap()
            .clone()
    };
    // Alice: licenses, roles, a number → the document's first user, key for key.
    assert_shape(&ex["users"][0], &find(ALICE));
    // Lucas: location, nothing else → the document's second user.
    assert_shape(&ex["users"][1], &find(LUCAS));
    for u in &users {
        let m = u["msTeams"].as_object().unwrap();
        assert!(!m.contains_key("groups") && !m.contains_key("vrp"), "{u}");
        assert_eq!(
            u.get("draas").is_some(),
            u.get("draas").is_some_and(|d| d["phoneNumber"].is_string())
        );
    }
    let with_number = users.iter().filter(|u| u.get("draas").is_some()).count();
    assert_eq!(with_number, 19);
}

#[tokio::test]
async fn contract_single_user_and_check() {
    let s = sim().await;
    let id = s.user_id(ALICE).await;
    let a = s.get(&format!("/user/{id}")).await;
    assert_eq!(a.status, 200);
    assert_shape(&fixture("user_single"), &a.body);
    assert_eq!(a.body["msTeams"]["vrp"], "International");
    assert_eq!(a.body["draas"]["phoneNumber"], "+3225405201");

    let a = s.get(&format!("/users/{id}/check")).await;
    assert_eq!(a.status, 200);
    assert_shape(&fixture("user_check"), &a.body);
    assert_eq!(a.body["voiceEnabled"], true);

    // A user without a number has no draas object, and vrp is null.
    let id = s.user_id(LUCAS).await;
    let a = s.get(&format!("/user/{id}")).await;
    assert!(a.body.get("draas").is_none());
    assert!(a.body["msTeams"]["vrp"].is_null());
    assert_eq!(a.body["msTeams"]["voiceEnabled"], "no");
}

#[tokio::test]
async fn contract_create_and_update_bodies_from_the_document() {
    let s = sim().await;
    // The document's create body names a domain this tenant has not verified.
    let body = fixture("user_create_request");
    let a = s.post("/users", &body).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.code(), 2011);
    assert_shape(
        &fixture("users_bulk_partial")["errors"][0]["error"],
        &a.body["error"],
    );

    let mut body = body;
    body["domain"] = json!("contoso.onmicrosoft.com");
    let a = s.post("/users", &body).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_shape(&fixture("user_create_response"), &a.body);
    let id = a.body["msTeamsId"].as_str().unwrap().to_string();
    let a = s.post("/users", &body).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.code(), 2010);
    assert!(a.body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("already exists"));

    // The document's full update names groups and a VRP this tenant does not have.
    let upd = fixture("user_update_request");
    let a = s.put(&format!("/users/{id}"), &upd).await;
    assert_eq!(a.status, 400);

    let st = s.state().await;
    let group = |name: &str| {
        st["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["displayName"] == name)
            .unwrap()["id"]
            .clone()
    };
    let upd = json!({
        "displayName": "Thomas A. Anderson",
        "location": "NL",
        "phoneNumber": "+31302861239",
        "groups": [group("All Company"), group("NL Office")],
        "vrp": "NL-National",
        "licenses": [E1, MCOEV],
        "customerLicenses": ["test-sku"]
    });
    let a = s.put(&format!("/users/{id}"), &upd).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = s.get(&format!("/user/{id}")).await;
    assert_shape(&fixture("user_single"), &a.body);
    assert_eq!(
        a.body["msTeams"]["userPrincipalName"],
        "ThomasA@contoso.onmicrosoft.com"
    );
    assert_eq!(a.body["draas"]["customerLicenses"], json!(["test-sku"]));
    assert_eq!(a.body["msTeams"]["groups"].as_array().unwrap().len(), 2);

    // phoneNumber null disables: 204, and the draas object is gone.
    let a = s
        .put(
            &format!("/users/{id}"),
            &json!({"phoneNumber": null, "vrp": null}),
        )
        .await;
    assert_eq!(a.status, 204);
    let a = s.get(&format!("/user/{id}")).await;
    assert!(a.body.get("draas").is_none());
    assert!(a.body["msTeams"]["vrp"].is_null());
}

#[tokio::test]
async fn contract_per_aspect_updates_accept_the_documents_bodies() {
    let s = sim().await;
    let id = s.user_id(LUCAS).await;
    for n in 1..=3 {
        let b = fixture(&format!("user_properties_request_{n}"));
        let a = s.put(&format!("/users/{id}/properties"), &b).await;
        assert_eq!(a.status, 204, "{}", a.body);
    }
    // Documented bodies with ids from another tenant are refused as unknown.
    let a = s
        .put(
            &format!("/users/{id}/groups"),
            &fixture("user_groups_request"),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2030));
    let a = s
        .put(&format!("/users/{id}/vrp"), &fixture("user_vrp_request"))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2040));
    let a = s
        .put(
            &format!("/{id}/licenses"),
            &fixture("manage_licenses_request"),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2031));
    // E1 exists here: the document's licenses body works as is.
    let a = s
        .put(
            &format!("/users/{id}/licenses"),
            &fixture("user_licenses_request"),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    // skuIds with the whole list (MCOEV added, E1 kept).
    let a = s
        .put(&format!("/{id}/licenses"), &json!({"skuIds": [E1, MCOEV]}))
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = s
        .put(
            &format!("/users/{id}/phone_number"),
            &fixture("user_phone_number_request"),
        )
        .await;
    // +31302861233 belongs to the inventory and is free in the sample.
    assert_eq!(a.status, 204, "{}", a.body);
    let a = s
        .put(&format!("/users/{id}/vrp"), &json!({"vrp": "Global"}))
        .await;
    assert_eq!(a.status, 204);
    let a = s.get(&format!("/user/{id}")).await;
    assert_eq!(a.body["msTeams"]["displayName"], "John Doe");
    assert_eq!(a.body["msTeams"]["location"], "BE");
    assert_eq!(a.body["msTeams"]["vrp"], "Global");
    assert_eq!(a.body["draas"]["phoneNumber"], "+31302861233");
    // Required fields: phoneNumber and vrp must be present (null allowed), unknown fields refused.
    let a = s.put(&format!("/users/{id}/vrp"), &json!({})).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 1000));
    let a = s
        .put(
            &format!("/users/{id}/phone_number"),
            &json!({"phone_number": null}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 1000));
    let a = s
        .put(
            &format!("/users/{id}/phone_number"),
            &json!({"phoneNumber": null}),
        )
        .await;
    assert_eq!(a.status, 204);
    let a = s
        .put(&format!("/users/{id}/groups"), &json!({"groups": []}))
        .await;
    assert_eq!(a.status, 204);
    let a = s.get(&format!("/user/{id}")).await;
    assert_eq!(a.body["msTeams"]["groups"], json!([]));
    assert!(a.body.get("draas").is_none());
}

// ---------------------------------------------------------------- behaviour tests

#[tokio::test]
async fn auth_401_without_token_403_with_a_wrong_one() {
    let s = start_with(
        None,
        &sample(),
        SimOptions {
            token: Some("s3cret".into()),
            ..SimOptions::default()
        },
    )
    .await;
    let a = s.get("/status").await;
    assert_eq!(a.status, 200);
    let r = s.http.get(s.url("/status")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 4010);
    let r = s
        .http
        .get(s.url("/status"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The admin surface needs no token.
    let st = s.state().await;
    assert_eq!(st["draas_instance"], "demo");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_counts_refused_requests() {
    let s = start_with(
        None,
        &sample(),
        SimOptions {
            rate_limit: Some(4),
            ..SimOptions::default()
        },
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(s.get("/vrps").await);
    }
    assert!(statuses[..4].iter().all(|a| a.status == 200));
    let a = &statuses[4];
    assert_eq!(a.status, 429);
    assert_eq!(a.code(), 4290);
    let ra: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(ra, 1);
    tokio::time::sleep(Duration::from_secs(ra)).await;
    assert_eq!(s.get("/vrps").await.status, 200);
    // Hammering while throttled pushes the release further away.
    let mut last = 0;
    for _ in 0..12 {
        let a = s.get("/vrps").await;
        if a.status == 429 {
            last = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
        }
    }
    assert!(last >= 3, "Retry-After should grow, got {last}");
}

#[tokio::test]
async fn next_token_is_bound_to_page_size_search_group_and_filters() {
    let s = sim().await;
    let a = s.get("/users?page_size=5").await;
    let next = urlenc(a.body["next"].as_str().unwrap());
    assert_eq!(
        s.get(&format!("/users?page_size=5&next={next}"))
            .await
            .status,
        200
    );
    for bad in [
        format!("/users?page_size=6&next={next}"),
        format!("/users?next={next}"),
        format!("/users?page_size=5&search=a&next={next}"),
        format!("/users?page_size=5&filters=%7B%7D&next={next}"),
    ] {
        let a = s.get(&bad).await;
        assert_eq!((a.status.as_u16(), a.code()), (400, 1003), "{bad}");
    }
    let a = s.get("/users?page_size=5&next=Zm9yZ2Vk").await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 1003));
    // Group-bound token.
    let st = s.state().await;
    let be = st["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["displayName"] == "BE Office")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = s.get(&format!("/users?page_size=2&group={be}")).await;
    let next = urlenc(a.body["next"].as_str().unwrap());
    let a = s.get(&format!("/users?page_size=2&next={next}")).await;
    assert_eq!(a.status, 400);
    let members = s.all_users(&format!("page_size=4&group={be}")).await;
    assert_eq!(members.len(), 15, "the BE users of the BE Office group");
    // Unknown parameters and bad values are 400s.
    assert_eq!(s.get("/users?pagesize=5").await.status, 400);
    assert_eq!(s.get("/users?page_size=0").await.status, 400);
    assert_eq!(s.get("/users?page_size=1000").await.status, 400);
    assert_eq!(s.get("/users?group=nope").await.code(), 2030);
}

#[tokio::test]
async fn search_and_filters() {
    let s = sim().await;
    let a = s.all_users("search=AL").await;
    let names: Vec<_> = a
        .iter()
        .map(|u| u["msTeams"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Alice Martin"]);
    let f = urlenc(r#"{"country":["FR"],"have_number":"yes"}"#);
    let fr = s.all_users(&format!("page_size=3&filters={f}")).await;
    assert_eq!(fr.len(), 5);
    assert!(fr
        .iter()
        .all(|u| u["msTeams"]["location"] == "FR" && u["draas"].is_object()));
    let f = urlenc(r#"{"is_voice_enabled":"no"}"#);
    assert_eq!(s.all_users(&format!("filters={f}")).await.len(), 21);
    let f = urlenc(r#"{"colour":"red"}"#);
    assert_eq!(s.get(&format!("/users?filters={f}")).await.status, 400);
    let a = s.get("/users?search=zzz").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, json!({"users": []}));
}

fn generated_tenant(n: usize) -> Value {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(sample()).unwrap()).unwrap();
    let users: Vec<Value> = (0..n)
        .map(|i| {
            json!({"msTeams": {
                "id": format!("00000000-0000-4000-8000-{:012}", (i * 7919) % 1_000_003),
                "userPrincipalName": format!("gen{i:04}@contoso.com"),
                "displayName": format!("{} Gen {i}", if i % 3 == 0 { "Anna" } else { "Bert" }),
                "groups": [], "location": "BE", "licenses": [], "voiceEnabled": "no", "vrp": null
            }})
        })
        .collect();
    doc["users"] = Value::Array(users);
    doc["resourceAccounts"] = json!([]);
    doc
}

#[tokio::test]
async fn paging_through_a_few_hundred_users_sees_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, generated_tenant(300).to_string()).unwrap();
    let s = start_with(None, &seed, SimOptions::default()).await;
    let all = s.all_users("page_size=37").await;
    assert_eq!(all.len(), 300);
    let mut ids: Vec<_> = all.iter().map(|u| u["msTeams"]["id"].clone()).collect();
    ids.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    ids.dedup();
    assert_eq!(ids.len(), 300);
    let anna = s.all_users("page_size=9&search=anna").await;
    assert_eq!(anna.len(), 100);
    // Default page size is 10.
    let a = s.get("/users").await;
    assert_eq!(a.body["users"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn a_number_cannot_be_linked_twice_or_come_from_outside_the_inventory() {
    let s = sim().await;
    let lucas = s.user_id(LUCAS).await;
    // Lucas first needs a location (he has one) and a Phone System license.
    let a = s
        .put(
            &format!("/users/{lucas}/phone_number"),
            &json!({"phoneNumber": "+3225405250"}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2022));
    assert_eq!(
        s.put(
            &format!("/users/{lucas}/licenses"),
            &json!({"licenses": [MCOEV]})
        )
        .await
        .status,
        204
    );
    // Alice holds +3225405201.
    let a = s
        .put(
            &format!("/users/{lucas}/phone_number"),
            &json!({"phoneNumber": "+3225405201"}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2021));
    assert!(a.body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("already linked"));
    let a = s
        .put(
            &format!("/users/{lucas}/phone_number"),
            &json!({"phoneNumber": "+3225409999"}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2020));
    let a = s
        .put(
            &format!("/users/{lucas}/phone_number"),
            &json!({"phoneNumber": "3225405250"}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 1002));
    // Once Alice releases it, it can move.
    let alice = s.user_id(ALICE).await;
    assert_eq!(
        s.put(
            &format!("/users/{alice}/phone_number"),
            &json!({"phoneNumber": null})
        )
        .await
        .status,
        204
    );
    let a = s
        .put(
            &format!("/users/{lucas}/phone_number"),
            &json!({"phoneNumber": "+3225405201"}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    // Deleting Lucas returns it to the inventory.
    let a = s
        .send(Method::DELETE, &format!("/users/{lucas}"), None)
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(s.get(&format!("/user/{lucas}")).await.status, 404);
    let a = s
        .put(
            &format!("/users/{alice}/phone_number"),
            &json!({"phoneNumber": "+3225405201"}),
        )
        .await;
    assert_eq!(a.status, 204);
}

pub(crate) async fn free(s: &Sim, sku: &str) -> i64 {
    let a = s.get("/licenses").await;
    a.body["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["skuId"] == sku)
        .unwrap()["free"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn license_free_counts_are_consumed_and_released() {
    let s = sim().await;
    let start = free(&s, E3).await;
    assert_eq!(start, 8);
    let st = s.state().await;
    let candidates: Vec<String> = st["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            u["msTeams"]["location"].is_string()
                && !u["msTeams"]["licenses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["skuId"] == E3)
        })
        .map(|u| u["msTeams"]["id"].as_str().unwrap().to_string())
        .collect();
    let mut given = Vec::new();
    for id in candidates.iter().take(start as usize) {
        let a = s
            .put(&format!("/users/{id}/licenses"), &json!({"licenses": [E3]}))
            .await;
        assert_eq!(a.status, 204, "{}", a.body);
        given.push(id.clone());
    }
    assert_eq!(free(&s, E3).await, 0);
    let a = s.get("/licenses?free_only=yes").await;
    assert!(a.body["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["skuId"] != E3 && l["free"].as_i64().unwrap() > 0));
    let id = &candidates[start as usize];
    let a = s
        .put(&format!("/users/{id}/licenses"), &json!({"licenses": [E3]}))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2032));
    // Re-sending a set the user already holds needs no free unit.
    let a = s
        .put(
            &format!("/users/{}/licenses", given[0]),
            &json!({"licenses": [E3]}),
        )
        .await;
    assert_eq!(a.status, 204);
    // Removing (empty set) and deleting release units.
    let a = s
        .put(
            &format!("/users/{}/licenses", given[0]),
            &json!({"licenses": []}),
        )
        .await;
    assert_eq!(a.status, 204);
    let a = s
        .send(Method::DELETE, &format!("/users/{}", given[1]), None)
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(free(&s, E3).await, 2);
    assert_eq!(s.get("/licenses?free_only=maybe").await.status, 400);
}

#[tokio::test]
async fn usage_location_is_required_before_licenses() {
    let s = sim().await;
    let x = s.user_id(XANDER).await;
    let a = s
        .put(&format!("/users/{x}/licenses"), &json!({"licenses": [E1]}))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2033));
    let a = s
        .put(&format!("/{x}/licenses"), &json!({"skuIds": [E1]}))
        .await;
    assert_eq!(a.code(), 2033);
    // In one full update, the location given in the same body counts.
    let a = s
        .put(
            &format!("/users/{x}"),
            &json!({"location": "NL", "licenses": [E1]}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = s
        .put(
            &format!("/users/{x}/properties"),
            &json!({"location": "UK"}),
        )
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 1002));
    let a = s
        .put(
            &format!("/users/{x}/properties"),
            &json!({"location": null}),
        )
        .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn unknown_tenant_path_and_unknown_user_are_404() {
    let s = sim().await;
    let base = s.run.base_url();
    for p in [
        "/api/v01/draas/other/tenants/8d5c3f2a-6b1e-4c9d-a7f0-3e2b1c4d5e6f/subscriptions/12/msteams/status",
        "/api/v01/draas/demo/tenants/00000000-0000-0000-0000-000000000000/subscriptions/12/msteams/users",
        "/api/v01/draas/demo/tenants/8d5c3f2a-6b1e-4c9d-a7f0-3e2b1c4d5e6f/subscriptions/13/msteams/vrps",
        "/api/v01/draas/demo/tenants/8d5c3f2a-6b1e-4c9d-a7f0-3e2b1c4d5e6f/subscriptions/x/msteams/vrps",
    ] {
        let a = s.try_send(Method::GET, format!("{base}{p}"), None).await.unwrap();
        assert_eq!((a.status.as_u16(), a.code()), (404, 2001), "{p}");
    }
    let a = s.get("/user/no-such-user").await;
    assert_eq!((a.status.as_u16(), a.code()), (404, 2002));
    let a = s
        .put("/users/no-such-user/vrp", &json!({"vrp": "Global"}))
        .await;
    assert_eq!(a.status, 404);
    let a = s.get("/nothing-here").await;
    assert_eq!(a.status, 404);
    assert!(a.body["error"]["code"].is_i64());
    let a = s.send(Method::DELETE, "/vrps", None).await;
    assert_eq!(a.status, 405);
    // A body that is not JSON is a 400 in the error shape.
    let r = s
        .http
        .post(s.url("/users"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 1000);
}

async fn outcomes(seed: u64) -> Vec<String> {
    let s = start_with(
        None,
        &sample(),
        SimOptions {
            fault_rate: 0.5,
            seed_rng: seed,
            ..SimOptions::default()
        },
    )
    .await;
    let mut out = Vec::new();
    for _ in 0..24 {
        match s.try_send(Method::GET, s.url("/vrps"), None).await {
            Ok(a) => out.push(a.status.as_u16().to_string()),
            Err(_) => out.push("drop".into()),
        }
    }
    let log = s.admin(Method::GET, "/_sim/requests").await;
    let faults = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fault"] == true)
        .count();
    assert_eq!(faults, out.iter().filter(|o| *o != "200").count());
    out
}

#[tokio::test]
async fn faults_are_reproducible_with_a_seed() {
    let a = outcomes(7).await;
    let b = outcomes(7).await;
    assert_eq!(a, b);
    for kind in ["200", "500", "503", "drop"] {
        assert!(a.iter().any(|o| o == kind), "{kind} missing in {a:?}");
    }
    assert_ne!(a, outcomes(8).await);
}

#[tokio::test]
async fn a_lost_answer_still_applies_the_write() {
    let s = start_with(
        None,
        &sample(),
        SimOptions {
            lost_answer_rate: 1.0,
            ..SimOptions::default()
        },
    )
    .await;
    let body = json!({"displayName": "Lost Answer", "domain": "contoso.com",
                      "username": "lost.answer", "location": "BE"});
    let r = s.try_send(Method::POST, s.url("/users"), Some(&body)).await;
    assert!(r.is_err(), "the connection must close without an answer");
    // Reads are not affected.
    assert_eq!(s.get("/vrps").await.status, 200);
    let id = s.user_id("lost.answer@contoso.com").await;
    assert_eq!(s.get(&format!("/user/{id}")).await.status, 200);
    let r = s.try_send(Method::POST, s.url("/users"), Some(&body)).await;
    assert!(r.is_err());
    let log = s.admin(Method::GET, "/_sim/requests").await;
    let kinds: Vec<_> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_string(),
                e["fault_kind"].clone(),
                e["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        kinds[0],
        ("POST".to_string(), json!("lost_answer"), Value::Null)
    );
    assert_eq!(kinds[1], ("GET".to_string(), Value::Null, json!(200)));
}

#[tokio::test]
async fn a_created_user_is_invisible_during_the_replication_delay() {
    let s = start_with(
        None,
        &sample(),
        SimOptions {
            replication_delay_ms: 400,
            ..SimOptions::default()
        },
    )
    .await;
    let body = json!({"displayName": "Zed Slow", "domain": "contoso.com",
                      "username": "zed.slow", "location": "FR"});
    let a = s.post("/users", &body).await;
    assert_eq!(a.status, 201);
    let id = a.body["msTeamsId"].as_str().unwrap().to_string();
    assert_eq!(s.get(&format!("/user/{id}")).await.status, 404);
    assert_eq!(
        s.put(
            &format!("/users/{id}/properties"),
            &json!({"displayName": "Zed"})
        )
        .await
        .status,
        404
    );
    assert!(s.all_users("search=zed").await.is_empty());
    // Its UPN is taken already.
    assert_eq!(s.post("/users", &body).await.code(), 2010);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.get(&format!("/user/{id}")).await.status, 200);
    assert_eq!(s.all_users("search=zed").await.len(), 1);
}

#[tokio::test]
async fn state_persists_across_restarts_and_the_seed_is_used_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("not-yet").join("tenant.db");
    let s = start_with(Some(&state), &sample(), SimOptions::default()).await;
    let a = s
        .post(
            "/users",
            &json!({"displayName": "Per Sistent", "domain": "contoso.com",
                    "username": "per.sistent", "location": "NL"}),
        )
        .await;
    assert_eq!(a.status, 201);
    let id = a.body["msTeamsId"].as_str().unwrap().to_string();
    assert_eq!(
        s.put(
            &format!("/users/{id}/licenses"),
            &json!({"licenses": [MCOEV]})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        s.put(
            &format!("/users/{id}/phone_number"),
            &json!({"phoneNumber": "+31302861240"})
        )
        .await
        .status,
        204
    );
    let bob = s.user_id(BOB).await;
    assert_eq!(
        s.send(Method::DELETE, &format!("/users/{bob}"), None)
            .await
            .status,
        204
    );
    let before = s.state().await;
    let page1 = s.get("/users?page_size=4").await;
    s.run.shutdown().await;

    let s = start_with(Some(&state), &sample(), SimOptions::default()).await;
    let after = s.state().await;
    assert_eq!(before, after);
    let a = s.get(&format!("/user/{id}")).await;
    assert_eq!(a.body["draas"]["phoneNumber"], "+31302861240");
    assert_eq!(s.get(&format!("/user/{bob}")).await.status, 404);
    // Tokens survive a restart (their key is kept with the state).
    let next = urlenc(page1.body["next"].as_str().unwrap());
    assert_eq!(
        s.get(&format!("/users?page_size=4&next={next}"))
            .await
            .status,
        200
    );
    // A state dump is a valid seed for the same tenant.
    let seed2 = dir.path().join("dump.json");
    std::fs::write(&seed2, after.to_string()).unwrap();
    let s2 = start_with(None, &seed2, SimOptions::default()).await;
    assert_eq!(s2.state().await, after);
}

#[tokio::test]
async fn the_request_log_records_every_request() {
    let s = start_with(
        None,
        &sample(),
        SimOptions {
            token: Some("t0k".into()),
            ..SimOptions::default()
        },
    )
    .await;
    s.get("/users?page_size=2&search=b").await;
    s.put("/users/nobody/vrp", &json!({"vrp": null})).await;
    let r = s.http.get(s.url("/vrps")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let log = s.admin(Method::GET, "/_sim/requests").await;
    let e = log["requests"].as_array().unwrap();
    assert_eq!(e.len(), 3);
    assert_eq!(e[0]["method"], "GET");
    assert_eq!(e[0]["path"], format!("{}/users", s.run.api_prefix()));
    assert_eq!(e[0]["query"], "page_size=2&search=b");
    assert_eq!(e[0]["status"], 200);
    assert_eq!(e[0]["fault"], false);
    assert_eq!(e[1]["method"], "PUT");
    assert_eq!(e[1]["status"], 404);
    assert!(e[1]["query"].is_null());
    assert_eq!(e[2]["status"], 401);
    let t = e[0]["time"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(t).unwrap();
    assert!(
        t.ends_with('Z') && t.len() == "2024-01-01T00:00:00.000Z".len(),
        "{t}"
    );
    assert!(parsed <= chrono::Utc::now());
    s.admin(Method::DELETE, "/_sim/requests").await;
    let log = s.admin(Method::GET, "/_sim/requests").await;
    assert_eq!(log["requests"], json!([]));
}

/// Throughput on loopback without latency: `cargo test --test e2e sim_fusion::throughput
/// -- --ignored --nocapture` (debug build; a release build is several times faster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand with --ignored --nocapture"]
async fn throughput() {
    let s = sim().await;
    let url = s.url("/users?page_size=10");
    let total = 20_000usize;
    let workers = 16usize;
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let http = client();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / workers {
                let r = http.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "GET users: {total} requests in {secs:.2} s = {:.0} req/s",
        total as f64 / secs
    );
    let lucas = s.user_id(LUCAS).await;
    let t0 = std::time::Instant::now();
    let n = 2_000;
    for i in 0..n {
        let a = s
            .put(
                &format!("/users/{lucas}/properties"),
                &json!({"displayName": format!("L {i}")}),
            )
            .await;
        assert_eq!(a.status, 204);
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "PUT properties (sequential): {n} in {secs:.2} s = {:.0} req/s",
        f64::from(n) / secs
    );

    let dir = tempfile::tempdir().unwrap();
    let s = start_with(
        Some(&dir.path().join("t.db")),
        &sample(),
        SimOptions::default(),
    )
    .await;
    let lucas = s.user_id(LUCAS).await;
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let a = s
            .put(
                &format!("/users/{lucas}/properties"),
                &json!({"displayName": format!("L {i}")}),
            )
            .await;
        assert_eq!(a.status, 204);
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "PUT properties (sequential, state file): {n} in {secs:.2} s = {:.0} req/s",
        f64::from(n) / secs
    );
}

// ---------------------------------------------------------------- resource accounts

const VIRTUAL: &str = "440eaaa8-b3e0-484b-a8be-62870b9ba70a";

#[tokio::test]
async fn contract_resource_accounts_list_create_modify_delete() {
    let s = sim().await;
    let ex = fixture("resource_accounts_list");
    let a = s.get("/resource_accounts").await;
    assert_eq!(a.status, 200);
    let list = a.body["resourceAccounts"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let by_type = |t: &str| {
        list.iter()
            .find(|r| r["msTeams"]["accountType"] == t)
            .unwrap()
            .clone()
    };
    // The queue has a number (draas), the attendant none: the document's two examples.
    assert_shape(&ex["resourceAccounts"][0], &by_type("call-queue"));
    assert_shape(&ex["resourceAccounts"][1], &by_type("auto-attendant"));
    let f = urlenc(r#"{"type":"auto-attendant"}"#);
    let a = s.get(&format!("/resource_accounts?filters={f}")).await;
    assert_eq!(a.body["resourceAccounts"].as_array().unwrap().len(), 1);
    let f = urlenc(r#"{"country":["BE"],"have_number":"yes"}"#);
    let a = s.get(&format!("/resource_accounts?filters={f}")).await;
    assert_eq!(a.body["resourceAccounts"].as_array().unwrap().len(), 1);

    // The document's create body: domain not verified here.
    let mut body = fixture("resource_account_create_request");
    let a = s.post("/resource_accounts", &body).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2011));
    // Its number belongs to the inventory but the sample's call queue does not hold it...
    body["userPrincipalName"] = json!("my_call_queue@contoso.onmicrosoft.com");
    // ...Alice holds +3225405201: a number linked to a user cannot go to an account.
    body["phoneNumber"] = json!("+3225405201");
    let a = s.post("/resource_accounts", &body).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2021));
    body["phoneNumber"] = json!("+3225405239");
    let before = free(&s, VIRTUAL).await;
    let a = s.post("/resource_accounts", &body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_shape(&fixture("resource_account_create_response"), &a.body);
    assert_eq!(free(&s, VIRTUAL).await, before - 1);
    let a = s.post("/resource_accounts", &body).await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2010));

    let st = s.state().await;
    let ra = st["resourceAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["msTeams"]["userPrincipalName"] == "my_call_queue@contoso.onmicrosoft.com")
        .unwrap()
        .clone();
    let id = ra["msTeams"]["id"].as_str().unwrap().to_string();
    // The document's modify body names a number and a VRP this tenant does not have.
    let mut m = fixture("resource_account_modify_request");
    let a = s.put(&format!("/resource_accounts/{id}"), &m).await;
    assert_eq!(a.status, 400);
    m["phoneNumber"] = json!("+31302861238");
    m["vrp"] = json!("NL-National");
    let a = s.put(&format!("/resource_accounts/{id}"), &m).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_shape(&fixture("resource_account_modify_response"), &a.body);
    let a = s.get("/resource_accounts").await;
    let mine = a.body["resourceAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["msTeams"]["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(mine["msTeams"]["displayName"], "A Modified Call Queue");
    assert_eq!(mine["msTeams"]["phoneNumber"], "+31302861238");
    assert_eq!(mine["draas"]["phoneNumber"], "+31302861238");
    // +3225405239 is free again: a user may take it.
    let lucas = s.user_id(LUCAS).await;
    s.put(
        &format!("/users/{lucas}/licenses"),
        &json!({"licenses": [MCOEV]}),
    )
    .await;
    let a = s
        .put(
            &format!("/users/{lucas}/phone_number"),
            &json!({"phoneNumber": "+3225405239"}),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.body);

    assert_eq!(
        s.put("/resource_accounts/nope", &json!({"displayName": "x"}))
            .await
            .status,
        404
    );
    let a = s
        .send(Method::DELETE, &format!("/resource_accounts/{id}"), None)
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(free(&s, VIRTUAL).await, before);
    let a = s
        .send(Method::DELETE, &format!("/resource_accounts/{id}"), None)
        .await;
    assert_eq!(a.status, 204, "deleted or not found");
    // Creating beyond the free virtual-user licenses is refused.
    for i in 0..before {
        let b = json!({"accountType": "auto-attendant", "userPrincipalName": format!("aa{i}@contoso.com"),
                       "displayName": format!("AA {i}"), "location": "FR"});
        assert_eq!(s.post("/resource_accounts", &b).await.status, 200);
    }
    let b = json!({"accountType": "auto-attendant", "userPrincipalName": "aa-x@contoso.com",
                   "displayName": "AA x", "location": "FR"});
    assert_eq!(s.post("/resource_accounts", &b).await.code(), 2032);
    let b = json!({"accountType": "queue", "userPrincipalName": "q@contoso.com",
                   "displayName": "Q", "location": "FR"});
    assert_eq!(s.post("/resource_accounts", &b).await.code(), 1002);
}

#[tokio::test]
async fn a_lost_answer_sends_no_byte_of_the_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start_with(
        None,
        &sample(),
        SimOptions {
            lost_answer_rate: 1.0,
            ..SimOptions::default()
        },
    )
    .await;
    let id = s.user_id(LUCAS).await;
    let body = r#"{"displayName":"Raw Socket"}"#;
    let req = format!(
        "PUT {}/users/{id}/properties HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        s.run.api_prefix(),
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(s.run.addr).await.unwrap();
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    let st = s.state().await;
    let u = st["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["msTeams"]["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(u["msTeams"]["displayName"], "Raw Socket");
}

#[tokio::test]
async fn concurrent_claims_of_one_number_have_one_winner() {
    let s = sim().await;
    let st = s.state().await;
    let voice: Vec<String> = st["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u.get("draas").is_some())
        .map(|u| u["msTeams"]["id"].as_str().unwrap().to_string())
        .take(10)
        .collect();
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for id in voice {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.put(
                &format!("/users/{id}/phone_number"),
                &json!({"phoneNumber": "+3225405250"}),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let a = t.await.unwrap();
        match a.status.as_u16() {
            204 => ok += 1,
            400 => assert_eq!(a.code(), 2021),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
}
