//! Which users a run applies, in which order, and when a step may go: the cross-user
//! dependencies (`PlannedOp::after`) that make a number's release precede its claim.
//!
//! Workers never block a concurrency slot while waiting for another user's operation:
//! a user whose next step waits gives its slot back, so even with one worker a swap
//! (A waits for B, B waits for A's earlier op) cannot deadlock. Cycles in the plan itself
//! are refused before anything is sent.

use crate::connector::Step;
use crate::model::Upn;
use crate::plan::model::{OpRef, Operation, Plan, UserPlan};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use tokio::sync::watch;

/// The users one run applies: indices into `plan.users`, in plan order.
///
/// `only` keeps the named users (each must be in the plan); `limit` then keeps the first
/// N users that have operations — a canary run applies changes, so users with nothing to
/// do are left out of a limited run.
pub(crate) fn select(
    plan: &Plan,
    only: &[Upn],
    limit: Option<usize>,
) -> Result<Vec<usize>, String> {
    let mut seen = HashSet::new();
    for u in &plan.users {
        if !seen.insert(&u.upn) {
            return Err(format!("{} appears twice in the plan", u.upn));
        }
    }
    let wanted: HashSet<&Upn> = only.iter().collect();
    for w in &wanted {
        if !seen.contains(w) {
            return Err(format!("--only {w}: not in the plan"));
        }
    }
    let mut out: Vec<usize> = (0..plan.users.len())
        .filter(|&i| wanted.is_empty() || wanted.contains(&plan.users[i].upn))
        .collect();
    if let Some(n) = limit {
        out = out
            .into_iter()
            .filter(|&i| !plan.users[i].ops.is_empty())
            .take(n)
            .collect();
    }
    Ok(out)
}

