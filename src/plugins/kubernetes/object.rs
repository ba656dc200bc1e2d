//! Kubernetes objects as the plugin keeps them: trimmed at the edge.
//!
//! Every object a watch delivers is decoded straight from the API's JSON into the few fields DNS
//! needs; serde skips the rest without allocating it (a Pod's spec, status conditions, managed
//! fields, `last-applied-configuration` annotations). What is kept is owned and small, and each
//! field below says why it exists: every field costs memory in every cluster, and CoreDNS ran out
//! of memory at 100,000 endpoints (coredns#2095).
//!
//! The `*Object` types are what kube-runtime's watcher hands over: the trimmed data plus the
//! [`ObjectMeta`] kube needs to follow a watch (name, namespace and resourceVersion only). The
//! index ([`super::index`]) takes the trimmed data and drops the rest.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::SystemTime;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::core::ObjectMeta;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::dns::{MAX_LABEL_LEN, Name};

/// The label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The annotation the EndpointSlice controller stamps with the time of the change that made it
/// rewrite the slice: the start of the DNS programming latency SLI.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// The kinds of object watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    EndpointSlice,
    Namespace,
    Pod,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Service, Kind::EndpointSlice, Kind::Namespace, Kind::Pod];

    /// The API's plural resource name: the `kind` label of our metrics and the last segment of
    /// the collection's path.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
        }
    }

    /// A slot in per-kind arrays.
    pub fn slot(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Service => "Services",
            Kind::EndpointSlice => "EndpointSlices",
            Kind::Namespace => "Namespaces",
            Kind::Pod => "Pods",
        })
    }
}

// ---------------------------------------------------------------------------------------------
// What is kept.

/// A Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `spec.clusterIPs` (or `spec.clusterIP`): the A/AAAA answers and PTR records of a ClusterIP
    /// service (spec 2.3.1, 2.3.3). Empty for headless and ExternalName services.
    pub cluster_ips: ClusterIps,
    /// What the name answers with.
    pub kind: ServiceKind,
    /// `spec.ports`: the SRV records of a ClusterIP service (spec 2.3.2), and which
    /// `_port._proto` names exist. Shared between services with the same ports.
    pub ports: Vec<Port>,
    /// `spec.publishNotReadyAddresses`: not-ready endpoints count as ready (spec 2.1 _ready_).
    pub publish_not_ready: bool,
    /// Whether `spec.selector` is set: the `service_kind` label of the DNS programming latency
    /// metric tells headless services with and without a selector apart.
    pub has_selector: bool,
}

/// The addresses of a ClusterIP service: at most one per family, in the order the API gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterIps {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    /// The IPv6 address was listed first (`ipFamilies: [IPv6, IPv4]`).
    pub v6_first: bool,
}

impl ClusterIps {
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }

    /// The addresses, primary family first.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.v4.map(IpAddr::V4);
        let v6 = self.v6.map(IpAddr::V6);
        let (a, b) = if self.v6_first { (v6, v4) } else { (v4, v6) };
        a.into_iter().chain(b)
    }

    fn push(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(ip) if self.v4.is_none() => self.v4 = Some(ip),
            IpAddr::V6(ip) if self.v6.is_none() => {
                self.v6_first = self.v4.is_none();
                self.v6 = Some(ip);
            }
            // A second address of one family: the API forbids it; the first wins.
            _ => {}
        }
    }
}

/// What a service name answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A virtual IP (spec 2.3): `cluster_ips`.
    ClusterIp,
    /// No virtual IP (`clusterIP: None`, spec 2.4): the ready endpoints.
    Headless,
    /// `type: ExternalName` (spec 2.5): a CNAME to this name.
    ExternalName(Box<Name>),
    /// `type: ExternalName` whose `externalName` is an IP address, which CoreDNS answers as an
    /// address record rather than a CNAME.
    ExternalIp(IpAddr),
}

/// A port of a Service or an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Port {
    /// The port's name, lowercase; empty for an unnamed port, which has no `_port._proto` name
    /// (spec 2.3.2: "unnamed ports do not have an SRV record").
    pub name: Box<str>,
    /// The SRV record's port. `None` for an EndpointSlice port without a number ("all ports"),
    /// which has no SRV record, as in CoreDNS.
    pub number: Option<u16>,
    /// The `_proto` label.
    pub protocol: Protocol,
}

