//! The Fusion connector against a scripted server (wiremock): the edge cases a real Fusion
//! or a proxy in front of it may produce, with exact bodies and headers, and call counts.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use teamsync::connector::fusion::{FusionConnector, FusionSettings, TokenSource};
use teamsync::connector::gate::GateConfig;
use teamsync::connector::retry::RetryPolicy;
use teamsync::connector::{Connector, ConnectorError, Gate, Step};
use teamsync::model::{Attr, AttrValue, Country, Upn, UserSpec, E164};
use teamsync::plan::model::{Operation, PlannedOp, UserAction, UserPlan};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ROOT: &str = "/api/v01/draas/prod/tenants/8d5c-uuid/subscriptions/12/msteams";
const TOKEN: &str = "tok-SECRET-123";

fn p(rest: &str) -> String {
    format!("{ROOT}/{rest}")
}

fn settings(uri: &str) -> FusionSettings {
    let mut s = FusionSettings::new(
        uri,
        "prod",
        "8d5c-uuid",
        12,
        TokenSource::Static(TOKEN.into()),
    );
    s.http.request_timeout = Duration::from_secs(5);
    s.http.retry = RetryPolicy {
        max_attempts: 1,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
    };
    s
}

fn connector(s: FusionSettings) -> (FusionConnector, Arc<Gate>) {
    let gate = Arc::new(Gate::unlimited());
    (
        FusionConnector::new(s, gate.clone()).expect("valid settings"),
        gate,
    )
}

async fn setup() -> (MockServer, FusionConnector, Arc<Gate>) {
    let server = MockServer::start().await;
    let (c, g) = connector(settings(&server.uri()));
    (server, c, g)
}

fn user_json(id: &str, upn: &str, name: &str) -> serde_json::Value {
    json!({"msTeams": {"id": id, "userPrincipalName": upn, "displayName": name, "location": "BE",
        "licenses": [{"skuId": "sku-e1", "skuPartNumber": "STANDARDPACK"}], "voiceEnabled": "yes"}})
}

fn plan(user_id: Option<&str>, ops: Vec<Operation>) -> UserPlan {
    let upn = Upn::parse("jane.doe@contoso.com").unwrap();
    UserPlan {
        upn: upn.clone(),
        user_id: user_id.map(str::to_string),
        action: UserAction::Update,
        desired: UserSpec::new(upn),
        origin: None,
        changes: vec![],
        ops: ops
            .into_iter()
            .map(|op| PlannedOp {
                op,
                after: vec![],
                awaited: false,
            })
            .collect(),
        before: Default::default(),
    }
}

fn no_secret(e: &ConnectorError) {
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains(TOKEN) && !text.contains("SECRET"),
        "token leaked: {text}"
    );
}

#[tokio::test]
async fn every_request_carries_the_bearer_token_and_check_reads_status() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(path(p("status")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "msTenantId": "27b4", "mode": "direct_routing", "status": "onboarded",
            "powershell": {"active": true}, "msGraph": {"active": true}})))
        .expect(1)
        .mount(&server)
        .await;
    let st = c.check().await.unwrap();
    assert!(st.ok);
    assert_eq!(st.details["mode"], "direct_routing");
}

#[tokio::test]
async fn check_is_not_ok_while_onboarding() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(path(p("status")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "not_initiated"})))
        .mount(&server)
        .await;
    assert!(!c.check().await.unwrap().ok);
}

/// A connector whose gate gives up once the tenant has throttled for longer than `bound`.
fn bounded(s: FusionSettings, bound: Duration) -> (FusionConnector, Arc<Gate>) {
    let gate = Arc::new(Gate::with_config(&GateConfig {
        max_throttle: Some(bound),
        ..GateConfig::new(0.0, 1)
    }));
    (
        FusionConnector::new(s, gate.clone()).expect("valid settings"),
        gate,
    )
}

