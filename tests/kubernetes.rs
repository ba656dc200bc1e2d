//! kubernetes over real sockets: the real plugin, its real kube client over HTTPS with a bearer
//! token (or a client certificate), against the test API server (tests/apiserver). Each test is named after the section of
//! the Kubernetes DNS-Based Service Discovery specification (schema 1.1.0) or the CoreDNS
//! behaviour it checks.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clusterdns_test_apiserver::{ClusterObject, Kind, PauseMode, StreamingLists, TestApiServer};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};

/// A test API server on its own runtime, so the DNS server's runtime and the test's blocking
/// clients leave it alone.
struct Api {
    // Dropped before the runtime it runs on.
    api: TestApiServer,
    _rt: tokio::runtime::Runtime,
}

impl Api {
    fn start(objects: Vec<ClusterObject>) -> Api {
        Api::start_with(objects, |b| b)
    }

    fn start_with(
        objects: Vec<ClusterObject>,
        f: impl FnOnce(clusterdns_test_apiserver::Builder) -> clusterdns_test_apiserver::Builder,
    ) -> Api {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let mut builder = f(TestApiServer::builder());
        for o in objects {
            builder = builder.object(o);
        }
        let api = rt.block_on(builder.start()).expect("the test API server starts");
        Api { api, _rt: rt }
    }

    fn kubeconfig(&self) -> &Path {
        self.api.kubeconfig_path()
    }

    fn apply(&self, o: impl Into<ClusterObject>) {
        self.api.apply(o).expect("apply");
    }

    fn delete(&self, kind: Kind, ns: Option<&str>, name: &str) {
        assert!(self.api.delete(kind, ns, name).is_some(), "{name} existed");
    }

    /// Requests that fetch the state: paginated lists, and streaming lists (watches with
    /// `sendInitialEvents=true`).
    fn lists(&self) -> usize {
        let requests = self.api.requests();
        let listing = |r: &&clusterdns_test_apiserver::RequestRecord| {
            r.method == "GET" && (!r.query.contains("watch=") || r.query.contains("sendInitialEvents=true"))
        };
        requests.iter().filter(listing).count()
    }
}

fn meta(ns: Option<&str>, name: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(String::from),
        ..Default::default()
    }
}

fn namespace(name: &str) -> ClusterObject {
    Namespace { metadata: meta(None, name), ..Default::default() }.into()
}

fn service(ns: &str, name: &str, cluster_ip: &str, ports: &[(&str, i32, &str)]) -> ClusterObject {
    svc(ns, name, cluster_ip, ports).into()
}

fn slice(
    ns: &str,
    svc: &str,
    name: &str,
    endpoints: &[(&str, Option<&str>, Option<bool>)],
    ports: &[(&str, i32, &str)],
) -> ClusterObject {
    eps(ns, svc, name, endpoints, ports).into()
}

/// A Service; `cluster_ip` "None" makes it headless.
fn svc(ns: &str, name: &str, cluster_ip: &str, ports: &[(&str, i32, &str)]) -> Service {
    let ports = ports
        .iter()
        .map(|(n, p, proto)| ServicePort {
            name: Some(n.to_string()),
            port: *p,
            protocol: Some(proto.to_string()),
            ..Default::default()
        })
        .collect();
    let spec = ServiceSpec {
        cluster_ip: Some(cluster_ip.into()),
        cluster_ips: Some(vec![cluster_ip.into()]),
        type_: Some("ClusterIP".into()),
        ports: Some(ports),
        ..Default::default()
    };
    Service { metadata: meta(Some(ns), name), spec: Some(spec), ..Default::default() }
}

fn external(ns: &str, name: &str, target: &str) -> ClusterObject {
    let spec =
        ServiceSpec { type_: Some("ExternalName".into()), external_name: Some(target.into()), ..Default::default() };
    Service { metadata: meta(Some(ns), name), spec: Some(spec), ..Default::default() }.into()
}

