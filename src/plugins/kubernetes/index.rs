//! The index: every watched object, trimmed, with the secondary indexes DNS asks.
//!
//! | question                                   | index                                     |
//! |--------------------------------------------|-------------------------------------------|
//! | does namespace `<ns>` exist?               | namespaces by name                        |
//! | service `<svc>.<ns>`                       | service entries by (namespace, name)      |
//! | endpoints of a service, across its slices  | the entry's list of slices                |
//! | names of an IP (PTR)                       | IP -> cluster IP owner or endpoint owner  |
//! | namespaces with a pod of an IP (`verified`)| IP -> pods                                |
//!
//! Names are stored once, in the entries themselves; the hash tables hold 4-byte entry ids
//! and compare against the entries ([`hashbrown::HashTable`]), so a query's labels are looked
//! up as they lie in the question, without building a key. A service entry exists while the
//! Service or any EndpointSlice naming it does: slices may arrive before their service.
//!
//! # Relists
//!
//! A relist (the first list, a 410 Gone, a watch that could not resume) updates the live index
//! in place and sweeps, at its end, what it did not see: [`begin_list`](Index::begin_list)
//! starts a new epoch for the kind, every object listed is stamped with it, and
//! [`finish_list`](Index::finish_list) removes the objects of the kind still carrying an older
//! one. Names that exist in the API never vanish during a relist, and there is never a second
//! copy of the index. A relist that fails halfway and starts again simply starts a newer epoch.
//!
//! # Concurrency
//!
//! The index itself is single-threaded: writes take `&mut self`, reads `&self`. The plugin keeps
//! it behind a [`parking_lot::RwLock`]: queries hold the read lock while they build an answer
//! (well under a microsecond), the watches hold the write lock for one batch of events. Why a
//! lock and not swapped snapshots is measured in `benches/kubernetes_index.rs`.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashTable;
use smallvec::SmallVec;

use super::object::{ClusterIps, Kind, Pod, Port, Service, ServiceKind, Slice};
use crate::dns::MAX_LABEL_LEN;

/// What the index keeps, beyond what every configuration needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// `endpoint_pod_names`: keep the pod names of endpoints without a hostname.
    pub endpoint_pod_names: bool,
}

/// See the [module documentation](self).
pub struct Index {
    options: IndexOptions,
    /// Hashes names and addresses for the lookup tables (seeded per process).
    hasher: foldhash::fast::RandomState,
    /// Hashes (namespace, name) into the 64-bit identity of slices and pods, whose names are not
    /// worth keeping (SipHash with a per-process key: two objects collide with odds of 2^-64).
    identity: std::collections::hash_map::RandomState,
    namespaces: Slab<NsEntry>,
    ns_table: HashTable<u32>,
    services: Slab<ServiceEntry>,
    svc_table: HashTable<u32>,
    slices: Slab<SliceEntry>,
    slice_table: HashTable<u32>,
    pods: Slab<PodEntry>,
    pod_table: HashTable<u32>,
    reverse4: MultiMap<u32, Owner>,
    reverse6: MultiMap<[u8; 16], Owner>,
    pod_ips4: MultiMap<u32, u32>,
    pod_ips6: MultiMap<[u8; 16], u32>,
    /// Port lists shared between the services and slices that have the same ports.
    port_lists: HashTable<Arc<[Port]>>,
    kinds: [KindState; 4],
    /// Objects of each kind held (services with a Service object, slices, pods, namespaces).
    counts: [usize; 4],
    /// SOA serial: the Unix time of the last change.
    modified: u32,
    changed: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct KindState {
    /// The current list's epoch; objects seen since it began carry it.
    epoch: u32,
    /// A list has completed once.
    synced: bool,
    /// Whether this kind is watched at all (pods only with `pods verified`, slices unless
    /// `noendpoints`).
    watched: bool,
}

/// A namespace name, interned: referenced by the services and pods in it, and present in the
/// cluster (`exists`) while its Namespace object is.
struct NsEntry {
    name: Box<str>,
    /// The Namespace object exists (and passed `namespace_labels`).
    exists: bool,
    /// The namespace's epoch, while it exists.
    epoch: u32,
    /// Service entries and pods naming this namespace.
    refs: u32,
}

/// A service name in a namespace, and what is known under it.
struct ServiceEntry {
    /// The name, lowercase: the key, and the `<service>` of PTR and SRV targets.
    name: Box<str>,
    ns: u32,
    service: Option<StoredService>,
    /// EndpointSlices labelled with this name.
    slices: SmallVec<[u32; 2]>,
}

struct StoredService {
    cluster_ips: ClusterIps,
    kind: ServiceKind,
    ports: Arc<[Port]>,
    publish_not_ready: bool,
    has_selector: bool,
    epoch: u32,
}

struct SliceEntry {
    /// Identity: (namespace, name) hashed.
    key: u64,
    /// The service entry it belongs to.
    service: u32,
    ports: Arc<[Port]>,
    endpoints: Box<[StoredEndpoint]>,
    /// The endpoints' names, parallel to `endpoints`; absent when none has one (all are named
    /// by their dashed address), as in most slices.
    names: Option<Box<[Option<Box<str>>]>>,
    epoch: u32,
}

/// 18 bytes: an address and whether it is ready.
#[derive(Clone, Copy)]
struct StoredEndpoint {
    ip: IpAddr,
    ready: bool,
}

struct PodEntry {
    key: u64,
    ns: u32,
    ips: ClusterIps,
    epoch: u32,
}

/// Who an address belongs to, for PTR: a service's cluster IP, or an endpoint of a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Owner {
    /// `CLUSTER_IP` for a cluster IP, else the slice id.
    slice: u32,
    /// The service entry for a cluster IP, else the endpoint's position in the slice.
    id: u32,
}

