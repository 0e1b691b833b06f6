//! What a backend is, in the terms the planner needs: what it can do, which attributes it
//! carries, and its rules on rows.
//!
//! Connectors hand out a [`Profile`] (a constant each); the planner reads it and nothing
//! else about the backend, so the planner never imports a connector and a backend's facts
//! ("customer licenses live in Fusion's draas object", "groups and VRP need Fusion's
//! single-user read", "PortSIP's extension cannot change") sit with that backend instead
//! of in the planner. With every rule in one value, the planner checks them all in one
//! pass and reports every problem of a sheet at once.

use super::attr::{Attr, AttrSet};
use super::UserSpec;

/// A row breaking one of a backend's own rules (PortSIP's account-name rules, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Sheet column name, as in diagnostics (`upn`, `extension`…).
    pub column: &'static str,
    pub message: String,
}

/// A backend's rules on a row that need no tenant data (names the vendor reserves,
/// characters it refuses).
pub type RowRules = fn(&UserSpec) -> Vec<RowProblem>;

fn no_row_rules(_: &UserSpec) -> Vec<RowProblem> {
    Vec::new()
}

/// What a backend can do and which rules its rows follow; shown by `teamsync backends`,
/// checked by the planner before anything is sent.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Backend name: fusion, liveplatform, ump, portsip.
    pub backend: &'static str,
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub delete: bool,
    pub resource_accounts: bool,
    /// Lists named number ranges (what `number = auto` allocates from).
    pub number_ranges: bool,
    /// Assigns only numbers of an inventory it cannot list (Fusion: its subscription's): a
    /// claimed number no user or account holds can only be checked when sent, and the plan
    /// says so.
    pub unlisted_inventory: bool,
    /// The attributes it carries: a sheet that sets any other is a plan error, not a
    /// silent drop.
    pub attrs: AttrSet,
    /// What a new user needs (from the row or its template).
    pub create_needs: AttrSet,
    /// Set when a user is created and never changed afterwards (PortSIP's extension):
    /// a row asking an existing user for another value is a plan error.
    pub create_only: AttrSet,
    /// Returned only by the single-user read, not by the list: rows that touch them get
    /// that read during the snapshot (Fusion: groups and VRP).
    pub detail_reads: AttrSet,
    /// Held only by users with a number (Fusion keeps customer licenses in the `draas`
    /// object that only a numbered user has): a user without a number has none, and one
    /// that ends without a number cannot be given any.
    pub need_number: AttrSet,
    /// Attributes a resource account can be given but the backend never shows back (Fusion's
    /// resource-account list has no VRP): a row's value is sent on every run, shown as not
    /// known before, and never compared or verified.
    pub unshown_on_accounts: AttrSet,
    /// The backend's own rules on a row.
    pub row_rules: RowRules,
}

impl Profile {
    /// A backend that can only read, carries nothing and has no rules; the constants of
    /// the connectors start from it and say what they add.
    pub const fn read_only(backend: &'static str) -> Profile {
        Profile {
            backend,
            read: true,
            write: false,
            create: false,
            delete: false,
            resource_accounts: false,
            number_ranges: false,
            unlisted_inventory: false,
            attrs: AttrSet::EMPTY,
            create_needs: AttrSet::EMPTY,
            create_only: AttrSet::EMPTY,
            detail_reads: AttrSet::EMPTY,
            need_number: AttrSet::EMPTY,
            unshown_on_accounts: AttrSet::EMPTY,
            row_rules: no_row_rules,
        }
    }

    /// A profile that refuses nothing a plan already holds: every capability and
    /// attribute, and creates needing only `create_needs`. Re-planning a saved plan for its
    /// drift report uses it, so the report names what changed in the tenant rather than
    /// rules the plan already passed.
    pub fn permissive(backend: &'static str, create_needs: AttrSet) -> Profile {
        Profile {
            backend,
            read: true,
            write: true,
            create: true,
            delete: true,
            resource_accounts: true,
            number_ranges: true,
            unlisted_inventory: false,
            attrs: AttrSet::ALL,
            create_needs,
            create_only: AttrSet::EMPTY,
            detail_reads: AttrSet::EMPTY,
            need_number: AttrSet::EMPTY,
            unshown_on_accounts: AttrSet::EMPTY,
            row_rules: no_row_rules,
        }
    }

    pub fn carries(&self, attr: Attr) -> bool {
        self.attrs.contains(attr)
    }

    /// The backend's own problems with a row.
    pub fn row_problems(&self, spec: &UserSpec) -> Vec<RowProblem> {
        (self.row_rules)(spec)
    }

    /// The capability matrix as `teamsync backends --output json` shows it: what the
    /// backend can do, and one key per attribute (snake_case) saying whether it carries it.
    pub fn capabilities_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for (k, v) in self.operations() {
            m.insert(k.into(), v.into());
        }
        for a in Attr::all() {
            m.insert(snake(a.name()), self.carries(a).into());
        }
        serde_json::Value::Object(m)
    }

    /// What the backend can do beyond carrying attributes, in display order.
    pub fn operations(&self) -> [(&'static str, bool); 6] {
        [
            ("read", self.read),
            ("write", self.write),
            ("create", self.create),
            ("delete", self.delete),
            ("resource_accounts", self.resource_accounts),
            ("number_ranges", self.number_ranges),
        ]
    }
}

/// `customerLicenses` → `customer_licenses`.
pub fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_json_has_operations_and_one_key_per_attribute() {
        const P: Profile = Profile {
            write: true,
            attrs: AttrSet::of(&[Attr::DisplayName, Attr::CustomerLicenses]),
            ..Profile::read_only("x")
        };
        let j = P.capabilities_json();
        assert_eq!(j["read"], true);
        assert_eq!(j["delete"], false);
        assert_eq!(j["customer_licenses"], true);
        assert_eq!(j["groups"], false);
        assert_eq!(j["display_name"], true);
        assert_eq!(
            j.as_object().unwrap().len(),
            6 + crate::model::attr::ATTRS.len()
        );
        assert!(P
            .row_problems(&UserSpec::new(crate::model::Upn::parse("a@b.com").unwrap()))
            .is_empty());
    }
}
