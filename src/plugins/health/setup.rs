//! ```text
//! health [ADDRESS] {
//!     lameduck DURATION
//! }
//! ```
//! ADDRESS defaults to `:8080`; DURATION is a Go duration (a later `lameduck` line wins, as in
//! CoreDNS).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Health, NAME, PATH, SelfCheckMetrics, self_check};
use crate::corefile::{Args, Directive, Error, Pos, once};
use crate::http::HttpAddr;
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

pub const DEFAULT_ADDR: &str = ":8080";

#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: HttpAddr,
    pub lameduck: Duration,
    pos: Pos,
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let addr = HttpAddr::optional_arg(&mut args, DEFAULT_ADDR)?;
    args.finish()?;
    let mut lameduck = Duration::ZERO;
    for line in args.block() {
        let mut prop = args.property(line);
        match line.name.text.as_str() {
            "lameduck" => {
                lameduck = prop.duration("a lameduck duration")?;
                prop.finish()?;
                prop.no_block()?;
            }
            _ => return Err(prop.unknown_property()),
        }
    }
    Ok(Box::new(Config { addr, lameduck, pos: dir.name.pos.clone() }))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let health = ctx.http_endpoint(NAME, &self.addr, PATH, &self.pos, || Health::new(self.addr.clone()))?;
        if !health.checking.swap(true, Ordering::Relaxed) {
            let metrics = SelfCheckMetrics::new(ctx.metrics());
            ctx.spawn(self_check(health.clone(), metrics));
        }
        ctx.set_lameduck(self.lameduck);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn health(text: &str) -> Result<Config, Error> {
        let c = parse_str("Corefile", text, &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        let cfg = cfg.as_any().downcast_ref::<Config>().unwrap();
        Ok(Config { addr: cfg.addr.clone(), lameduck: cfg.lameduck, pos: cfg.pos.clone() })
    }

    #[test]
    fn defaults_and_options() {
        let c = health(". {\n health\n}").unwrap();
        assert_eq!((c.addr.to_string(), c.lameduck), (":8080".into(), Duration::ZERO));
        let c = health(". {\n health localhost:8091 {\n  lameduck 5s\n }\n}").unwrap();
        assert_eq!((c.addr.to_string(), c.lameduck), ("localhost:8091".into(), Duration::from_secs(5)));
        let c = health(". {\n health {\n  lameduck 1s\n  lameduck 1m\n }\n}").unwrap();
        assert_eq!(c.lameduck, Duration::from_secs(60));
    }

    #[test]
    fn errors_name_their_position() {
        for (text, want) in [
            (". {\n health 8080\n}", "Corefile:2:9: health: invalid address '8080': expected HOST:PORT, e.g. :8080"),
            (". {\n health :8080 :8081\n}", "Corefile:2:15: health: unexpected argument ':8081'"),
            (". {\n health {\n  lameduck\n }\n}", "Corefile:3:11: health: lameduck: expected a lameduck duration"),
            (
                ". {\n health {\n  lameduck 5\n }\n}",
                "Corefile:3:12: health: expected a lameduck duration (a duration such as 30s), got '5'",
            ),
            (". {\n health {\n  lameduck 1s 2s\n }\n}", "Corefile:3:15: health: unexpected argument '2s'"),
            (". {\n health {\n  readiness\n }\n}", "Corefile:3:3: health: unknown property 'readiness'"),
            (
                ". {\n health\n health :8081\n}",
                "Corefile:3:2: health: this plugin can only be used once per Server Block",
            ),
        ] {
            assert_eq!(health(text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
