//! The user attributes, in one table that every stage derives its lists and checks from.
//!
//! Before this table, the sheet header, the templates, the planner, the capability flags,
//! the report columns and the tenant export each listed the fields by hand with string
//! names, and a new column (`extension`) had to be added to every list, and was missed in
//! some (the retry sheet dropped it). Now a column is one [`ATTRS`] row, one field of
//! [`UserSpec`] and [`TenantUser`] with its arms in the accessors below, and the backends
//! that carry it. Everything else reads the table:
//!
//! - the sheet header's names and aliases, and how a cell parses ([`Kind`], `clearable`);
//! - which template keys exist (`template`);
//! - which operation carries a change and in which order ([`OpGroup`]), how values
//!   compare (`case_insensitive`), which catalog names resolve against (`catalog`), what
//!   a `disable` row releases (`disable_clears`), what resource accounts may hold;
//! - the report, retry-sheet and tenant-export columns (`common`).
//!
//! What a *backend* does with an attribute (carries it, needs it to create, reads it only
//! in the single-user read) is not here but in its [`Profile`](super::profile::Profile).
//!
//! The control columns of a sheet (`upn`, `template`, `action`, `accountType`) are not
//! attributes: they say which user and how, not what it holds.

use super::{Country, Field, TenantUser, UserDetails, UserSpec, E164};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A user attribute: something a sheet column sets, a plan changes and a tenant holds.
/// The discriminant is the attribute's row in [`ATTRS`] (checked by a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    DisplayName,
    Number,
    Country,
    Vrp,
    Groups,
    Licenses,
    CustomerLicenses,
    Extension,
}

/// How values of an attribute are written in a cell and held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text, trimmed.
    Text,
    /// ASCII digits, `min..=max` of them (kept as text: leading zeros matter).
    Digits { min: usize, max: usize },
    /// ISO 3166-1 alpha-2.
    Country,
    /// An E.164 number.
    Number,
    /// `;`-separated names, compared as a set.
    List,
}

/// The plan operation that carries a change of an attribute. Attributes of one group change
/// together in one operation (a user's properties); operations of a user run in the order
/// of the groups, so a license that a number needs is assigned before the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpGroup {
    Properties,
    Licenses,
    Number,
    Vrp,
    Groups,
    CustomerLicenses,
}

impl OpGroup {
    /// How a change of the group is named in messages ("waits for bob's … change").
    pub fn change_noun(self) -> &'static str {
        match self {
            OpGroup::Properties => "properties change",
            OpGroup::Licenses => "licenses change",
            OpGroup::Number => "number change",
            OpGroup::Vrp => "VRP change",
            OpGroup::Groups => "groups change",
            OpGroup::CustomerLicenses => "customer licenses change",
        }
    }

    /// The operation's stable name, as plan JSON and summaries show it.
    pub fn kind(self) -> &'static str {
        match self {
            OpGroup::Properties => "set_properties",
            OpGroup::Licenses => "set_licenses",
            OpGroup::Number => "set_number",
            OpGroup::Vrp => "set_vrp",
            OpGroup::Groups => "set_groups",
            OpGroup::CustomerLicenses => "set_customer_licenses",
        }
    }

    /// Every group, in operation order.
    pub const ALL: [OpGroup; 6] = [
        OpGroup::Properties,
        OpGroup::Licenses,
        OpGroup::Number,
        OpGroup::Vrp,
        OpGroup::Groups,
        OpGroup::CustomerLicenses,
    ];

    pub fn from_kind(kind: &str) -> Option<OpGroup> {
        OpGroup::ALL.into_iter().find(|g| g.kind() == kind)
    }
}

/// The tenant catalog whose entries a sheet's names resolve against (names → ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catalog {
    Groups,
    Licenses,
    Vrps,
}

impl Catalog {
    /// What one entry is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Catalog::Groups => "group",
            Catalog::Licenses => "license",
            Catalog::Vrps => "voice routing policy",
        }
    }
}

