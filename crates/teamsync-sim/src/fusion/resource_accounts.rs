//! Resource accounts (call queues and auto attendants): list with filters, create, modify,
//! delete. They share the user table's rules: one UPN space, the same number inventory (a
//! number linked to a user cannot go to an account, and the reverse).
//!
//! Our readings: creating an account assigns it one `PHONESYSTEM_VIRTUALUSER` license (the
//! document says free ones are needed), so none free is a 400; its domain must be verified
//! like a user's; an unknown id is a 404 on modify and a 204 on delete ("deleted or not
//! found", as the document says).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Code};
use super::extract::{get, query_params, Body};
use super::state::{check_country, Account, Holder, Tenant, DRAAS_STATUS};
use super::users::{check_customer_licenses, check_display_name};
use super::wire::{CreateResourceAccount, InternalId, ModifyResourceAccount, ResourceAccounts};
use super::Shared;

/// The license every resource account holds.
pub const VIRTUAL_USER_SKU: &str = "PHONESYSTEM_VIRTUALUSER";

pub struct AccountId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for AccountId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        #[derive(Deserialize)]
        struct P {
            resource_account_id: String,
        }
        Path::<P>::from_request_parts(parts, state)
            .await
            .map(|p| AccountId(p.0.resource_account_id))
            .map_err(|e| ApiError::bad(Code::BadValue, format!("Invalid path: {e}")))
    }
}

/// The "MS Teams Resource Accounts Filters", as a URL-encoded JSON object like the users'.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    #[serde(default)]
    country: Option<Vec<String>>,
    #[serde(default)]
    have_number: Option<String>,
    #[serde(default, rename = "type")]
    account_type: Option<String>,
}

fn check_type(t: &str) -> Result<(), ApiError> {
    if t == "call-queue" || t == "auto-attendant" {
        Ok(())
    } else {
        Err(ApiError::bad(
            Code::BadValue,
            format!("accountType {t:?} must be call-queue or auto-attendant"),
        ))
    }
}

fn unknown(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::UnknownResourceAccount,
        format!("No MS Teams resource account found with id {id}"),
    )
}

/// `GET resource_accounts`.
pub async fn list(
    State(sh): State<Arc<Shared>>,
    uri: Uri,
) -> Result<Json<ResourceAccounts>, ApiError> {
    let params = query_params(uri.query(), &["refresh", "filters"])?;
    if let Some(v) = get(&params, "refresh") {
        if !["true", "false"].contains(&v) {
            return Err(ApiError::bad(
                Code::BadQuery,
                "refresh must be true or false",
            ));
        }
    }
    let f: Filters = match get(&params, "filters") {
        None => Filters::default(),
        Some(raw) => serde_json::from_str(raw).map_err(|e| {
            ApiError::bad(
                Code::BadQuery,
                format!("filters must be a JSON object of country / have_number / type: {e}"),
            )
        })?,
    };
    if let Some(h) = &f.have_number {
        if h != "yes" && h != "no" {
            return Err(ApiError::bad(
                Code::BadQuery,
                "filters.have_number must be yes or no",
            ));
        }
    }
    if let Some(t) = &f.account_type {
        check_type(t).map_err(|e| ApiError::bad(Code::BadQuery, e.reason))?;
    }
    Ok(Json(sh.read(|t| {
        ResourceAccounts {
            resource_accounts: t
                .accounts
                .values()
                .filter(|a| {
                    f.country
                        .as_ref()
                        .is_none_or(|cs| cs.iter().any(|c| c.eq_ignore_ascii_case(&a.location)))
                        && f.have_number
                            .as_ref()
                            .is_none_or(|h| (h == "yes") == a.phone_number.is_some())
                        && f.account_type.as_ref().is_none_or(|x| *x == a.account_type)
                })
                .map(|a| t.resource_account(a))
                .collect(),
        }
    })))
}

fn link_number(
    t: &Tenant,
    next_connection_id: &mut i64,
    a: &mut Account,
    number: Option<&str>,
) -> Result<(), ApiError> {
    match number {
        None => {
            a.phone_number = None;
            a.connection_id = None;
        }
        Some(n) => {
            t.check_number(n, &Holder::Account(a.id.clone()))?;
            if a.phone_number.as_deref() != Some(n) {
                a.phone_number = Some(n.to_string());
                a.connection_id = Some(*next_connection_id);
                *next_connection_id += 1;
            }
        }
    }
    Ok(())
}