#[tokio::test]
async fn a_429_with_retry_after_seconds_pauses_the_whole_gate() {
    let server = MockServer::start().await;
    // A Retry-After longer than the throttling bound: the read gives up at once instead
    // of waiting for nothing.
    let (c, gate) = bounded(settings(&server.uri()), Duration::from_secs(1));
    Mock::given(method("GET"))
        .and(path(p("user/u1")))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(json!({"error": {"code": 429, "reason": "Too many requests"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = c.read_user("u1").await.unwrap_err();
    match &e {
        ConnectorError::Throttled {
            throttled_for,
            limit,
            ..
        } => {
            assert!(
                *throttled_for >= Duration::from_millis(1900),
                "{throttled_for:?}"
            );
            assert_eq!(*limit, Duration::from_secs(1));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("GET user/u1"), "{e}");
    let left = gate.pause_remaining().expect("gate paused");
    assert!(
        left > Duration::from_secs(1) && left <= Duration::from_secs(2),
        "{left:?}"
    );
    assert_eq!(gate.stats().throttles, 1);
    no_secret(&e);
}

#[tokio::test]
async fn a_429_with_an_http_date_pauses_until_that_date() {
    let server = MockServer::start().await;
    let (c, gate) = bounded(settings(&server.uri()), Duration::from_secs(10));
    // Far enough ahead that a loaded machine cannot eat it up before the assertion (the
    // test never waits for it: past the 10 s bound, the snapshot gives up at once); HTTP
    // dates have whole-second resolution.
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
    Mock::given(method("GET"))
        .and(path(p("licenses")))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", at.as_str())
                .set_body_string("slow down"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": []})))
        .mount(&server)
        .await;
    for cat in ["groups", "vrps"] {
        Mock::given(method("GET"))
            .and(path(p(cat)))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .mount(&server)
            .await;
    }
    let e = c.snapshot(&[], false).await.unwrap_err();
    let ConnectorError::Throttled { throttled_for, .. } = e else {
        panic!("{e:?}")
    };
    assert!(
        throttled_for >= Duration::from_secs(20) && throttled_for <= Duration::from_secs(31),
        "{throttled_for:?}"
    );
    let left = gate.pause_remaining().expect("the whole gate is paused");
    assert!(left >= Duration::from_secs(20), "{left:?}");
}

#[tokio::test]
async fn a_429_without_retry_after_pauses_one_second_and_the_retry_uses_no_attempt() {
    let server = MockServer::start().await;
    // One attempt only: a throttled read is sent again anyway.
    let (c, gate) = connector(settings(&server.uri()));
    Mock::given(method("GET"))
        .and(path(p("user/u1")))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("user/u1")))
        .respond_with(ResponseTemplate::new(200).set_body_json(user_json(
            "u1",
            "a@contoso.com",
            "A",
        )))
        .mount(&server)
        .await;
    let t0 = Instant::now();
    let u = c.read_user("u1").await.unwrap().unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(u.upn.as_str(), "a@contoso.com");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert_eq!(gate.stats().throttles, 1);
}

#[tokio::test]
async fn a_503_with_retry_after_is_throttling_not_a_fault() {
    let server = MockServer::start().await;
    let (c, gate) = connector(settings(&server.uri()));
    Mock::given(method("GET"))
        .and(path(p("user/u1")))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("user/u1")))
        .respond_with(ResponseTemplate::new(200).set_body_json(user_json(
            "u1",
            "a@contoso.com",
            "A",
        )))
        .mount(&server)
        .await;
    let t0 = Instant::now();
    // One attempt only, as above: a fault would have ended the read.
    assert!(c.read_user("u1").await.unwrap().is_some());
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(gate.stats().throttles, 1);
}

#[tokio::test]
async fn server_errors_are_retryable_and_send_tries_once() {
    let (server, c, _) = setup().await;
    for (code, id) in [
        (500u16, "u500"),
        (503, "u503"),
        (502, "u502"),
        (504, "u504"),
    ] {
        Mock::given(method("PUT"))
            .and(path(p(&format!("users/{id}/vrp"))))
            .respond_with(ResponseTemplate::new(code).set_body_string("<html>oops</html>"))
            .mount(&server)
            .await;
        let u = plan(Some(id), vec![Operation::set_vrp(Some("Global".into()))]);
        let steps = c.steps(&u);
        let mut uid = u.user_id.clone();
        let e = c.send(&u, &mut uid, &steps[0]).await.unwrap_err();
        assert!(
            matches!(e, ConnectorError::Retryable { status: Some(s), .. } if s == code),
            "{e:?}"
        );
        no_secret(&e);
    }
    let puts = server.received_requests().await.unwrap();
    assert_eq!(
        puts.iter()
            .filter(|r| r.method == wiremock::http::Method::PUT)
            .count(),
        4,
        "send never retries"
    );
}

#[tokio::test]
async fn reads_retry_server_errors_and_count_every_request() {
    let server = MockServer::start().await;
    let mut s = settings(&server.uri());
    s.http.retry.max_attempts = 3;
    let (c, _) = connector(s);
    Mock::given(method("GET"))
        .and(path(p("users")))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"users": [user_json("u1", "a@contoso.com", "A")]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("groups")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"groups": [{"id": "g1", "displayName": "All"}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("licenses")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"licenses": [
            {"skuId": "sku-e1", "skuPartNumber": "STANDARDPACK", "skuDescription": "Office 365 E1", "total": 5, "free": 1}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("vrps")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"results": [{"identity": "Global", "description": "Global"}]}),
            ),
        )
        .mount(&server)
        .await;
    let t0 = Instant::now();
    let snap = c.snapshot(&[], false).await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "a 503 Retry-After is honoured: {:?}",
        t0.elapsed()
    );
    assert_eq!(snap.users.len(), 1);
    assert_eq!(
        snap.requests, 6,
        "2 list attempts + 3 catalogs + resource accounts"
    );
    assert_eq!(snap.catalogs.licenses[0].free, 1);
    assert_eq!(snap.catalogs.vrps[0].identity, "Global");
    assert_eq!(snap.catalogs.groups[0].display_name, "All");
}

#[tokio::test]
async fn a_400_with_the_error_body_is_rejected_with_code_and_reason() {
    let (server, c, _) = setup().await;
    Mock::given(method("PUT"))
        .and(path(p("users/u1/phone_number")))
        .and(body_json(json!({"phoneNumber": "+3225405200"})))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": 2044, "reason": "The phone number is already linked"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let u = plan(
        Some("u1"),
        vec![Operation::set_number(Some(
            E164::parse_canonical("+3225405200").unwrap(),
        ))],
    );
    let mut uid = u.user_id.clone();
    let e = c.send(&u, &mut uid, &c.steps(&u)[0]).await.unwrap_err();
    match &e {
        ConnectorError::Rejected {
            status: 400,
            code: Some(code),
            reason,
        } => {
            assert_eq!(code, "2044");
            assert_eq!(reason, "The phone number is already linked");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.code(), "2044");
}

#[tokio::test]
async fn odd_error_bodies_never_panic() {
    let (server, c, _) = setup().await;
    let bodies: [(u16, &[u8]); 4] = [
        (409, b""),
        (422, b"\xff\xfe not utf8"),
        (400, b"{\"error\": null}"),
        (418, b"{\"error\":{\"code\":\"X\""),
    ];
    for (i, (code, body)) in bodies.iter().enumerate() {
        let id = format!("odd{i}");
        Mock::given(method("DELETE"))
            .and(path(p(&format!("users/{id}"))))
            .respond_with(ResponseTemplate::new(*code).set_body_bytes(body.to_vec()))
            .mount(&server)
            .await;
        let u = plan(Some(&id), vec![Operation::Delete]);
        let mut uid = u.user_id.clone();
        let e = c.send(&u, &mut uid, &c.steps(&u)[0]).await.unwrap_err();
        let ConnectorError::Rejected { status, reason, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(status, code);
        assert!(!reason.is_empty());
    }
}

#[tokio::test]
async fn invalid_json_in_a_200_is_a_retryable_error() {
    let server = MockServer::start().await;
    let mut s = settings(&server.uri());
    s.http.retry.max_attempts = 2;
    let (c, _) = connector(s);
    Mock::given(method("GET"))
        .and(path(p("user/u1")))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"msTeams\": {\"id\": "))
        .expect(2)
        .mount(&server)
        .await;
    let e = c.read_user("u1").await.unwrap_err();
    let ConnectorError::Retryable { message, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(message.contains("malformed JSON"), "{message}");
}

#[tokio::test]
async fn read_user_404_is_none() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(path(p("user/gone")))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"code": 404, "reason": "not found"}})),
        )
        .mount(&server)
        .await;
    assert_eq!(c.read_user("gone").await.unwrap(), None);
    Mock::given(method("GET"))
        .and(path(p("user/guest")))
        .respond_with(ResponseTemplate::new(200).set_body_json(user_json(
            "guest",
            "john_fabrikam.com#EXT#@contoso.onmicrosoft.com",
            "John (guest)",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let e = c.read_user("guest").await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::Unsupported(_)),
        "not retried: {e:?}"
    );
}

