//! The plan: what will change, per user, in order — the contract between the planner
//! (pure), the renderers, the saved-plan file and the executor.
//!
//! Like Terraform's plan it carries a fingerprint of the snapshot it was made against, so
//! `apply --plan` can refuse a tenant that drifted since.

use crate::model::{Country, JobKind, RowOrigin, Upn, UserSpec, E164};
use serde::{Deserialize, Serialize};

/// One change to one user. Lists are full sets (the API's PUTs replace the whole set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    Create {
        display_name: String,
        /// `None` only for backends without a country (`Capabilities::country` false).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        country: Option<Country>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        customer_licenses: Vec<String>,
    },
    SetProperties {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        country: Option<Country>,
    },
    /// Full set of skuIds.
    SetLicenses {
        sku_ids: Vec<String>,
    },
    /// `None` releases the number (voice disabled).
    SetNumber {
        number: Option<E164>,
    },
    SetVrp {
        vrp: Option<String>,
    },
    /// Full set of group object IDs.
    SetGroups {
        group_ids: Vec<String>,
    },
    SetCustomerLicenses {
        skus: Vec<String>,
    },
    Delete,
}

impl Operation {
    /// Stable name used in summaries and JSON counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Create { .. } => "create",
            Operation::SetProperties { .. } => "set_properties",
            Operation::SetLicenses { .. } => "set_licenses",
            Operation::SetNumber { .. } => "set_number",
            Operation::SetVrp { .. } => "set_vrp",
            Operation::SetGroups { .. } => "set_groups",
            Operation::SetCustomerLicenses { .. } => "set_customer_licenses",
            Operation::Delete => "delete",
        }
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
}

pub const PLAN_FORMAT: u32 = 1;
