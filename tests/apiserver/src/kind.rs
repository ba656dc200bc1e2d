//! The resources the server holds, and what the API says about each of them.

use std::fmt;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::{ListableResource, Resource};

/// A kind of object the server serves: the ones a cluster DNS watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// core/v1 Namespace (cluster-scoped).
    Namespace,
    /// core/v1 Service.
    Service,
    /// core/v1 Pod.
    Pod,
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
}

/// What the API says about a kind: its names, where it lives and which field selectors it takes.
#[derive(Debug)]
pub struct KindInfo {
    /// `kind`, e.g. `Service`.
    pub kind: &'static str,
    /// The `kind` of its list, e.g. `ServiceList`.
    pub list_kind: &'static str,
    /// `apiVersion`, e.g. `v1` or `discovery.k8s.io/v1`.
    pub api_version: &'static str,
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// The resource name in URLs, e.g. `services`.
    pub plural: &'static str,
    /// Singular resource name, e.g. `service`.
    pub singular: &'static str,
    /// Short names kubectl accepts, e.g. `svc`.
    pub short_names: &'static [&'static str],
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// The field selector labels kube-apiserver accepts for this resource besides
    /// `metadata.name` (and `metadata.namespace` for namespaced ones).
    pub fields: &'static [&'static str],
}

macro_rules! kind_info {
    ($ty:ty, $singular:literal, $short:expr, $namespaced:literal, $fields:expr) => {
        KindInfo {
            kind: <$ty as Resource>::KIND,
            list_kind: <$ty as ListableResource>::LIST_KIND,
            api_version: <$ty as Resource>::API_VERSION,
            group: <$ty as Resource>::GROUP,
            version: <$ty as Resource>::VERSION,
            plural: <$ty as Resource>::URL_PATH_SEGMENT,
            singular: $singular,
            short_names: $short,
            namespaced: $namespaced,
            fields: $fields,
        }
    };
}

// The field labels are the ones kube-apiserver's registries declare selectable (pod, service and
// namespace strategies); EndpointSlices have only the generic metadata ones.
static NAMESPACE: KindInfo = kind_info!(Namespace, "namespace", &["ns"], false, &["status.phase"]);
static SERVICE: KindInfo = kind_info!(Service, "service", &["svc"], true, &["spec.clusterIP", "spec.type"]);
static POD: KindInfo = kind_info!(
    Pod,
    "pod",
    &["po"],
    true,
    &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ]
);
static ENDPOINT_SLICE: KindInfo = kind_info!(EndpointSlice, "endpointslice", &[], true, &[]);

impl Kind {
    /// Every kind, in the order the API groups list them.
    pub const ALL: [Kind; 4] = [Kind::Namespace, Kind::Service, Kind::Pod, Kind::EndpointSlice];

    /// What the API says about this kind.
    pub fn info(self) -> &'static KindInfo {
        match self {
            Kind::Namespace => &NAMESPACE,
            Kind::Service => &SERVICE,
            Kind::Pod => &POD,
            Kind::EndpointSlice => &ENDPOINT_SLICE,
        }
    }

    /// The kind whose `kind` is `name` (`"Service"`), as in objects and gen-cluster files.
    pub fn from_kind_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.info().kind == name)
    }

    /// The kind served at `group`/`version`/`plural`, as in a URL.
    pub(crate) fn from_resource(group: &str, version: &str, plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            let info = k.info();
            info.group == group && info.version == version && info.plural == plural
        })
    }

    /// Index into per-kind arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether `label` is a field selector label this kind accepts.
    pub(crate) fn supports_field(self, label: &str) -> bool {
        let info = self.info();
        label == "metadata.name" || (info.namespaced && label == "metadata.namespace") || info.fields.contains(&label)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_openapi_types() {
        let svc = Kind::Service.info();
        assert_eq!(
            (svc.kind, svc.list_kind, svc.api_version, svc.plural),
            ("Service", "ServiceList", "v1", "services")
        );
        let eps = Kind::EndpointSlice.info();
        assert_eq!((eps.group, eps.version, eps.api_version), ("discovery.k8s.io", "v1", "discovery.k8s.io/v1"));
        assert_eq!(eps.plural, "endpointslices");
        assert!(!Kind::Namespace.info().namespaced);
    }

    #[test]
    fn lookups() {
        assert_eq!(Kind::from_kind_name("Pod"), Some(Kind::Pod));
        assert_eq!(Kind::from_kind_name("pod"), None);
        assert_eq!(Kind::from_resource("discovery.k8s.io", "v1", "endpointslices"), Some(Kind::EndpointSlice));
        assert_eq!(Kind::from_resource("", "v1", "endpointslices"), None);
        assert!(Kind::Pod.supports_field("spec.nodeName"));
        assert!(Kind::Pod.supports_field("metadata.namespace"));
        assert!(!Kind::Namespace.supports_field("metadata.namespace"));
        assert!(!Kind::Service.supports_field("spec.nodeName"));
    }
}