/// One row of the table.
#[derive(Debug)]
pub struct AttrInfo {
    pub attr: Attr,
    /// Canonical name: the sheet column our exports write, the JSON key of stored rows,
    /// plans and history, and the template key.
    pub name: &'static str,
    /// What a person calls it in a sentence ("the job set a usage location").
    pub noun: &'static str,
    /// Other header spellings, folded (lowercase, no spaces); the canonical name is
    /// always accepted too.
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    /// A cell may hold `-` to clear it (number: release; vrp: none; lists: empty).
    pub clearable: bool,
    /// A template may give a default.
    pub template: bool,
    /// [`TenantUser`] keeps it in `details`: a snapshot may not have read it.
    pub in_details: bool,
    pub group: OpGroup,
    /// Names resolve against this catalog before they are compared.
    pub catalog: Option<Catalog>,
    /// Values compare case-insensitively (identities and names the tenant matches so).
    pub case_insensitive: bool,
    /// A `disable` row releases it.
    pub disable_clears: bool,
    /// Resource accounts may hold it where the backend carries it: they have no groups, and
    /// the tenant assigns their license, so a resource-account sheet refuses those columns
    /// whatever the backend.
    pub resource_accounts: bool,
    /// Every Teams user has it: report and export sheets always have its column (left empty
    /// where a backend lacks it). Backend-specific attributes (a PBX extension) get a column
    /// only where the backend carries them.
    pub common: bool,
}

/// The attributes, in sheet order (the order exports write columns in).
pub const ATTRS: &[AttrInfo] = &[
    AttrInfo {
        attr: Attr::DisplayName,
        name: "displayName",
        noun: "a display name",
        aliases: &["name"],
        kind: Kind::Text,
        clearable: false,
        template: false,
        in_details: false,
        group: OpGroup::Properties,
        catalog: None,
        case_insensitive: false,
        disable_clears: false,
        resource_accounts: true,
        common: true,
    },
    AttrInfo {
        attr: Attr::Number,
        name: "number",
        noun: "a number",
        aliases: &["phonenumber", "lineuri", "phone"],
        kind: Kind::Number,
        clearable: true,
        template: false,
        in_details: false,
        group: OpGroup::Number,
        catalog: None,
        case_insensitive: false,
        disable_clears: true,
        resource_accounts: true,
        common: true,
    },
    AttrInfo {
        attr: Attr::Country,
        name: "country",
        noun: "a usage location",
        aliases: &["location", "usagelocation"],
        kind: Kind::Country,
        clearable: false,
        template: true,
        in_details: false,
        group: OpGroup::Properties,
        catalog: None,
        case_insensitive: false,
        disable_clears: false,
        resource_accounts: true,
        common: true,
    },
    AttrInfo {
        attr: Attr::Vrp,
        name: "vrp",
        noun: "a voice routing policy",
        aliases: &["voiceroutingpolicy", "onlinevoiceroutingpolicy"],
        kind: Kind::Text,
        clearable: true,
        template: true,
        in_details: true,
        group: OpGroup::Vrp,
        catalog: Some(Catalog::Vrps),
        case_insensitive: true,
        disable_clears: true,
        resource_accounts: true,
        common: true,
    },
    AttrInfo {
        attr: Attr::Groups,
        name: "groups",
        noun: "groups",
        aliases: &[],
        kind: Kind::List,
        clearable: true,
        template: true,
        in_details: true,
        group: OpGroup::Groups,
        catalog: Some(Catalog::Groups),
        case_insensitive: true,
        disable_clears: false,
        resource_accounts: false,
        common: true,
    },
    AttrInfo {
        attr: Attr::Licenses,
        name: "licenses",
        noun: "licenses",
        aliases: &[],
        kind: Kind::List,
        clearable: true,
        template: true,
        in_details: false,
        group: OpGroup::Licenses,
        catalog: Some(Catalog::Licenses),
        case_insensitive: true,
        disable_clears: false,
        resource_accounts: false,
        common: true,
    },
    AttrInfo {
        attr: Attr::CustomerLicenses,
        name: "customerLicenses",
        noun: "customer licenses",
        aliases: &[],
        kind: Kind::List,
        clearable: true,
        template: true,
        in_details: false,
        group: OpGroup::CustomerLicenses,
        catalog: None,
        case_insensitive: true,
        disable_clears: false,
        resource_accounts: true,
        common: true,
    },
    AttrInfo {
        attr: Attr::Extension,
        name: "extension",
        noun: "an extension number",
        aliases: &["extensionnumber"],
        kind: Kind::Digits { min: 3, max: 64 },
        clearable: false,
        template: false,
        in_details: false,
        group: OpGroup::Properties,
        catalog: None,
        case_insensitive: false,
        disable_clears: false,
        resource_accounts: true,
        common: false,
    },
];

impl Attr {
    /// Every attribute, in table (sheet) order.
    pub fn all() -> impl Iterator<Item = Attr> {
        ATTRS.iter().map(|i| i.attr)
    }

