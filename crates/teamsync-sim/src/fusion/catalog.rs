//! The tenant-wide read endpoints: status, verified domains, licenses (with free counts
//! derived from assignments) and VRPs. Groups, which carry the SRE filter, are in
//! `group_filter`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::{ApiError, Code};
use super::extract::{get, query_params};
use super::wire::{Domains, Licenses, Vrps};
use super::Shared;

fn no_query(uri: &Uri) -> Result<(), ApiError> {
    query_params(uri.query(), &[]).map(|_| ())
}

/// `GET status`: the seed's `status` object, or an onboarded direct-routing tenant.
pub async fn status(State(sh): State<Arc<Shared>>, uri: Uri) -> Result<Json<Value>, ApiError> {
    no_query(&uri)?;
    let body = sh.read(|t| {
        let mut m: Map<String, Value> = t.status.clone().unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("mode".into(), json!("direct_routing"));
            m.insert("status".into(), json!("onboarded"));
            m.insert("powershell".into(), json!({"active": true}));
            m.insert("msGraph".into(), json!({"active": true}));
            if let Some(d) = t.domains.first() {
                m.insert("domain".into(), json!({"name": d, "verified": true}));
            }
            m
        });
        m.insert("msTenantId".into(), json!(t.ms_tenant_id));
        Value::Object(m)
    });
    Ok(Json(body))
}

/// `GET domains`.
pub async fn domains(State(sh): State<Arc<Shared>>, uri: Uri) -> Result<Json<Domains>, ApiError> {
    no_query(&uri)?;
    Ok(Json(sh.read(|t| Domains {
        verified_domains: t.domains.clone(),
    })))
}

/// `GET licenses[?free_only=yes|no]`.
pub async fn licenses(State(sh): State<Arc<Shared>>, uri: Uri) -> Result<Json<Licenses>, ApiError> {
    let params = query_params(uri.query(), &["free_only"])?;
    let free_only = match get(&params, "free_only") {
        None | Some("no") => false,
        Some("yes") => true,
        Some(_) => {
            return Err(ApiError::bad(Code::BadQuery, "free_only must be yes or no"));
        }
    };
    Ok(Json(sh.read(|t| {
        Licenses {
            licenses: t
                .licenses
                .iter()
                .map(|l| {
                    let mut l = l.clone();
                    l.free = t.free(&l.sku_id);
                    l
                })
                .filter(|l| !free_only || l.free > 0)
                .collect(),
        }
    })))
}

/// `GET vrps`.
pub async fn vrps(State(sh): State<Arc<Shared>>, uri: Uri) -> Result<Json<Vrps>, ApiError> {
    no_query(&uri)?;
    Ok(Json(sh.read(|t| Vrps {
        results: t.vrps.clone(),
    })))
}
