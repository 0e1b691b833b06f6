//! Executor tests against an in-memory tenant with scripted failures.

use super::*;
use crate::connector::gate::{Answer, Kind};
use crate::connector::{Gate, Step, TenantStatus};
use crate::history::{ItemRow, JobFilter};
use crate::model::{
    Attr, AttrSet, AttrValue, Country, JobKind, Profile, Snapshot, TenantUser, UserDetails,
    UserSpec, E164,
};
use crate::plan::model::{Mode, OpRef, Operation, PlannedOp, UserAction};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex as StdMutex;

/// What the fake answers to the next send of one (upn, op kind).
#[derive(Debug, Clone)]
enum Script {
    Fail(ConnectorError),
    /// 429 with a tenant-wide pause, as a connector does it.
    TooMany(Duration),
    /// Applies the request but the answer is lost.
    ApplyThenLose,
    /// Answers only after this long.
    Hang(Duration),
}

#[derive(Default)]
struct FakeState {
    users: HashMap<String, TenantUser>,
    next_id: u64,
    /// Reads and writes of a just-created user answer 404 this many more times.
    lag: HashMap<String, u32>,
}

struct Fake {
    gate: Gate,
    state: StdMutex<FakeState>,
    script: StdMutex<HashMap<(String, &'static str), VecDeque<Script>>>,
    /// Every send attempt: (when, "upn kind[ detail]").
    log: StdMutex<Vec<(Instant, String)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    send_delay: Duration,
    check_error: Option<ConnectorError>,
    replication_lag: u32,
    /// The tenant says 200 to number changes but keeps the old number.
    ignores_numbers: bool,
    read_only: bool,
    /// When set, every send records whether its item was already `running` in the history.
    watch_history: Option<History>,
    seen_running: StdMutex<Vec<(String, bool)>>,
    /// After this many sends, the history refuses every item write (as a full disk
    /// would): a trigger installed through the writer.
    break_history_after: Option<(usize, History)>,
}

fn upn(s: &str) -> Upn {
    Upn::parse(s).unwrap()
}
fn num(s: &str) -> E164 {
    E164::parse_canonical(s).unwrap()
}

impl Fake {
    fn new() -> Fake {
        Fake {
            gate: Gate::unlimited(),
            state: StdMutex::new(FakeState::default()),
            script: StdMutex::new(HashMap::new()),
            log: StdMutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            send_delay: Duration::ZERO,
            check_error: None,
            replication_lag: 0,
            ignores_numbers: false,
            read_only: false,
            watch_history: None,
            seen_running: StdMutex::new(Vec::new()),
            break_history_after: None,
        }
    }

    fn with_user(self, u: &str, number: Option<&str>) -> Fake {
        {
            let mut s = self.state.lock().unwrap();
            s.users.insert(
                format!("id-{}", upn(u).local_part()),
                TenantUser {
                    display_name: u.to_string(),
                    country: Some(Country::parse("BE").unwrap()),
                    voice_enabled: number.is_some(),
                    number: number.map(num),
                    details: Some(UserDetails {
                        groups: vec![],
                        vrp: None,
                    }),
                    ..TenantUser::new(format!("id-{}", upn(u).local_part()), upn(u))
                },
            );
        }
        self
    }

    fn script(&self, u: &str, kind: &'static str, s: Script) {
        self.script
            .lock()
            .unwrap()
            .entry((u.to_string(), kind))
            .or_default()
            .push_back(s);
    }