/// Checks the connector's steps and the dependencies of the selected users: every step
/// names valid op indices, every `after` names an op of a user in the plan, and the graph
/// of steps (a user's steps in order, plus cross-user waits) has no cycle.
pub(crate) fn validate(plan: &Plan, users: &[UserPlan], steps: &[Vec<Step>]) -> Result<(), String> {
    let pos: HashMap<&Upn, usize> = users.iter().enumerate().map(|(i, u)| (&u.upn, i)).collect();
    let in_plan: HashMap<&Upn, &UserPlan> = plan.users.iter().map(|u| (&u.upn, u)).collect();
    // step_of[u][op] = step index
    let mut step_of: Vec<Vec<Option<usize>>> = Vec::with_capacity(users.len());
    for (user, st) in users.iter().zip(steps) {
        let mut m = vec![None; user.ops.len()];
        for (s, step) in st.iter().enumerate() {
            for &o in &step.ops {
                match m.get_mut(o) {
                    Some(slot @ None) => *slot = Some(s),
                    Some(Some(_)) => {
                        return Err(format!(
                            "{}: operation {o} is sent twice by the connector",
                            user.upn
                        ))
                    }
                    None => {
                        return Err(format!(
                            "{}: connector step names operation {o} of {}",
                            user.upn,
                            user.ops.len()
                        ))
                    }
                }
            }
        }
        if let Some(o) = m.iter().position(Option::is_none) {
            return Err(format!(
                "{}: operation {o} is in no connector step",
                user.upn
            ));
        }
        step_of.push(m);
    }
    // Node id for (user, step).
    let mut base = Vec::with_capacity(users.len());
    let mut n = 0usize;
    for st in steps {
        base.push(n);
        n += st.len();
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indeg = vec![0usize; n];
    let mut add = |from: usize, to: usize, edges: &mut Vec<Vec<usize>>| {
        edges[from].push(to);
        indeg[to] += 1;
    };
    for (u, (user, st)) in users.iter().zip(steps).enumerate() {
        for (s, step) in st.iter().enumerate() {
            if s > 0 {
                add(base[u] + s - 1, base[u] + s, &mut edges);
            }
            for &o in &step.ops {
                for dep in &user.ops[o].after {
                    let Some(target) = in_plan.get(&dep.upn) else {
                        return Err(format!(
                            "{} waits for {}, who is not in the plan",
                            user.upn, dep.upn
                        ));
                    };
                    if dep.index >= target.ops.len() {
                        return Err(format!(
                            "{} waits for operation {} of {}, which has {} operations",
                            user.upn,
                            dep.index,
                            dep.upn,
                            target.ops.len()
                        ));
                    }
                    // A dependency outside this run fails the item at run time; no edge.
                    if let Some(&v) = pos.get(&dep.upn) {
                        let Some(ds) = step_of[v][dep.index] else {
                            continue;
                        };
                        add(base[v] + ds, base[u] + s, &mut edges);
                    }
                }
            }
        }
    }
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut visited = 0;
    while let Some(i) = queue.pop_front() {
        visited += 1;
        for &j in &edges[i] {
            indeg[j] -= 1;
            if indeg[j] == 0 {
                queue.push_back(j);
            }
        }
    }
    if visited != n {
        let stuck: Vec<&str> = users
            .iter()
            .enumerate()
            .filter(|(u, _)| (0..steps[*u].len()).any(|s| indeg[base[*u] + s] > 0))
            .map(|(_, user)| user.upn.as_str())
            .take(5)
            .collect();
        return Err(format!(
            "the plan's dependencies form a cycle (involving {})",
            stuck.join(", ")
        ));
    }
    Ok(())
}

/// How a user's operation is named in a dependent's error.
pub(crate) fn describe(op: &Operation) -> &'static str {
    match op {
        Operation::Delete => "deletion",
        Operation::Create { .. } => "creation",
        Operation::Set { .. } if op.releases_number() => "number release",
        Operation::Set { .. } => op.group().map_or("change", |g| g.change_noun()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OpState {
    Pending,
    Done,
    Failed,
}

/// Whether a step's dependencies allow it to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Deps {
    Ready,
    Waiting,
    /// A dependency failed or is not part of this run: the item's error.
    Failed(String),
    Aborted,
}

/// The state of every operation of the run, and a signal when any changes.
pub(crate) struct Board {
    states: Mutex<HashMap<OpRef, OpState>>,
    names: HashMap<OpRef, &'static str>,
    changed: watch::Sender<u64>,
}

impl Board {
    pub(crate) fn new(plan: &Plan, users: &[UserPlan]) -> Board {
        let mut states = HashMap::new();
        for u in users {
            for i in 0..u.ops.len() {
                states.insert(
                    OpRef {
                        upn: u.upn.clone(),
                        index: i,
                    },
                    OpState::Pending,
                );
            }
        }
        let mut names = HashMap::new();
        for u in &plan.users {
            for (i, op) in u.ops.iter().enumerate() {
                names.insert(
                    OpRef {
                        upn: u.upn.clone(),
                        index: i,
                    },
                    describe(&op.op),
                );
            }
        }
        Board {
            states: Mutex::new(states),
            names,
            changed: watch::channel(0).0,
        }
    }

    fn set(&self, upn: &Upn, ops: impl Iterator<Item = usize>, to: OpState) {
        {
            let mut s = self
                .states
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for index in ops {
                let key = OpRef {
                    upn: upn.clone(),
                    index,
                };
                if let Some(st) = s.get_mut(&key) {
                    if *st == OpState::Pending {
                        *st = to.clone();
                    }
                }
            }
        }
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    pub(crate) fn mark_done(&self, upn: &Upn, ops: &[usize]) {
        self.set(upn, ops.iter().copied(), OpState::Done);
    }

    /// Marks every operation of the user not done yet as failed.
    pub(crate) fn mark_failed(&self, upn: &Upn, n_ops: usize) {
        self.set(upn, 0..n_ops, OpState::Failed);
    }

    pub(crate) fn check(&self, deps: &[OpRef]) -> Deps {
        let s = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut waiting = false;
        for d in deps {
            let what = self.names.get(d).copied().unwrap_or("operation");
            match s.get(d) {
                Some(OpState::Done) => {}
                Some(OpState::Pending) => waiting = true,
                Some(OpState::Failed) => {
                    return Deps::Failed(format!("dependency failed: {what} by {} failed", d.upn));
                }
                None => {
                    return Deps::Failed(format!(
                        "dependency not in this run: {what} by {} (apply it too, e.g. --only {})",
                        d.upn, d.upn
                    ));
                }
            }
        }
        if waiting {
            Deps::Waiting
        } else {
            Deps::Ready
        }
    }

    /// Waits until the dependencies are all done, one failed, or the job aborts.
    pub(crate) async fn wait(&self, deps: &[OpRef], abort: &Abort) -> Deps {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if abort.reason().is_some() {
                return Deps::Aborted;
            }
            match self.check(deps) {
                Deps::Waiting => {}
                other => return other,
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Deps::Aborted },
                () = abort.wait() => return Deps::Aborted,
            }
        }
    }
}

/// The job-wide stop signal (auth failure, fail-fast, lost lock, history failure).
/// The first reason wins.
pub(crate) struct Abort {
    tx: watch::Sender<Option<String>>,
}

impl Abort {
    pub(crate) fn new() -> Abort {
        Abort {
            tx: watch::channel(None).0,
        }
    }
    pub(crate) fn trigger(&self, reason: String) {
        self.tx.send_if_modified(|r| {
            if r.is_none() {
                tracing::error!("aborting the job: {reason}");
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }
    pub(crate) fn reason(&self) -> Option<String> {
        self.tx.borrow().clone()
    }
    pub(crate) async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives as long as `self`, so this only ends on an abort.
        let _ = rx.wait_for(Option::is_some).await;
    }
    /// Sleeps `d` unless the job aborts first; false when it did.
    pub(crate) async fn sleep(&self, d: std::time::Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => self.reason().is_none(),
            () = self.wait() => false,
        }
    }
}
