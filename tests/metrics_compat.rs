//! Compatibility of `/metrics` with what CoreDNS operators query, checked against the data in
//! `tests/data/compat/` (see its README): the metrics dashboards and alerts use are there with the
//! labels they need, every `coredns_*` family has exactly CoreDNS 1.14's label names, promtool
//! accepts the scrape, and the CoreDNS mixin's alerts fire on series built from it with the
//! labels they have on CoreDNS.
//!
//! promtool is required (Debian's `prometheus` package): these tests fail, not skip, without it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// NOERROR from whoami, SERVFAIL from a block whose chain answers nothing, REFUSED for names no
/// block serves. (No plugin of this branch answers NXDOMAIN; the rcode label is the same code
/// path whatever its value.)
const COREFILE: &str = "\
example.org {
    prometheus :9153
    whoami
}
servfail.example {
    prometheus :9153
}
";

/// Families that later issues' plugins produce; their rows are checked by those issues' tests.
const LATER_FAMILIES: &[&str] = &[
    "coredns_cache_",      // cache plugin
    "coredns_forward_",    // forward plugin
    "coredns_proxy_",      // forward plugin (plugin/pkg/proxy)
    "coredns_kubernetes_", // kubernetes plugin
];

/// Families clusterdns adds where CoreDNS 1.14 has none, in CoreDNS's naming style, with their
/// labels: the TCP connection limits (see the `timeouts` plugin's README). Each must not clash
/// with a CoreDNS family.
const OWN_FAMILIES: &[(&str, &[&str])] = &[
    ("coredns_dns_tcp_open_connections", &["server"]),
    ("coredns_dns_tcp_refused_connections_total", &["reason", "server"]),
    ("coredns_dns_tcp_evicted_connections_total", &["reason", "server"]),
];

/// The compatibility data: copies of the project's `shared/compat/` (see its README there and
/// in `tests/data/compat/`).
fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/compat")
}

/// The data is all there: the tests below iterate over it, and an empty or cut file would make
/// them pass with nothing checked. (These are copies of the project's compatibility data, made
/// when the tests were written; a clone has only them.)
#[test]
fn compat_data_is_complete() {
    let used = tsv("coredns-metrics-used.tsv");
    let defined = tsv("coredns-1.14-metrics.tsv");
    assert!(used.len() >= 80, "coredns-metrics-used.tsv: {} rows", used.len());
    assert!(defined.len() >= 50, "coredns-1.14-metrics.tsv: {} rows", defined.len());
    assert!(used.iter().all(|r| r.get("metric").is_some_and(|m| !m.is_empty())), "used: a row without its metric");
    assert!(used.iter().filter(|r| r["metric"].starts_with("coredns_")).count() >= 50, "used: coredns_ rows missing");
    assert!(defined.iter().all(|r| r.get("family").is_some_and(|m| m.starts_with("coredns_"))), "defined: a bad row");
    let alerts = std::fs::read_to_string(compat_dir().join("rules/coredns-mixin-alerts.yaml")).unwrap();
    assert!(alerts.matches("alert:").count() >= 9, "the mixin's alerts are not all there");
}

/// A sample of a text exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the samples of a Prometheus text exposition (label values may hold `\"`, `\\`, `\n`).
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("bad sample line {line:?}"),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end = loop {
                let (start, c) = chars.next().expect("closing brace");
                if c == '}' {
                    break start + 1;
                }
                if c == ',' {
                    continue;
                }
                let eq = body[start..].find('=').expect("label =") + start;
                let key = body[start..eq].to_string();
                while chars.next_if(|&(i, _)| i <= eq + 1).is_some() {}
                let mut value = String::new();
                loop {
                    let (_, c) = chars.next().expect("closing quote");
                    match c {
                        '"' => break,
                        '\\' => match chars.next().expect("escape").1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
            };
            rest = &body[end..];
        }
        let value = rest.trim().parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        out.push(Sample { name: name.to_string(), labels, value });
    }
    out
}

/// The family a sample belongs to (histogram suffixes removed).
fn family_of(name: &str) -> &str {
    ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name)
}

