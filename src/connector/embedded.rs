//! A `sim` tenant: any backend's simulator started in-process on a loopback port, with a
//! random token of its own, so the README's first commands work on a fresh clone with no
//! server to set up. Which simulator, and how to connect to it, is the backend's
//! ([`Backend::open_sim`]); this file only starts it.

use super::http::{HttpSettings, TokenSource};
use super::registry::{self, Backend, Connected, OpenError, TenantTable};
use super::Gate;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use teamsync_sim::common::conn::Background;
use teamsync_sim::{SimError, SimOptions};

crate::tenant_table! {
    local paths[seed, state]
    /// `backend = "sim"` (or no `backend`): an embedded simulator.
    pub struct SimConfig {
        /// Which backend's simulator (default: fusion).
        #[serde(
            default = "default_sim_backend",
            deserialize_with = "registry::deserialize_backend"
        )]
        pub sim_backend: &'static Backend,
        /// Seed JSON in the vendor's shapes, read when the state is new; without one, the
        /// sample the simulator ships (`samples/`).
        #[serde(default)]
        pub seed: Option<PathBuf>,
        /// SQLite state file, kept between runs; in memory without one.
        #[serde(default)]
        pub state: Option<PathBuf>,
        /// Requests per second before the simulator answers 429.
        #[serde(default)]
        pub sim_rate_limit: Option<u32>,
        /// Added to every answer.
        #[serde(default)]
        pub sim_latency_ms: Option<u64>,
        /// Share of requests answered 500/503 or dropped (0..1).
        #[serde(default)]
        pub sim_fault_rate: Option<f64>,
    }
}

fn default_sim_backend() -> &'static Backend {
    &super::fusion::BACKEND
}

#[async_trait]
impl TenantTable for SimConfig {
    fn backend(&self) -> &'static Backend {
        self.sim_backend
    }

    /// The state file (an in-memory simulator is private to its process).
    fn identity(&self) -> String {
        let which = self.sim_backend.name;
        match &self.state {
            Some(state) => format!(
                "sim {which} state {}",
                std::path::absolute(state)
                    .unwrap_or_else(|_| state.clone())
                    .display()
            ),
            None => format!("sim {which} in-memory pid {}", std::process::id()),
        }
    }

    fn check(&self) -> Result<(), String> {
        match self.sim_fault_rate {
            Some(f) if !(0.0..=1.0).contains(&f) => {
                Err("sim_fault_rate must be between 0 and 1".into())
            }
            _ => Ok(()),
        }
    }

    async fn connect(&self, gate: Arc<Gate>) -> Result<Connected, OpenError> {
        let b = self.sim_backend;
        let state_is_new = self.state.as_ref().is_none_or(|s| !s.exists());
        if let Some(seed) = self.seed.as_ref().filter(|s| state_is_new && !s.exists()) {
            return Err(OpenError::SeedMissing {
                path: seed.display().to_string(),
            });
        }
        if let Some(dir) = self
            .state
            .as_ref()
            .and_then(|s| s.parent())
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::StateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let sim_err = |source: SimError| OpenError::Sim {
            backend: b.name,
            source,
        };
        let token = b.sim_token.then(random_token);
        let opts = SimOptions {
            token: token.clone(),
            rate_limit: self.sim_rate_limit,
            latency_ms: self.sim_latency_ms.unwrap_or(0),
            fault_rate: self.sim_fault_rate.unwrap_or(0.0),
            ..SimOptions::default()
        };
        let server =
            (b.open_sim)(self.state.as_deref(), self.seed.as_deref(), opts).map_err(sim_err)?;
        let running = Background::spawn(server.router)
            .await
            .map_err(|e| sim_err(SimError::Io(e)))?;
        // The simulator listens on loopback http: no CA file, no insecure-http allowance;
        // the tenant's timeout and attempts apply.
        let http = HttpSettings {
            token: token.map_or(TokenSource::None, TokenSource::Static),
            ..HttpSettings::from_tenant_config(self)
        };
        let connector = (server.connect)(running.base_url(), http, gate)?;
        Ok(Connected {
            connector,
            sim: Some(running),
        })
    }
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    hex::encode(bytes)
}