    /// The attribute's row. Indexing by discriminant is safe: a test checks that every
    /// variant sits at its own index.
    pub fn info(self) -> &'static AttrInfo {
        &ATTRS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The attribute a canonical name (a JSON key) stands for.
    pub fn from_name(name: &str) -> Option<Attr> {
        ATTRS.iter().find(|i| i.name == name).map(|i| i.attr)
    }

    /// The canonical names of the attributes a predicate selects, as a sentence list
    /// (`a, b and c`), for messages.
    pub fn names_where(pred: impl Fn(&AttrInfo) -> bool) -> String {
        let names: Vec<&str> = ATTRS.iter().filter(|i| pred(i)).map(|i| i.name).collect();
        match names.split_last() {
            None => String::new(),
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl Serialize for Attr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Attr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Attr::from_name(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown attribute {s:?}")))
    }
}

/// A set of attributes, small enough to copy and to build in `const` items (backend
/// profiles are constants).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AttrSet(u32);

impl AttrSet {
    pub const EMPTY: AttrSet = AttrSet(0);

    /// Every attribute of the table.
    pub const ALL: AttrSet = AttrSet((1u32 << ATTRS.len()) - 1);

    pub const fn of(attrs: &[Attr]) -> AttrSet {
        let mut bits = 0u32;
        let mut i = 0;
        while i < attrs.len() {
            bits |= 1 << attrs[i] as u32;
            i += 1;
        }
        AttrSet(bits)
    }

    pub const fn contains(self, a: Attr) -> bool {
        self.0 & (1 << a as u32) != 0
    }

    pub const fn with(self, a: Attr) -> AttrSet {
        AttrSet(self.0 | 1 << a as u32)
    }

    pub const fn without(self, a: Attr) -> AttrSet {
        AttrSet(self.0 & !(1 << a as u32))
    }

    pub const fn union(self, other: AttrSet) -> AttrSet {
        AttrSet(self.0 | other.0)
    }

    pub const fn intersects(self, other: AttrSet) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every attribute of `self` is in `other`.
    pub const fn is_subset(self, other: AttrSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The members, in table order.
    pub fn iter(self) -> impl Iterator<Item = Attr> {
        Attr::all().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Attr> for AttrSet {
    fn from_iter<I: IntoIterator<Item = Attr>>(iter: I) -> AttrSet {
        iter.into_iter().fold(AttrSet::EMPTY, AttrSet::with)
    }
}

impl fmt::Debug for AttrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Attr::name)).finish()
    }
}

/// One attribute's value, of the attribute's [`Kind`] (digits are text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Text(String),
    Country(Country),
    Number(E164),
    List(Vec<String>),
}

impl AttrValue {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            AttrValue::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_country(&self) -> Option<&Country> {
        match self {
            AttrValue::Country(c) => Some(c),
            _ => None,
        }
    }
    pub fn as_number(&self) -> Option<&E164> {
        match self {
            AttrValue::Number(n) => Some(n),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            AttrValue::List(l) => Some(l),
            _ => None,
        }
    }

    /// The value as JSON, in the shape stored rows use (text, or an array of text).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttrValue::Text(s) => serde_json::Value::String(s.clone()),
            AttrValue::Country(c) => serde_json::Value::String(c.to_string()),
            AttrValue::Number(n) => serde_json::Value::String(n.to_string()),
            AttrValue::List(l) => serde_json::json!(l),
        }
    }

    /// Reads the JSON shape of [`AttrValue::to_json`] as a value of `attr`'s kind.
    pub fn from_json(attr: Attr, v: &serde_json::Value) -> Result<AttrValue, String> {
        let text = || {
            v.as_str()
                .ok_or_else(|| format!("{attr}: expected text, found {v}"))
        };
        match attr.info().kind {
            Kind::Text | Kind::Digits { .. } => Ok(AttrValue::Text(text()?.to_string())),
            Kind::Country => Country::parse(text()?)
                .map(AttrValue::Country)
                .map_err(|e| format!("{attr}: {e}")),
            Kind::Number => E164::parse_canonical(text()?)
                .map(AttrValue::Number)
                .map_err(|e| format!("{attr}: {e}")),
            Kind::List => match v {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("{attr}: expected text in list, found {x}"))
                    })
                    .collect::<Result<_, _>>()
                    .map(AttrValue::List),
                other => Err(format!("{attr}: expected a list, found {other}")),
            },
        }
    }

    /// True when the value fits the attribute's kind.
    pub fn fits(&self, attr: Attr) -> bool {
        matches!(
            (attr.info().kind, self),
            (Kind::Text | Kind::Digits { .. }, AttrValue::Text(_))
                | (Kind::Country, AttrValue::Country(_))
                | (Kind::Number, AttrValue::Number(_))
                | (Kind::List, AttrValue::List(_))
        )
    }

    /// The form compared when planning and verifying: trimmed; lowercase where the
    /// attribute compares case-insensitively; lists as a sorted set.
    pub fn normalised(&self, attr: Attr) -> AttrValue {
        let ci = attr.info().case_insensitive;
        let fold = |s: &str| {
            if ci {
                s.trim().to_lowercase()
            } else {
                s.trim().to_string()
            }
        };
        match self {
            AttrValue::Text(s) => AttrValue::Text(fold(s)),
            AttrValue::List(l) => {
                let set: std::collections::BTreeSet<String> = l.iter().map(|s| fold(s)).collect();
                AttrValue::List(set.into_iter().collect())
            }
            other => other.clone(),
        }
    }
}

