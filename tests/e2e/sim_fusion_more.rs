//! Contract and behaviour tests of the Fusion simulator's remaining endpoints: the MS Teams
//! administrator, the SRE group filter, templates, the bulk update and its job history, the
//! sip address and the sync. Same harness as `sim_fusion` (real HTTP on loopback); contract
//! tests compare with the document's examples in tests/fixtures/fusion.

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{json, Value};
use teamsync_sim::SimOptions;

use crate::sim_fusion::{
    assert_shape, fixture, free, sample, sim, start_with, urlenc, Answer, Sim, ALICE, E1, LUCAS,
    MCOEV,
};

const CHARLOTTE: &str = "charlotte.janssens@contoso.onmicrosoft.com";
const HANNE: &str = "hanne.claes@contoso.onmicrosoft.com";
const QUEUE: &str = "cq.brussels@contoso.onmicrosoft.com";

fn sample_doc() -> Value {
    serde_json::from_str(&std::fs::read_to_string(sample()).unwrap()).unwrap()
}

/// Starts a simulator on the sample with `opts`.
async fn sim_with(opts: SimOptions) -> Sim {
    start_with(None, &sample(), opts).await
}

/// Starts a simulator on a seed derived from the sample by `edit`.
async fn sim_from(edit: impl FnOnce(&mut Value), opts: SimOptions) -> (tempfile::TempDir, Sim) {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = sample_doc();
    edit(&mut doc);
    let path = dir.path().join("seed.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let s = start_with(None, &path, opts).await;
    (dir, s)
}

/// The sample plus what the document's bulk example names: its domain, groups "Security" and
/// "All", a license described as "BusinessPack" (an E5, which carries Phone System) and its
/// number.
fn with_the_documents_names(doc: &mut Value) {
    doc["domains"]
        .as_array_mut()
        .unwrap()
        .push(json!("netaxisdev.onmicrosoft.com"));
    let groups = doc["groups"].as_array_mut().unwrap();
    groups.push(
        json!({"displayName": "Security", "id": "5e0c4c56-0000-4000-8000-000000000001",
        "filter": false, "teamsEnabled": false}),
    );
    groups.push(
        json!({"displayName": "All", "id": "5e0c4c56-0000-4000-8000-000000000002",
        "filter": false, "teamsEnabled": true}),
    );
    doc["licenses"].as_array_mut().unwrap().push(json!({
        "free": 0, "skuDescription": "BusinessPack", "skuId": "06ebc4ee-1bb5-47dd-8120-11324bc54e06",
        "skuPartNumber": "SPE_E5", "total": 5}));
    doc["numbers"]
        .as_array_mut()
        .unwrap()
        .push(json!("+3212345669"));
}

impl Sim {
    async fn delete(&self, p: &str) -> Answer {
        self.send(Method::DELETE, p, None).await
    }

    /// `{base}{root}/{draas_instance}/tenants/{uuid}/subscriptions/{id}{rest}`.
    fn tenant_url(&self, root: &str, rest: &str) -> String {
        let t = &self.run.tenant;
        format!(
            "{}{root}/{}/tenants/{}/subscriptions/{}{rest}",
            self.run.base_url(),
            t.draas_instance,
            t.tenant_uuid,
            t.subscription_id
        )
    }

    /// A URL under `/api/v01/draas/…/subscriptions/{id}` (no msteams segment).
    fn subscription_url(&self, p: &str) -> String {
        self.tenant_url("/api/v01/draas", p)
    }

    /// A URL as the document writes the bulk history: without `/api/v01/draas`.
    fn bare_url(&self, p: &str) -> String {
        self.tenant_url("", &format!("/msteams{p}"))
    }

    async fn get_url(&self, url: String) -> Answer {
        self.try_send(Method::GET, url, None)
            .await
            .expect("request")
    }

    async fn single(&self, upn: &str) -> Value {
        let id = self.user_id(upn).await;
        let a = self.get(&format!("/user/{id}")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
    }

    async fn group_id(&self, name: &str) -> String {
        let st = self.state().await;
        st["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["displayName"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn names(single: &Value, key: &str) -> Vec<String> {
    single["msTeams"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x.get("displayName")
                .or_else(|| x.get("skuPartNumber"))
                .and_then(Value::as_str)
                .unwrap()
                .to_string()
        })
        .collect()
}

// ---------------------------------------------------------------- administrator

#[tokio::test]
async fn contract_admins_get_post_delete_and_the_password_never_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("tenant.db");
    let s = start_with(Some(&state), &sample(), SimOptions::default()).await;
    let a = s.get("/admins").await;
    assert_eq!((a.status.as_u16(), a.code()), (404, 2006));

    let a = s.post("/admins", &fixture("admins_post_request")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_shape(&fixture("admins_post_response"), &a.body);
    let id = a.body["id"].as_i64().unwrap();
    let a = s.get("/admins").await;
    assert_eq!(a.status, 200);
    assert_shape(&fixture("admins_get"), &a.body);
    assert_eq!(
        a.body,
        json!({"id": id, "msUsername": "john.doe@netaxis.onmicrosoft.com"})
    );

    // An update keeps the id.
    let a = s
        .post(
            "/admins",
            &json!({"msUsername": "it.admin@contoso.onmicrosoft.com", "msPassword": "An0therSecret!"}),
        )
        .await;
    assert_eq!(a.body, json!({"id": id}));

    // Refusals do not quote the password, whatever its type.
    for body in [
        json!({"msUsername": "x@contoso.com", "msPassword": 987654321}),
        json!({"msUsername": "x@contoso.com", "msPassword": ["NotThisOne"]}),
        json!({"msUsername": "x@contoso.com", "msPassword": ""}),
        json!({"msUsername": "not-a-upn", "msPassword": "NotThisOne"}),
        json!({"msUsername": "x@contoso.com"}),
    ] {
        let a = s.post("/admins", &body).await;
        assert_eq!(a.status, 400, "{body}");
        let text = a.body.to_string();
        assert!(
            !text.contains("987654321") && !text.contains("NotThisOne"),
            "{text}"
        );
    }

    let a = s.delete("/admins").await;
    assert_eq!(a.status, 200);
    assert_shape(&fixture("admins_delete_response"), &a.body);
    assert_eq!(
        a.body,
        json!({"id": id, "msUsername": "it.admin@contoso.onmicrosoft.com"})
    );
    let a = s.delete("/admins").await;
    assert_eq!(a.status, 204);
    assert!(a.body.is_null(), "204 has no body: {}", a.body);
    assert_eq!(s.get("/admins").await.status, 404);
    let a = s.post("/admins", &fixture("admins_post_request")).await;
    assert_ne!(a.body["id"].as_i64().unwrap(), id, "a new administrator");

    // Neither the request log, the state dump nor the state file holds a password.
    let log = s.admin(Method::GET, "/_sim/requests").await.to_string();
    let dump = s.state().await;
    assert_eq!(
        dump["admin"]["msUsername"],
        "john.doe@netaxis.onmicrosoft.com"
    );
    s.run.shutdown().await;
    let mut stored = Vec::new();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        stored.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("john.doe@netaxis.onmicrosoft.com"));
    for secret in ["VerySecretPassword", "An0therSecret!"] {
        assert!(!log.contains(secret) && !dump.to_string().contains(secret));
        assert!(!stored.contains(secret), "{secret} is in the state file");
    }
    // The administrator survives a restart.
    let s = start_with(Some(&state), &sample(), SimOptions::default()).await;
    assert_eq!(
        s.get("/admins").await.body["msUsername"],
        "john.doe@netaxis.onmicrosoft.com"
    );
}

// ---------------------------------------------------------------- sip address, sync

#[tokio::test]
async fn contract_sip_address_at_the_documents_path_and_sync() {
    let s = sim().await;
    let alice = s.user_id(ALICE).await;
    let a = s
        .get_url(s.subscription_url(&format!("/users/{alice}/sip_address")))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_shape(&fixture("sip_address"), &a.body);
    assert_eq!(a.body["sipAddress"], format!("sip:{ALICE}"));
    // Not under msteams (the document has no such path), unknown users and tenants are 404s.
    let a = s.get(&format!("/users/{alice}/sip_address")).await;
    assert_eq!((a.status.as_u16(), a.code()), (404, 2003));
    let a = s
        .get_url(s.subscription_url("/users/nobody/sip_address"))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (404, 2002));
    let url = s
        .subscription_url(&format!("/users/{alice}/sip_address"))
        .replace("/subscriptions/12/", "/subscriptions/13/");
    assert_eq!(s.get_url(url).await.code(), 2001);

    let a = s.post("/sync", &fixture("sync_request")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_shape(&fixture("sync_response"), &a.body);
    let synced = a.body["msteams_user_ids"].as_array().unwrap();
    assert_eq!(synced.len(), 19, "the sample's users with a number");
    assert!(synced.iter().all(|u| u["status"] == "syncing"));
    assert!(synced.iter().any(|u| u["id"] == alice.as_str()));
    let lucas = s.user_id(LUCAS).await;
    assert!(!synced.iter().any(|u| u["id"] == lucas.as_str()));
    let a = s.post("/sync", &json!({"type": "resource_account"})).await;
    let queue = s.state().await["resourceAccounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["msTeams"]["userPrincipalName"] == QUEUE)
        .unwrap()["msTeams"]["id"]
        .clone();
    assert_eq!(
        a.body,
        json!({"msteams_user_ids": [{"id": queue, "status": "syncing"}]})
    );
    for bad in [
        json!({"type": "all"}),
        json!({}),
        json!({"type": "normal", "x": 1}),
    ] {
        assert_eq!(s.post("/sync", &bad).await.status, 400, "{bad}");
    }
}

// ---------------------------------------------------------------- group filter

#[tokio::test]
async fn contract_group_filter_narrows_the_users_list_and_marks_orphans() {
    let s = sim().await;
    let ex = fixture("groups");
    let a = s.get("/groups").await;
    let groups = a.body["groups"].as_array().unwrap();
    assert!(groups.iter().all(|g| g["filter"] == false), "no filter yet");
    assert_eq!(s.all_users("page_size=50").await.len(), 40);

    // The document's body: two ids no group has → two orphans, and nobody listed.
    let a = s.post("/groups", &fixture("groups_filter_request")).await;
    assert_eq!(a.status, 204, "{}", a.body);
    assert!(a.body.is_null());
    let a = s.get("/groups").await;
    let groups = a.body["groups"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 10);
    for g in &groups[..8] {
        assert_shape(&ex["groups"][0], g);
        assert_eq!(g["filter"], false);
    }
    for g in &groups[8..] {
        assert_shape(&ex["groups"][5], g);
    }
    assert_eq!(
        groups[8],
        json!({"displayName": "Group Test", "id": "444ce848-8b9b-4d14-8e99-90ee50ea150b", "orphan": true})
    );
    let a = s.get("/users").await;
    assert_eq!(a.body, json!({"users": []}));

    // Delete and recreate: NL Office only (listed once though posted twice).
    let nl = s.group_id("NL Office").await;
    let body = json!({"groups": [{"id": nl, "displayName": "NL Office"},
                                 {"id": nl.to_uppercase(), "displayName": "NL Office"}]});
    assert_eq!(s.post("/groups", &body).await.status, 204);
    let a = s.get("/groups").await;
    let groups = a.body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 8, "no orphan left");
    let flagged: Vec<&Value> = groups.iter().filter(|g| g["filter"] == true).collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["id"], nl.as_str());
    let users = s.all_users("page_size=4").await;
    assert_eq!(users.len(), 11, "the sample's NL Office members");
    for u in &users {
        let one = s
            .single(u["msTeams"]["userPrincipalName"].as_str().unwrap())
            .await;
        assert!(names(&one, "groups").contains(&"NL Office".to_string()));
    }
    // It combines with search, and the single GET is not filtered.
    let a = s.get("/users?search=r").await;
    let found: Vec<&str> = a.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["msTeams"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec!["Rosa Bakker"]);
    assert_eq!(s.single(ALICE).await["msTeams"]["userPrincipalName"], ALICE);

    for bad in [
        json!({"groups": [{"id": "x"}]}),
        json!({"groups": [{"id": "", "displayName": "Empty"}]}),
        json!({"groups": [{"id": "x", "displayName": "X", "filter": true}]}),
        json!({}),
    ] {
        let a = s.post("/groups", &bad).await;
        assert_eq!(a.status, 400, "{bad}");
    }
    assert_eq!(
        s.all_users("page_size=50").await.len(),
        11,
        "refusals change nothing"
    );
    assert_eq!(s.post("/groups", &json!({"groups": []})).await.status, 204);
    assert_eq!(s.all_users("page_size=50").await.len(), 40);
}

// ---------------------------------------------------------------- templates

#[tokio::test]
async fn contract_template_apply_override_and_add() {
    let s = sim().await;
    let charlotte = s.user_id(CHARLOTTE).await;
    let e1_free = free(&s, E1).await;
    // NL-Sales (id 2) overrides by default: location, vrp, groups and licenses replaced.
    let a = s
        .put(&format!("/users/{charlotte}/templates/2"), &json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_shape(&fixture("template_apply_response"), &a.body);
    let (nl, sales) = (s.group_id("NL Office").await, s.group_id("Sales").await);
    assert_eq!(
        a.body["after"],
        json!({"groups": [nl, sales], "licenses": [MCOEV], "location": "NL", "vrp": "NL-National"})
    );
    assert_eq!(a.body["before"]["location"], "BE");
    assert_eq!(a.body["before"]["vrp"], "BE-National");
    assert_eq!(a.body["before"]["licenses"], json!([E1, MCOEV]));
    assert_eq!(free(&s, E1).await, e1_free + 1, "E1 released");
    let one = s.single(CHARLOTTE).await;
    assert_eq!(one["msTeams"]["location"], "NL");
    assert_eq!(names(&one, "groups"), vec!["NL Office", "Sales"]);
    assert_eq!(
        one["draas"]["phoneNumber"], "+3225405203",
        "the number stays"
    );

    // override false only adds: Hanne (BE, E1, no vrp) gets BE-Test's vrp and MCOEV.
    let hanne = s.user_id(HANNE).await;
    let a = s
        .put(
            &format!("/users/{hanne}/templates/1"),
            &json!({"override": false}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body["before"]["vrp"].is_null());
    assert_eq!(a.body["after"]["vrp"], "BE-National");
    assert_eq!(a.body["after"]["licenses"], json!([E1, MCOEV]));
    assert_eq!(a.body["after"]["groups"], a.body["before"]["groups"]);
    // FR-Basic adds nothing where Hanne has values; without a body it overrides.
    let a = s
        .put(
            &format!("/users/{hanne}/templates/3"),
            &json!({"override": false}),
        )
        .await;
    assert_eq!(a.body["after"], a.body["before"]);
    let a = s
        .send(Method::PUT, &format!("/users/{hanne}/templates/3"), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["after"]["location"], "FR");
    assert_eq!(a.body["after"]["vrp"], "FR-National");
    assert_eq!(a.body["after"]["licenses"], json!([E1, MCOEV]), "untouched");

    let a = s
        .put(&format!("/users/{hanne}/templates/99"), &json!({}))
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        json!({"error": {"code": 2095, "reason": "The template does not exist"}})
    );
    let a = s
        .put(&format!("/users/{hanne}/templates/abc"), &json!({}))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 1002));
    let a = s.put("/users/nobody/templates/1", &json!({})).await;
    assert_eq!((a.status.as_u16(), a.code()), (404, 2002));
    for bad in [
        json!({"override": "yes"}),
        json!({"override": null}),
        json!({"x": 1}),
    ] {
        let a = s.put(&format!("/users/{hanne}/templates/1"), &bad).await;
        assert_eq!((a.status.as_u16(), a.code()), (400, 1000), "{bad}");
    }
}

