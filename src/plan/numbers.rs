//! Numbers moving between users: ordering, swaps, and conflicts found before anything is sent.
//!
//! The tenant refuses a number that is still linked to someone else, so a number that moves
//! from user R to user C must be released by R before C claims it. The per-user diffs know
//! nothing about each other; this module links them: the claiming op gets an `after` on the
//! releasing op (which becomes `awaited`). A releasing op that is itself a claim (R moves to
//! another number, Fusion replaces in one call) forms chains, and a chain that closes on
//! itself (a swap A↔B, or a longer rotation) can never start; it is broken by giving the
//! first user of the cycle an extra "release" op before its claim. Each user claims at most
//! one number and releases at most one, so the waits form a functional graph, and after
//! breaking its cycles the whole op graph is acyclic (checked by [`check_acyclic`]).
//!
//! Numbers are keyed by their full canonical form, extension included: two extensions of
//! one main number are different lines in Teams.
//!
//! Uniqueness is checked against every user and account the backend lists: the snapshot's
//! users and the holders no sheet can address (`Snapshot::held_elsewhere`, e.g. a PortSIP
//! user without an email), so a claim never leaves one number on two accounts.
//!
//! A number libphonenumber calls invalid is read from a sheet with a warning (a tenant's
//! test range, like UMP's `+311111120`, is such a number); [`check_unknown_numbers`]
//! accepts a claim of one only when the tenant holds it or offers it in a number range.

use super::diff::{diagnostic, row_label, Report};
use super::model::{OpRef, Operation, PlannedOp, UserPlan};
use crate::model::{Attr, AttrValue, Profile, Snapshot, TenantUser, Upn, E164};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What one user does with numbers: the number it ends up claiming and the one it gives up,
/// each with the index of the op that does it.
#[derive(Debug, Default, Clone)]
struct NumberMoves {
    claim: Option<(E164, usize)>,
    release: Option<(E164, usize)>,
}

fn moves_of(up: &UserPlan, current: Option<&E164>) -> (NumberMoves, Option<E164>) {
    let mut end = current.cloned();
    let mut first_release_op = None;
    let mut last_claim_op = None;
    for (i, op) in up.ops.iter().enumerate() {
        match &op.op {
            Operation::Delete => {
                end = None;
                first_release_op.get_or_insert(i);
            }
            o @ Operation::Set { .. } if o.change(Attr::Number).is_some() => {
                let number = o.claims_number();
                end = number.cloned();
                first_release_op.get_or_insert(i);
                if number.is_some() {
                    last_claim_op = Some(i);
                }
            }
            _ => {}
        }
    }
    let mut m = NumberMoves::default();
    if let (Some(n), Some(i)) = (&end, last_claim_op) {
        if Some(n) != current {
            m.claim = Some((n.clone(), i));
        }
    }
    if let (Some(c), Some(i)) = (current, first_release_op) {
        if end.as_ref() != Some(c) {
            m.release = Some((c.clone(), i));
        }
    }
    (m, end)
}