/// `POST resource_accounts`: 200 `{"id": <internal id>}`.
pub async fn create(
    State(sh): State<Arc<Shared>>,
    Body(b): Body<CreateResourceAccount>,
) -> Result<Json<InternalId>, ApiError> {
    check_type(&b.account_type)?;
    let display_name = check_display_name(&b.display_name)?;
    check_country(&b.location)?;
    let customer = check_customer_licenses(b.customer_licenses.as_deref().unwrap_or(&[]))?;
    let upn = b.user_principal_name.trim().to_string();
    let id = sh.write(|t, change| {
        let Some((local, domain)) = upn.split_once('@') else {
            return Err(ApiError::bad(
                Code::BadValue,
                format!("userPrincipalName {upn:?} is not local@domain"),
            ));
        };
        if local.is_empty() || !t.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            return Err(ApiError::bad(
                Code::DomainNotVerified,
                format!("Domain {domain} is not a verified domain of the tenant"),
            ));
        }
        if t.upn_index.contains_key(&upn.to_lowercase()) {
            return Err(ApiError::bad(
                Code::UserExists,
                format!("Resource account {upn} already exists"),
            ));
        }
        let Some(sku) = t
            .licenses
            .iter()
            .find(|l| l.sku_part_number == VIRTUAL_USER_SKU)
            .map(|l| l.sku_id.clone())
        else {
            return Err(ApiError::bad(
                Code::NoFreeLicense,
                "The tenant has no Microsoft Teams Phone Resource Account license",
            ));
        };
        if t.free(&sku) < 1 {
            return Err(ApiError::bad(
                Code::NoFreeLicense,
                format!("No free license left for {VIRTUAL_USER_SKU} ({sku})"),
            ));
        }
        let draas_id = change.next_draas_id;
        change.next_draas_id += 1;
        let mut a = Account {
            id: uuid::Uuid::new_v4().to_string(),
            upn: upn.clone(),
            display_name,
            location: b.location.clone(),
            account_type: b.account_type.clone(),
            licenses: vec![sku],
            vrp: None,
            phone_number: None,
            connection_id: None,
            draas_id,
            customer_licenses: customer,
            status: DRAAS_STATUS.to_string(),
        };
        link_number(
            t,
            &mut change.next_connection_id,
            &mut a,
            b.phone_number.as_deref(),
        )?;
        change.upsert_accounts.push(a);
        Ok(draas_id)
    })?;
    Ok(Json(InternalId { id }))
}

/// `PUT resource_accounts/{id}`: 200 `{"id": <internal id>}`.
pub async fn modify(
    State(sh): State<Arc<Shared>>,
    AccountId(id): AccountId,
    Body(b): Body<ModifyResourceAccount>,
) -> Result<Json<InternalId>, ApiError> {
    let draas_id = sh.write(|t, change| {
        let mut a = t.accounts.get(&id).cloned().ok_or_else(|| unknown(&id))?;
        if let Some(x) = &b.account_type {
            check_type(x)?;
            a.account_type.clone_from(x);
        }
        if let Some(n) = &b.display_name {
            a.display_name = check_display_name(n)?;
        }
        if let Some(l) = &b.location {
            check_country(l)?;
            a.location.clone_from(l);
        }
        if let Some(n) = &b.phone_number {
            link_number(t, &mut change.next_connection_id, &mut a, n.as_deref())?;
        }
        if let Some(v) = &b.vrp {
            if let Some(v) = v {
                t.check_vrp(v)?;
            }
            a.vrp.clone_from(v);
        }
        if let Some(c) = &b.customer_licenses {
            a.customer_licenses = check_customer_licenses(c)?;
        }
        let draas_id = a.draas_id;
        change.upsert_accounts.push(a);
        Ok(draas_id)
    })?;
    Ok(Json(InternalId { id: draas_id }))
}

/// `DELETE resource_accounts/{id}`: frees its license, number and customer licenses; an
/// unknown id is also a 204.
pub async fn delete(
    State(sh): State<Arc<Shared>>,
    AccountId(id): AccountId,
) -> Result<StatusCode, ApiError> {
    sh.write(|t, change| {
        if t.accounts.contains_key(&id) {
            change.delete_accounts.push(id.clone());
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}
