//! ```text
//! kubernetes [ZONES...] {
//!     endpoint URL
//!     tls CERT KEY CACERT
//!     kubeconfig KUBECONFIG [CONTEXT]
//!     apiserver_qps QPS
//!     apiserver_burst BURST
//!     apiserver_max_inflight MAX
//!     namespaces NAMESPACE...
//!     namespace_labels EXPRESSION
//!     labels EXPRESSION
//!     pods disabled|insecure|verified
//!     endpoint_pod_names
//!     ttl TTL                         0-3600, default 5
//!     noendpoints
//!     fallthrough [ZONES...]
//!     ignore empty_service
//!     startup_timeout DURATION        default 5s
//! }
//! ```
//!
//! ZONES default to the server block's; at least one must be a forward zone. Once per server
//! block, each property at most once. `multicluster` and `zonal` are not supported yet; the
//! removed `upstream` and `resyncperiod` are errors saying so. Where CoreDNS silently ignores a
//! combination (`tls` without `endpoint`, `endpoint` beside `kubeconfig`, more than one
//! endpoint) this is an error.
//!
//! Building keeps the watches and the index across reloads while the connection and the
//! filters are the same ([`WatchKey`]); a new or changed one holds the swap until it has synced
//! (at most `startup_timeout`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::answer::{PodMode, Settings};
use super::client::{self, ApiState, Connection, Limits, TlsFiles};
use super::handle::Handle;
use super::index::IndexOptions;
use super::metrics::Metrics;
use super::object::is_label;
use super::selector::Selector;
use super::watch::{Cluster, WatchOptions};
use super::{Kubernetes, NAME, local_addresses, reverse};
use crate::corefile::{Args, Directive, Error, Pos, once};
use crate::dns::Name;
use crate::plugin::DynPlugin;
use crate::plugin::fall::Fallthrough;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

const DEFAULT_TTL: u32 = 5;
const MAX_TTL: u32 = 3600;
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The directive, which errors of the connection point at when no property names it.
    pos: Pos,
    zones: Vec<Name>,
    connection: Connection,
    /// Where the connection was set (`endpoint`, `kubeconfig`, or the directive).
    connection_pos: Pos,
    limits: Limits,
    namespaces: Vec<String>,
    namespace_labels: Option<Selector>,
    labels: Option<Selector>,
    pods: PodMode,
    endpoint_pod_names: bool,
    ttl: u32,
    noendpoints: bool,
    fall: Fallthrough,
    ignore_empty_service: bool,
    startup_timeout: Duration,
}

/// What the kept state (watches and index) depends on: a reload that changes none of it keeps
/// them; the TTL, fallthrough, zones or pod answers can change without a relist.
#[derive(Clone, Debug, PartialEq)]
struct WatchKey {
    connection: Connection,
    limits: Limits,
    watch: WatchOptions,
}

