//! Revert: desired rows that put a job's successful items back as they were.
//!
//! The history keeps, for every item, the tenant's values of the fields the job touched
//! (`UserPlan::before`, in sheet terms: ids for groups and licenses). Reverting is then just
//! another sheet: each touched field set back to its old value (or cleared where it was
//! empty), users the job created deleted, planned against the tenant as it is now — so the
//! usual plan, drift check and apply path do the work, and the revert is reviewable.

use crate::model::{Country, Field, RowAction, Upn, UserSpec, E164};
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
    let text = |field: &str, v: &Value| -> Result<Option<String>, RevertError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(err(field, format!("expected text, found {other}"))),
        }
    };
    let list = |field: &str, v: &Value| -> Result<Vec<String>, RevertError> {
        match v {
            Value::Null => Ok(vec![]),
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| err(field, format!("expected text in list, found {x}")))
                })
                .collect(),
            other => Err(err(field, format!("expected a list, found {other}"))),
        }
    };
    for (field, v) in &applied.before {
        match field.as_str() {
            "displayName" => {
                if let Some(s) = text(field, v)? {
                    spec.display_name = Field::Set(s);
                }
            }
            "country" => match text(field, v)? {
                Some(s) => spec.country = Field::Set(Country::parse(&s).map_err(|m| err(field, m))?),
                // A usage location cannot be removed through the API: say so instead of
                // pretending the revert is complete.
                None => warnings.push(format!(
                    "{}: the job set a usage location where there was none; it cannot be removed and stays",
                    applied.upn
                )),
            },
            "number" => {
                spec.number = match text(field, v)? {
                    Some(s) => Field::Set(E164::parse_canonical(&s).map_err(|m| err(field, m))?),
                    None => Field::Clear,
                }
            }
            "vrp" => {
                spec.vrp = match text(field, v)? {
                    Some(s) => Field::Set(s),
                    None => Field::Clear,
                }
            }
            "groups" => spec.groups = Field::Set(list(field, v)?),
            "licenses" => spec.licenses = Field::Set(list(field, v)?),
            "customerLicenses" => spec.customer_licenses = Field::Set(list(field, v)?),
            other => {
                return Err(err(
                    other,
                    "unknown field in the stored before-state".into(),
                ))
            }
        }
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

    #[test]
    fn malformed_before_state_is_an_error_not_a_panic() {
        let e = revert_spec(
            &applied(UserAction::Update, serde_json::json!({"number": 12})),
            &mut vec![],
        );
        assert!(e.is_err());
    }
}
