//! Server-side templates and `PUT users/{id}/templates/{template_id}`.
//!
//! Fusion keeps templates on the server (the document has no endpoint to manage them; the
//! simulator takes them from the seed's `templates`). A template sets up to four properties
//! of a user — location, VRP, groups, licenses — and leaves those it does not name alone.
//!
//! Our readings:
//! - `override` (default true) replaces: the template's location and VRP replace the user's,
//!   its groups and licenses replace the user's sets. `override: false` only adds: groups and
//!   licenses are merged (the user's first), location and VRP are set only where the user has
//!   none. This is Fusion's rule, the opposite of teamsync's sheet templates (where the row
//!   wins): a bulk item naming a template also has its country, vrp, groups and licenses
//!   overridden by the template's, as the bulk object's table says.
//! - Template 0 is the tenant's default template: a user the bulk update creates starts from
//!   it (in add mode) before the item's own values apply.
//! - The apply is all or nothing: anything that fails (no free license, no location for a
//!   license) is a 400 and the user is left as it was. An unknown template id is a 400 with the
//!   document's code 2095 "The template does not exist"; an unknown user a 404.
//! - The answer's `location` and `vrp` are `null` when the user has none; groups and licenses
//!   are ids, in the user's order.
//! - The body may be absent; when sent it must be JSON with at most `override`.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::Json;

use super::error::{ApiError, Code};
use super::extract::{int_path_param, query_params, Body};
use super::state::{check_country, Tenant, User};
use super::users::{update_user, UserId};
use super::wire::{ApplyTemplate, TemplateApplied, TemplateObj, TemplateSnapshot};
use super::Shared;

/// Largest optional body read (axum's default body limit).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Id of the default template.
pub const DEFAULT_TEMPLATE_ID: i64 = 0;

pub fn not_found() -> ApiError {
    ApiError::bad(Code::TemplateNotFound, "The template does not exist")
}

impl Tenant {
    pub fn template(&self, id: i64) -> Option<&TemplateObj> {
        self.templates.iter().find(|t| t.id == id)
    }

    /// By name, exactly (names are what bulk items carry).
    pub fn template_by_name(&self, name: &str) -> Option<&TemplateObj> {
        self.templates.iter().find(|t| t.name == name)
    }

    /// A seeded template must name only what exists: groups, licenses, VRP, a country.
    pub(crate) fn check_template(&self, tpl: &TemplateObj) -> Result<(), String> {
        if tpl.id < 0 || tpl.name.trim().is_empty() {
            return Err("a template needs an id ≥ 0 and a name".into());
        }
        if let Some(l) = &tpl.location {
            check_country(l).map_err(|e| e.reason)?;
        }
        if let Some(v) = &tpl.vrp {
            self.check_vrp(v).map_err(|e| e.reason)?;
        }
        for g in tpl.groups.iter().flatten() {
            if self.group(g).is_none() {
                return Err(format!("unknown group {g}"));
            }
        }
        for l in tpl.licenses.iter().flatten() {
            if self.license(l).is_none() {
                return Err(format!("unknown license {l}"));
            }
        }
        Ok(())
    }
}

pub fn snapshot(u: &User) -> TemplateSnapshot {
    TemplateSnapshot {
        groups: u.groups.clone(),
        licenses: u.licenses.clone(),
        location: u.location.clone(),
        vrp: u.vrp.clone(),
    }
}

fn merged(first: &[String], then: &[String]) -> Vec<String> {
    let mut out = first.to_vec();
    for x in then {
        if !out.iter().any(|y| y.eq_ignore_ascii_case(x)) {
            out.push(x.clone());
        }
    }
    out
}

/// Applies `tpl` to `u` (a copy), checking every rule a write checks.
pub fn apply(t: &Tenant, u: &mut User, tpl: &TemplateObj, override_: bool) -> Result<(), ApiError> {
    if let Some(l) = &tpl.location {
        if override_ || u.location.is_none() {
            u.location = Some(l.clone());
        }
    }
    if let Some(v) = &tpl.vrp {
        if override_ || u.vrp.is_none() {
            t.check_vrp(v)?;
            u.vrp = Some(v.clone());
        }
    }
    if let Some(g) = &tpl.groups {
        let want = if override_ {
            g.clone()
        } else {
            merged(&u.groups, g)
        };
        u.groups = t.check_groups(&want)?;
    }
    if let Some(l) = &tpl.licenses {
        let want = if override_ {
            l.clone()
        } else {
            merged(&u.licenses, l)
        };
        u.licenses = t.check_licenses(&want, &u.licenses, u.location.as_deref())?;
    }
    Ok(())
}

