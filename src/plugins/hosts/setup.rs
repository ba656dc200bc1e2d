//! ```text
//! hosts [FILE [ZONES...]] {
//!     [ADDRESS NAME [NAME...]]...     inline entries: any line whose first word is an address
//!     ttl SECONDS                     1-65535, default 3600
//!     no_reverse                      no PTR answers
//!     reload DURATION                 poll interval, default 5s, 0 disables
//!     fallthrough [ZONES...]
//! }
//! ```
//!
//! FILE defaults to `/etc/hosts`; a relative FILE is taken from the directory of the Corefile
//! naming it (see the README for how that relates to CoreDNS). ZONES default to the server
//! block's zones. Once per server block. Each property at most once.
//!
//! The table and the task polling the file are kept across reloads while the file, zones,
//! inline entries, `no_reverse` and `reload` are unchanged: such a reload re-reads the file only
//! if it changed (as CoreDNS re-reads it at every reload) and does not restart its poll.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::hostsfile::Line;
use super::watch::{self, Settings, Source};
use super::{Hosts, NAME, is_address};
use crate::corefile::{Args, Directive, Error, Pos, once};
use crate::dns::Name;
use crate::plugin::DynPlugin;
use crate::plugin::fall::Fallthrough;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx, TaskSet};

const DEFAULT_FILE: &str = "/etc/hosts";
const DEFAULT_TTL: u32 = 3600;
const DEFAULT_RELOAD: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The hosts file, resolved against the Corefile's directory.
    path: PathBuf,
    /// The FILE argument, or the directive when FILE is the default: where access errors point.
    path_pos: Pos,
    origins: Vec<Name>,
    inline: Vec<Line>,
    ttl: u32,
    reload: Duration,
    reverse: bool,
    fall: Fallthrough,
}

pub fn parse(dirs: &[Directive], ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let (path, path_pos) = match args.next_arg() {
        Some(file) => (file.pos.resolve_path(&file.text), file.pos.clone()),
        None => (PathBuf::from(DEFAULT_FILE), dir.name.pos.clone()),
    };
    let zones = args.zones()?;
    let mut cfg = Config {
        path,
        path_pos,
        origins: if zones.is_empty() { ctx.zones.to_vec() } else { zones },
        inline: Vec::new(),
        ttl: DEFAULT_TTL,
        reload: DEFAULT_RELOAD,
        reverse: true,
        fall: Fallthrough::never(),
    };

    args.each_once(is_address)?;
    for line in args.block() {
        let mut prop = args.property(line);
        prop.no_block()?;
        let name = line.name.text.as_str();
        if is_address(name) {
            cfg.inline.push(inline_entry(&mut prop, line)?);
            continue;
        }
        match name {
            "ttl" => {
                let t = prop.required("a TTL in seconds")?;
                cfg.ttl = match t.text.parse::<u32>() {
                    Ok(ttl @ 1..=65535) => ttl,
                    _ => return Err(prop.error(t, format!("ttl must be 1 to 65535 seconds, got '{}'", t.text))),
                };
            }
            "reload" => {
                if let Some(t) = prop.peek().filter(|t| t.text.starts_with('-')) {
                    return Err(prop.error(t, format!("reload cannot be negative, got '{}' (0 disables it)", t.text)));
                }
                cfg.reload = prop.duration("a reload interval")?;
            }
            "no_reverse" => cfg.reverse = false,
            "fallthrough" => cfg.fall = Fallthrough::parse(&mut prop)?,
            "fallthrough_unsupported" => {
                return Err(prop.error(&line.name, "'fallthrough_unsupported' is not supported by clusterdns"));
            }
            // A line meant as an inline entry whose address does not parse: name the address,
            // not an "unknown property".
            _ if name.starts_with(|c: char| c.is_ascii_digit()) || name.contains(':') => {
                return Err(
                    prop.error(&line.name, format!("invalid address '{name}' in an inline entry (ADDRESS NAME...)"))
                );
            }
            _ => return Err(prop.unknown_property()),
        }
        prop.finish()?;
    }
    Ok(Box::new(cfg))
}

