//! ```text
//! forward FROM TO... {
//!     except IGNORED_NAMES...
//!     force_tcp
//!     prefer_udp
//!     expire DURATION                       default 10s
//!     max_idle_conns INTEGER                default 0 (no limit)
//!     read_timeout DURATION                 default 2s, positive
//!     max_fails INTEGER                     default 2, 0 never marks an upstream down
//!     max_connect_attempts INTEGER          default 2 per upstream, 0 no limit but the deadline
//!     policy random|round_robin|sequential  default random
//!     health_check DURATION [no_rec] [domain FQDN]   default 0.5s, 0 disables
//!     max_concurrent MAX                    default 0 (no limit)
//!     next RCODE...
//!     failover RCODE...                     not NOERROR
//!     failfast_all_unhealthy_upstreams
//!     tls [CERT KEY] [CA]
//!     tls_servername NAME
//! }
//! ```
//!
//! `TO` is `IP`, `IP:PORT`, `[IPv6]:PORT`, `dns://` followed by one of those,
//! `tls://IP[%NAME][:PORT]` (DNS over TLS, port 853), or the path of a resolv.conf file whose
//! `nameserver` lines are read when the plugin is built. At most 15 upstreams. Several `forward` lines in a block are tried in the order written, as CoreDNS
//! 1.12+ chains them: a name outside one's FROM (or in its `except`) goes to the next, and so
//! does an answer whose rcode is in its `next`.
//!
//! What this build does not have is an error at its position: `https://` upstreams, host names
//! as upstreams, and CoreDNS's newest options (`max_age`, `next_on_nodata`, `source_address`,
//! `resolver`, `doh_method`).
//!
//! Each upstream's connection pool and health are kept across reloads while its address and
//! the settings they depend on (`expire`, `max_idle_conns`, `read_timeout`, `health_check`,
//! `force_tcp`, and for DNS over TLS `tls` and the server name) are unchanged.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::metrics::Families;
use super::tls::{self, TlsFiles};
use super::upstream::{ConnSettings, HealthSettings, TlsClient, Upstream};
use super::{Forward, NAME, Policy, Stanza};
use crate::corefile::{Args, Directive, Error, Pos, Token};
use crate::dns::{Name, Rcode};
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx, TaskSet};

/// CoreDNS's limit on upstreams per `forward`.
pub const MAX_UPSTREAMS: usize = 15;
const DEFAULT_EXPIRE: Duration = Duration::from_secs(10);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_HC_INTERVAL: Duration = Duration::from_millis(500);
const DEFAULT_MAX_FAILS: u32 = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    stanzas: Vec<StanzaConfig>,
}

/// One `forward` line as written.
#[derive(Clone, Debug, PartialEq)]
pub struct StanzaConfig {
    pub from: Name,
    pub to: Vec<To>,
    pub except: Vec<Name>,
    pub force_tcp: bool,
    pub prefer_udp: bool,
    pub conn: ConnSettings,
    pub max_fails: u32,
    /// `None`: two per upstream.
    pub max_connect_attempts: Option<u32>,
    pub policy: Policy,
    pub hc_interval: Duration,
    pub hc_recursion_desired: bool,
    pub hc_domain: Name,
    pub max_concurrent: u32,
    pub next: Vec<Rcode>,
    pub failover: Vec<Rcode>,
    pub failfast: bool,
    pub tls: TlsFiles,
    /// Where `tls` was given, to blame when its files cannot be used.
    pub tls_pos: Option<Pos>,
    pub tls_servername: Option<String>,
}

/// One `TO` argument.
#[derive(Clone, Debug, PartialEq)]
pub enum To {
    Addr(SocketAddr),
    /// A resolv.conf file, read when the plugin is built; where to blame if it cannot be.
    ResolvConf(PathBuf, Pos),
    /// `tls://IP[%NAME][:PORT]`: DNS over TLS, with the name its certificate must carry.
    Tls(SocketAddr, Option<String>, Pos),
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let stanzas = dirs.iter().map(parse_stanza).collect::<Result<Vec<_>, _>>()?;
    Ok(Box::new(Config { stanzas }))
}

