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

/// Body keys an op writes in the full `PUT users/{id}`.
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

/// The fewest steps the rules above allow, in plan order.
pub fn group(user: &UserPlan) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let flush = |cur: &mut Vec<usize>, steps: &mut Vec<Step>| {
        if !cur.is_empty() {
            let ops = std::mem::take(cur);
            let label = label(user, &ops);
            steps.push(Step { ops, label });
        }
    };
    for (i, p) in user.ops.iter().enumerate() {
        if matches!(p.op, Operation::Create { .. } | Operation::Delete) {
            flush(&mut cur, &mut steps);
            cur.push(i);
            flush(&mut cur, &mut steps);
            continue;
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
            flush(&mut cur, &mut steps);
        }
        cur.push(i);
        if p.awaited {
            flush(&mut cur, &mut steps);
        }
    }
    flush(&mut cur, &mut steps);
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

fn shape(ops: &[&Operation]) -> Result<Shape, String> {
    match ops {
        [] => Err("empty step".into()),
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
                return Err(
                    "create and delete cannot share a request with other operations".into(),
                );
            }
            let mut seen: Vec<&str> = Vec::new();
            for k in many.iter().flat_map(|o| keys(o)) {
                if seen.contains(&k) {
                    return Err(format!("{k} appears twice in one request"));
                }
                seen.push(k);
            }
            Ok(Shape::FullPut)
        }
    }
}

fn label(user: &UserPlan, idx: &[usize]) -> String {
    let ops: Vec<&Operation> = idx
        .iter()
        .filter_map(|&i| user.ops.get(i))
        .map(|p| &p.op)
        .collect();
    match shape(&ops) {
        Ok(Shape::Create) => "POST users".into(),
        Ok(Shape::Delete) => "DELETE users/{id}".into(),
        Ok(Shape::Dedicated(s)) => format!("PUT users/{{id}}/{s}"),
        Ok(Shape::FullPut) => {
            let k: Vec<&str> = ops.iter().flat_map(|o| keys(o)).collect();
            format!("PUT users/{{id}} [{}]", k.join(", "))
        }
        Err(e) => format!("invalid step: {e}"),
    }
}

