//! What other plugins of a server block may read of the kubernetes plugin: autopath needs the
//! namespace of the pod a query comes from, k8s_external the zones and sync state. It is
//! offered with [`SetupCtx::provide`](crate::plugin::setup::SetupCtx::provide) and asked for
//! with `require::<Handle>`, so a plugin that needs it and finds no kubernetes plugin in its
//! block gets a positioned error at setup.

use std::net::IpAddr;
use std::sync::Arc;

use super::watch::Cluster;
use crate::dns::Name;

/// A read-only view of one kubernetes plugin's index.
pub struct Handle {
    cluster: Arc<Cluster>,
    zones: Box<[Name]>,
}

impl Handle {
    pub(super) fn new(cluster: Arc<Cluster>, zones: Box<[Name]>) -> Handle {
        Handle { cluster, zones }
    }

    /// The plugin's zones, lowercase.
    pub fn zones(&self) -> &[Name] {
        &self.zones
    }

    /// Whether every watch has completed its first list.
    pub fn is_synced(&self) -> bool {
        self.cluster.is_synced()
    }

    /// The namespace of a pod with address `ip` (with `pods verified`; `None` otherwise, or when
    /// no pod has it). Two pods sharing an address (host-network pods) give the first found.
    pub fn pod_namespace(&self, ip: IpAddr) -> Option<String> {
        let index = self.cluster.index.read();
        let ns = index.pod_namespaces(ip).next()?;
        Some(index.namespace_name(ns).to_string())
    }
}
