//! ```text
//! cache [TTL] [ZONES...] {
//!     success CAPACITY [TTL [MINTTL]]         positive answers; default 9984, 3600, 5
//!     denial CAPACITY [TTL [MINTTL]]          NXDOMAIN, NODATA, SERVFAIL; default 9984, 1800, 5
//!     prefetch AMOUNT [DURATION [PERCENTAGE%]]             default 1m, 10%
//!     serve_stale [DURATION [immediate [RESPONSE_TTL [FAILURE_RECHECK]]
//!                          | verify [VERIFY_TIMEOUT [RESPONSE_TTL [FAILURE_RECHECK]]]]]
//!     servfail DURATION                       default 5s, at most 5m, 0 disables
//!     disable success|denial [ZONES...]
//!     keepttl
//! }
//! ```
//!
//! The first argument is the TTL cap of both kinds when it is an integer (CoreDNS's rule:
//! anything else is the first zone). ZONES default to the server block's zones. Once per server
//! block; each property at most once, except `disable`, whose zones add up.

use std::sync::Arc;
use std::time::Duration;

use super::{Cache, NAME};
use crate::corefile::{Args, Directive, Error, Token, once};
use crate::dns::Name;
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

/// CoreDNS's cache holds 256 shards of at least 4 entries each, so a capacity is rounded down to
/// a multiple of 256 and is at least 1024; the default 10000 becomes 9984.
const SHARDS: u64 = 256;
const DEFAULT_CAPACITY: u64 = 10_000;
/// dnsutil.MaximumDefaultTTL and half of it for denials.
const MAX_SUCCESS_TTL: u32 = 3600;
const MAX_DENIAL_TTL: u32 = 1800;
/// dnsutil.MinimalDefaultTTL: also the TTL of answers without records.
pub(super) const MIN_TTL: u32 = 5;
/// RFC 2308 7.1: a server failure "MUST NOT" be cached for longer than five minutes.
const MAX_SERVFAIL: Duration = Duration::from_secs(300);
const DEFAULT_SERVFAIL: Duration = Duration::from_secs(5);
const DEFAULT_PREFETCH_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_PREFETCH_PERCENTAGE: u8 = 10;
const DEFAULT_STALE: Duration = Duration::from_secs(3600);
/// RFC 8767 4: the failure recheck "SHOULD NOT" exceed five minutes; CoreDNS enforces it.
const MAX_RECHECK: Duration = Duration::from_secs(300);

/// One kind of entry: positive answers, or denials and failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Entries kept, already rounded as CoreDNS rounds it.
    pub capacity: u64,
    /// The longest an entry is kept, in seconds; answers with longer TTLs are capped to it.
    pub max_ttl: u32,
    /// The shortest an entry is kept, in seconds; answers with shorter TTLs are raised to it.
    pub min_ttl: u32,
}

/// `prefetch AMOUNT [DURATION [PERCENTAGE%]]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefetch {
    /// Queries, each within `window` of the one before, that make an entry popular.
    pub amount: u32,
    pub window: Duration,
    /// Refresh once the remaining TTL is at most this share of the entry's TTL.
    pub percentage: u8,
}

/// `serve_stale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stale {
    /// How long past its TTL an entry may still be served.
    pub up_to: Duration,
    /// `verify`: ask the plugins after the cache first, and serve the stale entry only when they
    /// fail. `immediate` (false): serve it at once and refresh in the background.
    pub verify: bool,
    /// With `verify`, how long to wait for the refresh before serving stale (it carries on in
    /// the background); zero waits for as long as the refresh takes.
    pub verify_timeout: Duration,
    /// The TTL of stale answers, in seconds.
    pub response_ttl: u32,
    /// After a failed refresh, how long to serve stale without trying again.
    pub failure_recheck: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub zones: Vec<Name>,
    pub success: Tier,
    pub denial: Tier,
    pub servfail: Duration,
    pub prefetch: Option<Prefetch>,
    pub stale: Option<Stale>,
    pub disable_success: Vec<Name>,
    pub disable_denial: Vec<Name>,
    pub keepttl: bool,
}

