//! The simulated tenant: its seed document (Graph's own property names) and the state the
//! handlers change. The whole tenant is one document, kept in SQLite after every write.

use serde::{Deserialize, Serialize};

/// The tenant as the seed file and `GET /_sim/state` spell it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantDoc {
    /// The directory (tenant) id the token endpoint is addressed with.
    pub tenant_id: String,
    /// The application (client) id that may get a token.
    pub client_id: String,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub subscribed_skus: Vec<Sku>,
    #[serde(default)]
    pub number_assignments: Vec<NumberAssignment>,
    /// Teams policy instances `getPolicyId` resolves.
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// The policy types `policy/userAssignments/assign` takes. Graph's documents name no
    /// list (only examples), so each seed says what its tenant accepts.
    #[serde(default)]
    pub assignable_policy_types: Vec<String>,
    /// Asynchronous number operations (state only; a seed has none).
    #[serde(default)]
    pub operations: Vec<NumberOperation>,
}

/// An Entra user with the Teams side of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    #[serde(default)]
    pub usage_location: Option<String>,
    #[serde(default = "yes")]
    pub account_enabled: bool,
    #[serde(default)]
    pub assigned_licenses: Vec<AssignedLicense>,
    /// Teams' `accountType`: `user` or `resourceAccount`.
    #[serde(default = "user_kind")]
    pub account_type: String,
    #[serde(default)]
    pub is_enterprise_voice_enabled: bool,
    /// Direct policy assignments.
    #[serde(default)]
    pub policy_assignments: Vec<DirectPolicy>,
}

fn yes() -> bool {
    true
}

fn user_kind() -> String {
    "user".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignedLicense {
    pub sku_id: String,
    #[serde(default)]
    pub disabled_plans: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectPolicy {
    pub policy_type: String,
    pub policy_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    /// Member object ids.
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sku {
    pub sku_id: String,
    pub sku_part_number: String,
    /// Units bought (`prepaidUnits.enabled`); `consumedUnits` is counted from the users.
    pub enabled_units: i64,
    #[serde(default)]
    pub service_plans: Vec<ServicePlan>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePlan {
    pub service_plan_id: String,
    pub service_plan_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NumberAssignment {
    /// With its `+`, as Graph always shows it.
    pub telephone_number: String,
    /// `directRouting`, `callingPlan` or `operatorConnect`.
    pub number_type: String,
    /// `userAssignment`, `conferenceAssignment`, `voiceApplicationAssignment`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub assignment_target_id: Option<String>,
    #[serde(default)]
    pub assignment_category: Option<String>,
    /// `unassigned`, `userAssigned`, `voiceApplicationAssigned`, `conferenceAssigned`…
    pub assignment_status: String,
    #[serde(default)]
    pub location_id: Option<String>,
    #[serde(default)]
    pub iso_country_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub policy_type: String,
    pub name: String,
    pub policy_id: String,
}

/// A `telephoneNumberLongRunningOperation` and what it will do when it completes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NumberOperation {
    pub id: String,
    pub created_date_time: String,
    /// Milliseconds since the epoch when it completes; polls before see `running`.
    pub ready_at_ms: i64,
    /// `assign` or `unassign`.
    pub action: String,
    pub telephone_number: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub location_id: Option<String>,
    /// The `numberType` sent.
    pub number_type: String,
    /// `running` until completed, then `succeeded` or `failed`.
    pub status: String,
    #[serde(default)]
    pub status_detail: Option<String>,
}

impl TenantDoc {
    /// By object id or, as Graph's `GET /users/{id | userPrincipalName}` allows, by UPN.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.id.eq_ignore_ascii_case(id) || u.user_principal_name.eq_ignore_ascii_case(id)
        })
    }
    pub fn user_mut(&mut self, id: &str) -> Option<&mut User> {
        self.users
            .iter_mut()
            .find(|u| u.id.eq_ignore_ascii_case(id))
    }
    pub fn sku(&self, id: &str) -> Option<&Sku> {
        self.subscribed_skus
            .iter()
            .find(|s| s.sku_id.eq_ignore_ascii_case(id))
    }
    pub fn consumed(&self, sku_id: &str) -> i64 {
        self.users
            .iter()
            .filter(|u| {
                u.assigned_licenses
                    .iter()
                    .any(|l| l.sku_id.eq_ignore_ascii_case(sku_id))
            })
            .count() as i64
    }
    pub fn number(&self, n: &str) -> Option<&NumberAssignment> {
        self.number_assignments
            .iter()
            .find(|a| a.telephone_number == n)
    }
    /// Whether the user holds a license with Teams Phone (`MCOEV`).
    pub fn has_phone_system(&self, user: &User) -> bool {
        user.assigned_licenses.iter().any(|l| {
            self.sku(&l.sku_id).is_some_and(|s| {
                s.service_plans
                    .iter()
                    .any(|p| p.service_plan_name == "MCOEV")
            })
        })
    }
    /// Teams' `featureTypes` from the user's licenses.
    pub fn feature_types(&self, user: &User) -> Vec<&'static str> {
        let plans: Vec<&str> = user
            .assigned_licenses
            .iter()
            .filter_map(|l| self.sku(&l.sku_id))
            .flat_map(|s| s.service_plans.iter().map(|p| p.service_plan_name.as_str()))
            .collect();
        let mut out = Vec::new();
        if plans.contains(&"TEAMS1") {
            out.push("Teams");
        }
        if plans.contains(&"MCOEV") {
            out.push("PhoneSystem");
        }
        out
    }

    /// Checks a seed as the API would have built it.
    pub fn check(&self) -> Result<(), String> {
        let mut ids = std::collections::HashSet::new();
        let mut upns = std::collections::HashSet::new();
        for u in &self.users {
            if !ids.insert(u.id.to_lowercase()) {
                return Err(format!("user id {} appears twice", u.id));
            }
            if !upns.insert(u.user_principal_name.to_lowercase()) {
                return Err(format!(
                    "userPrincipalName {} appears twice",
                    u.user_principal_name
                ));
            }
            if let Some(c) = &u.usage_location {
                if !crate::common::is_country(c) {
                    return Err(format!(
                        "user {}: usageLocation {c:?} is not ISO 3166-1 alpha-2",
                        u.id
                    ));
                }
            }
            for l in &u.assigned_licenses {
                if self.sku(&l.sku_id).is_none() {
                    return Err(format!(
                        "user {}: skuId {} is not a subscribed SKU",
                        u.id, l.sku_id
                    ));
                }
            }
        }
        for g in &self.groups {
            for m in &g.members {
                if self.user(m).is_none() {
                    return Err(format!("group {}: member {m} is not a user", g.id));
                }
            }
        }
        let mut numbers = std::collections::HashSet::new();
        for n in &self.number_assignments {
            if !crate::common::is_e164(&n.telephone_number) {
                return Err(format!(
                    "telephoneNumber {:?} is not +E.164",
                    n.telephone_number
                ));
            }
            if !numbers.insert(n.telephone_number.clone()) {
                return Err(format!(
                    "telephoneNumber {} appears twice",
                    n.telephone_number
                ));
            }
            if let Some(t) = &n.assignment_target_id {
                if n.assignment_status == "userAssigned" && self.user(t).is_none() {
                    return Err(format!(
                        "{}: assignmentTargetId {t} is not a user",
                        n.telephone_number
                    ));
                }
            }
        }
        Ok(())
    }
}