#[tokio::test]
async fn a_401_runs_the_token_command_again_and_resends_with_the_fresh_token() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    // Prints token-1 the first time, token-2 the second: shows the command really re-ran.
    let cmd = format!(
        "n=$(cat '{0}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{0}'; echo token-$n",
        counter.display()
    );
    let mut s = settings(&server.uri());
    s.http.token = TokenSource::Command(cmd);
    let (c, _) = connector(s);
    Mock::given(method("GET"))
        .and(path(p("status")))
        .and(header("authorization", "Bearer token-1"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"error": {"code": 401, "reason": "expired"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("status")))
        .and(header("authorization", "Bearer token-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "onboarded"})))
        .expect(2)
        .mount(&server)
        .await;
    assert!(c.check().await.unwrap().ok);
    // The fresh token is kept: the next request uses it without running the command.
    assert!(c.check().await.unwrap().ok);
    let reqs = server.received_requests().await.unwrap();
    let auth: Vec<&str> = reqs
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap())
        .collect();
    assert_eq!(auth, ["Bearer token-1", "Bearer token-2", "Bearer token-2"]);
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "2");
}

#[tokio::test]
async fn echo_token_command_is_used_and_a_second_401_is_auth() {
    let server = MockServer::start().await;
    let mut s = settings(&server.uri());
    s.http.token = TokenSource::Command("echo fresh-token".into());
    let (c, _) = connector(s);
    Mock::given(method("GET"))
        .and(path(p("status")))
        .and(header("authorization", "Bearer fresh-token"))
        .respond_with(ResponseTemplate::new(401).set_body_string("Bearer fresh-token is not valid"))
        .expect(2)
        .mount(&server)
        .await;
    let e = c.check().await.unwrap_err();
    let ConnectorError::Auth {
        status: 401,
        message,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(
        !message.contains("fresh-token"),
        "the server's echo of the token is redacted: {message}"
    );
}

#[tokio::test]
async fn static_token_401_and_403_abort_at_once_without_leaking_the_token() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(path(p("status")))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!("token {TOKEN} rejected")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("user/u1")))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"error": {"code": 403, "reason": "missing role"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = c.check().await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::Auth { status: 401, .. }),
        "{e:?}"
    );
    no_secret(&e);
    let e = c.read_user("u1").await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Auth { status: 403, message } if message.contains("missing role")),
        "{e:?}"
    );
    assert!(!format!("{c:?}").contains(TOKEN));
}