pub fn parse(dirs: &[Directive], ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let zones = args.zones()?;
    let zones = if zones.is_empty() { ctx.zones.to_vec() } else { zones };
    if zones.iter().all(reverse::is_reverse) {
        return Err(args.error(&dir.name, "non-reverse zone name must be used"));
    }
    let mut cfg = Config {
        pos: dir.name.pos.clone(),
        zones,
        connection: Connection::InCluster,
        connection_pos: dir.name.pos.clone(),
        limits: Limits::default(),
        namespaces: Vec::new(),
        namespace_labels: None,
        labels: None,
        pods: PodMode::Disabled,
        endpoint_pod_names: false,
        ttl: DEFAULT_TTL,
        noendpoints: false,
        fall: Fallthrough::never(),
        ignore_empty_service: false,
        startup_timeout: DEFAULT_STARTUP_TIMEOUT,
    };
    let mut endpoint: Option<(String, Pos)> = None;
    let mut tls: Option<(TlsFiles, Pos)> = None;
    let mut kubeconfig: Option<(Connection, Pos)> = None;
    let mut namespaces_pos: Option<Pos> = None;
    let mut namespace_labels_pos: Option<Pos> = None;

    args.each_once(|_| false)?;
    for line in args.block() {
        let mut prop = args.property(line);
        prop.no_block()?;
        let name = line.name.text.as_str();
        match name {
            "endpoint" => {
                let url = prop.required("the API server's URL")?;
                if let Some(extra) = prop.peek() {
                    return Err(prop.error(
                        extra,
                        "only one endpoint is supported (CoreDNS uses the first of several and ignores the rest)",
                    ));
                }
                let uri: http::Uri =
                    url.text.parse().map_err(|e| prop.error(url, format!("invalid endpoint '{}': {e}", url.text)))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
                    return Err(
                        prop.error(url, format!("invalid endpoint '{}': expected http(s)://host[:port]", url.text))
                    );
                }
                endpoint = Some((url.text.clone(), url.pos.clone()));
            }
            "tls" => {
                let cert = prop.required("a client certificate file")?;
                let key = prop.required("its key file")?;
                let ca = prop.required("a CA certificate file")?;
                let files = TlsFiles {
                    cert: cert.pos.resolve_path(&cert.text),
                    key: key.pos.resolve_path(&key.text),
                    ca: ca.pos.resolve_path(&ca.text),
                };
                tls = Some((files, line.name.pos.clone()));
            }
            "kubeconfig" => {
                let path = prop.required("a kubeconfig file")?;
                let context = prop.next_arg().map(|c| c.text.clone());
                let c = Connection::Kubeconfig { path: path.pos.resolve_path(&path.text), context };
                kubeconfig = Some((c, path.pos.clone()));
            }
            "apiserver_qps" => {
                let t = prop.required("a rate in queries per second")?;
                let qps: f64 = t
                    .text
                    .parse()
                    .ok()
                    .filter(|q: &f64| q.is_finite())
                    .ok_or_else(|| prop.error(t, format!("invalid apiserver_qps '{}'", t.text)))?;
                if qps < 0.0 {
                    return Err(prop.error(t, "apiserver_qps must be >= 0"));
                }
                cfg.limits.qps = (qps > 0.0).then_some(qps);
            }
            "apiserver_burst" => {
                let n = count(&mut prop, "apiserver_burst")?;
                cfg.limits.burst = (n > 0).then_some(n);
            }
            "apiserver_max_inflight" => {
                let n = count(&mut prop, "apiserver_max_inflight")?;
                cfg.limits.max_inflight = (n > 0).then_some(n);
            }
            "namespaces" => {
                prop.required("a namespace")?;
                for t in line.args.iter() {
                    if !is_label(&t.text) || t.text.bytes().any(|b| b.is_ascii_uppercase()) {
                        return Err(prop.error(t, format!("'{}' is not a namespace name", t.text)));
                    }
                    if !cfg.namespaces.contains(&t.text) {
                        cfg.namespaces.push(t.text.clone());
                    }
                }
                prop.rest();
                namespaces_pos = Some(line.name.pos.clone());
            }
            "namespace_labels" | "labels" => {
                let first = prop.required("a label selector")?;
                let text =
                    std::iter::once(first).chain(prop.rest()).map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ");
                let selector = Selector::parse(&text)
                    .map_err(|e| prop.error(first, format!("unable to parse {name} selector value: '{text}': {e}")))?;
                if name == "labels" {
                    cfg.labels = Some(selector);
                } else {
                    cfg.namespace_labels = Some(selector);
                    namespace_labels_pos = Some(line.name.pos.clone());
                }
            }
            "pods" => {
                let t = prop.required("a pod mode (disabled, insecure or verified)")?;
                cfg.pods = match t.text.as_str() {
                    "disabled" => PodMode::Disabled,
                    "insecure" => PodMode::Insecure,
                    "verified" => PodMode::Verified,
                    other => {
                        return Err(prop.error(
                            t,
                            format!("wrong value for pods: {other}, must be one of: disabled, verified, insecure"),
                        ));
                    }
                };
            }
            "endpoint_pod_names" => cfg.endpoint_pod_names = true,
            "ttl" => {
                let t = prop.required("a TTL in seconds")?;
                cfg.ttl = match t.text.parse::<u32>() {
                    Ok(ttl) if ttl <= MAX_TTL => ttl,
                    _ => return Err(prop.error(t, format!("ttl must be in range [0, 3600]: {}", t.text))),
                };
            }
            "noendpoints" => cfg.noendpoints = true,
            "fallthrough" => cfg.fall = Fallthrough::parse(&mut prop)?,
            "ignore" => {
                let t = prop.required("what to ignore (empty_service)")?;
                if t.text != "empty_service" {
                    return Err(prop.error(t, format!("unable to parse ignore value: '{}'", t.text)));
                }
                cfg.ignore_empty_service = true;
            }
            "startup_timeout" => {
                if let Some(t) = prop.peek().filter(|t| t.text.starts_with('-')) {
                    return Err(prop.error(t, format!("startup_timeout cannot be negative, got '{}'", t.text)));
                }
                cfg.startup_timeout = prop.duration("a startup timeout")?;
            }
            "multicluster" | "zonal" => {
                return Err(prop.error(&line.name, format!("'{name}' is not supported by clusterdns yet")));
            }
            "upstream" | "resyncperiod" => {
                return Err(prop.error(&line.name, format!("'{name}' was removed in CoreDNS 1.7.0; remove it")));
            }
            _ => return Err(prop.unknown_property()),
        }
        prop.finish()?;
    }

    if let (Some(_), Some(pos)) = (&namespace_labels_pos, &namespaces_pos) {
        return Err(Error::setup(NAME, pos, "namespaces and namespace_labels cannot both be set"));
    }
    match (endpoint, tls, kubeconfig) {
        (Some((_, pos)), _, Some(_)) => {
            return Err(Error::setup(
                NAME,
                &pos,
                "endpoint and kubeconfig cannot both be set (CoreDNS ignores endpoint then)",
            ));
        }
        (None, Some((_, pos)), _) => {
            return Err(Error::setup(NAME, &pos, "tls needs an endpoint (CoreDNS ignores tls without one)"));
        }
        (Some((url, pos)), tls, None) => {
            cfg.connection = Connection::Endpoint { url, tls: tls.map(|(t, _)| t) };
            cfg.connection_pos = pos;
        }
        (None, None, Some((c, pos))) => {
            cfg.connection = c;
            cfg.connection_pos = pos;
        }
        (None, None, None) => {}
    }
    Ok(Box::new(cfg))
}

