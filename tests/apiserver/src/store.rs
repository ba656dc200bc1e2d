//! The object store: every object once, as the JSON the API returns; one resourceVersion counter
//! for all writes; per resource an index ordered as etcd's keys and a bounded history of events.
//!
//! The history does three jobs. Watches replay it from the resourceVersion they ask for, and
//! follow it as it grows (a watch is a cursor into it, so writers never wait for watchers). Lists
//! at an older resourceVersion, which is what continue tokens ask for, are the current objects with
//! the changes made since rolled back from it. And once an event falls off its front, the
//! resourceVersions before it are gone: watches and continue tokens from there get 410, as they do
//! from kube-apiserver once etcd has compacted or the watch cache has moved on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;
use tokio::sync::watch;

use crate::Kind;
use crate::object::ClusterObject;
use crate::selector::Selectors;

/// One stored version of an object.
#[derive(Debug)]
pub(crate) struct Object {
    /// Its `metadata.resourceVersion`.
    pub rv: u64,
    /// The object as the API returns it.
    pub json: Box<[u8]>,
}

/// A watch event's `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change to one object.
#[derive(Debug)]
pub(crate) struct Event {
    pub ty: EventType,
    pub rv: u64,
    pub key: Box<str>,
    /// The object after the change; for a deletion, its last state at the deletion's
    /// resourceVersion, as the DELETED event carries it.
    pub object: Arc<Object>,
    /// The object before the change, `None` when it was created.
    pub prev: Option<Arc<Object>>,
}

/// Which objects of a kind a request covers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope<'a> {
    All,
    Namespace(&'a str),
}

impl Scope<'_> {
    pub(crate) fn contains(&self, key: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Namespace(ns) => key.strip_prefix(ns).is_some_and(|rest| rest.starts_with('/')),
        }
    }

    /// The key range of the scope, from `start` on if that lies further.
    fn bounds(&self, start: Option<&str>) -> (Bound<String>, Bound<String>) {
        let (lo, hi) = match self {
            Scope::All => (None, Bound::Unbounded),
            // '0' follows '/', so "ns0" is the first key past every "ns/...".
            Scope::Namespace(ns) => (Some(format!("{ns}/")), Bound::Excluded(format!("{ns}0"))),
        };
        let lo = match (lo, start) {
            (Some(lo), Some(start)) if start > lo.as_str() => Some(start.to_owned()),
            (None, Some(start)) => Some(start.to_owned()),
            (lo, _) => lo,
        };
        (lo.map_or(Bound::Unbounded, Bound::Included), hi)
    }
}

/// What a list asks for.
#[derive(Debug)]
pub(crate) struct ListQuery<'a> {
    pub scope: Scope<'a>,
    /// The resourceVersion to list at; `None` is the current state.
    pub at: Option<u64>,
    /// The first key to return (from a continue token).
    pub start: Option<&'a str>,
    /// How many keys earlier pages covered, for `remainingItemCount`.
    pub offset: u64,
    pub limit: Option<usize>,
    pub selectors: &'a Selectors,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page {
    pub items: Vec<Arc<Object>>,
    /// The resourceVersion the page shows the objects at.
    pub rv: u64,
    /// Where the next page starts (key, offset), when there are more objects.
    pub next: Option<(String, u64)>,
    /// How many objects the following pages hold, when the list has no selectors.
    pub remaining: Option<i64>,
}

/// The history no longer reaches back to the resourceVersion asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Expired {
    /// The oldest resourceVersion the history still starts from.
    pub floor: u64,
}

struct Resource {
    objects: BTreeMap<Box<str>, Arc<Object>>,
    namespace_counts: HashMap<Box<str>, usize>,
    history: VecDeque<Arc<Event>>,
    /// Every change after this resourceVersion is in `history`: new watches and continue tokens
    /// from before it get 410. Compaction moves it to the current resourceVersion.
    floor: u64,
    /// The newest event that left `history`. An open watch that has passed it has lost nothing,
    /// even if a compaction moved `floor` past where it stands.
    dropped: u64,
    /// The resourceVersion of the newest event, for watches to wait on.
    notify: watch::Sender<u64>,
}

