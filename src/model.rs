//! Domain values shared by every stage of the pipeline (sheet → plan → apply → history).
//!
//! They live here, apart from any wire format, so that a reader, a connector and the
//! planner can agree on what a UPN or a number *is* without agreeing on how one backend
//! spells it. Normalisation happens once, at construction: two values that compare equal
//! here mean the same thing to the tenant.
//!
//! Two tables sit beside them: [`attr`], the user attributes every stage derives its
//! columns, keys and checks from, and [`profile`], what a backend is in the planner's
//! terms.

pub mod attr;
pub mod profile;

pub use attr::{Attr, AttrSet, AttrValue};
pub use profile::{Profile, RowProblem};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A User Principal Name, kept lowercase because Entra ID compares UPNs case-insensitively.
/// A `Box<str>`, not a `String`: it never grows, and one is kept per sheet row and tenant
/// user (8 bytes and any capacity slack less each).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Upn(Box<str>);

impl Upn {
    /// Accepts `local@domain` (trimmed, lowercased). The domain needs a dot or is a
    /// single label such as `localhost`-style test domains are refused: tenants only hold
    /// routable domains.
    pub fn parse(raw: &str) -> Result<Upn, String> {
        let s = raw.trim().to_lowercase();
        let Some((local, domain)) = s.split_once('@') else {
            return Err(format!("{raw:?} is not a UPN (expected local@domain)"));
        };
        let bad_local = local.is_empty()
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+'&".contains(c));
        let bad_domain = domain.is_empty()
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if bad_local || bad_domain || s.len() > 113 {
            return Err(format!("{raw:?} is not a UPN (expected local@domain)"));
        }
        Ok(Upn(s.into_boxed_str()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(l, _)| l)
    }
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, d)| d)
    }
}

// `pad` (not `write_str`) so width and alignment work in tables.
impl fmt::Display for Upn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}
impl Serialize for Upn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for Upn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Upn::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A phone number in canonical E.164 form (`+` and 7–15 digits) with an optional extension.
/// Construction from sheet cells (national forms, Excel damage) is the sheet layer's job;
/// this type only guarantees the canonical shape so that equality is meaningful.
///
/// Stored inline (no heap): a validated sheet keeps one per row, and a million-row sheet
/// should not pay two allocations per number. The bytes are ASCII by construction and
/// zero-padded, so equality and hashing on them mean equality of the text forms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct E164 {
    /// `+` and the digits, zero-padded.
    number: [u8; E164::NUMBER_MAX],
    number_len: u8,
    /// Extension digits, zero-padded; length 0 = no extension (an extension is 1–10 digits).
    ext: [u8; E164::EXT_MAX],
    ext_len: u8,
}

impl E164 {
    const NUMBER_MAX: usize = 16;
    const EXT_MAX: usize = 10;

    /// Parses the canonical text form, `+digits` or `+digits;ext=digits`, also with a
    /// `tel:` prefix as Teams and UMP spell LineURIs.
    pub fn parse_canonical(raw: &str) -> Result<E164, String> {
        let s = raw.trim();
        let s = s
            .strip_prefix("tel:")
            .or_else(|| s.strip_prefix("TEL:"))
            .unwrap_or(s);
        let (num, ext) = match s.split_once(';') {
            Some((n, rest)) => {
                let ext = rest
                    .strip_prefix("ext=")
                    .ok_or_else(|| format!("{raw:?}: unexpected parameter after ';'"))?;
                (n, Some(ext))
            }
            None => (s, None),
        };
        let digits = num
            .strip_prefix('+')
            .ok_or_else(|| format!("{raw:?} is not an E.164 number (must start with +)"))?;
        if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{raw:?} is not an E.164 number (+ and 7-15 digits)"
            ));
        }
        if digits.starts_with('0') {
            return Err(format!(
                "{raw:?} is not an E.164 number (country code cannot start with 0)"
            ));
        }
        if let Some(e) = ext {
            if e.is_empty() || e.len() > E164::EXT_MAX || !e.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{raw:?}: extension must be 1-10 digits"));
            }
        }
        let ext = ext.unwrap_or("");
        // Lengths are checked above: `num` is 8..=16 bytes, `ext` 0..=10.
        let mut out = E164 {
            number: [0; E164::NUMBER_MAX],
            number_len: num.len() as u8,
            ext: [0; E164::EXT_MAX],
            ext_len: ext.len() as u8,
        };
        out.number[..num.len()].copy_from_slice(num.as_bytes());
        out.ext[..ext.len()].copy_from_slice(ext.as_bytes());
        Ok(out)
    }
    /// The number without extension, `+3225405200`.
    pub fn number(&self) -> &str {
        ascii(&self.number, self.number_len)
    }
    pub fn ext(&self) -> Option<&str> {
        (self.ext_len > 0).then(|| ascii(&self.ext, self.ext_len))
    }
    /// The number as a `tel:` URI (LineURI form).
    pub fn to_tel_uri(&self) -> String {
        format!("tel:{self}")
    }
}

