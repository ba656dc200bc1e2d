//! From a parsed Corefile to a plan of server blocks: keys, zones, ports and typed plugin
//! configs in execution order. Pure: no sockets, no files beyond what parsing read. This is what
//! `clusterdns -validate` runs, and what a reload checks before building anything.

use std::collections::HashMap;

use crate::corefile::{Corefile, Error, Errors, Pos, ServerKey, Transport, parse_key};
use crate::dns::Name;
use crate::plugin::registry::{PluginEntry, PluginSet};
use crate::plugin::setup::{DynConfig, ParseCtx};
use crate::plugins::bind::BindConfig;
use crate::plugins::timeouts::Timeouts;

/// A whole configuration, checked.
#[derive(Debug)]
pub struct Plan {
    pub blocks: Vec<BlockPlan>,
    pub warnings: Vec<String>,
}

/// One server block, checked.
#[derive(Debug)]
pub struct BlockPlan {
    /// The first key's position.
    pub pos: Pos,
    /// The keys with their ports resolved (`-dns.port` for keys without one).
    pub keys: Vec<PlannedKey>,
    /// All zones of the block, unique, in key order; [`Route::zone`](crate::dns::Route) indexes it.
    pub zones: Vec<Name>,
    /// The plugins in execution order.
    pub plugins: Vec<PlannedPlugin>,
}

#[derive(Debug, Clone)]
pub struct PlannedKey {
    pub transport: Transport,
    pub zones: Vec<Name>,
    pub port: u16,
}

#[derive(Debug)]
pub struct PlannedPlugin {
    pub entry: &'static PluginEntry,
    pub config: Box<dyn DynConfig>,
    pub pos: Pos,
}

impl BlockPlan {
    /// The block's `bind` configuration, if it has one.
    pub fn bind(&self) -> Option<&BindConfig> {
        self.plugins.iter().find_map(|p| p.config.as_any().downcast_ref::<BindConfig>())
    }

    /// The block's `timeouts` configuration, if it has one.
    pub fn timeouts(&self) -> Option<&Timeouts> {
        self.plugins.iter().find_map(|p| p.config.as_any().downcast_ref::<Timeouts>())
    }

    pub fn plugin_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.plugins.iter().map(|p| p.entry.name)
    }
}

/// CoreDNS's configuration when there is no Corefile: whoami and log for every name. `log` is
/// left out of a build without it, so the binary always starts.
pub fn default_corefile(port: u16) -> String {
    let log = if crate::plugins::ALL.lookup("log").is_some() { "    log\n" } else { "" };
    format!(".:{port} {{\n    whoami\n{log}}}\n")
}

/// Checks `corefile` and plans its blocks with this build's plugins; every error found is
/// returned, each with its position.
pub fn plan(corefile: &Corefile, default_port: u16) -> Result<Plan, Errors> {
    plan_with(corefile, default_port, &crate::plugins::ALL)
}