/// A non-negative integer argument.
fn count(prop: &mut Args<'_>, what: &str) -> Result<u32, Error> {
    let t = prop.required("a number")?;
    match t.text.parse::<i64>() {
        Ok(n) if n < 0 => Err(prop.error(t, format!("{what} must be >= 0"))),
        Ok(n) => u32::try_from(n).map_err(|_| prop.error(t, format!("{what} is too large: {n}"))),
        Err(_) => Err(prop.error(t, format!("invalid {what} '{}'", t.text))),
    }
}

impl Config {
    fn key(&self) -> WatchKey {
        WatchKey {
            connection: self.connection.clone(),
            limits: self.limits,
            watch: WatchOptions {
                labels: self.labels.as_ref().map(|s| s.to_string()),
                namespace_labels: self.namespace_labels.as_ref().map(|s| s.to_string()),
                namespaces: self.namespaces.clone(),
                pods: self.pods == PodMode::Verified,
                endpoints: !self.noendpoints,
                index: IndexOptions { endpoint_pod_names: self.endpoint_pod_names },
            },
        }
    }
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let key = self.key();
        let watch = key.watch.clone();
        let cluster: Arc<Cluster> = ctx.keep(key, |ctx| {
            let config = client::config(&self.connection).map_err(|e| Error::setup(NAME, &self.connection_pos, e))?;
            let metrics = Arc::new(Metrics::new(ctx.metrics()));
            let api = Arc::new(ApiState::new(metrics, &config.cluster_url));
            let client = client::client(config, self.limits, api.clone())
                .map_err(|e| Error::setup(NAME, &self.connection_pos, e))?;
            Ok(Cluster::start(client, api, watch))
        })?;
        ctx.warm_up(NAME, self.startup_timeout, cluster.synced());
        ctx.report_readiness(NAME, cluster.clone());
        let zones: Box<[Name]> = self.zones.clone().into();
        ctx.provide(NAME, Arc::new(Handle::new(cluster.clone(), zones.clone())));

        let local_ips: Arc<ArcSwap<Vec<IpAddr>>> = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let ips = local_ips.clone();
        ctx.on_serving(move |serving| async move { ips.store(Arc::new(local_addresses(&serving.dns))) });

        let reverse: Box<[bool]> = zones.iter().map(reverse::is_reverse).collect();
        let primary = zones.iter().find(|z| !reverse::is_reverse(z)).expect("checked at parse").clone();
        let settings = Settings {
            zones,
            reverse,
            primary,
            ttl: self.ttl,
            pods: self.pods,
            ignore_empty_service: self.ignore_empty_service,
        };
        let resolver = ctx.resolver();
        Ok(Some(Arc::new(Kubernetes { settings, fall: self.fall.clone(), cluster, resolver, local_ips })))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    use crate::plugin::testing::names;

    fn config(text: &str) -> Result<Config, String> {
        crate::plugin::testing::parse_config(text, NAME, parse)
    }