/// Checks number conflicts and links claims to releases; see the module doc.
pub(crate) fn link_numbers(
    users: &mut [UserPlan],
    snapshot: &Snapshot,
    default_file: &str,
    rep: &mut Report,
) {
    let by_upn: HashMap<&Upn, &TenantUser> = snapshot.users.iter().map(|u| (&u.upn, u)).collect();
    let mut holder: HashMap<&E164, &TenantUser> = HashMap::new();
    for u in &snapshot.users {
        if let Some(n) = &u.number {
            holder.entry(n).or_insert(u);
        }
    }
    let elsewhere: HashMap<&E164, &str> = snapshot
        .held_elsewhere
        .iter()
        .map(|h| (&h.number, h.holder.as_str()))
        .collect();
    let current = |up: &UserPlan| by_upn.get(&up.upn).and_then(|t| t.number.as_ref()).cloned();
    let index: HashMap<Upn, usize> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.upn.clone(), i))
        .collect();

    let analysed: Vec<(NumberMoves, Option<E164>)> = users
        .iter()
        .map(|u| moves_of(u, current(u).as_ref()))
        .collect();

    // Who ends with which number: two claimants, or a claimant and a keeper, conflict.
    let mut end_holders: BTreeMap<&E164, Vec<usize>> = BTreeMap::new();
    for (i, (_, end)) in analysed.iter().enumerate() {
        if let Some(n) = end {
            end_holders.entry(n).or_default().push(i);
        }
    }
    let mut conflicted = false;
    for (n, idx) in &end_holders {
        if idx.len() < 2 {
            continue;
        }
        let (claimants, keepers): (Vec<usize>, Vec<usize>) =
            idx.iter().partition(|&&i| analysed[i].0.claim.is_some());
        if claimants.len() >= 2 {
            conflicted = true;
            let rows: Vec<String> = claimants
                .iter()
                .map(|&i| row_label(default_file, &users[i].desired))
                .collect();
            for &i in &claimants {
                rep.errors.push(diagnostic(
                    default_file,
                    &users[i].desired,
                    Some("number"),
                    format!(
                        "number {n} is claimed twice in one sheet: {}",
                        rows.join(" and ")
                    ),
                ));
            }
        }
        if let Some(&k) = keepers.first() {
            for &i in &claimants {
                conflicted = true;
                rep.errors.push(diagnostic(
                    default_file,
                    &users[i].desired,
                    Some("number"),
                    format!(
                        "number {n} is held by {}, which keeps it in this plan; release it there (number `-` or another number) first",
                        row_label(default_file, &users[k].desired)
                    ),
                ));
            }
        }
    }

    // Claims of numbers held by tenant users the plan does not touch.
    let mut releaser: HashMap<E164, (usize, usize)> = HashMap::new();
    for (i, (m, _)) in analysed.iter().enumerate() {
        if let Some((n, op)) = &m.release {
            releaser.insert(n.clone(), (i, *op));
        }
    }
    for (i, (m, _)) in analysed.iter().enumerate() {
        let Some((n, _)) = &m.claim else { continue };
        if let Some(who) = elsewhere.get(n) {
            conflicted = true;
            rep.errors.push(diagnostic(
                default_file,
                &users[i].desired,
                Some("number"),
                format!(
                    "number {n} is held by {who}, which no sheet row can address (so no plan can release it); free it in the backend first"
                ),
            ));
            continue;
        }
        if releaser.contains_key(n) {
            continue;
        }
        if let Some(h) = holder.get(n) {
            if index.contains_key(&h.upn) {
                continue; // a keeper in the plan: reported above
            }
            conflicted = true;
            let what = if h.account_type.is_some() {
                "resource account"
            } else {
                "user"
            };
            rep.errors.push(diagnostic(
                default_file,
                &users[i].desired,
                Some("number"),
                format!(
                    "number {n} is held by {what} {} which this plan does not release; add it to the sheet with number `-` (or use mirror mode)",
                    h.upn
                ),
            ));
        }
    }
    if conflicted {
        return;
    }

    // Break cycles of claim-releases (swaps, rotations).
    let waits_on = |analysed: &[(NumberMoves, Option<E164>)],
                    releaser: &HashMap<E164, (usize, usize)>,
                    c: usize| {
        let (n, _) = analysed[c].0.claim.as_ref()?;
        let &(r, rop) = releaser.get(n)?;
        let r_claim = analysed[r].0.claim.as_ref().map(|(_, op)| *op);
        (r != c && r_claim == Some(rop)).then_some(r)
    };
    let mut state = vec![0u8; users.len()]; // 0 new, 1 on current path, 2 done
    let mut breakers = vec![];
    for start in 0..users.len() {
        let mut path = vec![];
        let mut cur = Some(start);
        while let Some(c) = cur {
            if state[c] == 2 {
                break;
            }
            if state[c] == 1 {
                let pos = path.iter().position(|&p| p == c).unwrap_or(0);
                if let Some(&first) = path[pos..].iter().min() {
                    breakers.push(first);
                }
                break;
            }
            state[c] = 1;
            path.push(c);
            cur = waits_on(&analysed, &releaser, c);
        }
        for p in path {
            state[p] = 2;
        }
    }
    for b in breakers {
        if let Some((_, claim_op)) = analysed[b].0.claim.clone() {
            // The claim now starts from no number: the release before it frees the old one.
            let held = current(&users[b]).map(AttrValue::Number);
            if let Operation::Set { changes } = &mut users[b].ops[claim_op].op {
                for c in changes.iter_mut().filter(|c| c.attr == Attr::Number) {
                    c.before = Some(None);
                }
            }
            users[b].ops.insert(
                claim_op,
                PlannedOp {
                    op: Operation::set(Attr::Number, Some(held), None),
                    after: vec![],
                    awaited: false,
                },
            );
        }
    }

    // Link every claim to its release, with indices after the insertions.
    let analysed: Vec<NumberMoves> = users
        .iter()
        .map(|u| moves_of(u, current(u).as_ref()).0)
        .collect();
    let mut releaser: HashMap<E164, (usize, usize)> = HashMap::new();
    for (i, m) in analysed.iter().enumerate() {
        if let Some((n, op)) = &m.release {
            releaser.insert(n.clone(), (i, *op));
        }
    }
    for (c, m) in analysed.iter().enumerate() {
        let Some((n, cop)) = &m.claim else { continue };
        let Some(&(r, rop)) = releaser.get(n) else {
            continue;
        };
        if r == c {
            continue;
        }
        let dep = OpRef {
            upn: users[r].upn.clone(),
            index: rop,
        };
        if !users[c].ops[*cop].after.contains(&dep) {
            users[c].ops[*cop].after.push(dep);
        }
        users[r].ops[rop].awaited = true;
    }
}

