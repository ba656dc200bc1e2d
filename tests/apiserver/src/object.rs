//! Objects as callers hand them in (typed, through k8s-openapi), and the few fields the server
//! reads back out of stored JSON.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::Kind;

/// An object the server can hold. Build one from a k8s-openapi type (`Service::from(..).into()`)
/// or from JSON with [`ClusterObject::from_json`].
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant, reason = "a short-lived carrier: objects are stored as JSON, not as this")]
pub enum ClusterObject {
    /// A core/v1 Namespace.
    Namespace(Namespace),
    /// A core/v1 Service.
    Service(Service),
    /// A core/v1 Pod.
    Pod(Pod),
    /// A discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice(EndpointSlice),
}

/// Why an object was refused.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The JSON is not an object of a served kind, or does not fit that kind's schema.
    #[error("not a {kind} object: {source}")]
    Decode {
        /// The kind the JSON claimed to be, or `object` when it named none.
        kind: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// `kind` names a resource this server does not serve.
    #[error("kind {0:?} is not served (only Namespace, Service, Pod, EndpointSlice)")]
    UnknownKind(String),
    /// `metadata.name` is missing or empty.
    #[error("{0} without metadata.name")]
    MissingName(Kind),
    /// A namespaced object without `metadata.namespace`.
    #[error("{kind} {name:?} without metadata.namespace")]
    MissingNamespace {
        /// The object's kind.
        kind: Kind,
        /// The object's name.
        name: String,
    },
    /// A cluster-scoped object with `metadata.namespace` set.
    #[error("{kind} {name:?} is cluster-scoped but has metadata.namespace")]
    UnexpectedNamespace {
        /// The object's kind.
        kind: Kind,
        /// The object's name.
        name: String,
    },
}

macro_rules! each {
    ($obj:expr, $o:ident => $e:expr) => {
        match $obj {
            ClusterObject::Namespace($o) => $e,
            ClusterObject::Service($o) => $e,
            ClusterObject::Pod($o) => $e,
            ClusterObject::EndpointSlice($o) => $e,
        }
    };
}

impl ClusterObject {
    /// Decodes an object from its JSON, dispatching on its `kind`.
    pub fn from_json(value: serde_json::Value) -> Result<Self, ObjectError> {
        let kind_name = value.get("kind").and_then(|k| k.as_str()).unwrap_or("object").to_owned();
        let kind = Kind::from_kind_name(&kind_name).ok_or_else(|| ObjectError::UnknownKind(kind_name.clone()))?;
        let decode = |source| ObjectError::Decode { kind: kind_name.clone(), source };
        Ok(match kind {
            Kind::Namespace => ClusterObject::Namespace(serde_json::from_value(value).map_err(decode)?),
            Kind::Service => ClusterObject::Service(serde_json::from_value(value).map_err(decode)?),
            Kind::Pod => ClusterObject::Pod(serde_json::from_value(value).map_err(decode)?),
            Kind::EndpointSlice => ClusterObject::EndpointSlice(serde_json::from_value(value).map_err(decode)?),
        })
    }

    /// Decodes an object of a known kind from JSON text, as the loader does for each line.
    pub(crate) fn from_json_str(kind: Kind, json: &str) -> Result<Self, ObjectError> {
        let decode = |source| ObjectError::Decode { kind: kind.to_string(), source };
        Ok(match kind {
            Kind::Namespace => ClusterObject::Namespace(serde_json::from_str(json).map_err(decode)?),
            Kind::Service => ClusterObject::Service(serde_json::from_str(json).map_err(decode)?),
            Kind::Pod => ClusterObject::Pod(serde_json::from_str(json).map_err(decode)?),
            Kind::EndpointSlice => ClusterObject::EndpointSlice(serde_json::from_str(json).map_err(decode)?),
        })
    }

    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            ClusterObject::Namespace(_) => Kind::Namespace,
            ClusterObject::Service(_) => Kind::Service,
            ClusterObject::Pod(_) => Kind::Pod,
            ClusterObject::EndpointSlice(_) => Kind::EndpointSlice,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        each!(self, o => &o.metadata)
    }

    pub(crate) fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each!(self, o => &mut o.metadata)
    }

    /// The object's store key: `namespace/name`, or `name` for cluster-scoped kinds. Keys sort
    /// as kube-apiserver's etcd keys do, which gives lists their order.
    pub(crate) fn key(&self) -> Result<String, ObjectError> {
        let kind = self.kind();
        let meta = self.metadata();
        let name = meta.name.as_deref().filter(|n| !n.is_empty()).ok_or(ObjectError::MissingName(kind))?;
        let namespace = meta.namespace.as_deref().filter(|n| !n.is_empty());
        match (kind.info().namespaced, namespace) {
            (true, Some(ns)) => Ok(format!("{ns}/{name}")),
            (true, None) => Err(ObjectError::MissingNamespace { kind, name: name.to_owned() }),
            (false, None) => Ok(name.to_owned()),
            (false, Some(_)) => Err(ObjectError::UnexpectedNamespace { kind, name: name.to_owned() }),
        }
    }

    /// The object as the API returns it, `apiVersion` and `kind` included.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        // Serializing these types cannot fail: they hold no maps with non-string keys.
        each!(self, o => serde_json::to_vec(o).expect("k8s-openapi objects serialize"))
    }
}