pub fn parse(dirs: &[Directive], ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let capacity = rounded(DEFAULT_CAPACITY);
    let mut cfg = Config {
        zones: Vec::new(),
        success: Tier { capacity, max_ttl: MAX_SUCCESS_TTL, min_ttl: MIN_TTL },
        denial: Tier { capacity, max_ttl: MAX_DENIAL_TTL, min_ttl: MIN_TTL },
        servfail: DEFAULT_SERVFAIL,
        prefetch: None,
        stale: None,
        disable_success: Vec::new(),
        disable_denial: Vec::new(),
        keepttl: false,
    };
    if let Some(t) = args.peek().filter(|t| is_integer(&t.text)) {
        args.next_arg();
        let ttl = positive_ttl(&args, t)?;
        cfg.success.max_ttl = ttl;
        cfg.denial.max_ttl = ttl;
    }
    let zones = args.zones()?;
    cfg.zones = if zones.is_empty() { ctx.zones.to_vec() } else { zones };

    args.each_once(|name| name == "disable")?;
    for line in args.block() {
        let mut prop = args.property(line);
        prop.no_block()?;
        let name = line.name.text.as_str();
        match name {
            "success" => cfg.success = tier(&mut prop, cfg.success)?,
            "denial" => cfg.denial = tier(&mut prop, cfg.denial)?,
            "prefetch" => cfg.prefetch = prefetch(&mut prop)?,
            "serve_stale" => cfg.stale = Some(serve_stale(&mut prop)?),
            "servfail" => {
                let t = prop.required("a duration")?;
                let d = duration(&prop, t)?;
                if d > MAX_SERVFAIL {
                    return Err(prop.error(t, "caching SERVFAIL responses over 5 minutes is not permitted (RFC 2308)"));
                }
                cfg.servfail = d;
            }
            "disable" => {
                let which = prop.required("success or denial")?;
                let mut zones = prop.zones()?;
                if zones.is_empty() {
                    zones.push(Name::root());
                }
                let list = match which.text.as_str() {
                    "success" => &mut cfg.disable_success,
                    "denial" => &mut cfg.disable_denial,
                    other => {
                        return Err(prop
                            .error(which, format!("cache type for disable must be success or denial, got '{other}'")));
                    }
                };
                for z in zones {
                    if !list.contains(&z) {
                        list.push(z);
                    }
                }
            }
            "keepttl" => cfg.keepttl = true,
            "serve_stale_policy" => {
                return Err(prop.error(&line.name, "'serve_stale_policy' is not supported by clusterdns"));
            }
            _ => return Err(prop.unknown_property()),
        }
        prop.finish()?;
    }
    Ok(Box::new(cfg))
}

/// Go's `strconv.Atoi` accepts a sign: `cache -5` is a TTL (and an error), not a zone.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// CoreDNS's shard rounding: a multiple of 256, at least 1024.
fn rounded(capacity: u64) -> u64 {
    (capacity / SHARDS).max(4) * SHARDS
}

fn integer(args: &Args<'_>, t: &Token, what: &str) -> Result<i64, Error> {
    if !is_integer(&t.text) {
        return Err(args.error(t, format!("{what} must be an integer, got '{}'", t.text)));
    }
    t.text.parse::<i64>().map_err(|_| args.error(t, format!("{what} is out of range: '{}'", t.text)))
}

/// A TTL cap: 1 second or more.
fn positive_ttl(args: &Args<'_>, t: &Token) -> Result<u32, Error> {
    match integer(args, t, "TTL")? {
        ttl @ 1..=0xffff_ffff => Ok(ttl as u32),
        ttl if ttl <= 0 => Err(args.error(t, format!("cache TTL can not be zero or negative: {ttl}"))),
        _ => Err(args.error(t, format!("TTL is out of range: '{}'", t.text))),
    }
}

/// `success|denial CAPACITY [TTL [MINTTL]]`.
fn tier(prop: &mut Args<'_>, mut tier: Tier) -> Result<Tier, Error> {
    let t = prop.required("a capacity")?;
    let capacity = integer(prop, t, "capacity")?;
    if capacity < 0 {
        return Err(prop.error(t, format!("capacity can not be negative: {capacity}")));
    }
    tier.capacity = rounded(capacity as u64);
    if let Some(t) = prop.next_arg() {
        tier.max_ttl = positive_ttl(prop, t)?;
    }
    if let Some(t) = prop.next_arg() {
        tier.min_ttl = match integer(prop, t, "minimum TTL")? {
            ttl @ 0..=0xffff_ffff => ttl as u32,
            ttl if ttl < 0 => return Err(prop.error(t, format!("cache min TTL can not be negative: {ttl}"))),
            _ => return Err(prop.error(t, format!("minimum TTL is out of range: '{}'", t.text))),
        };
    }
    Ok(tier)
}