fn parse_stanza(dir: &Directive) -> Result<StanzaConfig, Error> {
    let mut args = Args::new(NAME, dir);
    let from = args.required("FROM, the zone to forward")?;
    let from = zone(&args, from)?;
    let mut to = Vec::new();
    for t in args.rest() {
        to.push(parse_to(&args, t)?);
    }
    if to.is_empty() {
        args.required("at least one upstream (TO)")?;
    }
    let addrs = to.iter().filter(|t| !matches!(t, To::ResolvConf(..))).count();
    if addrs > MAX_UPSTREAMS {
        let t = &dir.args[MAX_UPSTREAMS + 1];
        return Err(args.error(t, format!("more than {MAX_UPSTREAMS} upstreams configured: {addrs}")));
    }
    let mut s = StanzaConfig {
        from,
        to,
        except: Vec::new(),
        force_tcp: false,
        prefer_udp: false,
        conn: ConnSettings { expire: DEFAULT_EXPIRE, max_idle_conns: 0, read_timeout: DEFAULT_READ_TIMEOUT },
        max_fails: DEFAULT_MAX_FAILS,
        max_connect_attempts: None,
        policy: Policy::Random,
        hc_interval: DEFAULT_HC_INTERVAL,
        hc_recursion_desired: true,
        hc_domain: Name::root(),
        max_concurrent: 0,
        next: Vec::new(),
        failover: Vec::new(),
        failfast: false,
        tls: TlsFiles::default(),
        tls_pos: None,
        tls_servername: None,
    };
    args.each_once(|_| false)?;
    for line in args.block() {
        let mut prop = args.property(line);
        prop.no_block()?;
        let name = line.name.text.as_str();
        match name {
            "except" => {
                if line.args.is_empty() {
                    prop.required("names not to forward")?;
                }
                for t in prop.rest() {
                    s.except.push(zone(&prop, t)?);
                }
            }
            "force_tcp" => s.force_tcp = true,
            "prefer_udp" => s.prefer_udp = true,
            "expire" => s.conn.expire = non_negative(&mut prop, "expire")?,
            "max_idle_conns" => s.conn.max_idle_conns = prop.parse("a number of connections (0 or more)")?,
            "read_timeout" => {
                let t = prop.peek();
                s.conn.read_timeout = non_negative(&mut prop, "read_timeout")?;
                if s.conn.read_timeout.is_zero() {
                    let t = t.expect("read");
                    return Err(prop.error(t, format!("read_timeout must be positive, got '{}'", t.text)));
                }
            }
            "max_fails" => s.max_fails = prop.parse("a number of failed health checks (0 or more)")?,
            "max_connect_attempts" => {
                s.max_connect_attempts = Some(prop.parse("a number of attempts (0 or more)")?);
            }
            "policy" => {
                let t = prop.required("a policy: random, round_robin or sequential")?;
                s.policy = match t.text.as_str() {
                    "random" => Policy::Random,
                    "round_robin" => Policy::RoundRobin,
                    "sequential" => Policy::Sequential,
                    other => return Err(prop.error(t, format!("unknown policy '{other}'"))),
                };
            }
            "health_check" => {
                s.hc_interval = non_negative(&mut prop, "health_check")?;
                while let Some(t) = prop.next_arg() {
                    match t.text.as_str() {
                        "no_rec" => s.hc_recursion_desired = false,
                        "domain" => {
                            let d = prop.required("a domain name")?;
                            s.hc_domain = Name::parse(&d.text).map_err(|e| {
                                prop.error(d, format!("health_check: invalid domain name '{}': {e}", d.text))
                            })?;
                        }
                        other => return Err(prop.error(t, format!("health_check: unknown option '{other}'"))),
                    }
                }
            }
            "max_concurrent" => s.max_concurrent = prop.parse("a number of queries (0 or more)")?,
            "next" => s.next = rcodes(&mut prop, "next")?,
            "failover" => {
                s.failover = rcodes(&mut prop, "failover")?;
                if let Some(i) = s.failover.iter().position(|r| *r == Rcode::NOERROR) {
                    return Err(prop.error(&line.args[i], "NOERROR cannot be used in failover"));
                }
            }
            "failfast_all_unhealthy_upstreams" => s.failfast = true,
            "tls" => {
                if line.args.len() > 3 {
                    return Err(prop.error(&line.args[3], "tls takes at most CERT KEY CA"));
                }
                let files: Vec<PathBuf> = prop.rest().iter().map(|t| t.pos.resolve_path(&t.text)).collect();
                s.tls = match files.as_slice() {
                    [] => TlsFiles::default(),
                    [ca] => TlsFiles { cert_key: None, ca: Some(ca.clone()) },
                    [cert, key] => TlsFiles { cert_key: Some((cert.clone(), key.clone())), ca: None },
                    [cert, key, ca] => TlsFiles { cert_key: Some((cert.clone(), key.clone())), ca: Some(ca.clone()) },
                    _ => unreachable!("at most three"),
                };
                s.tls_pos = Some(line.name.pos.clone());
            }
            "tls_servername" => {
                let t = prop.required("a server name")?;
                tls::server_name(&t.text).map_err(|e| prop.error(t, e))?;
                s.tls_servername = Some(t.text.clone());
            }
            "max_age" | "next_on_nodata" | "source_address" | "resolver" | "doh_method" => {
                return Err(prop.error(&line.name, format!("'{name}' is not supported yet by clusterdns")));
            }
            _ => return Err(prop.unknown_property()),
        }
        prop.finish()?;
    }
    if let Some(both) = &s.tls_servername {
        for (to, t) in s.to.iter().zip(&dir.args[1..]) {
            if let To::Tls(_, Some(name), _) = to {
                return Err(args.error(
                    t,
                    format!("both forward ('{both}') and proxy level ('{name}') TLS servernames are set for upstream proxy '{}'", t.text),
                ));
            }
        }
    }
    Ok(s)
}