#[tokio::test]
async fn a_template_that_cannot_be_applied_changes_nothing() {
    // No MCOEV left: BE-Test cannot add it, so its location and vrp are not applied either.
    let (_dir, s) = sim_from(
        |doc| {
            for l in doc["licenses"].as_array_mut().unwrap() {
                if l["skuPartNumber"] == "MCOEV" {
                    l["total"] = json!(19); // the sample's MCOEV holders
                }
            }
        },
        SimOptions::default(),
    )
    .await;
    assert_eq!(free(&s, MCOEV).await, 0);
    let hanne = s.user_id(HANNE).await;
    let before = s.single(HANNE).await;
    let a = s
        .put(&format!("/users/{hanne}/templates/1"), &json!({}))
        .await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 2032), "{}", a.body);
    assert_eq!(s.single(HANNE).await, before);
}

// ---------------------------------------------------------------- bulk

/// Every `details` entry has the shape of the document's entry of its kind; `errors` holds
/// exactly the failed ones.
fn assert_bulk_shape(answer: &Value) {
    let ex = fixture("users_bulk_partial");
    let details = answer["details"].as_array().unwrap();
    for d in details {
        let i = usize::from(d.get("error").is_some());
        assert_shape(&ex["details"][i], d);
    }
    let failed: Vec<&Value> = details
        .iter()
        .filter(|d| d.get("error").is_some())
        .collect();
    match answer.get("errors") {
        None => assert!(failed.is_empty()),
        Some(e) => {
            assert_eq!(e.as_array().unwrap().iter().collect::<Vec<_>>(), failed);
            for x in e.as_array().unwrap() {
                assert_shape(&ex["errors"][0], x);
            }
        }
    }
    assert!(answer["message"].is_string());
}

