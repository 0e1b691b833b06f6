//! One integration-test binary (each test binary links the whole crate; one keeps builds fast).

mod support;

mod apply_exec;
mod backends;
mod cli;
mod cli_auth;
mod cli_jobs;
mod cli_plan;
mod cli_reports;
mod connector_fusion;
mod exit_codes;
mod fewest_requests;
mod fuzz_sheets;
mod graph;
mod history_truth;
mod hostile_sheets;
mod incremental_refresh;
mod liveplatform;
mod many_tenants;
mod operator;
mod portsip;
mod reliability;
mod report_html;
mod sheets;
mod sim_fusion;
mod sim_fusion_more;
mod throttling;
mod ump;
mod zipbomb;
