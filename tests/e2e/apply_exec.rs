//! The executor against the real Fusion connector and simulator over HTTP: a number swap,
//! a create with replication delay, a 429 storm, injected faults, bad credentials. Plans
//! are built by hand from a snapshot (the planner is tested on its own), and every run is
//! checked in the tenant and in the job history.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use teamsync::apply::{execute, ApplyError, ApplyOptions, JobTarget};
use teamsync::connector::fusion::{FusionConnector, FusionSettings, TokenSource};
use teamsync::connector::retry::RetryPolicy;
use teamsync::connector::{Connector, ConnectorError, Gate};
use teamsync::history::{History, ItemStatus, JobFilter, JobStatus};
use teamsync::model::{Country, JobKind, Snapshot, TenantUser, Upn, UserSpec, E164};
use teamsync::plan::model::{Mode, OpRef, Operation, Plan, PlannedOp, UserAction, UserPlan};
use teamsync_sim::fusion::{start, FusionSim, RunningSim};
use teamsync_sim::SimOptions;

const TOKEN: &str = "apply-e2e-token";

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/tenant.json")
}

async fn sim(opts: SimOptions) -> RunningSim {
    let s = FusionSim::open(
        None,
        Some(&sample()),
        SimOptions {
            token: Some(TOKEN.into()),
            ..opts
        },
    )
    .expect("sample tenant loads");
    start(s).await.expect("sim starts")
}

fn connect(s: &RunningSim, token: &str) -> Arc<FusionConnector> {
    let mut st = FusionSettings::new(
        s.base_url(),
        s.tenant.draas_instance.clone(),
        s.tenant.tenant_uuid.clone(),
        s.tenant.subscription_id,
        TokenSource::Static(token.into()),
    );
    st.http.request_timeout = Duration::from_secs(5);
    st.http.retry = RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
    };
    Arc::new(FusionConnector::new(st, Arc::new(Gate::unlimited())).expect("valid settings"))
}

fn opts() -> ApplyOptions {
    ApplyOptions {
        concurrency: 4,
        max_attempts: 6,
        retry_budget: 200,
        max_consecutive_failures: 10,
        request_timeout: Duration::from_secs(5),
        replication_window: Duration::from_secs(10),
        verify: true,
        // These tests are about the per-user requests (fewest_requests.rs has bulk's).
        bulk_size: Some(0),
        limit: None,
        only: vec![],
        title: "e2e".into(),
        progress: false,
    }
}

fn history() -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("history.db")).unwrap();
    (dir, h)
}

fn upn(s: &str) -> Upn {
    Upn::parse(s).unwrap()
}

fn num(s: &str) -> E164 {
    E164::parse_canonical(s).unwrap()
}

fn local(u: &str) -> String {
    format!("{u}@contoso.onmicrosoft.com")
}

struct Tenant {
    snap: Snapshot,
}

impl Tenant {
    /// `details`: groups and VRPs of every user too (one GET each).
    async fn read(c: &FusionConnector, details: bool) -> Tenant {
        Tenant {
            snap: c.snapshot(&[], details).await.expect("snapshot"),
        }
    }
    fn user(&self, name: &str) -> &TenantUser {
        let u = local(name);
        self.snap
            .users
            .iter()
            .find(|x| x.upn.as_str() == u)
            .unwrap_or_else(|| panic!("{u} not in the tenant"))
    }
    fn sku(&self, part: &str) -> String {
        self.snap
            .catalogs
            .licenses
            .iter()
            .find(|l| l.sku_part_number == part)
            .unwrap()
            .sku_id
            .clone()
    }
}

fn ops(list: Vec<Operation>) -> Vec<PlannedOp> {
    list.into_iter()
        .map(|op| PlannedOp {
            op,
            after: vec![],
            awaited: false,
        })
        .collect()
}

fn user_plan(u: &TenantUser, planned: Vec<PlannedOp>) -> UserPlan {
    UserPlan {
        upn: u.upn.clone(),
        user_id: Some(u.id.clone()),
        action: UserAction::Update,
        desired: UserSpec::new(u.upn.clone()),
        origin: None,
        changes: vec![],
        ops: planned,
        before: Default::default(),
    }
}