fn zone(args: &Args<'_>, t: &Token) -> Result<Name, Error> {
    let text = t.text.strip_prefix("dns://").unwrap_or(&t.text);
    if text.contains('/') {
        let zones =
            crate::corefile::reverse_zones(text).ok_or_else(|| args.error(t, format!("invalid CIDR '{text}'")))?;
        // As CoreDNS: only the first zone a CIDR expands to is used.
        return Ok(zones.into_iter().next().expect("a CIDR expands to at least one zone"));
    }
    Name::parse(text).map(|n| n.to_lowercase()).map_err(|e| args.error(t, format!("invalid zone '{text}': {e}")))
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT`, with or without `dns://`; a resolv.conf path otherwise.
fn parse_to(args: &Args<'_>, t: &Token) -> Result<To, Error> {
    let text = t.text.as_str();
    if let Some((scheme, rest)) = text.split_once("://") {
        match scheme {
            "dns" => {}
            "tls" => return parse_tls(args, t, rest),
            "https" => {
                return Err(args.error(t, format!("'{scheme}://' upstreams are not supported yet by clusterdns")));
            }
            other => {
                return Err(args.error(t, format!("'{other}' is not supported as a destination protocol in forward")));
            }
        }
    }
    let addr = text.strip_prefix("dns://").unwrap_or(text);
    if let Some(a) = socket_addr(addr, 53) {
        return Ok(To::Addr(a));
    }
    // A path has a slash (`/etc/resolv.conf`, `./resolv.conf`); anything else (a host name) is
    // not accepted here.
    if text.starts_with("dns://") || !addr.contains('/') {
        return Err(args.error(t, format!("not an IP address or file: '{text}'")));
    }
    Ok(To::ResolvConf(t.pos.resolve_path(addr), t.pos.clone()))
}

/// `IP[%NAME][:PORT]` or `[IPv6[%NAME]]:PORT` after `tls://`; the port defaults to 853.
fn parse_tls(args: &Args<'_>, t: &Token, rest: &str) -> Result<To, Error> {
    let bad = || args.error(t, format!("not an IP address: '{}'", t.text));
    let (addr_text, name) = match rest.split_once('%') {
        None => (rest.to_string(), None),
        Some((ip, tail)) => {
            let (name, port) = if ip.starts_with('[') {
                let (name, port) = tail.split_once(']').ok_or_else(bad)?;
                (name, format!("]{port}"))
            } else {
                match tail.rsplit_once(':') {
                    Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (name, format!(":{port}")),
                    _ => (tail, String::new()),
                }
            };
            tls::server_name(name).map_err(|e| args.error(t, e))?;
            (format!("{ip}{port}"), Some(name.to_string()))
        }
    };
    let addr = socket_addr(&addr_text, 853).ok_or_else(bad)?;
    Ok(To::Tls(addr, name, t.pos.clone()))
}

/// `IP`, `IP:PORT` or `[IPv6]:PORT`.
fn socket_addr(text: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Some(a);
    }
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
}