    #[test]
    fn defaults_as_coredns() {
        let c = config("cluster.local:53 {\n    kubernetes\n}\n").unwrap();
        assert_eq!(names(&c.zones), ["cluster.local."]);
        assert_eq!(c.connection, Connection::InCluster);
        assert_eq!((c.ttl, c.pods, c.startup_timeout), (5, PodMode::Disabled, Duration::from_secs(5)));
        assert!(!c.fall.is_set() && !c.noendpoints && !c.endpoint_pod_names && !c.ignore_empty_service);
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn the_kubeadm_default() {
        let c = config(
            ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       \
             fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n}\n",
        )
        .unwrap();
        assert_eq!(names(&c.zones), ["cluster.local.", "in-addr.arpa.", "ip6.arpa."]);
        assert_eq!((c.ttl, c.pods), (30, PodMode::Insecure));
        assert!(c.fall.through(&Name::parse("1.0.0.10.in-addr.arpa").unwrap()));
        assert!(!c.fall.through(&Name::parse("web.apps.svc.cluster.local").unwrap()));
    }

    #[test]
    fn every_option() {
        let c = config(
            ". {\n    kubernetes Cluster.Local 10.0.0.0/24 {\n        endpoint https://10.0.0.1:6443\n        \
             tls cert.pem key.pem ca.pem\n        apiserver_qps 2.5\n        apiserver_burst 20\n        \
             apiserver_max_inflight 4\n        namespaces apps kube-system apps\n        \
             labels environment in (staging, qa),application=nginx\n        pods verified\n        \
             endpoint_pod_names\n        ttl 0\n        noendpoints\n        fallthrough in-addr.arpa\n        \
             ignore empty_service\n        startup_timeout 1m30s\n    }\n}\n",
        )
        .unwrap();
        assert_eq!(names(&c.zones), ["cluster.local.", "0.0.10.in-addr.arpa."]);
        let tls = TlsFiles {
            cert: PathBuf::from("/etc/coredns/cert.pem"),
            key: PathBuf::from("/etc/coredns/key.pem"),
            ca: PathBuf::from("/etc/coredns/ca.pem"),
        };
        assert_eq!(c.connection, Connection::Endpoint { url: "https://10.0.0.1:6443".into(), tls: Some(tls) });
        assert_eq!(c.limits, Limits { qps: Some(2.5), burst: Some(20), max_inflight: Some(4) });
        assert_eq!(c.namespaces, ["apps", "kube-system"]);
        assert_eq!(c.labels.unwrap().to_string(), "environment in (staging,qa),application=nginx");
        assert_eq!((c.pods, c.ttl, c.endpoint_pod_names, c.noendpoints), (PodMode::Verified, 0, true, true));
        assert!(c.ignore_empty_service);
        assert_eq!(c.startup_timeout, Duration::from_secs(90));
        let c = config(
            ". {\n    kubernetes cluster.local {\n        kubeconfig /k/config prod\n        \
                        namespace_labels istio-injection=enabled\n    }\n}\n",
        )
        .unwrap();
        assert_eq!(c.connection, Connection::Kubeconfig { path: "/k/config".into(), context: Some("prod".into()) });
        assert_eq!(c.namespace_labels.unwrap().to_string(), "istio-injection=enabled");
    }

