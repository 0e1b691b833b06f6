//! Planner tests
