//! A UMP 365 server's `[tenants.X]` table, and how it connects.

use super::{UmpConnector, UmpSettings, DEFAULT_PAGE_SIZE};
use crate::connector::http::HttpSettings;
use crate::connector::registry::{url_identity, Backend, Connected, OpenError, TenantTable};
use crate::connector::Gate;
use async_trait::async_trait;
use std::sync::Arc;

crate::tenant_table! {
    remote
    /// `backend = "ump"`: an AudioCodes UMP 365 server (`/sysadmin/api` is added to
    /// `base_url`). UMP documents no authentication: `token_env`/`token_command` are for an
    /// authenticating proxy in front.
    pub struct UmpConfig {
        /// The voice policies a sheet's `vrp` may name: UMP has no call listing them.
        #[serde(default)]
        pub voice_policies: Vec<String>,
    }
}

#[async_trait]
impl TenantTable for UmpConfig {
    fn backend(&self) -> &'static Backend {
        &super::BACKEND
    }

    fn identity(&self) -> String {
        format!("ump {}", url_identity(&self.base_url))
    }

    async fn connect(&self, gate: Arc<Gate>) -> Result<Connected, OpenError> {
        Ok(Connected::remote(UmpConnector::new(self.settings(), gate)?))
    }
}

impl UmpConfig {
    /// The connector's settings (no token unless the table names one).
    pub fn settings(&self) -> UmpSettings {
        UmpSettings {
            base_url: self.base_url.clone(),
            page_size: DEFAULT_PAGE_SIZE,
            voice_policies: self.voice_policies.clone(),
            http: HttpSettings::from_tenant_config(self),
        }
    }
}