    fn sends(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn user(&self, u: &str) -> Option<TenantUser> {
        self.state
            .lock()
            .unwrap()
            .users
            .values()
            .find(|x| x.upn.as_str() == u)
            .cloned()
    }

    fn apply_op(
        &self,
        user: &UserPlan,
        user_id: &mut Option<String>,
        op: &Operation,
    ) -> Result<(), ConnectorError> {
        let mut s = self.state.lock().unwrap();
        let not_found = || ConnectorError::Rejected {
            status: 404,
            code: None,
            reason: "user not found".into(),
        };
        if let Operation::Create { .. } = op {
            if s.users.values().any(|x| x.upn == user.upn) {
                return Err(ConnectorError::Rejected {
                    status: 409,
                    code: Some("already_exists".into()),
                    reason: "user already exists".into(),
                });
            }
            s.next_id += 1;
            let id = format!("new-{}", s.next_id);
            s.users.insert(
                id.clone(),
                TenantUser {
                    display_name: op.sets_text(Attr::DisplayName).unwrap_or_default().into(),
                    country: op
                        .sets(Attr::Country)
                        .and_then(Option::as_ref)
                        .and_then(AttrValue::as_country)
                        .cloned(),
                    details: Some(UserDetails {
                        groups: vec![],
                        vrp: None,
                    }),
                    ..TenantUser::new(id.clone(), user.upn.clone())
                },
            );
            if self.replication_lag > 0 {
                s.lag.insert(id.clone(), self.replication_lag);
            }
            *user_id = Some(id);
            return Ok(());
        }
        let id = user_id.clone().ok_or_else(not_found)?;
        if let Some(l) = s.lag.get_mut(&id) {
            if *l > 0 {
                *l -= 1;
                return Err(not_found());
            }
        }
        if let Some(n) = op.claims_number() {
            if s.users
                .values()
                .any(|x| x.id != id && x.number.as_ref() == Some(n))
            {
                return Err(ConnectorError::Rejected {
                    status: 400,
                    code: Some("number_linked".into()),
                    reason: format!("number {n} already linked to another user"),
                });
            }
        }
        if matches!(op, Operation::Delete) {
            return s.users.remove(&id).map(|_| ()).ok_or_else(not_found);
        }
        let ignores_numbers = self.ignores_numbers;
        let u = s.users.get_mut(&id).ok_or_else(not_found)?;
        u.details.get_or_insert(UserDetails {
            groups: vec![],
            vrp: None,
        });
        for c in op.changes() {
            if c.attr == Attr::Number {
                if ignores_numbers {
                    continue;
                }
                u.voice_enabled = c.after.is_some();
            }
            u.set(c.attr, c.after.clone())
                .map_err(|e| ConnectorError::Config(e.to_string()))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Connector for Fake {
    fn profile(&self) -> Profile {
        let all = !self.read_only;
        Profile {
            write: all,
            create: all,
            delete: all,
            attrs: AttrSet::ALL.without(Attr::Extension),
            create_needs: AttrSet::of(&[Attr::DisplayName, Attr::Country]),
            ..Profile::read_only("fake")
        }
    }
    async fn check(&self) -> Result<TenantStatus, ConnectorError> {
        match &self.check_error {
            Some(e) => Err(e.clone()),
            None => Ok(TenantStatus {
                ok: true,
                details: serde_json::json!({}),
            }),
        }
    }
    async fn snapshot(&self, _: &[Upn], _: bool) -> Result<Snapshot, ConnectorError> {
        Ok(Snapshot::default())
    }
    async fn read_user(&self, id: &str) -> Result<Option<TenantUser>, ConnectorError> {
        let p = self.gate.admit(Kind::Read).await;
        self.gate.answered(p, Answer::Served { limit_used: None });
        let mut s = self.state.lock().unwrap();
        if let Some(l) = s.lag.get_mut(id) {
            if *l > 0 {
                *l -= 1;
                return Ok(None);
            }
        }
        Ok(s.users.get(id).cloned())
    }
    async fn find_user(
        &self,
        u: &Upn,
        _: Option<&str>,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        let p = self.gate.admit(Kind::Read).await;
        self.gate.answered(p, Answer::Served { limit_used: None });
        Ok(self.user(u.as_str()))
    }
    fn steps(&self, user: &UserPlan) -> Vec<Step> {
        (0..user.ops.len())
            .map(|i| Step {
                ops: vec![i],
                label: user.ops[i].op.kind().to_string(),
            })
            .collect()
    }
    async fn send(
        &self,
        user: &UserPlan,
        user_id: &mut Option<String>,
        step: &Step,
    ) -> Result<(), ConnectorError> {
        let permit = self.gate.admit(Kind::Write).await;
        if let Some(h) = &self.watch_history {
            let (jobs, _) = h.list_jobs(&JobFilter::default(), 1, 1).unwrap();
            let running = h.job_items(jobs[0].id, &[ItemStatus::Running]).unwrap();
            let written = running.iter().any(|i| i.upn == user.upn.as_str());
            self.seen_running
                .lock()
                .unwrap()
                .push((user.upn.to_string(), written));
        }
        if let Some((after, h)) = &self.break_history_after {
            if self.log.lock().unwrap().len() + 1 == *after {
                h.write(|c| {
                    c.execute_batch(
                        "CREATE TRIGGER disk_full BEFORE UPDATE ON job_items \
                         BEGIN SELECT RAISE(ABORT, 'database or disk is full (test)'); END;",
                    )?;
                    Ok(())
                })
                .await
                .unwrap();
            }
        }
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        let op = &user.ops[step.ops[0]].op;
        let detail = match op.sets(Attr::Number) {
            Some(number) => format!(
                " {}",
                number
                    .as_ref()
                    .map_or("none".into(), std::string::ToString::to_string)
            ),
            None => String::new(),
        };
        self.log.lock().unwrap().push((
            Instant::now(),
            format!("{} {}{detail}", user.upn, op.kind()),
        ));
        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(&(user.upn.to_string(), op.kind()))
            .and_then(VecDeque::pop_front);
        if !self.send_delay.is_zero() {
            tokio::time::sleep(self.send_delay).await;
        }
        let r = match scripted {
            Some(Script::Fail(e)) => Err(e),
            Some(Script::TooMany(d)) => {
                self.gate
                    .answered(permit, Answer::Throttled { retry_after: d });
                Err(ConnectorError::Retryable {
                    status: Some(429),
                    retry_after: Some(d),
                    message: "too many requests".into(),
                })
            }
            Some(Script::ApplyThenLose) => {
                self.apply_op(user, user_id, op)
                    .and(Err(ConnectorError::Retryable {
                        status: None,
                        retry_after: None,
                        message: "connection reset".into(),
                    }))
            }
            Some(Script::Hang(d)) => {
                tokio::time::sleep(d).await;
                self.apply_op(user, user_id, op)
            }
            None => self.apply_op(user, user_id, op),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

fn op(o: Operation) -> PlannedOp {
    PlannedOp {
        op: o,
        after: vec![],
        awaited: false,
    }
}

fn set_number(n: Option<&str>) -> Operation {
    Operation::set_number(n.map(num))
}

fn vrp(v: &str) -> Operation {
    Operation::set_vrp(Some(v.into()))
}

fn user_plan(u: &str, id: Option<&str>, ops: Vec<PlannedOp>) -> UserPlan {
    let mut desired = UserSpec::new(upn(u));
    desired.display_name = crate::model::Field::Set(u.to_string());
    UserPlan {
        upn: upn(u),
        user_id: id.map(str::to_string),
        action: if ops.is_empty() {
            UserAction::Unchanged
        } else {
            UserAction::Update
        },
        desired,
        origin: None,
        changes: vec![],
        ops,
        before: Default::default(),
    }
}

/// An existing user (`id-<local part>`) with these operations.
fn existing(u: &str, ops: Vec<PlannedOp>) -> UserPlan {
    let id = format!("id-{}", upn(u).local_part());
    user_plan(u, Some(&id), ops)
}

fn plan(users: Vec<UserPlan>) -> Plan {
    Plan {
        format: 1,
        tenant: "t1".into(),
        backend: "fake".into(),
        mode: Mode::Upsert,
        kind: JobKind::MsUsers,
        sources: vec!["users.csv".into()],
        source_sha256: "00".into(),
        created_on: String::new(),
        snapshot_fingerprint: String::new(),
        snapshot_requests: 0,
        users,
        warnings: vec![],
        refresh: None,
    }
}

fn opts() -> ApplyOptions {
    ApplyOptions {
        concurrency: 4,
        max_attempts: 4,
        retry_budget: 100,
        max_consecutive_failures: 0,
        request_timeout: Duration::from_secs(5),
        replication_window: Duration::from_secs(5),
        verify: false,
        bulk_size: None,
        limit: None,
        only: vec![],
        title: "test".into(),
        progress: false,
    }
}

fn history() -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("h.db")).unwrap();
    (dir, h)
}

fn item<'a>(items: &'a [ItemRow], u: &str) -> &'a ItemRow {
    items.iter().find(|i| i.upn == u).unwrap()
}

async fn run(p: &Plan, fake: &Arc<Fake>, h: &History, o: &ApplyOptions) -> JobOutcome {
    execute(p, fake.clone(), h, JobTarget::New, o)
        .await
        .unwrap()
}

#[tokio::test]
async fn applies_every_user_and_records_every_item() {
    let fake = Arc::new(
        Fake::new()
            .with_user("a@x.com", None)
            .with_user("b@x.com", Some("+3225405202"))
            .with_user("u@x.com", None),
    );
    let p = plan(vec![
        existing(
            "a@x.com",
            vec![op(set_number(Some("+3225405201"))), op(vrp("BE"))],
        ),
        existing("b@x.com", vec![op(set_number(None))]),
        existing("u@x.com", vec![]),
    ]);
    let (_d, h) = history();
    let o = run(&p, &fake, &h, &opts()).await;
    assert_eq!(o.status, JobStatus::Success);
    assert_eq!(
        (o.total, o.success, o.errors, o.unchanged, o.exit_code),
        (3, 3, 0, 1, 0)
    );
    assert_eq!(o.requests, 4, "check + three sends");
    assert_eq!(
        fake.user("a@x.com").unwrap().number,
        Some(num("+3225405201"))
    );
    assert_eq!(fake.user("b@x.com").unwrap().number, None);
    let items = h.job_items(o.bulk_id, &[]).unwrap();
    assert_eq!(item(&items, "a@x.com").status, ItemStatus::Success);
    assert_eq!(item(&items, "a@x.com").attempts, 2);
    assert_eq!(item(&items, "u@x.com").status, ItemStatus::Unchanged);
    assert!(item(&items, "a@x.com").plan.is_some());
    let job = h.get_job(&o.job_id).unwrap().unwrap();
    assert_eq!(
        (job.id, job.title.as_str(), job.tenant.as_str()),
        (o.bulk_id, "test", "t1")
    );
    let j = o.to_json(&h).unwrap();
    assert_eq!(
        (j["status"].as_str(), j["exit_code"].as_i64()),
        (Some("success"), Some(0))
    );
    assert_eq!(
        (j["total_count"].as_u64(), j["requests"].as_u64()),
        (Some(3), Some(4))
    );
    assert!(j.get("job_items").is_none());
    // The lock is released.
    drop(history_lock(&h, "t1").unwrap());
}

#[tokio::test]
async fn an_item_is_running_in_the_history_before_its_request_goes_out() {
    let (_d, h) = history();
    let mut f = Fake::new()
        .with_user("a@x.com", None)
        .with_user("b@x.com", None);
    f.watch_history = Some(h.clone());
    let fake = Arc::new(f);
    let p = plan(vec![
        existing("a@x.com", vec![op(vrp("BE")), op(vrp("NL"))]),
        existing("b@x.com", vec![op(vrp("BE"))]),
    ]);
    let o = run(&p, &fake, &h, &opts()).await;
    assert_eq!(o.status, JobStatus::Success);
    let seen = fake.seen_running.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|(_, running)| *running), "{seen:?}");
    // And the end is written too.
    let items = h.job_items(o.bulk_id, &[ItemStatus::Success]).unwrap();
    assert_eq!(items.len(), 2);
}

#[tokio::test]
async fn nothing_to_change_is_still_a_successful_job() {
    let fake = Arc::new(Fake::new().with_user("u@x.com", None));
    let (_d, h) = history();
    let o = run(&plan(vec![existing("u@x.com", vec![])]), &fake, &h, &opts()).await;
    assert_eq!(
        (o.status, o.total, o.success, o.unchanged, o.exit_code),
        (JobStatus::Success, 1, 1, 1, 0)
    );
    assert!(fake.sends().is_empty());
}

#[tokio::test]
async fn a_429_pauses_every_request_until_its_retry_after() {
    let fake = Arc::new(
        Fake::new()
            .with_user("a@x.com", None)
            .with_user("b@x.com", None),
    );
    let pause = Duration::from_millis(400);
    fake.script("a@x.com", "set_vrp", Script::TooMany(pause));
    let p = plan(vec![
        existing("a@x.com", vec![op(vrp("BE")), op(vrp("FR"))]),
        existing("b@x.com", vec![op(vrp("BE")), op(vrp("NL")), op(vrp("DE"))]),
    ]);
    let (_d, h) = history();
    let o = run(&p, &fake, &h, &opts()).await;
    assert_eq!(o.status, JobStatus::Success);
    // Throttling is not a failure: no retry, no attempt; the gate counted it.
    assert_eq!((o.retries, o.throttled), (0, 1));
    let log = fake.log.lock().unwrap().clone();
    let t429 = log.iter().find(|(_, s)| s == "a@x.com set_vrp").unwrap().0;
    // A request that had passed the gate before the 429 may still be logged just after
    // it (a scheduling race): allow 50 ms for those, none later inside the pause.
    for (t, s) in &log {
        assert!(
            *t <= t429 + Duration::from_millis(50)
                || *t >= t429 + pause - Duration::from_millis(20),
            "{s} was sent {:?} into the pause",
            *t - t429
        );
    }
    assert_eq!(
        item(&h.job_items(o.bulk_id, &[]).unwrap(), "a@x.com").attempts,
        2
    );
    let job = h.get_job(&o.bulk_id.to_string()).unwrap().unwrap();
    assert_eq!((job.throttled_count, job.settled_rate), (1, None));
}

#[tokio::test]
async fn throttling_uses_neither_attempts_nor_the_retry_budget() {
    let fake = Arc::new(Fake::new().with_user("a@x.com", None));
    // More throttles in a row than the item has attempts, and a job with no retry
    // budget at all: the item still ends well.
    for _ in 0..5 {
        fake.script(
            "a@x.com",
            "set_vrp",
            Script::TooMany(Duration::from_millis(20)),
        );
    }
    let p = plan(vec![existing("a@x.com", vec![op(vrp("BE"))])]);
    let (_d, h) = history();
    let mut o2 = opts();
    o2.max_attempts = 2;
    o2.retry_budget = 0;
    let o = run(&p, &fake, &h, &o2).await;
    assert_eq!(
        (o.status, o.errors, o.retries, o.throttled),
        (JobStatus::Success, 0, 0, 5)
    );
    let it = item(&h.job_items(o.bulk_id, &[]).unwrap(), "a@x.com").clone();
    assert_eq!((it.status, it.attempts), (ItemStatus::Success, 1));
}

#[tokio::test]
async fn throttling_past_its_time_bound_aborts_the_job_resumably() {
    let fake = Arc::new(
        Fake::new()
            .with_user("a@x.com", None)
            .with_user("b@x.com", None),
    );
    fake.script(
        "a@x.com",
        "set_vrp",
        Script::Fail(ConnectorError::Throttled {
            request: "PUT users/a".into(),
            throttled_for: Duration::from_secs(1900),
            limit: Duration::from_secs(1800),
        }),
    );
    let p = plan(vec![
        existing("a@x.com", vec![op(vrp("BE"))]),
        existing("b@x.com", vec![op(vrp("BE")), op(vrp("NL"))]),
    ]);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 1;
    let o = run(&p, &fake, &h, &o1).await;
    assert_eq!((o.status, o.exit_code), (JobStatus::Aborted, 3));
    let reason = o.abort_reason.clone().unwrap();
    assert!(reason.contains("max_throttle_minutes"), "{reason}");
    // Nothing failed: the throttled item is pending again, for `resume`.
    let items = h.job_items(o.bulk_id, &[]).unwrap();
    assert_eq!(item(&items, "a@x.com").status, ItemStatus::Pending);
    assert!(
        items.iter().all(|i| i.status != ItemStatus::Error),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_503_or_a_timeout_is_retried_then_succeeds() {
    let fake = Arc::new(
        Fake::new()
            .with_user("a@x.com", None)
            .with_user("b@x.com", None),
    );
    fake.script(
        "a@x.com",
        "set_vrp",
        Script::Fail(ConnectorError::Retryable {
            status: Some(503),
            retry_after: None,
            message: "service unavailable".into(),
        }),
    );
    fake.script(
        "b@x.com",
        "set_vrp",
        Script::Hang(Duration::from_millis(600)),
    );
    let p = plan(vec![
        existing("a@x.com", vec![op(vrp("BE"))]),
        existing("b@x.com", vec![op(vrp("BE"))]),
    ]);
    let (_d, h) = history();
    let mut o2 = opts();
    o2.request_timeout = Duration::from_millis(150);
    let o = run(&p, &fake, &h, &o2).await;
    assert_eq!((o.status, o.retries), (JobStatus::Success, 2));
    let items = h.job_items(o.bulk_id, &[]).unwrap();
    assert_eq!(item(&items, "a@x.com").attempts, 2);
    assert_eq!(item(&items, "b@x.com").attempts, 2);
}

#[tokio::test]
async fn a_400_is_the_items_error_and_the_job_is_partial() {
    let fake = Arc::new(
        Fake::new()
            .with_user("a@x.com", None)
            .with_user("b@x.com", None),
    );
    fake.script(
        "b@x.com",
        "set_number",
        Script::Fail(ConnectorError::Rejected {
            status: 400,
            code: Some("invalid_number".into()),
            reason: "number not in the subscription".into(),
        }),
    );
    let p = plan(vec![
        existing("a@x.com", vec![op(vrp("BE"))]),
        existing(
            "b@x.com",
            vec![op(set_number(Some("+3225405299"))), op(vrp("BE"))],
        ),
    ]);
    let (_d, h) = history();
    let o = run(&p, &fake, &h, &opts()).await;
    assert_eq!(
        (o.status, o.exit_code, o.success, o.errors),
        (JobStatus::Partial, 1, 1, 1)
    );
    let b = item(&h.job_items(o.bulk_id, &[]).unwrap(), "b@x.com").clone();
    assert_eq!(b.status, ItemStatus::Error);
    assert_eq!(b.error_code.as_deref(), Some("invalid_number"));
    assert!(b.error_reason.unwrap().contains("not in the subscription"));
    assert_eq!(b.attempts, 1, "a 400 is not retried");
    assert!(
        !fake.sends().contains(&"b@x.com set_vrp".to_string()),
        "later steps are not sent"
    );
}

#[tokio::test]
async fn an_auth_failure_aborts_and_leaves_unfinished_items_pending() {
    let fake = Arc::new(
        Fake::new()
            .with_user("a@x.com", None)
            .with_user("b@x.com", None)
            .with_user("c@x.com", None),
    );
    fake.script(
        "b@x.com",
        "set_vrp",
        Script::Fail(ConnectorError::Auth {
            status: 401,
            message: "token expired".into(),
        }),
    );
    let p = plan(vec![
        existing("a@x.com", vec![op(vrp("BE"))]),
        existing("b@x.com", vec![op(vrp("BE"))]),
        existing("c@x.com", vec![op(vrp("BE"))]),
    ]);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 1;
    let o = run(&p, &fake, &h, &o1).await;
    assert_eq!((o.status, o.exit_code), (JobStatus::Aborted, 3));
    assert!(o.abort_reason.unwrap().contains("authentication"));
    assert_eq!(fake.sends(), vec!["a@x.com set_vrp", "b@x.com set_vrp"]);
    let pending: Vec<String> = h
        .pending_items(o.bulk_id)
        .unwrap()
        .into_iter()
        .map(|i| i.upn)
        .collect();
    assert_eq!(pending, vec!["b@x.com", "c@x.com"]);
    assert!(h
        .pending_items(o.bulk_id)
        .unwrap()
        .iter()
        .all(|i| i.status == ItemStatus::Pending));
    assert_eq!(
        h.get_job(&o.job_id).unwrap().unwrap().status,
        JobStatus::Aborted
    );
}

#[tokio::test]
async fn an_auth_failure_at_the_check_writes_nothing() {
    let mut f = Fake::new().with_user("a@x.com", None);
    f.check_error = Some(ConnectorError::Auth {
        status: 403,
        message: "forbidden".into(),
    });
    let fake = Arc::new(f);
    let (_d, h) = history();
    let e = execute(
        &plan(vec![existing("a@x.com", vec![op(vrp("BE"))])]),
        fake.clone(),
        &h,
        JobTarget::New,
        &opts(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, ApplyError::Check(ConnectorError::Auth { .. })),
        "{e}"
    );
    assert_eq!(crate::exit::Exit::apply_error(&e).code(), 3);
    assert_eq!(h.list_jobs(&JobFilter::default(), 1, 10).unwrap().1, 0);
    assert!(fake.sends().is_empty());
    // The lock went with the failed attempt.
    drop(history_lock(&h, "t1").unwrap());
}

#[tokio::test]
async fn a_held_lock_refuses_the_job() {
    let fake = Arc::new(Fake::new().with_user("a@x.com", None));
    let (_d, h) = history();
    let g = history_lock(&h, "t1").unwrap();
    let e = execute(
        &plan(vec![existing("a@x.com", vec![op(vrp("BE"))])]),
        fake.clone(),
        &h,
        JobTarget::New,
        &opts(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ApplyError::Locked(_)), "{e}");
    assert!(e.to_string().contains("is busy: its lock"), "{e}");
    assert_eq!(crate::exit::Exit::apply_error(&e).code(), 3);
    assert!(fake.sends().is_empty());
    g.release().await.unwrap();
}

#[tokio::test]
async fn a_run_of_failures_aborts_the_job() {
    let mut users = Vec::new();
    let mut f = Fake::new();
    for i in 0..5 {
        let u = format!("u{i}@x.com");
        f = f.with_user(&u, None);
        users.push(existing(&u, vec![op(vrp("BE"))]));
    }
    let fake = Arc::new(f);
    for i in 0..5 {
        fake.script(
            &format!("u{i}@x.com"),
            "set_vrp",
            Script::Fail(ConnectorError::Rejected {
                status: 400,
                code: None,
                reason: "bad vrp".into(),
            }),
        );
    }
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 1;
    o1.max_consecutive_failures = 2;
    let o = run(&plan(users), &fake, &h, &o1).await;
    assert_eq!(
        (o.status, o.exit_code, o.errors),
        (JobStatus::Aborted, 3, 2)
    );
    assert!(o.abort_reason.unwrap().contains("2 consecutive"));
    assert_eq!(fake.sends().len(), 2);
    assert_eq!(h.pending_items(o.bulk_id).unwrap().len(), 3);
}

/// A has N1, B has N2; they swap. A releases first, B claims N1, A claims N2.
fn swap_plan() -> Plan {
    let a_ops = vec![
        PlannedOp {
            op: set_number(None),
            after: vec![],
            awaited: true,
        },
        PlannedOp {
            op: set_number(Some("+3225405202")),
            after: vec![OpRef {
                upn: upn("b@x.com"),
                index: 0,
            }],
            awaited: false,
        },
    ];
    let b_ops = vec![PlannedOp {
        op: set_number(Some("+3225405201")),
        after: vec![OpRef {
            upn: upn("a@x.com"),
            index: 0,
        }],
        awaited: true,
    }];
    // B first, one worker: B must give its slot back while it waits.
    plan(vec![existing("b@x.com", b_ops), existing("a@x.com", a_ops)])
}

fn swap_fake() -> Fake {
    Fake::new()
        .with_user("a@x.com", Some("+3225405201"))
        .with_user("b@x.com", Some("+3225405202"))
}

#[tokio::test]
async fn a_number_swap_releases_before_it_claims() {
    let fake = Arc::new(swap_fake());
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 1;
    // A worker that kept its slot while waiting would deadlock here.
    let o = tokio::time::timeout(Duration::from_secs(20), run(&swap_plan(), &fake, &h, &o1))
        .await
        .expect("the swap deadlocked");
    assert_eq!(
        o.status,
        JobStatus::Success,
        "{:?}",
        h.job_items(o.bulk_id, &[]).unwrap()
    );
    assert_eq!(
        fake.sends(),
        vec![
            "a@x.com set_number none",
            "b@x.com set_number +3225405201",
            "a@x.com set_number +3225405202"
        ]
    );
    assert_eq!(
        fake.user("a@x.com").unwrap().number,
        Some(num("+3225405202"))
    );
    assert_eq!(
        fake.user("b@x.com").unwrap().number,
        Some(num("+3225405201"))
    );
}

#[tokio::test]
async fn a_failed_release_fails_the_claim_that_waits_for_it() {
    let fake = Arc::new(swap_fake());
    fake.script(
        "a@x.com",
        "set_number",
        Script::Fail(ConnectorError::Rejected {
            status: 400,
            code: None,
            reason: "locked number".into(),
        }),
    );
    let (_d, h) = history();
    let o = run(&swap_plan(), &fake, &h, &opts()).await;
    assert_eq!((o.status, o.errors), (JobStatus::Error, 2));
    let b = item(&h.job_items(o.bulk_id, &[]).unwrap(), "b@x.com").clone();
    assert_eq!(b.error_code.as_deref(), Some("dependency"));
    assert_eq!(
        b.error_reason.as_deref(),
        Some("dependency failed: number release by a@x.com failed")
    );
    assert_eq!(fake.sends(), vec!["a@x.com set_number none"]);
}

#[tokio::test]
async fn a_dependency_outside_the_run_fails_clearly() {
    let fake = Arc::new(swap_fake());
    let (_d, h) = history();
    let mut o1 = opts();
    o1.only = vec![upn("b@x.com")];
    let o = run(&swap_plan(), &fake, &h, &o1).await;
    assert_eq!((o.total, o.status), (1, JobStatus::Error));
    let b = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    assert!(b
        .error_reason
        .as_deref()
        .unwrap()
        .starts_with("dependency not in this run: number release by a@x.com"));
    assert!(fake.sends().is_empty());
}

#[tokio::test]
async fn a_dependency_cycle_is_refused_before_anything_is_sent() {
    let fake = Arc::new(swap_fake());
    let mut p = swap_plan();
    // a.0 now also waits for b.0, which waits for a.0.
    p.users[1].ops[0].after = vec![OpRef {
        upn: upn("b@x.com"),
        index: 0,
    }];
    let (_d, h) = history();
    let e = execute(&p, fake.clone(), &h, JobTarget::New, &opts())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ApplyError::InvalidPlan(ref m) if m.contains("cycle")),
        "{e}"
    );
    assert_eq!(crate::exit::Exit::apply_error(&e).code(), 2);
    assert!(fake.sends().is_empty());
}

fn create_plan(u: &str) -> UserPlan {
    user_plan(
        u,
        None,
        vec![
            op(Operation::create_user(
                "New User".into(),
                Some(Country::parse("BE").unwrap()),
            )),
            op(Operation::set_licenses(vec!["sku-1".into()])),
            op(set_number(Some("+3225405209"))),
        ],
    )
}

#[tokio::test]
async fn a_404_on_a_user_this_job_created_is_replication_delay() {
    let mut f = Fake::new();
    f.replication_lag = 2;
    let fake = Arc::new(f);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.verify = true;
    let o = run(&plan(vec![create_plan("n@x.com")]), &fake, &h, &o1).await;
    assert_eq!(
        o.status,
        JobStatus::Success,
        "{:?}",
        h.job_items(o.bulk_id, &[]).unwrap()
    );
    assert_eq!(o.retries, 2);
    let it = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    assert_eq!(it.user_id.as_deref(), Some("new-1"));
    assert_eq!(fake.user("n@x.com").unwrap().licenses, vec!["sku-1"]);
}

#[tokio::test]
async fn a_404_past_the_replication_window_is_the_items_error() {
    let mut f = Fake::new();
    f.replication_lag = 1000;
    let fake = Arc::new(f);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.replication_window = Duration::from_millis(300);
    let o = run(&plan(vec![create_plan("n@x.com")]), &fake, &h, &o1).await;
    assert_eq!(o.status, JobStatus::Error);
    let it = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    assert_eq!(it.error_code.as_deref(), Some("404"));
    assert!(
        it.error_reason
            .as_deref()
            .unwrap()
            .contains("still not found"),
        "{it:?}"
    );
    assert!(o.elapsed >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_404_on_an_existing_user_is_not_deferred() {
    let fake = Arc::new(Fake::new());
    let (_d, h) = history();
    let o = run(
        &plan(vec![existing("gone@x.com", vec![op(vrp("BE"))])]),
        &fake,
        &h,
        &opts(),
    )
    .await;
    assert_eq!((o.status, o.retries), (JobStatus::Error, 0));
    assert_eq!(fake.sends().len(), 1);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_resolved_by_finding_the_user() {
    let fake = Arc::new(Fake::new());
    fake.script("n@x.com", "create", Script::ApplyThenLose);
    let (_d, h) = history();
    let o = run(&plan(vec![create_plan("n@x.com")]), &fake, &h, &opts()).await;
    assert_eq!(
        o.status,
        JobStatus::Success,
        "{:?}",
        h.job_items(o.bulk_id, &[]).unwrap()
    );
    assert_eq!(
        fake.sends(),
        vec![
            "n@x.com create",
            "n@x.com create",
            "n@x.com set_licenses",
            "n@x.com set_number +3225405209"
        ]
    );
    assert_eq!(fake.state.lock().unwrap().users.len(), 1);
    let it = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    assert_eq!(it.user_id.as_deref(), Some("new-1"));
    assert_eq!(
        fake.user("n@x.com").unwrap().number,
        Some(num("+3225405209"))
    );
}

#[tokio::test]
async fn a_create_refused_for_a_different_existing_user_fails() {
    let fake = Arc::new(Fake::new().with_user("n@x.com", None));
    let (_d, h) = history();
    let o = run(&plan(vec![create_plan("n@x.com")]), &fake, &h, &opts()).await;
    let it = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    assert_eq!(it.status, ItemStatus::Error);
    assert_eq!(it.error_code.as_deref(), Some("already_exists"));
    assert!(
        it.error_reason
            .as_deref()
            .unwrap()
            .contains("displayName is"),
        "{it:?}"
    );
}

#[tokio::test]
async fn a_verify_mismatch_is_the_items_error() {
    let mut f = Fake::new()
        .with_user("a@x.com", None)
        .with_user("b@x.com", None);
    f.ignores_numbers = true;
    let fake = Arc::new(f);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.verify = true;
    let p = plan(vec![
        existing("a@x.com", vec![op(set_number(Some("+3225405201")))]),
        existing(
            "b@x.com",
            vec![op(vrp("BE")), op(Operation::set_groups(vec!["g1".into()]))],
        ),
    ]);
    let o = run(&p, &fake, &h, &o1).await;
    assert_eq!((o.status, o.errors, o.success), (JobStatus::Partial, 1, 1));
    let a = item(&h.job_items(o.bulk_id, &[]).unwrap(), "a@x.com").clone();
    assert_eq!(a.error_code.as_deref(), Some("verify"));
    assert_eq!(
        a.error_reason.as_deref(),
        Some("verify: number is none, expected +3225405201")
    );
    assert_eq!(o.requests, 1 + 3 + 2, "check, three sends, two read-backs");
}

#[tokio::test]
async fn a_spent_retry_budget_fails_the_item() {
    let fake = Arc::new(Fake::new().with_user("a@x.com", None));
    for _ in 0..3 {
        fake.script(
            "a@x.com",
            "set_vrp",
            Script::Fail(ConnectorError::Retryable {
                status: Some(502),
                retry_after: None,
                message: "bad gateway".into(),
            }),
        );
    }
    let (_d, h) = history();
    let mut o1 = opts();
    o1.retry_budget = 1;
    let o = run(
        &plan(vec![existing("a@x.com", vec![op(vrp("BE"))])]),
        &fake,
        &h,
        &o1,
    )
    .await;
    assert_eq!((o.status, o.retries), (JobStatus::Error, 1));
    let it = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    assert_eq!(it.error_code.as_deref(), Some("502"));
    assert!(it
        .error_reason
        .as_deref()
        .unwrap()
        .contains("retry budget is spent"));
    assert_eq!(it.attempts, 2);
}

#[tokio::test]
async fn max_attempts_bounds_the_retries_of_a_request() {
    let fake = Arc::new(Fake::new().with_user("a@x.com", None));
    for _ in 0..5 {
        fake.script(
            "a@x.com",
            "set_vrp",
            Script::Fail(ConnectorError::Retryable {
                status: None,
                retry_after: None,
                message: "connection refused".into(),
            }),
        );
    }
    let (_d, h) = history();
    let mut o1 = opts();
    o1.max_attempts = 2;
    let o = run(
        &plan(vec![existing("a@x.com", vec![op(vrp("BE"))])]),
        &fake,
        &h,
        &o1,
    )
    .await;
    let it = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    assert_eq!(
        (it.attempts, it.error_code.as_deref()),
        (2, Some("network"))
    );
    assert!(it
        .error_reason
        .as_deref()
        .unwrap()
        .contains("gave up after 2 attempts"));
}

#[tokio::test]
async fn resume_finishes_the_pending_items_in_the_same_job() {
    let fake = Arc::new(
        Fake::new()
            .with_user("a@x.com", None)
            .with_user("b@x.com", None)
            .with_user("c@x.com", None)
            .with_user("d@x.com", None),
    );
    fake.script(
        "b@x.com",
        "set_vrp",
        Script::Fail(ConnectorError::Rejected {
            status: 400,
            code: None,
            reason: "bad".into(),
        }),
    );
    fake.script(
        "c@x.com",
        "set_vrp",
        Script::Fail(ConnectorError::Auth {
            status: 401,
            message: "expired".into(),
        }),
    );
    let p = plan(vec![
        existing("a@x.com", vec![op(vrp("BE"))]),
        existing("b@x.com", vec![op(vrp("BE"))]),
        existing("c@x.com", vec![op(vrp("BE"))]),
        existing("d@x.com", vec![op(vrp("BE"))]),
    ]);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 1;
    let first = run(&p, &fake, &h, &o1).await;
    assert_eq!(first.status, JobStatus::Aborted);

    // What the lead's `resume` does: re-plan the pending rows against the tenant.
    let specs = h.pending_specs(first.bulk_id).unwrap();
    assert_eq!(
        specs.iter().map(|s| s.upn.as_str()).collect::<Vec<_>>(),
        vec!["c@x.com", "d@x.com"]
    );
    let replanned = plan(
        specs
            .iter()
            .map(|s| existing(s.upn.as_str(), vec![op(vrp("BE"))]))
            .collect(),
    );
    let second = execute(
        &replanned,
        fake.clone(),
        &h,
        JobTarget::Resume(first.bulk_id),
        &o1,
    )
    .await
    .unwrap();
    assert_eq!(second.bulk_id, first.bulk_id);
    assert_eq!(second.job_id, first.job_id);
    assert_eq!(
        (
            second.status,
            second.total,
            second.success,
            second.errors,
            second.exit_code
        ),
        (JobStatus::Partial, 4, 3, 1, 1)
    );
    let items = h.job_items(first.bulk_id, &[]).unwrap();
    assert_eq!(
        item(&items, "b@x.com").status,
        ItemStatus::Error,
        "errors stay for the retry sheet"
    );
    assert_eq!(item(&items, "c@x.com").status, ItemStatus::Success);
    assert_eq!(h.list_jobs(&JobFilter::default(), 1, 10).unwrap().1, 1);

    // Nothing left to resume; a finished item cannot be resumed.
    let e = execute(
        &replanned,
        fake.clone(),
        &h,
        JobTarget::Resume(first.bulk_id),
        &o1,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ApplyError::Resume { .. }), "{e}");
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let mut f = Fake::new();
    f.send_delay = Duration::from_millis(20);
    let mut users = Vec::new();
    for i in 0..12 {
        let u = format!("u{i}@x.com");
        f = f.with_user(&u, None);
        users.push(existing(&u, vec![op(vrp("BE")), op(vrp("NL"))]));
    }
    let fake = Arc::new(f);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 3;
    let o = run(&plan(users), &fake, &h, &o1).await;
    assert_eq!(o.status, JobStatus::Success);
    let max = fake.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "max in flight {max}");
}

#[tokio::test]
async fn limit_and_only_apply_a_part_of_the_plan() {
    let fake = Arc::new(
        Fake::new()
            .with_user("a@x.com", None)
            .with_user("b@x.com", None)
            .with_user("c@x.com", None)
            .with_user("u@x.com", None),
    );
    let p = plan(vec![
        existing("u@x.com", vec![]),
        existing("a@x.com", vec![op(vrp("BE"))]),
        existing("b@x.com", vec![op(vrp("BE"))]),
        existing("c@x.com", vec![op(vrp("BE"))]),
    ]);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 1;
    o1.limit = Some(2);
    let o = run(&p, &fake, &h, &o1).await;
    assert_eq!((o.total, o.status), (2, JobStatus::Success));
    assert_eq!(fake.sends(), vec!["a@x.com set_vrp", "b@x.com set_vrp"]);

    let mut o2 = opts();
    o2.only = vec![upn("c@x.com"), upn("u@x.com")];
    let o = run(&p, &fake, &h, &o2).await;
    assert_eq!((o.total, o.unchanged), (2, 1));
    assert_eq!(fake.sends().last().unwrap(), "c@x.com set_vrp");
    assert_eq!(fake.sends().len(), 3);

    o2.only = vec![upn("zz@x.com")];
    let e = execute(&p, fake.clone(), &h, JobTarget::New, &o2)
        .await
        .unwrap_err();
    assert_eq!(crate::exit::Exit::apply_error(&e).code(), 2);
    assert!(e.to_string().contains("zz@x.com"), "{e}");
}

#[tokio::test]
async fn a_read_only_backend_is_refused() {
    let mut f = Fake::new().with_user("a@x.com", None);
    f.read_only = true;
    let (_d, h) = history();
    let e = execute(
        &plan(vec![existing("a@x.com", vec![op(vrp("BE"))])]),
        Arc::new(f),
        &h,
        JobTarget::New,
        &opts(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ApplyError::Unsupported { .. }), "{e}");
    assert_eq!(crate::exit::Exit::apply_error(&e).code(), 2);
}

/// Executor overhead without any network: `cargo test --lib apply::tests::executor_rate --
/// --ignored --nocapture`. 5,000 users of one operation each through the in-memory tenant
/// (no rate limit): what remains is scheduling plus two history writes per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand with --ignored --nocapture"]
async fn executor_rate() {
    let n = 5_000;
    let mut f = Fake::new();
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let u = format!("u{i}@x.com");
        f = f.with_user(&u, None);
        users.push(existing(&u, vec![op(vrp("BE"))]));
    }
    let fake = Arc::new(f);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 8;
    let p = plan(users);
    let o = run(&p, &fake, &h, &o1).await;
    assert_eq!(o.success, n as u64);
    println!(
        "{n} users in {:?} = {:.0} users/s",
        o.elapsed,
        n as f64 / o.elapsed.as_secs_f64()
    );
}

// ---------------------------------------------------------------- what the history records

fn create_then_number(u: &str, n: &str) -> UserPlan {
    let mut p = user_plan(
        u,
        None,
        vec![
            op(Operation::create_user(
                "New User".into(),
                Some(Country::parse("BE").unwrap()),
            )),
            op(set_number(Some(n))),
        ],
    );
    p.action = UserAction::Create;
    p
}

#[tokio::test]
async fn a_create_whose_number_is_refused_is_recorded_as_created() {
    // b holds the number the new user asks for: the create works, the number is refused.
    let fake = Arc::new(Fake::new().with_user("b@x.com", Some("+3225405201")));
    let (_d, h) = history();
    let o = run(
        &plan(vec![create_then_number("new@x.com", "+3225405201")]),
        &fake,
        &h,
        &opts(),
    )
    .await;
    assert_eq!(o.status, JobStatus::Error);
    let it = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    let reason = it.error_reason.as_deref().unwrap();
    assert!(
        reason.starts_with("created; number not assigned: HTTP 400 code number_linked"),
        "{reason}"
    );
    assert_eq!(it.applied, vec!["create"]);
    assert!(it.user_id.as_deref().unwrap().starts_with("new-"));
    assert!(it.sending.is_none());
    assert!(it.may_have_changed_tenant());
    assert!(fake.user("new@x.com").is_some(), "the user exists");
}

#[tokio::test]
async fn every_request_is_recorded_before_it_goes_out_and_a_failed_write_stops_the_job() {
    let (_d, h) = history();
    let mut f = Fake::new();
    let mut users = Vec::new();
    for i in 0..12 {
        let u = format!("u{i:02}@x.com");
        f = f.with_user(&u, None);
        users.push(existing(&u, vec![op(vrp("BE")), op(vrp("NL"))]));
    }
    f.send_delay = Duration::from_millis(5);
    f.break_history_after = Some((5, h.clone()));
    let fake = Arc::new(f);
    let mut o1 = opts();
    o1.concurrency = 3;
    let e = execute(&plan(users), fake.clone(), &h, JobTarget::New, &o1)
        .await
        .unwrap_err();
    assert!(matches!(e, ApplyError::History(_)), "{e}");
    assert!(e.to_string().contains("disk is full"), "{e}");
    assert_eq!(crate::exit::Exit::apply_error(&e).code(), 3);
    let sent = fake.sends();
    // The break came with the 5th send; at most the requests whose intent was already
    // committed went out after it (one per worker), none from a new item.
    assert!(
        (5..=5 + 3).contains(&sent.len()),
        "{} sends: {sent:?}",
        sent.len()
    );
    h.write(|c| Ok(c.execute_batch("DROP TRIGGER disk_full")?))
        .await
        .unwrap();
    let items = h
        .job_items(
            h.list_jobs(&JobFilter::default(), 1, 1).unwrap().0[0].id,
            &[],
        )
        .unwrap();
    for s in &sent {
        let upn = s.split(' ').next().unwrap();
        let it = item(&items, upn);
        assert!(
            it.sending.is_some() || it.status == ItemStatus::Success,
            "{upn} was sent without a recorded intent: {it:?}"
        );
    }
}

#[tokio::test]
async fn a_stop_lets_requests_under_way_finish_and_leaves_the_job_interrupted() {
    let mut f = Fake::new();
    let mut users = Vec::new();
    for i in 0..8 {
        let u = format!("u{i}@x.com");
        f = f.with_user(&u, None);
        users.push(existing(&u, vec![op(vrp("BE"))]));
    }
    f.send_delay = Duration::from_millis(150);
    let fake = Arc::new(f);
    let (_d, h) = history();
    let mut o1 = opts();
    o1.concurrency = 2;
    let stop = Stop::with_grace(Duration::from_secs(2));
    let p = plan(users);
    let mut lock = history_lock(&h, "t1").unwrap();
    lock.record_lease(&h).await.unwrap();
    let (o, stopped_at) = tokio::join!(
        execute_locked(&p, fake.clone(), &h, JobTarget::New, &o1, &mut lock, &stop),
        async {
            tokio::time::sleep(Duration::from_millis(220)).await;
            stop.trigger("stopped by SIGTERM");
            Instant::now()
        }
    );
    let o = o.unwrap();
    lock.release().await.unwrap();
    assert_eq!(o.status, JobStatus::Interrupted);
    assert_eq!(o.exit_code, 3);
    assert_eq!(o.abort_reason.as_deref(), Some("stopped by SIGTERM"));
    // The users under way at the stop finished and were recorded; no new one started.
    let log = fake.log.lock().unwrap().clone();
    assert!(log.iter().all(|(t, _)| *t <= stopped_at), "{log:?}");
    assert!((2..8).contains(&log.len()), "{log:?}");
    assert_eq!((o.success, o.errors), (log.len() as u64, 0));
    let job = h.get_job(&o.job_id).unwrap().unwrap();
    assert_eq!(
        (job.pending_count, job.status),
        (8 - log.len() as u64, JobStatus::Interrupted)
    );
    assert_eq!(o.to_json(&h).unwrap()["abort_reason"], "stopped by SIGTERM");
}

#[tokio::test]
async fn a_request_that_outlives_the_stop_grace_is_cancelled_with_its_intent_kept() {
    let f = Fake::new().with_user("slow@x.com", None);
    f.script(
        "slow@x.com",
        "set_vrp",
        Script::Hang(Duration::from_secs(30)),
    );
    let fake = Arc::new(f);
    let (_d, h) = history();
    let stop = Stop::with_grace(Duration::from_millis(200));
    let p = plan(vec![existing("slow@x.com", vec![op(vrp("BE"))])]);
    let mut lock = history_lock(&h, "t1").unwrap();
    lock.record_lease(&h).await.unwrap();
    let t0 = Instant::now();
    let o1 = opts();
    let (o, ()) = tokio::join!(
        execute_locked(&p, fake.clone(), &h, JobTarget::New, &o1, &mut lock, &stop),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.trigger("stopped by SIGINT");
        }
    );
    let o = o.unwrap();
    lock.release().await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(o.status, JobStatus::Interrupted);
    let it = &h.job_items(o.bulk_id, &[]).unwrap()[0];
    assert_eq!(it.status, ItemStatus::Pending);
    assert_eq!(
        it.sending.as_ref().unwrap()["ops"],
        serde_json::json!(["set_vrp"])
    );
}
