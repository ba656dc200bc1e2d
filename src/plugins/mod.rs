//! The plugins compiled in, one folder each: `setup.rs` (parse and build), the plugin itself,
//! its tests, and a README.md documenting its Corefile syntax.

pub mod bind;
pub mod health;
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod whoami;
