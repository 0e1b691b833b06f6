//! Grouping a user's planned operations into Fusion requests, and building each request.
//!
//! Which endpoint carries which change (paths relative to
//! `/api/v01/draas/{draas_instance}/tenants/{uuid}/subscriptions/{subscription_id}/msteams`):
//!
//! | operation(s) in one step | request | body |
//! | --- | --- | --- |
//! | `create` | `POST users` | `username` (UPN local part), `domain`, `displayName`, `location`, `customerLicenses` (if any) |
//! | `set_properties` alone | `PUT users/{id}/properties` | `displayName` and/or `location` |
//! | `set_licenses` alone | `PUT users/{id}/licenses` | `licenses`: full skuId array (`[]` removes all) |
//! | `set_number` alone | `PUT users/{id}/phone_number` | `phoneNumber`: number, or `null` to release it |
//! | `set_vrp` alone | `PUT users/{id}/vrp` | `vrp`: identity, or `null` to disable |
//! | `set_groups` alone | `PUT users/{id}/groups` | `groups`: full id array (`[]` removes all) |
//! | `set_customer_licenses` alone | `PUT users/{id}` | `customerLicenses` (the only endpoint that writes them) |
//! | two or more `set_*` | `PUT users/{id}` | only the keys of those ops |
//! | `delete` | `DELETE users/{id}` | — |
//!
//! Why dedicated endpoints for a single change: the document gives each field its own
//! endpoint with its own, narrower role, and says outright what `[]`/`null` mean there; the
//! full `PUT users/{id}` is used when it saves requests (several fields at once) or is the
//! only way (`customerLicenses`). The licenses endpoint is `users/{id}/licenses`
//! (`{"licenses": […]}`), not the differently shaped "Manage user licenses"
//! (`{id}/licenses` with `skuIds`), so users are written under one path prefix.
//!
//! Which operations share a request is the shared algorithm's
//! ([`crate::connector::group_steps`]); Fusion declares ([`batching`]) that the full `PUT`
//! takes every attribute it has, that a resource-account create also takes the number
//! and customer licenses, and that `customerLicenses` (kept in the `draas` object that only
//! a user with a number has) never share a body with a number release
//! (`phoneNumber: null`). A user create is a request of its own.

use crate::connector::{group_steps, Batching, ConnectorError, Step};
use crate::model::attr::OpGroup;
use crate::model::{Attr, AttrSet, AttrValue, Upn};
use crate::plan::model::{AttrChange, Operation, UserPlan};
use serde_json::{json, Map, Value};

/// Which collection a plan's user lives in: users and resource accounts have different
/// endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    User,
    ResourceAccount,
}

/// The body key of an attribute in the full `PUT users/{id}` (and the create bodies);
/// `None` for one Fusion has no key for.
fn wire_key(attr: Attr) -> Option<&'static str> {
    match attr {
        Attr::DisplayName => Some("displayName"),
        Attr::Country => Some("location"),
        Attr::Licenses => Some("licenses"),
        Attr::Number => Some("phoneNumber"),
        Attr::Vrp => Some("vrp"),
        Attr::Groups => Some("groups"),
        Attr::CustomerLicenses => Some("customerLicenses"),
        // Attributes Fusion does not carry (its profile says so; the planner refuses them).
        // A wildcard, so a new attribute needs no edit here unless Fusion carries it.
        _ => None,
    }
}

/// Body keys an op writes in the full `PUT users/{id}` (or `PUT resource_accounts/{id}`).
fn keys(op: &Operation) -> Vec<&'static str> {
    match op {
        Operation::Set { changes } => changes.iter().filter_map(|c| wire_key(c.attr)).collect(),
        Operation::Create { .. } | Operation::Delete => vec![],
    }
}

/// What resource accounts have: no groups, no license endpoint (the tenant licenses them).
const RA_ATTRS: AttrSet = AttrSet::of(&[
    Attr::DisplayName,
    Attr::Country,
    Attr::Number,
    Attr::Vrp,
    Attr::CustomerLicenses,
]);