/// Claims of numbers libphonenumber calls invalid (the sheet read them with a warning): a
/// plan error unless the tenant holds the number (a user keeping it, or one the plan moves
/// it from) or offers it in a number range, where the backend lists ranges.
pub(crate) fn check_unknown_numbers(
    users: &[UserPlan],
    snapshot: &Snapshot,
    profile: &Profile,
    default_file: &str,
    rep: &mut Report,
) {
    let mut unchecked: Vec<&E164> = Vec::new();
    let mut known: HashSet<&E164> = snapshot
        .users
        .iter()
        .filter_map(|u| u.number.as_ref())
        .collect();
    known.extend(snapshot.held_elsewhere.iter().map(|h| &h.number));
    known.extend(snapshot.number_ranges.iter().flat_map(|r| &r.numbers_free));
    for up in users {
        for op in &up.ops {
            let Some(n) = op.op.claims_number() else {
                continue;
            };
            if known.contains(n) {
                continue;
            }
            if profile.unlisted_inventory {
                unchecked.push(n);
            }
            let country = up.desired.country.as_set();
            let problem = match number_country(n) {
                None => format!(
                    "{n} is not a valid phone number{}",
                    country
                        .map(|c| format!(" (country {c})"))
                        .unwrap_or_default()
                ),
                Some(of) => match country {
                    Some(c) if !of.eq_ignore_ascii_case(c.as_str()) => {
                        format!("{n} is a {of} number, not valid for the row's country {c}")
                    }
                    _ => continue,
                },
            };
            let ranges = if snapshot.number_ranges.is_empty() {
                ""
            } else {
                " or offers in a number range (`tenant numbers`)"
            };
            rep.errors.push(diagnostic(
                default_file,
                &up.desired,
                Some("number"),
                format!("{problem}, and it is not a number the tenant holds{ranges}"),
            ));
        }
    }
    if let Some(first) = unchecked.first() {
        let more = match unchecked.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        rep.warnings.push(format!(
            "{first}{more}: held by no user or account, and the {} backend cannot list the numbers it may assign, so whether they are its own is checked only when sent",
            profile.backend
        ));
    }
}

/// libphonenumber's word on a number (its main part: an extension changes nothing): the
/// country it belongs to (ISO alpha-2), `None` when it calls it invalid. A region it cannot
/// name (a non-geographic number) is `"001"`, which matches no row's country.
pub(crate) fn number_country(n: &E164) -> Option<String> {
    std::panic::catch_unwind(|| {
        let p = phonenumber::parse(None, n.number()).ok()?;
        if !phonenumber::is_valid(&p) {
            return None;
        }
        Some(
            p.country()
                .id()
                .map_or_else(|| "001".into(), |id| id.as_ref().to_string()),
        )
    })
    .unwrap_or(None)
}

#[cfg(test)]
pub(crate) fn is_valid_number(n: &E164) -> bool {
    number_country(n).is_some()
}

/// Kahn's algorithm over every op: a user's ops run in order, and `after` adds edges.
/// Returns the ops left on a cycle (or with dangling references), as "upn#index".
pub(crate) fn check_acyclic(users: &[UserPlan]) -> Result<(), Vec<String>> {
    let mut id: HashMap<(&Upn, usize), usize> = HashMap::new();
    let mut names = vec![];
    for u in users {
        for i in 0..u.ops.len() {
            id.insert((&u.upn, i), names.len());
            names.push(format!("{}#{i}", u.upn));
        }
    }
    let mut indeg = vec![0usize; names.len()];
    let mut out: Vec<Vec<usize>> = vec![vec![]; names.len()];
    let mut dangling = vec![];
    for u in users {
        for (i, op) in u.ops.iter().enumerate() {
            let me = id[&(&u.upn, i)];
            if i > 0 {
                out[id[&(&u.upn, i - 1)]].push(me);
                indeg[me] += 1;
            }
            for a in &op.after {
                match id.get(&(&a.upn, a.index)) {
                    Some(&from) => {
                        out[from].push(me);
                        indeg[me] += 1;
                    }
                    None => dangling.push(format!(
                        "{} waits on missing {}#{}",
                        names[me], a.upn, a.index
                    )),
                }
            }
        }
    }
    let mut queue: Vec<usize> = (0..names.len()).filter(|&n| indeg[n] == 0).collect();
    let mut seen = 0;
    while let Some(n) = queue.pop() {
        seen += 1;
        for &m in &out[n] {
            indeg[m] -= 1;
            if indeg[m] == 0 {
                queue.push(m);
            }
        }
    }
    if seen == names.len() && dangling.is_empty() {
        return Ok(());
    }
    let mut left: Vec<String> = (0..names.len())
        .filter(|&n| indeg[n] > 0)
        .map(|n| names[n].clone())
        .collect();
    left.extend(dangling);
    Err(left)
}
