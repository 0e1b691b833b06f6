//! Revert: desired rows that put a job's successful items back as they were.
//!
//! The history keeps, for every item, the tenant's values of the fields the job touched
//! (`UserPlan::before`, keyed by attribute name, in sheet terms: ids for groups and
//! licenses). Reverting is then just another sheet: each touched attribute set back to its
//! old value (or cleared where it was empty, where the attribute table says it can be),
//! users the job created deleted, planned against the tenant as it is now — so the usual
//! plan, drift check and apply path do the work, and the revert is reviewable.

use crate::model::attr::Kind;
use crate::model::{Attr, AttrValue, Field, RowAction, Upn, UserSpec};
use crate::plan::model::{UserAction, UserPlan};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("{upn}: cannot revert field {field}: {message}")]
pub struct RevertError {
    pub upn: String,
    pub field: String,
    pub message: String,
}

/// The row that undoes one applied user plan (`None` when there is nothing to undo), plus
/// warnings for changes that cannot be undone.
pub fn revert_spec(
    applied: &UserPlan,
    warnings: &mut Vec<String>,
) -> Result<Option<UserSpec>, RevertError> {
    let mut spec = UserSpec::new(applied.upn.clone());
    match applied.action {
        UserAction::Unchanged => return Ok(None),
        UserAction::Create => {
            spec.action = RowAction::Delete;
            return Ok(Some(spec));
        }
        UserAction::Delete => {
            // A deleted user cannot be brought back with its object id; recreate it from
            // the before-state (display name and country are required for a create).
        }
        UserAction::Update | UserAction::Disable => {}
    }
    let err = |field: &str, message: String| RevertError {
        upn: applied.upn.to_string(),
        field: field.to_string(),
        message,
    };
    for (field, v) in &applied.before {
        // A deleted resource account is recreated as the kind it was.
        if field == "accountType" {
            spec.account_type =
                Some(serde_json::from_value(v.clone()).map_err(|e| err(field, e.to_string()))?);
            continue;
        }
        let attr = Attr::from_name(field)
            .ok_or_else(|| err(field, "unknown field in the stored before-state".into()))?;
        let value = match v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            v => Some(AttrValue::from_json(attr, v).map_err(|m| err(field, m))?),
        };
        let info = attr.info();
        let put = match value {
            Some(v) => Field::Set(v),
            None if info.kind == Kind::List => Field::Set(AttrValue::List(vec![])),
            None if info.clearable => Field::Clear,
            // A value the API cannot remove (a usage location): say so instead of
            // pretending the revert is complete.
            None => {
                warnings.push(format!(
                    "{}: the job set {} where there was none; it cannot be removed and stays",
                    applied.upn, info.noun
                ));
                continue;
            }
        };
        spec.set(attr, put).map_err(|e| err(field, e.to_string()))?;
    }
    Ok(Some(spec))
}

/// Keeps only revertable users, in job order, without duplicates; returns the rows and
/// the warnings about what cannot be undone.
pub fn revert_specs(applied: &[UserPlan]) -> Result<(Vec<UserSpec>, Vec<String>), RevertError> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut seen = std::collections::HashSet::<Upn>::new();
    for p in applied {
        if let Some(s) = revert_spec(p, &mut warnings)? {
            if seen.insert(s.upn.clone()) {
                out.push(s);
            }
        }
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::UserAction;

    fn applied(action: UserAction, before: serde_json::Value) -> UserPlan {
        UserPlan {
            upn: Upn::parse("a@contoso.com").unwrap(),
            user_id: Some("id-a".into()),
            action,
            desired: UserSpec::new(Upn::parse("a@contoso.com").unwrap()),
            origin: None,
            changes: vec![],
            ops: vec![],
            before: before.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn created_users_are_deleted_and_unchanged_ones_skipped() {
        let s = revert_spec(
            &applied(UserAction::Create, serde_json::json!({})),
            &mut vec![],
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.action, RowAction::Delete);
        assert!(revert_spec(
            &applied(UserAction::Unchanged, serde_json::json!({})),
            &mut vec![]
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn touched_fields_go_back_and_empty_ones_clear() {
        let s = revert_spec(&applied(
            UserAction::Update,
            serde_json::json!({"number": null, "vrp": "BE-National", "groups": ["g1"], "displayName": "Old"}),
        ), &mut vec![])
        .unwrap()
        .unwrap();
        assert_eq!(s.number, Field::Clear);
        assert_eq!(s.vrp, Field::Set("BE-National".into()));
        assert_eq!(s.groups, Field::Set(vec!["g1".into()]));
        assert_eq!(s.display_name, Field::Set("Old".into()));
        assert_eq!(s.licenses, Field::Keep);
    }

    #[test]
    fn a_location_that_cannot_be_cleared_is_reported() {
        let mut w = vec![];
        let s = revert_spec(
            &applied(
                UserAction::Update,
                serde_json::json!({"country": null, "vrp": null}),
            ),
            &mut w,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.country, Field::Keep);
        assert_eq!(w.len(), 1, "{w:?}");
    }

    /// A deleted resource account's before-state names its kind: the revert recreates it
    /// as that kind (it once failed on the unknown key).
    #[test]
    fn a_deleted_resource_account_comes_back_as_its_kind() {
        let s = revert_spec(
            &applied(
                UserAction::Delete,
                serde_json::json!({"displayName": "Q", "country": "BE", "number": "+3225405299",
                    "accountType": "call-queue", "customerLicenses": []}),
            ),
            &mut vec![],
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.account_type, Some(crate::model::AccountType::CallQueue));
        assert_eq!(s.display_name, Field::Set("Q".into()));
        assert_eq!(s.customer_licenses, Field::Set(vec![]));
    }

    #[test]
    fn malformed_before_state_is_an_error_not_a_panic() {
        let e = revert_spec(
            &applied(UserAction::Update, serde_json::json!({"number": 12})),
            &mut vec![],
        );
        assert!(e.is_err());
    }
}
