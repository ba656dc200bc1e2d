//! Watch streams: newline-delimited JSON events in a chunked response, each a cursor that follows
//! its kind's history in the store.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::Kind;
use crate::body::CHUNK;
use crate::http::wait_for_rv;
use crate::selector::Selectors;
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{Event, EventType, ListQuery, Scope, with_resource_version};

/// Where a watch begins.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Start {
    /// The current state (at least `not_older_than`) as ADDED events, then the changes after it.
    /// With `end_bookmark`, a BOOKMARK annotated `k8s.io/initial-events-end` marks where the
    /// state ends, as for `sendInitialEvents=true`.
    InitialEvents { not_older_than: Option<u64>, end_bookmark: bool },
    /// The changes after this resourceVersion.
    After(u64),
    /// The changes from now on.
    Now,
}

/// A watch request.
#[derive(Debug)]
pub(crate) struct WatchSpec {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    pub start: Start,
    pub bookmarks: bool,
    pub timeout: Duration,
}

type Sender = mpsc::Sender<Result<Bytes, io::Error>>;

/// Starts a watch; the receiver is the response body.
pub(crate) fn spawn(shared: Arc<Shared>, spec: WatchSpec) -> mpsc::Receiver<Result<Bytes, io::Error>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let _open = shared.faults.watch_opened();
        Watch { shared: &shared, spec, out: Out { tx: &tx, buf: Vec::new() }, cursor: 0 }.run().await;
    });
    rx
}

struct Watch<'a> {
    shared: &'a Shared,
    spec: WatchSpec,
    out: Out<'a>,
    /// Every event of the kind up to this resourceVersion has been sent (or filtered out).
    cursor: u64,
}

/// Why a stream ends early.
struct Closed;