impl Resource {
    fn new(rv: u64) -> Self {
        Resource {
            objects: BTreeMap::new(),
            namespace_counts: HashMap::new(),
            history: VecDeque::new(),
            floor: rv,
            dropped: rv,
            notify: watch::Sender::new(rv),
        }
    }

    fn count(&self, scope: Scope<'_>) -> usize {
        match scope {
            Scope::All => self.objects.len(),
            Scope::Namespace(ns) => self.namespace_counts.get(ns).copied().unwrap_or(0),
        }
    }

    fn adjust_count(&mut self, key: &str, added: bool) {
        let Some((ns, _)) = key.split_once('/') else {
            return;
        };
        if added {
            *self.namespace_counts.entry(ns.into()).or_default() += 1;
        } else if let Some(n) = self.namespace_counts.get_mut(ns) {
            *n -= 1;
            if *n == 0 {
                self.namespace_counts.remove(ns);
            }
        }
    }

    fn record(&mut self, event: Event, limit: usize) {
        let rv = event.rv;
        self.history.push_back(Arc::new(event));
        while self.history.len() > limit {
            let dropped = self.history.pop_front().expect("longer than the limit");
            self.floor = dropped.rv;
            self.dropped = dropped.rv;
        }
        self.notify.send_replace(rv);
    }
}

/// The objects of every kind, and their history.
pub(crate) struct Store {
    rv: u64,
    history_limit: usize,
    resources: [Resource; 4],
    uids: u64,
    /// The current resourceVersion, for requests that wait for the store to reach one.
    rv_notify: watch::Sender<u64>,
}

impl Store {
    /// An empty store keeping the last `history_limit` events of each kind.
    pub(crate) fn new(history_limit: usize) -> Self {
        // Like a fresh etcd, the first revision is 1: "0" means "any" in the API.
        let rv = 1;
        Store {
            rv,
            history_limit: history_limit.max(1),
            resources: Kind::ALL.map(|_| Resource::new(rv)),
            uids: 0,
            rv_notify: watch::Sender::new(rv),
        }
    }

    /// The resourceVersion of the latest write.
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    fn resource(&self, kind: Kind) -> &Resource {
        &self.resources[kind.index()]
    }

    /// A receiver that sees the resourceVersion of each new event of `kind`.
    pub(crate) fn subscribe(&self, kind: Kind) -> watch::Receiver<u64> {
        self.resource(kind).notify.subscribe()
    }

    /// A receiver that sees the store's resourceVersion.
    pub(crate) fn subscribe_rv(&self) -> watch::Receiver<u64> {
        self.rv_notify.subscribe()
    }

    /// The oldest resourceVersion a watch of `kind` can start from.
    pub(crate) fn floor(&self, kind: Kind) -> u64 {
        self.resource(kind).floor
    }

    /// The number of objects of `kind`.
    pub(crate) fn len(&self, kind: Kind) -> usize {
        self.resource(kind).objects.len()
    }

    pub(crate) fn get(&self, kind: Kind, key: &str) -> Option<Arc<Object>> {
        self.resource(kind).objects.get(key).cloned()
    }

    /// Creates or replaces objects, each write with its own resourceVersion, as a series of
    /// updates would. A replacement identical to what is stored changes nothing and sends no
    /// event, as kube-apiserver skips no-op updates. Returns the resourceVersion after the batch.
    ///
    /// `uid` and `creationTimestamp` are kept from the stored object when the new one lacks them,
    /// and made up for new objects without them.
    pub(crate) fn apply(&mut self, objects: Vec<(String, ClusterObject)>) -> u64 {
        let limit = self.history_limit;
        for (key, mut object) in objects {
            let kind = object.kind();
            let current = self.resource(kind).objects.get(key.as_str()).cloned();
            let meta = object.metadata_mut();
            match &current {
                Some(current) => {
                    if meta.uid.is_none() || meta.creation_timestamp.is_none() {
                        let kept = IdentityMeta::parse(&current.json);
                        meta.uid = meta.uid.take().or(kept.metadata.uid);
                        meta.creation_timestamp = meta.creation_timestamp.take().or(kept.metadata.creation_timestamp);
                    }
                    meta.resource_version = Some(current.rv.to_string());
                    if *object.to_json() == *current.json {
                        continue;
                    }
                }
                None => {
                    if meta.uid.is_none() {
                        self.uids += 1;
                        meta.uid = Some(format!("00000000-0000-4000-8000-{:012x}", self.uids));
                    }
                    if meta.creation_timestamp.is_none() {
                        meta.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
                    }
                }
            }
            self.rv += 1;
            let rv = self.rv;
            object.metadata_mut().resource_version = Some(rv.to_string());
            let stored = Arc::new(Object { rv, json: object.to_json().into_boxed_slice() });
            let res = &mut self.resources[kind.index()];
            let key: Box<str> = key.into();
            res.objects.insert(key.clone(), stored.clone());
            if current.is_none() {
                res.adjust_count(&key, true);
            }
            let ty = if current.is_some() { EventType::Modified } else { EventType::Added };
            res.record(Event { ty, rv, key, object: stored, prev: current }, limit);
        }
        self.rv_notify.send_replace(self.rv);
        self.rv
    }

