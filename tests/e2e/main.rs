//! The one end-to-end test binary; each area is a module.

mod connector_fusion;
mod sim_fusion;
