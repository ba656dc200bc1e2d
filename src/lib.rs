//! clusterdns: a Kubernetes cluster DNS server that reads CoreDNS Corefiles.
//!
//! The pieces, in the order a query meets them: [`server`] (listeners, dispatch to a server
//! block, reload), [`plugin`] (the contract every plugin implements, the registry and setup),
//! [`plugins`] (one module per plugin), with [`corefile`] parsing the configuration, [`dns`] the
//! wire format and [`metrics`] the Prometheus side. [`fuzzing`] holds the entry points the fuzz
//! targets and their stable-Rust test share.

pub mod cli;
pub mod corefile;
pub mod dns;
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod plugin;
pub mod plugins;
pub mod server;
