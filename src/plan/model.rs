//! The plan: what will change, per user, in order — the contract between the planner
//! (pure), the renderers, the saved-plan file and the executor.
//!
//! Like Terraform's plan it carries a fingerprint of the snapshot it was made against, so
//! `apply --plan` can refuse a tenant that drifted since.

use crate::model::attr::OpGroup;
use crate::model::{Attr, AttrSet, AttrValue, Country, JobKind, RowOrigin, Upn, UserSpec, E164};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One attribute's change, as Terraform's `Change` holds `Before` and `After`: a connector
/// that writes whole values takes `after`, one that needs deltas (add or remove a license
/// or a group member) takes both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrChange {
    pub attr: Attr,
    /// What the tenant held: `Some(None)` nothing, `None` not known (a mirror removal's
    /// VRP, which is never read, or an operation of a plan saved before operations
    /// carried it). Lists are full sets of ids.
    pub before: Option<Option<AttrValue>>,
    /// What it holds afterwards; `None` clears it (releases a number, removes the VRP).
    /// Lists are full sets of ids: an empty list removes every member.
    pub after: Option<AttrValue>,
}

impl AttrChange {
    /// The members a list change adds and removes (compared case-insensitively, as
    /// tenants compare ids); `None` when `before` is unknown or the attribute no list.
    pub fn delta(&self) -> Option<(Vec<&str>, Vec<&str>)> {
        fn list(v: &Option<AttrValue>) -> Option<&[String]> {
            match v {
                None => Some(&[]),
                Some(AttrValue::List(l)) => Some(l.as_slice()),
                Some(_) => None,
            }
        }
        let before = list(self.before.as_ref()?)?;
        let after = list(&self.after)?;
        let has = |l: &[String], x: &str| l.iter().any(|y| y.trim().eq_ignore_ascii_case(x.trim()));
        let added = after
            .iter()
            .map(String::as_str)
            .filter(|x| !has(before, x))
            .collect();
        let removed = before
            .iter()
            .map(String::as_str)
            .filter(|x| !has(after, x))
            .collect();
        Some((added, removed))
    }
}

/// One change to one user. An operation changes the attributes of one [`OpGroup`] (a
/// user's properties, its licenses, its number…), so operations keep the names and
/// granularity summaries count; which operations one request carries is each connector's
/// choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Creates the user with these values (the ones a create request carries: display
    /// name, and country or extension where the backend has them). Their `before` is
    /// `Some(None)`.
    Create {
        changes: Vec<AttrChange>,
    },
    /// Changes attributes of one group of an existing user.
    Set {
        changes: Vec<AttrChange>,
    },
    Delete,
}

impl Operation {
    /// A change of one attribute.
    pub fn set(
        attr: Attr,
        before: Option<Option<AttrValue>>,
        after: Option<AttrValue>,
    ) -> Operation {
        Operation::Set {
            changes: vec![AttrChange {
                attr,
                before,
                after,
            }],
        }
    }

    /// A create with these values.
    pub fn create(values: impl IntoIterator<Item = (Attr, AttrValue)>) -> Operation {
        let mut changes: Vec<AttrChange> = values
            .into_iter()
            .map(|(attr, v)| AttrChange {
                attr,
                before: Some(None),
                after: Some(v),
            })
            .collect();
        changes.sort_by_key(|c| c.attr);
        Operation::Create { changes }
    }

    /// Shorthands for operations built outside the planner (hand-written plans, tests),
    /// one per operation kind, with `before` unknown; the planner records `before` itself.
    pub fn set_properties(display_name: Option<String>, country: Option<Country>) -> Operation {
        let changes = [
            (Attr::DisplayName, display_name.map(AttrValue::Text)),
            (Attr::Country, country.map(AttrValue::Country)),
        ]
        .into_iter()
        .filter_map(|(attr, v)| {
            v.map(|v| AttrChange {
                attr,
                before: None,
                after: Some(v),
            })
        })
        .collect();
        Operation::Set { changes }
    }
    pub fn set_licenses(sku_ids: Vec<String>) -> Operation {
        Operation::set(Attr::Licenses, None, Some(AttrValue::List(sku_ids)))
    }
    pub fn set_number(number: Option<E164>) -> Operation {
        Operation::set(Attr::Number, None, number.map(AttrValue::Number))
    }
    pub fn set_vrp(vrp: Option<String>) -> Operation {
        Operation::set(Attr::Vrp, None, vrp.map(AttrValue::Text))
    }
    pub fn set_groups(group_ids: Vec<String>) -> Operation {
        Operation::set(Attr::Groups, None, Some(AttrValue::List(group_ids)))
    }
    pub fn set_customer_licenses(skus: Vec<String>) -> Operation {
        Operation::set(Attr::CustomerLicenses, None, Some(AttrValue::List(skus)))
    }
    /// A create with a display name and, where the backend has one, a country.
    pub fn create_user(display_name: String, country: Option<Country>) -> Operation {
        let mut values = vec![(Attr::DisplayName, AttrValue::Text(display_name))];
        values.extend(country.map(|c| (Attr::Country, AttrValue::Country(c))));
        Operation::create(values)
    }

