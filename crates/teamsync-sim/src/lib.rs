//! Embedded tenant simulators.
//!
//! They exist so that the product has a default tenant to talk to without credentials, and so
//! that every end-to-end test exercises real HTTP against a server as strict as the vendor's
//! document. Each simulator keeps its own wire types: sharing serde structs with a connector
//! would let both sides agree on the same misreading of a spec.

pub mod common;
pub mod fusion;
pub mod graph;
pub mod liveplatform;
pub mod portsip;
pub mod ump;

pub use common::{SimError, SimOptions};