/// Reads a TSV file into rows of column name -> value.
fn tsv(name: &str) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(compat_dir().join(name)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let rows: Vec<BTreeMap<String, String>> = lines
        .filter(|l| !l.is_empty())
        .map(|l| header.iter().zip(l.split('\t')).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect();
    assert!(!rows.is_empty(), "{name} has no rows");
    rows
}

fn list(s: &str) -> Vec<&str> {
    s.split(',').filter(|x| !x.is_empty()).collect()
}

/// Runs promtool, or fails saying how to install it.
fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}); install it with \
                 `apt-get install -y --no-install-recommends prometheus` (Debian's package; the service need not run)"
            )
        });
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// Starts the server, sends every kind of traffic over UDP and TCP, and scrapes `/metrics`.
fn scrape() -> (TestServer, String) {
    let s = TestServer::start(COREFILE);
    let dns: SocketAddr = s.addr();
    for tcp in [false, true] {
        let q = |name: &str, qtype| if tcp { query_tcp(dns, name, qtype) } else { query_udp(dns, name, qtype) };
        for (name, qtype, rcode) in [
            ("www.example.org.", RecordType::A, ResponseCode::NoError),
            ("www.example.org.", RecordType::AAAA, ResponseCode::NoError),
            ("mail.example.org.", RecordType::MX, ResponseCode::NoError),
            ("x.example.org.", RecordType::CAA, ResponseCode::NoError),
            ("x.example.org.", RecordType::HTTPS, ResponseCode::NoError),
            ("x.example.org.", RecordType::SVCB, ResponseCode::NoError),
            ("a.servfail.example.", RecordType::A, ResponseCode::ServFail),
            ("example.net.", RecordType::A, ResponseCode::Refused),
        ] {
            assert_eq!(q(name, qtype).response_code, rcode, "{name} {qtype}");
        }
    }
    // One query with the DNSSEC OK bit.
    let mut m = query_message("do.example.org.", RecordType::A);
    m.edns.as_mut().unwrap().set_dnssec_ok(true);
    assert_eq!(exchange_udp(dns, &m).response_code, ResponseCode::NoError);

    let (status, headers, body) = http_request(s.http(":9153"), "/metrics", &[]);
    assert_eq!(status, 200);
    let ct = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.as_str());
    assert_eq!(ct, Some("text/plain; version=0.0.4; charset=utf-8"));
    (s, body)
}

#[test]
fn every_metric_dashboards_and_alerts_use_is_there_with_its_labels() {
    let (_s, body) = scrape();
    let checked = check_used(&body, &["present"], LATER_FAMILIES);
    assert!(checked >= 30, "only {checked} rows checked");
}

/// Checks every row of `coredns-metrics-used.tsv` whose check is one of `checks`, except the
/// families in `skip`, against the scrape `body`; returns how many rows it checked.
fn check_used(body: &str, checks: &[&str], skip: &[&str]) -> usize {
    let samples = parse_exposition(body);
    let mut checked = 0;
    for row in tsv("coredns-metrics-used.tsv").iter().filter(|r| checks.contains(&r["check"].as_str())) {
        let metric = row["metric"].as_str();
        if skip.iter().any(|f| row["family"].starts_with(f)) {
            continue;
        }
        let of_metric: Vec<&Sample> = samples.iter().filter(|s| s.name == metric).collect();
        assert!(!of_metric.is_empty(), "{metric} (used by {}) is not in the scrape:\n{body}", row["used_by"]);
        let missing_upstream = list(&row["labels_missing_in_coredns_1_14"]);
        for label in list(&row["labels_required"]).into_iter().filter(|l| !missing_upstream.contains(l)) {
            assert!(
                of_metric.iter().all(|s| s.labels.contains_key(label)),
                "{metric} lacks label {label} needed by {}",
                row["used_by"]
            );
        }
        // Literal values the query matches on, except the ones Prometheus adds at scrape.
        let scrape_labels = list(&row["scrape_labels_used"]);
        for matcher in row["label_matchers"].split(';').filter(|m| !m.is_empty()) {
            let Some((label, value)) = matcher.split_once("=\"") else { continue };
            if label.ends_with(['!', '=', '~']) || scrape_labels.contains(&label) {
                continue;
            }
            let value = value.trim_end_matches('"');
            assert!(
                of_metric.iter().any(|s| s.labels.get(label).map(String::as_str) == Some(value)),
                "no {metric} series with {label}=\"{value}\" (used by {})",
                row["used_by"]
            );
        }
        checked += 1;
    }
    checked
}