const CLUSTER_IP: u32 = u32::MAX;

impl Owner {
    fn cluster_ip(service: u32) -> Owner {
        Owner { slice: CLUSTER_IP, id: service }
    }
    fn endpoint(slice: u32, at: usize) -> Owner {
        Owner { slice, id: at as u32 }
    }
}

impl Index {
    pub fn new(options: IndexOptions, watched: &[Kind]) -> Index {
        let mut kinds = [KindState::default(); 4];
        for k in watched {
            kinds[k.slot()].watched = true;
        }
        Index {
            options,
            hasher: foldhash::fast::RandomState::default(),
            identity: std::collections::hash_map::RandomState::new(),
            namespaces: Slab::default(),
            ns_table: HashTable::new(),
            services: Slab::default(),
            svc_table: HashTable::new(),
            slices: Slab::default(),
            slice_table: HashTable::new(),
            pods: Slab::default(),
            pod_table: HashTable::new(),
            reverse4: MultiMap::default(),
            reverse6: MultiMap::default(),
            pod_ips4: MultiMap::default(),
            pod_ips6: MultiMap::default(),
            port_lists: HashTable::new(),
            kinds,
            counts: [0; 4],
            modified: 0,
            changed: false,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reads.

    /// Whether every watched kind has completed a list: until then a name missing from the
    /// index may exist in the API.
    pub fn synced(&self) -> bool {
        self.kinds.iter().all(|k| !k.watched || k.synced)
    }

    /// Whether `kind` has completed a list.
    pub fn kind_synced(&self, kind: Kind) -> bool {
        self.kinds[kind.slot()].synced
    }

    /// The SOA serial: the Unix time of the last change.
    pub fn serial(&self) -> u32 {
        self.modified
    }

    /// How many objects of `kind` are held.
    pub fn count(&self, kind: Kind) -> usize {
        self.counts[kind.slot()]
    }

    /// The namespace named by the label `ns` (any case), if it exists in the cluster.
    pub fn namespace(&self, ns: &[u8]) -> Option<NsId> {
        let id = self.find_ns(ns)?;
        self.namespaces.get(id).filter(|e| e.exists).map(|_| NsId(id))
    }

    /// A namespace's name.
    pub fn namespace_name(&self, ns: NsId) -> &str {
        &self.namespaces.get(ns.0).expect("a live namespace id").name
    }

    /// The Service named by the label `name` (any case) in `ns`.
    pub fn service(&self, ns: NsId, name: &[u8]) -> Option<ServiceView<'_>> {
        let mut lower = [0u8; MAX_LABEL_LEN];
        let name = lowercase(name, &mut lower)?;
        let hash = self.hasher.hash_one((ns.0, name));
        let id = *self.svc_table.find(hash, |&id| {
            let e = self.services.get(id).expect("table ids are live");
            e.ns == ns.0 && e.name.as_bytes() == name
        })?;
        self.service_view(id)
    }

    /// The Service `ns/name` (names as the API gives them), whether or not its namespace exists.
    pub fn service_by_name(&self, ns: &str, name: &str) -> Option<ServiceView<'_>> {
        self.find_service_entry(ns, name).and_then(|id| self.service_view(id))
    }

