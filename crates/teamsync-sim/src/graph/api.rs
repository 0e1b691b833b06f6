//! The simulated Graph endpoints (see the module doc of `graph` for what is served and our
//! readings of the documents).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::model::{AssignedLicense, DirectPolicy, NumberOperation, TenantDoc, User};
use super::{GraphError, Shared, OPERATION_MS};

type Sh = State<Arc<Shared>>;
type Answer = Result<Response, GraphError>;

const TNM: &str = "/v1.0/admin/teams/telephoneNumberManagement";

/// `http://host` of the request, for absolute links (`@odata.nextLink`, `Location`).
pub fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn query(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Refuses OData options the endpoint does not take, and repeated ones.
fn check_options(q: &[(String, String)], allowed: &[&str]) -> Result<(), GraphError> {
    for (i, (k, _)) in q.iter().enumerate() {
        if k.starts_with('$') && !allowed.contains(&k.as_str()) {
            return Err(GraphError::bad(format!(
                "Query option '{k}' is not allowed. Allowed query options: {}",
                allowed.join(", ")
            )));
        }
        if q[..i].iter().any(|(p, _)| p == k) {
            return Err(GraphError::bad(format!(
                "Query option '{k}' was specified more than once, but it must be specified at most once."
            )));
        }
    }
    Ok(())
}

fn opt<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(p, _)| p == k).map(|(_, v)| v.as_str())
}

/// Keeps `id` and the `$select`ed properties.
fn project(v: Value, select: Option<&str>) -> Value {
    let (Some(sel), Value::Object(m)) = (select, &v) else {
        return v;
    };
    let keep: Vec<&str> = sel.split(',').map(str::trim).collect();
    let out: Map<String, Value> = m
        .iter()
        .filter(|(k, _)| k.as_str() == "id" || k.starts_with('@') || keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(out)
}

fn token_of(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("o:{offset}"))
}

fn offset_of(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("o:")?
        .parse()
        .ok()
}

/// One page of `items` with `$top` (1..=999, default 100), `$select` and `$skiptoken`, and
/// an absolute `@odata.nextLink` when more remain.
fn paged(
    headers: &HeaderMap,
    path: &str,
    q: &[(String, String)],
    items: Vec<Value>,
    context: &str,
) -> Answer {
    check_options(q, &["$top", "$select", "$skiptoken"])?;
    let top = match opt(q, "$top") {
        None => 100,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => n,
            _ => {
                return Err(GraphError::bad(format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                )))
            }
        },
    };
    let from = match opt(q, "$skiptoken") {
        None => 0,
        Some(t) => offset_of(t)
            .filter(|o| *o <= items.len())
            .ok_or_else(|| GraphError::bad("Invalid $skiptoken."))?,
    };
    let select = opt(q, "$select");
    let page: Vec<Value> = items
        .iter()
        .skip(from)
        .take(top)
        .cloned()
        .map(|v| project(v, select))
        .collect();
    let mut body = json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#{context}"),
        "value": page,
    });
    if from + top < items.len() {
        // OData spells its options with a literal `$`, as Graph's next links do.
        let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let mut pairs: Vec<String> = q
            .iter()
            .filter(|(k, _)| k != "$skiptoken")
            .map(|(k, v)| format!("{}={}", enc(k).replace("%24", "$"), enc(v)))
            .collect();
        pairs.push(format!("$skiptoken={}", token_of(from + top)));
        body["@odata.nextLink"] = json!(format!("{}{path}?{}", origin(headers), pairs.join("&")));
    }
    Ok(Json(body).into_response())
}

/// A JSON object body, or Graph's 400.
fn object(body: &Bytes) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Unable to read JSON request payload: {e}"),
        )),
    }
}

fn string_field<'a>(m: &'a Map<String, Value>, k: &str) -> Result<&'a str, GraphError> {
    match m.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_) | Value::Null) | None => Err(GraphError::bad(format!(
            "The parameter '{k}' is required and cannot be empty."
        ))),
        Some(_) => Err(GraphError::bad(format!(
            "The parameter '{k}' must be a string."
        ))),
    }
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "userPrincipalName": u.user_principal_name,
        "displayName": u.display_name,
        "usageLocation": u.usage_location,
        "accountEnabled": u.account_enabled,
        "assignedLicenses": u.assigned_licenses,
        "businessPhones": [],
        "mail": u.user_principal_name,
    })
}