#[test]
fn every_coredns_family_has_coredns_label_names() {
    let (_s, body) = scrape();
    let coredns: BTreeMap<String, BTreeSet<String>> = tsv("coredns-1.14-metrics.tsv")
        .into_iter()
        .map(|r| (r["family"].clone(), list(&r["labels"]).into_iter().map(String::from).collect()))
        .collect();
    let mut want = coredns.clone();
    for (family, labels) in OWN_FAMILIES {
        assert!(!coredns.contains_key(*family), "{family} is CoreDNS's: it is not ours to define");
        want.insert(family.to_string(), labels.iter().map(|l| l.to_string()).collect());
    }
    let mut families = BTreeSet::new();
    for s in parse_exposition(&body).iter().filter(|s| s.name.starts_with("coredns_")) {
        let family = family_of(&s.name);
        let want = want.get(family).unwrap_or_else(|| panic!("{family} is neither a CoreDNS 1.14 family nor ours"));
        let got: BTreeSet<String> = s.labels.keys().filter(|k| *k != "le").cloned().collect();
        assert_eq!(&got, want, "labels of {}", s.name);
        families.insert(family.to_string());
    }
    for f in [
        "coredns_build_info",
        "coredns_dns_do_requests_total",
        "coredns_dns_request_duration_seconds",
        "coredns_dns_request_size_bytes",
        "coredns_dns_requests_total",
        "coredns_dns_response_size_bytes",
        "coredns_dns_responses_total",
        "coredns_panics_total",
        "coredns_plugin_enabled",
        "coredns_dns_tcp_open_connections",
        "coredns_dns_tcp_refused_connections_total",
        "coredns_dns_tcp_evicted_connections_total",
    ] {
        assert!(families.contains(f), "{f} missing from\n{body}");
    }
}

#[test]
fn the_scrape_records_what_was_sent() {
    let (_s, body) = scrape();
    let samples = parse_exposition(&body);
    let get = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
            .sum()
    };
    let org = [("zone", "example.org.")];
    assert_eq!(
        get("coredns_dns_responses_total", &[("zone", "example.org."), ("rcode", "NOERROR"), ("plugin", "whoami")]),
        13.0
    );
    assert_eq!(
        get("coredns_dns_responses_total", &[("zone", "servfail.example."), ("rcode", "SERVFAIL"), ("plugin", "")]),
        2.0
    );
    assert_eq!(get("coredns_dns_responses_total", &[("zone", "dropped"), ("rcode", "REFUSED"), ("plugin", "")]), 2.0);
    assert_eq!(get("coredns_dns_requests_total", &[("zone", "example.org."), ("proto", "tcp")]), 6.0);
    // CAA and SVCB are `other`; HTTPS has had its own value since CoreDNS 1.11.
    assert_eq!(get("coredns_dns_requests_total", &[("zone", "example.org."), ("type", "other")]), 4.0);
    assert_eq!(get("coredns_dns_requests_total", &[("zone", "example.org."), ("type", "HTTPS")]), 2.0);
    assert_eq!(get("coredns_dns_requests_total", &[("zone", "example.org."), ("type", "MX")]), 2.0);
    assert_eq!(get("coredns_dns_do_requests_total", &org), 1.0);
    assert_eq!(get("coredns_dns_request_duration_seconds_count", &org), 13.0);
    assert_eq!(get("coredns_dns_response_size_bytes_count", &org), 13.0);
    // Replies are counted at their size on the wire: whoami's are 80-odd bytes, none 0.
    assert_eq!(get("coredns_dns_response_size_bytes_bucket", &[("zone", "example.org."), ("le", "0")]), 0.0);
    assert_eq!(get("coredns_dns_response_size_bytes_bucket", &[("zone", "example.org."), ("le", "200")]), 13.0);
    for name in ["prometheus", "whoami"] {
        assert_eq!(get("coredns_plugin_enabled", &[("zone", "example.org."), ("name", name)]), 1.0, "{name}");
    }
    assert_eq!(get("coredns_plugin_enabled", &[("zone", "servfail.example."), ("name", "prometheus")]), 1.0);
    assert_eq!(get("coredns_plugin_enabled", &[("zone", "servfail.example."), ("name", "whoami")]), 0.0);
    assert_eq!(get("coredns_panics_total", &[]), 0.0);
    assert_eq!(get("coredns_build_info", &[("goversion", "rust")]), 1.0);
    assert!(get("process_resident_memory_bytes", &[]) > 0.0);
    assert!(get("go_goroutines", &[]) > 0.0);
}

