//! ```text
//! timeouts {
//!     read DURATION                   1s-24h, default 3s
//!     write DURATION                  1s-24h, default 5s
//!     idle DURATION                   1s-24h, default 10s
//!     maxtcpqueries MAXIMUM           -1 (unlimited, the default) or a positive integer
//!     maxtcpconns MAXIMUM             clusterdns: positive integer
//!     maxtcpconnsperclient MAXIMUM    clusterdns: positive integer
//! }
//! ```
//!
//! CoreDNS's rules: no arguments, at least one option, each option exactly one value. As in
//! CoreDNS an option given twice takes its last value, and the directive may appear more than
//! once in a block.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use super::NAME;
use crate::corefile::{Args, Directive, Error, format_duration};
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};
use crate::server::TcpSettings;

/// The shortest and longest timeout CoreDNS accepts.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// One option of the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    Read(Duration),
    Write(Duration),
    Idle(Duration),
    /// `None` is `-1`: no limit.
    MaxQueries(Option<NonZeroU32>),
    MaxConnections(NonZeroUsize),
    MaxPerClient(NonZeroUsize),
}

/// The options of a block's `timeouts` directives, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    settings: Vec<Setting>,
}

impl Timeouts {
    /// Sets what this block gives on `s`, leaving the rest as it is: the server applies the
    /// blocks of a listen address in file order, so where two blocks set an option the later
    /// one wins, as in CoreDNS.
    pub fn apply(&self, s: &mut TcpSettings) {
        for setting in &self.settings {
            match *setting {
                Setting::Read(d) => s.read = d,
                Setting::Write(d) => s.write = d,
                Setting::Idle(d) => s.idle = d,
                Setting::MaxQueries(n) => s.max_queries = n,
                Setting::MaxConnections(n) => s.max_connections = Some(n),
                Setting::MaxPerClient(n) => s.max_per_client = Some(n),
            }
        }
    }
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let mut settings = Vec::new();
    for dir in dirs {
        let args = Args::new(NAME, dir);
        args.finish()?;
        if args.block().is_empty() {
            let at = dir.block.as_ref().map_or(dir.end_pos(), |b| b.open.clone());
            return Err(args.error_at(&at, "timeouts block with no timeouts specified"));
        }
        for line in args.block() {
            let mut prop = args.property(line);
            prop.no_block()?;
            let name = line.name.text.as_str();
            let setting = match name {
                "read" | "write" | "idle" => {
                    let t = prop.peek();
                    let d = prop.duration("a timeout")?;
                    if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&d) {
                        let t = t.expect("a duration was read");
                        return Err(prop.error(
                            t,
                            format!(
                                "timeout provided '{}' needs to be between 1 second and 24 hours",
                                format_duration(d)
                            ),
                        ));
                    }
                    match name {
                        "read" => Setting::Read(d),
                        "write" => Setting::Write(d),
                        _ => Setting::Idle(d),
                    }
                }
                "maxtcpqueries" => {
                    let t = prop.required("a number of queries, or -1 for no limit")?;
                    match t.text.parse::<i64>() {
                        Ok(-1) => Setting::MaxQueries(None),
                        Ok(n) if n > 0 => Setting::MaxQueries(Some(
                            u32::try_from(n).ok().and_then(NonZeroU32::new).unwrap_or(NonZeroU32::MAX),
                        )),
                        Ok(n) => {
                            return Err(prop.error(
                                t,
                                format!(
                                    "maxtcpqueries provided '{n}' needs to be -1 (unlimited) or a positive integer"
                                ),
                            ));
                        }
                        Err(_) => {
                            return Err(prop.error(t, format!("invalid value for maxtcpqueries '{}'", t.text)));
                        }
                    }
                }
                "maxtcpconns" | "maxtcpconnsperclient" => {
                    let t = prop.required("a number of connections")?;
                    let n = t.text.parse::<usize>().ok().and_then(NonZeroUsize::new).ok_or_else(|| {
                        prop.error(t, format!("{name} provided '{}' needs to be a positive integer", t.text))
                    })?;
                    if name == "maxtcpconns" { Setting::MaxConnections(n) } else { Setting::MaxPerClient(n) }
                }
                _ => return Err(prop.unknown_property()),
            };
            prop.finish()?;
            settings.push(setting);
        }
    }
    Ok(Box::new(Timeouts { settings }))
}

