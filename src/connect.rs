//! Turns a configured tenant into a live connector. A `sim` tenant starts the embedded
//! simulator in-process on a loopback port with a random token of its own, so the
//! README's first command works on a fresh clone with no server to set up.

use crate::config::{BackendKind, TenantConfig};
use crate::connector::fusion::{FusionConnector, FusionSettings};
use crate::connector::gate::GateConfig;
use crate::connector::http::{HttpSettings, TokenSource};
use crate::connector::liveplatform::{LivePlatformConnector, LivePlatformSettings};
use crate::connector::portsip::{PortsipConnector, PortsipSettings};
use crate::connector::ump::{UmpConnector, UmpSettings};
use crate::connector::{Connector, ConnectorError, Gate};
use std::sync::Arc;
use teamsync_sim::common::conn::Background;
use teamsync_sim::fusion::{self as fsim, FusionSim};
use teamsync_sim::liveplatform::{self as lpsim, LivePlatformSim};
use teamsync_sim::portsip::{self as psim, PortsipSim};
use teamsync_sim::ump::{self as usim, UmpSim};
use teamsync_sim::SimOptions;

/// A connected tenant. Keeps the embedded simulator alive as long as it lives.
pub struct Tenant {
    pub name: String,
    pub config: TenantConfig,
    pub connector: Arc<dyn Connector>,
    pub gate: Arc<Gate>,
    sim: Option<Background>,
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
        let gate = Arc::new(Gate::with_config(&GateConfig::from_tenant(cfg, rate)));
        let setup = |message: String| ConnectError::Setup {
            tenant: name.to_string(),
            message,
        };
        let tenant =
            |connector: Arc<dyn Connector>, gate: Arc<Gate>, sim: Option<Background>| Tenant {
                name: name.to_string(),
                config: cfg.clone(),
                connector,
                gate,
                sim,
            };
        let connector_err = |source: ConnectorError| ConnectError::Connector {
            tenant: name.to_string(),
            source,
        };
        match cfg.backend {
            BackendKind::Sim => {
                let which = cfg.sim_backend.as_deref().unwrap_or("fusion");
                let embedded = match which {
                    "fusion" => None,
                    "liveplatform" => Some(embedded_liveplatform(cfg, gate.clone()).await),
                    "portsip" => Some(embedded_portsip(cfg, gate.clone()).await),
                    "ump" => Some(embedded_ump(cfg, gate.clone()).await),
                    _ => {
                        return Err(setup(format!(
                            "sim_backend {which:?} is not available as an embedded tenant (available: fusion, liveplatform, portsip, ump)"
                        )))
                    }
                };
                if let Some(embedded) = embedded {
                    let (connector, sim) = embedded.map_err(setup)?;
                    return Ok(tenant(connector, gate, Some(sim)));
                }
                if let Some(state) = &cfg.state {
                    if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| setup(format!("cannot create {}: {e}", dir.display())))?;
                    }
                }
                let token = random_token();
                let opts = sim_options(cfg, &token);
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
                    page_size: 100,
                    http: embedded_http(cfg, TokenSource::Static(token)),
                };
                let connector =
                    FusionConnector::new(settings, gate.clone()).map_err(connector_err)?;
                Ok(tenant(
                    Arc::new(connector),
                    gate,
                    Some(running.into_background()),
                ))
            }
            BackendKind::Fusion => {
                let connector = FusionConnector::from_tenant_config(cfg, gate.clone())
                    .map_err(connector_err)?;
                Ok(tenant(Arc::new(connector), gate, None))
            }
            BackendKind::Liveplatform => {
                let connector = LivePlatformConnector::from_tenant_config(cfg, gate.clone())
                    .map_err(connector_err)?;
                Ok(tenant(Arc::new(connector), gate, None))
            }
            BackendKind::Portsip => {
                let connector = PortsipConnector::from_tenant_config(cfg, gate.clone())
                    .map_err(connector_err)?;
                Ok(tenant(Arc::new(connector), gate, None))
            }
            BackendKind::Ump => {
                let connector = UmpSettings::from_tenant_config(cfg)
                    .and_then(|s| UmpConnector::new(s, gate.clone()))
                    .map_err(connector_err)?;
                Ok(tenant(Arc::new(connector), gate, None))
            }
        }
    }

    /// Stops the embedded simulator (if any) cleanly, so its state file is complete.
    pub async fn close(self) {
        if let Some(sim) = self.sim {
            sim.shutdown().await;
        }
    }
}

