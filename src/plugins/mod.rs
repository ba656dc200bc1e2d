//! The plugins compiled in, one folder each: `setup.rs` (parse and build), the plugin itself,
//! its tests, and a README.md documenting its Corefile syntax; and their execution order,
//! clusterdns's `plugin.cfg`.
//!
//! The order is CoreDNS's (plugin.cfg of CoreDNS 1.14) restricted to the plugins shipped here:
//! a Corefile lists directives in any order, and the chain always runs them in this one.

use crate::plugin::registry::{PluginEntry, PluginSet};

pub mod bind;
pub mod cache;
pub mod errors;
pub mod forward;
pub mod health;
pub mod hosts;
pub mod kubernetes;
pub mod loadbalance;
pub mod log;
pub mod r#loop;
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod timeouts;
pub mod whoami;

/// Every plugin of this build, and CoreDNS's directives beside them.
pub static ALL: PluginSet = PluginSet { order: ORDER, known_elsewhere: COREDNS_DIRECTIVES };

/// The plugins in execution order (`clusterdns -plugins` prints these names).
pub static ORDER: &[PluginEntry] = &[
    PluginEntry { name: "timeouts", parse: timeouts::parse },
    PluginEntry { name: "reload", parse: reload::parse },
    PluginEntry { name: "bind", parse: bind::parse },
    PluginEntry { name: "ready", parse: ready::parse },
    PluginEntry { name: "health", parse: health::parse },
    PluginEntry { name: "prometheus", parse: prometheus::parse },
    PluginEntry { name: "errors", parse: errors::parse },
    PluginEntry { name: "log", parse: log::parse },
    PluginEntry { name: "loadbalance", parse: loadbalance::parse },
    PluginEntry { name: "cache", parse: cache::parse },
    PluginEntry { name: "hosts", parse: hosts::parse },
    PluginEntry { name: "kubernetes", parse: kubernetes::parse },
    PluginEntry { name: "loop", parse: r#loop::parse },
    PluginEntry { name: "forward", parse: forward::parse },
    PluginEntry { name: "whoami", parse: whoami::parse },
];

/// Every directive of CoreDNS's plugin.cfg, in its order; a Corefile naming one that is not
/// compiled in here gets an error saying so rather than "unknown directive".
pub static COREDNS_DIRECTIVES: &[&str] = &[
    "root",
    "metadata",
    "geoip",
    "cancel",
    "tls",
    "timeouts",
    "multisocket",
    "reload",
    "nsid",
    "bufsize",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "local",
    "dns64",
    "acl",
    "any",
    "chaos",
    "loadbalance",
    "tsig",
    "cache",
    "rewrite",
    "header",
    "dnssec",
    "autopath",
    "minimal",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "view",
    "nomad",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_coredns_plugin_cfg() {
        let positions: Vec<usize> = ORDER
            .iter()
            .map(|p| COREDNS_DIRECTIVES.iter().position(|d| *d == p.name).expect("a CoreDNS directive"))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
}
