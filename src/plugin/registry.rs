//! The plugins compiled in, in execution order: clusterdns's `plugin.cfg`.
//!
//! The order is CoreDNS's (plugin.cfg of CoreDNS 1.14) restricted to the plugins shipped here:
//! a Corefile lists directives in any order, and the chain always runs them in this one.

use super::setup::ParseFn;
use crate::plugins;

/// A compiled-in plugin.
pub struct PluginEntry {
    pub name: &'static str,
    pub parse: ParseFn,
}

impl std::fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The plugins in execution order (`clusterdns -plugins` prints these names).
pub static ORDER: &[PluginEntry] = &[
    PluginEntry { name: "reload", parse: plugins::reload::parse },
    PluginEntry { name: "bind", parse: plugins::bind::parse },
    PluginEntry { name: "ready", parse: plugins::ready::parse },
    PluginEntry { name: "health", parse: plugins::health::parse },
    PluginEntry { name: "prometheus", parse: plugins::prometheus::parse },
    PluginEntry { name: "errors", parse: plugins::errors::parse },
    PluginEntry { name: "log", parse: plugins::log::parse },
    PluginEntry { name: "loadbalance", parse: plugins::loadbalance::parse },
    PluginEntry { name: "hosts", parse: plugins::hosts::parse },
    PluginEntry { name: "whoami", parse: plugins::whoami::parse },
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

/// The position of `name` in [`ORDER`] and its entry.
pub fn lookup(name: &str) -> Option<(usize, &'static PluginEntry)> {
    ORDER.iter().enumerate().find(|(_, p)| p.name == name)
}

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