/// The Live Platform simulator in-process, and a connector to it with a token of its own.
async fn embedded_liveplatform(
    cfg: &TenantConfig,
    gate: Arc<Gate>,
) -> Result<(Arc<dyn Connector>, Background), String> {
    let token = random_token();
    let opts = sim_options(cfg, &token);
    let sim = LivePlatformSim::open(cfg.state.as_deref(), cfg.seed.as_deref(), opts)
        .map_err(|e| format!("embedded simulator: {e}"))?;
    let customer = sim.customer_guid();
    let running = lpsim::start(sim)
        .await
        .map_err(|e| format!("embedded simulator: {e}"))?;
    let s = LivePlatformSettings {
        http: embedded_http(cfg, TokenSource::Static(token)),
        ..LivePlatformSettings::new(running.base_url(), customer, TokenSource::None)
    };
    let connector = LivePlatformConnector::new(s, gate).map_err(|e| e.to_string())?;
    Ok((Arc::new(connector), running))
}

/// The PortSIP simulator in-process, and a connector to it with a token of its own.
async fn embedded_portsip(
    cfg: &TenantConfig,
    gate: Arc<Gate>,
) -> Result<(Arc<dyn Connector>, Background), String> {
    let token = random_token();
    let opts = sim_options(cfg, &token);
    let sim = PortsipSim::open(cfg.state.as_deref(), cfg.seed.as_deref(), opts)
        .map_err(|e| format!("embedded PortSIP simulator: {e}"))?;
    let running = psim::start(sim)
        .await
        .map_err(|e| format!("embedded PortSIP simulator: {e}"))?;
    let s = PortsipSettings {
        http: embedded_http(cfg, TokenSource::Static(token)),
        ..PortsipSettings::new(running.base_url(), TokenSource::None)
    };
    let connector = PortsipConnector::new(s, gate).map_err(|e| e.to_string())?;
    Ok((Arc::new(connector), running))
}

/// The UMP simulator in-process, and a connector to it. UMP documents no authentication,
/// so the embedded server asks for none.
async fn embedded_ump(
    cfg: &TenantConfig,
    gate: Arc<Gate>,
) -> Result<(Arc<dyn Connector>, Background), String> {
    let opts = SimOptions {
        token: None,
        ..sim_options(cfg, "")
    };
    let sim = UmpSim::open(cfg.state.as_deref(), cfg.seed.as_deref(), opts)
        .map_err(|e| format!("embedded UMP simulator: {e}"))?;
    let running = usim::start(sim)
        .await
        .map_err(|e| format!("embedded UMP simulator: {e}"))?;
    let s = UmpSettings {
        page_size: 100,
        voice_policies: cfg.voice_policies.clone().unwrap_or_default(),
        http: embedded_http(cfg, TokenSource::None),
        ..UmpSettings::new(running.base_url())
    };
    let connector = UmpConnector::new(s, gate).map_err(|e| e.to_string())?;
    Ok((Arc::new(connector), running))
}

/// How a connector reaches an embedded simulator: with `token`, the tenant's timeout and
/// attempts. The simulator listens on loopback http, so the tenant's `ca_file` and
/// `allow_insecure_http` (meant for a real server) do not apply.
fn embedded_http(cfg: &TenantConfig, token: TokenSource) -> HttpSettings {
    HttpSettings {
        token,
        ca_file: None,
        allow_insecure_http: false,
        ..HttpSettings::from_tenant_config(cfg)
    }
}

/// An embedded simulator's knobs from the tenant's `sim_*` keys.
fn sim_options(cfg: &TenantConfig, token: &str) -> SimOptions {
    SimOptions {
        token: Some(token.to_string()),
        rate_limit: cfg.sim_rate_limit,
        latency_ms: cfg.sim_latency_ms.unwrap_or(0),
        fault_rate: cfg.sim_fault_rate.unwrap_or(0.0),
        ..SimOptions::default()
    }
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
}
