//! The one end-to-end test binary; each area is a module.

mod sim_fusion;
