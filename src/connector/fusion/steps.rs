//! Grouping a user's planned operations into Fusion requests, and building each request.
//!
//! Which endpoint carries which change (paths relative to
//! `/api/v01/draas/{draas_instance}/tenants/{uuid}/subscriptions/{subscription_id}/msteams`):
//!
//! | operation(s) in one step | request | body |
//! | --- | --- | --- |
//! | `Create` | `POST users` | `username` (UPN local part), `domain`, `displayName`, `location`, `customerLicenses` (if any) |
//! | `SetProperties` alone | `PUT users/{id}/properties` | `displayName` and/or `location` |
//! | `SetLicenses` alone | `PUT users/{id}/licenses` | `licenses`: full skuId array (`[]` removes all) |
//! | `SetNumber` alone | `PUT users/{id}/phone_number` | `phoneNumber`: number, or `null` to release it |
//! | `SetVrp` alone | `PUT users/{id}/vrp` | `vrp`: identity, or `null` to disable |
//! | `SetGroups` alone | `PUT users/{id}/groups` | `groups`: full id array (`[]` removes all) |
//! | `SetCustomerLicenses` alone | `PUT users/{id}` | `customerLicenses` (the only endpoint that writes them) |
//! | two or more `Set*` | `PUT users/{id}` | only the keys of those ops |
//! | `Delete` | `DELETE users/{id}` | — |
//!
//! Why dedicated endpoints for a single change: the document gives each field its own
//! endpoint with its own, narrower role, and says outright what `[]`/`null` mean there; the
//! full `PUT users/{id}` is used when it saves requests (several fields at once) or is the
//! only way (`customerLicenses`). The licenses endpoint is `users/{id}/licenses`
//! (`{"licenses": […]}`), not the differently shaped "Manage user licenses"
//! (`{id}/licenses` with `skuIds`), so users are written under one path prefix.
//!
//! Rules that split a run of `Set*` operations into several steps:
//! - an op with a non-empty `after` starts a new step (it must wait for another user's op,
//!   and what comes before it must not wait with it);
//! - an op with `awaited` ends its step (another user waits for exactly that op, so nothing
//!   later may delay it);
//! - a key may appear once per body, so an op whose key the step already carries starts a
//!   new one;
//! - `customerLicenses` live in the `draas` object that only a user with a number has, so
//!   they never share a body with a number release (`phoneNumber: null`).
//!
//! `Create` and `Delete` are always steps of their own.

use crate::connector::{ConnectorError, Step};
use crate::model::Upn;
use crate::plan::model::{Operation, UserPlan};
use serde_json::{json, Map, Value};

/// Which collection a plan's user lives in: users and resource accounts have different
/// endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    User,
    ResourceAccount,
}

/// Body keys an op writes in the full `PUT users/{id}` (or `PUT resource_accounts/{id}`).
fn keys(op: &Operation) -> Vec<&'static str> {
    match op {
        Operation::SetProperties {
            display_name,
            country,
        } => {
            let mut k = Vec::new();
            if display_name.is_some() {
                k.push("displayName");
            }
            if country.is_some() {
                k.push("location");
            }
            k
        }
        Operation::SetLicenses { .. } => vec!["licenses"],
        Operation::SetNumber { .. } => vec!["phoneNumber"],
        Operation::SetVrp { .. } => vec!["vrp"],
        Operation::SetGroups { .. } => vec!["groups"],
        Operation::SetCustomerLicenses { .. } => vec!["customerLicenses"],
        Operation::Create { .. } | Operation::Delete => vec![],
    }
}

fn releases_number(op: &Operation) -> bool {
    matches!(op, Operation::SetNumber { number: None })
}

/// What a resource-account create can carry besides its own fields.
fn rides_with_ra_create(op: &Operation) -> bool {
    matches!(
        op,
        Operation::SetNumber { number: Some(_) } | Operation::SetCustomerLicenses { .. }
    )
}

