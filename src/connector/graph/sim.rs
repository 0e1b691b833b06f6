//! Graph's simulator (`teamsync-sim`'s `graph`) as an embedded tenant or `teamsync sim`.
//! The embedded tenant's random token is the app's client secret; the connector gets its
//! access token from the simulator's token endpoint like from Microsoft identity.

use super::client::Auth;
use super::{GraphConnector, GraphSettings};
use crate::connector::http::TokenSource;
use crate::connector::registry::SimServer;
use std::path::Path;
use std::sync::Arc;
use teamsync_sim::graph::GraphSim;
use teamsync_sim::{SimError, SimOptions};

pub fn open(
    state: Option<&Path>,
    seed: Option<&Path>,
    opts: SimOptions,
) -> Result<SimServer, SimError> {
    let sim = GraphSim::open(state, seed, opts)?;
    let (tenant_id, client_id) = sim.app();
    let policies = sim.voice_routing_policies();
    Ok(SimServer {
        api_path: "/v1.0".into(),
        router: sim.router(),
        connect: Box::new(move |base_url, http, gate| {
            let secret = match &http.token {
                TokenSource::None => TokenSource::Static("any".into()),
                other => other.clone(),
            };
            let s = GraphSettings {
                auth: Auth::ClientSecret {
                    token_url: format!("{base_url}/{tenant_id}/oauth2/v2.0/token"),
                    client_id,
                    secret,
                },
                base_url,
                voice_routing_policies: policies,
                location_id: None,
                http,
            };
            Ok(Arc::new(GraphConnector::new(s, gate)?))
        }),
    })
}
