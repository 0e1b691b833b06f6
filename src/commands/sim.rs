//! `teamsync sim`: serve a simulated backend on loopback until Ctrl-C.

use super::{CliError, CmdResult, Ctx};
use crate::cli::SimArgs;
use crate::sim::fusion::{self as fsim, FusionSim, SimOptions};
use crate::sim::ump::UmpSim;

pub async fn run(_ctx: &Ctx, args: SimArgs) -> CmdResult {
    if !["fusion", "ump"].contains(&args.backend.as_str()) {
        return Err(CliError::Invalid(format!(
            "--backend {:?}: available simulators: fusion, ump",
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
    let invalid = |e: fsim::SimError| CliError::Invalid(format!("simulator: {e}"));
    let (router, path) = if args.backend == "ump" {
        // `--token` stands for an authenticating proxy: UMP itself has none.
        let sim =
            UmpSim::open(args.state.as_deref(), args.seed.as_deref(), opts).map_err(invalid)?;
        (sim.router(), "/sysadmin/api/".to_string())
    } else {
        let sim =
            FusionSim::open(args.state.as_deref(), args.seed.as_deref(), opts).map_err(invalid)?;
        let path = format!("{}/", sim.tenant_path().api_prefix());
        (sim.router(), path)
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::Invalid(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?;
    eprintln!(
        "{} simulator on http://{addr}{path} (Ctrl-C to stop)",
        args.backend
    );
    fsim::serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| CliError::Other(anyhow::anyhow!("simulator: {e}")))?;
    Ok(0)
}
