//! Keeping the index current: one kube-runtime watcher per kind.
//!
//! Each watcher lists (streaming where the server offers it, paginated otherwise), then watches
//! from the list's resourceVersion, and relists after a 410 Gone. Its events go to the index as
//! they come, a batch of those already received under one write lock:
//!
//! | kube-runtime event | index                                                          |
//! |--------------------|----------------------------------------------------------------|
//! | `Init`             | a list begins: a new epoch for the kind                        |
//! | `InitApply(obj)`   | create or replace, stamped with the epoch                      |
//! | `InitDone`         | remove what the list did not see; the kind is synced           |
//! | `Apply(obj)`       | create or replace                                              |
//! | `Delete(obj)`      | remove                                                         |
//!
//! so a relist never empties the index, even for a moment, and never copies it.
//!
//! # Streaming lists, and servers that do not stream
//!
//! A list is first asked for as a streaming list (`sendInitialEvents`, KEP-3157): one watch
//! that sends the state, then a bookmark marking its end. A server without the WatchList
//! feature rejects it (400 or 422), and one that ignores the parameter (an API proxy, an
//! aggregated server) sends the objects but never the end: kube's watcher would wait for it
//! forever, so after [`INITIAL_EVENTS_QUIET`] without news this falls back to paginated lists,
//! for every kind of the cluster.
//!
//! # Outages
//!
//! When the API server is down, slow or answering errors, the index keeps serving what it
//! holds. Failed requests are retried after a backoff (100 ms doubling to 30 s, jittered, reset
//! by success), logged once per outage per kind, and counted in
//! `coredns_kubernetes_watch_restarts_total`; the end of an outage is logged too.

use std::fmt::Debug;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use kube::Api;
use kube::runtime::watcher::{self, Event};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use tokio::sync::watch as signal;
use tokio::time::Instant;

use super::client::ApiState;
use super::index::{Index, IndexOptions};
use super::metrics::ServiceKindLabel;
use super::object::{Kind, NamespaceObject, PodObject, ServiceKind, ServiceObject, SliceObject};
use crate::plugin::Readiness;
use crate::plugin::setup::TaskSet;

/// How long a streaming list may go without an event before the server is taken not to end
/// it, and lists fall back to pages.
pub const INITIAL_EVENTS_QUIET: Duration = Duration::from_secs(2);
/// The most events applied under one write lock.
const MAX_BATCH: usize = 256;
/// Objects a page of a paginated list holds (client-go's default).
const PAGE_SIZE: u32 = 500;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The pods that can answer a name: CoreDNS's field selector, which leaves finished pods out.
const POD_FIELDS: &str = "status.phase!=Succeeded,status.phase!=Failed,status.phase!=Unknown";

/// What is watched, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchOptions {
    /// `labels`: the label selector of Services, EndpointSlices and Pods.
    pub labels: Option<String>,
    /// `namespace_labels`: the label selector of Namespaces.
    pub namespace_labels: Option<String>,
    /// `namespaces`: the only namespaces kept (empty: all).
    pub namespaces: Vec<String>,
    /// `pods verified`: watch Pods.
    pub pods: bool,
    /// Not `noendpoints`: watch EndpointSlices.
    pub endpoints: bool,
    pub index: IndexOptions,
}

/// The watched cluster: the index and the watches that keep it current. Kept across reloads
/// while the connection and filters are unchanged; dropping it stops the watches.
pub struct Cluster {
    pub index: Arc<RwLock<Index>>,
    pub api: Arc<ApiState>,
    synced: signal::Receiver<bool>,
    _tasks: TaskSet,
}