    fn service_view(&self, id: u32) -> Option<ServiceView<'_>> {
        let entry = self.services.get(id)?;
        let svc = entry.service.as_ref()?;
        Some(ServiceView { index: self, entry, svc })
    }

    /// What owns `ip`: services whose cluster IP it is, and endpoints with that address (ready
    /// or not; [`EndpointView::ready`] says).
    pub fn reverse(&self, ip: IpAddr) -> impl Iterator<Item = Reverse<'_>> + '_ {
        let owners: SmallVec<[Owner; 2]> = match ip {
            IpAddr::V4(v4) => self.reverse4.get(&self.hasher, u32::from(v4)).collect(),
            IpAddr::V6(v6) => self.reverse6.get(&self.hasher, v6.octets()).collect(),
        };
        owners.into_iter().filter_map(move |o| {
            if o.slice == CLUSTER_IP {
                return self.service_view(o.id).map(Reverse::ClusterIp);
            }
            let slice = self.slices.get(o.slice)?;
            let entry = self.services.get(slice.service)?;
            let endpoint = EndpointView::new(slice, o.id as usize, entry.service.as_ref());
            Some(Reverse::Endpoint {
                service: entry.service.as_ref().map(|svc| ServiceView { index: self, entry, svc }),
                endpoint,
            })
        })
    }

    /// The namespaces that have a pod with address `ip` (with repeats, one per pod).
    pub fn pod_namespaces(&self, ip: IpAddr) -> impl Iterator<Item = NsId> + '_ {
        let pods: SmallVec<[u32; 2]> = match ip {
            IpAddr::V4(v4) => self.pod_ips4.get(&self.hasher, u32::from(v4)).collect(),
            IpAddr::V6(v6) => self.pod_ips6.get(&self.hasher, v6.octets()).collect(),
        };
        pods.into_iter().filter_map(|p| self.pods.get(p)).map(|p| NsId(p.ns))
    }

    fn find_ns(&self, ns: &[u8]) -> Option<u32> {
        let mut lower = [0u8; MAX_LABEL_LEN];
        let ns = lowercase(ns, &mut lower)?;
        let hash = self.hasher.hash_one(ns);
        self.ns_table.find(hash, |&id| self.namespaces.get(id).is_some_and(|e| e.name.as_bytes() == ns)).copied()
    }

    // -----------------------------------------------------------------------------------------
    // Writes.

    /// A list of `kind` begins (kube-runtime's `Init`): objects applied from now on carry a new
    /// epoch.
    pub fn begin_list(&mut self, kind: Kind) {
        let k = &mut self.kinds[kind.slot()];
        k.epoch = k.epoch.wrapping_add(1);
    }

    /// A list of `kind` is complete (`InitDone`): removes what it did not see, and marks the
    /// kind synced. Returns how many objects were removed.
    pub fn finish_list(&mut self, kind: Kind) -> usize {
        let epoch = self.kinds[kind.slot()].epoch;
        self.kinds[kind.slot()].synced = true;
        let stale: Vec<u32> = match kind {
            Kind::Service => self
                .services
                .iter()
                .filter(|(_, e)| e.service.as_ref().is_some_and(|s| s.epoch != epoch))
                .map(|(id, _)| id)
                .collect(),
            Kind::EndpointSlice => self.slices.iter().filter(|(_, s)| s.epoch != epoch).map(|(id, _)| id).collect(),
            Kind::Pod => self.pods.iter().filter(|(_, p)| p.epoch != epoch).map(|(id, _)| id).collect(),
            Kind::Namespace => {
                self.namespaces.iter().filter(|(_, n)| n.exists && n.epoch != epoch).map(|(id, _)| id).collect()
            }
        };
        for &id in &stale {
            match kind {
                Kind::Service => self.remove_service(id),
                Kind::EndpointSlice => self.remove_slice(id),
                Kind::Pod => self.remove_pod(id),
                Kind::Namespace => self.remove_namespace(id),
            }
        }
        stale.len()
    }

    /// Creates or replaces Service `ns/name`.
    pub fn apply_service(&mut self, ns: &str, name: &str, service: Service) {
        let epoch = self.kinds[Kind::Service.slot()].epoch;
        let id = self.service_entry(ns, name);
        let ports = self.intern_ports(service.ports);
        let stored = StoredService {
            cluster_ips: service.cluster_ips,
            kind: service.kind,
            ports,
            publish_not_ready: service.publish_not_ready,
            has_selector: service.has_selector,
            epoch,
        };
        let entry = self.services.get_mut(id).expect("just found");
        let old = entry.service.replace(stored);
        let new_ips = entry.service.as_ref().expect("just set").cluster_ips;
        match old {
            Some(old) => {
                if old.cluster_ips != new_ips {
                    self.unlink_cluster_ips(id, old.cluster_ips);
                    self.link_cluster_ips(id, new_ips);
                }
                self.release_ports(old.ports);
            }
            None => {
                self.counts[Kind::Service.slot()] += 1;
                self.link_cluster_ips(id, new_ips);
            }
        }
        self.changed = true;
    }

    /// Deletes Service `ns/name`.
    pub fn delete_service(&mut self, ns: &str, name: &str) {
        if let Some(id) = self.find_service_entry(ns, name) {
            self.remove_service(id);
        }
    }

    /// Creates or replaces EndpointSlice `ns/name`; `None` (a slice that names no service)
    /// deletes it.
    pub fn apply_slice(&mut self, ns: &str, name: &str, slice: Option<Slice>) {
        let key = self.identity.hash_one((ns, name));
        let Some(slice) = slice else {
            if let Some(id) = self.find_slice(key) {
                self.remove_slice(id);
            }
            return;
        };
        let epoch = self.kinds[Kind::EndpointSlice.slot()].epoch;
        let service = self.service_entry(ns, &slice.service);
        let ports = self.intern_ports(slice.ports);
        let pod_names = self.options.endpoint_pod_names;
        let names: Vec<Option<Box<str>>> = slice
            .endpoints
            .iter()
            .map(|e| e.hostname.clone().or_else(|| e.pod_name.clone().filter(|_| pod_names)))
            .collect();
        let names = names.iter().any(Option::is_some).then(|| names.into_boxed_slice());
        let endpoints: Box<[StoredEndpoint]> =
            slice.endpoints.iter().map(|e| StoredEndpoint { ip: e.ip, ready: e.ready }).collect();

        let id = match self.find_slice(key) {
            Some(id) => {
                self.unlink_endpoints(id);
                let s = self.slices.get_mut(id).expect("found");
                let old_service = std::mem::replace(&mut s.service, service);
                let old_ports = std::mem::replace(&mut s.ports, ports);
                s.endpoints = endpoints;
                s.names = names;
                s.epoch = epoch;
                if old_service != service {
                    self.detach_slice(old_service, id);
                    self.services.get_mut(service).expect("live").slices.push(id);
                }
                self.release_ports(old_ports);
                id
            }
            None => {
                let id = self.slices.insert(SliceEntry { key, service, ports, endpoints, names, epoch });
                let hasher = |&i: &u32| self.slices.get(i).expect("live").key;
                self.slice_table.insert_unique(key, id, hasher);
                self.services.get_mut(service).expect("live").slices.push(id);
                self.counts[Kind::EndpointSlice.slot()] += 1;
                id
            }
        };
        self.link_endpoints(id);
        // A slice that moved away may have left an empty entry behind; this one is in use.
        self.changed = true;
    }

    /// Deletes EndpointSlice `ns/name`.
    pub fn delete_slice(&mut self, ns: &str, name: &str) {
        let key = self.identity.hash_one((ns, name));
        if let Some(id) = self.find_slice(key) {
            self.remove_slice(id);
        }
    }

    /// Creates or replaces Pod `ns/name`; `None` (a pod that answers no name: terminating,
    /// finished, without an address) deletes it.
    pub fn apply_pod(&mut self, ns: &str, name: &str, pod: Option<Pod>) {
        let key = self.identity.hash_one((ns, name));
        let existing = self.find_pod(key);
        let Some(pod) = pod else {
            if let Some(id) = existing {
                self.remove_pod(id);
            }
            return;
        };
        let epoch = self.kinds[Kind::Pod.slot()].epoch;
        match existing {
            Some(id) => {
                let p = self.pods.get_mut(id).expect("found");
                p.epoch = epoch;
                if p.ips != pod.ips {
                    let old = std::mem::replace(&mut p.ips, pod.ips);
                    self.unlink_pod_ips(id, old);
                    self.link_pod_ips(id, pod.ips);
                    self.changed = true;
                }
            }
            None => {
                let ns = self.intern_ns(ns);
                self.namespaces.get_mut(ns).expect("interned").refs += 1;
                let id = self.pods.insert(PodEntry { key, ns, ips: pod.ips, epoch });
                let hasher = |&i: &u32| self.pods.get(i).expect("live").key;
                self.pod_table.insert_unique(key, id, hasher);
                self.link_pod_ips(id, pod.ips);
                self.counts[Kind::Pod.slot()] += 1;
                self.changed = true;
            }
        }
    }

    /// Deletes Pod `ns/name`.
    pub fn delete_pod(&mut self, ns: &str, name: &str) {
        let key = self.identity.hash_one((ns, name));
        if let Some(id) = self.find_pod(key) {
            self.remove_pod(id);
        }
    }

    /// Namespace `name` exists.
    pub fn apply_namespace(&mut self, name: &str) {
        let epoch = self.kinds[Kind::Namespace.slot()].epoch;
        let id = self.intern_ns(name);
        let e = self.namespaces.get_mut(id).expect("interned");
        e.epoch = epoch;
        if !e.exists {
            e.exists = true;
            self.counts[Kind::Namespace.slot()] += 1;
            self.changed = true;
        }
    }

    /// Namespace `name` is gone.
    pub fn delete_namespace(&mut self, name: &str) {
        if let Some(id) = self.find_ns(name.as_bytes()) {
            self.remove_namespace(id);
        }
    }

    /// Whether anything changed since the last call; if so, `now` (Unix seconds) becomes the
    /// SOA serial.
    pub fn stamp(&mut self, now: u32) -> bool {
        let changed = std::mem::take(&mut self.changed);
        if changed {
            self.modified = now;
        }
        changed
    }

    // -----------------------------------------------------------------------------------------
    // Internals.

    fn remove_service(&mut self, id: u32) {
        let Some(old) = self.services.get_mut(id).and_then(|e| e.service.take()) else { return };
        self.unlink_cluster_ips(id, old.cluster_ips);
        self.release_ports(old.ports);
        self.counts[Kind::Service.slot()] -= 1;
        self.gc_service_entry(id);
        self.changed = true;
    }

    fn remove_slice(&mut self, id: u32) {
        self.unlink_endpoints(id);
        let s = self.slices.remove(id).expect("a live slice");
        let hash = s.key;
        if let Ok(e) = self.slice_table.find_entry(hash, |&i| i == id) {
            e.remove();
        }
        self.detach_slice(s.service, id);
        self.release_ports(s.ports);
        self.counts[Kind::EndpointSlice.slot()] -= 1;
        self.changed = true;
    }

    fn remove_pod(&mut self, id: u32) {
        let p = self.pods.remove(id).expect("a live pod");
        if let Ok(e) = self.pod_table.find_entry(p.key, |&i| i == id) {
            e.remove();
        }
        self.unlink_pod_ips(id, p.ips);
        self.release_ns(p.ns);
        self.counts[Kind::Pod.slot()] -= 1;
        self.changed = true;
    }

    fn remove_namespace(&mut self, id: u32) {
        let Some(e) = self.namespaces.get_mut(id) else { return };
        if !e.exists {
            return;
        }
        e.exists = false;
        self.counts[Kind::Namespace.slot()] -= 1;
        self.changed = true;
        self.gc_ns(id);
    }

    /// Removes slice `id` from service entry `service`, and the entry if it is now empty.
    fn detach_slice(&mut self, service: u32, id: u32) {
        if let Some(e) = self.services.get_mut(service) {
            e.slices.retain(|s| *s != id);
            self.gc_service_entry(service);
        }
    }

    fn gc_service_entry(&mut self, id: u32) {
        let Some(e) = self.services.get(id) else { return };
        if e.service.is_some() || !e.slices.is_empty() {
            return;
        }
        let e = self.services.remove(id).expect("checked");
        let hash = self.hasher.hash_one((e.ns, e.name.as_bytes()));
        if let Ok(t) = self.svc_table.find_entry(hash, |&i| i == id) {
            t.remove();
        }
        self.release_ns(e.ns);
    }

    fn find_service_entry(&self, ns: &str, name: &str) -> Option<u32> {
        let ns = self.find_ns(ns.as_bytes())?;
        let mut lower = [0u8; MAX_LABEL_LEN];
        let name = lowercase(name.as_bytes(), &mut lower)?;
        let hash = self.hasher.hash_one((ns, name));
        self.svc_table
            .find(hash, |&id| self.services.get(id).is_some_and(|e| e.ns == ns && e.name.as_bytes() == name))
            .copied()
    }

    /// The entry for service `ns/name`, made if needed.
    fn service_entry(&mut self, ns: &str, name: &str) -> u32 {
        if let Some(id) = self.find_service_entry(ns, name) {
            return id;
        }
        let ns_id = self.intern_ns(ns);
        self.namespaces.get_mut(ns_id).expect("interned").refs += 1;
        let name: Box<str> = name.to_ascii_lowercase().into();
        let hash = self.hasher.hash_one((ns_id, name.as_bytes()));
        let id = self.services.insert(ServiceEntry { name, ns: ns_id, service: None, slices: SmallVec::new() });
        let (services, hasher) = (&self.services, &self.hasher);
        self.svc_table.insert_unique(hash, id, |&i| {
            let e = services.get(i).expect("live");
            hasher.hash_one((e.ns, e.name.as_bytes()))
        });
        id
    }

    fn intern_ns(&mut self, name: &str) -> u32 {
        if let Some(id) = self.find_ns(name.as_bytes()) {
            return id;
        }
        let name: Box<str> = name.to_ascii_lowercase().into();
        let hash = self.hasher.hash_one(name.as_bytes());
        let id = self.namespaces.insert(NsEntry { name, exists: false, epoch: 0, refs: 0 });
        let (namespaces, hasher) = (&self.namespaces, &self.hasher);
        self.ns_table.insert_unique(hash, id, |&i| hasher.hash_one(namespaces.get(i).expect("live").name.as_bytes()));
        id
    }

    fn release_ns(&mut self, id: u32) {
        if let Some(e) = self.namespaces.get_mut(id) {
            e.refs -= 1;
        }
        self.gc_ns(id);
    }

    fn gc_ns(&mut self, id: u32) {
        let Some(e) = self.namespaces.get(id) else { return };
        if e.exists || e.refs > 0 {
            return;
        }
        let e = self.namespaces.remove(id).expect("checked");
        let hash = self.hasher.hash_one(e.name.as_bytes());
        if let Ok(t) = self.ns_table.find_entry(hash, |&i| i == id) {
            t.remove();
        }
    }

    fn find_slice(&self, key: u64) -> Option<u32> {
        self.slice_table.find(key, |&i| self.slices.get(i).is_some_and(|s| s.key == key)).copied()
    }

    fn find_pod(&self, key: u64) -> Option<u32> {
        self.pod_table.find(key, |&i| self.pods.get(i).is_some_and(|p| p.key == key)).copied()
    }

    fn link_cluster_ips(&mut self, service: u32, ips: ClusterIps) {
        for ip in ips.iter() {
            self.link(ip, Owner::cluster_ip(service));
        }
    }

    fn unlink_cluster_ips(&mut self, service: u32, ips: ClusterIps) {
        for ip in ips.iter() {
            self.unlink(ip, Owner::cluster_ip(service));
        }
    }

    fn link_endpoints(&mut self, slice: u32) {
        let ips: SmallVec<[IpAddr; 8]> = self.slices.get(slice).expect("live").endpoints.iter().map(|e| e.ip).collect();
        for (at, ip) in ips.into_iter().enumerate() {
            self.link(ip, Owner::endpoint(slice, at));
        }
    }

    fn unlink_endpoints(&mut self, slice: u32) {
        let ips: SmallVec<[IpAddr; 8]> = self.slices.get(slice).expect("live").endpoints.iter().map(|e| e.ip).collect();
        for (at, ip) in ips.into_iter().enumerate() {
            self.unlink(ip, Owner::endpoint(slice, at));
        }
    }

    fn link(&mut self, ip: IpAddr, owner: Owner) {
        match ip {
            IpAddr::V4(v4) => self.reverse4.insert(&self.hasher, u32::from(v4), owner),
            IpAddr::V6(v6) => self.reverse6.insert(&self.hasher, v6.octets(), owner),
        }
    }

    fn unlink(&mut self, ip: IpAddr, owner: Owner) {
        match ip {
            IpAddr::V4(v4) => self.reverse4.remove(&self.hasher, u32::from(v4), owner),
            IpAddr::V6(v6) => self.reverse6.remove(&self.hasher, v6.octets(), owner),
        }
    }

    fn link_pod_ips(&mut self, pod: u32, ips: ClusterIps) {
        for ip in ips.iter() {
            match ip {
                IpAddr::V4(v4) => self.pod_ips4.insert(&self.hasher, u32::from(v4), pod),
                IpAddr::V6(v6) => self.pod_ips6.insert(&self.hasher, v6.octets(), pod),
            }
        }
    }

    fn unlink_pod_ips(&mut self, pod: u32, ips: ClusterIps) {
        for ip in ips.iter() {
            match ip {
                IpAddr::V4(v4) => self.pod_ips4.remove(&self.hasher, u32::from(v4), pod),
                IpAddr::V6(v6) => self.pod_ips6.remove(&self.hasher, v6.octets(), pod),
            }
        }
    }

    /// The shared copy of `ports`.
    fn intern_ports(&mut self, ports: Vec<Port>) -> Arc<[Port]> {
        let hash = self.hasher.hash_one(&ports);
        if let Some(p) = self.port_lists.find(hash, |p| **p == *ports) {
            return p.clone();
        }
        let p: Arc<[Port]> = ports.into();
        let hasher = &self.hasher;
        self.port_lists.insert_unique(hash, p.clone(), |p| hasher.hash_one(&**p));
        p
    }

    /// Drops a reference to a shared port list, and the list when no one else holds it.
    fn release_ports(&mut self, ports: Arc<[Port]>) {
        // Ours and the table's.
        if Arc::strong_count(&ports) > 2 {
            return;
        }
        let hash = self.hasher.hash_one(&*ports);
        if let Ok(e) = self.port_lists.find_entry(hash, |p| Arc::ptr_eq(p, &ports)) {
            e.remove();
        }
    }

    /// Checks every secondary index against the entries (tests).
    #[cfg(test)]
    pub fn check(&self) {
        let mut links = 0;
        for (id, e) in self.services.iter() {
            assert!(e.service.is_some() || !e.slices.is_empty(), "empty service entry {}", e.name);
            assert_eq!(self.find_service_entry(&self.namespaces.get(e.ns).unwrap().name, &e.name), Some(id));
            for ip in e.service.iter().flat_map(|s| s.cluster_ips.iter()) {
                assert!(self.reverse(ip).any(|r| matches!(r, Reverse::ClusterIp(v) if std::ptr::eq(v.entry, e))));
                links += 1;
            }
            for &s in &e.slices {
                assert_eq!(self.slices.get(s).unwrap().service, id);
            }
        }
        for (id, s) in self.slices.iter() {
            assert_eq!(self.find_slice(s.key), Some(id));
            assert!(self.services.get(s.service).unwrap().slices.contains(&id));
            links += s.endpoints.len();
        }
        assert_eq!(links, self.reverse4.len() + self.reverse6.len(), "reverse index size");
        let mut pod_links = 0;
        for (id, p) in self.pods.iter() {
            assert_eq!(self.find_pod(p.key), Some(id));
            pod_links += p.ips.iter().count();
        }
        assert_eq!(pod_links, self.pod_ips4.len() + self.pod_ips6.len(), "pod IP index size");
        for (id, n) in self.namespaces.iter() {
            let refs = self.services.iter().filter(|(_, e)| e.ns == id).count()
                + self.pods.iter().filter(|(_, p)| p.ns == id).count();
            assert_eq!(n.refs as usize, refs, "refs of namespace {}", n.name);
            assert!(n.exists || refs > 0, "unused namespace entry {}", n.name);
        }
        let lists: std::collections::HashSet<*const Port> = self
            .services
            .iter()
            .filter_map(|(_, e)| e.service.as_ref().map(|s| s.ports.as_ptr()))
            .chain(self.slices.iter().map(|(_, s)| s.ports.as_ptr()))
            .collect();
        assert_eq!(lists.len(), self.port_lists.len(), "shared port lists");
    }
}