/// An EndpointSlice of service `svc`: (address, hostname, ready) per endpoint.
fn eps(
    ns: &str,
    svc: &str,
    name: &str,
    endpoints: &[(&str, Option<&str>, Option<bool>)],
    ports: &[(&str, i32, &str)],
) -> EndpointSlice {
    let mut m = meta(Some(ns), name);
    m.labels = Some(BTreeMap::from([("kubernetes.io/service-name".to_string(), svc.to_string())]));
    let v6 = endpoints.first().is_some_and(|(ip, _, _)| ip.contains(':'));
    EndpointSlice {
        metadata: m,
        address_type: if v6 { "IPv6" } else { "IPv4" }.into(),
        endpoints: Some(
            endpoints
                .iter()
                .map(|(ip, host, ready)| Endpoint {
                    addresses: vec![ip.to_string()],
                    hostname: host.map(String::from),
                    conditions: Some(EndpointConditions { ready: *ready, ..Default::default() }),
                    ..Default::default()
                })
                .collect(),
        ),
        ports: Some(
            ports
                .iter()
                .map(|(n, p, proto)| EndpointPort {
                    name: Some(n.to_string()),
                    port: Some(*p),
                    protocol: Some(proto.to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
    }
}

/// The cluster most tests serve: namespaces `apps` and `other`, a ClusterIP service with two
/// named ports, a headless one with a hostname, a dashed-IP endpoint and a not-ready one, a
/// headless one with nothing ready, an ExternalName.
fn cluster() -> Vec<ClusterObject> {
    vec![
        namespace("apps"),
        namespace("other"),
        namespace("kube-system"),
        service("apps", "web", "10.96.0.10", &[("http", 80, "TCP"), ("metrics", 9090, "TCP")]),
        slice("apps", "web", "web-abc", &[("10.1.0.1", None, Some(true))], &[("http", 8080, "TCP")]),
        service("apps", "db", "None", &[("pg", 5432, "TCP")]),
        slice(
            "apps",
            "db",
            "db-1",
            &[("10.1.1.1", Some("db-0"), Some(true)), ("10.1.1.2", None, None), ("10.1.1.3", None, Some(false))],
            &[("pg", 5432, "TCP")],
        ),
        service("apps", "idle", "None", &[("pg", 5432, "TCP")]),
        slice("apps", "idle", "idle-1", &[("10.1.3.1", None, Some(false))], &[("pg", 5432, "TCP")]),
        service("apps", "v6", "None", &[("http", 80, "TCP")]),
        slice("apps", "v6", "v6-1", &[("fd00::", None, Some(true))], &[("http", 80, "TCP")]),
        external("apps", "ext", "www.example.net"),
    ]
}

/// The kubeadm default `kubernetes` block, with a kubeconfig instead of the pod's service
/// account (and `startup_timeout` when given), then `whoami` as the next plugin, and a block
/// for the ExternalName's target.
fn kubeadm(kubeconfig: &Path, extra: &str) -> String {
    format!(
        ".:53 {{\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        kubeconfig {}\n        \
         pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n{extra}    }}\n    whoami\n}}\n\
         example.net:53 {{\n    hosts {{\n        192.0.2.7 www.example.net\n    }}\n}}\n",
        kubeconfig.display()
    )
}

fn serve(api: &Api) -> TestServer {
    TestServer::start(&kubeadm(api.kubeconfig(), ""))
}

fn answers(m: &Message) -> Vec<String> {
    rrs(&m.answers)
}

fn q(s: &TestServer, name: &str, t: RecordType) -> Message {
    query_udp(s.addr(), name, t)
}

/// NOERROR with no answer and the zone's SOA in the authority section.
fn assert_nodata(m: &Message, what: &str) {
    assert_eq!(m.response_code, ResponseCode::NoError, "{what}: {m:?}");
    assert!(m.answers.is_empty(), "{what}: {:?}", answers(m));
    assert_eq!(m.authorities.len(), 1, "{what}");
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA, "{what}");
}

/// NXDOMAIN with the zone's SOA.
fn assert_nxdomain(m: &Message, what: &str) {
    assert_eq!(m.response_code, ResponseCode::NXDomain, "{what}: {:?}", answers(m));
    assert!(m.answers.is_empty(), "{what}");
    assert_eq!(m.authorities.len(), 1, "{what}");
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA, "{what}");
}

#[test]
fn spec_2_3_1_cluster_ip_a_record_and_2_3_4_no_other_family() {
    let api = Api::start(cluster());
    let s = serve(&api);
    for query in [query_udp, query_tcp] {
        let m = query(s.addr(), "web.apps.svc.cluster.local.", RecordType::A);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.authoritative);
        assert_eq!(answers(&m), ["web.apps.svc.cluster.local. 30 IN A 10.96.0.10"]);
    }
    assert_nodata(&q(&s, "web.apps.svc.cluster.local.", RecordType::AAAA), "AAAA of an IPv4 service");
    assert_nodata(&q(&s, "web.apps.svc.cluster.local.", RecordType::TXT), "TXT of a service");
    // Matching ignores case and keeps the question's.
    let m = q(&s, "WEB.Apps.svc.Cluster.Local.", RecordType::A);
    assert_eq!(answers(&m), ["WEB.Apps.svc.Cluster.Local. 30 IN A 10.96.0.10"]);
}

#[test]
fn spec_2_3_2_srv_for_named_ports_and_on_the_service_name() {
    let api = Api::start(cluster());
    let s = serve(&api);
    let m = q(&s, "_http._tcp.web.apps.svc.cluster.local.", RecordType::SRV);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["_http._tcp.web.apps.svc.cluster.local. 30 IN SRV 0 100 80 web.apps.svc.cluster.local."]);
    assert_eq!(rrs(&m.additionals), ["web.apps.svc.cluster.local. 30 IN A 10.96.0.10"]);
    // The bare service name: one SRV per port.
    let m = q(&s, "web.apps.svc.cluster.local.", RecordType::SRV);
    let mut got = answers(&m);
    got.sort();
    assert_eq!(
        got,
        [
            "web.apps.svc.cluster.local. 30 IN SRV 0 50 80 web.apps.svc.cluster.local.",
            "web.apps.svc.cluster.local. 30 IN SRV 0 50 9090 web.apps.svc.cluster.local.",
        ]
    );
    // A port or protocol the service does not have: the name does not exist.
    assert_nxdomain(&q(&s, "_ftp._tcp.web.apps.svc.cluster.local.", RecordType::SRV), "unknown port");
    assert_nxdomain(&q(&s, "_http._udp.web.apps.svc.cluster.local.", RecordType::SRV), "wrong protocol");
    // A port name that exists, asked for another type: NODATA.
    assert_nodata(&q(&s, "_http._tcp.web.apps.svc.cluster.local.", RecordType::TXT), "TXT of a port name");
}