/// The fewest steps the rules above allow, in plan order.
pub fn group(user: &UserPlan, target: Target) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    // The open step is a resource-account create still taking number / customer licenses.
    let mut open_create = false;
    let flush = |cur: &mut Vec<usize>, steps: &mut Vec<Step>, open_create: &mut bool| {
        *open_create = false;
        if !cur.is_empty() {
            let ops = std::mem::take(cur);
            let label = label(user, &ops, target);
            steps.push(Step { ops, label });
        }
    };
    for (i, p) in user.ops.iter().enumerate() {
        match p.op {
            Operation::Delete => {
                flush(&mut cur, &mut steps, &mut open_create);
                cur.push(i);
                flush(&mut cur, &mut steps, &mut open_create);
                continue;
            }
            Operation::Create { .. } => {
                flush(&mut cur, &mut steps, &mut open_create);
                cur.push(i);
                if target == Target::ResourceAccount && !p.awaited {
                    open_create = true;
                } else {
                    flush(&mut cur, &mut steps, &mut open_create);
                }
                continue;
            }
            _ => {}
        }
        if open_create && !rides_with_ra_create(&p.op) {
            flush(&mut cur, &mut steps, &mut open_create);
        }
        let in_cur = |pred: &dyn Fn(&Operation) -> bool| cur.iter().any(|&j| pred(&user.ops[j].op));
        let new_keys = keys(&p.op);
        let clash = in_cur(&|o: &Operation| keys(o).iter().any(|k| new_keys.contains(k)));
        let cl_vs_release = match &p.op {
            Operation::SetCustomerLicenses { .. } => in_cur(&releases_number),
            op if releases_number(op) => {
                in_cur(&|o: &Operation| matches!(o, Operation::SetCustomerLicenses { .. }))
            }
            _ => false,
        };
        if !p.after.is_empty() || clash || cl_vs_release {
            flush(&mut cur, &mut steps, &mut open_create);
        }
        cur.push(i);
        if p.awaited {
            flush(&mut cur, &mut steps, &mut open_create);
        }
    }
    flush(&mut cur, &mut steps, &mut open_create);
    steps
}

/// The shape of one step's request; `label` and `build` both derive from it so the label
/// in the history always names the request actually sent.
enum Shape {
    Create,
    Delete,
    /// One field through its own endpoint (`users/{id}/<suffix>`).
    Dedicated(&'static str),
    FullPut,
}

/// Why a step has no request: a step no grouping rule makes (a local bug: `Config`), or a
/// field the target cannot take (`Unsupported`).
enum NoShape {
    Invalid(String),
    Unsupported(String),
}

fn unique_keys(ops: &[&Operation]) -> Result<(), NoShape> {
    let mut seen: Vec<&str> = Vec::new();
    for k in ops.iter().flat_map(|o| keys(o)) {
        if seen.contains(&k) {
            return Err(NoShape::Invalid(format!(
                "{k} appears twice in one request"
            )));
        }
        seen.push(k);
    }
    Ok(())
}

fn shape(ops: &[&Operation], target: Target) -> Result<Shape, NoShape> {
    if target == Target::ResourceAccount {
        return ra_shape(ops);
    }
    match ops {
        [] => Err(NoShape::Invalid("empty step".into())),
        [Operation::Create { .. }] => Ok(Shape::Create),
        [Operation::Delete] => Ok(Shape::Delete),
        [Operation::SetProperties { .. }] => Ok(Shape::Dedicated("properties")),
        [Operation::SetLicenses { .. }] => Ok(Shape::Dedicated("licenses")),
        [Operation::SetNumber { .. }] => Ok(Shape::Dedicated("phone_number")),
        [Operation::SetVrp { .. }] => Ok(Shape::Dedicated("vrp")),
        [Operation::SetGroups { .. }] => Ok(Shape::Dedicated("groups")),
        [Operation::SetCustomerLicenses { .. }] => Ok(Shape::FullPut),
        many => {
            if many
                .iter()
                .any(|o| matches!(o, Operation::Create { .. } | Operation::Delete))
            {
                return Err(NoShape::Invalid(
                    "create and delete cannot share a request with other operations".into(),
                ));
            }
            unique_keys(many)?;
            Ok(Shape::FullPut)
        }
    }
}

/// Resource accounts: `POST resource_accounts` (with number and customer licenses),
/// `PUT resource_accounts/{id}` for everything else, `DELETE resource_accounts/{id}`.
/// They have no groups and no license endpoint (the tenant licenses them itself).
fn ra_shape(ops: &[&Operation]) -> Result<Shape, NoShape> {
    for o in ops {
        if let Operation::SetLicenses { .. } | Operation::SetGroups { .. } = o {
            return Err(NoShape::Unsupported(format!(
                "resource accounts have no {} endpoint in Fusion",
                keys(o).join("")
            )));
        }
    }
    match ops {
        [] => Err(NoShape::Invalid("empty step".into())),
        [Operation::Delete] => Ok(Shape::Delete),
        [Operation::Create { .. }, rest @ ..] => {
            if rest.iter().all(|o| rides_with_ra_create(o)) {
                unique_keys(rest)?;
                Ok(Shape::Create)
            } else {
                Err(NoShape::Invalid(
                    "a resource-account create can only carry a number and customer licenses"
                        .into(),
                ))
            }
        }
        many => {
            if many
                .iter()
                .any(|o| matches!(o, Operation::Create { .. } | Operation::Delete))
            {
                return Err(NoShape::Invalid(
                    "create and delete cannot share a request with other operations".into(),
                ));
            }
            unique_keys(many)?;
            Ok(Shape::FullPut)
        }
    }
}

fn label(user: &UserPlan, idx: &[usize], target: Target) -> String {
    let ops: Vec<&Operation> = idx
        .iter()
        .filter_map(|&i| user.ops.get(i))
        .map(|p| &p.op)
        .collect();
    let coll = match target {
        Target::User => "users",
        Target::ResourceAccount => "resource_accounts",
    };
    let k: Vec<&str> = ops.iter().flat_map(|o| keys(o)).collect();
    match shape(&ops, target) {
        Ok(Shape::Create) if k.is_empty() => format!("POST {coll}"),
        Ok(Shape::Create) => format!("POST {coll} [{}]", k.join(", ")),
        Ok(Shape::Delete) => format!("DELETE {coll}/{{id}}"),
        Ok(Shape::Dedicated(s)) => format!("PUT {coll}/{{id}}/{s}"),
        Ok(Shape::FullPut) => format!("PUT {coll}/{{id}} [{}]", k.join(", ")),
        Err(NoShape::Invalid(e) | NoShape::Unsupported(e)) => format!("invalid step: {e}"),
    }
}

/// What the answer to a step tells about the target's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creates {
    No,
    /// `201 {"msTeamsId"}`.
    User,
    /// `200 {"id": <Fusion internal id>}`: not the object id the other endpoints take.
    ResourceAccount,
}

