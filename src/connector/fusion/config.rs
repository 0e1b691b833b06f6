//! A Fusion tenant's `[tenants.X]` table, and how it connects.

use super::{FusionConnector, FusionSettings, DEFAULT_PAGE_SIZE};
use crate::connector::http::HttpSettings;
use crate::connector::registry::{url_identity, Backend, Connected, OpenError, TenantTable};
use crate::connector::Gate;
use async_trait::async_trait;
use std::sync::Arc;

crate::tenant_table! {
    remote
    /// `backend = "fusion"`: a Netaxis Fusion tenant, addressed by its DRaaS path
    /// (`/api/v01/draas/{draas_instance}/tenants/{tenant_uuid}/subscriptions/{subscription_id}/msteams`).
    pub struct FusionConfig {
        pub draas_instance: String,
        pub tenant_uuid: String,
        pub subscription_id: i64,
        /// Users per `PUT users/bulk` (default 100, at most 1,000; 0 = one request per
        /// user and change, through the per-user endpoints). See `fusion::bulk`.
        #[serde(default = "default_bulk_size")]
        pub bulk_size: usize,
    }
}

fn default_bulk_size() -> usize {
    super::bulk::DEFAULT_BULK_SIZE
}

#[async_trait]
impl TenantTable for FusionConfig {
    fn backend(&self) -> &'static Backend {
        &super::BACKEND
    }

    fn identity(&self) -> String {
        format!(
            "fusion {} draas {} tenant {} subscription {}",
            url_identity(&self.base_url),
            self.draas_instance,
            self.tenant_uuid.to_ascii_lowercase(),
            self.subscription_id,
        )
    }

    async fn connect(&self, gate: Arc<Gate>) -> Result<Connected, OpenError> {
        Ok(Connected::remote(FusionConnector::new(
            self.settings(),
            gate,
        )?))
    }
}

impl FusionConfig {
    /// The connector's settings: the token from `token_command` if set, else `token_env`.
    pub fn settings(&self) -> FusionSettings {
        FusionSettings {
            base_url: self.base_url.clone(),
            draas_instance: self.draas_instance.clone(),
            tenant_uuid: self.tenant_uuid.clone(),
            subscription_id: self.subscription_id,
            page_size: DEFAULT_PAGE_SIZE,
            bulk_size: self.bulk_size,
            http: HttpSettings::from_tenant_config(self),
        }
    }
}