#[test]
fn spec_2_4_1_headless_a_is_every_ready_endpoint_and_2_4_2_srv_targets_them() {
    let api = Api::start(cluster());
    let s = serve(&api);
    let m = q(&s, "db.apps.svc.cluster.local.", RecordType::A);
    let mut got = answers(&m);
    got.sort();
    // ready true and ready unset are served; ready false is not.
    assert_eq!(got, ["db.apps.svc.cluster.local. 30 IN A 10.1.1.1", "db.apps.svc.cluster.local. 30 IN A 10.1.1.2"]);
    // Endpoint names: the hostname, else the dashed IP.
    let m = q(&s, "db-0.db.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["db-0.db.apps.svc.cluster.local. 30 IN A 10.1.1.1"]);
    let m = q(&s, "10-1-1-2.db.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["10-1-1-2.db.apps.svc.cluster.local. 30 IN A 10.1.1.2"]);
    assert_nxdomain(&q(&s, "10-1-1-3.db.apps.svc.cluster.local.", RecordType::A), "a not-ready endpoint");

    let m = q(&s, "_pg._tcp.db.apps.svc.cluster.local.", RecordType::SRV);
    let mut got = answers(&m);
    got.sort();
    assert_eq!(
        got,
        [
            "_pg._tcp.db.apps.svc.cluster.local. 30 IN SRV 0 50 5432 10-1-1-2.db.apps.svc.cluster.local.",
            "_pg._tcp.db.apps.svc.cluster.local. 30 IN SRV 0 50 5432 db-0.db.apps.svc.cluster.local.",
        ]
    );
    let mut extra = rrs(&m.additionals);
    extra.sort();
    assert_eq!(
        extra,
        ["10-1-1-2.db.apps.svc.cluster.local. 30 IN A 10.1.1.2", "db-0.db.apps.svc.cluster.local. 30 IN A 10.1.1.1",]
    );
    // SRV on the bare headless name: one per ready endpoint and port.
    assert_eq!(answers(&q(&s, "db.apps.svc.cluster.local.", RecordType::SRV)).len(), 2);
    // Nothing ready: the headless service's name does not exist.
    assert_nxdomain(&q(&s, "idle.apps.svc.cluster.local.", RecordType::A), "headless, nothing ready");
    // coredns#7430: an IPv6 endpoint ending in "::" gets a valid dashed name.
    let m = q(&s, "v6.apps.svc.cluster.local.", RecordType::SRV);
    assert_eq!(answers(&m), ["v6.apps.svc.cluster.local. 30 IN SRV 0 100 80 fd00--0.v6.apps.svc.cluster.local."]);
    let m = q(&s, "fd00--0.v6.apps.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(answers(&m), ["fd00--0.v6.apps.svc.cluster.local. 30 IN AAAA fd00::"]);
}

#[test]
fn spec_2_5_external_name_is_a_cname_resolved_through_the_server() {
    let api = Api::start(cluster());
    let s = serve(&api);
    let m = q(&s, "ext.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(
        answers(&m),
        ["ext.apps.svc.cluster.local. 30 IN CNAME www.example.net.", "www.example.net. 3600 IN A 192.0.2.7"]
    );
}

#[test]
fn spec_2_5_ptr_for_cluster_ips_and_ready_endpoints() {
    let api = Api::start(cluster());
    let s = serve(&api);
    let m = q(&s, "10.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m), ["10.0.96.10.in-addr.arpa. 30 IN PTR web.apps.svc.cluster.local."]);
    let m = q(&s, "1.1.1.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(answers(&m), ["1.1.1.10.in-addr.arpa. 30 IN PTR db-0.db.apps.svc.cluster.local."]);
    let m = q(&s, "2.1.1.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(answers(&m), ["2.1.1.10.in-addr.arpa. 30 IN PTR 10-1-1-2.db.apps.svc.cluster.local."]);
    // 32 nibbles of fd00::.
    let v6 = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    let m = q(&s, v6, RecordType::PTR);
    assert_eq!(answers(&m), [format!("{v6} 30 IN PTR fd00--0.v6.apps.svc.cluster.local.")]);
}

#[test]
fn fallthrough_in_addr_arpa_hands_unknown_addresses_to_the_next_plugin() {
    let api = Api::start(cluster());
    let s = serve(&api);
    // Not a cluster address, and not ready: whoami (the next plugin) answers, no NXDOMAIN.
    for name in ["99.99.99.10.in-addr.arpa.", "3.1.1.10.in-addr.arpa."] {
        let m = q(&s, name, RecordType::PTR);
        assert_eq!(m.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty() && !m.additionals.is_empty(), "whoami's answer for {name}: {m:?}");
        assert!(rrs(&m.additionals).iter().any(|r| r.contains("IN A 127.0.0.1")), "{m:?}");
    }
    // The forward zone does not fall through.
    assert_nxdomain(&q(&s, "nope.apps.svc.cluster.local.", RecordType::A), "no fallthrough for cluster.local");
}

#[test]
fn spec_2_6_pods_insecure_answers_dashed_names_in_existing_namespaces() {
    let api = Api::start(cluster());
    let s = serve(&api);
    let m = q(&s, "10-1-2-3.apps.pod.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["10-1-2-3.apps.pod.cluster.local. 30 IN A 10.1.2.3"]);
    let m = q(&s, "fd00--1.apps.pod.cluster.local.", RecordType::AAAA);
    assert_eq!(answers(&m), ["fd00--1.apps.pod.cluster.local. 30 IN AAAA fd00::1"]);
    assert_nodata(&q(&s, "10-1-2-3.apps.pod.cluster.local.", RecordType::AAAA), "AAAA of an IPv4 pod name");
    assert_nxdomain(&q(&s, "10-1-2-3.missing.pod.cluster.local.", RecordType::A), "pod in a missing namespace");
    assert_nxdomain(&q(&s, "10-1-2.apps.pod.cluster.local.", RecordType::A), "not an address");
    assert_nxdomain(&q(&s, "10-1-2-300.apps.pod.cluster.local.", RecordType::A), "not an address");
}

#[test]
fn pods_disabled_by_default_and_verified_only_for_pods_that_exist() {
    use k8s_openapi::api::core::v1::{Pod, PodIP, PodStatus};
    let mut objects = cluster();
    let pod = Pod {
        metadata: meta(Some("apps"), "p1"),
        status: Some(PodStatus {
            pod_ip: Some("10.1.4.1".into()),
            pod_ips: Some(vec![PodIP { ip: "10.1.4.1".into() }, PodIP { ip: "fd00::41".into() }]),
            phase: Some("Running".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    objects.push(pod.into());
    let api = Api::start(objects);
    let kc = api.kubeconfig().display().to_string();
    let s =
        TestServer::start(&format!("cluster.local:53 {{\n    kubernetes {{\n        kubeconfig {kc}\n    }}\n}}\n"));
    assert_nxdomain(&q(&s, "10-1-4-1.apps.pod.cluster.local.", RecordType::A), "pods disabled");
    drop(s);
    let s = TestServer::start(&format!(
        "cluster.local:53 {{\n    kubernetes {{\n        kubeconfig {kc}\n        pods verified\n    }}\n}}\n"
    ));
    let m = q(&s, "10-1-4-1.apps.pod.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["10-1-4-1.apps.pod.cluster.local. 5 IN A 10.1.4.1"]);
    // Every IP of the pod, not only the first (CoreDNS indexes podIP alone).
    let m = q(&s, "fd00--41.apps.pod.cluster.local.", RecordType::AAAA);
    assert_eq!(answers(&m), ["fd00--41.apps.pod.cluster.local. 5 IN AAAA fd00::41"]);
    assert_nxdomain(&q(&s, "10-1-4-2.apps.pod.cluster.local.", RecordType::A), "no such pod");
    assert_nxdomain(&q(&s, "10-1-4-1.other.pod.cluster.local.", RecordType::A), "the pod is in another namespace");
    // coredns#7119: a deleted pod stops answering.
    api.delete(Kind::Pod, Some("apps"), "p1");
    let gone = eventually(Duration::from_secs(5), || {
        let m = q(&s, "10-1-4-1.apps.pod.cluster.local.", RecordType::A);
        (m.response_code == ResponseCode::NXDomain).then_some(())
    });
    assert!(gone.is_some(), "the deleted pod's name went away");
}

#[test]
fn nxdomain_and_nodata_as_the_spec_and_coredns_give_them() {
    let api = Api::start(cluster());
    let s = serve(&api);
    // The apex: SOA and NS exist; other types are NODATA.
    let m = q(&s, "cluster.local.", RecordType::SOA);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
    assert!(
        answers(&m)[0].starts_with("cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local."),
        "{:?}",
        answers(&m)
    );
    let m = q(&s, "cluster.local.", RecordType::NS);
    assert_eq!(answers(&m), ["cluster.local. 30 IN NS ns.dns.cluster.local."]);
    assert_nodata(&q(&s, "cluster.local.", RecordType::A), "A at the apex");
    // svc. and pod., and existing namespaces: NODATA.
    assert_nodata(&q(&s, "svc.cluster.local.", RecordType::A), "svc.");
    assert_nodata(&q(&s, "pod.cluster.local.", RecordType::A), "pod.");
    assert_nodata(&q(&s, "apps.svc.cluster.local.", RecordType::A), "an existing namespace");
    assert_nodata(&q(&s, "other.svc.cluster.local.", RecordType::A), "an empty existing namespace");
    // The rest: NXDOMAIN.
    assert_nxdomain(&q(&s, "missing.svc.cluster.local.", RecordType::A), "a missing namespace");
    assert_nxdomain(&q(&s, "nope.apps.svc.cluster.local.", RecordType::A), "a missing service");
    assert_nxdomain(&q(&s, "web.missing.svc.cluster.local.", RecordType::A), "a service in a missing namespace");
    assert_nxdomain(&q(&s, "web.other.svc.cluster.local.", RecordType::A), "a service of another namespace");
    assert_nxdomain(&q(&s, "x.web.apps.svc.cluster.local.", RecordType::A), "an endpoint of a ClusterIP service");
    assert_nxdomain(&q(&s, "a.b.c.d.e.apps.svc.cluster.local.", RecordType::A), "too deep");
    assert_nxdomain(&q(&s, "web.apps.cluster.local.", RecordType::A), "neither svc nor pod");
    // AXFR is refused.
    let m = query_tcp(s.addr(), "cluster.local.", RecordType::AXFR);
    assert_eq!(m.response_code, ResponseCode::Refused);
}

#[test]
fn spec_2_2_dns_version_txt() {
    let api = Api::start(cluster());
    let s = serve(&api);
    let m = q(&s, "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(answers(&m), ["dns-version.cluster.local. 28800 IN TXT 1.1.0"]);
    assert_nodata(&q(&s, "dns-version.cluster.local.", RecordType::A), "A of dns-version");
}

/// Polls `name` until its answer section is `want` (sorted), within 5 s.
fn until_answers(s: &TestServer, name: &str, t: RecordType, want: &[&str]) {
    let mut last = Vec::new();
    let got = eventually(Duration::from_secs(5), || {
        let mut a = answers(&q(s, name, t));
        a.sort();
        last = a.clone();
        (a == want).then_some(())
    });
    assert!(got.is_some(), "{name} {t}: {last:?}, want {want:?}");
}

fn until_rcode(s: &TestServer, name: &str, t: RecordType, want: ResponseCode) {
    let got = eventually(Duration::from_secs(5), || (q(s, name, t).response_code == want).then_some(()));
    assert!(got.is_some(), "{name} {t}: never {want}");
}

#[test]
fn answers_follow_services_slices_and_namespaces_as_they_change() {
    let api = Api::start(cluster());
    let s = serve(&api);
    // A Service created while serving.
    api.apply(service("apps", "new", "10.96.0.77", &[("http", 80, "TCP")]));
    until_answers(
        &s,
        "new.apps.svc.cluster.local.",
        RecordType::A,
        &["new.apps.svc.cluster.local. 30 IN A 10.96.0.77"],
    );
    until_answers(
        &s,
        "77.0.96.10.in-addr.arpa.",
        RecordType::PTR,
        &["77.0.96.10.in-addr.arpa. 30 IN PTR new.apps.svc.cluster.local."],
    );
    // Updated: a new cluster IP; the old PTR goes.
    api.apply(service("apps", "new", "10.96.0.78", &[("http", 80, "TCP")]));
    until_answers(
        &s,
        "new.apps.svc.cluster.local.",
        RecordType::A,
        &["new.apps.svc.cluster.local. 30 IN A 10.96.0.78"],
    );
    // Deleted.
    api.delete(Kind::Service, Some("apps"), "new");
    until_rcode(&s, "new.apps.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
    // An EndpointSlice rewritten, a second one added: the headless answer is their union.
    api.apply(slice("apps", "db", "db-1", &[("10.1.1.9", None, Some(true))], &[("pg", 5432, "TCP")]));
    api.apply(slice("apps", "db", "db-2", &[("10.1.1.8", None, Some(true))], &[("pg", 5432, "TCP")]));
    until_answers(
        &s,
        "db.apps.svc.cluster.local.",
        RecordType::A,
        &["db.apps.svc.cluster.local. 30 IN A 10.1.1.8", "db.apps.svc.cluster.local. 30 IN A 10.1.1.9"],
    );
    api.delete(Kind::EndpointSlice, Some("apps"), "db-1");
    until_answers(&s, "db.apps.svc.cluster.local.", RecordType::A, &["db.apps.svc.cluster.local. 30 IN A 10.1.1.8"]);
    // A Namespace created, then deleted.
    assert_nxdomain(&q(&s, "fresh.svc.cluster.local.", RecordType::A), "before");
    api.apply(namespace("fresh"));
    until_rcode(&s, "fresh.svc.cluster.local.", RecordType::A, ResponseCode::NoError);
    api.delete(Kind::Namespace, None, "fresh");
    until_rcode(&s, "fresh.svc.cluster.local.", RecordType::A, ResponseCode::NXDomain);
}

/// A forced relist (watch dropped, history compacted, 410 Gone), as a streaming list: the names
/// that still exist answer throughout, what changed meanwhile shows once it is done.
#[test]
fn relist_after_410_gone_never_answers_a_false_nxdomain() {
    relist_without_a_window(StreamingLists::Serve);
}

/// The same with paginated lists, from a server without streaming lists (422 Invalid, which the
/// plugin falls back from): the list request itself is slow, so a relist that emptied the index
/// first would answer NXDOMAIN meanwhile.
#[test]
fn relist_with_paginated_lists_never_answers_a_false_nxdomain() {
    relist_without_a_window(StreamingLists::Reject);
}

fn relist_without_a_window(streaming: StreamingLists) {
    let api = Api::start(cluster());
    api.api.set_streaming_lists(streaming);
    let s = serve(&api);
    if streaming == StreamingLists::Reject {
        let plain = api.api.requests().iter().filter(|r| !r.query.contains("watch=")).count();
        assert!(plain >= 3, "paginated lists were made: {:?}", api.api.requests());
    }
    let relists = |s: &TestServer| -> f64 {
        s.metrics()
            .lines()
            .filter(|l| l.starts_with("coredns_kubernetes_relists_total"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let before = relists(&s);
    api.api.pause(PauseMode::Hold);
    api.api.drop_watches();
    // The dropped streams end on their own tasks: one still open would carry the changes below
    // to the plugin, no 410 would follow, and there would be no relist to test.
    let dropped = Instant::now();
    while api.api.open_watches() > 0 {
        assert!(dropped.elapsed() < Duration::from_secs(5), "the watches were not dropped");
        std::thread::sleep(Duration::from_millis(5));
    }
    api.apply(service("apps", "late", "10.96.0.99", &[("http", 80, "TCP")]));
    api.delete(Kind::Service, Some("apps"), "idle");
    api.api.compact();
    // A slow relist, so queries land in the middle of it: a second a request, longer than a
    // round of queries takes on a loaded machine (200 ms was not, once).
    api.api.set_latency(Duration::from_secs(1));
    api.api.resume();
    let start = Instant::now();
    let mut checked = 0;
    loop {
        assert!(start.elapsed() < Duration::from_secs(10), "the relist did not bring `late` in");
        for name in ["web.apps.svc.cluster.local.", "db.apps.svc.cluster.local."] {
            let m = q(&s, name, RecordType::A);
            assert_eq!(m.response_code, ResponseCode::NoError, "{name} during the relist");
            assert!(!m.answers.is_empty(), "{name} during the relist");
        }
        checked += 1;
        if q(&s, "late.apps.svc.cluster.local.", RecordType::A).response_code == ResponseCode::NoError {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(checked > 1, "queries were made during the relist");
    api.api.set_latency(Duration::ZERO);
    // The object deleted while the watch was away goes when the relist sweeps.
    until_rcode(&s, "idle.apps.svc.cluster.local.", RecordType::SRV, ResponseCode::NXDomain);
    assert!(relists(&s) > before, "a relist was counted:\n{}", s.metrics());
}

/// CoreDNS answers NXDOMAIN until its first sync times out; here a name it cannot vouch for is
/// SERVFAIL until the first sync, `/ready` says so, and start waits only `startup_timeout`.
#[test]
fn servfail_before_the_first_sync_and_startup_timeout() {
    let api = Api::start(cluster());
    api.api.pause(PauseMode::Hold);
    let mut corefile = kubeadm(api.kubeconfig(), "        startup_timeout 1s\n");
    corefile = corefile.replace("    errors\n", "    errors\n    ready\n");
    let started = Instant::now();
    let s = TestServer::start(&corefile);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "start took {took:?}");
    for name in ["web.apps.svc.cluster.local.", "nope.apps.svc.cluster.local."] {
        assert_eq!(q(&s, name, RecordType::A).response_code, ResponseCode::ServFail, "{name} before the sync");
    }
    let (status, body) = http_get(s.http(":8181"), "/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("kubernetes"), "{body}");
    // Fallthrough is decided before the sync check.
    let m = q(&s, "99.99.99.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.response_code, ResponseCode::NoError);

    api.api.resume();
    until_answers(
        &s,
        "web.apps.svc.cluster.local.",
        RecordType::A,
        &["web.apps.svc.cluster.local. 30 IN A 10.96.0.10"],
    );
    assert_nxdomain(&q(&s, "nope.apps.svc.cluster.local.", RecordType::A), "after the sync");
    let ready = eventually(Duration::from_secs(5), || (http_get(s.http(":8181"), "/ready").0 == 200).then_some(()));
    assert!(ready.is_some(), "/ready turns 200");
}

/// An API server unreachable, then back: a Service created meanwhile is answered once it
/// returns (lf-edge/eve#6113), and cached answers keep coming during the outage.
#[test]
fn an_outage_serves_the_last_index_and_catches_up() {
    let api = Api::start(cluster());
    let s = serve(&api);
    api.api.pause(PauseMode::Unavailable);
    api.api.break_watches();
    api.apply(service("apps", "during", "10.96.0.55", &[("http", 80, "TCP")]));
    for _ in 0..10 {
        let m = q(&s, "web.apps.svc.cluster.local.", RecordType::A);
        assert_eq!(answers(&m), ["web.apps.svc.cluster.local. 30 IN A 10.96.0.10"], "during the outage");
        std::thread::sleep(Duration::from_millis(50));
    }
    api.api.resume();
    let got = eventually(Duration::from_secs(15), || {
        (q(&s, "during.apps.svc.cluster.local.", RecordType::A).response_code == ResponseCode::NoError).then_some(())
    });
    assert!(got.is_some(), "the service created during the outage is answered");

    // A server that holds every request unanswered: the same.
    api.api.pause(PauseMode::Hold);
    api.api.drop_watches();
    api.apply(service("apps", "held", "10.96.0.56", &[("http", 80, "TCP")]));
    for _ in 0..10 {
        let m = q(&s, "during.apps.svc.cluster.local.", RecordType::A);
        assert_eq!(answers(&m), ["during.apps.svc.cluster.local. 30 IN A 10.96.0.55"], "while held");
        std::thread::sleep(Duration::from_millis(50));
    }
    api.api.resume();
    until_rcode(&s, "held.apps.svc.cluster.local.", RecordType::A, ResponseCode::NoError);
}

fn kubeconfig_with_token(api: &Api, dir: &Path, token_line: &str) -> PathBuf {
    let text = std::fs::read_to_string(api.kubeconfig()).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("token:") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}{token_line}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains(token_line), "the kubeconfig has a token line:\n{text}");
    let path = dir.join("kubeconfig");
    std::fs::write(&path, out).unwrap();
    path
}

/// The bearer token goes with every request; one read from a file (as the service account's
/// is) works, a wrong one gets 401 and leaves the plugin unready, SERVFAIL, never NXDOMAIN.
#[test]
fn bearer_token_from_a_file_and_a_wrong_one() {
    let api = Api::start_with(cluster(), |b| b.token("sesame"));
    let dir = tempfile::tempdir().unwrap();
    // As the service account's token file: no newline (kube, unlike client-go, does not trim it).
    std::fs::write(dir.path().join("token"), "sesame").unwrap();
    let kc = kubeconfig_with_token(&api, dir.path(), &format!("tokenFile: {}", dir.path().join("token").display()));
    let s = TestServer::start(&kubeadm(&kc, ""));
    let m = q(&s, "web.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["web.apps.svc.cluster.local. 30 IN A 10.96.0.10"]);
    drop(s);

    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig_with_token(&api, dir.path(), "token: wrong");
    let s = TestServer::start(&kubeadm(&kc, "        startup_timeout 500ms\n"));
    assert!(api.api.requests().iter().any(|r| r.status == 401), "the wrong token was refused");
    for name in ["web.apps.svc.cluster.local.", "nope.apps.svc.cluster.local."] {
        assert_eq!(q(&s, name, RecordType::A).response_code, ResponseCode::ServFail, "{name}");
    }
}

/// `endpoint URL` with `tls CERT KEY CACERT`, against an API server that takes client
/// certificates from its own client CA (as kube-apiserver's `--client-ca-file`): the plugin
/// authenticates with the certificate alone, no token, and checks the server against CACERT. A
/// certificate the client CA did not sign fails the handshake and leaves the plugin unready:
/// SERVFAIL, never NXDOMAIN.
#[test]
fn endpoint_with_a_tls_client_certificate_and_a_stranger_one() {
    let api = Api::start_with(cluster(), |b| b.client_certificates());
    let issued = api.api.client_certificate().expect("client certificates were asked for").clone();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, api.api.ca_pem().unwrap()).unwrap();
    let corefile = |name: &str, cert_pem: &str, key_pem: &str, extra: &str| {
        let (cert, key) = (dir.path().join(format!("{name}.crt")), dir.path().join(format!("{name}.key")));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let connection =
            format!("endpoint {}\n        tls {} {} {}\n", api.api.url(), cert.display(), key.display(), ca.display());
        kubeadm(Path::new("KUBECONFIG"), extra).replace("kubeconfig KUBECONFIG\n", &connection)
    };

    let s = TestServer::start(&corefile("issued", &issued.cert_pem, &issued.key_pem, ""));
    let m = q(&s, "web.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["web.apps.svc.cluster.local. 30 IN A 10.96.0.10"]);
    assert_nxdomain(&q(&s, "nope.apps.svc.cluster.local.", RecordType::A), "synced");
    let requests = api.api.requests();
    assert!(!requests.is_empty() && requests.iter().all(|r| r.status == 200), "{requests:?}");
    drop(s);

    let before = api.api.requests().len();
    let stranger = rcgen::generate_simple_self_signed(vec!["clusterdns".to_string()]).unwrap();
    let s = TestServer::start(&corefile(
        "stranger",
        &stranger.cert.pem(),
        &stranger.signing_key.serialize_pem(),
        "        startup_timeout 500ms\n",
    ));
    for name in ["web.apps.svc.cluster.local.", "nope.apps.svc.cluster.local."] {
        assert_eq!(q(&s, name, RecordType::A).response_code, ResponseCode::ServFail, "{name}");
    }
    assert_eq!(api.api.requests().len(), before, "no request got past the handshake");
}

/// A reload that leaves the kubernetes block's connection and filters alone keeps the watches
/// and the index: no list, answers at once with the new TTL.
#[test]
fn reload_with_the_same_connection_keeps_the_index() {
    let api = Api::start(cluster());
    let corefile = kubeadm(api.kubeconfig(), "").replace("    errors\n", "    errors\n    ready\n");
    let s = TestServer::start(&corefile);
    assert_eq!(answers(&q(&s, "web.apps.svc.cluster.local.", RecordType::A)).len(), 1);
    let lists = api.lists();
    assert!(lists >= 3, "the first sync listed");
    assert_eq!(http_get(s.http(":8181"), "/ready").0, 200);
    s.write_corefile(&corefile.replace("ttl 30", "ttl 10"));
    assert!(s.reload().unwrap(), "reloaded");
    // Ready at once: the kept watches have synced already.
    assert_eq!(http_get(s.http(":8181"), "/ready").0, 200, "/ready after the reload");
    assert_eq!(
        answers(&q(&s, "web.apps.svc.cluster.local.", RecordType::A)),
        ["web.apps.svc.cluster.local. 10 IN A 10.96.0.10"]
    );
    assert_eq!(api.lists(), lists, "no relist: {:?}", api.api.requests());
}

/// A reload that changes the watches (here `namespaces`) builds a new index aside, and swaps it
/// in only once it has synced: the first answers after the reload are already the new ones.
#[test]
fn reload_with_new_filters_swaps_once_synced() {
    let api = Api::start(cluster());
    api.apply(service("other", "web", "10.96.1.10", &[("http", 80, "TCP")]));
    let s = serve(&api);
    let lists = api.lists();
    // Slow enough that an unsynced swap would be seen.
    api.api.set_latency(Duration::from_millis(300));
    s.write_corefile(&kubeadm(api.kubeconfig(), "        namespaces other\n"));
    assert!(s.reload().unwrap(), "reloaded");
    assert!(api.lists() > lists, "the new filters listed");
    let m = q(&s, "web.other.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["web.other.svc.cluster.local. 30 IN A 10.96.1.10"]);
    assert_nxdomain(&q(&s, "web.apps.svc.cluster.local.", RecordType::A), "a filtered-out namespace");
    api.api.set_latency(Duration::ZERO);
}

/// 2,000 services created at once all resolve.
#[test]
fn two_thousand_services_created_at_once_all_resolve() {
    let api = Api::start(cluster());
    let s = serve(&api);
    let batch: Vec<ClusterObject> = (0..2000)
        .map(|i| {
            service("apps", &format!("bulk-{i}"), &format!("10.97.{}.{}", i / 250, i % 250 + 1), &[("http", 80, "TCP")])
        })
        .collect();
    api.api.apply_batch(batch).unwrap();
    until_rcode(&s, "bulk-1999.apps.svc.cluster.local.", RecordType::A, ResponseCode::NoError);
    for i in (0..2000).step_by(7) {
        let m = q(&s, &format!("bulk-{i}.apps.svc.cluster.local."), RecordType::A);
        assert_eq!(
            answers(&m),
            [format!("bulk-{i}.apps.svc.cluster.local. 30 IN A 10.97.{}.{}", i / 250, i % 250 + 1)],
            "bulk-{i}"
        );
    }
}

/// A proxy that drops `sendInitialEvents` never sends the initial-events-end bookmark; kube's
/// watcher would wait for it forever. The plugin falls back to paginated lists and syncs.
#[test]
fn streaming_lists_ignored_by_a_proxy_still_sync() {
    let api = Api::start(cluster());
    api.api.set_streaming_lists(StreamingLists::Ignore);
    let s = TestServer::start(&kubeadm(api.kubeconfig(), "        startup_timeout 10s\n"));
    let m = q(&s, "web.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["web.apps.svc.cluster.local. 30 IN A 10.96.0.10"]);
    assert_nxdomain(&q(&s, "nope.apps.svc.cluster.local.", RecordType::A), "synced");
}

/// Watches dropped cleanly and cut mid-stream resume, and changes made meanwhile arrive.
#[test]
fn dropped_and_broken_watches_resume() {
    let api = Api::start(cluster());
    let s = serve(&api);
    api.api.drop_watches();
    api.apply(service("apps", "after-drop", "10.96.0.61", &[("http", 80, "TCP")]));
    until_rcode(&s, "after-drop.apps.svc.cluster.local.", RecordType::A, ResponseCode::NoError);
    api.api.break_watches();
    api.apply(service("apps", "after-break", "10.96.0.62", &[("http", 80, "TCP")]));
    api.apply(slice("apps", "db", "db-1", &[("10.1.1.7", None, Some(true))], &[("pg", 5432, "TCP")]));
    until_rcode(&s, "after-break.apps.svc.cluster.local.", RecordType::A, ResponseCode::NoError);
    until_answers(&s, "db.apps.svc.cluster.local.", RecordType::A, &["db.apps.svc.cluster.local. 30 IN A 10.1.1.7"]);
    assert_eq!(answers(&q(&s, "web.apps.svc.cluster.local.", RecordType::A)).len(), 1);
}

/// coredns#6518: a headless Service of a large StatefulSet, thousands of endpoints over many
/// slices rewritten continuously, answered NXDOMAIN now and then. Here it never is.
#[test]
fn a_large_headless_service_with_slices_rewritten_never_answers_nxdomain() {
    const SLICES: usize = 30;
    const PER_SLICE: usize = 100;
    let big = |round: usize| -> Vec<ClusterObject> {
        (0..SLICES)
            .map(|n| {
                let ips: Vec<String> =
                    (0..PER_SLICE).map(|i| format!("10.{}.{}.{}", 100 + round % 2, n, i + 1)).collect();
                let eps: Vec<(&str, Option<&str>, Option<bool>)> =
                    ips.iter().map(|ip| (ip.as_str(), None, Some(true))).collect();
                slice("apps", "big", &format!("big-{n}"), &eps, &[("pg", 5432, "TCP")])
            })
            .collect()
    };
    let mut objects = cluster();
    objects.push(service("apps", "big", "None", &[("pg", 5432, "TCP")]));
    objects.extend(big(0));
    let api = Api::start(objects);
    let s = serve(&api);
    let m = query_tcp(s.addr(), "big.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(m.answers.len(), SLICES * PER_SLICE);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Every slice rewritten with new addresses, one at a time, for a bounded while.
            for round in 1..=6 {
                for (n, slice) in big(round).into_iter().enumerate() {
                    api.api.apply(slice).unwrap();
                    if n % 10 == 0 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mut asked = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && asked < 2000 {
            let m = query_udp(s.addr(), "big.apps.svc.cluster.local.", RecordType::A);
            assert_eq!(m.response_code, ResponseCode::NoError, "query {asked}");
            asked += 1;
        }
    });
    // The last round's addresses are all there.
    let m = query_tcp(s.addr(), "big.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(m.answers.len(), SLICES * PER_SLICE);
}

/// Sets `labels` on an object, and a targetRef pod name on every endpoint of a slice when `pod`
/// is given.
fn relabel(o: impl serde::Serialize, labels: &[(&str, &str)], pod: Option<&str>) -> ClusterObject {
    let mut v = serde_json::to_value(&o).unwrap();
    let meta = v["metadata"].as_object_mut().unwrap();
    let mut all = meta.get("labels").cloned().unwrap_or_else(|| serde_json::json!({}));
    for (k, val) in labels {
        all[*k] = serde_json::json!(val);
    }
    meta.insert("labels".into(), all);
    if let Some(pod) = pod {
        for ep in v["endpoints"].as_array_mut().unwrap() {
            ep["targetRef"] = serde_json::json!({"kind": "Pod", "name": pod});
        }
    }
    ClusterObject::from_json(v).unwrap()
}

fn labelled_namespace(name: &str, labels: &[(&str, &str)]) -> ClusterObject {
    relabel(Namespace { metadata: meta(None, name), ..Default::default() }, labels, None)
}

#[test]
fn filters_and_naming_options_namespace_labels_labels_endpoint_pod_names_ignore_empty_service() {
    let yes = [("app", "yes")];
    let objects = vec![
        labelled_namespace("apps", &[("team", "a")]),
        labelled_namespace("hidden", &[("team", "b")]),
        relabel(svc("apps", "lab", "10.96.0.30", &[("http", 80, "TCP")]), &yes, None),
        relabel(eps("apps", "lab", "lab-1", &[("10.1.5.1", None, Some(true))], &[]), &yes, None),
        relabel(svc("apps", "idle", "10.96.0.31", &[("http", 80, "TCP")]), &yes, None),
        service("apps", "unlabelled", "10.96.0.32", &[("http", 80, "TCP")]),
        relabel(svc("hidden", "lab", "10.96.0.33", &[("http", 80, "TCP")]), &yes, None),
        relabel(svc("apps", "sts", "None", &[("pg", 5432, "TCP")]), &yes, None),
        relabel(
            eps("apps", "sts", "sts-1", &[("10.1.5.9", None, Some(true))], &[("pg", 5432, "TCP")]),
            &yes,
            Some("sts-abc"),
        ),
    ];
    let api = Api::start(objects);
    let kc = api.kubeconfig().display().to_string();
    let s = TestServer::start(&format!(
        "cluster.local:53 {{\n    kubernetes {{\n        kubeconfig {kc}\n        namespace_labels team=a\n        \
         labels app=yes\n        endpoint_pod_names\n        ignore empty_service\n    }}\n}}\n"
    ));
    assert_eq!(
        answers(&q(&s, "lab.apps.svc.cluster.local.", RecordType::A)),
        ["lab.apps.svc.cluster.local. 5 IN A 10.96.0.30"]
    );
    assert_nxdomain(&q(&s, "unlabelled.apps.svc.cluster.local.", RecordType::A), "labels filter it out");
    assert_nxdomain(&q(&s, "lab.hidden.svc.cluster.local.", RecordType::A), "namespace_labels filter it out");
    assert_nxdomain(&q(&s, "hidden.svc.cluster.local.", RecordType::A), "a filtered-out namespace");
    assert_nxdomain(&q(&s, "idle.apps.svc.cluster.local.", RecordType::A), "ignore empty_service");
    let m = q(&s, "sts.apps.svc.cluster.local.", RecordType::SRV);
    assert_eq!(answers(&m), ["sts.apps.svc.cluster.local. 5 IN SRV 0 100 5432 sts-abc.sts.apps.svc.cluster.local."]);
    let m = q(&s, "sts-abc.sts.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["sts-abc.sts.apps.svc.cluster.local. 5 IN A 10.1.5.9"]);
    drop(s);
    // Without the options: the same cluster answers differently.
    let s =
        TestServer::start(&format!("cluster.local:53 {{\n    kubernetes {{\n        kubeconfig {kc}\n    }}\n}}\n"));
    assert_eq!(answers(&q(&s, "unlabelled.apps.svc.cluster.local.", RecordType::A)).len(), 1);
    assert_eq!(answers(&q(&s, "lab.hidden.svc.cluster.local.", RecordType::A)).len(), 1);
    assert_eq!(answers(&q(&s, "idle.apps.svc.cluster.local.", RecordType::A)).len(), 1);
    let m = q(&s, "10-1-5-9.sts.apps.svc.cluster.local.", RecordType::A);
    assert_eq!(answers(&m), ["10-1-5-9.sts.apps.svc.cluster.local. 5 IN A 10.1.5.9"]);
}

#[test]
fn noendpoints_dual_stack_cluster_ips_and_publish_not_ready_addresses() {
    let mut dual = svc("apps", "dual", "10.96.0.40", &[("http", 80, "TCP")]);
    dual.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.0.40".into(), "fd00::40".into()]);
    let mut publish = svc("apps", "pub", "None", &[("pg", 5432, "TCP")]);
    publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let mut objects = cluster();
    objects.push(dual.into());
    objects.push(publish.into());
    objects.push(slice("apps", "pub", "pub-1", &[("10.1.6.1", None, Some(false))], &[("pg", 5432, "TCP")]));
    let api = Api::start(objects);
    let s = serve(&api);
    assert_eq!(
        answers(&q(&s, "dual.apps.svc.cluster.local.", RecordType::A)),
        ["dual.apps.svc.cluster.local. 30 IN A 10.96.0.40"]
    );
    assert_eq!(
        answers(&q(&s, "dual.apps.svc.cluster.local.", RecordType::AAAA)),
        ["dual.apps.svc.cluster.local. 30 IN AAAA fd00::40"]
    );
    assert_eq!(
        answers(&q(&s, "pub.apps.svc.cluster.local.", RecordType::A)),
        ["pub.apps.svc.cluster.local. 30 IN A 10.1.6.1"]
    );
    drop(s);
    let slice_requests = || api.api.requests().iter().filter(|r| r.path.contains("endpointslices")).count();
    let before = slice_requests();
    let kc = api.kubeconfig().display().to_string();
    let s = TestServer::start(&format!(
        "cluster.local:53 {{\n    kubernetes {{\n        kubeconfig {kc}\n        noendpoints\n    }}\n}}\n"
    ));
    assert_eq!(answers(&q(&s, "web.apps.svc.cluster.local.", RecordType::A)).len(), 1);
    assert_nxdomain(&q(&s, "db.apps.svc.cluster.local.", RecordType::A), "noendpoints: no headless answers");
    assert_eq!(slice_requests(), before, "noendpoints: EndpointSlices are not watched");
}

/// The service account's token rotates: the kubelet writes a new one to the file and the old one
/// is revoked. The plugin re-reads the file (kube-rs does at least once a minute), so the
/// watches recover without a restart; cached answers keep coming meanwhile. Slow by nature
/// (about a minute): the re-read interval is kube-rs's.
#[test]
fn a_rotated_token_file_is_read_again() {
    let api = Api::start_with(cluster(), |b| b.token("first"));
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first").unwrap();
    let kc = kubeconfig_with_token(&api, dir.path(), &format!("tokenFile: {}", token.display()));
    let s = TestServer::start(&kubeadm(&kc, ""));
    assert_eq!(answers(&q(&s, "web.apps.svc.cluster.local.", RecordType::A)).len(), 1);

    std::fs::write(&token, "second").unwrap();
    api.api.set_token("second");
    api.api.break_watches();
    api.apply(service("apps", "rotated", "10.96.0.88", &[("http", 80, "TCP")]));
    let start = Instant::now();
    let mut refused = false;
    loop {
        assert!(start.elapsed() < Duration::from_secs(100), "the new token was never used");
        let m = q(&s, "web.apps.svc.cluster.local.", RecordType::A);
        assert_eq!(m.answers.len(), 1, "cached answers keep coming");
        refused |= api.api.requests().iter().any(|r| r.status == 401);
        if q(&s, "rotated.apps.svc.cluster.local.", RecordType::A).response_code == ResponseCode::NoError {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(refused, "the old token was refused before the file was read again");
}

/// `-validate` checks the kubernetes block without contacting anything (no API server, no
/// service account, a kubeconfig that does not exist), and names every error's position.
#[test]
fn validate_checks_the_block_without_contacting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let kubeadm = ".:53 {\n    errors\n    health {\n        lameduck 5s\n    }\n    ready\n    \
                   kubernetes cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n        \
                   fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }\n    prometheus :9153\n    \
                   reload\n    loadbalance\n}\nother.local {\n    kubernetes {\n        kubeconfig /nonexistent/kubeconfig\n    }\n}\n";
    std::fs::write(dir.path().join("Corefile"), kubeadm).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterdns"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(run(&["-validate"]), (Some(0), "Corefile: valid, 2 server block(s)\n".into(), String::new()));

    let broken = "a.local {\n    kubernetes {\n        upstream 10.0.0.1\n    }\n}\nb.local {\n    kubernetes {\n        \
                  resyncperiod 30s\n    }\n}\nc.local {\n    kubernetes {\n        multicluster clusterset.local\n    }\n}\n\
                  d.local {\n    kubernetes {\n        zonal\n    }\n}\ne.local {\n    kubernetes {\n        ttl 3601\n    }\n}\n";
    std::fs::write(dir.path().join("broken"), broken).unwrap();
    let (code, out, err) = run(&["-validate", "-conf", "broken"]);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert_eq!(
        err,
        "broken:3:9: kubernetes: 'upstream' was removed in CoreDNS 1.7.0; remove it\n\
         broken:8:9: kubernetes: 'resyncperiod' was removed in CoreDNS 1.7.0; remove it\n\
         broken:13:9: kubernetes: 'multicluster' is not supported by clusterdns yet\n\
         broken:18:9: kubernetes: 'zonal' is not supported by clusterdns yet\n\
         broken:23:13: kubernetes: ttl must be in range [0, 3600]: 3601\n"
    );
}

/// The value of the series `name{labels}` (labels as written in the exposition), if present.
fn metric(s: &TestServer, series: &str) -> Option<f64> {
    s.metrics().lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// What a dashboard sees: objects per kind, API requests by code, and, in an outage, failed
/// requests counted and the silence growing.
#[test]
fn metrics_show_the_index_and_an_outage() {
    let api = Api::start(cluster());
    let s = serve(&api);
    assert_eq!(metric(&s, "coredns_kubernetes_objects{kind=\"services\"}"), Some(5.0), "{}", s.metrics());
    assert_eq!(metric(&s, "coredns_kubernetes_objects{kind=\"endpointslices\"}"), Some(4.0));
    assert_eq!(metric(&s, "coredns_kubernetes_objects{kind=\"namespaces\"}"), Some(3.0));
    let host = api.api.url().trim_start_matches("https://").trim_end_matches('/').to_string();
    let ok = format!("coredns_kubernetes_rest_client_requests_total{{code=\"200\",host=\"{host}\",method=\"GET\"}}");
    assert!(metric(&s, &ok).is_some_and(|n| n >= 3.0), "{}", s.metrics());
    let restarts =
        |s: &TestServer| metric(s, "coredns_kubernetes_watch_restarts_total{kind=\"services\"}").unwrap_or(0.0);
    let before = restarts(&s);

    api.api.pause(PauseMode::Unavailable);
    api.api.break_watches();
    let counted = eventually(Duration::from_secs(5), || (restarts(&s) > before).then_some(()));
    assert!(counted.is_some(), "failed requests are counted:\n{}", s.metrics());
    // Within about two seconds: the gauge is updated every second, and a 503 is no news.
    let silence = eventually(Duration::from_millis(2500), || {
        metric(&s, "coredns_kubernetes_seconds_since_last_event{kind=\"services\"}").filter(|&t| t >= 1.0)
    });
    assert!(silence.is_some(), "the silence grows:\n{}", s.metrics());
    assert!(s.metrics().contains("coredns_kubernetes_rest_client_requests_total{code=\"503\""), "{}", s.metrics());
    api.api.resume();
}

/// `coredns_kubernetes_dns_programming_duration_seconds`: an EndpointSlice change carrying
/// kube-controller-manager's trigger time is measured, for headless services without a selector
/// too (CoreDNS skips those).
#[test]
fn programming_duration_is_measured_for_every_service_kind() {
    let api = Api::start(cluster());
    let s = serve(&api);
    let count = |kind: &str| {
        metric(&s, &format!("coredns_kubernetes_dns_programming_duration_seconds_count{{service_kind=\"{kind}\"}}"))
            .unwrap_or(0.0)
    };
    // Two seconds ago, whole seconds as the annotation has them.
    let at = std::time::SystemTime::now() - Duration::from_secs(2);
    let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let stamp = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60);
    for (svc, slice_name, ip) in [("db", "db-1", "10.1.1.5"), ("web", "web-abc", "10.1.0.5")] {
        let mut e = eps("apps", svc, slice_name, &[(ip, None, Some(true))], &[("pg", 5432, "TCP")]);
        e.metadata.annotations =
            Some(BTreeMap::from([("endpoints.kubernetes.io/last-change-trigger-time".to_string(), stamp.clone())]));
        api.apply(e);
    }
    let seen = eventually(Duration::from_secs(5), || {
        (count("headless_without_selector") >= 1.0 && count("cluster_ip") >= 1.0).then_some(())
    });
    assert!(seen.is_some(), "{stamp}:\n{}", s.metrics());
    let sum =
        metric(&s, "coredns_kubernetes_dns_programming_duration_seconds_sum{service_kind=\"cluster_ip\"}").unwrap();
    assert!((1.0..60.0).contains(&sum), "about two seconds: {sum}");
}