fn non_negative(prop: &mut Args<'_>, what: &str) -> Result<Duration, Error> {
    if let Some(t) = prop.peek().filter(|t| t.text.starts_with('-')) {
        return Err(prop.error(t, format!("{what} can't be negative: {}", t.text)));
    }
    prop.duration("a duration")
}

fn rcodes(prop: &mut Args<'_>, what: &str) -> Result<Vec<Rcode>, Error> {
    if prop.remaining() == 0 {
        prop.required("one or more RCODEs")?;
    }
    let mut out = Vec::new();
    for t in prop.rest() {
        let rc = rcode_from_name(&t.text)
            .ok_or_else(|| prop.error(t, format!("{what}: '{}' is not a valid rcode", t.text)))?;
        out.push(rc);
    }
    Ok(out)
}

/// miekg/dns's `StringToRcode`, case-insensitive.
fn rcode_from_name(text: &str) -> Option<Rcode> {
    let upper = text.to_ascii_uppercase();
    if upper == "NOTIMPL" {
        return Some(Rcode::NOTIMP);
    }
    (0u16..=23).map(Rcode).find(|r| r.name() == Some(upper.as_str()))
}

/// Reads a resolv.conf's `nameserver` lines, as CoreDNS's `dnsutil.ParseHostPortOrFile`.
fn resolv_conf(path: &PathBuf, pos: &Pos) -> Result<Vec<SocketAddr>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound { "not an IP address or file" } else { "cannot read" };
        Error::setup(NAME, pos, format!("{what}: '{}': {e}", path.display()))
    })?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        // A link-local address's zone (`fe80::1%eth0`) is dropped: sockets here take none.
        if let Some(ip) = words.next().and_then(|w| w.split('%').next()).and_then(|w| w.parse::<IpAddr>().ok()) {
            out.push(SocketAddr::new(ip, 53));
        }
    }
    if out.is_empty() {
        return Err(Error::setup(NAME, pos, format!("no nameservers found in '{}'", path.display())));
    }
    Ok(out)
}

/// What an upstream's kept state depends on.
#[derive(PartialEq)]
struct UpstreamKey {
    addr: SocketAddr,
    conn: ConnSettings,
    health: HealthSettings,
    /// The TLS files and server name of a tls:// upstream.
    tls: Option<(TlsFiles, String)>,
}