    /// Deletes objects; missing ones are skipped. Returns the resourceVersion after the batch and
    /// how many objects were deleted.
    pub(crate) fn delete(&mut self, refs: &[(Kind, String)]) -> (u64, usize) {
        let limit = self.history_limit;
        let mut deleted = 0;
        for (kind, key) in refs {
            let res = &mut self.resources[kind.index()];
            let Some((key, prev)) = res.objects.remove_entry(key.as_str()) else {
                continue;
            };
            res.adjust_count(&key, false);
            self.rv += 1;
            let rv = self.rv;
            let object = Arc::new(Object { rv, json: with_resource_version(&prev.json, rv) });
            res.record(Event { ty: EventType::Deleted, rv, key, object, prev: Some(prev) }, limit);
            deleted += 1;
        }
        self.rv_notify.send_replace(self.rv);
        (self.rv, deleted)
    }

    /// Forgets all history, as an etcd compaction at the current revision does: watches and
    /// continue tokens from before now get 410.
    pub(crate) fn compact(&mut self) {
        for res in &mut self.resources {
            if let Some(newest) = res.history.back() {
                res.dropped = newest.rv;
            }
            res.history.clear();
            res.floor = self.rv;
        }
    }

    /// The events of `kind` after resourceVersion `after`, appended to `out`, for a watch that has
    /// seen everything up to `after`; `Expired` when some of them have already left the history.
    /// (A new watch checks [`Store::floor`] first.)
    pub(crate) fn events_since(&self, kind: Kind, after: u64, out: &mut Vec<Arc<Event>>) -> Result<(), Expired> {
        let res = self.resource(kind);
        if after < res.dropped {
            return Err(Expired { floor: res.dropped });
        }
        let first = res.history.partition_point(|e| e.rv <= after);
        out.extend(res.history.range(first..).cloned());
        Ok(())
    }

    /// One page of objects, as they were at `query.at`, in key order.
    pub(crate) fn list(&self, kind: Kind, query: &ListQuery<'_>) -> Result<Page, Expired> {
        let res = self.resource(kind);
        let at = query.at.unwrap_or(self.rv);
        if at < res.floor {
            return Err(Expired { floor: res.floor });
        }
        // What the keys changed since `at` held then: the state before their first later change.
        let mut then: BTreeMap<&str, Option<&Arc<Object>>> = BTreeMap::new();
        let first = res.history.partition_point(|e| e.rv <= at);
        for event in res.history.range(first..) {
            if query.scope.contains(&event.key) {
                then.entry(&*event.key).or_insert(event.prev.as_ref());
            }
        }
        let total = then.iter().fold(res.count(query.scope) as i64, |n, (key, before)| {
            n + i64::from(before.is_some()) - i64::from(res.objects.contains_key(*key))
        });

        let bounds = query.scope.bounds(query.start);
        let range = (bounds.0.as_ref().map(String::as_str), bounds.1.as_ref().map(String::as_str));
        let mut now = res.objects.range::<str, _>(range).map(|(k, v)| (&**k, Some(v))).peekable();
        let mut changed = then.range::<str, _>(range).map(|(k, v)| (*k, *v)).peekable();

        let limit = query.limit.unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut scanned = 0u64;
        let mut last_key = None;
        let mut more = false;
        loop {
            let (key, object) = match (now.peek(), changed.peek()) {
                (None, None) => break,
                (Some(_), None) => now.next(),
                (None, Some(_)) => changed.next(),
                (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                    std::cmp::Ordering::Less => now.next(),
                    std::cmp::Ordering::Greater => changed.next(),
                    std::cmp::Ordering::Equal => {
                        now.next();
                        changed.next()
                    }
                },
            }
            .expect("peeked");
            let Some(object) = object else { continue };
            if items.len() == limit {
                more = true;
                break;
            }
            scanned += 1;
            last_key = Some(key);
            if query.selectors.matches(&object.json) {
                items.push(object.clone());
            }
        }
        let offset = query.offset + scanned;
        let next = match last_key {
            Some(key) if more => Some((format!("{key}\0"), offset)),
            _ => None,
        };
        let remaining = (more && query.selectors.is_empty()).then(|| total - offset as i64);
        Ok(Page { items, rv: at, next, remaining })
    }
}