fn user_missing(id: &str) -> GraphError {
    GraphError::not_found(format!(
        "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
    ))
}

pub async fn list_users(State(sh): Sh, headers: HeaderMap, RawQuery(raw): RawQuery) -> Answer {
    let items = sh.read(|d| d.users.iter().map(user_json).collect())?;
    paged(&headers, "/v1.0/users", &query(&raw), items, "users")
}

pub async fn get_user(
    State(sh): Sh,
    UrlPath(id): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let q = query(&raw);
    check_options(&q, &["$select"])?;
    let u = sh
        .read(|d| d.user(&id).map(user_json))?
        .ok_or_else(|| user_missing(&id))?;
    Ok(Json(project(u, opt(&q, "$select"))).into_response())
}

pub async fn patch_user(State(sh): Sh, UrlPath(id): UrlPath<String>, body: Bytes) -> Answer {
    let m = object(&body)?;
    sh.write(|d| {
        let u = d.user_mut(&id).ok_or_else(|| user_missing(&id))?;
        for (k, v) in &m {
            match (k.as_str(), v) {
                ("displayName", Value::String(s))
                    if !s.trim().is_empty() && s.chars().count() <= 256 =>
                {
                    u.display_name.clone_from(s);
                }
                ("displayName", _) => {
                    return Err(GraphError::bad(
                        "Invalid value specified for property 'displayName' of resource 'User'.",
                    ))
                }
                ("usageLocation", Value::Null) => u.usage_location = None,
                ("usageLocation", Value::String(c)) if crate::common::is_country(c) => {
                    u.usage_location = Some(c.clone());
                }
                ("usageLocation", _) => {
                    return Err(GraphError::bad(
                        "Invalid value specified for property 'usageLocation' of resource 'User'.",
                    ))
                }
                (other, _) => {
                    return Err(GraphError::bad(format!(
                        "Property '{other}' does not exist on type 'microsoft.graph.user'."
                    )))
                }
            }
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn assign_license(State(sh): Sh, UrlPath(id): UrlPath<String>, body: Bytes) -> Answer {
    let m = object(&body)?;
    let (Some(Value::Array(add)), Some(Value::Array(remove))) =
        (m.get("addLicenses"), m.get("removeLicenses"))
    else {
        return Err(GraphError::bad(
            "Both 'addLicenses' and 'removeLicenses' are required (use empty collections).",
        ));
    };
    let add: Vec<AssignedLicense> = add
        .iter()
        .map(|a| serde_json::from_value(a.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| GraphError::bad(format!("Invalid addLicenses: {e}")))?;
    let remove: Vec<String> = remove
        .iter()
        .map(|r| r.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| GraphError::bad("removeLicenses must hold skuId strings."))?;
    let user = sh.write(|d| {
        let u = d.user(&id).ok_or_else(|| user_missing(&id))?.clone();
        if !add.is_empty() && u.usage_location.is_none() {
            return Err(GraphError::bad(
                "License assignment cannot be done for user with invalid usage location.",
            ));
        }
        for a in &add {
            let Some(sku) = d.sku(&a.sku_id) else {
                return Err(GraphError::bad(format!(
                    "License {} does not correspond to a valid company License.",
                    a.sku_id
                )));
            };
            let held = u
                .assigned_licenses
                .iter()
                .any(|l| l.sku_id.eq_ignore_ascii_case(&a.sku_id));
            if !held && d.consumed(&sku.sku_id) >= sku.enabled_units {
                return Err(GraphError::bad(format!(
                    "Subscription {} does not have any available licenses.",
                    sku.sku_part_number
                )));
            }
        }
        for r in &remove {
            if !u
                .assigned_licenses
                .iter()
                .any(|l| l.sku_id.eq_ignore_ascii_case(r))
            {
                return Err(GraphError::bad(
                    "User does not have a corresponding license.",
                ));
            }
        }
        let u = d.user_mut(&id).ok_or_else(|| user_missing(&id))?;
        u.assigned_licenses
            .retain(|l| !remove.iter().any(|r| r.eq_ignore_ascii_case(&l.sku_id)));
        for a in add {
            u.assigned_licenses
                .retain(|l| !l.sku_id.eq_ignore_ascii_case(&a.sku_id));
            u.assigned_licenses.push(a);
        }
        Ok(user_json(u))
    })?;
    Ok(Json(user).into_response())
}

pub async fn member_of(
    State(sh): Sh,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let items = sh.read(|d| {
        d.user(&id).map(|_| {
            d.groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(&id)))
                .map(|g| json!({"@odata.type": "#microsoft.graph.group", "id": g.id, "displayName": g.display_name}))
                .collect::<Vec<_>>()
        })
    })?;
    let items = items.ok_or_else(|| user_missing(&id))?;
    paged(
        &headers,
        &format!("/v1.0/users/{id}/memberOf"),
        &query(&raw),
        items,
        "directoryObjects",
    )
}

pub async fn list_groups(State(sh): Sh, headers: HeaderMap, RawQuery(raw): RawQuery) -> Answer {
    let items = sh.read(|d| {
        d.groups
            .iter()
            .map(|g| json!({"id": g.id, "displayName": g.display_name}))
            .collect()
    })?;
    paged(&headers, "/v1.0/groups", &query(&raw), items, "groups")
}

pub async fn add_member(State(sh): Sh, UrlPath(gid): UrlPath<String>, body: Bytes) -> Answer {
    let m = object(&body)?;
    let reference = string_field(&m, "@odata.id")?;
    let Some((_, member)) = reference.rsplit_once("/directoryObjects/") else {
        return Err(GraphError::bad(format!(
            "Invalid object identifier '{reference}'."
        )));
    };
    let member = member.trim_matches(|c| c == '{' || c == '}').to_string();
    sh.write(|d| {
        if d.user(&member).is_none() {
            return Err(user_missing(&member));
        }
        let g = d
            .groups
            .iter_mut()
            .find(|g| g.id.eq_ignore_ascii_case(&gid))
            .ok_or_else(|| user_missing(&gid))?;
        if g.members.iter().any(|x| x.eq_ignore_ascii_case(&member)) {
            return Err(GraphError::bad(
                "One or more added object references already exist for the following modified properties: 'members'.",
            ));
        }
        g.members.push(member.clone());
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn remove_member(
    State(sh): Sh,
    UrlPath((gid, member)): UrlPath<(String, String)>,
) -> Answer {
    sh.write(|d| {
        let g = d
            .groups
            .iter_mut()
            .find(|g| g.id.eq_ignore_ascii_case(&gid))
            .ok_or_else(|| user_missing(&gid))?;
        let before = g.members.len();
        g.members.retain(|x| !x.eq_ignore_ascii_case(&member));
        if g.members.len() == before {
            return Err(user_missing(&member));
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn subscribed_skus(State(sh): Sh, RawQuery(raw): RawQuery) -> Answer {
    check_options(&query(&raw), &["$select"])?;
    let value: Vec<Value> = sh.read(|d| {
        d.subscribed_skus
            .iter()
            .map(|s| {
                json!({
                    "id": format!("{}_{}", d.tenant_id, s.sku_id),
                    "appliesTo": "User",
                    "capabilityStatus": "Enabled",
                    "consumedUnits": d.consumed(&s.sku_id),
                    "prepaidUnits": {"enabled": s.enabled_units, "lockedOut": 0, "suspended": 0, "warning": 0},
                    "servicePlans": s.service_plans.iter().map(|p| json!({
                        "servicePlanId": p.service_plan_id,
                        "servicePlanName": p.service_plan_name,
                        "provisioningStatus": "Success",
                        "appliesTo": "User",
                    })).collect::<Vec<_>>(),
                    "skuId": s.sku_id,
                    "skuPartNumber": s.sku_part_number,
                })
            })
            .collect()
    })?;
    Ok(Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscribedSkus",
        "value": value,
    }))
    .into_response())
}

fn configuration_json(d: &TenantDoc, u: &User) -> Value {
    let effective: Vec<Value> = u
        .policy_assignments
        .iter()
        .map(|p| {
            let name = d
                .policies
                .iter()
                .find(|x| x.policy_id == p.policy_id)
                .map(|x| x.name.clone())
                .unwrap_or_default();
            json!({
                "policyType": p.policy_type,
                "policyAssignment": {
                    "displayName": name,
                    "assignmentType": "direct",
                    "policyId": p.policy_id,
                }
            })
        })
        .collect();
    let numbers: Vec<Value> = d
        .number_assignments
        .iter()
        .filter(|n| n.assignment_target_id.as_deref() == Some(u.id.as_str()))
        .map(|n| {
            json!({
                "telephoneNumber": n.telephone_number,
                "assignmentCategory": n.assignment_category.clone().unwrap_or_else(|| "primary".into()),
            })
        })
        .collect();
    json!({
        "id": u.id,
        "userPrincipalName": u.user_principal_name,
        "tenantId": d.tenant_id,
        "effectivePolicyAssignments": effective,
        "telephoneNumbers": numbers,
        "isEnterpriseVoiceEnabled": u.is_enterprise_voice_enabled,
        "featureTypes": d.feature_types(u),
        "accountType": u.account_type,
        "createdDateTime": "2025-01-07T09:08:50Z",
        "modifiedDateTime": "2025-01-07T09:08:50Z",
    })
}

pub async fn list_user_configurations(
    State(sh): Sh,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer {
    let items = sh.read(|d| d.users.iter().map(|u| configuration_json(d, u)).collect())?;
    paged(
        &headers,
        "/v1.0/admin/teams/userConfigurations",
        &query(&raw),
        items,
        "admin/teams/userConfigurations",
    )
}

pub async fn get_user_configuration(State(sh): Sh, UrlPath(id): UrlPath<String>) -> Answer {
    let v = sh
        .read(|d| d.user(&id).map(|u| configuration_json(d, u)))?
        .ok_or_else(|| user_missing(&id))?;
    Ok(Json(v).into_response())
}

pub async fn list_numbers(State(sh): Sh, RawQuery(raw): RawQuery) -> Answer {
    let q = query(&raw);
    check_options(&q, &["$top", "$skip"])?;
    let top = match opt(&q, "$top") {
        None => 500,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| GraphError::bad(format!("Invalid $top '{t}': 1 to 1000.")))?,
    };
    let skip = match opt(&q, "$skip") {
        None => 0,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| GraphError::bad(format!("Invalid $skip '{s}'.")))?,
    };
    let value: Vec<Value> = sh.read(|d| {
        d.number_assignments
            .iter()
            .skip(skip)
            .take(top)
            .map(|n| {
                json!({
                    "@odata.type": "#microsoft.graph.teamsAdministration.numberAssignment",
                    "id": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{}", d.tenant_id, n.telephone_number)),
                    "telephoneNumber": n.telephone_number,
                    "numberType": n.number_type,
                    "activationState": "activated",
                    "capabilities": n.capabilities,
                    "locationId": n.location_id,
                    "civicAddressId": null,
                    "networkSiteId": null,
                    "assignmentTargetId": n.assignment_target_id,
                    "assignmentCategory": n.assignment_category,
                    "portInStatus": null,
                    "assignmentStatus": n.assignment_status,
                    "isoCountryCode": n.iso_country_code,
                    "city": null,
                    "numberSource": "online",
                    "supportedCustomerActions": ["locationUpdate"],
                    "reverseNumberLookupOptions": [],
                })
            })
            .collect()
    })?;
    Ok(Json(json!({"value": value})).into_response())
}

const NUMBER_TYPES: [&str; 3] = ["directRouting", "callingPlan", "operatorConnect"];

/// `12061234567` or `+12061234567`, as Graph records it: with its `+`.
fn plus(n: &str) -> Result<String, GraphError> {
    let n = n.trim();
    let with = if n.starts_with('+') {
        n.to_string()
    } else {
        format!("+{n}")
    };
    if crate::common::is_e164(&with) {
        Ok(with)
    } else {
        Err(GraphError::bad(format!(
            "The telephone number '{n}' is not in a valid format."
        )))
    }
}

fn number_type(m: &Map<String, Value>) -> Result<String, GraphError> {
    let t = string_field(m, "numberType")?;
    if NUMBER_TYPES.contains(&t) {
        Ok(t.to_string())
    } else {
        Err(GraphError::bad(format!(
            "The value '{t}' is not valid for numberType (directRouting, callingPlan, operatorConnect)."
        )))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn accepted(headers: &HeaderMap, op: &str) -> Response {
    let mut r = StatusCode::ACCEPTED.into_response();
    let loc = format!("{}{TNM}/operations('{op}')", origin(headers));
    if let Ok(v) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn new_operation(kind: &str, number: &str) -> NumberOperation {
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{}|{}",
        if kind == "assign" {
            "Assignment"
        } else {
            "Unassignment"
        },
        uuid::Uuid::new_v4()
    ));
    NumberOperation {
        id,
        created_date_time: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ready_at_ms: now_ms() + OPERATION_MS,
        action: kind.into(),
        telephone_number: number.into(),
        target: None,
        category: None,
        location_id: None,
        number_type: String::new(),
        status: "running".into(),
        status_detail: None,
    }
}

pub async fn assign_number(State(sh): Sh, headers: HeaderMap, body: Bytes) -> Answer {
    let m = object(&body)?;
    let number = plus(string_field(&m, "telephoneNumber")?)?;
    let target = string_field(&m, "assignmentTargetId")?.to_string();
    let kind = number_type(&m)?;
    let category = match m.get("assignmentCategory") {
        None | Some(Value::Null) => "primary".to_string(),
        Some(Value::String(c)) if ["primary", "private", "alternate"].contains(&c.as_str()) => {
            c.clone()
        }
        Some(other) => {
            return Err(GraphError::bad(format!(
                "The value {other} is not valid for assignmentCategory."
            )))
        }
    };
    let location = match m.get("locationId") {
        None | Some(Value::Null) => None,
        Some(Value::String(l)) => Some(l.clone()),
        Some(_) => return Err(GraphError::bad("locationId must be a string.")),
    };
    let mut op = new_operation("assign", &number);
    op.target = Some(target);
    op.category = Some(category);
    op.location_id = location;
    op.number_type = kind;
    let id = op.id.clone();
    sh.write(|d| {
        d.operations.push(op);
        Ok(())
    })?;
    Ok(accepted(&headers, &id))
}

pub async fn unassign_number(State(sh): Sh, headers: HeaderMap, body: Bytes) -> Answer {
    let m = object(&body)?;
    let number = plus(string_field(&m, "telephoneNumber")?)?;
    let kind = number_type(&m)?;
    let mut op = new_operation("unassign", &number);
    op.number_type = kind;
    let id = op.id.clone();
    sh.write(|d| {
        d.operations.push(op);
        Ok(())
    })?;
    Ok(accepted(&headers, &id))
}

/// Completes the operations that are due; true when any did.
pub fn settle(d: &mut TenantDoc) -> bool {
    let now = now_ms();
    let due: Vec<usize> = d
        .operations
        .iter()
        .enumerate()
        .filter(|(_, o)| o.status == "running" && o.ready_at_ms <= now)
        .map(|(i, _)| i)
        .collect();
    for i in &due {
        let op = d.operations[*i].clone();
        let outcome = complete(d, &op);
        let o = &mut d.operations[*i];
        match outcome {
            Ok(()) => {
                o.status = "succeeded".into();
                o.status_detail = None;
            }
            Err(why) => {
                o.status = "failed".into();
                o.status_detail = Some(why);
            }
        }
    }
    !due.is_empty()
}

/// What an operation does once it runs; `Err` is its `statusDetail`.
fn complete(d: &mut TenantDoc, op: &NumberOperation) -> Result<(), String> {
    let n = &op.telephone_number;
    let sent_type = op.number_type.clone();
    let Some(held) = d.number(n).cloned() else {
        return Err(format!(
            "The telephone number {n} was not found in the tenant's inventory."
        ));
    };
    if held.number_type != sent_type {
        return Err(format!(
            "The telephone number {n} is a {} number, not {sent_type}.",
            held.number_type
        ));
    }
    let target = op.target.clone().unwrap_or_default();
    if op.action == "unassign" {
        if held.assignment_status == "unassigned" {
            return Err(format!("The telephone number {n} is not assigned."));
        }
        if let Some(a) = d
            .number_assignments
            .iter_mut()
            .find(|a| &a.telephone_number == n)
        {
            a.assignment_status = "unassigned".into();
            a.assignment_target_id = None;
            a.assignment_category = None;
        }
        return Ok(());
    }
    let Some(user) = d.user(&target).cloned() else {
        return Err(format!("The assignment target {target} was not found."));
    };
    if held.assignment_status != "unassigned"
        && held.assignment_target_id.as_deref() != Some(user.id.as_str())
    {
        return Err(format!(
            "The telephone number {n} is already assigned to another account."
        ));
    }
    if !held.capabilities.iter().any(|c| c == "userAssignment") {
        return Err(format!(
            "The telephone number {n} does not have the userAssignment capability and cannot be assigned to a user."
        ));
    }
    if !d.has_phone_system(&user) {
        return Err(format!(
            "The user {} is not licensed for Teams Phone: assign a license with the Phone System (MCOEV) plan first.",
            user.user_principal_name
        ));
    }
    let category = op.category.clone().unwrap_or_else(|| "primary".into());
    for a in &mut d.number_assignments {
        if a.assignment_target_id.as_deref() == Some(user.id.as_str())
            && a.assignment_category.as_deref() == Some(category.as_str())
            && &a.telephone_number != n
        {
            a.assignment_status = "unassigned".into();
            a.assignment_target_id = None;
            a.assignment_category = None;
        }
    }
    if let Some(a) = d
        .number_assignments
        .iter_mut()
        .find(|a| &a.telephone_number == n)
    {
        a.assignment_status = "userAssigned".into();
        a.assignment_target_id = Some(user.id.clone());
        a.assignment_category = Some(category);
        if op.location_id.is_some() {
            a.location_id.clone_from(&op.location_id);
        }
    }
    if let Some(u) = d.user_mut(&user.id) {
        u.is_enterprise_voice_enabled = true;
    }
    Ok(())
}

fn operation_json(headers: &HeaderMap, o: &NumberOperation) -> Value {
    let number = json!({
        "resourceLocation": format!(
            "{}{TNM}/numberAssignments/{}",
            origin(headers),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&o.telephone_number)
        ),
        "status": o.status,
        "statusDetail": o.status_detail,
    });
    json!({"value": {
        "@odata.type": "#microsoft.graph.teamsAdministration.telephoneNumberLongRunningOperation",
        "id": o.id,
        "createdDateTime": o.created_date_time,
        "status": o.status,
        "numbers": [number],
    }})
}

fn find_operation(sh: &Shared, headers: &HeaderMap, id: &str) -> Answer {
    let v = sh
        .read(|d| {
            d.operations
                .iter()
                .find(|o| o.id == id)
                .map(|o| operation_json(headers, o))
        })?
        .ok_or_else(|| GraphError::not_found(format!("Operation '{id}' was not found.")))?;
    Ok(Json(v).into_response())
}

pub async fn operation(State(sh): Sh, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Answer {
    find_operation(&sh, &headers, &id)
}

/// `operations('{id}')`, the form of the `Location` header.
pub async fn operation_segment(
    State(sh): Sh,
    headers: HeaderMap,
    UrlPath(segment): UrlPath<String>,
) -> Answer {
    let id = segment
        .strip_prefix("operations('")
        .and_then(|s| s.strip_suffix("')"))
        .ok_or_else(|| GraphError::bad("Resource not found for the segment."))?;
    find_operation(&sh, &headers, id)
}

fn assignments(
    m: &Map<String, Value>,
    need_policy: bool,
) -> Result<Vec<(String, String, String)>, GraphError> {
    let Some(Value::Array(items)) = m.get("value") else {
        return Err(GraphError::bad("The parameter 'value' is required."));
    };
    if items.is_empty() {
        return Err(GraphError::bad("The parameter 'value' cannot be empty."));
    }
    items
        .iter()
        .map(|i| {
            let Value::Object(o) = i else {
                return Err(GraphError::bad("Each assignment must be an object."));
            };
            let policy = if need_policy {
                string_field(o, "policyId")?.to_string()
            } else {
                String::new()
            };
            Ok((
                string_field(o, "userId")?.to_string(),
                string_field(o, "policyType")?.to_string(),
                policy,
            ))
        })
        .collect()
}

fn check_type(d: &TenantDoc, t: &str) -> Result<(), GraphError> {
    if d.assignable_policy_types
        .iter()
        .any(|a| a.eq_ignore_ascii_case(t))
    {
        Ok(())
    } else {
        Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Policy type '{t}' is not supported for user policy assignment."),
        ))
    }
}

pub async fn assign_policy(State(sh): Sh, body: Bytes) -> Answer {
    let items = assignments(&object(&body)?, true)?;
    sh.write(|d| {
        for (user, t, policy) in &items {
            check_type(d, t)?;
            if !d
                .policies
                .iter()
                .any(|p| p.policy_type.eq_ignore_ascii_case(t) && &p.policy_id == policy)
            {
                return Err(GraphError::not_found(format!(
                    "Policy '{policy}' of type '{t}' was not found."
                )));
            }
            let u = d.user_mut(user).ok_or_else(|| user_missing(user))?;
            u.policy_assignments
                .retain(|p| !p.policy_type.eq_ignore_ascii_case(t));
            u.policy_assignments.push(DirectPolicy {
                policy_type: t.clone(),
                policy_id: policy.clone(),
            });
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn unassign_policy(State(sh): Sh, body: Bytes) -> Answer {
    let items = assignments(&object(&body)?, false)?;
    sh.write(|d| {
        for (user, t, _) in &items {
            check_type(d, t)?;
            let u = d.user_mut(user).ok_or_else(|| user_missing(user))?;
            u.policy_assignments
                .retain(|p| !p.policy_type.eq_ignore_ascii_case(t));
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `getPolicyId(type='…',name='…')`.
pub async fn policy_function(State(sh): Sh, UrlPath(call): UrlPath<String>) -> Answer {
    let args = call
        .strip_prefix("getPolicyId(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| GraphError::bad("Resource not found for the segment."))?;
    let mut kind = None;
    let mut name = None;
    for part in args.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| GraphError::bad(format!("Bad function parameter '{part}'.")))?;
        let v = v
            .trim()
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .ok_or_else(|| {
                GraphError::bad(format!("Function parameter '{k}' must be a quoted string."))
            })?;
        match k.trim() {
            "type" => kind = Some(v.to_string()),
            "name" => name = Some(v.to_string()),
            other => {
                return Err(GraphError::bad(format!(
                    "Unknown function parameter '{other}'."
                )))
            }
        }
    }
    let (Some(kind), Some(name)) = (kind, name) else {
        return Err(GraphError::bad("getPolicyId needs 'type' and 'name'."));
    };
    let bare = name.strip_prefix("Tag:").unwrap_or(&name).to_string();
    let value: Vec<Value> = sh.read(|d| {
        d.policies
            .iter()
            .filter(|p| {
                p.policy_type.eq_ignore_ascii_case(&kind) && p.name.eq_ignore_ascii_case(&bare)
            })
            .map(|p| {
                json!({
                    "@odata.type": "#microsoft.graph.teamsAdministration.policyIdentifierDetail",
                    "name": format!("Tag:{}", p.name),
                    "policyId": p.policy_id,
                })
            })
            .collect()
    })?;
    Ok(Json(json!({"value": value})).into_response())
}
