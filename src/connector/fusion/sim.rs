//! Fusion's simulator (`teamsync-sim`'s `fusion`) as an embedded tenant or `teamsync sim`.

use super::{FusionConnector, FusionSettings};
use crate::connector::registry::SimServer;
use std::path::Path;
use std::sync::Arc;
use teamsync_sim::fusion::FusionSim;
use teamsync_sim::{SimError, SimOptions};

/// Opens the simulator; its connector reads pages of 100 (the simulator's own cap).
pub fn open(
    state: Option<&Path>,
    seed: Option<&Path>,
    opts: SimOptions,
) -> Result<SimServer, SimError> {
    let sim = FusionSim::open(state, seed, opts)?;
    let t = sim.tenant_path();
    Ok(SimServer {
        api_path: format!("{}/", t.api_prefix()),
        router: sim.router(),
        connect: Box::new(move |base_url, http, gate| {
            let s = FusionSettings {
                base_url,
                draas_instance: t.draas_instance,
                tenant_uuid: t.tenant_uuid,
                subscription_id: t.subscription_id,
                page_size: 100,
                bulk_size: super::bulk::DEFAULT_BULK_SIZE,
                http,
            };
            Ok(Arc::new(FusionConnector::new(s, gate)?))
        }),
    })
}