/// The `{template_id}` of the path: an integer.
pub struct TemplateId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for TemplateId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        int_path_param(parts, state, "template_id")
            .await
            .map(TemplateId)
    }
}

/// `PUT users/{id}/templates/{template_id}`: 200 with before/after snapshots.
pub async fn apply_to_user(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    TemplateId(tid): TemplateId,
    req: Request,
) -> Result<Json<TemplateApplied>, ApiError> {
    query_params(req.uri().query(), &[])?;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| ApiError::bad(Code::BadBody, format!("Unreadable body: {e}")))?;
    let opts = if bytes.iter().all(u8::is_ascii_whitespace) {
        ApplyTemplate::default()
    } else {
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        Body::<ApplyTemplate>::from_request(req, &sh).await?.0
    };
    let override_ = opts.override_.unwrap_or(true);
    let answer = update_user(&sh, &id, |t, _, u| {
        let tpl = t.template(tid).ok_or_else(not_found)?;
        let before = snapshot(u);
        apply(t, u, tpl, override_)?;
        Ok(TemplateApplied {
            after: snapshot(u),
            before,
        })
    })?;
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::wire::TenantDoc;

    fn tenant() -> Tenant {
        let doc: TenantDoc = serde_json::from_value(serde_json::json!({
            "draas_instance": "d", "tenant_uuid": "t", "subscription_id": 1, "msTenantId": "m",
            "domains": ["x.com"],
            "groups": [{"displayName": "A", "id": "ga"}, {"displayName": "B", "id": "gb"}],
            "licenses": [
                {"skuDescription": "Phone", "skuId": "s1", "skuPartNumber": "MCOEV", "total": 5},
                {"skuDescription": "E1", "skuId": "s2", "skuPartNumber": "STANDARDPACK", "total": 5}],
            "vrps": [{"description": "G", "identity": "G"}, {"description": "H", "identity": "H"}],
            "users": [{"msTeams": {"id": "u1", "userPrincipalName": "u1@x.com", "displayName": "U",
                "location": "BE", "groups": [{"displayName": "A", "id": "ga"}],
                "licenses": [{"skuId": "s2", "skuPartNumber": "STANDARDPACK"}], "vrp": "G"}}],
            "templates": [{"id": 0, "name": "T", "location": "NL", "vrp": "H",
                           "groups": ["gb"], "licenses": ["s1"]},
                          {"id": 1, "name": "Only groups", "groups": ["gb"]}]
        }))
        .unwrap();
        Tenant::from_doc(doc).unwrap()
    }

    #[test]
    fn override_replaces_and_add_only_fills_in() {
        let t = tenant();
        let tpl = t.template(0).unwrap();
        let mut u = t.users["u1"].clone();
        apply(&t, &mut u, tpl, true).unwrap();
        assert_eq!(u.location.as_deref(), Some("NL"));
        assert_eq!(u.vrp.as_deref(), Some("H"));
        assert_eq!(u.groups, vec!["gb"]);
        assert_eq!(u.licenses, vec!["s1"]);

        let mut u = t.users["u1"].clone();
        apply(&t, &mut u, tpl, false).unwrap();
        assert_eq!(u.location.as_deref(), Some("BE"));
        assert_eq!(u.vrp.as_deref(), Some("G"));
        assert_eq!(u.groups, vec!["ga", "gb"]);
        assert_eq!(u.licenses, vec!["s2", "s1"]);

        // A template leaves what it does not name alone, in both modes.
        let mut u = t.users["u1"].clone();
        apply(&t, &mut u, t.template(1).unwrap(), true).unwrap();
        assert_eq!(snapshot(&u).licenses, vec!["s2"]);
        assert_eq!(u.vrp.as_deref(), Some("G"));
        assert_eq!(u.groups, vec!["gb"]);
    }

    #[test]
    fn seeded_templates_must_resolve() {
        let t = tenant();
        let bad = |f: fn(&mut TemplateObj)| {
            let mut tpl = t.template(0).unwrap().clone();
            f(&mut tpl);
            t.check_template(&tpl)
        };
        assert!(bad(|_| {}).is_ok());
        assert!(bad(|x| x.groups = Some(vec!["nope".into()])).is_err());
        assert!(bad(|x| x.licenses = Some(vec!["nope".into()])).is_err());
        assert!(bad(|x| x.vrp = Some("nope".into())).is_err());
        assert!(bad(|x| x.location = Some("UK".into())).is_err());
        assert!(bad(|x| x.name = " ".into()).is_err());
        assert!(bad(|x| x.id = -1).is_err());
    }
}