/// The metadata an update keeps when the new object leaves it out.
#[derive(Deserialize)]
struct IdentityMeta {
    metadata: IdentityFields,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityFields {
    uid: Option<String>,
    creation_timestamp: Option<Time>,
}

impl IdentityMeta {
    fn parse(json: &[u8]) -> Self {
        serde_json::from_slice(json).expect("stored objects have metadata")
    }
}

/// `json` (a stored object) with `metadata.resourceVersion` set to `rv`.
pub(crate) fn with_resource_version(json: &[u8], rv: u64) -> Box<[u8]> {
    let mut value: serde_json::Value = serde_json::from_slice(json).expect("stored objects are JSON");
    value["metadata"]["resourceVersion"] = rv.to_string().into();
    serde_json::to_vec(&value).expect("JSON values serialize").into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::LabelSelector;
    use k8s_openapi::api::core::v1::Service;

    fn svc(ns: &str, name: &str, app: &str) -> (String, ClusterObject) {
        let mut s = Service::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some(ns.into());
        s.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        let object = ClusterObject::from(s);
        (object.key().unwrap(), object)
    }

    fn names(page: &Page) -> Vec<String> {
        page.items
            .iter()
            .map(|o| {
                let v: serde_json::Value = serde_json::from_slice(&o.json).unwrap();
                format!("{}/{}", v["metadata"]["namespace"].as_str().unwrap(), v["metadata"]["name"].as_str().unwrap())
            })
            .collect()
    }

    fn query<'a>(selectors: &'a Selectors) -> ListQuery<'a> {
        ListQuery { scope: Scope::All, at: None, start: None, offset: 0, limit: None, selectors }
    }

    #[test]
    fn every_write_takes_the_next_resource_version() {
        let mut store = Store::new(100);
        assert_eq!(store.apply(vec![svc("a", "x", "1"), svc("a", "y", "1")]), 3);
        let x = store.get(Kind::Service, "a/x").unwrap();
        assert_eq!(x.rv, 2);
        let v: serde_json::Value = serde_json::from_slice(&x.json).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "2");
        assert_eq!(v["kind"], "Service");
        assert!(v["metadata"]["uid"].is_string() && v["metadata"]["creationTimestamp"].is_string());

        // The same object again is a no-op; a changed one keeps its uid.
        assert_eq!(store.apply(vec![svc("a", "x", "1")]), 3);
        assert_eq!(store.apply(vec![svc("a", "x", "2")]), 4);
        let v2: serde_json::Value = serde_json::from_slice(&store.get(Kind::Service, "a/x").unwrap().json).unwrap();
        assert_eq!(v2["metadata"]["uid"], v["metadata"]["uid"]);

        assert_eq!(store.delete(&[(Kind::Service, "a/x".into()), (Kind::Service, "a/gone".into())]), (5, 1));
        let mut events = Vec::new();
        store.events_since(Kind::Service, 1, &mut events).unwrap();
        let seen: Vec<_> = events.iter().map(|e| (e.ty, e.rv)).collect();
        use EventType::*;
        assert_eq!(seen, [(Added, 2), (Added, 3), (Modified, 4), (Deleted, 5)]);
        let deleted: serde_json::Value = serde_json::from_slice(&events[3].object.json).unwrap();
        assert_eq!(deleted["metadata"]["resourceVersion"], "5", "DELETED carries the deletion's resourceVersion");
    }

    #[test]
    fn history_is_bounded() {
        let mut store = Store::new(2);
        store.apply(vec![svc("a", "x", "1"), svc("a", "y", "1"), svc("a", "z", "1")]);
        let mut events = Vec::new();
        assert_eq!(store.events_since(Kind::Service, 1, &mut events), Err(Expired { floor: 2 }));
        store.events_since(Kind::Service, 2, &mut events).unwrap();
        assert_eq!(events.len(), 2);
        store.compact();
        assert_eq!((store.floor(Kind::Service), store.floor(Kind::Pod)), (4, 4), "new watches from before now get 410");
        assert_eq!(store.events_since(Kind::Service, 3, &mut events), Err(Expired { floor: 4 }), "event 4 is gone");
        assert!(store.events_since(Kind::Service, 4, &mut Vec::new()).is_ok());
        assert!(store.events_since(Kind::Pod, 1, &mut Vec::new()).is_ok(), "an open pod watch lost no pod event");
    }

    #[test]
    fn pages_follow_key_order_and_count_what_remains() {
        let mut store = Store::new(100);
        store.apply(vec![svc("b", "1", "x"), svc("a", "2", "y"), svc("a", "1", "x"), svc("c", "1", "y")]);
        let all = Selectors::default();
        let mut q = query(&all);
        q.limit = Some(3);
        let page = store.list(Kind::Service, &q).unwrap();
        assert_eq!(names(&page), ["a/1", "a/2", "b/1"]);
        assert_eq!(page.remaining, Some(1));
        let (start, offset) = page.next.clone().unwrap();
        let q2 = ListQuery { start: Some(&start), offset, at: Some(page.rv), ..query(&all) };
        let page2 = store.list(Kind::Service, &q2).unwrap();
        assert_eq!(names(&page2), ["c/1"]);
        assert!(page2.next.is_none() && page2.remaining.is_none());

        let ns = ListQuery { scope: Scope::Namespace("a"), limit: Some(1), ..query(&all) };
        let page = store.list(Kind::Service, &ns).unwrap();
        assert_eq!((names(&page), page.remaining), (vec!["a/1".to_string()], Some(1)));

        let only_x = Selectors { labels: LabelSelector::parse("app=x").unwrap(), ..Selectors::default() };
        let q = ListQuery { limit: Some(1), ..query(&only_x) };
        let page = store.list(Kind::Service, &q).unwrap();
        assert_eq!(names(&page), ["a/1"]);
        assert_eq!(page.remaining, None, "no remainingItemCount with a selector");
    }

    #[test]
    fn continuing_shows_the_first_page_snapshot() {
        let mut store = Store::new(100);
        store.apply(vec![svc("a", "1", "x"), svc("a", "2", "x"), svc("a", "3", "x")]);
        let all = Selectors::default();
        let first = store.list(Kind::Service, &ListQuery { limit: Some(1), ..query(&all) }).unwrap();
        let (start, offset) = first.next.clone().unwrap();

        // After the first page: a/2 deleted, a/3 changed, a/4 created.
        store.delete(&[(Kind::Service, "a/2".into())]);
        store.apply(vec![svc("a", "3", "changed"), svc("a", "4", "x")]);

        let rest = store
            .list(Kind::Service, &ListQuery { start: Some(&start), offset, at: Some(first.rv), ..query(&all) })
            .unwrap();
        assert_eq!(names(&rest), ["a/2", "a/3"]);
        assert!(rest.items.iter().all(|o| o.rv <= first.rv));
        assert_eq!(rest.rv, first.rv);

        store.compact();
        let err =
            store.list(Kind::Service, &ListQuery { start: Some(&start), offset, at: Some(first.rv), ..query(&all) });
        assert_eq!(err.unwrap_err(), Expired { floor: store.rv() });
        let now = store.list(Kind::Service, &ListQuery { start: Some(&start), ..query(&all) }).unwrap();
        assert_eq!(names(&now), ["a/3", "a/4"]);
    }
}