macro_rules! from_openapi {
    ($($ty:ident),*) => {$(
        impl From<$ty> for ClusterObject {
            fn from(o: $ty) -> Self {
                ClusterObject::$ty(o)
            }
        }
    )*};
}
from_openapi!(Namespace, Service, Pod, EndpointSlice);

/// The parts of a stored object that label and field selectors look at, read straight out of its
/// JSON (borrowing where it can) only when a request has a selector.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Selectable<'a> {
    #[serde(borrow)]
    metadata: SelectableMeta<'a>,
    #[serde(borrow)]
    spec: SelectableSpec<'a>,
    #[serde(borrow)]
    status: SelectableStatus<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SelectableMeta<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    labels: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SelectableSpec<'a> {
    #[serde(borrow)]
    node_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    restart_policy: Option<Cow<'a, str>>,
    #[serde(borrow)]
    scheduler_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    service_account_name: Option<Cow<'a, str>>,
    host_network: Option<bool>,
    #[serde(borrow, rename = "clusterIP")]
    cluster_ip: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    type_: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SelectableStatus<'a> {
    #[serde(borrow)]
    phase: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "podIP")]
    pod_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    nominated_node_name: Option<Cow<'a, str>>,
}

impl<'a> Selectable<'a> {
    /// Reads the selectable parts of a stored object.
    pub(crate) fn parse(json: &'a [u8]) -> Self {
        // Stored JSON was written by this server from a typed object, so it always parses.
        serde_json::from_slice(json).expect("stored objects are valid JSON")
    }

    /// The value of label `key`, if the object has it.
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.metadata.labels.as_ref()?.get(key).map(|v| v.as_ref())
    }

    /// The value of field `label` as kube-apiserver's field sets give it: absent strings are
    /// empty, booleans are `true`/`false`. The caller checks that the kind supports `label`.
    pub(crate) fn field(&self, label: &str) -> Cow<'_, str> {
        fn s<'b>(v: &'b Option<Cow<'_, str>>) -> Cow<'b, str> {
            Cow::Borrowed(v.as_deref().unwrap_or(""))
        }
        match label {
            "metadata.name" => s(&self.metadata.name),
            "metadata.namespace" => s(&self.metadata.namespace),
            "spec.nodeName" => s(&self.spec.node_name),
            "spec.restartPolicy" => s(&self.spec.restart_policy),
            "spec.schedulerName" => s(&self.spec.scheduler_name),
            "spec.serviceAccountName" => s(&self.spec.service_account_name),
            "spec.hostNetwork" => Cow::Owned(self.spec.host_network.unwrap_or(false).to_string()),
            "spec.clusterIP" => s(&self.spec.cluster_ip),
            "spec.type" => s(&self.spec.type_),
            "status.phase" => s(&self.status.phase),
            "status.podIP" => s(&self.status.pod_ip),
            "status.nominatedNodeName" => s(&self.status.nominated_node_name),
            _ => Cow::Borrowed(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_by_kind_and_keys_by_scope() {
        let svc = ClusterObject::from_json(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod"},
        }))
        .unwrap();
        assert_eq!(svc.kind(), Kind::Service);
        assert_eq!(svc.key().unwrap(), "prod/web");

        let ns =
            ClusterObject::from_json(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}))
                .unwrap();
        assert_eq!(ns.key().unwrap(), "prod");
    }

    #[test]
    fn refuses_what_the_api_would() {
        let err = ClusterObject::from_json(json!({"apiVersion": "v1", "kind": "ConfigMap"})).unwrap_err();
        assert!(matches!(err, ObjectError::UnknownKind(k) if k == "ConfigMap"));
        let err = ClusterObject::from_json(json!({"kind": "Pod", "spec": {"containers": 3}})).unwrap_err();
        assert!(matches!(err, ObjectError::Decode { .. }), "{err}");
        let nameless = ClusterObject::from(Service::default());
        assert!(matches!(nameless.key(), Err(ObjectError::MissingName(Kind::Service))));
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        assert!(matches!(ClusterObject::from(pod).key(), Err(ObjectError::MissingNamespace { .. })));
    }

    #[test]
    fn serializes_with_type_meta() {
        let mut svc = Service::default();
        svc.metadata.name = Some("web".into());
        let json: serde_json::Value = serde_json::from_slice(&ClusterObject::from(svc).to_json()).unwrap();
        assert_eq!(json["kind"], "Service");
        assert_eq!(json["apiVersion"], "v1");
    }

    #[test]
    fn reads_selectable_fields() {
        let json = br#"{"kind":"Pod","metadata":{"name":"p","namespace":"n","labels":{"app":"a\"b"}},
            "spec":{"nodeName":"node-1","hostNetwork":true,"containers":[]},"status":{"phase":"Running"}}"#;
        let s = Selectable::parse(json);
        assert_eq!(s.label("app"), Some("a\"b"));
        assert_eq!(s.label("tier"), None);
        assert_eq!(s.field("spec.nodeName"), "node-1");
        assert_eq!(s.field("spec.hostNetwork"), "true");
        assert_eq!(s.field("status.phase"), "Running");
        assert_eq!(s.field("status.podIP"), "");
        assert_eq!(s.field("metadata.namespace"), "n");
    }
}