#[tokio::test]
async fn contract_bulk_update_answers_and_job_history() {
    let (_dir, s) = sim_from(with_the_documents_names, SimOptions::default()).await;
    // The document's request, as is: both users are created.
    let a = s.put("/users/bulk", &fixture("users_bulk_request")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, fixture("users_bulk_success"));
    let t1 = s.single("test1@netaxisdev.onmicrosoft.com").await;
    assert_eq!(t1["msTeams"]["displayName"], "bulk test 1");
    assert_eq!(t1["msTeams"]["location"], "BE");
    assert_eq!(t1["msTeams"]["vrp"], "Global");
    assert_eq!(names(&t1, "groups"), vec!["Security", "All"]);
    assert_eq!(names(&t1, "licenses"), vec!["SPE_E5"]);
    assert_eq!(t1["draas"]["phoneNumber"], "+3212345669");
    assert_eq!(t1["draas"]["customerLicenses"], json!(["Call-Bundle"]));
    // test2 names the BE-Test template: it overrides, on top of the default template.
    let t2 = s.single("test2@netaxisdev.onmicrosoft.com").await;
    assert_eq!(t2["msTeams"]["location"], "BE");
    assert_eq!(t2["msTeams"]["vrp"], "BE-National");
    assert_eq!(names(&t2, "groups"), vec!["All Company", "BE Office"]);
    assert_eq!(names(&t2, "licenses"), vec!["STANDARDPACK", "MCOEV"]);
    assert!(t2.get("draas").is_none());

    // The details example's second item: a template that does not exist → 207.
    let mut req = fixture("users_bulk_request");
    req["name"] = json!("Bulk test partial");
    req["data"][1]["template"] = json!("BE-Best");
    let a = s.put("/users/bulk", &req).await;
    assert_eq!(a.status, 207, "{}", a.body);
    assert_eq!(a.body, fixture("users_bulk_partial"));
    assert_bulk_shape(&a.body);
    let partial_req = req.clone();

    req["name"] = json!("Bulk test all fail");
    req["data"][0]["template"] = json!("BE-Best");
    let a = s.put("/users/bulk", &req).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_bulk_shape(&a.body);
    assert_eq!(a.body["errors"].as_array().unwrap().len(), 2);
    assert_eq!(a.body["message"], "No MS Teams user could be updated");

    // History, newest first, at the prefixed path and at the document's literal one.
    let a = s.get("/users/bulk").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_shape(&fixture("bulk_jobs"), &a.body);
    let bulks = a.body["bulks"].as_array().unwrap();
    let titles: Vec<&str> = bulks.iter().map(|b| b["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        vec!["Bulk test all fail", "Bulk test partial", "Bulk update"]
    );
    assert!(bulks.iter().all(|b| b["kind"] == "ms_users"));
    let job_ids: Vec<i64> = bulks
        .iter()
        .map(|b| b["job_id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        job_ids[0] > job_ids[1] && job_ids[1] > job_ids[2],
        "{job_ids:?}"
    );
    assert_eq!(
        (&a.body["page"], &a.body["pages"], &a.body["results"]),
        (&json!(1), &json!(1), &json!(3))
    );
    let bare = s.get_url(s.bare_url("/users/bulk")).await;
    assert_eq!(bare.status, 200);
    assert_eq!(bare.body, a.body);

    // Details of the partial job: the document's example, job_id read as a string.
    let partial = bulks[1]["id"].as_i64().unwrap();
    let a = s.get(&format!("/users/bulk/{partial}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mut ex = fixture("bulk_job_details");
    ex["job_id"] = json!("1722601865");
    let items = ex["job_items"].take();
    ex["job_items"] = json!([]);
    let mut top = a.body.clone();
    top["job_items"] = json!([]);
    assert_shape(&ex, &top);
    assert_eq!(a.body["status"], "partial");
    assert_eq!(
        (&a.body["total_count"], &a.body["success_count"]),
        (&json!(2), &json!(1))
    );
    let got = a.body["job_items"].as_array().unwrap();
    for (i, item) in got.iter().enumerate() {
        let mut want = items[i].clone();
        want["data"] = json!({});
        let mut have = item.clone();
        assert_eq!(
            have["data"], partial_req["data"][i],
            "data is the item as sent"
        );
        have["data"] = json!({});
        assert_shape(&want, &have);
    }
    assert_eq!(got[0]["status"], "success");
    assert_eq!(got[1]["status"], "error");
    assert_eq!(got[1]["data"]["template"], "BE-Best");
    let bare = s
        .get_url(s.bare_url(&format!("/users/bulk/{partial}")))
        .await;
    assert_eq!(bare.body, a.body);
    let a = s.get("/users/bulk/999").await;
    assert_eq!((a.status.as_u16(), a.code()), (404, 2007));
    let a = s.get("/users/bulk/abc").await;
    assert_eq!((a.status.as_u16(), a.code()), (400, 1002));
}

async fn bulk(s: &Sim, name: &str, data: Value) -> Answer {
    s.put("/users/bulk", &json!({"name": name, "data": data}))
        .await
}

fn item_error(a: &Answer, i: usize) -> (i64, String) {
    let e = &a.body["details"][i]["error"];
    (
        e["code"].as_i64().unwrap_or(-1),
        e["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn bulk_items_resolve_names_and_follow_fusions_rules() {
    let s = sim().await;
    let a = bulk(
        &s,
        "rules",
        json!([
            // 0: two groups are called "Project X".
            {"upn": LUCAS, "displayName": "Lucas Lambert", "groups": ["Project X"]},
            // 1: unknown group, 2: unknown license.
            {"upn": LUCAS, "displayName": "Lucas Lambert", "groups": ["Nope"]},
            {"upn": LUCAS, "displayName": "Lucas Lambert", "licenses": ["NOPE"]},
            // 3: a resource account's UPN.
            {"upn": QUEUE, "displayName": "Queue"},
            // 4: a domain the tenant has not verified.
            {"upn": "new@example.org", "displayName": "New", "country": "BE"},
            // 5: malformed (unknown field), 6: not an object.
            {"upn": LUCAS, "displayName": "Lucas", "phone": "+3225405209"},
            "nope",
            // 7: names resolved case-insensitively, licenses by description too.
            {"upn": LUCAS, "displayName": "Lucas L.", "groups": ["sales", "support"],
             "licenses": ["office 365 e1", "mcoev"], "number": "+3225405209", "vrp": "BE-National",
             "customerLicenses": ["Call-Bundle"]},
            // 8: the template wins over the item's country, vrp and groups.
            {"upn": "new.one@contoso.com", "displayName": "New One", "country": "FR",
             "vrp": "FR-National", "groups": ["Support"], "template": "NL-Sales"},
            // 9: a template naming no groups leaves the item's.
            {"upn": "new.two@contoso.com", "displayName": "New Two", "groups": ["Support"],
             "template": "FR-Basic"},
            // 10: null clears everything.
            {"upn": ALICE, "displayName": "Alice Martin", "number": null, "groups": null,
             "licenses": null, "vrp": null, "customerLicenses": null},
            // 11: a new user starts from the default template, the item's country first.
            {"upn": "new.three@contoso.com", "displayName": "New Three", "country": "FR"}
        ]),
    )
    .await;
    assert_eq!(a.status, 207, "{}", a.body);
    assert_bulk_shape(&a.body);
    assert_eq!(item_error(&a, 0).0, 2035);
    assert!(
        item_error(&a, 0).1.contains("ambiguous"),
        "{:?}",
        item_error(&a, 0)
    );
    assert_eq!(item_error(&a, 1).0, 2030);
    assert_eq!(item_error(&a, 2).0, 2031);
    assert_eq!(item_error(&a, 3).0, 2012);
    assert_eq!(item_error(&a, 4).0, 2011);
    assert_eq!(item_error(&a, 5).0, 1000);
    assert_eq!(a.body["details"][5]["upn"], LUCAS);
    assert_eq!(item_error(&a, 6).0, 1000);
    assert_eq!(a.body["details"][6]["upn"], "");
    for i in 7..=11 {
        assert_eq!(a.body["details"][i]["details"], json!({}), "item {i}");
    }
    assert_eq!(a.body["errors"].as_array().unwrap().len(), 7);

    let lucas = s.single(LUCAS).await;
    assert_eq!(lucas["msTeams"]["displayName"], "Lucas L.");
    assert_eq!(names(&lucas, "groups"), vec!["Sales", "Support"]);
    assert_eq!(names(&lucas, "licenses"), vec!["STANDARDPACK", "MCOEV"]);
    assert_eq!(lucas["draas"]["phoneNumber"], "+3225405209");
    assert_eq!(lucas["draas"]["customerLicenses"], json!(["Call-Bundle"]));
    let one = s.single("new.one@contoso.com").await;
    assert_eq!(one["msTeams"]["location"], "NL");
    assert_eq!(one["msTeams"]["vrp"], "NL-National");
    assert_eq!(names(&one, "groups"), vec!["NL Office", "Sales"]);
    let two = s.single("new.two@contoso.com").await;
    assert_eq!(two["msTeams"]["location"], "FR");
    assert_eq!(names(&two, "groups"), vec!["Support"]);
    let three = s.single("new.three@contoso.com").await;
    assert_eq!(three["msTeams"]["location"], "FR");
    assert_eq!(names(&three, "groups"), vec!["All Company"]);
    assert!(three["msTeams"]["vrp"].is_null());
    let alice = s.single(ALICE).await;
    assert!(alice.get("draas").is_none());
    assert_eq!(alice["msTeams"]["groups"], json!([]));
    assert_eq!(alice["msTeams"]["licenses"], json!([]));
    assert!(alice["msTeams"]["vrp"].is_null());
    // +3225405201 is free again.
    let a = bulk(
        &s,
        "reuse",
        json!([{"upn": LUCAS, "displayName": "Lucas L.", "number": "+3225405201"}]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["message"], "Success");
    assert!(a.body.get("errors").is_none());

    // Not a bulk at all: plain errors, nothing recorded.
    let before = s.get("/users/bulk").await.body["results"].clone();
    for bad in [
        json!({"name": "empty", "data": []}),
        json!({"name": " ", "data": [{"upn": LUCAS, "displayName": "L"}]}),
        json!({"data": [{"upn": LUCAS, "displayName": "L"}]}),
        json!({"name": "x", "data": {}}),
    ] {
        let a = s.put("/users/bulk", &bad).await;
        assert_eq!(a.status, 400, "{bad}");
        assert!(a.body["error"]["code"].is_i64(), "{}", a.body);
    }
    assert_eq!(s.get("/users/bulk").await.body["results"], before);
}

#[tokio::test]
async fn a_bulk_creates_a_user_only_with_a_country() {
    // Without templates there is no default template to take a country from.
    let (_dir, s) = sim_from(
        |doc| {
            doc.as_object_mut().unwrap().remove("templates");
        },
        SimOptions::default(),
    )
    .await;
    let a = bulk(
        &s,
        "countries",
        json!([
            {"upn": "no.country@contoso.com", "displayName": "No Country"},
            {"upn": "with.country@contoso.com", "displayName": "With Country", "country": "NL"},
            {"upn": "with.country@contoso.com", "displayName": "With Country", "template": "BE-Test"}
        ]),
    )
    .await;
    assert_eq!(a.status, 207, "{}", a.body);
    assert_eq!(item_error(&a, 0).0, 1002);
    assert_eq!(
        item_error(&a, 2),
        (2095, "The template does not exist".into())
    );
    assert_eq!(
        s.single("with.country@contoso.com").await["msTeams"]["location"],
        "NL"
    );
}

#[tokio::test]
async fn bulk_history_pages_searches_and_binds_its_tokens() {
    let s = sim().await;
    for title in ["Alpha 1", "Alpha 2", "Beta 1", "Alpha 3", "Beta 2"] {
        let a = bulk(&s, title, json!([{"upn": LUCAS, "displayName": title}])).await;
        assert_eq!(a.status, 200);
    }
    let a = s.get("/users/bulk?page_size=2").await;
    assert_eq!(
        (&a.body["page"], &a.body["pages"], &a.body["results"]),
        (&json!(1), &json!(3), &json!(5))
    );
    let mut seen: Vec<String> = Vec::new();
    let mut page = a;
    let mut pages = 1;
    loop {
        seen.extend(
            page.body["bulks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["title"].as_str().unwrap().to_string()),
        );
        let Some(next) = page.body["next"].as_str() else {
            break;
        };
        let next = urlenc(next);
        page = s.get(&format!("/users/bulk?page_size=2&next={next}")).await;
        pages += 1;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.body["page"], json!(pages));
        // The token is bound to page_size, and the bare path honours it the same way.
        let a = s.get(&format!("/users/bulk?page_size=3&next={next}")).await;
        assert_eq!((a.status.as_u16(), a.code()), (400, 1003));
        let bare = s
            .get_url(s.bare_url(&format!("/users/bulk?page_size=2&next={next}")))
            .await;
        assert_eq!(bare.body, page.body);
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        vec!["Beta 2", "Alpha 3", "Beta 1", "Alpha 2", "Alpha 1"]
    );

    let a = s.get("/users/bulk?search=BETA").await;
    assert_eq!(a.body["results"], 2);
    let a = s.get("/users/bulk?search=ms_us").await;
    assert_eq!(a.body["results"], 5, "search covers the kind");
    let f = urlenc(r#"{"kind":"ms_resource_accounts"}"#);
    let a = s.get(&format!("/users/bulk?filters={f}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        (&a.body["bulks"], &a.body["results"], &a.body["pages"]),
        (&json!([]), &json!(0), &json!(1))
    );
    // A users-list token is not a history token.
    let users = s.get("/users?page_size=2").await;
    let tok = urlenc(users.body["next"].as_str().unwrap());
    let a = s.get(&format!("/users/bulk?page_size=2&next={tok}")).await;
    assert_eq!(a.code(), 1003);
    for q in [
        "page_size=0",
        "page_size=x",
        "filters=%7B%22x%22%3A1%7D",
        "group=g",
        "next=zz",
    ] {
        let a = s.get(&format!("/users/bulk?{q}")).await;
        assert_eq!(a.status, 400, "{q}");
    }
}

// ---------------------------------------------------------------- shared behaviour

#[tokio::test]
async fn new_endpoints_sit_behind_auth_rate_limit_and_the_request_log() {
    let s = sim_with(SimOptions {
        token: Some("t0k".into()),
        rate_limit: Some(50),
        ..SimOptions::default()
    })
    .await;
    let alice = s.user_id(ALICE).await;
    let sip = s.subscription_url(&format!("/users/{alice}/sip_address"));
    for url in [
        s.bare_url("/users/bulk"),
        s.bare_url("/users/bulk/1"),
        sip.clone(),
        s.url("/admins"),
    ] {
        let r = s.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401, "{url}");
    }
    assert_eq!(s.get_url(sip.clone()).await.status, 200);
    assert_eq!(s.get_url(s.bare_url("/users/bulk")).await.status, 200);
    // Another tenant on the bare path is the document's 404.
    let other = s.bare_url("/users/bulk").replace("/tenants/", "/tenants/x");
    assert_eq!(s.get_url(other).await.code(), 2001);
    assert_eq!(s.delete("/users/bulk").await.status, 405);
    let log = s.admin(Method::GET, "/_sim/requests").await;
    let paths: Vec<&str> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths
        .iter()
        .any(|p| p.ends_with("/sip_address") && !p.contains("/msteams/")));
    assert!(paths
        .iter()
        .any(|p| !p.starts_with("/api/") && p.ends_with("/msteams/users/bulk")));

    // Past the limit, the new endpoints are throttled like the others.
    let mut throttled = None;
    for _ in 0..80 {
        let a = s.get("/admins").await;
        if a.status == 429 {
            throttled = Some(a);
            break;
        }
    }
    let a = throttled.expect("a 429 past the rate limit");
    assert!(a.headers.get("retry-after").is_some());
}

#[tokio::test]
async fn faults_hit_the_new_endpoints_and_a_lost_bulk_answer_still_records_the_job() {
    let s = sim_with(SimOptions {
        lost_answer_rate: 1.0,
        ..SimOptions::default()
    })
    .await;
    let r = s
        .try_send(
            Method::PUT,
            s.url("/users/bulk"),
            Some(&json!({"name": "lost", "data": [{"upn": LUCAS, "displayName": "Lost"}]})),
        )
        .await;
    assert!(r.is_err(), "the answer is lost");
    // Reads are never lost: the job and its effect are there.
    let a = s.get("/users/bulk").await;
    assert_eq!(a.body["bulks"][0]["title"], "lost");
    assert_eq!(s.single(LUCAS).await["msTeams"]["displayName"], "Lost");
}

#[tokio::test]
async fn new_state_persists_and_a_dump_reseeds_it() {
    let dir = tempfile::tempdir().unwrap();
    let state: PathBuf = dir.path().join("tenant.db");
    let s = start_with(Some(&state), &sample(), SimOptions::default()).await;
    let nl = s.group_id("NL Office").await;
    let gone = json!({"id": "499ce848-8b9b-4d14-8e99-90ee50ea150b", "displayName": "This filter is orphan"});
    let a = s
        .post(
            "/groups",
            &json!({"groups": [{"id": nl, "displayName": "NL Office"}, gone]}),
        )
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(
        s.post("/admins", &fixture("admins_post_request"))
            .await
            .status,
        200
    );
    let a = bulk(
        &s,
        "persisted",
        json!([{"upn": "kept@contoso.com", "displayName": "Kept", "groups": ["NL Office"]}]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let hanne = s.user_id(HANNE).await;
    assert_eq!(
        s.put(&format!("/users/{hanne}/templates/2"), &json!({}))
            .await
            .status,
        200
    );
    let before = s.state().await;
    let groups = s.get("/groups").await.body;
    let users = s.all_users("page_size=50").await;
    assert_eq!(
        users.len(),
        13,
        "11 NL Office members, the new one and Hanne (now in NL)"
    );
    s.run.shutdown().await;

    let s = start_with(Some(&state), &sample(), SimOptions::default()).await;
    assert_eq!(s.state().await, before);
    assert_eq!(s.get("/groups").await.body, groups);
    assert_eq!(s.all_users("page_size=50").await, users);
    assert_eq!(
        s.get("/admins").await.body["msUsername"],
        "john.doe@netaxis.onmicrosoft.com"
    );
    let a = s.get("/users/bulk").await;
    assert_eq!(a.body["bulks"][0]["title"], "persisted");
    // A new job after the restart gets the next ids.
    let a = bulk(&s, "after", json!([{"upn": LUCAS, "displayName": "L"}])).await;
    assert_eq!(a.status, 200);
    let h = s.get("/users/bulk").await;
    assert_eq!(
        h.body["bulks"][0]["id"].as_i64().unwrap(),
        h.body["bulks"][1]["id"].as_i64().unwrap() + 1
    );

    // A dump is a seed: admin (without password), filter, templates and jobs come back.
    let dump = s.state().await;
    assert!(dump["templates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == 0));
    assert_eq!(dump["groupFilter"].as_array().unwrap().len(), 2);
    let seed2 = dir.path().join("dump.json");
    std::fs::write(&seed2, dump.to_string()).unwrap();
    let s2 = start_with(None, Path::new(&seed2), SimOptions::default()).await;
    assert_eq!(s2.state().await, dump);
}

#[tokio::test]
async fn seeds_with_bad_templates_or_filters_are_refused() {
    use teamsync_sim::fusion::FusionSim;
    type SeedEdit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(SeedEdit, &str)> = vec![
        (
            Box::new(|d| d["templates"][1]["groups"] = json!(["no-such-group"])),
            "unknown group",
        ),
        (
            Box::new(|d| d["templates"][1]["vrp"] = json!("Nope")),
            "Nope",
        ),
        (Box::new(|d| d["templates"][2]["id"] = json!(1)), "twice"),
        (
            Box::new(|d| d["templates"][1]["location"] = json!("UK")),
            "UK",
        ),
        (
            Box::new(|d| {
                d["groupFilter"] =
                    json!([{"id": "a", "displayName": "A"}, {"id": "A", "displayName": "A"}]);
            }),
            "twice",
        ),
        (
            Box::new(|d| {
                let mut job = fixture("bulk_job_details");
                job["job_id"] = json!("1722601865");
                job["kind"] = json!("users");
                d["bulkJobs"] = json!([job]);
            }),
            "kind",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (edit, want)) in cases.iter().enumerate() {
        let mut doc = sample_doc();
        edit(&mut doc);
        let p = dir.path().join(format!("seed{i}.json"));
        std::fs::write(&p, doc.to_string()).unwrap();
        let err = FusionSim::open(None, Some(&p), SimOptions::default())
            .err()
            .unwrap_or_else(|| panic!("case {i} was accepted"));
        assert!(err.to_string().contains(want), "case {i}: {err}");
    }
}

#[tokio::test]
async fn voice_check_and_unknown_query_parameters() {
    let s = sim().await;
    let (alice, lucas) = (s.user_id(ALICE).await, s.user_id(LUCAS).await);
    let a = s.get(&format!("/users/{lucas}/check")).await;
    assert_eq!(a.body, json!({"voiceEnabled": false}));
    let a = s.get(&format!("/users/{alice}/check")).await;
    assert_eq!(a.body, json!({"voiceEnabled": true}));
    let a = s.get("/users/nobody/check").await;
    assert_eq!((a.status.as_u16(), a.code()), (404, 2002));

    let q = "?refresh=true";
    for a in [
        s.get(&format!("/users/{alice}/check{q}")).await,
        s.get(&format!("/user/{alice}{q}")).await,
        s.get(&format!("/admins{q}")).await,
        s.post(&format!("/admins{q}"), &fixture("admins_post_request"))
            .await,
        s.send(Method::DELETE, &format!("/admins{q}"), None).await,
        s.get(&format!("/groups{q}")).await,
        s.post(&format!("/groups{q}"), &json!({"groups": []})).await,
        s.post(&format!("/sync{q}"), &fixture("sync_request")).await,
        s.get_url(s.subscription_url(&format!("/users/{alice}/sip_address{q}")))
            .await,
        s.put(&format!("/users/{alice}/templates/1{q}"), &json!({}))
            .await,
        s.put(&format!("/users/bulk{q}"), &fixture("users_bulk_request"))
            .await,
        s.get(&format!("/users/bulk/1{q}")).await,
    ] {
        assert_eq!((a.status.as_u16(), a.code()), (400, 1001), "{}", a.body);
    }
    // Nothing was written by the refused requests.
    let st = s.state().await;
    assert!(
        st.get("admin").is_none() && st.get("bulkJobs").is_none(),
        "{st}"
    );
}

#[tokio::test]
async fn a_seeded_job_is_served_as_the_documents_example() {
    let mut job = fixture("bulk_job_details");
    job["job_id"] = json!("1722601865"); // the string reading (see the fixtures README)
    let seeded = job.clone();
    let (_dir, s) = sim_from(
        move |d| d["bulkJobs"] = json!([seeded]),
        SimOptions::default(),
    )
    .await;
    let a = s.get_url(s.bare_url("/users/bulk/42")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, job);
    let a = s.get("/users/bulk").await;
    assert_eq!(
        a.body,
        json!({"bulks": [{"id": 42, "job_id": "1722601865", "kind": "ms_users",
                "title": "Bulk test partial", "created_on": "2024-08-02T12:31:05.856955",
                "updated_on": "2024-08-08T08:48:54.905978"}],
               "page": 1, "pages": 1, "results": 1})
    );
    // A new job gets the next ids.
    let a = bulk(&s, "next", json!([{"upn": LUCAS, "displayName": "L"}])).await;
    assert_eq!(a.status, 200);
    let a = s.get("/users/bulk/43").await;
    assert_eq!(a.body["job_items"][0]["id"], 34);
}
