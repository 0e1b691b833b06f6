//! teamsync: bulk user sync for Microsoft Teams Phone System users.
//!
//! The data flow is one way, one module per arrow (see DESIGN.md):
//! `sheet` (+ `template`, `validate`) → `plan` (with a `connector` snapshot) → `apply`
//! → `history` → `report`. `sim` holds the simulated tenants used as the embedded default
//! and by every end-to-end test.

pub mod apply;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod connector;
pub mod history;
pub mod model;
pub mod plan;
pub mod report;
pub mod sheet;
pub mod sim;
pub mod template;
pub mod validate;