/// An upstream and its health-check task, kept across reloads.
struct KeptUpstream {
    upstream: Arc<Upstream>,
    _task: TaskSet,
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let families = Families::new(ctx.metrics());
        let mut stanzas = Vec::with_capacity(self.stanzas.len());
        for s in &self.stanzas {
            // (address, TLS server name for a tls:// upstream)
            let mut addrs: Vec<(SocketAddr, Option<String>)> = Vec::new();
            let mut config = None;
            for to in &s.to {
                let more = match to {
                    To::Addr(a) => vec![(*a, None)],
                    To::ResolvConf(path, pos) => resolv_conf(path, pos)?.into_iter().map(|a| (a, None)).collect(),
                    To::Tls(a, name, pos) => {
                        if config.is_none() {
                            let at = s.tls_pos.as_ref().unwrap_or(pos);
                            config = Some(
                                tls::client_config(&s.tls).map_err(|e| Error::setup(NAME, at, format!("tls: {e}")))?,
                            );
                        }
                        let name =
                            name.clone().or_else(|| s.tls_servername.clone()).unwrap_or_else(|| a.ip().to_string());
                        vec![(*a, Some(name))]
                    }
                };
                for a in more {
                    if !addrs.iter().any(|(b, _)| *b == a.0) {
                        addrs.push(a);
                    }
                }
            }
            if addrs.len() > MAX_UPSTREAMS {
                let pos = match s.to.iter().find(|t| matches!(t, To::ResolvConf(..))) {
                    Some(To::ResolvConf(_, pos)) => pos.clone(),
                    _ => ctx.block().pos.clone(),
                };
                return Err(Error::setup(
                    NAME,
                    &pos,
                    format!("more than {MAX_UPSTREAMS} upstreams configured: {}", addrs.len()),
                ));
            }
            let health = HealthSettings {
                interval: s.hc_interval,
                recursion_desired: s.hc_recursion_desired,
                domain: s.hc_domain.clone(),
                tcp: s.force_tcp,
            };
            let mut upstreams = Vec::with_capacity(addrs.len());
            for (addr, name) in addrs {
                let tls_key = name.clone().map(|n| (s.tls.clone(), n));
                let key = UpstreamKey { addr, conn: s.conn.clone(), health: health.clone(), tls: tls_key };
                let kept = ctx.keep(key, |_| {
                    let label = addr.to_string();
                    let tls = match (&name, &config) {
                        (Some(name), Some(config)) => Some(TlsClient {
                            connector: tokio_rustls::TlsConnector::from(config.clone()),
                            name: tls::server_name(name).expect("checked when parsed"),
                        }),
                        _ => None,
                    };
                    let metrics = families.upstream(&label, tls.is_some());
                    let u = Arc::new(Upstream::new(addr, s.conn.clone(), health.clone(), tls, metrics));
                    let mut task = TaskSet::new();
                    task.spawn(u.clone().run());
                    Ok(KeptUpstream { upstream: u, _task: task })
                })?;
                upstreams.push(kept.upstream.clone());
            }
            stanzas.push(Stanza::new(s, upstreams, families.clone()));
        }
        Ok(Some(Arc::new(Forward { stanzas })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Config, String> {
        crate::plugin::testing::parse_config(text, NAME, parse)
    }

    fn one(text: &str) -> Result<StanzaConfig, String> {
        config(text).map(|c| c.stanzas[0].clone())
    }

    #[test]
    fn defaults_are_corednss() {
        let s = one(". {\n    forward . 10.0.0.1\n}\n").unwrap();
        assert_eq!(s.from, Name::root());
        assert_eq!(s.to, [To::Addr("10.0.0.1:53".parse().unwrap())]);
        assert_eq!(
            s.conn,
            ConnSettings { expire: DEFAULT_EXPIRE, max_idle_conns: 0, read_timeout: DEFAULT_READ_TIMEOUT }
        );
        assert_eq!((s.max_fails, s.max_connect_attempts, s.policy), (2, None, Policy::Random));
        assert_eq!(
            (s.hc_interval, s.hc_recursion_desired, s.hc_domain.clone()),
            (DEFAULT_HC_INTERVAL, true, Name::root())
        );
        assert_eq!((s.force_tcp, s.prefer_udp, s.max_concurrent, s.failfast), (false, false, 0, false));
    }

    #[test]
    fn every_option() {
        let s = one(
            ". {\n    forward Example.ORG dns://10.0.0.1:5300 [::1]:53 ::2 10.0.0.2 {\n        except A.example.org b.example.org\n        \
             force_tcp\n        prefer_udp\n        expire 1m\n        max_idle_conns 4\n        read_timeout 500ms\n        \
             max_fails 5\n        max_connect_attempts 3\n        policy sequential\n        \
             health_check 2s no_rec domain health.example.\n        max_concurrent 1000\n        next NXDOMAIN servfail\n        \
             failover REFUSED NOTIMPL\n        failfast_all_unhealthy_upstreams\n    }\n}\n",
        )
        .unwrap();
        assert_eq!(s.from.to_string(), "example.org.");
        let to: Vec<String> =
            s.to.iter().map(|t| if let To::Addr(a) = t { a.to_string() } else { panic!("{t:?}") }).collect();
        assert_eq!(to, ["10.0.0.1:5300", "[::1]:53", "[::2]:53", "10.0.0.2:53"]);
        let except: Vec<String> = s.except.iter().map(|n| n.to_string()).collect();
        assert_eq!(except, ["a.example.org.", "b.example.org."]);
        assert!(s.force_tcp && s.prefer_udp && s.failfast && !s.hc_recursion_desired);
        assert_eq!(
            s.conn,
            ConnSettings {
                expire: Duration::from_secs(60),
                max_idle_conns: 4,
                read_timeout: Duration::from_millis(500)
            }
        );
        assert_eq!((s.max_fails, s.max_connect_attempts, s.policy), (5, Some(3), Policy::Sequential));
        assert_eq!((s.hc_interval, s.hc_domain.to_string()), (Duration::from_secs(2), "health.example.".into()));
        assert_eq!(s.max_concurrent, 1000);
        assert_eq!(s.next, [Rcode::NXDOMAIN, Rcode::SERVFAIL]);
        assert_eq!(s.failover, [Rcode::REFUSED, Rcode::NOTIMP]);
    }

    /// The kubeadm Corefile's line: the path is kept as written and read when built.
    #[test]
    fn kubeadm_resolv_conf_line() {
        let s = one(". {\n    forward . /etc/resolv.conf {\n        max_concurrent 1000\n    }\n}\n").unwrap();
        assert!(matches!(&s.to[..], [To::ResolvConf(p, _)] if p == std::path::Path::new("/etc/resolv.conf")));
        assert_eq!(s.max_concurrent, 1000);
    }

    #[test]
    fn resolv_conf_nameservers_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# comment\nsearch svc.cluster.local\nnameserver 10.0.0.10\nnameserver fe80::1%eth0\noptions ndots:5\n",
        )
        .unwrap();
        let pos = Pos::new(&Arc::from("Corefile"), 2, 17);
        let got = resolv_conf(&path, &pos).unwrap();
        assert_eq!(got, ["10.0.0.10:53".parse().unwrap(), "[fe80::1]:53".parse().unwrap()]);
        let err = resolv_conf(&dir.path().join("missing"), &pos).unwrap_err().to_string();
        assert!(err.starts_with("Corefile:2:17: forward: not an IP address or file: "), "{err}");
    }