impl Cluster {
    /// Starts watching with `client` on the current tokio runtime.
    pub fn start(client: kube::Client, api: Arc<ApiState>, opts: WatchOptions) -> Cluster {
        let mut kinds = vec![Kind::Service, Kind::Namespace];
        if opts.endpoints {
            kinds.push(Kind::EndpointSlice);
        }
        if opts.pods {
            kinds.push(Kind::Pod);
        }
        let index = Arc::new(RwLock::new(Index::new(opts.index, &kinds)));
        let (synced_tx, synced) = signal::channel(false);
        let shared = Arc::new(Shared {
            index: index.clone(),
            api: api.clone(),
            synced: synced_tx,
            streaming_refused: AtomicBool::new(false),
            namespaces: opts.namespaces.clone(),
        });
        let mut config = watcher::Config::default().page_size(PAGE_SIZE);
        if let Some(l) = &opts.labels {
            config = config.labels(l);
        }
        let mut tasks = TaskSet::new();
        for &kind in &kinds {
            api.metrics.watching(kind);
            match kind {
                Kind::Service => {
                    tasks.spawn(run::<ServiceObject>(shared.clone(), Api::all(client.clone()), config.clone()))
                }
                Kind::EndpointSlice => {
                    tasks.spawn(run::<SliceObject>(shared.clone(), Api::all(client.clone()), config.clone()))
                }
                Kind::Pod => {
                    let config = config.clone().fields(POD_FIELDS);
                    tasks.spawn(run::<PodObject>(shared.clone(), Api::all(client.clone()), config));
                }
                Kind::Namespace => {
                    let mut config = watcher::Config::default().page_size(PAGE_SIZE);
                    if let Some(l) = &opts.namespace_labels {
                        config = config.labels(l);
                    }
                    tasks.spawn(run::<NamespaceObject>(shared.clone(), Api::all(client.clone()), config));
                }
            }
        }
        tasks.spawn(report_silence(api.clone(), kinds));
        Cluster { index, api, synced, _tasks: tasks }
    }

    /// Whether every watch has completed its first list.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Completes once every watch has completed its first list.
    pub fn synced(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.synced.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
}

impl Readiness for Cluster {
    fn ready(&self) -> bool {
        self.is_synced()
    }
}

/// What the watches of a cluster share.
struct Shared {
    index: Arc<RwLock<Index>>,
    api: Arc<ApiState>,
    synced: signal::Sender<bool>,
    /// A server refused or ignored a streaming list: lists are paginated from now on.
    streaming_refused: AtomicBool,
    namespaces: Vec<String>,
}

impl Shared {
    /// Whether objects of namespace `ns` are kept (`namespaces`).
    fn keeps(&self, ns: Option<&str>) -> bool {
        self.namespaces.is_empty() || ns.is_some_and(|ns| self.namespaces.iter().any(|n| n == ns))
    }
}

/// An object kind the index takes.
trait Watched: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static {
    const KIND: Kind;
    /// The namespace `namespaces` filters it by.
    fn filter_namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }
    fn apply(self, index: &mut Index);
    fn delete(&self, index: &mut Index);
    /// For an EndpointSlice with a change trigger time: its service and that time.
    fn trigger(&self) -> Option<(&str, SystemTime)> {
        None
    }
}

/// The namespace and name of an object, which the API always sets.
fn ns_name(meta: &kube::core::ObjectMeta) -> (&str, &str) {
    (meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""))
}

impl Watched for ServiceObject {
    const KIND: Kind = Kind::Service;
    fn apply(self, index: &mut Index) {
        let (ns, name) = ns_name(&self.meta);
        index.apply_service(ns, name, self.service);
    }
    fn delete(&self, index: &mut Index) {
        let (ns, name) = ns_name(&self.meta);
        index.delete_service(ns, name);
    }
}

impl Watched for SliceObject {
    const KIND: Kind = Kind::EndpointSlice;
    fn apply(self, index: &mut Index) {
        let (ns, name) = ns_name(&self.meta);
        index.apply_slice(ns, name, self.slice);
    }
    fn delete(&self, index: &mut Index) {
        let (ns, name) = ns_name(&self.meta);
        index.delete_slice(ns, name);
    }
    fn trigger(&self) -> Option<(&str, SystemTime)> {
        let slice = self.slice.as_ref()?;
        Some((&slice.service, slice.trigger?))
    }
}

impl Watched for PodObject {
    const KIND: Kind = Kind::Pod;
    fn apply(self, index: &mut Index) {
        let (ns, name) = ns_name(&self.meta);
        index.apply_pod(ns, name, self.pod);
    }
    fn delete(&self, index: &mut Index) {
        let (ns, name) = ns_name(&self.meta);
        index.delete_pod(ns, name);
    }
}

impl Watched for NamespaceObject {
    const KIND: Kind = Kind::Namespace;
    fn filter_namespace(&self) -> Option<&str> {
        self.meta.name.as_deref()
    }
    fn apply(self, index: &mut Index) {
        index.apply_namespace(self.meta.name.as_deref().unwrap_or(""));
    }
    fn delete(&self, index: &mut Index) {
        index.delete_namespace(self.meta.name.as_deref().unwrap_or(""));
    }
}

