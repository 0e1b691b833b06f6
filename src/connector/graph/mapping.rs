//! Graph → model: an Entra user joined with its Teams configuration.

use super::wire;
use super::VRP_POLICY_TYPE;
use crate::model::{Country, TenantUser, Upn, UserDetails, E164};

/// The user's primary number (Teams shows numbers with their `+`).
pub fn primary_number(c: &wire::UserConfiguration) -> Option<E164> {
    c.telephone_numbers
        .iter()
        .filter(|n| {
            n.assignment_category
                .as_deref()
                .is_none_or(|k| k.eq_ignore_ascii_case("primary"))
        })
        .find_map(|n| E164::parse_canonical(&n.telephone_number).ok())
}

/// The voice routing policy assigned to the user directly (one a group gives is not
/// teamsync's to change, so it is not read as the user's).
pub fn direct_vrp(c: &wire::UserConfiguration) -> Option<String> {
    c.effective_policy_assignments
        .iter()
        .filter(|p| p.policy_type.eq_ignore_ascii_case(VRP_POLICY_TYPE))
        .filter_map(|p| p.policy_assignment.as_ref())
        .filter(|a| {
            a.assignment_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("direct"))
        })
        .find_map(|a| a.display_name.clone().filter(|n| !n.is_empty()))
}

pub fn is_resource_account(c: &wire::UserConfiguration) -> bool {
    c.account_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("resourceAccount"))
}

/// A user as the planner sees it; `None` when its UPN is not one a sheet can name.
pub fn user(u: &wire::User, config: Option<&wire::UserConfiguration>) -> Option<TenantUser> {
    let upn = Upn::parse(u.user_principal_name.as_deref()?).ok()?;
    Some(TenantUser {
        display_name: u.display_name.clone().unwrap_or_default(),
        country: u
            .usage_location
            .as_deref()
            .and_then(|c| Country::parse(c).ok()),
        voice_enabled: config
            .and_then(|c| c.is_enterprise_voice_enabled)
            .unwrap_or(false),
        number: config.and_then(primary_number),
        licenses: u
            .assigned_licenses
            .iter()
            .map(|l| l.sku_id.to_lowercase())
            .collect(),
        ..TenantUser::new(u.id.clone(), upn)
    })
}

/// The details of a user read in full: its groups, and its direct voice routing policy.
pub fn details(groups: Vec<String>, config: Option<&wire::UserConfiguration>) -> UserDetails {
    UserDetails {
        groups,
        vrp: config.and_then(direct_vrp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list example of `teamsUserConfiguration` (Graph's documentation) reads as a
    /// number and no directly assigned VRP (its policies are a calling and a meeting one).
    #[test]
    fn the_documented_user_configuration() {
        let page: wire::Page<wire::UserConfiguration> = serde_json::from_value(serde_json::json!({
          "value": [{
            "id": "5c802b19-3600-83f1-1767-7b9edc7f38ab",
            "userPrincipalName": "AdeleV@contoso.com",
            "effectivePolicyAssignments": [
              {"policyType": "TeamsCallingPolicy", "policyAssignment": {"displayName": "AllOn", "assignmentType": "group", "policyId": "f7593e81-772a-4455-88a3-fc9e5ebc1e4a", "groupId": "75ae6229-35fe-4b01-ae7f-7c50439d239c"}},
              {"policyType": "OnlineVoiceRoutingPolicy", "policyAssignment": {"displayName": "Via group", "assignmentType": "group", "policyId": "x"}}
            ],
            "telephoneNumbers": [{"telephoneNumber": "+13235533696", "assignmentCategory": "primary"}],
            "isEnterpriseVoiceEnabled": false,
            "featureTypes": ["Teams", "CallingPlan"],
            "accountType": "user"
          }]
        }))
        .unwrap();
        let c = &page.value[0];
        assert_eq!(primary_number(c).unwrap().to_string(), "+13235533696");
        assert_eq!(direct_vrp(c), None);
        assert!(!is_resource_account(c));
    }

    /// The documented list of users (Graph's example 1) maps to users, licenses none.
    #[test]
    fn the_documented_user_list() {
        let page: wire::Page<wire::User> = serde_json::from_str(include_str!(
            "../../../tests/fixtures/graph/docs_user_list_example1_response.json"
        ))
        .unwrap();
        let users: Vec<TenantUser> = page.value.iter().filter_map(|u| user(u, None)).collect();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].upn.as_str(), "adams@contoso.com");
        assert_eq!(users[1].display_name, "MOD Administrator");
        assert!(page.next_link.is_none());
        let delta: wire::Page<wire::User> = serde_json::from_str(include_str!(
            "../../../tests/fixtures/graph/docs_user_delta_example1_response_nextlink.json"
        ))
        .unwrap();
        assert!(delta.next_link.unwrap().contains("$skiptoken="));
        // "userPrincipalName-value" is no UPN: left out rather than guessed.
        assert!(user(&delta.value[0], None).is_none());
    }

    #[test]
    fn the_documented_subscribed_skus() {
        let page: wire::Page<wire::SubscribedSku> = serde_json::from_str(include_str!(
            "../../../tests/fixtures/graph/docs_subscribedskus_list_response.json"
        ))
        .unwrap();
        assert_eq!(page.value[0].sku_part_number, "ENTERPRISEPREMIUM");
        assert_eq!(page.value[0].prepaid_units.as_ref().unwrap().enabled, 25);
        assert_eq!(page.value[1].consumed_units, 14);
    }
}