    #[test]
    fn tls_upstreams_and_options() {
        let s = one(". {\n    forward . tls://9.9.9.9%dns.quad9.net tls://1.1.1.1:10853 tls://[2606:4700::1111]:853 \
             tls://10.0.0.1%dot.example:8853 10.0.0.2 {\n        tls cert.pem key.pem ca.pem\n    }\n}\n")
        .unwrap();
        let to: Vec<String> =
            s.to.iter()
                .map(|t| match t {
                    To::Tls(a, n, _) => format!("tls {a} {}", n.as_deref().unwrap_or("-")),
                    To::Addr(a) => format!("dns {a}"),
                    other => panic!("{other:?}"),
                })
                .collect();
        assert_eq!(
            to,
            [
                "tls 9.9.9.9:853 dns.quad9.net",
                "tls 1.1.1.1:10853 -",
                "tls [2606:4700::1111]:853 -",
                "tls 10.0.0.1:8853 dot.example",
                "dns 10.0.0.2:53"
            ]
        );
        let dir = std::path::Path::new("/etc/coredns");
        assert_eq!(
            s.tls,
            TlsFiles { cert_key: Some((dir.join("cert.pem"), dir.join("key.pem"))), ca: Some(dir.join("ca.pem")) }
        );
        let s = one(
            ". {\n    forward . tls://9.9.9.9 {\n        tls ca.pem\n        tls_servername dns.quad9.net\n    }\n}\n",
        )
        .unwrap();
        assert_eq!((s.tls.ca.clone(), s.tls_servername.as_deref()), (Some(dir.join("ca.pem")), Some("dns.quad9.net")));
        let err = config(". {\n    forward . tls://9.9.9.9%a.example {\n        tls_servername b.example\n    }\n}\n")
            .unwrap_err();
        assert_eq!(
            err,
            "/etc/coredns/Corefile:2:15: forward: both forward ('b.example') and proxy level ('a.example') TLS \
             servernames are set for upstream proxy 'tls://9.9.9.9%a.example'"
        );
    }