/// A namespace that exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NsId(u32);

/// A Service, as a query reads it.
#[derive(Clone, Copy)]
pub struct ServiceView<'a> {
    index: &'a Index,
    entry: &'a ServiceEntry,
    svc: &'a StoredService,
}

impl<'a> ServiceView<'a> {
    /// The service's name, lowercase.
    pub fn name(&self) -> &'a str {
        &self.entry.name
    }

    /// Its namespace's name, lowercase.
    pub fn namespace(&self) -> &'a str {
        &self.index.namespaces.get(self.entry.ns).expect("live").name
    }

    /// Whether its namespace exists.
    pub fn namespace_exists(&self) -> bool {
        self.index.namespaces.get(self.entry.ns).is_some_and(|n| n.exists)
    }

    pub fn kind(&self) -> &'a ServiceKind {
        &self.svc.kind
    }

    pub fn cluster_ips(&self) -> ClusterIps {
        self.svc.cluster_ips
    }

    pub fn ports(&self) -> &'a [Port] {
        &self.svc.ports
    }

    pub fn has_selector(&self) -> bool {
        self.svc.has_selector
    }

    /// Every endpoint of every slice of the service, in slice order; an address in two slices
    /// (moving between them) comes twice.
    pub fn endpoints(&self) -> impl Iterator<Item = EndpointView<'a>> + 'a {
        let (index, svc) = (self.index, self.svc);
        self.entry
            .slices
            .iter()
            .filter_map(move |&s| index.slices.get(s))
            .flat_map(move |slice| (0..slice.endpoints.len()).map(move |at| EndpointView::new(slice, at, Some(svc))))
    }
}

