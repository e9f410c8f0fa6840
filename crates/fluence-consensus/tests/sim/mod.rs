//! The deterministic simulation's parts; `simulation.rs` runs them.

pub mod adversary;
pub mod change;
pub mod check;
pub mod cluster;
pub mod reads;
pub mod run;