    #[test]
    fn several_forward_lines_are_kept_in_order() {
        let c = config(". {\n    forward lab.example 10.0.0.1\n    forward . 10.0.0.2\n}\n").unwrap();
        let froms: Vec<String> = c.stanzas.iter().map(|s| s.from.to_string()).collect();
        assert_eq!(froms, ["lab.example.", "."]);
    }

    #[test]
    fn positioned_errors() {
        let cases: &[(&str, &str)] = &[
            ("expire -1s", "3:16: forward: expire can't be negative: -1s"),
            ("expire soon", "3:16: forward: expected a duration (a duration such as 30s), got 'soon'"),
            ("read_timeout 0", "3:22: forward: read_timeout must be positive, got '0'"),
            ("max_fails x", "3:19: forward: expected a number of failed health checks (0 or more), got 'x'"),
            ("max_idle_conns -1", "3:24: forward: expected a number of connections (0 or more), got '-1'"),
            ("policy fastest", "3:16: forward: unknown policy 'fastest'"),
            ("health_check 1s sometimes", "3:25: forward: health_check: unknown option 'sometimes'"),
            (
                "health_check 1s domain a..b",
                "3:32: forward: health_check: invalid domain name 'a..b': empty label in 'a..b'",
            ),
            ("next NOPE", "3:14: forward: next: 'NOPE' is not a valid rcode"),
            ("failover SERVFAIL NOERROR", "3:27: forward: NOERROR cannot be used in failover"),
            ("next", "3:13: forward: next: expected one or more RCODEs"),
            ("force_tcp yes", "3:19: forward: unexpected argument 'yes'"),
            ("tls a b c d", "3:19: forward: tls takes at most CERT KEY CA"),
            ("tls_servername", "3:23: forward: tls_servername: expected a server name"),
            ("max_age 30s", "3:9: forward: 'max_age' is not supported yet by clusterdns"),
            ("podz", "3:9: forward: unknown property 'podz'"),
        ];
        for (line, want) in cases {
            let err = config(&format!(". {{\n    forward . 10.0.0.1 {{\n        {line}\n    }}\n}}\n")).unwrap_err();
            assert_eq!(err, format!("/etc/coredns/Corefile:{want}"), "{line}");
        }
        let tos: &[(&str, &str)] = &[
            ("tls://dns.quad9.net", "2:15: forward: not an IP address: 'tls://dns.quad9.net'"),
            (
                "https://dns.example/dns-query",
                "2:15: forward: 'https://' upstreams are not supported yet by clusterdns",
            ),
            ("grpc://10.0.0.1", "2:15: forward: 'grpc' is not supported as a destination protocol in forward"),
            ("dns.example.com", "2:15: forward: not an IP address or file: 'dns.example.com'"),
            ("dns://nope", "2:15: forward: not an IP address or file: 'dns://nope'"),
        ];
        for (to, want) in tos {
            let err = config(&format!(". {{\n    forward . {to}\n}}\n")).unwrap_err();
            assert_eq!(err, format!("/etc/coredns/Corefile:{want}"), "{to}");
        }
        let err = config(". {\n    forward .\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:2:14: forward: expected at least one upstream (TO)");
        let many: Vec<String> = (1..=16).map(|i| format!("10.0.0.{i}")).collect();
        let err = config(&format!(". {{\n    forward . {}\n}}\n", many.join(" "))).unwrap_err();
        assert!(
            err.starts_with("/etc/coredns/Corefile:2:") && err.ends_with("more than 15 upstreams configured: 16"),
            "{err}"
        );
    }
}