/// One address of an endpoint, as a query reads it.
#[derive(Clone, Copy)]
pub struct EndpointView<'a> {
    pub ip: IpAddr,
    /// Ready, or its service publishes not-ready addresses.
    pub ready: bool,
    /// Its hostname (or pod name); `None` means the dashed address.
    pub name: Option<&'a str>,
    /// The ports of its slice.
    pub ports: &'a [Port],
}

impl<'a> EndpointView<'a> {
    fn new(slice: &'a SliceEntry, at: usize, svc: Option<&StoredService>) -> EndpointView<'a> {
        let e = slice.endpoints[at];
        let publish = svc.is_some_and(|s| s.publish_not_ready);
        EndpointView {
            ip: e.ip,
            ready: e.ready || publish,
            name: slice.names.as_ref().and_then(|n| n[at].as_deref()),
            ports: &slice.ports,
        }
    }
}

/// An owner of an address.
pub enum Reverse<'a> {
    /// The address is this service's cluster IP.
    ClusterIp(ServiceView<'a>),
    /// The address is this endpoint's, of this service (`None` if the service is not known).
    Endpoint { service: Option<ServiceView<'a>>, endpoint: EndpointView<'a> },
}

/// `label` lowercased into `buf`; `None` if it cannot be a name of the index (longer than a
/// label).
fn lowercase<'b>(label: &[u8], buf: &'b mut [u8; MAX_LABEL_LEN]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..label.len())?;
    out.copy_from_slice(label);
    out.make_ascii_lowercase();
    Some(out)
}