impl Watch<'_> {
    async fn run(mut self) {
        let deadline = Instant::now() + self.spec.timeout;
        let mut cuts = self.shared.faults.subscribe_cuts();
        let Ok(mut changes) = self.begin().await else {
            return;
        };

        let period = self.shared.bookmark_interval;
        let mut bookmarks = tokio::time::interval_at(Instant::now() + period, period);
        bookmarks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // What changed between the start and the subscription is already in the history.
        if self.send_changes(false).await.is_err() {
            return;
        }
        loop {
            let step = tokio::select! {
                _ = cuts.changed() => {
                    if cuts.borrow().abort {
                        // An error frame makes hyper cut the connection mid-stream.
                        let _ = self.out.tx.send(Err(io::Error::other("watch broken by the test"))).await;
                    }
                    return;
                }
                _ = self.out.tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                changed = changes.changed() => match changed {
                    Ok(()) => self.send_changes(false).await,
                    Err(_) => Err(Closed),
                },
                _ = bookmarks.tick(), if self.spec.bookmarks => self.send_changes(true).await,
            };
            if step.is_err() {
                return;
            }
        }
    }

    /// Sends what the watch starts with; returns the receiver of the kind's changes.
    async fn begin(&mut self) -> Result<tokio::sync::watch::Receiver<u64>, Closed> {
        let wait = match self.spec.start {
            Start::After(rv) | Start::InitialEvents { not_older_than: Some(rv), .. } => Some(rv),
            _ => None,
        };
        if let Some(rv) = wait
            && let Err(error) = wait_for_rv(self.shared, rv).await
        {
            return self.fail(&error).await;
        }

        let kind = self.spec.kind;
        let begun = {
            let store = self.shared.store.read();
            let changes = store.subscribe(kind);
            match self.spec.start {
                Start::InitialEvents { .. } => {
                    let query = ListQuery {
                        scope: self.scope(),
                        at: None,
                        start: None,
                        offset: 0,
                        limit: None,
                        selectors: &self.spec.selectors,
                    };
                    let page = store.list(kind, &query).expect("the current state can always be listed");
                    Ok((changes, page.rv, page.items))
                }
                Start::After(rv) if rv < store.floor(kind) => Err(ApiError::watch_expired(rv, store.floor(kind))),
                Start::After(rv) => Ok((changes, rv, Vec::new())),
                Start::Now => Ok((changes, store.rv(), Vec::new())),
            }
        };
        let (changes, cursor, initial) = match begun {
            Ok(begun) => begun,
            Err(error) => return self.fail(&error).await,
        };
        self.cursor = cursor;
        let cuts = self.shared.faults.subscribe_cuts();
        for object in initial {
            self.out.event("ADDED", &object.json);
            if self.out.buf.len() >= CHUNK {
                self.out.flush().await?;
                if cuts.has_changed().unwrap_or(true) {
                    return Err(Closed);
                }
            }
        }
        if let Start::InitialEvents { end_bookmark: true, .. } = self.spec.start {
            self.out.bookmark(kind, self.cursor, true);
        }
        self.out.flush().await?;
        Ok(changes)
    }

    async fn fail<T>(&mut self, error: &ApiError) -> Result<T, Closed> {
        // As kube-apiserver does once a watch is accepted, the failure is an ERROR event.
        self.out.event("ERROR", &error.to_json());
        let _ = self.out.flush().await;
        Err(Closed)
    }

    fn scope(&self) -> Scope<'_> {
        match &self.spec.namespace {
            Some(ns) => Scope::Namespace(ns),
            None => Scope::All,
        }
    }

    /// Sends the events after the cursor, then a bookmark if asked for.
    async fn send_changes(&mut self, bookmark: bool) -> Result<(), Closed> {
        let mut events = Vec::new();
        let now = {
            let store = self.shared.store.read();
            // A watch that let the history run past it is closed, as kube-apiserver closes
            // watchers that cannot keep up; the client resumes, and gets 410 if it must relist.
            store.events_since(self.spec.kind, self.cursor, &mut events).map_err(|_| Closed)?;
            store.rv()
        };
        for event in &events {
            self.encode(event);
            if self.out.buf.len() >= CHUNK {
                self.out.flush().await?;
            }
        }
        // Every event of the kind up to `now` was in `events`.
        self.cursor = now;
        if bookmark {
            self.out.bookmark(self.spec.kind, now, false);
        }
        self.out.flush().await?;
        if bookmark {
            self.shared.faults.bookmark_sent();
        }
        Ok(())
    }

    /// Writes `event` as this watch sees it: with a selector, an object that starts matching is
    /// ADDED and one that stops matching is DELETED, as the watch cache does.
    fn encode(&mut self, event: &Event) {
        if !self.scope().contains(&event.key) {
            return;
        }
        let selectors = &self.spec.selectors;
        if selectors.is_empty() {
            self.out.event(event.ty.as_str(), &event.object.json);
            return;
        }
        let before = event.prev.as_ref().is_some_and(|p| selectors.matches(&p.json));
        let after = event.ty != EventType::Deleted && selectors.matches(&event.object.json);
        match (event.ty, before, after) {
            (EventType::Deleted, true, _) => self.out.event("DELETED", &event.object.json),
            (EventType::Modified, true, true) => self.out.event("MODIFIED", &event.object.json),
            (_, false, true) => self.out.event("ADDED", &event.object.json),
            (EventType::Modified, true, false) => {
                let prev = event.prev.as_ref().expect("a modification has a previous object");
                self.out.event("DELETED", &with_resource_version(&prev.json, event.rv));
            }
            _ => {}
        }
    }
}

/// The response body being written.
struct Out<'a> {
    tx: &'a Sender,
    buf: Vec<u8>,
}

impl Out<'_> {
    fn event(&mut self, ty: &str, object: &[u8]) {
        self.buf.extend_from_slice(b"{\"type\":\"");
        self.buf.extend_from_slice(ty.as_bytes());
        self.buf.extend_from_slice(b"\",\"object\":");
        self.buf.extend_from_slice(object);
        self.buf.extend_from_slice(b"}\n");
    }

    /// A BOOKMARK: an object of the watched kind carrying only its resourceVersion.
    fn bookmark(&mut self, kind: Kind, rv: u64, initial_events_end: bool) {
        let info = kind.info();
        let annotations =
            if initial_events_end { r#","annotations":{"k8s.io/initial-events-end":"true"}"# } else { "" };
        let object = format!(
            r#"{{"kind":"{}","apiVersion":"{}","metadata":{{"resourceVersion":"{rv}"{annotations}}}}}"#,
            info.kind, info.api_version
        );
        self.event("BOOKMARK", object.as_bytes());
    }

    /// Sends what is buffered; `Closed` when the client has gone.
    async fn flush(&mut self) -> Result<(), Closed> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(Ok(chunk)).await.map_err(|_| Closed)
    }
}