impl fmt::Display for AttrValue {
    /// As a sheet cell writes it: lists `;`-joined.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Text(s) => f.write_str(s),
            AttrValue::Country(c) => write!(f, "{c}"),
            AttrValue::Number(n) => write!(f, "{n}"),
            AttrValue::List(l) => f.write_str(&l.join(";")),
        }
    }
}

impl Serialize for AttrValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// "No value" for an attribute: an empty list for lists, `None` otherwise.
pub fn none_of(attr: Attr) -> Option<AttrValue> {
    match attr.info().kind {
        Kind::List => Some(AttrValue::List(Vec::new())),
        _ => None,
    }
}

/// True for "no value": `None` or an empty list.
pub fn is_none_value(v: Option<&AttrValue>) -> bool {
    match v {
        None => true,
        Some(AttrValue::List(l)) => l.is_empty(),
        Some(_) => false,
    }
}

/// Two values compare equal as the tenant would see them (see [`AttrValue::normalised`]);
/// `None` (no value) equals an empty list.
pub fn same_value(attr: Attr, a: Option<&AttrValue>, b: Option<&AttrValue>) -> bool {
    let norm = |v: Option<&AttrValue>| match v.map(|v| v.normalised(attr)) {
        Some(AttrValue::List(l)) if l.is_empty() => None,
        other => other,
    };
    norm(a) == norm(b)
}

/// A value whose kind does not fit the attribute it was given for: a bug in the caller,
/// reported rather than stored under the wrong meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("internal error: {attr} cannot hold {value:?}")]
pub struct WrongKind {
    pub attr: Attr,
    pub value: AttrValue,
}

fn wrong(attr: Attr, value: AttrValue) -> WrongKind {
    WrongKind { attr, value }
}

impl UserSpec {
    /// What the row says about `attr`.
    pub fn get(&self, attr: Attr) -> Field<AttrValue> {
        match attr {
            Attr::DisplayName => self.display_name.clone().map(AttrValue::Text),
            Attr::Number => self.number.clone().map(AttrValue::Number),
            Attr::Country => self.country.clone().map(AttrValue::Country),
            Attr::Vrp => self.vrp.clone().map(AttrValue::Text),
            Attr::Groups => self.groups.clone().map(AttrValue::List),
            Attr::Licenses => self.licenses.clone().map(AttrValue::List),
            Attr::CustomerLicenses => self.customer_licenses.clone().map(AttrValue::List),
            Attr::Extension => self.extension.clone().map(AttrValue::Text),
        }
    }

    /// True when the row leaves `attr` as the tenant has it (an empty cell).
    pub fn keeps(&self, attr: Attr) -> bool {
        match attr {
            Attr::DisplayName => self.display_name.is_keep(),
            Attr::Number => self.number.is_keep(),
            Attr::Country => self.country.is_keep(),
            Attr::Vrp => self.vrp.is_keep(),
            Attr::Groups => self.groups.is_keep(),
            Attr::Licenses => self.licenses.is_keep(),
            Attr::CustomerLicenses => self.customer_licenses.is_keep(),
            Attr::Extension => self.extension.is_keep(),
        }
    }

    /// The attributes the row sets or clears.
    pub fn touched(&self) -> AttrSet {
        Attr::all().filter(|a| !self.keeps(*a)).collect()
    }