/// Entries addressed by a stable 32-bit id; freed ids are reused.
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { items: Vec::new(), free: Vec::new() }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, item: T) -> u32 {
        match self.free.pop() {
            Some(id) => {
                self.items[id as usize] = Some(item);
                id
            }
            None => {
                self.items.push(Some(item));
                u32::try_from(self.items.len() - 1).expect("fewer than 2^32 objects")
            }
        }
    }

    fn remove(&mut self, id: u32) -> Option<T> {
        let item = self.items.get_mut(id as usize)?.take()?;
        self.free.push(id);
        Some(item)
    }

    fn get(&self, id: u32) -> Option<&T> {
        self.items.get(id as usize)?.as_ref()
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.items.get_mut(id as usize)?.as_mut()
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.items.iter().enumerate().filter_map(|(i, t)| t.as_ref().map(|t| (i as u32, t)))
    }
}

/// A hash multimap of small copyable keys and values, one table slot per pair.
struct MultiMap<K, V> {
    table: HashTable<(K, V)>,
}

impl<K, V> Default for MultiMap<K, V> {
    fn default() -> Self {
        MultiMap { table: HashTable::new() }
    }
}

impl<K: Copy + Eq + Hash, V: Copy + Eq> MultiMap<K, V> {
    fn insert(&mut self, h: &foldhash::fast::RandomState, k: K, v: V) {
        self.table.insert_unique(h.hash_one(k), (k, v), |(k, _)| h.hash_one(*k));
    }

