//! A Microsoft Graph tenant's `[tenants.X]` table, and how it connects.

use super::client::Auth;
use super::{GraphConnector, GraphSettings};
use crate::connector::http::{HttpSettings, TokenSource};
use crate::connector::registry::{url_identity, Backend, Connected, OpenError, TenantTable};
use crate::connector::Gate;
use async_trait::async_trait;
use std::sync::Arc;

/// Where Microsoft identity issues tokens (`{authority}/{tenant_id}/oauth2/v2.0/token`).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

crate::tenant_table! {
    remote
    /// `backend = "graph"`: a Microsoft 365 tenant through Microsoft Graph (`base_url`,
    /// usually `https://graph.microsoft.com`; `/v1.0` is added). An app registration's
    /// client credentials get the token: the secret comes from `client_secret_env` or
    /// `client_secret_command`, never from this file. (`token_env`/`token_command` instead
    /// give a ready-made bearer token.)
    pub struct GraphConfig {
        /// The directory (tenant) id.
        pub tenant_id: String,
        /// The application (client) id of the app registration.
        #[serde(default)]
        pub client_id: Option<String>,
        /// Environment variable holding the client secret.
        #[serde(default)]
        pub client_secret_env: Option<String>,
        /// Command printing the client secret.
        #[serde(default)]
        pub client_secret_command: Option<String>,
        /// Microsoft identity's root (tests point it at the simulator).
        #[serde(default)]
        pub authority: Option<String>,
        /// The voice routing policies (OnlineVoiceRoutingPolicy names) a sheet's `vrp` may
        /// name: Graph has no call listing them.
        #[serde(default)]
        pub voice_routing_policies: Vec<String>,
        /// The emergency address location sent with every number assignment (`locationId`).
        #[serde(default)]
        pub location_id: Option<String>,
    }
}

#[async_trait]
impl TenantTable for GraphConfig {
    fn backend(&self) -> &'static Backend {
        &super::BACKEND
    }

    fn identity(&self) -> String {
        format!(
            "graph {} tenant {}",
            url_identity(&self.base_url),
            self.tenant_id.to_lowercase()
        )
    }

    fn check(&self) -> Result<(), String> {
        crate::config::check_url(&self.base_url, self.allow_insecure_http)?;
        if self.tenant_id.trim().is_empty() {
            return Err("tenant_id must not be empty".into());
        }
        let secret = self.client_secret_env.is_some() || self.client_secret_command.is_some();
        let bearer = self.token_env.is_some() || self.token_command.is_some();
        match (secret, bearer, self.client_id.is_some()) {
            (true, true, _) => Err(
                "give either client_secret_env/client_secret_command or token_env/token_command, not both"
                    .into(),
            ),
            (true, false, false) => Err("client_id is needed with a client secret".into()),
            (false, false, _) => Err(
                "client_secret_env or client_secret_command (with client_id) is needed: the secret never goes in this file"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    async fn connect(&self, gate: Arc<Gate>) -> Result<Connected, OpenError> {
        Ok(Connected::remote(GraphConnector::new(
            self.settings(),
            gate,
        )?))
    }
}

impl GraphConfig {
    pub fn settings(&self) -> GraphSettings {
        let http = HttpSettings::from_tenant_config(self);
        let secret = match (&self.client_secret_command, &self.client_secret_env) {
            (Some(c), _) => Some(TokenSource::Command(c.clone())),
            (None, Some(v)) => Some(TokenSource::Env(v.clone())),
            _ => None,
        };
        let auth = match (secret, &self.client_id) {
            (Some(secret), Some(client_id)) => Auth::ClientSecret {
                token_url: format!(
                    "{}/{}/oauth2/v2.0/token",
                    self.authority
                        .as_deref()
                        .unwrap_or(DEFAULT_AUTHORITY)
                        .trim_end_matches('/'),
                    self.tenant_id
                ),
                client_id: client_id.clone(),
                secret,
            },
            _ => Auth::Bearer(http.token.clone()),
        };
        GraphSettings {
            base_url: self.base_url.clone(),
            auth,
            voice_routing_policies: self.voice_routing_policies.clone(),
            location_id: self.location_id.clone(),
            http,
        }
    }
}
