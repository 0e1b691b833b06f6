//! A PortSIP PBX's `[tenants.X]` table, and how it connects.

use super::{PortsipConnector, PortsipSettings, DEFAULT_PAGE_SIZE};
use crate::connector::http::HttpSettings;
use crate::connector::registry::{url_identity, Backend, Connected, OpenError, TenantTable};
use crate::connector::Gate;
use async_trait::async_trait;
use std::sync::Arc;

crate::tenant_table! {
    remote
    /// `backend = "portsip"`: a PortSIP PBX (`/api/users` is added to `base_url`); it takes
    /// only the shared keys.
    pub struct PortsipConfig {}
}

#[async_trait]
impl TenantTable for PortsipConfig {
    fn backend(&self) -> &'static Backend {
        &super::BACKEND
    }

    fn identity(&self) -> String {
        format!("portsip {}", url_identity(&self.base_url))
    }

    async fn connect(&self, gate: Arc<Gate>) -> Result<Connected, OpenError> {
        Ok(Connected::remote(PortsipConnector::new(
            self.settings(),
            gate,
        )?))
    }
}

impl PortsipConfig {
    /// The connector's settings: the token from `token_command` if set, else `token_env`.
    pub fn settings(&self) -> PortsipSettings {
        PortsipSettings {
            base_url: self.base_url.clone(),
            page_size: DEFAULT_PAGE_SIZE,
            http: HttpSettings::from_tenant_config(self),
        }
    }
}