/// The text of an inline ASCII buffer. Only `parse_canonical` fills these, with ASCII
/// digits and `+`, so the fallback never shows; it avoids a panic path all the same.
fn ascii(buf: &[u8], len: u8) -> &str {
    std::str::from_utf8(buf.get(..usize::from(len)).unwrap_or(&[])).unwrap_or("")
}

// By the text forms, as when both were `String`s (number first, then "no extension"
// before any extension).
impl Ord for E164 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.number(), self.ext()).cmp(&(other.number(), other.ext()))
    }
}
impl PartialOrd for E164 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ext() {
            Some(e) => f.pad(&format!("{};ext={}", self.number(), e)),
            None => f.pad(self.number()),
        }
    }
}
impl Serialize for E164 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for E164 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        E164::parse_canonical(&s).map_err(serde::de::Error::custom)
    }
}

/// ISO 3166-1 alpha-2 country code, uppercase, checked against the ISO list.
///
/// Two ASCII bytes inline rather than a `String`: one per sheet row, no allocation. Byte
/// order is the text order, so the derived `Ord` is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Strict: only assigned alpha-2 codes. The sheet layer maps `UK` to `GB` (with a
    /// warning) before calling this; the tenant never sends `UK`.
    pub fn parse(raw: &str) -> Result<Country, String> {
        // Two ASCII letters, uppercased in place: every row has a country, and a
        // `String` for it was an allocation per row.
        let upper = match raw.trim().as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
            }
            _ => None,
        };
        if let Some(s) = upper.as_ref().and_then(|u| std::str::from_utf8(u).ok()) {
            if let Ok(c) = celes::Country::from_alpha2(s) {
                if let [a, b] = c.alpha2.as_bytes() {
                    return Ok(Country([*a, *b]));
                }
            }
        }
        Err(format!("{raw:?} is not an ISO 3166-1 alpha-2 country code"))
    }
    pub fn as_str(&self) -> &str {
        ascii(&self.0, 2)
    }
}
impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Country::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a sheet cell says about one field: leave it (empty cell), set it, or clear it (`-`).
///
/// Serialised with JSON-merge-patch semantics so stored rows stay readable: `Keep` is an
/// absent key (use `#[serde(default, skip_serializing_if = "Field::is_keep")]`), `Clear`
/// is `null`, `Set(v)` is `v`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Keep,
    Set(T),
    Clear,
}

impl<T> Field<T> {
    pub fn is_keep(&self) -> bool {
        matches!(self, Field::Keep)
    }
    pub fn as_set(&self) -> Option<&T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }
    pub fn into_set(self) -> Option<T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }
    /// The row's value if it has one, else the fallback (a template's).
    pub fn or(self, fallback: Field<T>) -> Field<T> {
        match self {
            Field::Keep => fallback,
            other => other,
        }
    }
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Field::Keep => Field::Keep,
            Field::Clear => Field::Clear,
            Field::Set(v) => Field::Set(f(v)),
        }
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Set(v) => v.serialize(s),
            // Keep should be skipped by the container; if not, null would mean Clear, so
            // refuse rather than silently change meaning.
            Field::Keep => Err(serde::ser::Error::custom(
                "Field::Keep must be skipped (skip_serializing_if = \"Field::is_keep\")",
            )),
            Field::Clear => s.serialize_none(),
        }
    }
}
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Field::Set(v),
            None => Field::Clear,
        })
    }
}

/// The `action` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowAction {
    #[default]
    Upsert,
    /// Release number and VRP, keep the user.
    Disable,
    /// Delete the user; its number returns to the inventory.
    Delete,
}

/// Resource-account type (`accountType` column of resource-account sheets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountType {
    CallQueue,
    AutoAttendant,
}

/// Where a value came from, as a spreadsheet user sees it (header = row 1).
///
/// `file` is shared (`Arc<str>`): validation gives every row of a file the same name, and
/// one copy per row was most of a large sheet's memory. Serialised as a plain string,
/// `{"file": "...", "row": N}`, as saved plans and the job history store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowOrigin {
    #[serde(with = "shared_str")]
    pub file: std::sync::Arc<str>,
    pub row: u64,
}

