//! `teamsync sim`: serve a simulated backend on loopback until Ctrl-C.

use super::{CliError, CmdResult, Ctx};
use crate::cli::SimArgs;
use crate::sim::fusion::{self as fsim, FusionSim, SimOptions};

pub async fn run(_ctx: &Ctx, args: SimArgs) -> CmdResult {
    if args.backend != "fusion" && args.backend != "portsip" {
        return Err(CliError::Invalid(format!(
            "--backend {:?}: available simulators: fusion, portsip",
            args.backend
        )));
    }
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(CliError::Invalid(
            "--fault-rate must be between 0 and 1".into(),
        ));
    }
    if args.state.is_none() && args.seed.is_none() {
        return Err(CliError::Invalid(
            "give --seed FILE (and --state FILE to keep state between runs)".into(),
        ));
    }
    let opts = SimOptions {
        token: args.token.clone(),
        rate_limit: args.rate_limit,
        latency_ms: args.latency_ms,
        fault_rate: args.fault_rate,
        ..SimOptions::default()
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::Invalid(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?;
    if args.backend == "portsip" {
        return run_portsip(args, opts, listener).await;
    }
    let sim = FusionSim::open(args.state.as_deref(), args.seed.as_deref(), opts)
        .map_err(|e| CliError::Invalid(format!("simulator: {e}")))?;
    let t = sim.tenant_path();
    eprintln!(
        "fusion simulator on http://{addr}/api/v01/draas/{}/tenants/{}/subscriptions/{}/msteams/ (Ctrl-C to stop)",
        t.draas_instance, t.tenant_uuid, t.subscription_id
    );
    fsim::run(listener, sim, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| CliError::Other(anyhow::anyhow!("simulator: {e}")))?;
    Ok(0)
}

/// `--backend portsip`: the PortSIP users simulator, same options as Fusion's.
async fn run_portsip(
    args: SimArgs,
    opts: SimOptions,
    listener: tokio::net::TcpListener,
) -> CmdResult {
    use crate::sim::portsip::{self as psim, PortsipSim};
    let sim = PortsipSim::open(args.state.as_deref(), args.seed.as_deref(), opts)
        .map_err(|e| CliError::Invalid(format!("simulator: {e}")))?;
    if let Ok(addr) = listener.local_addr() {
        eprintln!("portsip simulator on http://{addr}/api/users (Ctrl-C to stop)");
    }
    psim::run(listener, sim, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| CliError::Other(anyhow::anyhow!("simulator: {e}")))?;
    Ok(0)
}
