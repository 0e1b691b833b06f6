//! UMP's simulator (`teamsync-sim`'s `ump`) as an embedded tenant or `teamsync sim`.

use super::{UmpConnector, UmpSettings};
use crate::connector::registry::SimServer;
use std::path::Path;
use std::sync::Arc;
use teamsync_sim::ump::UmpSim;
use teamsync_sim::{SimError, SimOptions};

/// Opens the simulator. Its connector takes the voice policies from the seed (the
/// simulator accepts exactly those), since UMP's API cannot list them and an embedded
/// tenant has no `voice_policies` key to repeat them in.
pub fn open(
    state: Option<&Path>,
    seed: Option<&Path>,
    opts: SimOptions,
) -> Result<SimServer, SimError> {
    let sim = UmpSim::open(state, seed, opts)?;
    let voice_policies = sim.voice_policies();
    Ok(SimServer {
        api_path: "/sysadmin/api/".into(),
        router: sim.router(),
        connect: Box::new(move |base_url, http, gate| {
            let s = UmpSettings {
                page_size: 100,
                voice_policies,
                http,
                ..UmpSettings::new(base_url)
            };
            Ok(Arc::new(UmpConnector::new(s, gate)?))
        }),
    })
}
