//! Credentials: a wrong token aborts with exit 3 before anything is written, and a
//! `token_command` supplies the token. The simulator runs in this test process; the
//! binary talks to it over HTTP as a `fusion` tenant.

use crate::support::{repo, sample, Workspace};
use teamsync_sim::fusion::{start, FusionSim, RunningSim};
use teamsync_sim::SimOptions;

fn sim_with_token(rt: &tokio::runtime::Runtime, token: &str) -> RunningSim {
    let opts = SimOptions {
        token: Some(token.to_string()),
        ..SimOptions::default()
    };
    let sim = FusionSim::open(None, Some(&repo().join("samples/tenant.json")), opts).unwrap();
    rt.block_on(start(sim)).unwrap()
}

fn fusion_workspace(sim: &RunningSim, token_lines: &str) -> Workspace {
    let ws = Workspace::new();
    let t = &sim.tenant;
    let cfg = format!(
        "db = \"../history.db\"\ntemplates = {templates:?}\ndefault_tenant = \"real\"\n\n\
         [tenants.real]\nbackend = \"fusion\"\nbase_url = {url:?}\ndraas_instance = {di:?}\n\
         tenant_uuid = {tu:?}\nsubscription_id = {sid}\n{token_lines}\nrate_per_second = 0\n",
        templates = repo().join("templates").display().to_string(),
        url = sim.base_url(),
        di = t.draas_instance,
        tu = t.tenant_uuid,
        sid = t.subscription_id,
    );
    ws.write("config/teamsync.toml", &cfg);
    ws
}

#[test]
fn wrong_token_aborts_with_exit_3_and_never_shows_the_token() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = sim_with_token(&rt, "right-token");
    let ws = fusion_workspace(&sim, "token_env = \"TS_E2E_TOKEN\"");
    let r = ws
        .cmd()
        .env("TS_E2E_TOKEN", "wrong-token-value-123")
        .args(["sync", &sample("users.csv")])
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        !all.contains("wrong-token-value-123"),
        "token leaked: {all}"
    );
}

#[test]
fn token_command_supplies_the_token() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sim = sim_with_token(&rt, "cmd-token");
    let ws = fusion_workspace(&sim, "token_command = \"echo cmd-token\"");
    let r = ws.run(&["tenant", "status"]);
    r.code(0);
    let r = ws.run(&["sync", &sample("users.csv")]);
    r.code(0);
}
