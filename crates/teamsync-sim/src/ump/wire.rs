//! The simulator's side of UMP 365's JSON: the seed file and which attributes each answer
//! carries, key for key as the document's examples show them. Separate from the
//! connector's types on purpose (see the crate root).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The seed (and `/_sim/state`): every answer's source, in the API's own shapes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedDoc {
    /// `GET license`, served as is.
    pub license: Map<String, Value>,
    /// `GET sysinfo`, served as is.
    pub sysinfo: Map<String, Value>,
    /// `GET proxy/registrarpools`.
    #[serde(default)]
    pub registrarpools: Vec<Value>,
    /// `GET proxy/callpickupgroup/number/`'s `rows`.
    #[serde(default)]
    pub callpickupgroups: Vec<Value>,
    /// `GET signindomain`.
    #[serde(default)]
    pub signindomain: Vec<Value>,
    /// `GET numberrange`'s rows. `NumbersAvailable` is computed for ranges with bounds
    /// (span minus assigned LineURIs) and served as seeded for ranges without.
    #[serde(default)]
    pub numberrange: Vec<Map<String, Value>>,
    /// Names `VoicePolicy` may take (UMP validates them through PowerShell; the API has no
    /// list). Empty: any name is accepted.
    #[serde(default, rename = "voicePolicies")]
    pub voice_policies: Vec<String>,
    /// Users in the detail shape, plus the list-only attributes (`UsageLocation`,
    /// `Status`, `CallForward`, `HybridPstnSiteName`, `ObjectId`).
    pub users: Vec<Map<String, Value>>,
}

/// The attributes of a user in `POST proxy/endpoint/list`, as the document's example.
pub const LIST_FIELDS: &[&str] = &[
    "Identity",
    "Status",
    "CallForward",
    "Department",
    "WebName",
    "LineURI",
    "UserType",
    "SipAddress",
    "UsageLocation",
    "HybridPstnSiteName",
    "RegistrarPool",
    "ObjectId",
    "PsCount",
    "IsManaged",
];

/// The attributes of `GET proxy/endpoint/{sip}`: the document's example, plus
/// `UsageLocation` (last). Our reading: the example is an on-premises user, and the
/// attribute table lets `UsageLocation` be written, so the detail of a Teams user shows it
/// (a client verifying its write has no other way to read it back but the whole list).
pub const DETAIL_FIELDS: &[&str] = &[
    "Identity",
    "Enabled",
    "IsAdEnabled",
    "SamAccountName",
    "SipAddress",
    "UserPrincipalName",
    "HostingProvider",
    "DisplayName",
    "VoicePolicy",
    "VoiceRoutingPolicy",
    "ConferencingPolicy",
    "PresencePolicy",
    "DialPlan",
    "LocationPolicy",
    "ClientPolicy",
    "ClientVersionPolicy",
    "ArchivingPolicy",
    "ExchangeArchivingPolicy",
    "PinPolicy",
    "ExternalAccessPolicy",
    "MobilityPolicy",
    "PersistentChatPolicy",
    "UserServicesPolicy",
    "HostedVoiceMail",
    "HostedVoicemailPolicy",
    "RegistrarPool",
    "LineURI",
    "PrivateLine",
    "EnterpriseVoiceEnabled",
    "ExUmEnabled",
    "HomeServer",
    "OriginatorSidTxt",
    "OriginatorGuid",
    "OriginatorDn",
    "ObjectGuid",
    "WindowsEmailAddress",
    "WhenCreated",
    "WhenChanged",
    "GroupingId",
    "CallPickupGroup",
    "SidTxt",
    "ReplicationTicks",
    "IsManaged",
    "Department",
    "FirstName",
    "LastName",
    "City",
    "Company",
    "PostalCode",
    "StreetAddress",
    "StateOrProvince",
    "Office",
    "Manager",
    "PsCount",
    "UserType",
    "UsageLocation",
];

/// What one attribute of `PUT …/script` accepts: the document's table of "supported
/// attributes to be updated", and nothing else (its "Example 1" claims to update the display
/// name but shows no body, and the table has no `DisplayName`, so a `DisplayName` key is an
/// unknown attribute here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Country,
    Policy,
    Bool,
    Tel,
    PickupGroup,
    Guid,
}

pub const SCRIPT_ATTRIBUTES: &[(&str, Kind)] = &[
    ("FirstName", Kind::Text),
    ("LastName", Kind::Text),
    ("City", Kind::Text),
    ("Department", Kind::Text),
    ("Office", Kind::Text),
    ("PostalCode", Kind::Text),
    ("StateOrProvince", Kind::Text),
    ("StreetAddress", Kind::Text),
    ("UsageLocation", Kind::Country),
    ("ClientPolicy", Kind::Policy),
    ("ConferencingPolicy", Kind::Policy),
    ("HostedVoiceMail", Kind::Bool),
    ("PinPolicy", Kind::Policy),
    ("ExternalAccessPolicy", Kind::Policy),
    ("HostedVoicemailPolicy", Kind::Policy),
    ("MobilityPolicy", Kind::Policy),
    ("EnterpriseVoiceEnabled", Kind::Bool),
    ("VoicePolicy", Kind::Policy),
    ("DialPlan", Kind::Policy),
    ("LineURI", Kind::Tel),
    ("PrivateLine", Kind::Tel),
    ("CallPickupGroup", Kind::PickupGroup),
    ("GroupingId", Kind::Guid),
];

/// The list request body (our reading: a Kendo grid's `skip`/`take`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListBody {
    #[serde(default)]
    pub skip: Option<u64>,
    #[serde(default)]
    pub take: Option<u64>,
}

/// An error answer: RFC 7807 problem details, the `ProblemDetails` schema the document
/// lists (and shows in "Enabled Voice Users Count").
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}