/// Serde for `Arc<str>` as a plain string, without serde's `rc` feature (which would
/// also change how other `Arc`s in the crate serialise).
mod shared_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub(super) fn serialize<S: Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(d).map(Arc::from)
    }
}

/// One desired user after header mapping, normalisation and templates.
/// Names (groups, licenses, VRP) are still as written: they resolve against the
/// tenant's catalogs at plan time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    pub upn: Upn,
    #[serde(default, skip_serializing_if = "Field::is_keep")]
    pub display_name: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_keep")]
    pub number: Field<E164>,
    /// `number = auto`: the named range to take the lowest free number from (the row's
    /// `auto:RANGE` or its template's `number_range`); the planner turns it into a
    /// concrete `number` before diffing. A user who already has a number keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_range: Option<String>,
    #[serde(default, skip_serializing_if = "Field::is_keep")]
    pub country: Field<Country>,
    #[serde(default, skip_serializing_if = "Field::is_keep")]
    pub vrp: Field<String>,
    #[serde(default, skip_serializing_if = "Field::is_keep")]
    pub groups: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_keep")]
    pub licenses: Field<Vec<String>>,
    #[serde(default, skip_serializing_if = "Field::is_keep")]
    pub customer_licenses: Field<Vec<String>>,
    /// PBX extension number (`[0-9]{3,64}`), for backends whose users have one (PortSIP).
    #[serde(default, skip_serializing_if = "Field::is_keep")]
    pub extension: Field<String>,
    #[serde(default)]
    pub action: RowAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Only in resource-account sheets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<AccountType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<RowOrigin>,
}

impl UserSpec {
    pub fn new(upn: Upn) -> UserSpec {
        UserSpec {
            upn,
            display_name: Field::Keep,
            number: Field::Keep,
            number_range: None,
            country: Field::Keep,
            vrp: Field::Keep,
            groups: Field::Keep,
            licenses: Field::Keep,
            customer_licenses: Field::Keep,
            extension: Field::Keep,
            action: RowAction::Upsert,
            template: None,
            account_type: None,
            origin: None,
        }
    }
}

/// Which kind of sheet / job: Fusion's bulk-job kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    #[default]
    MsUsers,
    MsResourceAccounts,
}

impl JobKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::MsUsers => "ms_users",
            JobKind::MsResourceAccounts => "ms_resource_accounts",
        }
    }
}

/// A problem found in input, located as a spreadsheet user would look for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based, header = row 1; `None` for file-level problems.
    pub row: Option<u64>,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(r) = self.row {
            write!(f, ":{r}")?;
        }
        if let Some(c) = &self.column {
            write!(f, " [{c}]")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Groups and VRP of a user: only the single-user read returns them, so a snapshot may
/// hold a user without them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDetails {
    /// Group object IDs.
    pub groups: Vec<String>,
    pub vrp: Option<String>,
}

/// A user as the tenant holds it now, in our normalised terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUser {
    /// The backend's own identifier (Entra object ID for Fusion).
    pub id: String,
    pub upn: Upn,
    pub display_name: String,
    pub country: Option<Country>,
    pub voice_enabled: bool,
    pub number: Option<E164>,
    /// License skuIds.
    pub licenses: Vec<String>,
    pub customer_licenses: Vec<String>,
    /// `None` when the snapshot did not read details for this user.
    pub details: Option<UserDetails>,
    /// Resource accounts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<AccountType>,
    /// PBX extension number, on backends whose users have one (PortSIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
}