/// `ADDRESS NAME [NAME...]` inside the block: the same as a hosts file line, but a name that
/// is not one is an error here, not a skipped field.
fn inline_entry(prop: &mut Args<'_>, line: &Directive) -> Result<Line, Error> {
    let addr = super::hostsfile::parse_addr(&line.name.text).expect("checked by is_address");
    if line.args.is_empty() {
        prop.required("a name after the address")?;
    }
    let mut entry = Line { addr, names: Vec::with_capacity(line.args.len()) };
    for t in prop.rest() {
        let name = Name::parse(&t.text).map_err(|e| prop.error(t, format!("invalid name '{}': {e}", t.text)))?;
        entry.names.push(name.to_lowercase());
    }
    Ok(entry)
}

/// The settings the table and its poll depend on: what a reload must leave unchanged for them
/// to be kept.
#[derive(PartialEq)]
struct TableKey {
    path: PathBuf,
    origins: Vec<Name>,
    reverse: bool,
    inline: Vec<Line>,
    reload: Duration,
}

/// What a hosts plugin keeps across reloads: its table, the file it is read from, and the
/// task that refreshes it.
struct KeptTable {
    table: Arc<ArcSwap<super::table::Table>>,
    source: Arc<Mutex<Source>>,
    _poll: TaskSet,
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let key = TableKey {
            path: self.path.clone(),
            origins: self.origins.clone(),
            reverse: self.reverse,
            inline: self.inline.clone(),
            reload: self.reload,
        };
        let mut made = false;
        let kept = ctx.keep(key, |ctx| {
            made = true;
            self.table(ctx)
        })?;
        if !made {
            // A reload: the file is read again if it changed since the last read.
            kept.source.lock().expect("hosts source lock").refresh();
        }
        Ok(Some(Arc::new(Hosts {
            origins: self.origins.clone().into(),
            ttl: self.ttl,
            fall: self.fall.clone(),
            table: kept.table.clone(),
        })))
    }
}

impl Config {
    /// Reads the file into a new table and starts polling it.
    fn table(&self, ctx: &mut SetupCtx<'_>) -> Result<KeptTable, Error> {
        // As CoreDNS: a missing file is worth a warning (it may appear later), a file that
        // cannot even be looked at is an error.
        let shown = self.path.display();
        let reported = match std::fs::metadata(&self.path) {
            Ok(m) if m.is_dir() => {
                tracing::warn!(target: "plugin/hosts", "Hosts file \"{shown}\" is a directory");
                true
            }
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(target: "plugin/hosts", "File does not exist: {shown}");
                true
            }
            Err(e) => {
                return Err(Error::setup(NAME, &self.path_pos, format!("unable to access hosts file '{shown}': {e}")));
            }
        };

        let label = shown.to_string();
        let metrics = ctx.metrics();
        let entries = metrics
            .gauge("coredns_hosts_entries", "The combined number of entries in hosts and Corefile.", &["hostsfile"])
            .with(&[&label]);
        let reloaded = metrics
            .gauge("coredns_hosts_reload_timestamp_seconds", "The timestamp of the last reload of hosts file.", &[])
            .with(&[]);
        let origins: Arc<[Name]> = self.origins.clone().into();
        let settings = Settings {
            path: self.path.clone(),
            origins: origins.clone(),
            reverse: self.reverse,
            inline: self.inline.clone().into(),
            entries,
            reloaded,
        };
        let mut source = Source::new(settings, reported);
        source.refresh();
        let table: Arc<ArcSwap<_>> = source.table();
        let source = Arc::new(Mutex::new(source));
        let mut poll = TaskSet::new();
        if !self.reload.is_zero() {
            poll.spawn(watch::poll(source.clone(), self.reload));
        }
        Ok(KeptTable { table, source, _poll: poll })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plugin::testing::names;

    fn config(text: &str) -> Result<Config, String> {
        crate::plugin::testing::parse_config(text, NAME, parse)
    }

    #[test]
    fn defaults() {
        let c = config("example.org example.net {\n    hosts\n}\n").unwrap();
        assert_eq!(c.path, std::path::Path::new("/etc/hosts"));
        assert_eq!(names(&c.origins), ["example.org.", "example.net."]);
        assert_eq!((c.ttl, c.reload, c.reverse), (3600, Duration::from_secs(5), true));
        assert!(!c.fall.is_set());
        assert!(c.inline.is_empty());
    }