/// `prefetch AMOUNT [DURATION [PERCENTAGE%]]`; AMOUNT 0 turns prefetching off.
fn prefetch(prop: &mut Args<'_>) -> Result<Option<Prefetch>, Error> {
    let t = prop.required("an amount")?;
    let amount = integer(prop, t, "prefetch amount")?;
    if amount < 0 {
        return Err(prop.error(t, format!("prefetch amount should be positive: {amount}")));
    }
    let amount = u32::try_from(amount).map_err(|_| prop.error(t, "prefetch amount is out of range"))?;
    let mut p = Prefetch { amount, window: DEFAULT_PREFETCH_WINDOW, percentage: DEFAULT_PREFETCH_PERCENTAGE };
    if let Some(t) = prop.next_arg() {
        p.window = duration(prop, t)?;
        if p.window.is_zero() {
            return Err(prop.error(t, "prefetch duration must be more than zero"));
        }
    }
    if let Some(t) = prop.next_arg() {
        let Some(number) = t.text.strip_suffix('%') else {
            return Err(prop.error(t, format!("a percentage ends with '%', got '{}'", t.text)));
        };
        p.percentage = match number.parse::<u8>() {
            Ok(pct @ 10..=90) => pct,
            _ => return Err(prop.error(t, format!("percentage should fall in range [10, 90]: '{}'", t.text))),
        };
    }
    Ok((amount > 0).then_some(p))
}

/// `serve_stale [DURATION [immediate [RESPONSE_TTL [FAILURE_RECHECK]] | verify [VERIFY_TIMEOUT
/// [RESPONSE_TTL [FAILURE_RECHECK]]]]]`, as CoreDNS 1.14 reads it.
fn serve_stale(prop: &mut Args<'_>) -> Result<Stale, Error> {
    let mut s = Stale {
        up_to: DEFAULT_STALE,
        verify: false,
        verify_timeout: Duration::ZERO,
        response_ttl: 0,
        failure_recheck: Duration::ZERO,
    };
    if let Some(t) = prop.next_arg() {
        s.up_to = duration(prop, t)?;
    }
    if let Some(t) = prop.next_arg() {
        s.verify = match t.text.to_ascii_lowercase().as_str() {
            "immediate" => false,
            "verify" => true,
            _ => {
                return Err(
                    prop.error(t, format!("serve_stale refresh mode must be immediate or verify, got '{}'", t.text))
                );
            }
        };
    }
    if s.verify
        && let Some(t) = prop.next_arg()
    {
        s.verify_timeout = duration(prop, t)?;
    }
    if let Some(t) = prop.next_arg() {
        let ttl = duration(prop, t)?;
        if ttl.subsec_nanos() != 0 {
            return Err(
                prop.error(t, format!("serve_stale response TTL must be a whole number of seconds, got '{}'", t.text))
            );
        }
        s.response_ttl = u32::try_from(ttl.as_secs())
            .map_err(|_| prop.error(t, "serve_stale response TTL exceeds the DNS TTL range"))?;
    }
    if let Some(t) = prop.next_arg() {
        s.failure_recheck = duration(prop, t)?;
        if s.failure_recheck > MAX_RECHECK {
            return Err(prop.error(t, "serve_stale failure recheck cannot exceed 5 minutes"));
        }
    }
    Ok(s)
}

