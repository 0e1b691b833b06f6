//! Turns a configured tenant into a live connector, whatever its backend: the tenant's
//! table knows how ([`TenantConfig::connect`], from the registry of backends). A `sim`
//! tenant starts the embedded simulator in-process, so the README's first command works
//! on a fresh clone with no server to set up.

use crate::config::TenantConfig;
use crate::connector::gate::GateConfig;
use crate::connector::registry::OpenError;
use crate::connector::{Connector, Gate};
use std::sync::Arc;
use teamsync_sim::common::conn::Background;

/// A connected tenant. Keeps the embedded simulator alive as long as it lives.
pub struct Tenant {
    pub name: String,
    pub config: TenantConfig,
    pub connector: Arc<dyn Connector>,
    pub gate: Arc<Gate>,
    sim: Option<Background>,
}

#[derive(Debug, thiserror::Error)]
#[error("tenant {tenant:?}: {source}")]
pub struct ConnectError {
    pub tenant: String,
    #[source]
    pub source: OpenError,
}

impl Tenant {
    /// `rate` overrides the tenant's `rate_per_second` (the `--rate` flag).
    pub async fn open(
        name: &str,
        cfg: &TenantConfig,
        rate: Option<f64>,
    ) -> Result<Tenant, ConnectError> {
        let gate = Arc::new(Gate::with_config(&GateConfig::from_tenant(cfg, rate)));
        let opened = cfg
            .connect(gate.clone())
            .await
            .map_err(|source| ConnectError {
                tenant: name.to_string(),
                source,
            })?;
        Ok(Tenant {
            name: name.to_string(),
            config: cfg.clone(),
            connector: opened.connector,
            gate,
            sim: opened.sim,
        })
    }

    /// Stops the embedded simulator (if any) cleanly, so its state file is complete.
    pub async fn close(self) {
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
    }
}