impl TenantUser {
    /// A user with only its identity: no display name, number, licenses or details.
    /// Readers fill in what their backend returns (`TenantUser { number, ..TenantUser::new(id,
    /// upn) }`), so a new attribute needs no edit where a backend lacks it.
    pub fn new(id: String, upn: Upn) -> TenantUser {
        TenantUser {
            id,
            upn,
            display_name: String::new(),
            country: None,
            voice_enabled: false,
            number: None,
            licenses: Vec::new(),
            customer_licenses: Vec::new(),
            details: None,
            account_type: None,
            extension: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseInfo {
    pub sku_id: String,
    pub sku_part_number: String,
    pub sku_description: Option<String>,
    pub total: i64,
    pub free: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrpInfo {
    pub identity: String,
    pub description: Option<String>,
}

/// The tenant's catalogs that sheet names resolve against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogs {
    pub groups: Vec<GroupInfo>,
    pub licenses: Vec<LicenseInfo>,
    pub vrps: Vec<VrpInfo>,
}

/// Everything the planner knows about the tenant, read in one go before planning.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub users: Vec<TenantUser>,
    pub catalogs: Catalogs,
    /// HTTP requests the snapshot took (reported to the user).
    pub requests: u64,
    /// Named number ranges with their free numbers, from backends that have them (UMP);
    /// what `number = auto` allocates from.
    #[serde(default)]
    pub number_ranges: Vec<NumberRange>,
    /// Numbers held by accounts the backend lists but no sheet row can address (a PortSIP
    /// user without an email): no one else may claim them.
    #[serde(default)]
    pub held_elsewhere: Vec<HeldNumber>,
}

/// A number held by an account outside `Snapshot::users`, and how to name that account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldNumber {
    pub number: E164,
    /// e.g. `PortSIP user 100000000003 ("frontdesk", no email)`.
    pub holder: String,
}

/// A backend's named range of numbers and the ones no user holds, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRange {
    pub name: String,
    pub numbers_free: Vec<E164>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upn_is_lowercased_and_checked() {
        assert_eq!(
            Upn::parse(" John.Doe@Contoso.COM ").unwrap().as_str(),
            "john.doe@contoso.com"
        );
        assert!(Upn::parse("john").is_err());
        assert!(Upn::parse("@contoso.com").is_err());
        assert!(Upn::parse("a@b").is_err());
        assert!(Upn::parse("a b@c.com").is_err());
    }

    #[test]
    fn e164_canonical_forms() {
        let n = E164::parse_canonical("tel:+3225405200;ext=12").unwrap();
        assert_eq!(n.to_string(), "+3225405200;ext=12");
        assert_eq!(n.number(), "+3225405200");
        assert!(E164::parse_canonical("3225405200").is_err());
        assert!(E164::parse_canonical("+12").is_err());
        assert!(E164::parse_canonical("+0123456789").is_err());
    }

    #[test]
    fn display_honours_width_for_tables() {
        let u = Upn::parse("a@b.com").unwrap();
        assert_eq!(format!("{u:<9}|"), "a@b.com  |");
        let n = E164::parse_canonical("+3225405200").unwrap();
        assert_eq!(format!("{n:<13}|"), "+3225405200  |");
    }

    #[test]
    fn country_is_iso() {
        assert_eq!(Country::parse("be").unwrap().as_str(), "BE");
        assert!(Country::parse("UK").is_err());
        assert!(Country::parse("XX").is_err());
    }

    #[test]
    fn field_serialises_as_merge_patch() {
        let mut u = UserSpec::new(Upn::parse("a@b.com").unwrap());
        u.vrp = Field::Clear;
        u.display_name = Field::Set("A".into());
        let j = serde_json::to_value(&u).unwrap();
        assert_eq!(j["vrp"], serde_json::Value::Null);
        assert_eq!(j["displayName"], "A");
        assert!(j.get("number").is_none());
        let back: UserSpec = serde_json::from_value(j).unwrap();
        assert_eq!(back, u);
    }

    #[test]
    fn e164_inline_keeps_text_order_and_limits() {
        let longest = E164::parse_canonical("+123456789012345;ext=1234567890").unwrap();
        assert_eq!(longest.number(), "+123456789012345");
        assert_eq!(longest.ext(), Some("1234567890"));
        assert!(E164::parse_canonical("+1234567890123456").is_err());
        assert!(E164::parse_canonical("+3225405200;ext=12345678901").is_err());
        assert!(E164::parse_canonical("+3225405200;ext=").is_err());
        let mut v: Vec<E164> = [
            "+3225405200;ext=2",
            "+32254052001",
            "+3225405200",
            "+322540520",
        ]
        .iter()
        .map(|s| E164::parse_canonical(s).unwrap())
        .collect();
        v.sort();
        let texts: Vec<String> = v.iter().map(E164::to_string).collect();
        assert_eq!(
            texts,
            [
                "+322540520",
                "+3225405200",
                "+3225405200;ext=2",
                "+32254052001"
            ]
        );
        let j = serde_json::to_string(&longest).unwrap();
        assert_eq!(j, "\"+123456789012345;ext=1234567890\"");
        assert_eq!(serde_json::from_str::<E164>(&j).unwrap(), longest);
    }

    #[test]
    fn row_origin_serialises_as_file_and_row() {
        let o = RowOrigin {
            file: "sheets/users.csv".into(),
            row: 7,
        };
        let j = serde_json::to_value(&o).unwrap();
        assert_eq!(j, serde_json::json!({"file": "sheets/users.csv", "row": 7}));
        assert_eq!(serde_json::from_value::<RowOrigin>(j).unwrap(), o);
        let c = Country::parse("gb").unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), "GB");
    }
}