    /// Stable name used in summaries and JSON counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Create { .. } => "create",
            Operation::Delete => "delete",
            Operation::Set { .. } => self.group().map_or("set", OpGroup::kind),
        }
    }

    /// The group a `Set` changes (of its first attribute: the planner never mixes groups).
    pub fn group(&self) -> Option<OpGroup> {
        match self {
            Operation::Set { changes } => changes.first().map(|c| c.attr.info().group),
            _ => None,
        }
    }

    /// The attribute changes (none for a delete).
    pub fn changes(&self) -> &[AttrChange] {
        match self {
            Operation::Create { changes } | Operation::Set { changes } => changes,
            Operation::Delete => &[],
        }
    }

    pub fn attrs(&self) -> AttrSet {
        self.changes().iter().map(|c| c.attr).collect()
    }

    pub fn change(&self, attr: Attr) -> Option<&AttrChange> {
        self.changes().iter().find(|c| c.attr == attr)
    }

    /// What the operation sets `attr` to (`Some(None)`: clears it), if it touches it.
    pub fn sets(&self, attr: Attr) -> Option<&Option<AttrValue>> {
        self.change(attr).map(|c| &c.after)
    }

    /// The text an operation sets `attr` to, when it sets one.
    pub fn sets_text(&self, attr: Attr) -> Option<&str> {
        self.sets(attr)?.as_ref()?.as_text()
    }

    /// The number this operation claims, if it gives the user one.
    pub fn claims_number(&self) -> Option<&E164> {
        match self {
            Operation::Set { .. } => self.sets(Attr::Number)?.as_ref()?.as_number(),
            _ => None,
        }
    }

    /// True for an operation that releases the user's number (and claims none).
    pub fn releases_number(&self) -> bool {
        matches!(self.sets(Attr::Number), Some(None))
    }

    /// The operation as its JSON object: `op`, then `set` (attribute → new value, `null`
    /// clears) and `before` (attribute → the tenant's value; unknown ones left out).
    fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("op".into(), Value::String(self.kind().into()));
        let changes = self.changes();
        if !changes.is_empty() {
            let set: Map<String, Value> = changes
                .iter()
                .map(|c| (c.attr.name().into(), json_of(&c.after)))
                .collect();
            m.insert("set".into(), Value::Object(set));
        }
        let before: Map<String, Value> = changes
            .iter()
            .filter(|_| !matches!(self, Operation::Create { .. }))
            .filter_map(|c| Some((c.attr.name().to_string(), json_of(c.before.as_ref()?))))
            .collect();
        if !before.is_empty() {
            m.insert("before".into(), Value::Object(before));
        }
        m
    }

    /// Reads [`Operation::to_json`]'s shape, and the shape plans and job histories held
    /// before operations carried attributes (`{"op": "set_number", "number": …}`), which
    /// becomes the same operation with `before` unknown.
    fn from_json(m: &Map<String, Value>) -> Result<Operation, String> {
        let kind = m
            .get("op")
            .and_then(Value::as_str)
            .ok_or("an operation needs an \"op\"")?;
        if kind == "delete" {
            return Ok(Operation::Delete);
        }
        if m.contains_key("set") {
            return Operation::from_current(kind, m);
        }
        legacy_operation(kind, m)
    }

    fn from_current(kind: &str, m: &Map<String, Value>) -> Result<Operation, String> {
        let obj = |key: &str| -> Result<Map<String, Value>, String> {
            match m.get(key) {
                None => Ok(Map::new()),
                Some(Value::Object(o)) => Ok(o.clone()),
                Some(other) => Err(format!("{kind}: \"{key}\" must be an object, not {other}")),
            }
        };
        let (set, before) = (obj("set")?, obj("before")?);
        let mut changes = Vec::with_capacity(set.len());
        for (name, v) in &set {
            let attr = Attr::from_name(name)
                .ok_or_else(|| format!("{kind}: unknown attribute {name:?}"))?;
            let b = match before.get(name) {
                None => None,
                Some(b) => Some(value_of(attr, b)?),
            };
            changes.push(AttrChange {
                attr,
                before: b,
                after: value_of(attr, v)?,
            });
        }
        changes.sort_by_key(|c| c.attr);
        let op = match kind {
            "create" => {
                for c in &mut changes {
                    c.before = Some(None);
                }
                Operation::Create { changes }
            }
            _ => Operation::Set { changes },
        };
        if let Operation::Set { changes } = &op {
            if changes.is_empty()
                || op.kind() != kind
                || changes
                    .iter()
                    .any(|c| Some(c.attr.info().group) != op.group())
            {
                return Err(format!(
                    "operation {kind:?} does not match the attributes it sets ({})",
                    changes
                        .iter()
                        .map(|c| c.attr.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(op)
    }
}

fn json_of(v: &Option<AttrValue>) -> Value {
    v.as_ref().map_or(Value::Null, AttrValue::to_json)
}

fn value_of(attr: Attr, v: &Value) -> Result<Option<AttrValue>, String> {
    match v {
        Value::Null => Ok(None),
        v => AttrValue::from_json(attr, v).map(Some),
    }
}

/// An operation as format-1 plans and older job histories stored it: one variant per
/// operation kind with its own keys.
fn legacy_operation(kind: &str, m: &Map<String, Value>) -> Result<Operation, String> {
    let field = |key: &str, attr: Attr| -> Result<Option<AttrValue>, String> {
        value_of(attr, m.get(key).unwrap_or(&Value::Null))
    };
    let one = |key: &str, attr: Attr| -> Result<Operation, String> {
        if !m.contains_key(key) {
            return Err(format!("{kind}: missing \"{key}\""));
        }
        Ok(Operation::set(attr, None, field(key, attr)?))
    };
    match kind {
        "create" => {
            let mut values = vec![];
            for (key, attr) in [
                ("display_name", Attr::DisplayName),
                ("country", Attr::Country),
                ("customer_licenses", Attr::CustomerLicenses),
            ] {
                match field(key, attr)? {
                    Some(AttrValue::List(l)) if l.is_empty() => {}
                    Some(v) => values.push((attr, v)),
                    None => {}
                }
            }
            if !values.iter().any(|(a, _)| *a == Attr::DisplayName) {
                return Err("create: missing \"display_name\"".into());
            }
            Ok(Operation::create(values))
        }
        "set_properties" => {
            let mut changes = vec![];
            for (key, attr) in [
                ("display_name", Attr::DisplayName),
                ("country", Attr::Country),
            ] {
                if let Some(v) = field(key, attr)? {
                    changes.push(AttrChange {
                        attr,
                        before: None,
                        after: Some(v),
                    });
                }
            }
            if changes.is_empty() {
                return Err("set_properties: sets nothing".into());
            }
            Ok(Operation::Set { changes })
        }
        "set_licenses" => one("sku_ids", Attr::Licenses),
        "set_number" => one("number", Attr::Number),
        "set_vrp" => one("vrp", Attr::Vrp),
        "set_groups" => one("group_ids", Attr::Groups),
        "set_customer_licenses" => one("skus", Attr::CustomerLicenses),
        other => Err(format!("unknown operation {other:?}")),
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Map::<String, Value>::deserialize(d)?;
        Operation::from_json(&m).map_err(serde::de::Error::custom)
    }
}

/// "Wait until operation `index` of `upn` has succeeded": how a number released by one
/// user is claimed by another only after the release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpRef {
    pub upn: Upn,
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOp {
    #[serde(flatten)]
    pub op: Operation,
    /// Operations of other users that must have succeeded first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<OpRef>,
    /// Some other user's operation waits for this one (it frees a number they claim).
    /// A connector must not merge such an op with later ops of the same user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaited: bool,
}

/// What happens to a user overall; carries its own symbol as Terraform's Action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserAction {
    Create,
    Update,
    Disable,
    Delete,
    Unchanged,
}

impl UserAction {
    pub fn symbol(&self) -> char {
        match self {
            UserAction::Create => '+',
            UserAction::Update => '~',
            UserAction::Disable | UserAction::Delete => '-',
            UserAction::Unchanged => ' ',
        }
    }
}

/// A field's old and new value for display and for the history's `changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Sheet column name: displayName, country, number, vrp, groups, licenses, customerLicenses.
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
    /// For list fields: members added / removed (display names where known).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserPlan {
    pub upn: Upn,
    /// Backend id; `None` until created.
    pub user_id: Option<String>,
    pub action: UserAction,
    /// The desired row (after templates). For users only a mirror run touches, the
    /// synthesised disable row.
    pub desired: UserSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<RowOrigin>,
    pub changes: Vec<FieldChange>,
    pub ops: Vec<PlannedOp>,
    /// The tenant's values of the touched fields before the change (for revert).
    #[serde(default)]
    pub before: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Upsert,
    Mirror,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Saved-plan format version.
    pub format: u32,
    pub tenant: String,
    pub backend: String,
    pub mode: Mode,
    pub kind: JobKind,
    /// Sheet paths as given.
    pub sources: Vec<String>,
    /// SHA-256 of the sheets' bytes, in order.
    pub source_sha256: String,
    pub created_on: String,
    /// Hash of the parts of the snapshot the plan depends on; see `plan::fingerprint`.
    pub snapshot_fingerprint: String,
    pub snapshot_requests: u64,
    pub users: Vec<UserPlan>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// How the snapshot got users' details, when the run chose (`crate::refresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<crate::refresh::RefreshReport>,
}

/// Saved-plan format: 2 since operations carry their attributes' before and after values.
/// Format 1 files still load (see [`Operation`]'s reading of the older shape).
pub const PLAN_FORMAT: u32 = 2;

/// The oldest saved-plan format this build reads.
pub const PLAN_FORMAT_MIN: u32 = 1;