    fn remove(&mut self, h: &foldhash::fast::RandomState, k: K, v: V) {
        if let Ok(e) = self.table.find_entry(h.hash_one(k), |e| *e == (k, v)) {
            e.remove();
        }
    }

    fn get<'a>(&'a self, h: &foldhash::fast::RandomState, k: K) -> impl Iterator<Item = V> + 'a {
        self.table.iter_hash(h.hash_one(k)).filter(move |e| e.0 == k).map(|e| e.1)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::super::object::{Endpoint, Protocol};
    use super::*;

    fn port(name: &str, n: u16) -> Port {
        Port { name: name.into(), number: Some(n), protocol: Protocol::Tcp }
    }

    fn svc(ip: &str) -> Service {
        let mut cluster_ips = ClusterIps::default();
        match ip.parse().unwrap() {
            IpAddr::V4(v4) => cluster_ips.v4 = Some(v4),
            IpAddr::V6(v6) => cluster_ips.v6 = Some(v6),
        }
        Service {
            cluster_ips,
            kind: ServiceKind::ClusterIp,
            ports: vec![port("http", 80)],
            publish_not_ready: false,
            has_selector: true,
        }
    }

    fn slice(service: &str, ips: &[&str]) -> Slice {
        Slice {
            service: service.into(),
            ports: vec![port("http", 8080)],
            endpoints: ips
                .iter()
                .map(|ip| Endpoint { ip: ip.parse().unwrap(), ready: true, hostname: None, pod_name: None })
                .collect(),
            trigger: None,
        }
    }

    fn index() -> Index {
        Index::new(IndexOptions::default(), &Kind::ALL)
    }

    fn names_of(i: &Index, ip: &str) -> Vec<String> {
        let mut v: Vec<String> = i
            .reverse(ip.parse().unwrap())
            .map(|r| match r {
                Reverse::ClusterIp(s) => format!("{}.{}", s.name(), s.namespace()),
                Reverse::Endpoint { service, endpoint } => {
                    format!("{}@{}", endpoint.ip, service.map(|s| s.name()).unwrap_or("?"))
                }
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn services_are_found_by_namespace_and_name_in_any_case() {
        let mut i = index();
        i.apply_namespace("apps");
        i.apply_service("apps", "web", svc("10.96.0.12"));
        i.check();
        let ns = i.namespace(b"APPS").unwrap();
        let s = i.service(ns, b"Web").unwrap();
        assert_eq!((s.name(), s.namespace()), ("web", "apps"));
        assert!(i.service(ns, b"db").is_none());
        assert!(i.namespace(b"other").is_none());
        assert_eq!(names_of(&i, "10.96.0.12"), ["web.apps"]);
        // An over-long label is simply not found.
        assert!(i.service(ns, &[b'a'; 64]).is_none());
    }

    #[test]
    fn endpoints_merge_across_slices_and_follow_updates() {
        let mut i = index();
        i.apply_namespace("apps");
        i.apply_slice("apps", "web-1", Some(slice("web", &["10.1.0.1", "10.1.0.2"])));
        // A slice before its service: the entry exists, the service does not answer yet.
        assert!(i.service(i.namespace(b"apps").unwrap(), b"web").is_none());
        i.apply_service("apps", "web", svc("10.96.0.12"));
        i.apply_slice("apps", "web-2", Some(slice("web", &["10.1.0.3"])));
        i.check();
        let ips = |i: &Index| {
            let s = i.service(i.namespace(b"apps").unwrap(), b"web").unwrap();
            s.endpoints().map(|e| e.ip.to_string()).collect::<Vec<_>>()
        };
        assert_eq!(ips(&i), ["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
        i.apply_slice("apps", "web-1", Some(slice("web", &["10.1.0.9"])));
        i.check();
        assert_eq!(ips(&i), ["10.1.0.9", "10.1.0.3"]);
        assert!(names_of(&i, "10.1.0.1").is_empty());
        assert_eq!(names_of(&i, "10.1.0.9"), ["10.1.0.9@web"]);
        // A slice relabelled to another service moves.
        i.apply_slice("apps", "web-2", Some(slice("db", &["10.1.0.3"])));
        i.check();
        assert_eq!(ips(&i), ["10.1.0.9"]);
        assert_eq!(names_of(&i, "10.1.0.3"), ["10.1.0.3@?"]);
        i.delete_slice("apps", "web-1");
        i.delete_slice("apps", "web-2");
        i.check();
        assert!(ips(&i).is_empty());
        i.delete_service("apps", "web");
        i.check();
        assert_eq!(i.count(Kind::Service), 0);
        assert_eq!(i.count(Kind::EndpointSlice), 0);
    }

    #[test]
    fn a_relist_sweeps_what_it_did_not_see_and_nothing_else() {
        let mut i = index();
        for k in Kind::ALL {
            i.begin_list(k);
        }
        i.apply_namespace("apps");
        i.apply_service("apps", "web", svc("10.96.0.12"));
        i.apply_service("apps", "gone", svc("10.96.0.13"));
        i.apply_slice("apps", "web-1", Some(slice("web", &["10.1.0.1"])));
        i.apply_pod("apps", "web-1", Some(Pod { ips: svc("10.1.0.1").cluster_ips }));
        assert!(!i.synced());
        for k in Kind::ALL {
            assert_eq!(i.finish_list(k), 0);
        }
        assert!(i.synced());
        // A relist that sees web but not gone: both stay visible until the list ends.
        i.begin_list(Kind::Service);
        i.apply_service("apps", "web", svc("10.96.0.12"));
        let ns = i.namespace(b"apps").unwrap();
        assert!(i.service(ns, b"gone").is_some());
        assert_eq!(i.finish_list(Kind::Service), 1);
        assert!(i.service(ns, b"gone").is_none() && i.service(ns, b"web").is_some());
        assert!(i.synced());
        i.check();
        // Relists of the other kinds that see nothing empty them.
        for k in [Kind::EndpointSlice, Kind::Pod, Kind::Namespace] {
            i.begin_list(k);
            assert_eq!(i.finish_list(k), 1, "{k}");
            i.check();
        }
        assert!(i.namespace(b"apps").is_none());
        assert_eq!(i.pod_namespaces("10.1.0.1".parse().unwrap()).count(), 0);
    }

    #[test]
    fn pods_are_indexed_by_every_address() {
        let mut i = index();
        i.apply_namespace("apps");
        let ips = ClusterIps {
            v4: Some("10.1.0.5".parse().unwrap()),
            v6: Some("fd00::5".parse().unwrap()),
            ..Default::default()
        };
        i.apply_pod("apps", "p", Some(Pod { ips }));
        i.check();
        let ns = i.namespace(b"apps").unwrap();
        for ip in ["10.1.0.5", "fd00::5"] {
            assert_eq!(i.pod_namespaces(ip.parse().unwrap()).collect::<Vec<_>>(), [ns], "{ip}");
        }
        // Terminating: gone at once.
        i.apply_pod("apps", "p", None);
        i.check();
        assert_eq!(i.pod_namespaces("10.1.0.5".parse().unwrap()).count(), 0);
    }

    #[test]
    fn endpoint_names_are_hostnames_then_pod_names_when_asked() {
        let with = |pod_names| {
            let mut i = Index::new(IndexOptions { endpoint_pod_names: pod_names }, &Kind::ALL);
            i.apply_namespace("apps");
            i.apply_service("apps", "db", svc("10.96.0.20"));
            let mut s = slice("db", &["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
            s.endpoints[0].hostname = Some("db-0".into());
            s.endpoints[0].pod_name = Some("db-0-pod".into());
            s.endpoints[1].pod_name = Some("db-7d9".into());
            i.apply_slice("apps", "db-1", Some(s));
            let v = i.service(i.namespace(b"apps").unwrap(), b"db").unwrap();
            v.endpoints().map(|e| e.name.map(str::to_string)).collect::<Vec<_>>()
        };
        assert_eq!(with(false), [Some("db-0".to_string()), None, None]);
        assert_eq!(with(true), [Some("db-0".to_string()), Some("db-7d9".to_string()), None]);
    }

    /// Random operations against a model: after each, the secondary indexes agree with the
    /// entries and every lookup agrees with the model.
    #[test]
    fn random_operations_keep_every_index_consistent() {
        use std::collections::BTreeMap;
        let mut rng = fastrand::Rng::with_seed(7);
        let mut i = index();
        let mut model_svc: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut model_ns: std::collections::BTreeSet<String> = Default::default();
        for round in 0..3000 {
            let ns = format!("ns{}", rng.u8(0..3));
            let name = format!("s{}", rng.u8(0..6));
            match rng.u8(0..8) {
                0 => {
                    let ip = format!("10.96.0.{}", rng.u8(1..20));
                    i.apply_service(&ns, &name, svc(&ip));
                    model_svc.insert((ns, name), ip);
                }
                1 => {
                    i.delete_service(&ns, &name);
                    model_svc.remove(&(ns, name));
                }
                2 | 3 => {
                    let ips: Vec<String> = (0..rng.u8(0..4)).map(|_| format!("10.1.0.{}", rng.u8(1..20))).collect();
                    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
                    i.apply_slice(&ns, &format!("{name}-{}", rng.u8(0..2)), Some(slice(&name, &ips)));
                }
                4 => i.delete_slice(&ns, &format!("{name}-{}", rng.u8(0..2))),
                5 => {
                    i.apply_namespace(&ns);
                    model_ns.insert(ns);
                }
                6 => {
                    i.delete_namespace(&ns);
                    model_ns.remove(&ns);
                }
                _ => {
                    let ips = svc(&format!("10.1.0.{}", rng.u8(1..20))).cluster_ips;
                    i.apply_pod(&ns, &name, rng.bool().then_some(Pod { ips }));
                }
            }
            i.check();
            for ns in ["ns0", "ns1", "ns2"] {
                assert_eq!(i.namespace(ns.as_bytes()).is_some(), model_ns.contains(ns), "round {round}");
            }
            for ((ns, name), ip) in &model_svc {
                let found = i.find_service_entry(ns, name).and_then(|id| i.service_view(id)).unwrap();
                assert_eq!(found.cluster_ips().iter().next().unwrap().to_string(), *ip, "round {round}");
            }
            assert_eq!(i.count(Kind::Service), model_svc.len());
        }
    }
}
