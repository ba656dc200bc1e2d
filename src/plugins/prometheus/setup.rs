//! ```text
//! prometheus [ADDRESS]
//! ```
//! ADDRESS defaults to `localhost:9153`. CoreDNS's `tls` block is not implemented and is
//! rejected rather than ignored: serving metrics in clear text when TLS was asked for would be
//! worse than not starting.

use std::sync::Arc;

use super::{MetricsEndpoint, NAME, PATH, Prometheus};
use crate::corefile::{Args, Directive, Error, Pos, once};
use crate::metrics::dns::DnsMetrics;
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};
use crate::server::http::HttpAddr;

pub const DEFAULT_ADDR: &str = "localhost:9153";

#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: HttpAddr,
    pos: Pos,
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let addr = match args.next_arg() {
        Some(t) => HttpAddr::from_arg(&args, t)?,
        None => HttpAddr::parse(DEFAULT_ADDR).expect("a valid default"),
    };
    args.finish()?;
    if let Some(line) = args.block().first() {
        let prop = args.property(line);
        return Err(match line.name.text.as_str() {
            "tls" => prop.error(&line.name, "the tls block is not implemented: metrics are served over plain HTTP"),
            _ => prop.unknown_property(),
        });
    }
    Ok(Box::new(Config { addr, pos: dir.name.pos.clone() }))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let registry = ctx.metrics().clone();
        ctx.http_endpoint(NAME, &self.addr, PATH, &self.pos, || MetricsEndpoint { registry })?;
        let metrics = Arc::new(DnsMetrics::new(ctx.metrics()));
        let block = ctx.block();
        let zones: Vec<String> = block.zones.iter().map(|z| z.to_string()).collect();
        let plugin = Prometheus::new(&metrics, &block.servers, &zones, ctx.plugins_after());
        Ok(Some(Arc::new(plugin)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn prometheus(text: &str) -> Result<String, Error> {
        let c = parse_str("Corefile", text, &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        Ok(cfg.as_any().downcast_ref::<Config>().unwrap().addr.to_string())
    }

    #[test]
    fn address_defaults_to_localhost_9153() {
        assert_eq!(prometheus(". {\n prometheus\n}").unwrap(), "localhost:9153");
        assert_eq!(prometheus(". {\n prometheus :9253\n}").unwrap(), ":9253");
        assert_eq!(prometheus(". {\n prometheus [::1]:9153\n}").unwrap(), "[::1]:9153");
    }

    #[test]
    fn errors_name_their_position() {
        for (text, want) in [
            (
                ". {\n prometheus :9153 {\n  tls cert.pem key.pem\n }\n}",
                "Corefile:3:3: prometheus: the tls block is not implemented: metrics are served over plain HTTP",
            ),
            (". {\n prometheus {\n  path /m\n }\n}", "Corefile:3:3: prometheus: unknown property 'path'"),
            (". {\n prometheus :9153 :9154\n}", "Corefile:2:19: prometheus: unexpected argument ':9154'"),
            (
                ". {\n prometheus 9153\n}",
                "Corefile:2:13: prometheus: invalid address '9153': expected HOST:PORT, e.g. :8080",
            ),
            (
                ". {\n prometheus\n prometheus\n}",
                "Corefile:3:2: prometheus: this plugin can only be used once per Server Block",
            ),
        ] {
            assert_eq!(prometheus(text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
