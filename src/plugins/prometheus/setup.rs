//! ```text
//! prometheus [ADDRESS] {
//!     tls CONFIG_FILE
//! }
//! ```
//! ADDRESS defaults to `localhost:9153`. CONFIG_FILE is a Prometheus web configuration file
//! ([`webconfig`](super::webconfig)); a relative path is taken from the directory of the
//! Corefile naming it, as for hosts files. The file and the certificates it names are read when
//! the configuration is built (at start and at every reload), so a broken one fails that start
//! or reload, naming the `tls` line and the file.
//!
//! `runtime_metrics` is rejected: in CoreDNS it turns on Go's runtime/metrics set, and
//! clusterdns has no Go runtime, so accepting it would promise series that never come.

use std::path::PathBuf;
use std::sync::Arc;

use super::{MetricsEndpoint, NAME, PATH, Prometheus, webconfig};
use crate::corefile::{Args, Directive, Error, Pos, once};
use crate::http::HttpAddr;
use crate::http::tls::HttpTls;
use crate::metrics::dns::DnsMetrics;
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

pub const DEFAULT_ADDR: &str = "localhost:9153";

#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: HttpAddr,
    /// `tls CONFIG_FILE`: the file, resolved, and the position of the argument.
    pub tls: Option<(PathBuf, Pos)>,
    pos: Pos,
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let addr = HttpAddr::optional_arg(&mut args, DEFAULT_ADDR)?;
    args.finish()?;
    let mut tls = None;
    for line in args.block() {
        let mut p = args.property(line);
        match line.name.text.as_str() {
            "tls" => {
                if tls.is_some() {
                    return Err(p.error(&line.name, "tls is given twice"));
                }
                let file = p.required("a web configuration file")?;
                if let Some(extra) = p.peek() {
                    // CoreDNS's setup.go once read `tls CERT KEY { ... }`; its README now names
                    // one web configuration file.
                    return Err(p.error(
                        extra,
                        format!(
                            "unexpected argument '{}': tls takes one file, a Prometheus web configuration \
                             file whose tls_server_config names the certificate and key",
                            extra.text
                        ),
                    ));
                }
                p.no_block()?;
                tls = Some((file.pos.resolve_path(&file.text), file.pos.clone()));
            }
            "runtime_metrics" => {
                return Err(p.error(
                    &line.name,
                    "runtime_metrics exports the Go runtime's metrics, and clusterdns has no Go runtime \
                     (the process_* metrics are always served)",
                ));
            }
            _ => return Err(p.unknown_property()),
        }
    }
    Ok(Box::new(Config { addr, tls, pos: dir.name.pos.clone() }))
}

/// Reads the web configuration file `path` and the certificates it names; errors are at `pos`.
fn load_tls(path: &PathBuf, pos: &Pos) -> Result<HttpTls, Error> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| Error::setup(NAME, pos, format!("cannot read web configuration file {shown}: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::setup(NAME, pos, format!("web configuration file {shown} is not UTF-8")))?;
    let settings = webconfig::parse(path, &text).map_err(|e| Error::setup(NAME, pos, e.to_string()))?;
    HttpTls::load(&settings).map_err(|e| Error::setup(NAME, pos, format!("{shown}: {e}")))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let tls = match &self.tls {
            Some((path, pos)) => Some(Arc::new(load_tls(path, pos)?)),
            None => None,
        };
        let registry = ctx.metrics().clone();
        ctx.http_endpoint_tls(NAME, &self.addr, PATH, &self.pos, tls, || MetricsEndpoint { registry })?;
        let metrics = Arc::new(DnsMetrics::new(ctx.metrics()));
        let block = ctx.block();
        let zones: Vec<String> = block.zones.iter().map(|z| z.to_string()).collect();
        let plugin = Arc::new(Prometheus::new(&metrics, &block.servers, &zones, ctx.plugins_after()));
        ctx.observe_replies(plugin.clone());
        Ok(Some(plugin))
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
    fn tls_names_a_web_configuration_file_beside_the_corefile() {
        let c = parse_str("/etc/coredns/Corefile", ". {\n prometheus {\n  tls web.yml\n }\n}", &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] }).unwrap();
        let cfg = cfg.as_any().downcast_ref::<Config>().unwrap();
        let (path, pos) = cfg.tls.clone().unwrap();
        assert_eq!(
            (path, pos.to_string()),
            (PathBuf::from("/etc/coredns/web.yml"), "/etc/coredns/Corefile:3:7".into())
        );
        assert_eq!(cfg.addr.to_string(), "localhost:9153");
        let c = parse_str("Corefile", ". {\n prometheus :9153 {\n  tls /tls/web.yml\n }\n}", &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] }).unwrap();
        let cfg = cfg.as_any().downcast_ref::<Config>().unwrap();
        assert_eq!(cfg.tls.as_ref().unwrap().0, PathBuf::from("/tls/web.yml"));
    }

    #[test]
    fn errors_name_their_position() {
        for (text, want) in [
            (
                ". {\n prometheus :9153 {\n  tls cert.pem key.pem\n }\n}",
                "Corefile:3:16: prometheus: unexpected argument 'key.pem': tls takes one file, a Prometheus web \
                 configuration file whose tls_server_config names the certificate and key",
            ),
            (". {\n prometheus {\n  tls\n }\n}", "Corefile:3:6: prometheus: tls: expected a web configuration file"),
            (". {\n prometheus {\n  tls a.yml\n  tls b.yml\n }\n}", "Corefile:4:3: prometheus: tls is given twice"),
            (
                ". {\n prometheus {\n  tls web.yml {\n   client_ca ca.pem\n  }\n }\n}",
                "Corefile:3:15: prometheus: tls: takes no block",
            ),
            (
                ". {\n prometheus {\n  runtime_metrics\n }\n}",
                "Corefile:3:3: prometheus: runtime_metrics exports the Go runtime's metrics, and clusterdns has \
                 no Go runtime (the process_* metrics are always served)",
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
