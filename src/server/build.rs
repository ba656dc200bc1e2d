//! Step 2 of applying a configuration (see [`server`](super)): from a plan to built chains and
//! the zone entries of each listen address. No sockets: the caller says what each listen key is
//! called in metrics, so the same code serves the running server, the fuzz targets and the
//! benchmarks ([`Offline`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::config::{BlockPlan, Plan};
use super::dispatch::{BlockRt, ZoneTable};
use super::{ConfigError, ListenKey};
use crate::corefile::{Error, Pos, parse_str};
use crate::dns::{Name, Route};
use crate::metrics::Registry;
use crate::metrics::dns::DnsMetrics;
use crate::plugin::DynPlugin;
use crate::plugin::handles::{Dispatch, Fatal};
use crate::plugin::lifecycle::Lifecycle;
use crate::plugin::setup::{BlockInfo, Contributions, Kept, SetupCtx, SetupEnv};

/// A plan built.
pub struct Built {
    /// What each listen key serves: (zone, block, route) for its zone table.
    pub entries: BTreeMap<ListenKey, Vec<(Name, Arc<BlockRt>, Route)>>,
    /// `coredns_plugin_enabled` series as (server, zone, plugin): CoreDNS's prometheus sets one
    /// for each zone of each key of its block, on each address that key listens on, naming every
    /// plugin of the chain.
    pub enabled: Vec<(String, String, &'static str)>,
    /// What the plugins registered (tasks, HTTP endpoints, lameduck, reload).
    pub contributions: Contributions,
    /// Some block asked for panic stack traces (`errors { stacktrace }`).
    pub stacktrace: bool,
    /// Each block's distinct listen keys, in the order [`BlockInfo::servers`] names them (and
    /// [`Route::server`] indexes).
    pub block_keys: Vec<Vec<ListenKey>>,
}

/// The listen keys of each block (by block index), each with the position to blame if it
/// cannot be bound: the `bind` address (or interface) it comes from, else the block. `bind`
/// interfaces are resolved to their addresses here, and so a zone that two blocks serve on one
/// address only once interfaces are expanded is found here, at the second block's `bind`.
pub fn listen_keys(plan: &Plan) -> Result<BTreeMap<usize, Vec<(ListenKey, Pos)>>, Error> {
    let mut out = BTreeMap::new();
    let mut served: std::collections::HashMap<(ListenKey, &Name), &Pos> = Default::default();
    for (i, block) in plan.blocks.iter().enumerate() {
        let hosts: Vec<(Option<IpAddr>, Pos)> = match block.bind() {
            Some(b) => b.resolve()?.into_iter().map(|(a, pos)| (Some(a), pos)).collect(),
            None => vec![(None, block.pos.clone())],
        };
        let mut keys: Vec<(ListenKey, Pos)> = Vec::new();
        for k in &block.keys {
            for (host, pos) in &hosts {
                let host = *host;
                let key = ListenKey { transport: k.transport, host, port: k.port };
                for zone in &k.zones {
                    if let Some(first) = served.insert((key.clone(), zone), &block.pos).filter(|f| **f != block.pos) {
                        let on = host.map(|h| format!(" on {h}")).unwrap_or_default();
                        let here = format!("{}://{zone}:{}{on}", key.transport.scheme(), key.port);
                        return Err(Error::setup(
                            crate::plugins::bind::NAME,
                            pos,
                            format!("{here} is already served by the server block at {first}"),
                        ));
                    }
                }
                if !keys.iter().any(|(x, _)| *x == key) {
                    keys.push((key, pos.clone()));
                }
            }
        }
        out.insert(i, keys);
    }
    Ok(out)
}

/// Builds every block of `plan`. `listen` gives each block's listen keys (from
/// [`listen_keys`]) and `label` the metrics `server` label of a key. Must run inside a tokio
/// runtime: plugins spawn their tasks.
pub fn build(
    plan: &Plan,
    listen: &BTreeMap<usize, Vec<(ListenKey, Pos)>>,
    label: impl Fn(&ListenKey) -> String,
    env: &SetupEnv<'_>,
) -> Result<Built, Error> {
    let mut built = Built {
        entries: BTreeMap::new(),
        enabled: Vec::new(),
        contributions: Contributions::default(),
        stacktrace: false,
        block_keys: Vec::new(),
    };
    for (i, block) in plan.blocks.iter().enumerate() {
        let keys = &listen[&i];
        let mut servers: Vec<(&ListenKey, String)> = Vec::new();
        for (k, _) in keys {
            if !servers.iter().any(|(s, _)| *s == k) {
                servers.push((k, label(k)));
            }
        }
        let info = BlockInfo {
            zones: block.zones.clone(),
            servers: servers.iter().map(|(_, s)| s.clone()).collect(),
            pos: block.pos.clone(),
            index: i,
        };
        built.block_keys.push(servers.iter().map(|(k, _)| (*k).clone()).collect());
        let rt = build_chain(block, info, env, &mut built.contributions)?;
        built.stacktrace |= rt.stacktrace;
        let report_enabled = block.plugin_names().any(|p| p == crate::plugins::prometheus::NAME);
        let rt = Arc::new(rt);
        for key in &block.keys {
            for (lk, _) in keys.iter().filter(|(lk, _)| lk.port == key.port && lk.transport == key.transport) {
                let server = servers.iter().position(|(s, _)| *s == lk).expect("listed");
                for zone in &key.zones {
                    let zone_index = block.zones.iter().position(|z| z == zone).expect("listed") as u16;
                    let route = Route { zone: zone_index, server: server as u16 };
                    built.entries.entry(lk.clone()).or_default().push((zone.clone(), rt.clone(), route));
                    if report_enabled {
                        for p in rt.chain.iter() {
                            built.enabled.push((servers[server].1.clone(), zone.to_string(), p.name()));
                        }
                    }
                }
            }
        }
    }
    Ok(built)
}

/// Builds a block's plugins in reverse chain order (see [`setup`](crate::plugin::setup)).
pub(crate) fn build_chain(
    block: &BlockPlan,
    info: BlockInfo,
    env: &SetupEnv<'_>,
    out: &mut Contributions,
) -> Result<BlockRt, Error> {
    let mut ctx = SetupCtx::new(&info, env, out);
    let mut chain: Vec<Arc<dyn DynPlugin>> = Vec::new();
    for p in block.plugins.iter().rev() {
        if let Some(plugin) = p.config.build(&mut ctx)? {
            ctx.note_built(plugin.name());
            chain.push(plugin);
        }
    }
    chain.reverse();
    let (stacktrace, replies) = (ctx.panic_stacktraces(), ctx.reply_observer());
    Ok(BlockRt { chain: chain.into(), info, stacktrace, replies })
}

/// A Corefile built without sockets, every zone of every block in one table labelled
/// `dns://:53`: what fuzz targets and benchmarks hand raw queries to, through exactly the
/// server's dispatch. Create it inside a tokio runtime (plugins spawn tasks) and keep it alive
/// while the table is used: dropping it ends those tasks.
pub struct Offline {
    pub table: Arc<ZoneTable>,
    pub registry: Arc<Registry>,
    _contributions: Contributions,
}

impl Offline {
    pub fn new(corefile: &str) -> Result<Offline, ConfigError> {
        let parsed = parse_str("Corefile", corefile, &|_| None)?;
        let plan = super::config::plan(&parsed, 53)?;
        let listen = listen_keys(&plan)?;
        let registry = Arc::new(Registry::new());
        let lifecycle = Arc::new(Lifecycle::new());
        let (fatal, _) = Fatal::channel();
        let env = SetupEnv { metrics: &registry, lifecycle: &lifecycle, fatal: &fatal, previous: &Kept::default() };
        let mut built = build(&plan, &listen, |_| "dns://:53".to_string(), &env)?;
        let metrics = Arc::new(DnsMetrics::new(&registry));
        let entries = built.entries.into_values().flatten().collect();
        let table = Arc::new(ZoneTable::new("dns://:53", &metrics, entries));
        let dispatch: Arc<dyn Dispatch> = Arc::new(arc_swap::ArcSwap::new(table.clone()));
        for (_, resolver) in built.contributions.resolvers.drain(..) {
            resolver.bind(vec![dispatch.clone()]);
        }
        Ok(Offline { table, registry, _contributions: built.contributions })
    }
}