    #[test]
    fn what_a_reload_may_change_without_a_relist() {
        let a = config(". {\n    kubernetes cluster.local {\n        ttl 5\n    }\n}\n").unwrap();
        let b = config(". {\n    kubernetes cluster.local in-addr.arpa {\n        ttl 30\n        fallthrough\n        pods insecure\n    }\n}\n").unwrap();
        assert_eq!(a.key(), b.key());
        let c = config(". {\n    kubernetes cluster.local {\n        pods verified\n    }\n}\n").unwrap();
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn positioned_errors() {
        // Each property line is line 3 of its Corefile, indented by 8.
        let cases: &[(&str, &str)] = &[
            ("podz 1", "3:9: kubernetes: unknown property 'podz'"),
            ("pods", "3:13: kubernetes: pods: expected a pod mode (disabled, insecure or verified)"),
            ("pods on", "3:14: kubernetes: wrong value for pods: on, must be one of: disabled, verified, insecure"),
            ("pods verified insecure", "3:23: kubernetes: unexpected argument 'insecure'"),
            ("ttl 3601", "3:13: kubernetes: ttl must be in range [0, 3600]: 3601"),
            ("ttl -1", "3:13: kubernetes: ttl must be in range [0, 3600]: -1"),
            ("ttl x", "3:13: kubernetes: ttl must be in range [0, 3600]: x"),
            ("ttl 5 6", "3:15: kubernetes: unexpected argument '6'"),
            ("endpoint", "3:17: kubernetes: endpoint: expected the API server's URL"),
            ("endpoint ftp://x", "3:18: kubernetes: invalid endpoint 'ftp://x': expected http(s)://host[:port]"),
            (
                "endpoint https://a https://b",
                "3:28: kubernetes: only one endpoint is supported (CoreDNS uses the first of several and ignores the rest)",
            ),
            ("tls a b", "3:16: kubernetes: tls: expected a CA certificate file"),
            ("tls a b c", "3:9: kubernetes: tls needs an endpoint (CoreDNS ignores tls without one)"),
            ("kubeconfig", "3:19: kubernetes: kubeconfig: expected a kubeconfig file"),
            ("kubeconfig a b c", "3:24: kubernetes: unexpected argument 'c'"),
            ("apiserver_qps -1", "3:23: kubernetes: apiserver_qps must be >= 0"),
            ("apiserver_qps x", "3:23: kubernetes: invalid apiserver_qps 'x'"),
            ("apiserver_burst -2", "3:25: kubernetes: apiserver_burst must be >= 0"),
            ("apiserver_max_inflight 1.5", "3:32: kubernetes: invalid apiserver_max_inflight '1.5'"),
            ("namespaces", "3:19: kubernetes: namespaces: expected a namespace"),
            ("namespaces apps Bad_Ns", "3:25: kubernetes: 'Bad_Ns' is not a namespace name"),
            ("labels", "3:15: kubernetes: labels: expected a label selector"),
            (
                "labels a b",
                "3:16: kubernetes: unable to parse labels selector value: 'a b': 'b' is not a valid label selector operator",
            ),
            (
                "namespace_labels x > 1",
                "3:26: kubernetes: unable to parse namespace_labels selector value: 'x > 1': '>' is not a valid label selector operator",
            ),
            ("endpoint_pod_names yes", "3:28: kubernetes: unexpected argument 'yes'"),
            ("noendpoints please", "3:21: kubernetes: unexpected argument 'please'"),
            ("ignore", "3:15: kubernetes: ignore: expected what to ignore (empty_service)"),
            ("ignore everything", "3:16: kubernetes: unable to parse ignore value: 'everything'"),
            (
                "startup_timeout soon",
                "3:25: kubernetes: expected a startup timeout (a duration such as 30s), got 'soon'",
            ),
            ("startup_timeout -5s", "3:25: kubernetes: startup_timeout cannot be negative, got '-5s'"),
            ("fallthrough a..b", "3:21: kubernetes: invalid zone 'a..b': empty label in 'a..b'"),
            ("multicluster clusterset.local", "3:9: kubernetes: 'multicluster' is not supported by clusterdns yet"),
            ("zonal", "3:9: kubernetes: 'zonal' is not supported by clusterdns yet"),
            ("upstream", "3:9: kubernetes: 'upstream' was removed in CoreDNS 1.7.0; remove it"),
            ("resyncperiod 30s", "3:9: kubernetes: 'resyncperiod' was removed in CoreDNS 1.7.0; remove it"),
            ("ttl 5 {\n        }", "3:15: kubernetes: ttl: takes no block"),
        ];
        for (line, want) in cases {
            let err =
                config(&format!(". {{\n    kubernetes cluster.local {{\n        {line}\n    }}\n}}\n")).unwrap_err();
            assert_eq!(err, format!("/etc/coredns/Corefile:{want}"), "{line}");
        }
    }

    #[test]
    fn combinations_coredns_refuses_or_ignores() {
        let err = config(
            ". {\n    kubernetes cluster.local {\n        namespaces a\n        namespace_labels x=y\n    }\n}\n",
        )
        .unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:3:9: kubernetes: namespaces and namespace_labels cannot both be set");
        let err =
            config(". {\n    kubernetes cluster.local {\n        endpoint http://a\n        kubeconfig k\n    }\n}\n")
                .unwrap_err();
        assert_eq!(
            err,
            "/etc/coredns/Corefile:3:18: kubernetes: endpoint and kubeconfig cannot both be set (CoreDNS ignores endpoint then)"
        );
        let err = config(". {\n    kubernetes in-addr.arpa\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:2:5: kubernetes: non-reverse zone name must be used");
        let err = config(". {\n    kubernetes\n    kubernetes\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:3:5: kubernetes: this plugin can only be used once per Server Block");
        let err = config(". {\n    kubernetes cluster.local {\n        ttl 5\n        ttl 6\n    }\n}\n").unwrap_err();
        assert_eq!(err, "/etc/coredns/Corefile:4:9: kubernetes: 'ttl' is given twice");
    }
}
