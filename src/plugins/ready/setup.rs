//! ```text
//! ready [ADDRESS] {
//!     monitor until-ready|continuously
//! }
//! ```
//! ADDRESS defaults to `:8181`; `monitor` defaults to `until-ready`.

use std::sync::Arc;

use super::{Monitor, NAME, PATH, Ready};
use crate::corefile::{Args, Directive, Error, Pos, once};
use crate::http::HttpAddr;
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

pub const DEFAULT_ADDR: &str = ":8181";

#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: HttpAddr,
    pub monitor: Monitor,
    pos: Pos,
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let addr = HttpAddr::optional_arg(&mut args, DEFAULT_ADDR)?;
    args.finish()?;
    let mut monitor = Monitor::UntilReady;
    for line in args.block() {
        let mut prop = args.property(line);
        match line.name.text.as_str() {
            "monitor" => {
                let t = prop.required("until-ready or continuously")?;
                monitor = match t.text.as_str() {
                    "until-ready" => Monitor::UntilReady,
                    "continuously" => Monitor::Continuously,
                    other => {
                        return Err(prop
                            .error(t, format!("monitor type '{other}' not supported (until-ready or continuously)")));
                    }
                };
                prop.finish()?;
                prop.no_block()?;
            }
            _ => return Err(prop.unknown_property()),
        }
    }
    Ok(Box::new(Config { addr, monitor, pos: dir.name.pos.clone() }))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let lifecycle = ctx.lifecycle().clone();
        let ready = ctx.http_endpoint(NAME, &self.addr, PATH, &self.pos, || Ready::new(lifecycle))?;
        ready.watch(ctx.block_readiness(), self.monitor);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn ready(text: &str) -> Result<(String, Monitor), Error> {
        let c = parse_str("Corefile", text, &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        let cfg = cfg.as_any().downcast_ref::<Config>().unwrap();
        Ok((cfg.addr.to_string(), cfg.monitor))
    }

    #[test]
    fn defaults_and_options() {
        assert_eq!(ready(". {\n ready\n}").unwrap(), (":8181".into(), Monitor::UntilReady));
        assert_eq!(
            ready(". {\n ready 127.0.0.1:8282 {\n  monitor continuously\n }\n}").unwrap(),
            ("127.0.0.1:8282".into(), Monitor::Continuously)
        );
        assert_eq!(ready(". {\n ready {\n  monitor until-ready\n }\n}").unwrap().1, Monitor::UntilReady);
    }

    #[test]
    fn errors_name_their_position() {
        for (text, want) in [
            (". {\n ready :8181 :8282\n}", "Corefile:2:14: ready: unexpected argument ':8282'"),
            (
                ". {\n ready localhost\n}",
                "Corefile:2:8: ready: invalid address 'localhost': expected HOST:PORT, e.g. :8080",
            ),
            (
                ". {\n ready {\n  monitor sometimes\n }\n}",
                "Corefile:3:11: ready: monitor type 'sometimes' not supported (until-ready or continuously)",
            ),
            (". {\n ready {\n  monitor\n }\n}", "Corefile:3:10: ready: monitor: expected until-ready or continuously"),
            (". {\n ready {\n  lameduck 5s\n }\n}", "Corefile:3:3: ready: unknown property 'lameduck'"),
            (". {\n ready\n ready\n}", "Corefile:3:2: ready: this plugin can only be used once per Server Block"),
        ] {
            assert_eq!(ready(text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