/// A Go duration, or `0`; negative durations are errors.
fn duration(args: &Args<'_>, t: &Token) -> Result<Duration, Error> {
    if t.text.starts_with('-') {
        return Err(args.error(t, format!("duration can not be negative, got '{}'", t.text)));
    }
    crate::corefile::parse_duration(&t.text)
        .ok_or_else(|| args.error(t, format!("expected a duration such as 30s, got '{}'", t.text)))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        // A reload starts with an empty cache, as in CoreDNS: entries are the answers of the
        // plugins after the cache, whose configuration the reload may have changed (see README).
        let block = ctx.block();
        let metrics = super::metrics::Metrics::new(ctx.metrics(), &block.servers, &self.zones);
        Ok(Some(Arc::new(Cache::new(self.clone(), metrics))))
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
    fn defaults_are_corednss() {
        let c = config("example.org example.net {\n    cache\n}\n").unwrap();
        assert_eq!(names(&c.zones), ["example.org.", "example.net."]);
        assert_eq!(c.success, Tier { capacity: 9984, max_ttl: 3600, min_ttl: 5 });
        assert_eq!(c.denial, Tier { capacity: 9984, max_ttl: 1800, min_ttl: 5 });
        assert_eq!(c.servfail, Duration::from_secs(5));
        assert_eq!((c.prefetch, c.stale, c.keepttl), (None, None, false));
        assert!(c.disable_success.is_empty() && c.disable_denial.is_empty());
    }

    #[test]
    fn the_kubeadm_line_caps_both_kinds() {
        let c = config(".:53 {\n    cache 30\n}\n").unwrap();
        assert_eq!((c.success.max_ttl, c.denial.max_ttl), (30, 30));
        assert_eq!(names(&c.zones), ["."]);
        // A first argument that is not an integer is a zone, as CoreDNS reads it.
        let c = config(". {\n    cache example.org 10.0.0.0/8\n}\n").unwrap();
        assert_eq!(names(&c.zones), ["example.org.", "10.in-addr.arpa."]);
        assert_eq!(c.success.max_ttl, 3600);
    }

    #[test]
    fn every_option() {
        let c = config(
            ". {\n    cache 600 Example.ORG {\n        success 5000 300 10\n        denial 2500 60 0\n        \
             prefetch 10 1h 25%\n        serve_stale 2h verify 100ms 30s 30s\n        servfail 0\n        \
             disable success a.example.org\n        disable denial\n        disable success b.example.org\n        \
             keepttl\n    }\n}\n",
        )
        .unwrap();
        assert_eq!(names(&c.zones), ["example.org."]);
        // 5000 rounds down to 19 shards of 256; 2500 to 9.
        assert_eq!(c.success, Tier { capacity: 4864, max_ttl: 300, min_ttl: 10 });
        assert_eq!(c.denial, Tier { capacity: 2304, max_ttl: 60, min_ttl: 0 });
        assert_eq!(c.prefetch, Some(Prefetch { amount: 10, window: Duration::from_secs(3600), percentage: 25 }));
        assert_eq!(
            c.stale,
            Some(Stale {
                up_to: Duration::from_secs(7200),
                verify: true,
                verify_timeout: Duration::from_millis(100),
                response_ttl: 30,
                failure_recheck: Duration::from_secs(30),
            })
        );
        assert_eq!(c.servfail, Duration::ZERO);
        assert_eq!(names(&c.disable_success), ["a.example.org.", "b.example.org."]);
        assert_eq!(names(&c.disable_denial), ["."]);
        assert!(c.keepttl);
    }

    #[test]
    fn serve_stale_forms() {
        let stale =
            |line: &str| config(&format!(". {{\n    cache {{\n        {line}\n    }}\n}}\n")).unwrap().stale.unwrap();
        let s = stale("serve_stale");
        assert_eq!((s.up_to, s.verify, s.response_ttl), (Duration::from_secs(3600), false, 0));
        let s = stale("serve_stale 1h immediate 30s 10s");
        assert_eq!((s.verify, s.response_ttl, s.failure_recheck), (false, 30, Duration::from_secs(10)));
        let s = stale("serve_stale 10m VERIFY");
        assert_eq!((s.up_to, s.verify, s.verify_timeout), (Duration::from_secs(600), true, Duration::ZERO));
        let s = stale("serve_stale 1h verify 0 30s");
        assert_eq!((s.verify_timeout, s.response_ttl), (Duration::ZERO, 30));
        // prefetch 0 is off.
        let c = config(". {\n    cache {\n        prefetch 0\n    }\n}\n").unwrap();
        assert_eq!(c.prefetch, None);
        // Tiny capacities become CoreDNS's minimum.
        let c = config(". {\n    cache {\n        success 10\n    }\n}\n").unwrap();
        assert_eq!(c.success.capacity, 1024);
    }

    #[test]
    fn positioned_errors() {
        // Each property line is line 3 of its Corefile, indented by 8.
        let cases: &[(&str, &str)] = &[
            ("success", "3:16: cache: success: expected a capacity"),
            ("success many", "3:17: cache: capacity must be an integer, got 'many'"),
            ("success -1", "3:17: cache: capacity can not be negative: -1"),
            ("success 100 0", "3:21: cache: cache TTL can not be zero or negative: 0"),
            ("success 100 10 -1", "3:24: cache: cache min TTL can not be negative: -1"),
            ("success 100 10 5 1", "3:26: cache: unexpected argument '1'"),
            ("denial 100 1h", "3:20: cache: TTL must be an integer, got '1h'"),
            ("prefetch", "3:17: cache: prefetch: expected an amount"),
            ("prefetch -1", "3:18: cache: prefetch amount should be positive: -1"),
            ("prefetch 1 soon", "3:20: cache: expected a duration such as 30s, got 'soon'"),
            ("prefetch 1 10%", "3:20: cache: expected a duration such as 30s, got '10%'"),
            ("prefetch 1 1m 10", "3:23: cache: a percentage ends with '%', got '10'"),
            ("prefetch 1 1m 95%", "3:23: cache: percentage should fall in range [10, 90]: '95%'"),
            ("prefetch 1 1m 5%", "3:23: cache: percentage should fall in range [10, 90]: '5%'"),
            ("prefetch 1 1m 10% x", "3:27: cache: unexpected argument 'x'"),
            ("serve_stale -1h", "3:21: cache: duration can not be negative, got '-1h'"),
            ("serve_stale 1h later", "3:24: cache: serve_stale refresh mode must be immediate or verify, got 'later'"),
            (
                "serve_stale 1h immediate 1.5s",
                "3:34: cache: serve_stale response TTL must be a whole number of seconds, got '1.5s'",
            ),
            ("serve_stale 1h immediate 30s 6m", "3:38: cache: serve_stale failure recheck cannot exceed 5 minutes"),
            ("serve_stale 1h immediate 30s 1s x", "3:41: cache: unexpected argument 'x'"),
            ("serve_stale 1h verify 1s 30s 1s x", "3:41: cache: unexpected argument 'x'"),
            ("servfail", "3:17: cache: servfail: expected a duration"),
            ("servfail 6m", "3:18: cache: caching SERVFAIL responses over 5 minutes is not permitted (RFC 2308)"),
            ("servfail 1s 2s", "3:21: cache: unexpected argument '2s'"),
            ("disable", "3:16: cache: disable: expected success or denial"),
            ("disable both", "3:17: cache: cache type for disable must be success or denial, got 'both'"),
            ("disable denial a..b", "3:24: cache: invalid zone 'a..b': empty label in 'a..b'"),
            ("keepttl please", "3:17: cache: unexpected argument 'please'"),
            ("serve_stale_policy prefer_positive", "3:9: cache: 'serve_stale_policy' is not supported by clusterdns"),
            ("podz 1", "3:9: cache: unknown property 'podz'"),
            ("keepttl {\n        }", "3:17: cache: keepttl: takes no block"),
        ];
        for (line, want) in cases {
            let err = config(&format!(". {{\n    cache {{\n        {line}\n    }}\n}}\n")).unwrap_err();
            assert_eq!(err, format!("/etc/coredns/Corefile:{want}"), "{line}");
        }
    }

    #[test]
    fn directive_errors() {
        let err = |text: &str| config(text).unwrap_err();
        assert_eq!(
            err(". {\n    cache 0\n}\n"),
            "/etc/coredns/Corefile:2:11: cache: cache TTL can not be zero or negative: 0"
        );
        assert_eq!(
            err(". {\n    cache -5\n}\n"),
            "/etc/coredns/Corefile:2:11: cache: cache TTL can not be zero or negative: -5"
        );
        assert_eq!(
            err(". {\n    cache 30 a..b\n}\n"),
            "/etc/coredns/Corefile:2:14: cache: invalid zone 'a..b': empty label in 'a..b'"
        );
        assert_eq!(
            err(". {\n    cache\n    cache\n}\n"),
            "/etc/coredns/Corefile:3:5: cache: this plugin can only be used once per Server Block"
        );
        assert_eq!(
            err(". {\n    cache {\n        keepttl\n        keepttl\n    }\n}\n"),
            "/etc/coredns/Corefile:4:9: cache: 'keepttl' is given twice"
        );
    }
}