    /// Sets what the row says about `attr`; a value of another kind is refused.
    pub fn set(&mut self, attr: Attr, field: Field<AttrValue>) -> Result<(), WrongKind> {
        fn put<T>(
            slot: &mut Field<T>,
            attr: Attr,
            field: Field<AttrValue>,
            take: impl Fn(AttrValue) -> Result<T, AttrValue>,
        ) -> Result<(), WrongKind> {
            *slot = match field {
                Field::Keep => Field::Keep,
                Field::Clear => Field::Clear,
                Field::Set(v) => Field::Set(take(v).map_err(|v| wrong(attr, v))?),
            };
            Ok(())
        }
        let text = |v| match v {
            AttrValue::Text(s) => Ok(s),
            other => Err(other),
        };
        let list = |v| match v {
            AttrValue::List(l) => Ok(l),
            other => Err(other),
        };
        match attr {
            Attr::DisplayName => put(&mut self.display_name, attr, field, text),
            Attr::Number => put(&mut self.number, attr, field, |v| match v {
                AttrValue::Number(n) => Ok(n),
                other => Err(other),
            }),
            Attr::Country => put(&mut self.country, attr, field, |v| match v {
                AttrValue::Country(c) => Ok(c),
                other => Err(other),
            }),
            Attr::Vrp => put(&mut self.vrp, attr, field, text),
            Attr::Groups => put(&mut self.groups, attr, field, list),
            Attr::Licenses => put(&mut self.licenses, attr, field, list),
            Attr::CustomerLicenses => put(&mut self.customer_licenses, attr, field, list),
            Attr::Extension => put(&mut self.extension, attr, field, text),
        }
    }
}

impl TenantUser {
    /// What the tenant holds for `attr`: `None` when the snapshot did not read it (see
    /// [`AttrInfo::in_details`]), `Some(None)` when it holds no value. Lists are always a
    /// value, possibly empty.
    pub fn get(&self, attr: Attr) -> Option<Option<AttrValue>> {
        let details = self.details.as_ref();
        Some(match attr {
            Attr::DisplayName => Some(AttrValue::Text(self.display_name.clone())),
            Attr::Number => self.number.clone().map(AttrValue::Number),
            Attr::Country => self.country.clone().map(AttrValue::Country),
            Attr::Vrp => details?.vrp.clone().map(AttrValue::Text),
            Attr::Groups => Some(AttrValue::List(details?.groups.clone())),
            Attr::Licenses => Some(AttrValue::List(self.licenses.clone())),
            Attr::CustomerLicenses => Some(AttrValue::List(self.customer_licenses.clone())),
            Attr::Extension => self.extension.clone().map(AttrValue::Text),
        })
    }