fn plan(users: Vec<UserPlan>) -> Plan {
    Plan {
        format: 1,
        tenant: "demo".into(),
        backend: "fusion".into(),
        mode: Mode::Upsert,
        kind: JobKind::MsUsers,
        sources: vec!["e2e".into()],
        source_sha256: "00".into(),
        created_on: String::new(),
        snapshot_fingerprint: String::new(),
        snapshot_requests: 0,
        users,
        warnings: vec![],
        refresh: None,
    }
}

fn set_vrp(v: &str) -> Operation {
    Operation::set_vrp(Some(v.into()))
}

/// Users with a number and a VRP: change each one's VRP (one PUT each).
fn vrp_changes(t: &Tenant, n: usize) -> Vec<UserPlan> {
    t.snap
        .users
        .iter()
        .filter(|u| u.number.is_some() && u.account_type.is_none())
        .take(n)
        .map(|u| {
            let to = if u.details.as_ref().and_then(|d| d.vrp.as_deref()) == Some("Global") {
                "International"
            } else {
                "Global"
            };
            user_plan(u, ops(vec![set_vrp(to)]))
        })
        .collect()
}

#[tokio::test]
async fn a_number_swap_and_a_new_user_with_replication_delay() {
    let s = sim(SimOptions {
        replication_delay_ms: 400,
        ..SimOptions::default()
    })
    .await;
    let c = connect(&s, TOKEN);
    let t = Tenant::read(&c, true).await;
    let alice = t.user("alice.martin");
    let bob = t.user("bob.peeters");
    let (n_alice, n_bob) = (alice.number.clone().unwrap(), bob.number.clone().unwrap());

    let mut a = user_plan(
        alice,
        ops(vec![
            Operation::set_number(None),
            Operation::set_number(Some(n_bob.clone())),
        ]),
    );
    a.ops[0].awaited = true;
    a.ops[1].after = vec![OpRef {
        upn: bob.upn.clone(),
        index: 0,
    }];
    let mut b = user_plan(bob, ops(vec![Operation::set_number(Some(n_alice.clone()))]));
    b.ops[0].awaited = true;
    b.ops[0].after = vec![OpRef {
        upn: alice.upn.clone(),
        index: 0,
    }];
    let new = UserPlan {
        upn: upn(&local("new.hire")),
        user_id: None,
        action: UserAction::Create,
        desired: UserSpec::new(upn(&local("new.hire"))),
        origin: None,
        changes: vec![],
        ops: ops(vec![
            Operation::create_user("New Hire".into(), Some(Country::parse("BE").unwrap())),
            Operation::set_licenses(vec![t.sku("STANDARDPACK"), t.sku("MCOEV")]),
            Operation::set_number(Some(num("+3225405209"))),
            set_vrp("BE-National"),
        ]),
        before: Default::default(),
    };
    let unchanged = user_plan(t.user("hanne.claes"), vec![]);
    // Bob first: his claim must wait for Alice's release.
    let p = plan(vec![b, a, new, unchanged]);
    let (_d, h) = history();
    let o = execute(&p, c.clone(), &h, JobTarget::New, &opts())
        .await
        .unwrap();
    let items = h.job_items(o.bulk_id, &[]).unwrap();
    assert_eq!(o.status, JobStatus::Success, "{items:#?}");
    assert_eq!((o.total, o.success, o.unchanged, o.exit_code), (4, 4, 1, 0));
    assert!(o.retries >= 1, "the new user's 404s were deferred");

    let after = Tenant::read(&c, true).await;
    assert_eq!(after.user("alice.martin").number, Some(n_bob));
    assert_eq!(after.user("bob.peeters").number, Some(n_alice));
    let nh = after.user("new.hire");
    assert_eq!(nh.number, Some(num("+3225405209")));
    assert_eq!(
        nh.details.as_ref().unwrap().vrp.as_deref(),
        Some("BE-National")
    );
    let created = items.iter().find(|i| i.upn == local("new.hire")).unwrap();
    assert_eq!(created.user_id.as_deref(), Some(nh.id.as_str()));

    let details = h.job_details_json(&o.job_id, &[]).unwrap().unwrap();
    assert_eq!(details["status"], "success");
    assert_eq!(details["job_items"].as_array().unwrap().len(), 4);
    s.shutdown().await;
}