/// One HTTP request, relative to the tenant's `msteams` path.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: reqwest::Method,
    pub path: Vec<String>,
    pub body: Option<Value>,
    pub creates: Creates,
}

fn body_entry(op: &Operation, m: &mut Map<String, Value>) {
    match op {
        Operation::SetProperties {
            display_name,
            country,
        } => {
            if let Some(d) = display_name {
                m.insert("displayName".into(), json!(d));
            }
            if let Some(c) = country {
                m.insert("location".into(), json!(c.as_str()));
            }
        }
        Operation::SetLicenses { sku_ids } => {
            m.insert("licenses".into(), json!(sku_ids));
        }
        Operation::SetNumber { number } => {
            m.insert(
                "phoneNumber".into(),
                json!(number.as_ref().map(|n| n.to_string())),
            );
        }
        Operation::SetVrp { vrp } => {
            m.insert("vrp".into(), json!(vrp));
        }
        Operation::SetGroups { group_ids } => {
            m.insert("groups".into(), json!(group_ids));
        }
        Operation::SetCustomerLicenses { skus } => {
            m.insert("customerLicenses".into(), json!(skus));
        }
        Operation::Create { .. } | Operation::Delete => {}
    }
}

fn config_err(upn: &Upn, m: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Config(format!("{upn}: {m}"))
}