    /// Records `value` for `attr`, as a successful change leaves the user (tests and
    /// read-back play plans onto snapshots with it). Setting a detail attribute of a user
    /// read without details starts empty details.
    pub fn set(&mut self, attr: Attr, value: Option<AttrValue>) -> Result<(), WrongKind> {
        if let Some(v) = &value {
            if !v.fits(attr) {
                return Err(wrong(attr, v.clone()));
            }
        }
        let text = |v: Option<AttrValue>| v.and_then(|v| v.as_text().map(str::to_string));
        let list = |v: Option<AttrValue>| match v {
            Some(AttrValue::List(l)) => l,
            _ => Vec::new(),
        };
        if attr.info().in_details && self.details.is_none() {
            self.details = Some(UserDetails {
                groups: Vec::new(),
                vrp: None,
            });
        }
        match attr {
            Attr::DisplayName => self.display_name = text(value).unwrap_or_default(),
            Attr::Number => self.number = value.and_then(|v| v.as_number().cloned()),
            Attr::Country => self.country = value.and_then(|v| v.as_country().cloned()),
            Attr::Vrp => {
                if let Some(d) = self.details.as_mut() {
                    d.vrp = text(value);
                }
            }
            Attr::Groups => {
                if let Some(d) = self.details.as_mut() {
                    d.groups = list(value);
                }
            }
            Attr::Licenses => self.licenses = list(value),
            Attr::CustomerLicenses => self.customer_licenses = list(value),
            Attr::Extension => self.extension = text(value),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Upn;

    #[test]
    fn every_attribute_sits_at_its_own_row_and_names_are_unique() {
        for (i, info) in ATTRS.iter().enumerate() {
            assert_eq!(info.attr as usize, i, "{} is out of place", info.name);
            assert_eq!(Attr::from_name(info.name), Some(info.attr));
        }
        let mut spellings: Vec<String> = ATTRS
            .iter()
            .flat_map(|i| {
                std::iter::once(i.name.to_lowercase())
                    .chain(i.aliases.iter().map(std::string::ToString::to_string))
            })
            .collect();
        let n = spellings.len();
        spellings.sort();
        spellings.dedup();
        assert_eq!(spellings.len(), n, "a header spelling names two attributes");
        assert!(ATTRS.len() < 32, "AttrSet holds at most 32 attributes");
    }

    #[test]
    fn a_spec_reads_back_what_was_set_and_refuses_the_wrong_kind() {
        let mut s = UserSpec::new(Upn::parse("a@b.com").unwrap());
        let values = [
            (Attr::DisplayName, AttrValue::Text("A".into())),
            (
                Attr::Number,
                AttrValue::Number(E164::parse_canonical("+3225405200").unwrap()),
            ),
            (
                Attr::Country,
                AttrValue::Country(Country::parse("BE").unwrap()),
            ),
            (Attr::Vrp, AttrValue::Text("BE-National".into())),
            (Attr::Groups, AttrValue::List(vec!["Sales".into()])),
            (Attr::Licenses, AttrValue::List(vec!["MCOEV".into()])),
            (Attr::CustomerLicenses, AttrValue::List(vec!["CB".into()])),
            (Attr::Extension, AttrValue::Text("101".into())),
        ];
        assert_eq!(values.len(), ATTRS.len(), "every attribute is exercised");
        for (a, v) in &values {
            assert!(s.keeps(*a));
            s.set(*a, Field::Set(v.clone())).unwrap();
            assert_eq!(s.get(*a), Field::Set(v.clone()));
            assert!(v.fits(*a));
            assert_eq!(AttrValue::from_json(*a, &v.to_json()).unwrap(), *v);
        }
        assert_eq!(s.touched(), AttrSet::ALL);
        s.set(Attr::Vrp, Field::Clear).unwrap();
        assert_eq!(s.vrp, Field::Clear);
        let e = s
            .set(Attr::Country, Field::Set(AttrValue::Text("BE".into())))
            .unwrap_err();
        assert_eq!(e.attr, Attr::Country);
        assert_eq!(s.country, Field::Set(Country::parse("BE").unwrap()));
    }

    #[test]
    fn a_tenant_user_knows_what_it_did_not_read() {
        let mut u = TenantUser {
            display_name: "A".into(),
            ..TenantUser::new("1".into(), Upn::parse("a@b.com").unwrap())
        };
        assert_eq!(u.get(Attr::Vrp), None, "not read");
        assert_eq!(u.get(Attr::Groups), None);
        assert_eq!(u.get(Attr::Number), Some(None), "read: none");
        assert_eq!(u.get(Attr::Licenses), Some(Some(AttrValue::List(vec![]))));
        u.set(Attr::Vrp, Some(AttrValue::Text("X".into()))).unwrap();
        assert_eq!(u.get(Attr::Vrp), Some(Some(AttrValue::Text("X".into()))));
        assert_eq!(u.get(Attr::Groups), Some(Some(AttrValue::List(vec![]))));
        assert!(u
            .set(Attr::Number, Some(AttrValue::Text("1".into())))
            .is_err());
    }

    #[test]
    fn sets_and_comparisons() {
        let s = AttrSet::of(&[Attr::Groups, Attr::Number]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [Attr::Number, Attr::Groups]);
        assert!(s.contains(Attr::Groups) && !s.contains(Attr::Vrp));
        assert!(s.is_subset(AttrSet::ALL) && !AttrSet::ALL.is_subset(s));
        assert_eq!(format!("{s:?}"), "{\"number\", \"groups\"}");
        let l =
            |v: &[&str]| AttrValue::List(v.iter().map(std::string::ToString::to_string).collect());
        assert!(same_value(
            Attr::Groups,
            Some(&l(&["B", "a"])),
            Some(&l(&["A", "b", "a"]))
        ));
        assert!(same_value(Attr::Groups, None, Some(&l(&[]))));
        let t = |s: &str| AttrValue::Text(s.into());
        assert!(same_value(
            Attr::Vrp,
            Some(&t("be-national")),
            Some(&t("BE-National"))
        ));
        assert!(!same_value(Attr::DisplayName, Some(&t("a")), Some(&t("A"))));
        assert_eq!(
            Attr::names_where(|i| i.clearable),
            "number, vrp, groups, licenses and customerLicenses"
        );
    }
}