/// [`plan`] with the plugins of `plugins`.
pub fn plan_with(corefile: &Corefile, default_port: u16, plugins: &PluginSet) -> Result<Plan, Errors> {
    let mut errors = Vec::new();
    let mut blocks = Vec::new();
    for block in &corefile.blocks {
        let mut keys = Vec::new();
        for k in &block.keys {
            match parse_key(k) {
                Ok(ServerKey { transport, zones, port }) => {
                    keys.push((k, PlannedKey { transport, zones, port: port.unwrap_or(default_port) }))
                }
                Err(e) => errors.push(e),
            }
        }
        let mut zones: Vec<Name> = Vec::new();
        for (_, k) in &keys {
            for z in &k.zones {
                if !zones.contains(z) {
                    zones.push(z.clone());
                }
            }
        }

        // Group directive lines by plugin, keeping file order within each.
        let mut by_plugin: Vec<(usize, &'static PluginEntry, Vec<crate::corefile::Directive>)> = Vec::new();
        for d in &block.directives {
            let name = d.name.text.as_str();
            match plugins.lookup(name) {
                Some((order, entry)) => match by_plugin.iter_mut().find(|(o, _, _)| *o == order) {
                    Some((_, _, lines)) => lines.push(d.clone()),
                    None => by_plugin.push((order, entry, vec![d.clone()])),
                },
                None if plugins.known_elsewhere.contains(&name) => errors.push(Error::syntax(
                    &d.name.pos,
                    format!(
                        "directive '{name}' is a CoreDNS plugin that clusterdns does not have (see clusterdns -plugins)"
                    ),
                )),
                None => errors.push(Error::syntax(&d.name.pos, format!("unknown directive '{name}'"))),
            }
        }
        by_plugin.sort_by_key(|(order, _, _)| *order);
        let ctx = ParseCtx { zones: &zones };
        let mut plugins = Vec::new();
        for (_, entry, lines) in by_plugin {
            match (entry.parse)(&lines, &ctx) {
                Ok(config) => plugins.push(PlannedPlugin { entry, config, pos: lines[0].name.pos.clone() }),
                Err(e) => errors.push(e),
            }
        }
        let pos = block.keys[0].pos.clone();
        blocks.push((BlockPlan { pos, keys: keys.iter().map(|(_, k)| k.clone()).collect(), zones, plugins }, keys));
    }

    check_overlaps(&blocks, &mut errors);
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    Ok(Plan { blocks: blocks.into_iter().map(|(b, _)| b).collect(), warnings: corefile.warnings.clone() })
}

/// CoreDNS's zone overlap rule: a zone may be served once per (transport, port, bind address);
/// a block without `bind` listens everywhere and so overlaps every bound one. A conflict is
/// reported where the second block says where it listens: at its `bind` address when it has
/// one, else at its key. (Addresses an interface stands for are checked when the server
/// starts: see [`build::listen_keys`](super::build::listen_keys).)
fn check_overlaps(blocks: &[(BlockPlan, Vec<(&crate::corefile::Token, PlannedKey)>)], errors: &mut Vec<Error>) {
    type Slot = (Transport, u16, Name);
    let mut seen: HashMap<(Slot, Option<String>), Pos> = HashMap::new();
    let mut unbound: HashMap<Slot, (Option<String>, Pos)> = HashMap::new();
    for (block, keys) in blocks {
        let binds: Vec<Option<(String, Pos)>> = match block.bind() {
            Some(b) => b.targets().map(|t| Some((t.what.to_string(), t.pos.clone()))).collect(),
            None => vec![None],
        };
        for (tok, key) in keys {
            for zone in &key.zones {
                for bind in &binds {
                    let slot = (key.transport, key.port, zone.clone());
                    let here = format!("{}://{zone}:{}", key.transport.scheme(), key.port);
                    let target = bind.as_ref().map(|(t, _)| t.clone());
                    let blame = |message: String| match bind {
                        Some((t, pos)) => {
                            Error::setup(crate::plugins::bind::NAME, pos, format!("{here} on {t} {message}"))
                        }
                        None => Error::syntax(&tok.pos, format!("{here} {message}")),
                    };
                    if let Some(first) = seen.get(&(slot.clone(), target.clone())) {
                        errors.push(blame(format!("is already served by the server block at {first}")));
                        continue;
                    }
                    if let Some((other_bind, first)) = unbound.get(&slot)
                        && (target.is_none() || other_bind.is_none())
                    {
                        errors.push(blame(format!(
                            "overlaps the server block at {first}: a block without 'bind' listens on every address"
                        )));
                        continue;
                    }
                    seen.insert((slot.clone(), target.clone()), tok.pos.clone());
                    unbound.entry(slot).or_insert((target, tok.pos.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn plan_str(text: &str) -> Result<Plan, Errors> {
        plan(&parse_str("Corefile", text, &|_| None).unwrap(), 53)
    }

    #[test]
    fn plugins_run_in_registry_order_whatever_the_file_order() {
        let p = plan_str(". {\n whoami\n bind 127.0.0.1\n}").unwrap();
        let names: Vec<_> = p.blocks[0].plugin_names().collect();
        assert_eq!(names, ["bind", "whoami"]);
        assert_eq!(p.blocks[0].keys[0].port, 53);
    }

    /// Without the log plugin compiled in, starting with no Corefile failed on 'log'.
    #[test]
    fn default_corefile_plans_in_every_build() {
        let text = default_corefile(1053);
        let p = plan_str(&text).unwrap();
        assert_eq!(p.blocks[0].keys[0].port, 1053);
        assert!(p.blocks[0].plugin_names().any(|n| n == "whoami"));
    }

    #[test]
    fn unknown_and_unshipped_directives() {
        let e = plan_str(". {\n  bogus\n  route53 example.org.:Z1\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Corefile:2:3: unknown directive 'bogus'\n\
             Corefile:3:3: directive 'route53' is a CoreDNS plugin that clusterdns does not have (see clusterdns -plugins)"
        );
    }

    #[test]
    fn same_zone_and_port_twice_is_an_error() {
        let e = plan_str("example.org {\n whoami\n}\nexample.org:53 {\n whoami\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Corefile:4:1: dns://example.org.:53 is already served by the server block at Corefile:1:1"
        );
        assert!(plan_str("example.org {\n whoami\n}\nexample.org:1053 {\n whoami\n}").is_ok());
    }

    #[test]
    fn bound_blocks_may_share_a_zone_but_not_with_an_unbound_one() {
        assert!(plan_str(". {\n bind 127.0.0.1\n whoami\n}\n. {\n bind 127.0.0.2\n whoami\n}").is_ok());
        let e = plan_str(". {\n bind 127.0.0.1\n whoami\n}\n. {\n whoami\n}").unwrap_err();
        assert!(e.to_string().starts_with("Corefile:5:1: dns://.:53 overlaps the server block at Corefile:1:1"), "{e}");
        // The second block's bind address is what clashes: the error is there.
        let e = plan_str(". {\n whoami\n}\n. {\n bind 127.0.0.1\n whoami\n}").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Corefile:5:7: bind: dns://.:53 on 127.0.0.1 overlaps the server block at Corefile:1:1"),
            "{e}"
        );
        let e = plan_str(". {\n bind 127.0.0.1\n whoami\n}\n. {\n bind ::1 127.0.0.1\n whoami\n}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Corefile:6:11: bind: dns://.:53 on 127.0.0.1 is already served by the server block at Corefile:1:1"
        );
    }
}