/// Customer licenses never ride with a number release: the release deletes the `draas`
/// object they live in.
fn cl_meets_release(a: &AttrChange, b: &AttrChange) -> bool {
    a.attr == Attr::CustomerLicenses && b.attr == Attr::Number && b.after.is_none()
}

/// What one Fusion request can carry, per target.
pub fn batching(target: Target) -> Batching {
    let carried = super::PROFILE.attrs;
    match target {
        Target::User => Batching {
            together: carried,
            with_create: AttrSet::EMPTY,
            apart: cl_meets_release,
        },
        // Resource accounts group like users; a field they lack fails its request when it
        // is built (the planner refuses such rows first).
        Target::ResourceAccount => Batching {
            together: carried,
            with_create: AttrSet::of(&[Attr::Number, Attr::CustomerLicenses]),
            apart: cl_meets_release,
        },
    }
}

/// The fewest steps the rules above allow, in plan order.
pub fn group(user: &UserPlan, target: Target) -> Vec<Step> {
    group_steps(user, &batching(target))
        .into_iter()
        .map(|ops| Step {
            label: label(user, &ops, target),
            ops,
        })
        .collect()
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

/// Fields Fusion has no key for (an extension) cannot be sent anywhere.
fn unsupported(ops: &[&Operation], carried: AttrSet, what: &str) -> Result<(), NoShape> {
    match ops
        .iter()
        .flat_map(|o| o.changes())
        .find(|c| !carried.contains(c.attr) || wire_key(c.attr).is_none())
    {
        Some(c) => Err(NoShape::Unsupported(format!(
            "{what} have no {} in Fusion",
            c.attr
        ))),
        None => Ok(()),
    }
}

fn create_or_delete_mixed(ops: &[&Operation]) -> Result<(), NoShape> {
    if ops
        .iter()
        .any(|o| matches!(o, Operation::Create { .. } | Operation::Delete))
    {
        return Err(NoShape::Invalid(
            "create and delete cannot share a request with other operations".into(),
        ));
    }
    Ok(())
}

fn shape(ops: &[&Operation], target: Target) -> Result<Shape, NoShape> {
    if target == Target::ResourceAccount {
        return ra_shape(ops);
    }
    unsupported(ops, super::PROFILE.attrs, "users")?;
    match ops {
        [] => Err(NoShape::Invalid("empty step".into())),
        [Operation::Create { .. }] => Ok(Shape::Create),
        [Operation::Delete] => Ok(Shape::Delete),
        [one @ Operation::Set { .. }] => match one.group() {
            Some(OpGroup::Properties) => Ok(Shape::Dedicated("properties")),
            Some(OpGroup::Licenses) => Ok(Shape::Dedicated("licenses")),
            Some(OpGroup::Number) => Ok(Shape::Dedicated("phone_number")),
            Some(OpGroup::Vrp) => Ok(Shape::Dedicated("vrp")),
            Some(OpGroup::Groups) => Ok(Shape::Dedicated("groups")),
            Some(OpGroup::CustomerLicenses) => Ok(Shape::FullPut),
            None => Err(NoShape::Invalid("an operation that sets nothing".into())),
        },
        many => {
            create_or_delete_mixed(many)?;
            unique_keys(many)?;
            Ok(Shape::FullPut)
        }
    }
}

/// Resource accounts: `POST resource_accounts` (with number and customer licenses),
/// `PUT resource_accounts/{id}` for everything else, `DELETE resource_accounts/{id}`.
/// They have no groups and no license endpoint (the tenant licenses them itself).
fn ra_shape(ops: &[&Operation]) -> Result<Shape, NoShape> {
    unsupported(ops, RA_ATTRS, "resource accounts")?;
    match ops {
        [] => Err(NoShape::Invalid("empty step".into())),
        [Operation::Delete] => Ok(Shape::Delete),
        [Operation::Create { .. }, rest @ ..] => {
            let with_create = batching(Target::ResourceAccount).with_create;
            if rest
                .iter()
                .all(|o| matches!(o, Operation::Set { .. }) && o.attrs().is_subset(with_create))
            {
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
            create_or_delete_mixed(many)?;
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

/// A value as Fusion's bodies write it: a country as its code, a number as text, `null`
/// for none, lists as arrays.
fn wire_value(v: &Option<AttrValue>) -> Value {
    match v {
        None => Value::Null,
        Some(AttrValue::Country(c)) => json!(c.as_str()),
        Some(v) => v.to_json(),
    }
}

fn body_entry(op: &Operation, m: &mut Map<String, Value>) {
    if let Operation::Set { changes } = op {
        for c in changes {
            if let Some(k) = wire_key(c.attr) {
                m.insert(k.into(), wire_value(&c.after));
            }
        }
    }
}

fn config_err(upn: &Upn, m: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Config(format!("{upn}: {m}"))
}

/// A list a create sets (customer licenses), or none.
fn create_list(op: &Operation, attr: Attr) -> &[String] {
    match op.sets(attr) {
        Some(Some(AttrValue::List(l))) => l,
        _ => &[],
    }
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
    let mut path = vec![coll.to_string()];
    let (method, body, creates) = match shape {
        Shape::Create => {
            let create = ops[0];
            let display_name = create.sets_text(Attr::DisplayName).unwrap_or_default();
            let Some(country) = create
                .sets(Attr::Country)
                .and_then(|c| c.as_ref())
                .and_then(AttrValue::as_country)
            else {
                return Err(config_err(
                    upn,
                    "a Fusion user needs a country to be created",
                ));
            };
            let customer_licenses = create_list(create, Attr::CustomerLicenses);
            let (body, creates) = match target {
                Target::User => (
                    serde_json::to_value(super::wire::CreateUserBody {
                        display_name,
                        domain: upn.domain(),
                        location: country.as_str(),
                        username: upn.local_part(),
                        customer_licenses,
                    }),
                    Creates::User,
                ),
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
                    let mut cl = customer_licenses;
                    for o in &ops[1..] {
                        if let Some(n) = o.sets(Attr::Number) {
                            number = n.as_ref().map(std::string::ToString::to_string);
                        }
                        if o.sets(Attr::CustomerLicenses).is_some() {
                            cl = create_list(o, Attr::CustomerLicenses);
                        }
                    }
                    (
                        serde_json::to_value(super::wire::CreateResourceAccountBody {
                            account_type,
                            user_principal_name: upn.as_str(),
                            display_name,
                            location: country.as_str(),
                            phone_number: number,
                            customer_licenses: cl,
                        }),
                        Creates::ResourceAccount,
                    )
                }
            };
            let body = body.map_err(|e| config_err(upn, e))?;
            (reqwest::Method::POST, Some(body), creates)
        }
        Shape::Delete | Shape::Dedicated(_) | Shape::FullPut => {
            let Some(id) = user_id.filter(|s| !s.is_empty()) else {
                return Err(config_err(
                    upn,
                    format!(
                        "{} needs the user's id, but the user has none (not created yet?)",
                        label(user, &step.ops, target)
                    ),
                ));
            };
            path.push(id.to_string());
            match shape {
                Shape::Delete => (reqwest::Method::DELETE, None, Creates::No),
                Shape::Dedicated(suffix) => {
                    path.push(suffix.to_string());
                    let mut m = Map::new();
                    body_entry(ops[0], &mut m);
                    (reqwest::Method::PUT, Some(Value::Object(m)), Creates::No)
                }
                _ => {
                    let mut m = Map::new();
                    for op in &ops {
                        body_entry(op, &mut m);
                    }
                    (reqwest::Method::PUT, Some(Value::Object(m)), Creates::No)
                }
            }
        }
    };
    Ok(ApiCall {
        method,
        path,
        body,
        creates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attr, AttrValue, Country, UserSpec, E164};
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
        Operation::set_properties(Some("Jane".into()), Some(Country::parse("BE").unwrap()))
    }
    fn lic() -> Operation {
        Operation::set_licenses(vec!["s1".into()])
    }
    fn num(n: Option<&str>) -> Operation {
        Operation::set_number(n.map(|n| E164::parse_canonical(n).unwrap()))
    }
    fn vrp() -> Operation {
        Operation::set_vrp(None)
    }
    fn groups() -> Operation {
        Operation::set_groups(vec![])
    }
    fn cl() -> Operation {
        Operation::set_customer_licenses(vec!["Call-Bundle".into()])
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
                Operation::set_vrp(Some("World".into())),
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
        let create = Operation::create_user("Jane Doe".into(), Some(Country::parse("BE").unwrap()));
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
        let only_name = Operation::set_properties(Some("J".into()), None);
        let only_country = Operation::set_properties(None, Some(Country::parse("NL").unwrap()));
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
    /// A create as the planner makes it: customer licenses follow as an operation of
    /// their own (one attribute appears once per request, so a create carrying them too
    /// would not share a request with that operation).
    fn create() -> Operation {
        Operation::create_user("Main queue".into(), Some(Country::parse("BE").unwrap()))
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
                Operation::set_groups(vec![e54.clone(), g917.clone()]),
                "groups"
            ),
            fixture("user_groups_request")
        );
        assert_eq!(
            one(Operation::set_licenses(vec![e1.clone()]), "licenses"),
            fixture("user_licenses_request")
        );
        assert_eq!(
            one(Operation::set_number(n()), "phone_number"),
            fixture("user_phone_number_request")
        );
        assert_eq!(
            one(Operation::set_vrp(Some("World-DRaaS".into())), "vrp"),
            fixture("user_vrp_request")
        );
        assert_eq!(
            one(
                Operation::set_properties(
                    Some("John Doe".into()),
                    Some(Country::parse("BE").unwrap())
                ),
                "properties"
            ),
            fixture("user_properties_request_3")
        );
        let u = user(vec![
            op(Operation::set_properties(
                Some("John Doe".into()),
                Some(Country::parse("NL").unwrap()),
            )),
            op(Operation::set_licenses(vec![e1])),
            op(Operation::set_number(n())),
            op(Operation::set_vrp(Some("World-DRaaS".into()))),
            op(Operation::set_groups(vec![e54, g917])),
            op(Operation::set_customer_licenses(vec!["test-sku".into()])),
        ]);
        let c = build(&u, Some("u-1"), &group(&u, Target::User)[0], Target::User).unwrap();
        assert_eq!(c.body.unwrap(), fixture("user_update_request"));
        // Create: our UPNs are lowercase, so the example's "ThomasA" is sent as "thomasa".
        let mut u = user(vec![op(Operation::create([
            (Attr::DisplayName, AttrValue::Text("Thomas Anderson".into())),
            (
                Attr::Country,
                AttrValue::Country(Country::parse("NL").unwrap()),
            ),
            (
                Attr::CustomerLicenses,
                AttrValue::List(vec!["test-sku".into()]),
            ),
        ]))]);
        u.upn = Upn::parse("ThomasA@netaxissolutions.onmicrosoft.com").unwrap();
        let c = build(&u, None, &group(&u, Target::User)[0], Target::User).unwrap();
        let mut want = fixture("user_create_request");
        want["username"] = json!("thomasa");
        assert_eq!(c.body.unwrap(), want);
        let mut u = ra_user(vec![
            op(Operation::create_user(
                "My First Call Queue".into(),
                Some(Country::parse("BE").unwrap()),
            )),
            op(Operation::set_number(Some(
                E164::parse_canonical("+3225405239").unwrap(),
            ))),
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
            op(Operation::set_properties(
                Some("A Modified Call Queue".into()),
                Some(Country::parse("NL").unwrap()),
            )),
            op(Operation::set_number(Some(
                E164::parse_canonical("+31302004498").unwrap(),
            ))),
            op(Operation::set_vrp(Some("World-DRaaS".into()))),
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