/// Builds the request for `step`. A step whose ops are out of range, out of order, or that
/// no grouping rule could have produced is refused as a local error, as is an update or
/// delete without the target's id; a field the target has no endpoint for is
/// `Unsupported`.
pub fn build(
    user: &UserPlan,
    user_id: Option<&str>,
    step: &Step,
    target: Target,
) -> Result<ApiCall, ConnectorError> {
    let upn = &user.upn;
    if step.ops.windows(2).any(|w| w[0] >= w[1]) {
        return Err(config_err(
            upn,
            format!("step {:?} has operations out of order", step.ops),
        ));
    }
    let mut ops = Vec::with_capacity(step.ops.len());
    for &i in &step.ops {
        match user.ops.get(i) {
            Some(p) => ops.push(&p.op),
            None => {
                return Err(config_err(
                    upn,
                    format!(
                        "step refers to operation {i} but the plan has {}",
                        user.ops.len()
                    ),
                ))
            }
        }
    }
    let shape = shape(&ops, target).map_err(|e| match e {
        NoShape::Invalid(m) => config_err(upn, m),
        NoShape::Unsupported(m) => ConnectorError::Unsupported(format!("{upn}: {m}")),
    })?;
    let coll = match target {
        Target::User => "users",
        Target::ResourceAccount => "resource_accounts",
    };
    if let Shape::Create = shape {
        let Operation::Create {
            display_name,
            country,
            customer_licenses,
        } = ops[0]
        else {
            return Err(config_err(upn, "create step without a create operation"));
        };
        let body = match target {
            Target::User => serde_json::to_value(super::wire::CreateUserBody {
                display_name,
                domain: upn.domain(),
                location: country.as_str(),
                username: upn.local_part(),
                customer_licenses,
            }),
            Target::ResourceAccount => {
                let Some(account_type) = user.desired.account_type else {
                    return Err(config_err(
                        upn,
                        "a new resource account needs accountType (call-queue or auto-attendant)",
                    ));
                };
                let account_type = match account_type {
                    crate::model::AccountType::CallQueue => "call-queue",
                    crate::model::AccountType::AutoAttendant => "auto-attendant",
                };
                let mut number = None;
                let mut cl = customer_licenses.as_slice();
                for o in &ops[1..] {
                    match o {
                        Operation::SetNumber { number: n } => {
                            number = n.as_ref().map(|n| n.to_string())
                        }
                        Operation::SetCustomerLicenses { skus } => cl = skus.as_slice(),
                        _ => {}
                    }
                }
                serde_json::to_value(super::wire::CreateResourceAccountBody {
                    account_type,
                    user_principal_name: upn.as_str(),
                    display_name,
                    location: country.as_str(),
                    phone_number: number,
                    customer_licenses: cl,
                })
            }
        }
        .map_err(|e| config_err(upn, e))?;
        return Ok(ApiCall {
            method: reqwest::Method::POST,
            path: vec![coll.into()],
            body: Some(body),
            creates: match target {
                Target::User => Creates::User,
                Target::ResourceAccount => Creates::ResourceAccount,
            },
        });
    }
    let Some(id) = user_id.filter(|s| !s.is_empty()) else {
        return Err(config_err(
            upn,
            format!(
                "{} needs the user's id, but the user has none (not created yet?)",
                label(user, &step.ops, target)
            ),
        ));
    };
    let mut path = vec![coll.to_string(), id.to_string()];
    let (method, body) = match shape {
        Shape::Delete => (reqwest::Method::DELETE, None),
        Shape::Dedicated(suffix) => {
            path.push(suffix.to_string());
            let mut m = Map::new();
            body_entry(ops[0], &mut m);
            (reqwest::Method::PUT, Some(Value::Object(m)))
        }
        Shape::FullPut => {
            let mut m = Map::new();
            for op in &ops {
                body_entry(op, &mut m);
            }
            (reqwest::Method::PUT, Some(Value::Object(m)))
        }
        Shape::Create => unreachable!("handled above"),
    };
    Ok(ApiCall {
        method,
        path,
        body,
        creates: Creates::No,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Country, UserSpec, E164};
    use crate::plan::model::{OpRef, PlannedOp, UserAction};

    fn op(op: Operation) -> PlannedOp {
        PlannedOp {
            op,
            after: vec![],
            awaited: false,
        }
    }
    fn user(ops: Vec<PlannedOp>) -> UserPlan {
        let upn = Upn::parse("jane.doe@contoso.com").unwrap();
        UserPlan {
            upn: upn.clone(),
            user_id: Some("u-1".into()),
            action: UserAction::Update,
            desired: UserSpec::new(upn),
            origin: None,
            changes: vec![],
            ops,
            before: Default::default(),
        }
    }
    fn props() -> Operation {
        Operation::SetProperties {
            display_name: Some("Jane".into()),
            country: Some(Country::parse("BE").unwrap()),
        }
    }
    fn lic() -> Operation {
        Operation::SetLicenses {
            sku_ids: vec!["s1".into()],
        }
    }
    fn num(n: Option<&str>) -> Operation {
        Operation::SetNumber {
            number: n.map(|n| E164::parse_canonical(n).unwrap()),
        }
    }
    fn vrp() -> Operation {
        Operation::SetVrp { vrp: None }
    }
    fn groups() -> Operation {
        Operation::SetGroups { group_ids: vec![] }
    }
    fn cl() -> Operation {
        Operation::SetCustomerLicenses {
            skus: vec!["Call-Bundle".into()],
        }
    }
    fn ops_of(steps: &[Step]) -> Vec<Vec<usize>> {
        steps.iter().map(|s| s.ops.clone()).collect()
    }
    fn waits() -> Vec<OpRef> {
        vec![OpRef {
            upn: Upn::parse("other@contoso.com").unwrap(),
            index: 0,
        }]
    }

    #[test]
    fn all_set_ops_merge_into_one_put_with_only_their_keys() {
        let u = user(vec![
            op(props()),
            op(lic()),
            op(num(Some("+3225405200"))),
            op(vrp()),
            op(groups()),
            op(cl()),
        ]);
        let s = group(&u, Target::User);
        assert_eq!(ops_of(&s), vec![vec![0, 1, 2, 3, 4, 5]]);
        assert_eq!(s[0].label, "PUT users/{id} [displayName, location, licenses, phoneNumber, vrp, groups, customerLicenses]");
        let c = build(&u, Some("u-1"), &s[0], Target::User).unwrap();
        assert_eq!(c.method, reqwest::Method::PUT);
        assert_eq!(c.path, vec!["users", "u-1"]);
        assert_eq!(
            c.body.unwrap(),
            json!({"displayName": "Jane", "location": "BE", "licenses": ["s1"], "phoneNumber": "+3225405200",
                "vrp": null, "groups": [], "customerLicenses": ["Call-Bundle"]})
        );
    }

    #[test]
    fn single_ops_use_their_dedicated_endpoint() {
        let cases = [
            (
                props(),
                "properties",
                json!({"displayName": "Jane", "location": "BE"}),
            ),
            (lic(), "licenses", json!({"licenses": ["s1"]})),
            (num(None), "phone_number", json!({"phoneNumber": null})),
            (
                Operation::SetVrp {
                    vrp: Some("World".into()),
                },
                "vrp",
                json!({"vrp": "World"}),
            ),
            (groups(), "groups", json!({"groups": []})),
        ];
        for (o, suffix, body) in cases {
            let u = user(vec![op(o)]);
            let s = group(&u, Target::User);
            assert_eq!(s[0].label, format!("PUT users/{{id}}/{suffix}"));
            let c = build(&u, Some("u-1"), &s[0], Target::User).unwrap();
            assert_eq!(c.path, vec!["users", "u-1", suffix]);
            assert_eq!(c.body.unwrap(), body);
        }
        let u = user(vec![op(cl())]);
        let c = build(&u, Some("u-1"), &group(&u, Target::User)[0], Target::User).unwrap();
        assert_eq!(c.path, vec!["users", "u-1"]);
        assert_eq!(
            c.body.unwrap(),
            json!({"customerLicenses": ["Call-Bundle"]})
        );
    }

    #[test]
    fn op_with_after_starts_a_new_step_and_later_ops_join_it() {
        let mut n = op(num(Some("+3225405200")));
        n.after = waits();
        let u = user(vec![op(props()), op(lic()), n, op(vrp()), op(cl())]);
        assert_eq!(
            ops_of(&group(&u, Target::User)),
            vec![vec![0, 1], vec![2, 3, 4]]
        );
    }

    #[test]
    fn awaited_op_ends_its_step() {
        let mut release = op(num(None));
        release.awaited = true;
        let u = user(vec![op(props()), release, op(vrp()), op(groups())]);
        assert_eq!(
            ops_of(&group(&u, Target::User)),
            vec![vec![0, 1], vec![2, 3]]
        );
        // awaited and after on the same op: a step of its own.
        let mut both = op(num(Some("+3225405200")));
        both.awaited = true;
        both.after = waits();
        let u = user(vec![op(lic()), both, op(vrp())]);
        assert_eq!(
            ops_of(&group(&u, Target::User)),
            vec![vec![0], vec![1], vec![2]]
        );
    }

    #[test]
    fn create_and_delete_stand_alone_and_create_builds_the_post() {
        let create = Operation::Create {
            display_name: "Jane Doe".into(),
            country: Country::parse("BE").unwrap(),
            customer_licenses: vec![],
        };
        let u = user(vec![
            op(create),
            op(lic()),
            op(num(Some("+3225405200"))),
            op(cl()),
        ]);
        let s = group(&u, Target::User);
        assert_eq!(ops_of(&s), vec![vec![0], vec![1, 2, 3]]);
        assert_eq!(s[0].label, "POST users");
        let c = build(&u, None, &s[0], Target::User).unwrap();
        assert_eq!(c.creates, Creates::User);
        assert_eq!(c.path, vec!["users"]);
        assert_eq!(
            c.body.unwrap(),
            json!({"displayName": "Jane Doe", "domain": "contoso.com", "username": "jane.doe", "location": "BE"})
        );
        let u = user(vec![op(num(None)), op(Operation::Delete)]);
        let s = group(&u, Target::User);
        assert_eq!(ops_of(&s), vec![vec![0], vec![1]]);
        let c = build(&u, Some("u-1"), &s[1], Target::User).unwrap();
        assert_eq!(
            (c.method, c.path, c.body),
            (
                reqwest::Method::DELETE,
                vec!["users".into(), "u-1".into()],
                None
            )
        );
    }

    #[test]
    fn customer_licenses_never_ride_with_a_number_release() {
        let u = user(vec![op(num(None)), op(cl())]);
        assert_eq!(ops_of(&group(&u, Target::User)), vec![vec![0], vec![1]]);
        let u = user(vec![op(cl()), op(num(None))]);
        assert_eq!(ops_of(&group(&u, Target::User)), vec![vec![0], vec![1]]);
        let u = user(vec![op(num(Some("+3225405200"))), op(cl())]);
        assert_eq!(ops_of(&group(&u, Target::User)), vec![vec![0, 1]]);
    }

    #[test]
    fn a_repeated_key_starts_a_new_step() {
        let u = user(vec![op(num(None)), op(vrp()), op(num(Some("+3225405200")))]);
        assert_eq!(ops_of(&group(&u, Target::User)), vec![vec![0, 1], vec![2]]);
        let only_name = Operation::SetProperties {
            display_name: Some("J".into()),
            country: None,
        };
        let only_country = Operation::SetProperties {
            display_name: None,
            country: Some(Country::parse("NL").unwrap()),
        };
        let u = user(vec![op(only_name), op(only_country)]);
        assert_eq!(ops_of(&group(&u, Target::User)), vec![vec![0, 1]]);
    }

    fn ra_user(ops: Vec<PlannedOp>) -> UserPlan {
        let mut u = user(ops);
        u.upn = Upn::parse("queue@contoso.com").unwrap();
        u.desired = UserSpec::new(u.upn.clone());
        u.desired.account_type = Some(crate::model::AccountType::CallQueue);
        u
    }
    fn create() -> Operation {
        Operation::Create {
            display_name: "Main queue".into(),
            country: Country::parse("BE").unwrap(),
            customer_licenses: vec!["old".into()],
        }
    }

    #[test]
    fn resource_account_create_carries_number_and_customer_licenses() {
        let u = ra_user(vec![
            op(create()),
            op(num(Some("+3225405239"))),
            op(cl()),
            op(vrp()),
        ]);
        let s = group(&u, Target::ResourceAccount);
        assert_eq!(ops_of(&s), vec![vec![0, 1, 2], vec![3]]);
        assert_eq!(
            s[0].label,
            "POST resource_accounts [phoneNumber, customerLicenses]"
        );
        assert_eq!(s[1].label, "PUT resource_accounts/{id} [vrp]");
        let c = build(&u, None, &s[0], Target::ResourceAccount).unwrap();
        assert_eq!(c.creates, Creates::ResourceAccount);
        assert_eq!(c.path, vec!["resource_accounts"]);
        assert_eq!(
            c.body.unwrap(),
            json!({"accountType": "call-queue", "userPrincipalName": "queue@contoso.com",
                "displayName": "Main queue", "location": "BE", "phoneNumber": "+3225405239",
                "customerLicenses": ["Call-Bundle"]})
        );
        let c = build(&u, Some("obj-1"), &s[1], Target::ResourceAccount).unwrap();
        assert_eq!(c.path, vec!["resource_accounts", "obj-1"]);
        assert_eq!(c.body.unwrap(), json!({"vrp": null}));
        // A number that waits for another user's release cannot ride on the create.
        let mut n = op(num(Some("+3225405239")));
        n.after = waits();
        let u = ra_user(vec![op(create()), n, op(vrp())]);
        assert_eq!(
            ops_of(&group(&u, Target::ResourceAccount)),
            vec![vec![0], vec![1, 2]]
        );
        // Without accountType the create cannot be built.
        let mut u = ra_user(vec![op(create())]);
        u.desired.account_type = None;
        let e = build(
            &u,
            None,
            &group(&u, Target::ResourceAccount)[0],
            Target::ResourceAccount,
        );
        assert!(matches!(e, Err(ConnectorError::Config(m)) if m.contains("accountType")));
    }

    #[test]
    fn resource_account_updates_use_one_put_and_refuse_licenses_and_groups() {
        let u = ra_user(vec![op(props()), op(num(None)), op(vrp())]);
        let s = group(&u, Target::ResourceAccount);
        assert_eq!(ops_of(&s), vec![vec![0, 1, 2]]);
        let c = build(&u, Some("obj-1"), &s[0], Target::ResourceAccount).unwrap();
        assert_eq!(
            c.body.unwrap(),
            json!({"displayName": "Jane", "location": "BE", "phoneNumber": null, "vrp": null})
        );
        let u = ra_user(vec![op(num(None))]);
        let c = build(
            &u,
            Some("obj-1"),
            &group(&u, Target::ResourceAccount)[0],
            Target::ResourceAccount,
        )
        .unwrap();
        assert_eq!(
            c.path,
            vec!["resource_accounts", "obj-1"],
            "no dedicated endpoints for resource accounts"
        );
        let u = ra_user(vec![op(lic()), op(groups())]);
        let e = build(
            &u,
            Some("obj-1"),
            &group(&u, Target::ResourceAccount)[0],
            Target::ResourceAccount,
        );
        assert!(matches!(e, Err(ConnectorError::Unsupported(_))), "{e:?}");
        let u = ra_user(vec![op(Operation::Delete)]);
        let c = build(
            &u,
            Some("obj-1"),
            &group(&u, Target::ResourceAccount)[0],
            Target::ResourceAccount,
        )
        .unwrap();
        assert_eq!(
            (c.method, c.path),
            (
                reqwest::Method::DELETE,
                vec!["resource_accounts".into(), "obj-1".into()]
            )
        );
    }

    fn fixture(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fusion")
            .join(format!("{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }

    /// The bodies we send equal the document's own examples given the same values
    /// (tests/fixtures/fusion, shared with the simulator's contract tests).
    #[test]
    fn request_bodies_match_the_documents_examples() {
        let e54 = "e54f3c3f-d705-451d-96ff-7fbe7ff15e1e".to_string();
        let g917 = "917ad8c5-8ca6-480b-9a81-045846ba0892".to_string();
        let e1 = "18181a46-0d4e-45cd-891e-60aabd171b4e".to_string();
        let n = || Some(E164::parse_canonical("+31302861233").unwrap());
        let one = |o: Operation, suffix: &str| {
            let u = user(vec![op(o)]);
            let c = build(&u, Some("u-1"), &group(&u, Target::User)[0], Target::User).unwrap();
            assert_eq!(c.path.last().unwrap(), suffix);
            c.body.unwrap()
        };
        assert_eq!(
            one(
                Operation::SetGroups {
                    group_ids: vec![e54.clone(), g917.clone()]
                },
                "groups"
            ),
            fixture("user_groups_request")
        );
        assert_eq!(
            one(
                Operation::SetLicenses {
                    sku_ids: vec![e1.clone()]
                },
                "licenses"
            ),
            fixture("user_licenses_request")
        );
        assert_eq!(
            one(Operation::SetNumber { number: n() }, "phone_number"),
            fixture("user_phone_number_request")
        );
        assert_eq!(
            one(
                Operation::SetVrp {
                    vrp: Some("World-DRaaS".into())
                },
                "vrp"
            ),
            fixture("user_vrp_request")
        );
        assert_eq!(
            one(
                Operation::SetProperties {
                    display_name: Some("John Doe".into()),
                    country: Some(Country::parse("BE").unwrap())
                },
                "properties"
            ),
            fixture("user_properties_request_3")
        );
        let u = user(vec![
            op(Operation::SetProperties {
                display_name: Some("John Doe".into()),
                country: Some(Country::parse("NL").unwrap()),
            }),
            op(Operation::SetLicenses { sku_ids: vec![e1] }),
            op(Operation::SetNumber { number: n() }),
            op(Operation::SetVrp {
                vrp: Some("World-DRaaS".into()),
            }),
            op(Operation::SetGroups {
                group_ids: vec![e54, g917],
            }),
            op(Operation::SetCustomerLicenses {
                skus: vec!["test-sku".into()],
            }),
        ]);
        let c = build(&u, Some("u-1"), &group(&u, Target::User)[0], Target::User).unwrap();
        assert_eq!(c.body.unwrap(), fixture("user_update_request"));
        // Create: our UPNs are lowercase, so the example's "ThomasA" is sent as "thomasa".
        let mut u = user(vec![op(Operation::Create {
            display_name: "Thomas Anderson".into(),
            country: Country::parse("NL").unwrap(),
            customer_licenses: vec!["test-sku".into()],
        })]);
        u.upn = Upn::parse("ThomasA@netaxissolutions.onmicrosoft.com").unwrap();
        let c = build(&u, None, &group(&u, Target::User)[0], Target::User).unwrap();
        let mut want = fixture("user_create_request");
        want["username"] = json!("thomasa");
        assert_eq!(c.body.unwrap(), want);
        let mut u = ra_user(vec![
            op(Operation::Create {
                display_name: "My First Call Queue".into(),
                country: Country::parse("BE").unwrap(),
                customer_licenses: vec![],
            }),
            op(Operation::SetNumber {
                number: Some(E164::parse_canonical("+3225405239").unwrap()),
            }),
        ]);
        u.upn = Upn::parse("my_call_queue@netaxisdev.onmicrosoft.com").unwrap();
        let c = build(
            &u,
            None,
            &group(&u, Target::ResourceAccount)[0],
            Target::ResourceAccount,
        )
        .unwrap();
        assert_eq!(c.body.unwrap(), fixture("resource_account_create_request"));
        // Modify: every key we send is one of the example's, with the same meaning
        // (accountType is never changed by a plan).
        let u = ra_user(vec![
            op(Operation::SetProperties {
                display_name: Some("A Modified Call Queue".into()),
                country: Some(Country::parse("NL").unwrap()),
            }),
            op(Operation::SetNumber {
                number: Some(E164::parse_canonical("+31302004498").unwrap()),
            }),
            op(Operation::SetVrp {
                vrp: Some("World-DRaaS".into()),
            }),
        ]);
        let c = build(
            &u,
            Some("r1"),
            &group(&u, Target::ResourceAccount)[0],
            Target::ResourceAccount,
        )
        .unwrap();
        let mut want = fixture("resource_account_modify_request");
        want.as_object_mut().unwrap().remove("accountType");
        assert_eq!(c.body.unwrap(), want);
    }

    #[test]
    fn build_refuses_bad_steps_clearly() {
        let u = user(vec![op(lic()), op(vrp())]);
        let e = build(&u, None, &group(&u, Target::User)[0], Target::User).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("needs the user's id")),
            "{e}"
        );
        let bad = Step {
            ops: vec![5],
            label: String::new(),
        };
        assert!(matches!(
            build(&u, Some("x"), &bad, Target::User),
            Err(ConnectorError::Config(_))
        ));
        let bad = Step {
            ops: vec![1, 0],
            label: String::new(),
        };
        assert!(matches!(
            build(&u, Some("x"), &bad, Target::User),
            Err(ConnectorError::Config(_))
        ));
        let u = user(vec![op(num(None)), op(num(None))]);
        let bad = Step {
            ops: vec![0, 1],
            label: String::new(),
        };
        assert!(matches!(
            build(&u, Some("x"), &bad, Target::User),
            Err(ConnectorError::Config(_))
        ));
        let bad = Step {
            ops: vec![],
            label: String::new(),
        };
        assert!(matches!(
            build(&u, Some("x"), &bad, Target::User),
            Err(ConnectorError::Config(_))
        ));
    }
}