#[tokio::test]
async fn token_env_is_read_on_first_use_and_a_missing_one_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(p("status")))
        .and(header("authorization", "Bearer from-env-77"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "onboarded"})))
        .expect(1)
        .mount(&server)
        .await;
    let var = "TS_TEST_FUSION_TOKEN_E2E";
    let mut s = settings(&server.uri());
    s.http.token = TokenSource::Env(var.into());
    let (c, _) = connector(s.clone());
    std::env::set_var(var, " from-env-77\n");
    assert!(c.check().await.unwrap().ok);
    s.http.token = TokenSource::Env("TS_TEST_UNSET_VAR_E2E".into());
    let (c, _) = connector(s);
    let e = c.check().await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Config(m) if m.contains("TS_TEST_UNSET_VAR_E2E")),
        "{e:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn paging_follows_next_tokens_with_the_same_page_size() {
    let server = MockServer::start().await;
    let mut s = settings(&server.uri());
    s.page_size = 2;
    let (c, _) = connector(s);
    let page = |users: Vec<serde_json::Value>, next: Option<&str>| {
        let mut b = json!({"users": users});
        if let Some(n) = next {
            b["next"] = json!(n);
        }
        ResponseTemplate::new(200).set_body_json(b)
    };
    Mock::given(method("GET"))
        .and(path(p("users")))
        .and(query_param_is_missing("next"))
        .respond_with(page(
            vec![
                user_json("1", "a@contoso.com", "A"),
                user_json("2", "b@contoso.com", "B"),
            ],
            Some("t/1+="),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .and(query_param("next", "t/1+="))
        .respond_with(page(
            vec![
                user_json("3", "c@contoso.com", "C"),
                user_json("4", "bad upn", "D"),
            ],
            Some("t2"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .and(query_param("next", "t2"))
        .respond_with(page(vec![user_json("5", "e@contoso.com", "E")], None))
        .expect(1)
        .mount(&server)
        .await;
    for (cat, body) in [
        ("groups", json!({"groups": []})),
        ("licenses", json!({"licenses": []})),
        ("vrps", json!({"results": []})),
    ] {
        Mock::given(method("GET"))
            .and(path(p(cat)))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(p("user/3")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"msTeams": {
            "id": "3", "userPrincipalName": "c@contoso.com", "displayName": "C", "location": "NL",
            "groups": [{"id": "g1", "displayName": "All"}], "vrp": "World-DRaaS", "voiceEnabled": "yes"},
            "draas": {"phoneNumber": "+31302861233", "customerLicenses": ["test-sku"], "status": "active"}})))
        .expect(1)
        .mount(&server)
        .await;
    let want = [
        Upn::parse("C@contoso.com").unwrap(),
        Upn::parse("nobody@contoso.com").unwrap(),
    ];
    let snap = c.snapshot(&want, false).await.unwrap();
    let ids: Vec<&str> = snap.users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3", "5"], "the bad UPN is skipped");
    assert_eq!(snap.requests, 3 + 4 + 1);
    let c3 = &snap.users[2];
    let d = c3.details.as_ref().expect("details for the wanted user");
    assert_eq!(
        (d.groups.clone(), d.vrp.clone()),
        (vec!["g1".to_string()], Some("World-DRaaS".to_string()))
    );
    assert_eq!(c3.country, Some(Country::parse("NL").unwrap()));
    assert_eq!(c3.customer_licenses, ["test-sku"]);
    assert!(snap
        .users
        .iter()
        .filter(|u| u.id != "3")
        .all(|u| u.details.is_none()));
    for r in server.received_requests().await.unwrap() {
        if r.url.path() == p("users") {
            let ps: Vec<_> = r
                .url
                .query_pairs()
                .filter(|(k, _)| k == "page_size")
                .collect();
            assert_eq!(ps.len(), 1);
            assert_eq!(ps[0].1, "2");
        }
    }
}

#[tokio::test]
async fn a_refused_large_page_size_falls_back_to_100_once_and_for_all() {
    let (server, c, _) = setup().await;
    mount_catalogs(&server).await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .and(query_param("page_size", "999"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": 1001, "reason": "page_size must be at most 100"}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .and(query_param("page_size", "100"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"users": [user_json("1", "a@contoso.com", "A")]})),
        )
        .expect(2)
        .mount(&server)
        .await;
    assert_eq!(c.snapshot(&[], false).await.unwrap().users.len(), 1);
    assert_eq!(c.snapshot(&[], false).await.unwrap().users.len(), 1);
}

#[tokio::test]
async fn a_repeated_next_token_stops_instead_of_looping() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"users": [], "next": "same"})),
        )
        .mount(&server)
        .await;
    let e = c
        .find_user(&Upn::parse("x@contoso.com").unwrap(), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("continuation token"), "{e}");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn find_user_searches_by_name_prefix_then_reads_the_user() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .and(query_param("search", "Jane"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": [
            user_json("j1", "jane.roe@contoso.com", "Jane Roe"), user_json("j2", "Jane.Doe@Contoso.com", "Jane Doe")]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("user/j2")))
        .respond_with(ResponseTemplate::new(200).set_body_json(user_json(
            "j2",
            "jane.doe@contoso.com",
            "Jane Doe",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let u = c
        .find_user(
            &Upn::parse("jane.doe@contoso.com").unwrap(),
            Some("Jane Doe"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.id, "j2");
    assert!(u.details.is_some());
}

#[tokio::test]
async fn find_user_falls_back_to_the_full_list() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .and(query_param("search", "Janet"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("users")))
        .and(query_param_is_missing("search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": []})))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(
        c.find_user(&Upn::parse("jane.doe@contoso.com").unwrap(), Some("Janet"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn create_posts_username_and_domain_and_fills_the_user_id() {
    let (server, c, _) = setup().await;
    Mock::given(method("POST"))
        .and(path(p("users")))
        .and(body_json(
            json!({"displayName": "Jane Doe", "domain": "contoso.com", "username": "jane.doe",
            "location": "BE", "customerLicenses": ["Call-Bundle"]}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"msTeamsId": "645474c6"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(p("users/645474c6")))
        .and(body_json(
            json!({"licenses": ["sku-e1"], "phoneNumber": "+3225405200", "vrp": "Global"}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let u = plan(
        None,
        vec![
            Operation::create([
                (Attr::DisplayName, AttrValue::Text("Jane Doe".into())),
                (
                    Attr::Country,
                    AttrValue::Country(Country::parse("BE").unwrap()),
                ),
                (
                    Attr::CustomerLicenses,
                    AttrValue::List(vec!["Call-Bundle".into()]),
                ),
            ]),
            Operation::set_licenses(vec!["sku-e1".into()]),
            Operation::set_number(Some(E164::parse_canonical("+3225405200").unwrap())),
            Operation::set_vrp(Some("Global".into())),
        ],
    );
    let steps = c.steps(&u);
    assert_eq!(steps.len(), 2);
    let mut uid = None;
    for s in &steps {
        c.send(&u, &mut uid, s).await.unwrap();
    }
    assert_eq!(uid.as_deref(), Some("645474c6"));
}

#[tokio::test]
async fn a_create_answer_without_id_is_retryable() {
    let (server, c, _) = setup().await;
    Mock::given(method("POST"))
        .and(path(p("users")))
        .respond_with(ResponseTemplate::new(201).set_body_string("created"))
        .mount(&server)
        .await;
    let u = plan(
        None,
        vec![Operation::create_user(
            "J".into(),
            Some(Country::parse("BE").unwrap()),
        )],
    );
    let mut uid = None;
    let e = c.send(&u, &mut uid, &c.steps(&u)[0]).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Retryable { .. }), "{e:?}");
    assert_eq!(uid, None);
}

#[tokio::test]
async fn an_update_without_user_id_is_a_config_error_and_sends_nothing() {
    let (server, c, _) = setup().await;
    let u = plan(None, vec![Operation::set_groups(vec!["g1".into()])]);
    let mut uid = None;
    let e = c
        .send(
            &u,
            &mut uid,
            &Step {
                ops: vec![0],
                label: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Config(m) if m.contains("jane.doe@contoso.com")),
        "{e:?}"
    );
    let sent = server.received_requests().await.unwrap();
    assert!(
        sent.iter().all(|r| r.method == wiremock::http::Method::GET),
        "no write was sent"
    );
}

#[tokio::test]
async fn connection_refused_and_timeouts_are_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (c, _) = connector(settings(&format!("http://127.0.0.1:{port}")));
    let e = c.read_user("u1").await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Retryable { status: None, message, .. } if message.contains("connection")),
        "{e:?}"
    );

    let server = MockServer::start().await;
    let mut s = settings(&server.uri());
    s.http.request_timeout = Duration::from_millis(300);
    let (c, _) = connector(s);
    Mock::given(method("GET"))
        .and(path(p("user/u1")))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let e = c.read_user("u1").await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Retryable { status: None, message, .. } if message.contains("timed out")),
        "{e:?}"
    );
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_but_loopback_is_fine() {
    let e = FusionConnector::new(
        settings("http://fusion.example.net"),
        Arc::new(Gate::unlimited()),
    )
    .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::Config(m) if m.contains("plain http")),
        "{e:?}"
    );
    assert!(
        FusionConnector::new(settings("http://127.0.0.1:9"), Arc::new(Gate::unlimited())).is_ok()
    );
    assert!(
        FusionConnector::new(settings("http://localhost:9"), Arc::new(Gate::unlimited())).is_ok()
    );
}

#[tokio::test]
async fn path_parameters_and_ids_are_escaped() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(|r: &Request| r.url.path() == p("user/a%2Fb%3F"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(c.read_user("a/b?").await.unwrap(), None);
}

fn ra_json(id: &str, upn: &str, number: Option<&str>) -> serde_json::Value {
    let mut r = json!({"msTeams": {"id": id, "userPrincipalName": upn, "displayName": "Queue",
        "location": "BE", "accountType": "call-queue",
        "licenses": [{"skuId": "vu", "skuPartNumber": "PHONESYSTEM_VIRTUALUSER"}]}});
    if let Some(n) = number {
        r["msTeams"]["phoneNumber"] = json!(n);
        r["draas"] = json!({"id": 117, "customerLicenses": ["test-sku"], "phoneNumber": n, "status": "active"});
    }
    r
}

async fn mount_catalogs(server: &MockServer) {
    for (cat, body) in [
        ("groups", json!({"groups": []})),
        ("licenses", json!({"licenses": []})),
        ("vrps", json!({"results": []})),
    ] {
        Mock::given(method("GET"))
            .and(path(p(cat)))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn resource_accounts_join_the_snapshot_and_are_written_through_their_own_endpoints() {
    let (server, c, _) = setup().await;
    mount_catalogs(&server).await;
    // The queue is in both lists (Graph lists resource accounts as users): kept once, as
    // a resource account, and never read with the single-user GET.
    Mock::given(method("GET"))
        .and(path(p("users")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": [
            user_json("u1", "a@contoso.com", "A"), user_json("r1", "queue@contoso.com", "Queue")]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(p("resource_accounts")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"resourceAccounts": [
            ra_json("r1", "queue@contoso.com", Some("+3225405239"))]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(p("resource_accounts/r1")))
        .and(body_json(
            json!({"displayName": "Main queue", "phoneNumber": null}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 117})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(p("resource_accounts/r1")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let snap = c
        .snapshot(&[Upn::parse("queue@contoso.com").unwrap()], false)
        .await
        .unwrap();
    assert_eq!(snap.requests, 1 + 4, "no detail GET for a resource account");
    assert_eq!(snap.users.len(), 2);
    let q = snap.users.iter().find(|u| u.id == "r1").unwrap();
    assert_eq!(
        q.account_type,
        Some(teamsync::model::AccountType::CallQueue)
    );
    assert_eq!(q.number.as_ref().unwrap().to_string(), "+3225405239");
    // An update row without accountType: the connector knows r1 from the snapshot.
    let mut u = plan(
        Some("r1"),
        vec![
            Operation::set_properties(Some("Main queue".into()), None),
            Operation::set_number(None),
            Operation::set_licenses(vec![]),
            Operation::Delete,
        ],
    );
    u.upn = Upn::parse("queue@contoso.com").unwrap();
    let steps = c.steps(&u);
    assert_eq!(
        steps.iter().map(|s| s.ops.clone()).collect::<Vec<_>>(),
        vec![vec![0, 1, 2], vec![3]]
    );
    let mut uid = u.user_id.clone();
    let e = c.send(&u, &mut uid, &steps[0]).await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::Unsupported(_)),
        "licenses on a resource account: {e:?}"
    );
    c.send(
        &u,
        &mut uid,
        &Step {
            ops: vec![0, 1],
            label: String::new(),
        },
    )
    .await
    .unwrap();
    c.send(&u, &mut uid, &steps[1]).await.unwrap();
}

#[tokio::test]
async fn without_a_snapshot_the_first_write_learns_which_ids_are_resource_accounts() {
    let (server, c, _) = setup().await;
    Mock::given(method("GET"))
        .and(path(p("resource_accounts")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"resourceAccounts": [
            ra_json("r1", "queue@contoso.com", None)]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(p("resource_accounts/r1")))
        .and(body_json(json!({"vrp": "Global"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(p("users/u1/vrp")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let mut ra = plan(Some("r1"), vec![Operation::set_vrp(Some("Global".into()))]);
    ra.upn = Upn::parse("queue@contoso.com").unwrap();
    let mut uid = ra.user_id.clone();
    c.send(&ra, &mut uid, &c.steps(&ra)[0]).await.unwrap();
    let user = plan(Some("u1"), vec![Operation::set_vrp(Some("Global".into()))]);
    let mut uid = user.user_id.clone();
    c.send(&user, &mut uid, &c.steps(&user)[0]).await.unwrap();
}

#[tokio::test]
async fn a_created_resource_account_is_found_by_upn_before_its_next_write() {
    let (server, c, _) = setup().await;
    Mock::given(method("POST"))
        .and(path(p("resource_accounts")))
        .and(body_json(
            json!({"accountType": "auto-attendant", "userPrincipalName": "jane.doe@contoso.com",
            "displayName": "Reception", "location": "BE", "phoneNumber": "+3225405239"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 122})))
        .expect(1)
        .mount(&server)
        .await;
    // The connector's one listing before its first write (no snapshot here), then the
    // first look-up after the create: creation is asynchronous, it is not listed yet.
    Mock::given(method("GET"))
        .and(path(p("resource_accounts")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"resourceAccounts": []})))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    let mut listed = ra_json("obj-9", "jane.doe@contoso.com", Some("+3225405239"));
    listed["msTeams"]["accountType"] = json!("auto-attendant");
    Mock::given(method("GET"))
        .and(path(p("resource_accounts")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"resourceAccounts": [listed]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(p("resource_accounts/obj-9")))
        .and(body_json(json!({"vrp": "Global"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 122})))
        .expect(1)
        .mount(&server)
        .await;
    let mut u = plan(
        None,
        vec![
            Operation::create_user("Reception".into(), Some(Country::parse("BE").unwrap())),
            Operation::set_number(Some(E164::parse_canonical("+3225405239").unwrap())),
            Operation::set_vrp(Some("Global".into())),
        ],
    );
    u.desired.account_type = Some(teamsync::model::AccountType::AutoAttendant);
    let steps = c.steps(&u);
    assert_eq!(
        steps.iter().map(|s| s.ops.clone()).collect::<Vec<_>>(),
        vec![vec![0, 1], vec![2]]
    );
    let mut uid = None;
    c.send(&u, &mut uid, &steps[0]).await.unwrap();
    assert_eq!(uid.as_deref(), Some("upn:jane.doe@contoso.com"));
    let e = c.send(&u, &mut uid, &steps[1]).await.unwrap_err();
    assert!(
        e.is_not_found(),
        "not listed yet reads as not replicated: {e:?}"
    );
    c.send(&u, &mut uid, &steps[1]).await.unwrap();
    assert_eq!(uid.as_deref(), Some("obj-9"));
    let back = c.read_user("obj-9").await.unwrap().unwrap();
    assert_eq!(back.upn.as_str(), "jane.doe@contoso.com");
    let back = c
        .read_user("upn:jane.doe@contoso.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.id, "obj-9");
    // "Already exists" on a create: find_user falls back to the resource accounts.
    Mock::given(method("GET"))
        .and(path(p("users")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"users": []})))
        .mount(&server)
        .await;
    let found = c
        .find_user(
            &Upn::parse("jane.doe@contoso.com").unwrap(),
            Some("Reception"),
        )
        .await
        .unwrap();
    assert_eq!(found.unwrap().id, "obj-9");
}

/// The connector against the real Fusion simulator over HTTP: the two sides read the
/// document independently (no shared serde types), so these tests catch a misreading.
mod against_sim {
    use super::*;
    use teamsync::model::AccountType;
    use teamsync_sim::fusion::{start, FusionSim, RunningSim};
    use teamsync_sim::SimOptions;

    const SIM_TOKEN: &str = "sim-token-1";
    const MCOEV: &str = "4828c8ec-dc2e-4779-b502-87ac9ce28ab7";
    const E1: &str = "18181a46-0d4e-45cd-891e-60aabd171b4e";

    /// A tenant of `n` users: every third has a number (and customer licenses), groups and
    /// a VRP; numbers +3225400000.. are the inventory, twice as many as linked.
    fn seed(n: usize) -> serde_json::Value {
        let users: Vec<_> = (0..n)
            .map(|i| {
                let mut u = json!({"msTeams": {
                    "id": format!("00000000-0000-4000-8000-{i:012}"),
                    "userPrincipalName": format!("user{i:05}@contoso.com"),
                    "displayName": format!("User {i:05}"),
                    "location": "BE",
                    "licenses": [{"skuId": MCOEV, "skuPartNumber": "MCOEV"}],
                    "voiceEnabled": "yes",
                    "groups": [],
                    "vrp": null
                }});
                if i % 3 == 0 {
                    u["msTeams"]["groups"] = json!([{"displayName": "All Company", "id": "g-all"}]);
                    u["msTeams"]["vrp"] = json!("World-DRaaS");
                    u["draas"] = json!({"id": i + 1, "customerLicenses": ["Call-Bundle"],
                        "phoneNumber": format!("+32254{i:05}"), "status": "active"});
                }
                u
            })
            .collect();
        let numbers: Vec<String> = (0..2 * n.max(4)).map(|i| format!("+32254{i:05}")).collect();
        json!({
            "draas_instance": "prod", "tenant_uuid": "8d5c-uuid", "subscription_id": 12,
            "msTenantId": "27b418d0-b197-483d-a0b8-da90407a92c4",
            "domains": ["contoso.com"],
            "users": users,
            "groups": [
                {"displayName": "All Company", "id": "g-all", "description": "All Company", "filter": true, "teamsEnabled": false},
                {"displayName": "BE Office", "id": "g-be", "filter": true, "teamsEnabled": true}
            ],
            "licenses": [
                {"free": 100000, "skuDescription": "Microsoft Teams Phone Standard", "skuId": MCOEV, "skuPartNumber": "MCOEV", "total": 200000},
                {"free": 5, "skuDescription": "Office 365 E1", "skuId": E1, "skuPartNumber": "STANDARDPACK", "total": 5}
            ],
            "vrps": [{"description": "Global", "identity": "Global"}, {"description": "World-DRaaS", "identity": "World-DRaaS"}],
            "numbers": numbers
        })
    }

    async fn sim(n: usize, opts: SimOptions) -> (tempfile::TempDir, RunningSim) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.json");
        std::fs::write(&path, serde_json::to_vec(&seed(n)).unwrap()).unwrap();
        let s = FusionSim::open(None, Some(&path), opts).expect("seed loads");
        (dir, start(s).await.expect("sim starts"))
    }

    fn sim_opts() -> SimOptions {
        SimOptions {
            token: Some(SIM_TOKEN.into()),
            ..SimOptions::default()
        }
    }

    fn connect(s: &RunningSim, page_size: u32) -> FusionConnector {
        let mut st = FusionSettings::new(
            s.base_url(),
            s.tenant.draas_instance.clone(),
            s.tenant.tenant_uuid.clone(),
            s.tenant.subscription_id,
            TokenSource::Static(SIM_TOKEN.into()),
        );
        st.page_size = page_size;
        st.http.retry = RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        };
        FusionConnector::new(st, Arc::new(Gate::unlimited())).unwrap()
    }

    fn upn(s: &str) -> Upn {
        Upn::parse(s).unwrap()
    }

    #[tokio::test]
    async fn status_and_snapshot_with_details_for_the_asked_users() {
        let (_dir, s) = sim(7, sim_opts()).await;
        let c = connect(&s, 999);
        assert!(c.check().await.unwrap().ok);
        let snap = c
            .snapshot(
                &[upn("user00003@contoso.com"), upn("user00004@contoso.com")],
                false,
            )
            .await
            .unwrap();
        assert_eq!(snap.users.len(), 7);
        assert_eq!(snap.requests, 1 + 4 + 2);
        let by = |u: &str| snap.users.iter().find(|x| x.upn.as_str() == u).unwrap();
        let u3 = by("user00003@contoso.com");
        assert_eq!(u3.number.as_ref().unwrap().to_string(), "+3225400003");
        assert_eq!(u3.customer_licenses, ["Call-Bundle"]);
        assert_eq!(u3.licenses, [MCOEV]);
        assert_eq!(u3.country.as_ref().unwrap().as_str(), "BE");
        assert!(u3.voice_enabled);
        let d = u3.details.as_ref().unwrap();
        assert_eq!(
            (d.groups.as_slice(), d.vrp.as_deref()),
            (&["g-all".to_string()][..], Some("World-DRaaS"))
        );
        let d = by("user00004@contoso.com").details.as_ref().unwrap();
        assert!(d.groups.is_empty() && d.vrp.is_none());
        assert!(by("user00000@contoso.com").details.is_none());
        assert!(by("user00001@contoso.com").number.is_none());
        assert_eq!(snap.catalogs.groups.len(), 2);
        assert_eq!(
            snap.catalogs
                .licenses
                .iter()
                .find(|l| l.sku_id == E1)
                .unwrap()
                .free,
            5
        );
        assert_eq!(snap.catalogs.vrps.len(), 2);
    }

    #[tokio::test]
    async fn paging_through_thousands_of_users() {
        let (_dir, s) = sim(2500, sim_opts()).await;
        let c = connect(&s, 999);
        let snap = c.snapshot(&[], false).await.unwrap();
        assert_eq!(snap.users.len(), 2500);
        assert_eq!(
            snap.requests,
            3 + 4,
            "3 pages of 999 + 3 catalogs + resource accounts"
        );
        let ids: std::collections::HashSet<&str> =
            snap.users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids.len(), 2500);
        // A smaller page: the sim refuses a `next` sent with another page_size, so this
        // passing shows the same page_size went with every token.
        let c = connect(&s, 300);
        let snap = c.snapshot(&[], false).await.unwrap();
        assert_eq!(snap.users.len(), 2500);
        assert_eq!(snap.requests, 9 + 4);
        // all_details: one GET per user, concurrently.
        let (_dir2, small) = sim(40, sim_opts()).await;
        let snap = connect(&small, 999).snapshot(&[], true).await.unwrap();
        assert!(snap.users.iter().all(|u| u.details.is_some()));
        assert_eq!(snap.requests, 1 + 4 + 40);
    }

    #[tokio::test]
    async fn create_then_one_put_then_read_user() {
        let (_dir, s) = sim(3, sim_opts()).await;
        let c = connect(&s, 999);
        let mut u = plan(
            None,
            vec![
                Operation::create_user("Jane Doe".into(), Some(Country::parse("BE").unwrap())),
                Operation::set_licenses(vec![MCOEV.into(), E1.into()]),
                Operation::set_number(Some(E164::parse_canonical("+3225400001").unwrap())),
                Operation::set_vrp(Some("Global".into())),
                Operation::set_groups(vec!["g-all".into(), "g-be".into()]),
                Operation::set_customer_licenses(vec!["Call-Bundle".into()]),
            ],
        );
        u.action = UserAction::Create;
        let steps = c.steps(&u);
        assert_eq!(
            steps.iter().map(|s| s.ops.clone()).collect::<Vec<_>>(),
            vec![vec![0], vec![1, 2, 3, 4, 5]]
        );
        let mut id = None;
        for st in &steps {
            c.send(&u, &mut id, st)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", st.label));
        }
        let id = id.expect("create filled the id");
        let got = c.read_user(&id).await.unwrap().expect("user exists");
        assert_eq!(got.upn.as_str(), "jane.doe@contoso.com");
        assert_eq!(got.display_name, "Jane Doe");
        assert_eq!(got.number.unwrap().to_string(), "+3225400001");
        let mut lic = got.licenses.clone();
        lic.sort();
        assert_eq!(lic, [E1, MCOEV]);
        assert_eq!(got.customer_licenses, ["Call-Bundle"]);
        let d = got.details.unwrap();
        assert_eq!(d.vrp.as_deref(), Some("Global"));
        let mut g = d.groups;
        g.sort();
        assert_eq!(g, ["g-all", "g-be"]);
        // The same create again: "already exists" is a Rejected the executor resolves
        // with find_user.
        let mut again = None;
        let e = c.send(&u, &mut again, &steps[0]).await.unwrap_err();
        assert!(
            matches!(
                &e,
                ConnectorError::Rejected {
                    status: 400,
                    code: Some(_),
                    ..
                }
            ),
            "{e:?}"
        );
        let found = c
            .find_user(&upn("Jane.Doe@contoso.com"), Some("Jane Doe"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, id);
    }

    #[tokio::test]
    async fn dedicated_endpoints_then_delete() {
        let (_dir, s) = sim(4, sim_opts()).await;
        let c = connect(&s, 999);
        let id = "00000000-0000-4000-8000-000000000003".to_string();
        let u = plan(
            Some(&id),
            vec![
                Operation::set_properties(
                    Some("Renamed".into()),
                    Some(Country::parse("NL").unwrap()),
                ),
                Operation::set_licenses(vec![MCOEV.into(), E1.into()]),
                Operation::set_number(None),
                Operation::set_vrp(None),
                Operation::set_groups(vec!["g-be".into()]),
                Operation::Delete,
            ],
        );
        let mut uid = Some(id.clone());
        // Each op alone: one request per dedicated endpoint.
        for i in 0..5 {
            let st = Step {
                ops: vec![i],
                label: String::new(),
            };
            c.send(&u, &mut uid, &st)
                .await
                .unwrap_or_else(|e| panic!("op {i}: {e}"));
        }
        let got = c.read_user(&id).await.unwrap().unwrap();
        assert_eq!(got.display_name, "Renamed");
        assert_eq!(got.country.unwrap().as_str(), "NL");
        assert_eq!(got.licenses.len(), 2);
        assert!(got.number.is_none());
        let d = got.details.unwrap();
        assert_eq!((d.groups, d.vrp), (vec!["g-be".to_string()], None));
        c.send(
            &u,
            &mut uid,
            &Step {
                ops: vec![5],
                label: String::new(),
            },
        )
        .await
        .unwrap();
        assert_eq!(c.read_user(&id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_sims_refusals_map_to_rejected_and_auth() {
        let (_dir, s) = sim(4, sim_opts()).await;
        let c = connect(&s, 999);
        // user 1 has no number; +3225400000 belongs to user 0.
        let u = plan(
            Some("00000000-0000-4000-8000-000000000001"),
            vec![Operation::set_number(Some(
                E164::parse_canonical("+3225400000").unwrap(),
            ))],
        );
        let mut uid = u.user_id.clone();
        let e = c.send(&u, &mut uid, &c.steps(&u)[0]).await.unwrap_err();
        let ConnectorError::Rejected {
            status: 400,
            code: Some(code),
            reason,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert!(!code.is_empty() && !reason.is_empty(), "{e}");
        // Unknown user on a write: 404, which the executor reads as "not replicated yet".
        let u = plan(Some("no-such-user"), vec![Operation::set_vrp(None)]);
        let mut uid = u.user_id.clone();
        let e = c.send(&u, &mut uid, &c.steps(&u)[0]).await.unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        // Wrong token: auth error, no secret in it.
        let mut st = FusionSettings::new(
            s.base_url(),
            "prod",
            "8d5c-uuid",
            12,
            TokenSource::Static("wrong-SECRET".into()),
        );
        st.http.retry.max_attempts = 1;
        let bad = FusionConnector::new(st, Arc::new(Gate::unlimited())).unwrap();
        let e = bad.check().await.unwrap_err();
        assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
        assert!(!e.to_string().contains("SECRET"));
    }

    #[tokio::test]
    async fn the_sims_429s_pause_the_gate_and_reads_still_complete() {
        let (_dir, s) = sim(
            6,
            SimOptions {
                rate_limit: Some(5),
                ..sim_opts()
            },
        )
        .await;
        let gate = Arc::new(Gate::unlimited());
        let mut st = FusionSettings::new(
            s.base_url(),
            "prod",
            "8d5c-uuid",
            12,
            TokenSource::Static(SIM_TOKEN.into()),
        );
        st.http.retry = RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(50),
        };
        let c = FusionConnector::new(st, gate).unwrap();
        let snap = c.snapshot(&[], true).await.unwrap();
        assert_eq!(snap.users.len(), 6);
        assert!(snap.users.iter().all(|u| u.details.is_some()));
        assert!(
            snap.requests > 1 + 4 + 6,
            "some requests were throttled and retried: {}",
            snap.requests
        );
    }

    async fn sample_sim() -> RunningSim {
        let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/tenant.json");
        let s = FusionSim::open(None, Some(&seed), sim_opts()).expect("samples/tenant.json loads");
        start(s).await.expect("sim starts")
    }

    /// Every seed user and resource account, read back through the connector, matches the
    /// seed file as read independently here with plain JSON.
    #[tokio::test]
    async fn snapshot_of_the_sample_tenant_matches_the_seed() {
        let seed: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/tenant.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let s = sample_sim().await;
        let c = connect(&s, 999);
        assert!(c.check().await.unwrap().ok);
        let snap = c.snapshot(&[], true).await.unwrap();
        let users = seed["users"].as_array().unwrap();
        let ras = seed["resourceAccounts"].as_array().unwrap();
        assert_eq!(snap.users.len(), users.len() + ras.len());
        assert_eq!(snap.requests, 1 + 4 + users.len() as u64);
        for su in users {
            let m = &su["msTeams"];
            let id = m["id"].as_str().unwrap();
            let got = snap
                .users
                .iter()
                .find(|u| u.id == id)
                .unwrap_or_else(|| panic!("{id} missing"));
            assert_eq!(
                got.upn.as_str(),
                m["userPrincipalName"].as_str().unwrap().to_lowercase()
            );
            assert_eq!(got.display_name, m["displayName"].as_str().unwrap());
            assert_eq!(
                got.country.as_ref().map(teamsync::model::Country::as_str),
                m["location"].as_str()
            );
            assert_eq!(got.account_type, None);
            let mut want: Vec<&str> = m["licenses"]
                .as_array()
                .map(|l| l.iter().map(|x| x["skuId"].as_str().unwrap()).collect())
                .unwrap_or_default();
            let mut have: Vec<&str> = got.licenses.iter().map(String::as_str).collect();
            want.sort_unstable();
            have.sort_unstable();
            assert_eq!(have, want, "{id} licenses");
            assert_eq!(
                got.number
                    .as_ref()
                    .map(std::string::ToString::to_string)
                    .as_deref(),
                su["draas"]["phoneNumber"].as_str(),
                "{id}"
            );
            let want_cl: Vec<&str> = su["draas"]["customerLicenses"]
                .as_array()
                .map(|l| l.iter().map(|x| x.as_str().unwrap()).collect())
                .unwrap_or_default();
            assert_eq!(got.customer_licenses, want_cl, "{id}");
            let d = got.details.as_ref().expect("all_details");
            let mut want_g: Vec<&str> = m["groups"]
                .as_array()
                .map(|l| l.iter().map(|x| x["id"].as_str().unwrap()).collect())
                .unwrap_or_default();
            let mut have_g: Vec<&str> = d.groups.iter().map(String::as_str).collect();
            want_g.sort_unstable();
            have_g.sort_unstable();
            assert_eq!(have_g, want_g, "{id} groups");
            assert_eq!(d.vrp.as_deref(), m["vrp"].as_str(), "{id} vrp");
        }
        for ra in ras {
            let id = ra["msTeams"]["id"].as_str().unwrap();
            let got = snap.users.iter().find(|u| u.id == id).unwrap();
            let want: AccountType =
                serde_json::from_value(ra["msTeams"]["accountType"].clone()).unwrap();
            assert_eq!(got.account_type, Some(want));
            assert_eq!(
                got.number
                    .as_ref()
                    .map(std::string::ToString::to_string)
                    .as_deref(),
                ra["msTeams"]["phoneNumber"].as_str()
            );
        }
        assert_eq!(
            snap.catalogs.groups.len(),
            seed["groups"].as_array().unwrap().len()
        );
        assert_eq!(
            snap.catalogs.licenses.len(),
            seed["licenses"].as_array().unwrap().len()
        );
        assert_eq!(
            snap.catalogs.vrps.len(),
            seed["vrps"].as_array().unwrap().len()
        );
    }

    #[tokio::test]
    async fn resource_account_create_modify_delete_round_trip() {
        let s = sample_sim().await;
        let c = connect(&s, 999);
        let upn_s = "aa.test@contoso.onmicrosoft.com";
        let mut u = plan(
            None,
            vec![
                Operation::create_user(
                    "Test Attendant".into(),
                    Some(Country::parse("BE").unwrap()),
                ),
                Operation::set_number(Some(E164::parse_canonical("+3225405209").unwrap())),
                Operation::set_vrp(Some("BE-National".into())),
                Operation::set_properties(Some("Renamed Attendant".into()), None),
                Operation::Delete,
            ],
        );
        u.upn = upn(upn_s);
        u.desired = UserSpec::new(u.upn.clone());
        u.desired.account_type = Some(AccountType::AutoAttendant);
        let steps = c.steps(&u);
        assert_eq!(
            steps.iter().map(|s| s.ops.clone()).collect::<Vec<_>>(),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        let mut id = None;
        c.send(&u, &mut id, &steps[0]).await.unwrap();
        assert_eq!(id.as_deref(), Some("upn:aa.test@contoso.onmicrosoft.com"));
        let created = c
            .read_user(id.as_deref().unwrap())
            .await
            .unwrap()
            .expect("listed");
        assert_eq!(created.account_type, Some(AccountType::AutoAttendant));
        assert_eq!(created.number.as_ref().unwrap().to_string(), "+3225405209");
        c.send(&u, &mut id, &steps[1]).await.unwrap();
        let real = id.clone().unwrap();
        assert_eq!(
            real, created.id,
            "the pending id was resolved to the object id"
        );
        let got = c.read_user(&real).await.unwrap().unwrap();
        assert_eq!(got.display_name, "Renamed Attendant");
        // The snapshot lists it as a resource account, not as a user.
        let snap = c.snapshot(&[], false).await.unwrap();
        let listed: Vec<_> = snap
            .users
            .iter()
            .filter(|x| x.upn.as_str() == upn_s)
            .collect();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].account_type.is_some());
        c.send(&u, &mut id, &steps[2]).await.unwrap();
        assert_eq!(c.read_user(&real).await.unwrap(), None);
    }
}
