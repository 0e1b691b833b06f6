//! Live Platform's simulator (`teamsync-sim`'s `liveplatform`) as an embedded tenant or
//! `teamsync sim`.

use super::{LivePlatformConnector, LivePlatformSettings};
use crate::connector::http::TokenSource;
use crate::connector::registry::SimServer;
use std::path::Path;
use std::sync::Arc;
use teamsync_sim::liveplatform::LivePlatformSim;
use teamsync_sim::{SimError, SimOptions};

/// Opens the simulator; its connector addresses the customer the seed holds.
pub fn open(
    state: Option<&Path>,
    seed: Option<&Path>,
    opts: SimOptions,
) -> Result<SimServer, SimError> {
    let sim = LivePlatformSim::open(state, seed, opts)?;
    let customer = sim.customer_guid();
    Ok(SimServer {
        api_path: format!("/api/v3/customer/{customer}/user"),
        router: sim.router(),
        connect: Box::new(move |base_url, http, gate| {
            let s = LivePlatformSettings {
                http,
                ..LivePlatformSettings::new(base_url, customer, TokenSource::None)
            };
            Ok(Arc::new(LivePlatformConnector::new(s, gate)?))
        }),
    })
}
