//! The plugins compiled in, one folder each: `setup.rs` (parse and build), the plugin itself,
//! its tests, and a README.md documenting its Corefile syntax.

pub mod bind;
pub mod errors;
pub mod health;
pub mod hosts;
pub mod loadbalance;
pub mod log;
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod whoami;