    #[test]
    fn every_option() {
        let c = config(
            ". {\n    hosts custom.hosts Example.ORG 10.0.0.0/8 {\n        10.0.0.1 a.example.org A\n        \
             fe80::1%eth0 r.example.org\n        ttl 60\n        no_reverse\n        reload 1m30s\n        \
             fallthrough example.org\n        ::1 late.example.org\n    }\n}\n",
        )
        .unwrap();
        assert_eq!(c.path, std::path::Path::new("/etc/coredns/custom.hosts"));
        assert_eq!(names(&c.origins), ["example.org.", "10.in-addr.arpa."]);
        assert_eq!((c.ttl, c.reload, c.reverse), (60, Duration::from_secs(90), false));
        assert!(c.fall.through(&Name::parse("x.example.org").unwrap()));
        assert!(!c.fall.through(&Name::parse("x.example.net").unwrap()));
        let inline: Vec<String> = c.inline.iter().map(|l| l.to_string()).collect();
        assert_eq!(inline, ["10.0.0.1 a.example.org. a.", "fe80::1 r.example.org.", "::1 late.example.org."]);
    }

    #[test]
    fn reload_zero_and_absolute_paths() {
        let c = config(". {\n    hosts /srv/hosts {\n        reload 0\n    }\n}\n").unwrap();
        assert_eq!(c.path, std::path::Path::new("/srv/hosts"));
        assert_eq!(c.reload, Duration::ZERO);
    }

    #[test]
    fn positioned_errors() {
        // Each property line is line 3 of its Corefile, indented by 8.
        let cases: &[(&str, &str)] = &[
            ("ttl x", "3:13: hosts: ttl must be 1 to 65535 seconds, got 'x'"),
            ("ttl 0", "3:13: hosts: ttl must be 1 to 65535 seconds, got '0'"),
            ("ttl 65536", "3:13: hosts: ttl must be 1 to 65535 seconds, got '65536'"),
            ("ttl", "3:12: hosts: ttl: expected a TTL in seconds"),
            ("ttl 30 60", "3:16: hosts: unexpected argument '60'"),
            ("reload -1s", "3:16: hosts: reload cannot be negative, got '-1s' (0 disables it)"),
            ("reload soon", "3:16: hosts: expected a reload interval (a duration such as 30s), got 'soon'"),
            ("reload", "3:15: hosts: reload: expected a reload interval"),
            ("no_reverse please", "3:20: hosts: unexpected argument 'please'"),
            ("podz 1", "3:9: hosts: unknown property 'podz'"),
            ("fallthrough_unsupported", "3:9: hosts: 'fallthrough_unsupported' is not supported by clusterdns"),
            ("fallthrough a..b", "3:21: hosts: invalid zone 'a..b': empty label in 'a..b'"),
            ("10.0.0.1", "3:17: hosts: 10.0.0.1: expected a name after the address"),
            ("10.0.0.1 ok a..b", "3:21: hosts: invalid name 'a..b': empty label in 'a..b'"),
            // An inline entry whose address does not parse names it (it was "unknown property").
            (
                "10.0.0.300 web.example.org",
                "3:9: hosts: invalid address '10.0.0.300' in an inline entry (ADDRESS NAME...)",
            ),
            ("fd00::zz web.example.org", "3:9: hosts: invalid address 'fd00::zz' in an inline entry (ADDRESS NAME...)"),
            ("no_reverse {\n        }", "3:20: hosts: no_reverse: takes no block"),
        ];
        for (line, want) in cases {
            let err = config(&format!(". {{\n    hosts {{\n        {line}\n    }}\n}}\n")).unwrap_err();
            assert_eq!(err, format!("/etc/coredns/Corefile:{want}"), "{line}");
        }
    }

    #[test]
    fn once_per_block_and_properties_once() {
        let err = config(". {\n    hosts\n    hosts\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:3:5: hosts: this plugin can only be used once per Server Block");
        let err = config(". {\n    hosts {\n        ttl 5\n        ttl 6\n    }\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:4:9: hosts: 'ttl' is given twice");
        let err = config(". {\n    hosts /etc/hosts a..b\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:2:22: hosts: invalid zone 'a..b': empty label in 'a..b'");
    }
}