impl PluginConfig for Timeouts {
    fn build(&self, _ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn timeouts(text: &str) -> Result<TcpSettings, Error> {
        let c = parse_str("Corefile", text, &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        let mut s = TcpSettings::default();
        cfg.as_any().downcast_ref::<Timeouts>().unwrap().apply(&mut s);
        Ok(s)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn coredns_defaults_and_what_each_option_sets() {
        let d = TcpSettings::default();
        assert_eq!((d.read, d.write, d.idle, d.max_queries), (secs(3), secs(5), secs(10), None));
        let s = timeouts(". {\n timeouts {\n  read 15s\n  write 30s\n  idle 1m\n  maxtcpqueries 128\n }\n}").unwrap();
        assert_eq!((s.read, s.write, s.idle), (secs(15), secs(30), secs(60)));
        assert_eq!(s.max_queries, NonZeroU32::new(128));
        let s = timeouts(". {\n timeouts {\n  maxtcpqueries 5\n  maxtcpqueries -1\n }\n}").unwrap();
        assert_eq!(s.max_queries, None, "the last value wins, as in CoreDNS");
        let s = timeouts(". {\n timeouts {\n  maxtcpconns 20000\n  maxtcpconnsperclient 50\n }\n}").unwrap();
        assert_eq!((s.max_connections, s.max_per_client), (NonZeroUsize::new(20000), NonZeroUsize::new(50)));
        // Bounds are inclusive.
        assert_eq!(timeouts(". {\n timeouts {\n  idle 24h\n  read 1s\n }\n}").unwrap().idle, secs(86400));
    }

    #[test]
    fn errors_name_their_position() {
        for (text, want) in [
            (". {\n timeouts\n}", "Corefile:2:10: timeouts: timeouts block with no timeouts specified"),
            (". {\n timeouts {\n }\n}", "Corefile:2:11: timeouts: timeouts block with no timeouts specified"),
            (". {\n timeouts 10s {\n  read 1s\n }\n}", "Corefile:2:11: timeouts: unexpected argument '10s'"),
            (
                ". {\n timeouts {\n  read 500ms\n }\n}",
                "Corefile:3:8: timeouts: timeout provided '500ms' needs to be between 1 second and 24 hours",
            ),
            (
                ". {\n timeouts {\n  idle 25h\n }\n}",
                "Corefile:3:8: timeouts: timeout provided '25h0m0s' needs to be between 1 second and 24 hours",
            ),
            (". {\n timeouts {\n  write\n }\n}", "Corefile:3:8: timeouts: write: expected a timeout"),
            (". {\n timeouts {\n  read 1s 2s\n }\n}", "Corefile:3:11: timeouts: unexpected argument '2s'"),
            (
                ". {\n timeouts {\n  maxtcpqueries 0\n }\n}",
                "Corefile:3:17: timeouts: maxtcpqueries provided '0' needs to be -1 (unlimited) or a positive integer",
            ),
            (
                ". {\n timeouts {\n  maxtcpqueries many\n }\n}",
                "Corefile:3:17: timeouts: invalid value for maxtcpqueries 'many'",
            ),
            (
                ". {\n timeouts {\n  maxtcpconnsperclient 0\n }\n}",
                "Corefile:3:24: timeouts: maxtcpconnsperclient provided '0' needs to be a positive integer",
            ),
            (". {\n timeouts {\n  dial 1s\n }\n}", "Corefile:3:3: timeouts: unknown property 'dial'"),
        ] {
            assert_eq!(timeouts(text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
