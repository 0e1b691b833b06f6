//! `teamsync sim`: serve a simulated backend on loopback until Ctrl-C.

use super::{CliError, CmdResult, Ctx, Exit};
use crate::cli::SimArgs;
use teamsync_sim::fusion::{self as fsim, FusionSim};
use teamsync_sim::SimOptions;

pub async fn run(_ctx: &Ctx, args: SimArgs) -> CmdResult {
    if !["fusion", "liveplatform", "portsip", "ump"].contains(&args.backend.as_str()) {
        return Err(CliError::Invalid(format!(
            "--backend {:?}: available simulators: fusion, liveplatform, portsip, ump",
            args.backend
        )));
    }
    for (flag, v) in [
        ("--fault-rate", args.fault_rate),
        ("--throttle-share", args.throttle_share),
        ("--error-rate", args.error_rate),
        ("--drop-rate", args.drop_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(CliError::Invalid(format!("{flag} must be between 0 and 1")));
        }
    }
    if args.state.is_none() && args.seed.is_none() {
        return Err(CliError::Invalid(
            "give --seed FILE (and --state FILE to keep state between runs)".into(),
        ));
    }
    let opts = SimOptions {
        token: args.token.clone(),
        rate_limit: args.rate_limit,
        burst: args.burst,
        throttle_share: args.throttle_share,
        limit_header: args.limit_header,
        latency_ms: args.latency_ms,
        fault_rate: args.fault_rate,
        error_rate: args.error_rate,
        drop_rate: args.drop_rate,
        ..SimOptions::default()
    };
    if args.backend == "liveplatform" {
        return liveplatform(&args, opts).await;
    }
    if args.backend == "portsip" {
        return portsip(&args, opts).await;
    }
    if args.backend == "ump" {
        return ump(&args, opts).await;
    }
    let sim = FusionSim::open(args.state.as_deref(), args.seed.as_deref(), opts)
        .map_err(|e| CliError::Invalid(format!("simulator: {e}")))?;
    let t = sim.tenant_path();
    let (listener, addr) = bind(&args.listen).await?;
    errln!(
        "fusion simulator on http://{addr}/api/v01/draas/{}/tenants/{}/subscriptions/{}/msteams/ (Ctrl-C to stop)",
        t.draas_instance, t.tenant_uuid, t.subscription_id
    );
    fsim::run(listener, sim, ctrl_c())
        .await
        .map_err(|e| CliError::internal("simulator", e))?;
    Ok(Exit::Done)
}

async fn liveplatform(args: &SimArgs, opts: SimOptions) -> CmdResult {
    use teamsync_sim::liveplatform::{self as lpsim, LivePlatformSim};
    let sim = LivePlatformSim::open(args.state.as_deref(), args.seed.as_deref(), opts)
        .map_err(|e| CliError::Invalid(format!("simulator: {e}")))?;
    let customer = sim.customer_guid();
    let (listener, addr) = bind(&args.listen).await?;
    errln!(
        "liveplatform simulator on http://{addr}/api/v3/customer/{customer}/user (Ctrl-C to stop)"
    );
    lpsim::run(listener, sim, ctrl_c())
        .await
        .map_err(|e| CliError::internal("simulator", e))?;
    Ok(Exit::Done)
}

/// `--backend portsip`: the PortSIP users simulator, same options as Fusion's.
async fn portsip(args: &SimArgs, opts: SimOptions) -> CmdResult {
    use teamsync_sim::portsip::{self as psim, PortsipSim};
    let sim = PortsipSim::open(args.state.as_deref(), args.seed.as_deref(), opts)
        .map_err(|e| CliError::Invalid(format!("simulator: {e}")))?;
    let (listener, addr) = bind(&args.listen).await?;
    errln!("portsip simulator on http://{addr}/api/users (Ctrl-C to stop)");
    psim::run(listener, sim, ctrl_c())
        .await
        .map_err(|e| CliError::internal("simulator", e))?;
    Ok(Exit::Done)
}

/// `--token` stands for an authenticating proxy in front: UMP itself has none.
async fn ump(args: &SimArgs, opts: SimOptions) -> CmdResult {
    use teamsync_sim::ump::UmpSim;
    let sim = UmpSim::open(args.state.as_deref(), args.seed.as_deref(), opts)
        .map_err(|e| CliError::Invalid(format!("simulator: {e}")))?;
    let (listener, addr) = bind(&args.listen).await?;
    errln!("ump simulator on http://{addr}/sysadmin/api/ (Ctrl-C to stop)");
    teamsync_sim::common::conn::serve(listener, sim.router(), ctrl_c())
        .await
        .map_err(|e| CliError::internal("simulator", e))?;
    Ok(Exit::Done)
}

async fn bind(listen: &str) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), CliError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Invalid(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::internal("the simulator's address", e))?;
    Ok((listener, addr))
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