/// An outage of one kind's watch, from its first failure.
struct Outage {
    since: Instant,
    /// The API's successful responses for the kind when it began.
    successes: u64,
}

/// The state of one kind's watch between batches.
struct WatchState {
    kind: Kind,
    /// The current watcher was asked for a streaming list.
    streaming: bool,
    /// While a streaming list is under way: when it is given up for lost.
    deadline: Option<Instant>,
    /// A list has completed (later ones are relists).
    listed: bool,
    outage: Option<Outage>,
    backoff: Backoff,
}

/// Watches kind `K` until the task is aborted.
async fn run<K: Watched>(shared: Arc<Shared>, api: Api<K>, config: watcher::Config) {
    let kind = K::KIND;
    let mut state =
        WatchState { kind, streaming: false, deadline: None, listed: false, outage: None, backoff: Backoff::default() };
    loop {
        state.streaming = !shared.streaming_refused.load(Ordering::Relaxed);
        state.deadline = None;
        let config = if state.streaming { config.clone().streaming_lists() } else { config.clone() };
        let mut stream = pin!(watcher::watcher(api.clone(), config).ready_chunks(MAX_BATCH));
        'stream: loop {
            let batch = tokio::select! {
                batch = stream.next() => batch,
                _ = sleep_until(state.deadline) => {
                    tracing::warn!(
                        target: "plugin/kubernetes",
                        "The API server did not end its streaming list of {kind} within {INITIAL_EVENTS_QUIET:?} of \
                         the last event; listing in pages from now on"
                    );
                    shared.streaming_refused.store(true, Ordering::Relaxed);
                    break 'stream;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if state.outage.is_some() => {
                    // A watch that recovers in a quiet cluster gets no event: the API's answers
                    // tell.
                    if state.outage.as_ref().is_some_and(|o| shared.api.successes(kind) > o.successes) {
                        recovered(kind, state.outage.take());
                    }
                    continue;
                }
            };
            let Some(batch) = batch else { break 'stream };
            let errors = apply_batch(&shared, &mut state, batch);
            let mut pause = false;
            for e in errors {
                match classify(&e, state.streaming) {
                    Failure::Expired => tracing::debug!(target: "plugin/kubernetes", "{kind}: {e}; listing again"),
                    Failure::NoStreaming => {
                        tracing::info!(
                            target: "plugin/kubernetes",
                            "The API server does not serve streaming lists ({e}); listing in pages"
                        );
                        shared.streaming_refused.store(true, Ordering::Relaxed);
                        break 'stream;
                    }
                    Failure::Outage => {
                        shared.api.metrics.restarted(kind);
                        if state.outage.is_none() {
                            tracing::warn!(
                                target: "plugin/kubernetes",
                                "Watching {kind} failed: {e}; answering from the last state seen and retrying"
                            );
                            state.outage =
                                Some(Outage { since: Instant::now(), successes: shared.api.successes(kind) });
                        } else {
                            tracing::debug!(target: "plugin/kubernetes", "Watching {kind} failed again: {e}");
                        }
                        pause = true;
                    }
                }
            }
            if pause {
                // The watcher retries when polled next.
                tokio::time::sleep(state.backoff.next()).await;
            }
        }
    }
}