/// A port's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The `_proto` label, without the underscore.
    pub fn label(self) -> &'static [u8] {
        match self {
            Protocol::Tcp => b"tcp",
            Protocol::Udp => b"udp",
            Protocol::Sctp => b"sctp",
        }
    }

    fn parse(s: Option<&str>) -> Protocol {
        match s {
            Some(p) if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
            Some(p) if p.eq_ignore_ascii_case("sctp") => Protocol::Sctp,
            // The API's default.
            _ => Protocol::Tcp,
        }
    }
}

/// An EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The `kubernetes.io/service-name` label: the service whose endpoints these are. A slice
    /// without it belongs to no service and is not kept.
    pub service: Box<str>,
    /// `ports`: the SRV records of the endpoints (spec 2.4.2).
    pub ports: Vec<Port>,
    /// `endpoints`, one entry per address.
    pub endpoints: Vec<Endpoint>,
    /// The `endpoints.kubernetes.io/last-change-trigger-time` annotation: when the change that
    /// made the controller write this slice happened, for the DNS programming latency metric.
    /// Not stored in the index.
    pub trigger: Option<SystemTime>,
}

/// One address of an EndpointSlice endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The address: the A/AAAA answers of a headless service (spec 2.4.1) and its PTR (2.4.3).
    pub ip: IpAddr,
    /// `conditions.ready` (unset counts as ready, as the API documents): only ready endpoints
    /// are answered, unless the service publishes not-ready addresses.
    pub ready: bool,
    /// `hostname`: the endpoint's name, `<hostname>.<service>.<ns>.svc.<zone>` (spec 2.4.1
    /// _hostname_). Kept only when it is one valid DNS label.
    pub hostname: Option<Box<str>>,
    /// `targetRef.name`, the pod's name, which names the endpoint instead of its dashed address
    /// when it has no hostname and `endpoint_pod_names` is set (the index keeps it only then).
    /// Kept only when it is one valid DNS label (CoreDNS's "no longer than 63").
    pub pod_name: Option<Box<str>>,
}

/// A Pod, for `pods verified` (and autopath): which namespaces have a pod with an address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pod {
    /// `status.podIPs` (or `status.podIP`): every address, both families on a dual-stack
    /// cluster (CoreDNS indexes `podIP` only, so it knows a pod's first address alone).
    pub ips: ClusterIps,
}

// ---------------------------------------------------------------------------------------------
// What the watches deliver.

/// The object's identity and resourceVersion, which is all kube's watcher reads of an object.
fn object_meta(m: &RawMeta) -> ObjectMeta {
    ObjectMeta {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        resource_version: m.resource_version.clone(),
        ..ObjectMeta::default()
    }
}

macro_rules! resource {
    ($ty:ident, $kind:literal, $group:literal, $version:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;
            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.meta
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.meta
            }
        }
    };
}

/// A Service as a watch delivers it.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "RawService")]
pub struct ServiceObject {
    pub meta: ObjectMeta,
    pub service: Service,
}
resource!(ServiceObject, "Service", "", "v1", "services", NamespaceResourceScope);

/// An EndpointSlice as a watch delivers it.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "RawSlice")]
pub struct SliceObject {
    pub meta: ObjectMeta,
    /// `None` for a slice without the service-name label.
    pub slice: Option<Slice>,
}
resource!(SliceObject, "EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", NamespaceResourceScope);

/// A Pod as a watch delivers it.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "RawPod")]
pub struct PodObject {
    pub meta: ObjectMeta,
    /// `None` for a pod that answers no DNS name: terminating (`deletionTimestamp` set), in a
    /// final phase, or without an address yet.
    pub pod: Option<Pod>,
}
resource!(PodObject, "Pod", "", "v1", "pods", NamespaceResourceScope);

/// A Namespace as a watch delivers it: its name is all that matters.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "RawNamespace")]
pub struct NamespaceObject {
    pub meta: ObjectMeta,
}
resource!(NamespaceObject, "Namespace", "", "v1", "namespaces", ClusterResourceScope);

