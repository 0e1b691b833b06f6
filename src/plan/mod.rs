//! Diff desired users against a tenant snapshot into a plan of operations.

pub mod model;
