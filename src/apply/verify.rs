//! Read-back verification: what the tenant must hold after a user's operations, and how
//! it differs from what it does hold.
//!
//! Why: an API that answers 200 has accepted a request, not necessarily applied it
//! (Teams provisioning is asynchronous, a policy may be silently refused). With
//! `verify` on, an item is only a success once a fresh read shows the values it set.
//! The same comparison checks a user that a create found already existing.

use crate::model::{Country, TenantUser, E164};
use crate::plan::model::Operation;

/// The values a user's operations leave behind; `None` = not touched.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Expect {
    pub display_name: Option<String>,
    pub country: Option<Country>,
    pub licenses: Option<Vec<String>>,
    pub number: Option<Option<E164>>,
    pub vrp: Option<Option<String>>,
    pub groups: Option<Vec<String>>,
    pub customer_licenses: Option<Vec<String>>,
    pub deleted: bool,
}

impl Expect {
    pub(crate) fn from_ops<'a>(ops: impl IntoIterator<Item = &'a Operation>) -> Expect {
        let mut e = Expect::default();
        for op in ops {
            match op {
                Operation::Create {
                    display_name,
                    country,
                    customer_licenses,
                } => {
                    e.display_name = Some(display_name.clone());
                    e.country = country.clone();
                    if !customer_licenses.is_empty() {
                        e.customer_licenses = Some(customer_licenses.clone());
                    }
                    e.deleted = false;
                }
                Operation::SetProperties {
                    display_name,
                    country,
                } => {
                    if let Some(d) = display_name {
                        e.display_name = Some(d.clone());
                    }
                    if let Some(c) = country {
                        e.country = Some(c.clone());
                    }
                }
                Operation::SetLicenses { sku_ids } => e.licenses = Some(sku_ids.clone()),
                Operation::SetNumber { number } => e.number = Some(number.clone()),
                Operation::SetVrp { vrp } => e.vrp = Some(vrp.clone()),
                Operation::SetGroups { group_ids } => e.groups = Some(group_ids.clone()),
                Operation::SetCustomerLicenses { skus } => e.customer_licenses = Some(skus.clone()),
                Operation::Delete => e.deleted = true,
            }
        }
        e
    }

    /// Differences as "field is X, expected Y". `need_details`: groups and VRP that the
    /// read did not return count as a difference (a verify read must return them); a
    /// lookup by UPN may not, and then they are skipped.
    pub(crate) fn mismatches(&self, u: &TenantUser, need_details: bool) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(d) = &self.display_name {
            if &u.display_name != d {
                out.push(format!(
                    "displayName is {:?}, expected {d:?}",
                    u.display_name
                ));
            }
        }
        if let Some(c) = &self.country {
            if u.country.as_ref() != Some(c) {
                out.push(format!("country is {}, expected {c}", show(&u.country)));
            }
        }
        if let Some(n) = &self.number {
            if &u.number != n {
                out.push(format!(
                    "number is {}, expected {}",
                    show(&u.number),
                    show(n)
                ));
            }
        }
        if let Some(l) = &self.licenses {
            if !same_set(&u.licenses, l) {
                out.push(format!(
                    "licenses are {}, expected {}",
                    list(&u.licenses),
                    list(l)
                ));
            }
        }
        if let Some(l) = &self.customer_licenses {
            if !same_set(&u.customer_licenses, l) {
                out.push(format!(
                    "customerLicenses are {}, expected {}",
                    list(&u.customer_licenses),
                    list(l)
                ));
            }
        }
        match &u.details {
            Some(det) => {
                if let Some(v) = &self.vrp {
                    let same = match (&det.vrp, v) {
                        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                        (None, None) => true,
                        _ => false,
                    };
                    if !same {
                        out.push(format!("vrp is {}, expected {}", show(&det.vrp), show(v)));
                    }
                }
                if let Some(g) = &self.groups {
                    if !same_set(&det.groups, g) {
                        out.push(format!(
                            "groups are {}, expected {}",
                            list(&det.groups),
                            list(g)
                        ));
                    }
                }
            }
            None if need_details && (self.vrp.is_some() || self.groups.is_some()) => {
                out.push("the tenant returned no groups/VRP to compare".into());
            }
            None => {}
        }
        out
    }
}

fn show<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "none".into())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        let mut s = v.to_vec();
        s.sort();
        format!("[{}]", s.join(", "))
    }
}

/// Sets compared case-insensitively (GUIDs come back in either case).
fn same_set(a: &[String], b: &[String]) -> bool {
    let norm = |v: &[String]| {
        let mut s: Vec<String> = v.iter().map(|x| x.to_ascii_lowercase()).collect();
        s.sort();
        s.dedup();
        s
    };
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Upn, UserDetails};

    fn user() -> TenantUser {
        TenantUser {
            id: "1".into(),
            upn: Upn::parse("a@x.com").unwrap(),
            display_name: "A".into(),
            country: Some(Country::parse("BE").unwrap()),
            voice_enabled: true,
            number: Some(E164::parse_canonical("+3225405200").unwrap()),
            licenses: vec!["AAA".into(), "bbb".into()],
            customer_licenses: vec![],
            details: Some(UserDetails {
                groups: vec!["g1".into()],
                vrp: Some("BE-National".into()),
            }),
            account_type: None,
            extension: None,
        }
    }

    #[test]
    fn last_op_wins_and_sets_ignore_order_and_case() {
        let e = Expect::from_ops(&[
            Operation::SetNumber { number: None },
            Operation::SetNumber {
                number: Some(E164::parse_canonical("+3225405200").unwrap()),
            },
            Operation::SetLicenses {
                sku_ids: vec!["BBB".into(), "aaa".into()],
            },
            Operation::SetVrp {
                vrp: Some("be-national".into()),
            },
            Operation::SetGroups {
                group_ids: vec!["g1".into()],
            },
        ]);
        assert!(
            e.mismatches(&user(), true).is_empty(),
            "{:?}",
            e.mismatches(&user(), true)
        );
    }

    #[test]
    fn differences_are_spelled_out() {
        let e = Expect::from_ops(&[
            Operation::SetNumber {
                number: Some(E164::parse_canonical("+3225405201").unwrap()),
            },
            Operation::SetGroups { group_ids: vec![] },
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