/// One HTTP request, relative to the tenant's `msteams` path.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: reqwest::Method,
    pub path: Vec<String>,
    pub body: Option<Value>,
    /// The answer carries the new user's `msTeamsId`.
    pub creates: bool,
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
/// delete without the user's id.
pub fn build(
    user: &UserPlan,
    user_id: Option<&str>,
    step: &Step,
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
    let shape = shape(&ops).map_err(|e| config_err(upn, e))?;
    if let Shape::Create = shape {
        let Operation::Create {
            display_name,
            country,
            customer_licenses,
        } = ops[0]
        else {
            return Err(config_err(upn, "create step without a create operation"));
        };
        let Some(country) = country else {
            return Err(config_err(
                upn,
                "a Fusion user needs a country to be created",
            ));
        };
        let body = super::wire::CreateUserBody {
            display_name,
            domain: upn.domain(),
            location: country.as_str(),
            username: upn.local_part(),
            customer_licenses,
        };
        let body = serde_json::to_value(&body).map_err(|e| config_err(upn, e))?;
        return Ok(ApiCall {
            method: reqwest::Method::POST,
            path: vec!["users".into()],
            body: Some(body),
            creates: true,
        });
    }
    let Some(id) = user_id.filter(|s| !s.is_empty()) else {
        return Err(config_err(
            upn,
            format!(
                "{} needs the user's id, but the user has none (not created yet?)",
                label(user, &step.ops)
            ),
        ));
    };
    let mut path = vec!["users".to_string(), id.to_string()];
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
        creates: false,
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
        let s = group(&u);
        assert_eq!(ops_of(&s), vec![vec![0, 1, 2, 3, 4, 5]]);
        assert_eq!(s[0].label, "PUT users/{id} [displayName, location, licenses, phoneNumber, vrp, groups, customerLicenses]");
        let c = build(&u, Some("u-1"), &s[0]).unwrap();
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
            let s = group(&u);
            assert_eq!(s[0].label, format!("PUT users/{{id}}/{suffix}"));
            let c = build(&u, Some("u-1"), &s[0]).unwrap();
            assert_eq!(c.path, vec!["users", "u-1", suffix]);
            assert_eq!(c.body.unwrap(), body);
        }
        let u = user(vec![op(cl())]);
        let c = build(&u, Some("u-1"), &group(&u)[0]).unwrap();
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
        assert_eq!(ops_of(&group(&u)), vec![vec![0, 1], vec![2, 3, 4]]);
    }

    #[test]
    fn awaited_op_ends_its_step() {
        let mut release = op(num(None));
        release.awaited = true;
        let u = user(vec![op(props()), release, op(vrp()), op(groups())]);
        assert_eq!(ops_of(&group(&u)), vec![vec![0, 1], vec![2, 3]]);
        // awaited and after on the same op: a step of its own.
        let mut both = op(num(Some("+3225405200")));
        both.awaited = true;
        both.after = waits();
        let u = user(vec![op(lic()), both, op(vrp())]);
        assert_eq!(ops_of(&group(&u)), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn create_and_delete_stand_alone_and_create_builds_the_post() {
        let create = Operation::Create {
            display_name: "Jane Doe".into(),
            country: Some(Country::parse("BE").unwrap()),
            customer_licenses: vec![],
        };
        let u = user(vec![
            op(create),
            op(lic()),
            op(num(Some("+3225405200"))),
            op(cl()),
        ]);
        let s = group(&u);
        assert_eq!(ops_of(&s), vec![vec![0], vec![1, 2, 3]]);
        assert_eq!(s[0].label, "POST users");
        let c = build(&u, None, &s[0]).unwrap();
        assert!(c.creates);
        assert_eq!(c.path, vec!["users"]);
        assert_eq!(
            c.body.unwrap(),
            json!({"displayName": "Jane Doe", "domain": "contoso.com", "username": "jane.doe", "location": "BE"})
        );
        let u = user(vec![op(num(None)), op(Operation::Delete)]);
        let s = group(&u);
        assert_eq!(ops_of(&s), vec![vec![0], vec![1]]);
        let c = build(&u, Some("u-1"), &s[1]).unwrap();
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
        assert_eq!(ops_of(&group(&u)), vec![vec![0], vec![1]]);
        let u = user(vec![op(cl()), op(num(None))]);
        assert_eq!(ops_of(&group(&u)), vec![vec![0], vec![1]]);
        let u = user(vec![op(num(Some("+3225405200"))), op(cl())]);
        assert_eq!(ops_of(&group(&u)), vec![vec![0, 1]]);
    }

    #[test]
    fn a_repeated_key_starts_a_new_step() {
        let u = user(vec![op(num(None)), op(vrp()), op(num(Some("+3225405200")))]);
        assert_eq!(ops_of(&group(&u)), vec![vec![0, 1], vec![2]]);
        let only_name = Operation::SetProperties {
            display_name: Some("J".into()),
            country: None,
        };
        let only_country = Operation::SetProperties {
            display_name: None,
            country: Some(Country::parse("NL").unwrap()),
        };
        let u = user(vec![op(only_name), op(only_country)]);
        assert_eq!(ops_of(&group(&u)), vec![vec![0, 1]]);
    }

    #[test]
    fn build_refuses_bad_steps_clearly() {
        let u = user(vec![op(lic()), op(vrp())]);
        let e = build(&u, None, &group(&u)[0]).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("needs the user's id")),
            "{e}"
        );
        let bad = Step {
            ops: vec![5],
            label: String::new(),
        };
        assert!(matches!(
            build(&u, Some("x"), &bad),
            Err(ConnectorError::Config(_))
        ));
        let bad = Step {
            ops: vec![1, 0],
            label: String::new(),
        };
        assert!(matches!(
            build(&u, Some("x"), &bad),
            Err(ConnectorError::Config(_))
        ));
        let u = user(vec![op(num(None)), op(num(None))]);
        let bad = Step {
            ops: vec![0, 1],
            label: String::new(),
        };
        assert!(matches!(
            build(&u, Some("x"), &bad),
            Err(ConnectorError::Config(_))
        ));
        let bad = Step {
            ops: vec![],
            label: String::new(),
        };
        assert!(matches!(
            build(&u, Some("x"), &bad),
            Err(ConnectorError::Config(_))
        ));
    }
}
