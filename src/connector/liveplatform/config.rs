//! A Live Platform customer's `[tenants.X]` table, and how it connects.

use super::{LivePlatformConnector, LivePlatformSettings, DEFAULT_PAGE_SIZE};
use crate::connector::http::HttpSettings;
use crate::connector::registry::{url_identity, Backend, Connected, OpenError, TenantTable};
use crate::connector::Gate;
use async_trait::async_trait;
use std::sync::Arc;

crate::tenant_table! {
    remote
    /// `backend = "liveplatform"`: an AudioCodes Live Platform customer (read-only).
    pub struct LivePlatformConfig {
        /// The customer's `umpCustomerGuid`.
        pub customer_id: String,
    }
}

#[async_trait]
impl TenantTable for LivePlatformConfig {
    fn backend(&self) -> &'static Backend {
        &super::BACKEND
    }

    fn identity(&self) -> String {
        format!(
            "liveplatform {} customer {}",
            url_identity(&self.base_url),
            self.customer_id.to_ascii_lowercase()
        )
    }

    async fn connect(&self, gate: Arc<Gate>) -> Result<Connected, OpenError> {
        Ok(Connected::remote(LivePlatformConnector::new(
            self.settings(),
            gate,
        )?))
    }
}

impl LivePlatformConfig {
    /// The connector's settings: the token from `token_command` if set, else `token_env`.
    pub fn settings(&self) -> LivePlatformSettings {
        LivePlatformSettings {
            base_url: self.base_url.clone(),
            customer_id: self.customer_id.clone(),
            page_size: DEFAULT_PAGE_SIZE,
            http: HttpSettings::from_tenant_config(self),
        }
    }
}