/// Applies the events of `batch` under one write lock, then records what they made visible;
/// returns the errors among them.
fn apply_batch<K: Watched>(
    shared: &Shared,
    state: &mut WatchState,
    batch: Vec<Result<Event<K>, watcher::Error>>,
) -> Vec<watcher::Error> {
    let kind = state.kind;
    let metrics = &shared.api.metrics;
    let mut errors = Vec::new();
    let mut triggers: Vec<(String, String, SystemTime)> = Vec::new();
    let mut index = shared.index.write();
    let mut synced = false;
    for event in batch {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        state.backoff.reset();
        if state.outage.is_some() {
            recovered(kind, state.outage.take());
        }
        let quiet = state.streaming.then(|| Instant::now() + INITIAL_EVENTS_QUIET);
        match event {
            Event::Init => {
                index.begin_list(kind);
                if state.listed {
                    metrics.relisted(kind);
                }
                state.deadline = quiet;
            }
            Event::InitApply(obj) => {
                if shared.keeps(obj.filter_namespace()) {
                    obj.apply(&mut index);
                }
                state.deadline = quiet;
            }
            Event::InitDone => {
                let removed = index.finish_list(kind);
                tracing::debug!(target: "plugin/kubernetes", "Listed {kind}: {} held, {removed} removed", index.count(kind));
                state.deadline = None;
                state.listed = true;
                synced |= index.synced();
            }
            Event::Apply(obj) => {
                if shared.keeps(obj.filter_namespace()) {
                    if let Some((service, at)) = obj.trigger() {
                        let ns = obj.meta().namespace.clone().unwrap_or_default();
                        triggers.push((ns, service.to_string(), at));
                    }
                    obj.apply(&mut index);
                }
            }
            Event::Delete(obj) => obj.delete(&mut index),
        }
    }
    let now = SystemTime::now();
    index.stamp(now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0));
    let count = index.count(kind);
    let programmed: Vec<(ServiceKindLabel, SystemTime)> = triggers
        .into_iter()
        .filter_map(|(ns, service, at)| {
            let svc = index.service_by_name(&ns, &service)?;
            let label = match svc.kind() {
                ServiceKind::Headless if svc.has_selector() => ServiceKindLabel::HeadlessWithSelector,
                ServiceKind::Headless => ServiceKindLabel::HeadlessWithoutSelector,
                _ => ServiceKindLabel::ClusterIp,
            };
            Some((label, at))
        })
        .collect();
    drop(index);
    metrics.set_objects(kind, count);
    for (label, at) in programmed {
        // The trigger time is the API server's clock; a node whose clock is behind would make
        // the latency negative, which is recorded as zero.
        metrics.programmed(label, now.duration_since(at).unwrap_or_default().as_secs_f64());
    }
    if synced && !*shared.synced.borrow() {
        tracing::info!(target: "plugin/kubernetes", "Synced with the Kubernetes API");
        shared.synced.send_replace(true);
    }
    errors
}

fn recovered(kind: Kind, outage: Option<Outage>) {
    if let Some(o) = outage {
        tracing::info!(
            target: "plugin/kubernetes",
            "Watching {kind} works again, after {}",
            crate::corefile::format_duration(Duration::from_millis(o.since.elapsed().as_millis() as u64))
        );
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What a watch error means.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// 410 Gone: the watch's history is gone; kube's watcher lists again at once.
    Expired,
    /// The server refused a streaming list.
    NoStreaming,
    /// Anything else: the server is down, slow or failing.
    Outage,
}

fn classify(e: &watcher::Error, streaming: bool) -> Failure {
    let code = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    };
    match code {
        Some(410) => Failure::Expired,
        Some(400 | 422) if streaming => Failure::NoStreaming,
        _ => Failure::Outage,
    }
}

/// Exponential backoff with jitter: each delay is drawn from the upper half of a range that
/// doubles from [`BACKOFF_FIRST`] to [`BACKOFF_MAX`].
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: BACKOFF_FIRST }
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let nanos = ceiling.as_nanos() as u64;
        Duration::from_nanos(nanos / 2 + fastrand::u64(0..=nanos / 2))
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// Keeps `coredns_kubernetes_seconds_since_last_event` current, every second.
async fn report_silence(api: Arc<ApiState>, kinds: Vec<Kind>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for &kind in &kinds {
            if let Some(silence) = api.silence(kind) {
                api.metrics.set_since_last_event(kind, silence.as_secs_f64());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_resets() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| b.next()).collect();
        assert!(delays[0] >= BACKOFF_FIRST / 2 && delays[0] <= BACKOFF_FIRST);
        assert!(delays[11] >= BACKOFF_MAX / 2 && delays[11] <= BACKOFF_MAX);
        b.reset();
        assert!(b.next() <= BACKOFF_FIRST);
    }

    #[test]
    fn errors_are_expiry_refused_streaming_or_outage() {
        let status = |code| Box::new(kube::core::Status { code, ..Default::default() });
        let api = |code| kube::Error::Api(status(code));
        assert_eq!(classify(&watcher::Error::WatchError(status(410)), true), Failure::Expired);
        assert_eq!(classify(&watcher::Error::WatchStartFailed(api(422)), true), Failure::NoStreaming);
        assert_eq!(classify(&watcher::Error::WatchStartFailed(api(400)), true), Failure::NoStreaming);
        assert_eq!(classify(&watcher::Error::WatchStartFailed(api(422)), false), Failure::Outage);
        assert_eq!(classify(&watcher::Error::InitialListFailed(api(503)), false), Failure::Outage);
        assert_eq!(classify(&watcher::Error::NoResourceVersion, true), Failure::Outage);
    }
}
