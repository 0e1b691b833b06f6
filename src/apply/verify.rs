//! Read-back verification: what the tenant must hold after a user's operations, and how
//! it differs from what it does hold.
//!
//! Why: an API that answers 200 has accepted a request, not necessarily applied it
//! (Teams provisioning is asynchronous, a policy may be silently refused). With
//! `verify` on, an item is only a success once a fresh read shows the values it set.
//! The same comparison checks a user that a create found already existing.

use crate::model::attr::{same_value, Kind};
use crate::model::{Attr, AttrValue, TenantUser};
use crate::plan::model::Operation;
use std::collections::BTreeMap;

/// The values a user's operations leave behind, by attribute (`None`: cleared); an
/// attribute the operations do not touch is absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Expect {
    pub values: BTreeMap<Attr, Option<AttrValue>>,
    pub deleted: bool,
}

impl Expect {
    pub(crate) fn from_ops<'a>(ops: impl IntoIterator<Item = &'a Operation>) -> Expect {
        let mut e = Expect::default();
        for op in ops {
            match op {
                Operation::Delete => e.deleted = true,
                Operation::Create { .. } | Operation::Set { .. } => {
                    if let Operation::Create { .. } = op {
                        e.deleted = false;
                    }
                    for c in op.changes() {
                        e.values.insert(c.attr, c.after.clone());
                    }
                }
            }
        }
        e
    }

    /// Differences as "field is X, expected Y", in table order. `need_details`: attributes
    /// the read did not return (groups and VRP, outside the single-user read) count as a
    /// difference (a verify read must return them); a lookup by UPN may not, and then they
    /// are skipped.
    pub(crate) fn mismatches(&self, u: &TenantUser, need_details: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut unread = Vec::new();
        for (&attr, want) in &self.values {
            let Some(have) = u.get(attr) else {
                // A resource account's detail the backend never shows: see `unverified`.
                if u.account_type.is_none() {
                    unread.push(attr.name());
                }
                continue;
            };
            if same_value(attr, have.as_ref(), want.as_ref()) {
                continue;
            }
            let name = attr.name();
            match attr.info().kind {
                Kind::List => out.push(format!(
                    "{name} are {}, expected {}",
                    list(have.as_ref()),
                    list(want.as_ref())
                )),
                _ => out.push(format!(
                    "{name} is {}, expected {}",
                    show(attr, have.as_ref()),
                    show(attr, want.as_ref())
                )),
            }
        }
        if need_details && !unread.is_empty() {
            out.push(format!(
                "the tenant returned no {} to compare",
                unread.join("/")
            ));
        }
        out
    }
}

/// A scalar for a message: text quoted (its spaces matter), `none` for no value.
impl Expect {
    /// What was sent to a resource account but the backend does not show back (Fusion's
    /// VRP): not compared, and said so in the item's note.
    pub(crate) fn unverified(&self, u: &TenantUser) -> Option<String> {
        // Only resource accounts have attributes their API never shows back.
        u.account_type.as_ref()?;
        let names: Vec<&str> = self
            .values
            .keys()
            .filter(|a| u.get(**a).is_none())
            .map(|a| a.name())
            .collect();
        (!names.is_empty()).then(|| {
            format!(
                "{} sent, not verified: the backend does not show it for resource accounts",
                names.join("/")
            )
        })
    }
}

fn show(attr: Attr, v: Option<&AttrValue>) -> String {
    match (attr.info().kind, v) {
        (_, None) => "none".into(),
        (Kind::Text | Kind::Digits { .. }, Some(v)) => format!("{:?}", v.to_string()),
        (_, Some(v)) => v.to_string(),
    }
}

fn list(v: Option<&AttrValue>) -> String {
    match v.and_then(AttrValue::as_list) {
        None | Some([]) => "none".into(),
        Some(l) => {
            let mut s = l.to_vec();
            s.sort();
            format!("[{}]", s.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Country, Upn, UserDetails, E164};

    fn number(n: &str) -> AttrValue {
        AttrValue::Number(E164::parse_canonical(n).unwrap())
    }
    fn list_of(v: &[&str]) -> AttrValue {
        AttrValue::List(v.iter().map(std::string::ToString::to_string).collect())
    }

    fn user() -> TenantUser {
        TenantUser {
            display_name: "A".into(),
            country: Some(Country::parse("BE").unwrap()),
            voice_enabled: true,
            number: Some(E164::parse_canonical("+3225405200").unwrap()),
            licenses: vec!["AAA".into(), "bbb".into()],
            details: Some(UserDetails {
                groups: vec!["g1".into()],
                vrp: Some("BE-National".into()),
            }),
            ..TenantUser::new("1".into(), Upn::parse("a@x.com").unwrap())
        }
    }

    #[test]
    fn last_op_wins_and_sets_ignore_order_and_case() {
        let e = Expect::from_ops(&[
            Operation::set(Attr::Number, None, None),
            Operation::set(Attr::Number, None, Some(number("+3225405200"))),
            Operation::set(Attr::Licenses, None, Some(list_of(&["BBB", "aaa"]))),
            Operation::set(Attr::Vrp, None, Some(AttrValue::Text("be-national".into()))),
            Operation::set(Attr::Groups, None, Some(list_of(&["g1"]))),
        ]);
        assert!(
            e.mismatches(&user(), true).is_empty(),
            "{:?}",
            e.mismatches(&user(), true)
        );
        assert_eq!(
            e.unverified(&user()),
            None,
            "a user, not a resource account"
        );
    }

    /// A resource account's VRP that the backend never shows is not a mismatch, and the
    /// item says it was not verified; a user's unread VRP stays a mismatch.
    #[test]
    fn what_a_resource_account_does_not_show_is_noted_not_failed() {
        let e = Expect::from_ops(&[
            Operation::set(Attr::Number, None, Some(number("+3225405200"))),
            Operation::set(Attr::Vrp, None, Some(AttrValue::Text("BE-National".into()))),
        ]);
        let mut ra = user();
        ra.details = None;
        assert_eq!(
            e.mismatches(&ra, true),
            ["the tenant returned no vrp to compare"]
        );
        ra.account_type = Some(crate::model::AccountType::CallQueue);
        assert!(e.mismatches(&ra, true).is_empty());
        assert_eq!(
            e.unverified(&ra).as_deref(),
            Some("vrp sent, not verified: the backend does not show it for resource accounts")
        );
    }

    #[test]
    fn differences_are_spelled_out() {
        let e = Expect::from_ops(&[
            Operation::set(Attr::Number, None, Some(number("+3225405201"))),
            Operation::set(Attr::Groups, None, Some(list_of(&[]))),
        ]);
        let m = e.mismatches(&user(), true);
        assert_eq!(
            m,
            vec![
                "number is +3225405200, expected +3225405201".to_string(),
                "groups are [g1], expected none".to_string()
            ]
        );
        let mut u = user();
        u.details = None;
        assert_eq!(e.mismatches(&u, false).len(), 1);
        assert_eq!(e.mismatches(&u, true).len(), 2);
    }
}
