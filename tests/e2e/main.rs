//! One integration-test binary (each test binary links the whole crate; one keeps builds fast).

mod support;

mod cli;
mod cli_auth;
mod cli_jobs;
mod connector_fusion;
mod fuzz_sheets;
mod reliability;
mod report_html;
mod sheets;
mod sim_fusion;
