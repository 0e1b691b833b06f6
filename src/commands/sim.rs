//! `teamsync sim`: serve a simulated backend on loopback until Ctrl-C. Which simulator and
//! where its API lives is the backend's, from the registry.

use super::{CliError, CmdResult, Ctx, Exit};
use crate::cli::SimArgs;
use crate::connector::registry;
use teamsync_sim::SimOptions;

pub(super) async fn run(_ctx: &Ctx, args: SimArgs) -> CmdResult {
    let Some(backend) = registry::backend(&args.backend) else {
        return Err(CliError::Invalid(format!(
            "--backend {:?}: available simulators: {}",
            args.backend,
            registry::names().join(", ")
        )));
    };
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
    // `--token` stands for the vendor's bearer auth (UMP's, for a proxy in front).
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
    let state_is_new = args.state.as_ref().is_none_or(|s| !s.exists());
    let server = (backend.open_sim)(args.state.as_deref(), args.seed.as_deref(), opts)
        .map_err(|e| CliError::Invalid(format!("simulator: {e}")))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| CliError::Invalid(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::internal("the simulator's address", e))?;
    if args.seed.is_none() && state_is_new {
        errln!(
            "seeded from the built-in sample ({}); --seed FILE serves another tenant",
            backend.sample.name
        );
    }
    errln!(
        "{} simulator on http://{addr}{} (Ctrl-C to stop)",
        backend.name,
        server.api_path
    );
    teamsync_sim::common::conn::serve(listener, server.router, ctrl_c())
        .await
        .map_err(|e| CliError::internal("simulator", e))?;
    Ok(Exit::Done)
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