#[tokio::test]
async fn a_429_storm_pauses_the_tenant_and_every_item_lands() {
    // The client does not pace (unlimited gate): the sim's limit answers 429 + Retry-After.
    let s = sim(SimOptions {
        rate_limit: Some(8),
        ..SimOptions::default()
    })
    .await;
    let c = connect(&s, TOKEN);
    let t = Tenant::read(&c, false).await;
    let users = vrp_changes(&t, 16);
    assert_eq!(users.len(), 16);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.verify = false;
    let o = execute(&plan(users), c.clone(), &h, JobTarget::New, &o1)
        .await
        .unwrap();
    assert_eq!(
        o.status,
        JobStatus::Success,
        "{:#?}",
        h.job_items(o.bulk_id, &[ItemStatus::Error])
    );
    // Throttled sends are not retries: they use no attempt and no budget.
    assert!(o.throttled >= 1, "some requests were throttled");
    assert_eq!(o.retries, 0, "{o:?}");
    assert!(
        o.elapsed >= Duration::from_secs(1),
        "a Retry-After of a whole second was honoured: {:?}",
        o.elapsed
    );
    assert_eq!(o.success, 16);
    s.shutdown().await;
}

#[tokio::test]
async fn injected_faults_and_lost_answers_are_retried_to_success() {
    let s = sim(SimOptions {
        fault_rate: 0.1,
        lost_answer_rate: 0.1,
        seed_rng: 7,
        ..SimOptions::default()
    })
    .await;
    let c = connect(&s, TOKEN);
    let t = Tenant::read(&c, true).await;
    let mut users = vrp_changes(&t, 40);
    assert_eq!(users.len(), 19, "every user with a number");
    for (i, name) in ["temp.one", "temp.two", "temp.three"].iter().enumerate() {
        users.push(UserPlan {
            upn: upn(&local(name)),
            user_id: None,
            action: UserAction::Create,
            desired: UserSpec::new(upn(&local(name))),
            origin: None,
            changes: vec![],
            ops: ops(vec![
                Operation::create_user(format!("Temp {i}"), Some(Country::parse("BE").unwrap())),
                Operation::set_licenses(vec![t.sku("MCOEV")]),
            ]),
            before: Default::default(),
        });
    }
    let (_d, h) = history();
    let o = execute(&plan(users), c.clone(), &h, JobTarget::New, &opts())
        .await
        .unwrap();
    let errors = h.job_items(o.bulk_id, &[ItemStatus::Error]).unwrap();
    assert_eq!(o.status, JobStatus::Success, "{errors:#?}");
    assert_eq!((o.total, o.success), (22, 22));
    assert!(o.retries >= 1, "faults were injected and retried");
    let after = Tenant::read(&c, true).await;
    for name in ["temp.one", "temp.two", "temp.three"] {
        let n = after
            .snap
            .users
            .iter()
            .filter(|u| u.upn.as_str() == local(name))
            .count();
        assert_eq!(n, 1, "{name} exists exactly once");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_abort_before_any_job_is_written() {
    let s = sim(SimOptions::default()).await;
    let good = connect(&s, TOKEN);
    let t = Tenant::read(&good, false).await;
    let bad = connect(&s, "not-the-token");
    let (_d, h) = history();
    let e = execute(&plan(vrp_changes(&t, 3)), bad, &h, JobTarget::New, &opts())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ApplyError::Check(ConnectorError::Auth { .. })),
        "{e}"
    );
    assert_eq!(teamsync::exit::Exit::apply_error(&e).code(), 3);
    assert!(!e.to_string().contains("not-the-token"));
    assert_eq!(h.list_jobs(&JobFilter::default(), 1, 10).unwrap().1, 0);
    s.shutdown().await;
}
