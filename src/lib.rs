//! teamsync: bulk user sync for Microsoft Teams Phone System users.
//!
//! The data flow is one way, one module per arrow (see ARCHITECTURE.md):
//! `sheet` (+ `template`, `validate`) → `plan` (with a `connector` snapshot) → `apply`
//! → `history` → `report`, strung together by `run` (history check → tenant lock → snapshot
//! → plan → apply → outcome), which the CLI's `commands` only feed and render. The
//! simulated tenants (the embedded default tenant, and the server of every end-to-end
//! test) live in their own crate, `teamsync-sim`
//! (crates/teamsync-sim), which depends on nothing of this one: the compiler keeps them
//! from sharing a misreading of a vendor's document with the connectors they test.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod connector;
pub mod exit;
pub mod files;
pub mod history;
pub mod human;
pub mod model;
pub mod notify;
pub mod plan;
pub mod refresh;
pub mod report;
pub mod run;
pub mod sheet;
pub mod template;
pub mod validate;
