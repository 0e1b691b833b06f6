//! PortSIP's simulator (`teamsync-sim`'s `portsip`) as an embedded tenant or `teamsync sim`.

use super::{PortsipConnector, PortsipSettings};
use crate::connector::http::TokenSource;
use crate::connector::registry::SimServer;
use std::path::Path;
use std::sync::Arc;
use teamsync_sim::portsip::PortsipSim;
use teamsync_sim::{SimError, SimOptions};

pub fn open(
    state: Option<&Path>,
    seed: Option<&Path>,
    opts: SimOptions,
) -> Result<SimServer, SimError> {
    let sim = PortsipSim::open(state, seed, opts)?;
    Ok(SimServer {
        api_path: "/api/users".into(),
        router: sim.router(),
        connect: Box::new(move |base_url, http, gate| {
            let s = PortsipSettings {
                http,
                ..PortsipSettings::new(base_url, TokenSource::None)
            };
            Ok(Arc::new(PortsipConnector::new(s, gate)?))
        }),
    })
}