/// The parts of any object's metadata read.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawMeta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    labels: Option<Picked<ServiceNameKey>>,
    annotations: Option<Picked<TriggerTimeKey>>,
    deletion_timestamp: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawService {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    spec: RawServiceSpec,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawServiceSpec {
    #[serde(rename = "type")]
    type_: Option<String>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
    external_name: Option<String>,
    ports: Option<Vec<RawPort>>,
    publish_not_ready_addresses: Option<bool>,
    selector: Option<NonEmpty>,
}

#[derive(Deserialize)]
struct RawPort {
    name: Option<String>,
    port: Option<i64>,
    protocol: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSlice {
    #[serde(default)]
    metadata: RawMeta,
    address_type: Option<String>,
    #[serde(default)]
    endpoints: Option<Vec<RawEndpoint>>,
    #[serde(default)]
    ports: Option<Vec<RawPort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEndpoint {
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    conditions: Option<RawConditions>,
    hostname: Option<String>,
    target_ref: Option<RawTargetRef>,
}

#[derive(Deserialize)]
struct RawConditions {
    ready: Option<bool>,
}

#[derive(Deserialize)]
struct RawTargetRef {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawPod {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    status: Option<RawPodStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPodStatus {
    phase: Option<String>,
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<RawPodIp>>,
}

#[derive(Deserialize)]
struct RawPodIp {
    ip: Option<String>,
}

#[derive(Deserialize)]
struct RawNamespace {
    #[serde(default)]
    metadata: RawMeta,
}

impl From<RawService> for ServiceObject {
    fn from(raw: RawService) -> ServiceObject {
        let spec = raw.spec;
        let mut cluster_ips = ClusterIps::default();
        let mut headless = false;
        let listed = spec.cluster_ips.filter(|v| !v.is_empty()).or_else(|| spec.cluster_ip.map(|ip| vec![ip]));
        for ip in listed.iter().flatten() {
            if ip == "None" {
                headless = true;
            } else if let Ok(ip) = ip.parse::<IpAddr>() {
                cluster_ips.push(ip);
            }
        }
        let kind = match (spec.type_.as_deref(), spec.external_name) {
            (Some("ExternalName"), Some(target)) => match target.parse::<IpAddr>() {
                Ok(ip) => ServiceKind::ExternalIp(ip),
                Err(_) => match Name::parse(target.trim_end_matches('.')) {
                    Ok(name) if !name.is_root() => ServiceKind::ExternalName(Box::new(name)),
                    // Not a name: the service answers nothing.
                    _ => ServiceKind::ClusterIp,
                },
            },
            _ if headless => ServiceKind::Headless,
            _ => ServiceKind::ClusterIp,
        };
        if !matches!(kind, ServiceKind::ClusterIp) {
            cluster_ips = ClusterIps::default();
        }
        let service = Service {
            cluster_ips,
            kind,
            ports: spec.ports.unwrap_or_default().into_iter().filter_map(RawPort::trim).collect(),
            publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
            has_selector: spec.selector.is_some_and(|s| s.0),
        };
        ServiceObject { meta: object_meta(&raw.metadata), service }
    }
}

impl RawPort {
    /// The port, or `None` for a number out of range (which the API would not accept).
    fn trim(self) -> Option<Port> {
        let number = match self.port {
            None => None,
            Some(n) => Some(u16::try_from(n).ok()?),
        };
        let name = self.name.unwrap_or_default().to_ascii_lowercase().into_boxed_str();
        Some(Port { name, number, protocol: Protocol::parse(self.protocol.as_deref()) })
    }
}

impl From<RawSlice> for SliceObject {
    fn from(raw: RawSlice) -> SliceObject {
        let meta = object_meta(&raw.metadata);
        let Some(service) = raw.metadata.labels.and_then(|l| l.0).filter(|s| !s.is_empty()) else {
            return SliceObject { meta, slice: None };
        };
        // FQDN slices hold names, not addresses; they answer nothing here (the addresses below
        // would not parse anyway).
        let fqdn = raw.address_type.as_deref() == Some("FQDN");
        let mut endpoints = Vec::new();
        for ep in raw.endpoints.unwrap_or_default() {
            if fqdn {
                break;
            }
            let ready = ep.conditions.and_then(|c| c.ready).unwrap_or(true);
            let label = |n: String| is_label(&n).then(|| n.to_ascii_lowercase().into_boxed_str());
            let hostname = ep.hostname.and_then(label);
            let pod_name = ep.target_ref.and_then(|t| t.name).and_then(label);
            for addr in &ep.addresses {
                if let Ok(ip) = addr.parse::<IpAddr>() {
                    endpoints.push(Endpoint { ip, ready, hostname: hostname.clone(), pod_name: pod_name.clone() });
                }
            }
        }
        let slice = Slice {
            service: service.into_boxed_str(),
            ports: raw.ports.unwrap_or_default().into_iter().filter_map(RawPort::trim).collect(),
            endpoints,
            trigger: raw.metadata.annotations.and_then(|a| a.0).and_then(|t| parse_time(&t)),
        };
        SliceObject { meta, slice: Some(slice) }
    }
}

impl From<RawPod> for PodObject {
    fn from(raw: RawPod) -> PodObject {
        let meta = object_meta(&raw.metadata);
        let terminating = raw.metadata.deletion_timestamp.is_some();
        let pod = raw.status.filter(|_| !terminating).and_then(|status| {
            // The phases a pod keeps no address in; the watch's field selector leaves them
            // out too, this is for servers that ignore it.
            if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed" | "Unknown")) {
                return None;
            }
            let mut ips = ClusterIps::default();
            let listed = status.pod_ips.unwrap_or_default();
            for ip in listed.iter().filter_map(|p| p.ip.as_deref()).chain(status.pod_ip.as_deref()) {
                if let Ok(ip) = ip.parse::<IpAddr>() {
                    ips.push(ip);
                }
            }
            (!ips.is_empty()).then_some(Pod { ips })
        });
        PodObject { meta, pod }
    }
}

impl From<RawNamespace> for NamespaceObject {
    fn from(raw: RawNamespace) -> NamespaceObject {
        NamespaceObject { meta: object_meta(&raw.metadata) }
    }
}

/// Whether `s` is one DNS label (RFC 1123 letters, digits and hyphens, at most 63 bytes), as
/// the API requires of hostnames; only those can be a name's leftmost label.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An RFC 3339 time, as the API writes them.
fn parse_time(s: &str) -> Option<SystemTime> {
    let t: k8s_openapi::jiff::Timestamp = s.parse().ok()?;
    Some(SystemTime::from(t))
}

/// Whether a JSON object has at least one member (a selector that selects).
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NonEmpty, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NonEmpty, A::Error> {
                let mut any = false;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(NonEmpty(any))
            }
        }
        d.deserialize_map(V)
    }
}

/// The one key of a string map that is kept; the others are skipped unread.
trait PickKey {
    const KEY: &'static str;
}

struct ServiceNameKey;
impl PickKey for ServiceNameKey {
    const KEY: &'static str = SERVICE_NAME_LABEL;
}

struct TriggerTimeKey;
impl PickKey for TriggerTimeKey {
    const KEY: &'static str = TRIGGER_TIME_ANNOTATION;
}

/// The value of `K::KEY` in a map of strings (labels, annotations), without allocating the others.
struct Picked<K>(Option<String>, std::marker::PhantomData<K>);

impl<'de, K: PickKey> Deserialize<'de> for Picked<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Picked<K>, D::Error> {
        struct MapVisitor<K>(std::marker::PhantomData<K>);
        impl<'de, K: PickKey> Visitor<'de> for MapVisitor<K> {
            type Value = Picked<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked<K>, A::Error> {
                let mut found = None;
                while let Some(wanted) = map.next_key_seed(IsKey(K::KEY))? {
                    if wanted {
                        found = map.next_value::<Option<String>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Picked(found, std::marker::PhantomData))
            }
        }
        d.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

/// Decodes a map key into whether it is the one wanted, without keeping it.
struct IsKey(&'static str);

impl<'de> DeserializeSeed<'de> for IsKey {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsKey {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: &str) -> Service {
        serde_json::from_str::<ServiceObject>(json).unwrap().service
    }

    #[test]
    fn a_service_keeps_its_addresses_ports_and_kind() {
        let s = service(
            r#"{"metadata":{"name":"web","namespace":"apps","resourceVersion":"7",
                "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{...}"},
                "managedFields":[{"manager":"kubectl"}]},
               "spec":{"clusterIP":"10.96.0.12","clusterIPs":["fd00::12","10.96.0.12"],
                "ports":[{"name":"HTTP","port":80,"protocol":"TCP","targetPort":8080},{"port":53,"protocol":"UDP"}],
                "selector":{"app":"web"},"type":"ClusterIP"}}"#,
        );
        assert_eq!(s.kind, ServiceKind::ClusterIp);
        let ips: Vec<String> = s.cluster_ips.iter().map(|ip| ip.to_string()).collect();
        assert_eq!(ips, ["fd00::12", "10.96.0.12"]);
        assert_eq!(s.ports.len(), 2);
        assert_eq!((&*s.ports[0].name, s.ports[0].number, s.ports[0].protocol), ("http", Some(80), Protocol::Tcp));
        assert_eq!((&*s.ports[1].name, s.ports[1].protocol), ("", Protocol::Udp));
        assert!(s.has_selector && !s.publish_not_ready);
        let o: ServiceObject =
            serde_json::from_str(r#"{"metadata":{"name":"web","namespace":"apps","resourceVersion":"7"}}"#).unwrap();
        assert_eq!(o.meta.resource_version.as_deref(), Some("7"));
    }

    #[test]
    fn headless_and_external_name_services() {
        let s = service(r#"{"spec":{"clusterIP":"None","clusterIPs":["None"],"selector":{}}}"#);
        assert_eq!(s.kind, ServiceKind::Headless);
        assert!(s.cluster_ips.is_empty() && !s.has_selector);
        let s = service(r#"{"spec":{"type":"ExternalName","externalName":"www.example.com."}}"#);
        assert_eq!(s.kind, ServiceKind::ExternalName(Box::new(Name::parse("www.example.com").unwrap())));
        let s = service(r#"{"spec":{"type":"ExternalName","externalName":"192.0.2.1"}}"#);
        assert_eq!(s.kind, ServiceKind::ExternalIp("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn a_slice_keeps_addresses_readiness_and_names() {
        let o: SliceObject = serde_json::from_str(
            r#"{"metadata":{"name":"web-abc","namespace":"apps","resourceVersion":"9",
                 "labels":{"app":"web","kubernetes.io/service-name":"web"},
                 "annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2024-01-01T00:00:01Z"}},
                "addressType":"IPv4",
                "endpoints":[{"addresses":["10.1.0.1"],"conditions":{"ready":true},"hostname":"web-0",
                              "targetRef":{"kind":"Pod","name":"web-0"}},
                             {"addresses":["10.1.0.2"],"conditions":{"ready":false},"targetRef":{"name":"web-7d9"}},
                             {"addresses":["10.1.0.3"],"hostname":"not.a.label"}],
                "ports":[{"name":"http","port":8080,"protocol":"TCP"},{"name":"all"}]}"#,
        )
        .unwrap();
        let s = o.slice.unwrap();
        assert_eq!(&*s.service, "web");
        let eps: Vec<(String, bool, Option<&str>, Option<&str>)> = s
            .endpoints
            .iter()
            .map(|e| (e.ip.to_string(), e.ready, e.hostname.as_deref(), e.pod_name.as_deref()))
            .collect();
        assert_eq!(
            eps,
            [
                ("10.1.0.1".into(), true, Some("web-0"), Some("web-0")),
                ("10.1.0.2".into(), false, None, Some("web-7d9")),
                ("10.1.0.3".into(), true, None, None)
            ]
        );
        assert_eq!(s.ports[1].number, None);
        assert_eq!(s.trigger, Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_704_067_201)));
        let o: SliceObject =
            serde_json::from_str(r#"{"metadata":{"name":"x","labels":null},"endpoints":null}"#).unwrap();
        assert!(o.slice.is_none());
    }

    #[test]
    fn a_pod_keeps_every_address_unless_it_is_gone() {
        let pod = |json: &str| serde_json::from_str::<PodObject>(json).unwrap().pod;
        let p = pod(r#"{"metadata":{"name":"p"},"status":{"phase":"Running","podIP":"10.1.0.5",
                         "podIPs":[{"ip":"10.1.0.5"},{"ip":"fd00::5"}]}}"#)
        .unwrap();
        assert_eq!(p.ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(), ["10.1.0.5", "fd00::5"]);
        assert!(
            pod(r#"{"metadata":{"deletionTimestamp":"2024-01-01T00:00:00Z"},"status":{"podIP":"10.1.0.5"}}"#).is_none()
        );
        assert!(pod(r#"{"status":{"phase":"Succeeded","podIP":"10.1.0.5"}}"#).is_none());
        assert!(pod(r#"{"status":{"phase":"Pending"}}"#).is_none());
    }

    #[test]
    fn labels_are_single_dns_labels() {
        assert!(is_label("web-0") && is_label(&"a".repeat(63)));
        for bad in ["", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_label(bad), "{bad}");
        }
    }
}