#[test]
fn promtool_check_metrics_accepts_the_scrape() {
    let (_s, body) = scrape();
    let (ok, out) = promtool(&["check", "metrics"], Some(&body));
    assert!(ok, "promtool check metrics failed:\n{out}\non:\n{body}");
}

/// A promtool series line: `name{labels}` with the scrape labels Prometheus adds for a kube-dns
/// pod.
fn series(s: &Sample) -> String {
    let mut labels = s.labels.clone();
    for (k, v) in [
        ("job", "kube-dns"),
        ("instance", "10.244.0.5:9153"),
        ("namespace", "kube-system"),
        ("pod", "coredns-5d78c9869d-abcde"),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    let body: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{}{{{}}}", s.name, body.join(","))
}

#[test]
fn coredns_mixin_alerts_fire_on_our_series_with_coredns_labels() {
    let (_s, body) = scrape();
    let samples = parse_exposition(&body);

    // CoreDNSErrorsHigh: 5% SERVFAIL for 20 minutes, spread over the series we export.
    let responses: Vec<&Sample> = samples.iter().filter(|s| s.name == "coredns_dns_responses_total").collect();
    let (servfail, others): (Vec<&Sample>, Vec<&Sample>) =
        responses.iter().partition(|s| s.labels["rcode"] == "SERVFAIL");
    assert_eq!(servfail.len(), 1, "{responses:?}");
    assert!(others.len() >= 2, "{responses:?}");
    let mut errors_series = format!("      - series: '{}'\n        values: '0+5x20'\n", series(servfail[0]));
    for (i, s) in others.iter().enumerate() {
        let rate = if i == 0 { 95 - (others.len() - 1) } else { 1 };
        errors_series.push_str(&format!("      - series: '{}'\n        values: '0+{rate}x20'\n", series(s)));
    }

    // CoreDNSLatencyHigh: every request of every (server, zone) between 4.096 and 8.192 s.
    let buckets: Vec<&Sample> =
        samples.iter().filter(|s| s.name == "coredns_dns_request_duration_seconds_bucket").collect();
    let mut latency_series = String::new();
    let mut latency_alerts = String::new();
    let mut seen = BTreeSet::new();
    for b in &buckets {
        let le: f64 = if b.labels["le"] == "+Inf" { f64::INFINITY } else { b.labels["le"].parse().unwrap() };
        let values = if le < 8.0 { "0+0x20" } else { "0+100x20" };
        latency_series.push_str(&format!("      - series: '{}'\n        values: '{values}'\n", series(b)));
        let (server, zone) = (&b.labels["server"], &b.labels["zone"]);
        if seen.insert((server.clone(), zone.clone())) {
            latency_alerts.push_str(&format!(
                "          - exp_labels:\n              severity: critical\n              job: kube-dns\n              \
                 namespace: kube-system\n              server: \"{server}\"\n              zone: \"{zone}\"\n            \
                 exp_annotations:\n              summary: CoreDNS is experiencing high 99th percentile latency.\n              \
                 description: \"CoreDNS has 99th percentile latency of 8.15104 seconds for server {server} zone {zone} .\"\n              \
                 runbook_url: https://github.com/povilasv/coredns-mixin/tree/master/runbook.md#alert-name-corednslatencyhigh\n"
            ));
        }
    }
    assert!(seen.len() >= 2, "{seen:?}");

    let errors_alert = |severity: &str| {
        format!(
            "          - exp_labels:\n              severity: {severity}\n              job: kube-dns\n              \
             namespace: kube-system\n            exp_annotations:\n              summary: CoreDNS is returning SERVFAIL.\n              \
             description: CoreDNS is returning SERVFAIL for 5% of requests.\n              \
             runbook_url: https://github.com/povilasv/coredns-mixin/tree/master/runbook.md#alert-name-corednserrorshigh\n"
        )
    };
    let rules = compat_dir().join("rules/coredns-mixin-alerts.yaml");
    let test = format!(
        "rule_files:\n  - {rules}\n\nevaluation_interval: 1m\n\ntests:\n\
         \x20 - interval: 1m\n    input_series:\n{errors_series}    alert_rule_test:\n\
         \x20     - eval_time: 15m\n        alertname: CoreDNSErrorsHigh\n        exp_alerts:\n{crit}{warn}\
         \x20     - eval_time: 5m\n        alertname: CoreDNSErrorsHigh\n        exp_alerts: []\n\
         \x20 - interval: 1m\n    input_series:\n{latency_series}    alert_rule_test:\n\
         \x20     - eval_time: 15m\n        alertname: CoreDNSLatencyHigh\n        exp_alerts:\n{latency_alerts}",
        rules = rules.canonicalize().unwrap().display(),
        crit = errors_alert("critical"),
        warn = errors_alert("warning"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clusterdns-alerts.test.yaml");
    std::fs::write(&file, &test).unwrap();
    let (ok, out) = promtool(&["test", "rules", file.to_str().unwrap()], None);
    assert!(ok, "promtool test rules failed:\n{out}\n\ntest file:\n{test}");
}

#[test]
fn the_parser_reads_escapes() {
    let s = parse_exposition("a{x=\"1\",y=\"q\\\"\\\\n\"} 2\nb 3\n# HELP c d\nc_bucket{le=\"+Inf\"} 4\n");
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].labels["y"], "q\"\\n");
    assert_eq!((s[1].name.as_str(), s[1].value), ("b", 3.0));
    assert_eq!(family_of(&s[2].name), "c");
}

/// The kubeadm Corefile, unchanged but for a kubeconfig instead of the pod's service account and
/// an upstream of the test's own instead of /etc/resolv.conf, after a query mix: cluster names,
/// external names twice (a miss, then a cache hit), names that are nowhere, and an endpoint
/// change. Every metric dashboards and alerts use is there with its labels, the cache, forward
/// and kubernetes families included, each with CoreDNS 1.14's label names; promtool accepts it.
#[test]
fn the_kubeadm_corefile_exports_what_dashboards_and_alerts_use() {
    use clusterdns_test_apiserver::{ClusterObject, TestApiServer};
    use serde_json::json;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let api = rt.block_on(TestApiServer::builder().start()).unwrap();
    let slice = |ip: &str, trigger: Option<&str>| {
        let mut meta = json!({"name": "web-1", "namespace": "apps", "labels": {"kubernetes.io/service-name": "web"}});
        if let Some(at) = trigger {
            meta["annotations"] = json!({"endpoints.kubernetes.io/last-change-trigger-time": at});
        }
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta, "addressType": "IPv4",
               "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    };
    for o in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "apps"},
               "spec": {"type": "ClusterIP", "clusterIP": "10.96.1.1", "clusterIPs": ["10.96.1.1"], "selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        slice("10.244.0.5", None),
    ] {
        api.apply(ClusterObject::from_json(o).unwrap()).unwrap();
    }
    let upstream = TestServer::start(".:53 {\n    hosts {\n        192.0.2.10 www.example.test\n    }\n}\n");
    let corefile = format!(
        ".:53 {{\n    errors\n    health {{\n       lameduck 5s\n    }}\n    ready\n    \
         kubernetes cluster.local in-addr.arpa ip6.arpa {{\n       kubeconfig {}\n       pods insecure\n       \
         fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }}\n    prometheus :9153\n    \
         forward . {} {{\n       max_concurrent 1000\n    }}\n    cache 30 {{\n       disable success cluster.local\n       \
         disable denial cluster.local\n    }}\n    loop\n    reload\n    loadbalance\n}}\n",
        api.kubeconfig_path().display(),
        upstream.addr()
    );
    let s = TestServer::start(&corefile);
    let dns = s.addr();
    let synced = eventually(TIMEOUT, || {
        (query_udp(dns, "web.apps.svc.cluster.local.", RecordType::A).response_code == ResponseCode::NoError)
            .then_some(())
    });
    assert!(synced.is_some(), "the kubernetes plugin did not sync");
    for tcp in [false, true] {
        let q = |name: &str, qtype| if tcp { query_tcp(dns, name, qtype) } else { query_udp(dns, name, qtype) };
        for (name, qtype, rcode) in [
            ("web.apps.svc.cluster.local.", RecordType::A, ResponseCode::NoError),
            ("nosuch.apps.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain),
            ("www.example.test.", RecordType::A, ResponseCode::NoError),
            ("www.example.test.", RecordType::A, ResponseCode::NoError),
            // The upstream's chain ends there (hosts without fallthrough): its SERVFAIL is passed
            // on, and counted by rcode as dashboards' error panels want.
            ("nosuch.example.test.", RecordType::A, ResponseCode::ServFail),
            ("1.1.96.10.in-addr.arpa.", RecordType::PTR, ResponseCode::NoError),
        ] {
            assert_eq!(q(name, qtype).response_code, rcode, "{name} {qtype}");
        }
    }
    let mut m = query_message("www.example.test.", RecordType::A);
    m.edns.as_mut().unwrap().set_dnssec_ok(true);
    assert_eq!(exchange_udp(dns, &m).response_code, ResponseCode::NoError, "with the DO bit");
    // An endpoint change carrying kube-controller-manager's trigger time: the programming
    // duration is measured.
    api.apply(ClusterObject::from_json(slice("10.244.0.6", Some("2026-01-01T00:00:00Z"))).unwrap()).unwrap();
    let programmed = eventually(TIMEOUT, || {
        s.metrics().contains("coredns_kubernetes_dns_programming_duration_seconds_bucket").then_some(())
    });
    assert!(programmed.is_some(), "{}", s.metrics());

    let (status, _, body) = http_request(s.http(":9153"), "/metrics", &[]);
    assert_eq!(status, 200);
    let checked = check_used(&body, &["present", "present-with-kubernetes-plugin"], &[]);
    assert!(checked >= 40, "only {checked} rows checked");
    // CoreDNS 1.14's label names for every family it has; forward's pre-1.11 families, which
    // clusterdns also exports for the mixin's alerts, with the labels those alerts use.
    let coredns: BTreeMap<String, BTreeSet<String>> = tsv("coredns-1.14-metrics.tsv")
        .into_iter()
        .map(|r| (r["family"].clone(), list(&r["labels"]).into_iter().map(String::from).collect()))
        .collect();
    let legacy: BTreeSet<String> = tsv("coredns-metrics-used.tsv")
        .into_iter()
        .filter(|r| r["check"] == "absent-legacy")
        .map(|r| r["family"].clone())
        .collect();
    // Families a plugin adds beyond CoreDNS are documented in its README.
    let readmes: String = std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/plugins"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("README.md")).ok())
        .collect();
    let mut families = BTreeSet::new();
    for sample in parse_exposition(&body).iter().filter(|s| s.name.starts_with("coredns_")) {
        let family = family_of(&sample.name);
        families.insert(family.to_string());
        let got: BTreeSet<String> = sample.labels.keys().filter(|k| *k != "le").cloned().collect();
        if let Some(want) = coredns.get(family) {
            assert_eq!(&got, want, "labels of {}", sample.name);
        } else {
            let own = OWN_FAMILIES.iter().any(|(f, _)| *f == family) || readmes.contains(family);
            assert!(own || legacy.contains(family), "{family} is neither CoreDNS's nor documented as ours");
        }
    }
    for f in LATER_FAMILIES {
        assert!(families.iter().any(|family| family.starts_with(f)), "no {f} family in\n{body}");
    }
    let (ok, out) = promtool(&["check", "metrics"], Some(&body));
    assert!(ok, "promtool check metrics:\n{out}");
    drop(s);
    drop(api);
}
