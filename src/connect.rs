//! Turns a configured tenant into a live connector. A `sim` tenant starts the embedded
//! simulator in-process on a loopback port with a random token of its own, so the
//! README's first command works on a fresh clone with no server to set up.

use crate::config::{BackendKind, TenantConfig};
use crate::connector::fusion::{FusionConnector, FusionSettings, TokenSource};
use crate::connector::retry::RetryPolicy;
use crate::connector::ump::{UmpConnector, UmpSettings};
use crate::connector::{Connector, ConnectorError, Gate};
use crate::sim::fusion::{self as fsim, FusionSim, RunningServer, SimOptions};
use crate::sim::ump::{self as usim, UmpSim};
use std::sync::Arc;
use std::time::Duration;

/// A connected tenant. Keeps the embedded simulator alive as long as it lives.
pub struct Tenant {
    pub name: String,
    pub config: TenantConfig,
    pub connector: Arc<dyn Connector>,
    pub gate: Arc<Gate>,
    sim: Option<RunningServer>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("tenant {tenant:?}: {message}")]
    Setup { tenant: String, message: String },
    #[error("tenant {tenant:?}: {source}")]
    Connector {
        tenant: String,
        source: ConnectorError,
    },
}

impl Tenant {
    /// `rate` overrides the tenant's `rate_per_second` (the `--rate` flag).
    pub async fn open(
        name: &str,
        cfg: &TenantConfig,
        rate: Option<f64>,
    ) -> Result<Tenant, ConnectError> {
        let rate = rate.unwrap_or(cfg.rate_per_second);
        let gate = Arc::new(Gate::new(rate, cfg.burst));
        let setup = |message: String| ConnectError::Setup {
            tenant: name.to_string(),
            message,
        };
        let timeout = Duration::from_secs(cfg.request_timeout_s.max(1));
        let connector_err = |source: ConnectorError| ConnectError::Connector {
            tenant: name.to_string(),
            source,
        };
        let sim_opts = |token: Option<String>| SimOptions {
            token,
            rate_limit: cfg.sim_rate_limit,
            latency_ms: cfg.sim_latency_ms.unwrap_or(0),
            fault_rate: cfg.sim_fault_rate.unwrap_or(0.0),
            ..SimOptions::default()
        };
        let tenant = |connector: Arc<dyn Connector>, sim: Option<RunningServer>| Tenant {
            name: name.to_string(),
            config: cfg.clone(),
            connector,
            gate: gate.clone(),
            sim,
        };
        match cfg.backend {
            BackendKind::Sim if cfg.sim_backend.as_deref() == Some("ump") => {
                // UMP documents no authentication: the embedded server asks for none.
                let sim = UmpSim::open(cfg.state.as_deref(), cfg.seed.as_deref(), sim_opts(None))
                    .map_err(|e| setup(format!("embedded UMP simulator: {e}")))?;
                let running = usim::start(sim)
                    .await
                    .map_err(|e| setup(format!("embedded UMP simulator: {e}")))?;
                let mut s = UmpSettings::new(running.base_url());
                s.request_timeout = timeout;
                s.page_size = 100;
                s.retry.max_attempts = cfg.max_attempts.max(1);
                s.voice_policies = cfg.voice_policies.clone().unwrap_or_default();
                let connector = UmpConnector::new(s, gate.clone()).map_err(connector_err)?;
                Ok(tenant(Arc::new(connector), Some(running)))
            }
            BackendKind::Ump => {
                let connector = UmpSettings::from_tenant_config(cfg)
                    .and_then(|s| UmpConnector::new(s, gate.clone()))
                    .map_err(connector_err)?;
                Ok(tenant(Arc::new(connector), None))
            }
            BackendKind::Sim => {
                let which = cfg.sim_backend.as_deref().unwrap_or("fusion");
                if which != "fusion" {
                    return Err(setup(format!(
                        "sim_backend {which:?} is not available as an embedded tenant (available: fusion, ump)"
                    )));
                }
                if let Some(state) = &cfg.state {
                    if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| setup(format!("cannot create {}: {e}", dir.display())))?;
                    }
                }
                let token = random_token();
                let opts = sim_opts(Some(token.clone()));
                let sim = FusionSim::open(cfg.state.as_deref(), cfg.seed.as_deref(), opts)
                    .map_err(|e| setup(format!("embedded simulator: {e}")))?;
                let running = fsim::start(sim)
                    .await
                    .map_err(|e| setup(format!("embedded simulator: {e}")))?;
                let t = &running.tenant;
                let settings = FusionSettings {
                    base_url: running.base_url(),
                    draas_instance: t.draas_instance.clone(),
                    tenant_uuid: t.tenant_uuid.clone(),
                    subscription_id: t.subscription_id,
                    token: TokenSource::Static(token),
                    request_timeout: timeout,
                    ca_file: None,
                    allow_insecure_http: false,
                    page_size: 100,
                    retry: RetryPolicy {
                        max_attempts: cfg.max_attempts,
                        ..RetryPolicy::default()
                    },
                };
                let connector =
                    FusionConnector::new(settings, gate.clone()).map_err(connector_err)?;
                Ok(tenant(Arc::new(connector), Some(running.into_server())))
            }
            BackendKind::Fusion => {
                let connector = FusionConnector::from_tenant_config(cfg, gate.clone())
                    .map_err(connector_err)?;
                Ok(tenant(Arc::new(connector), None))
            }
            other => Err(setup(format!(
                "backend {:?} is not available in this build yet",
                other.as_str()
            ))),
        }
    }

    /// Stops the embedded simulator (if any) cleanly, so its state file is complete.
    pub async fn close(self) {
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
    }
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
}
