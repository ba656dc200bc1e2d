//! *ready*: an HTTP endpoint that answers `200 OK` once every plugin that reports readiness, in
//! the server blocks using *ready* on the same address, is ready; `503` with the names of those
//! that are not (sorted, comma-separated) until then, and `503 Shutting down` from the moment
//! shutdown begins, so endpoint controllers stop sending queries during the lameduck period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::http::{HttpHandler, HttpRequest, HttpResponse};
use crate::plugin::Readiness;
use crate::plugin::lifecycle::Lifecycle;

mod setup;
pub use setup::parse;

pub const NAME: &str = "ready";
/// The fixed path of the endpoint.
pub const PATH: &str = "/ready";

/// How a plugin is polled once it has said it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// Never again: readiness is assumed to last (the default, and CoreDNS's).
    UntilReady,
    /// On every request: a plugin may become unready again (lost its API connection, say).
    Continuously,
}

/// One plugin's readiness as a block reported it.
struct Watched {
    name: &'static str,
    readiness: Arc<dyn Readiness>,
    monitor: Monitor,
    /// Said ready once; with [`Monitor::UntilReady`] it is not asked again.
    was_ready: AtomicBool,
}

/// The `/ready` endpoint of one address, shared by every block that names the address.
pub struct Ready {
    lifecycle: Arc<Lifecycle>,
    watched: Mutex<Vec<Watched>>,
}

impl Ready {
    pub fn new(lifecycle: Arc<Lifecycle>) -> Ready {
        Ready { lifecycle, watched: Mutex::new(Vec::new()) }
    }

    /// Adds the readiness reports of one server block.
    pub fn watch(&self, plugins: Vec<(&'static str, Arc<dyn Readiness>)>, monitor: Monitor) {
        let mut watched = self.watched.lock().expect("ready lock");
        for (name, readiness) in plugins {
            watched.push(Watched { name, readiness, monitor, was_ready: AtomicBool::new(false) });
        }
    }

    /// The names of the plugins not ready now, sorted and without repeats: a plugin used in
    /// several blocks is ready when every one of its instances is.
    pub fn not_ready(&self) -> Vec<&'static str> {
        let watched = self.watched.lock().expect("ready lock");
        let mut names: Vec<&'static str> = Vec::new();
        for w in watched.iter() {
            if w.monitor == Monitor::UntilReady && w.was_ready.load(Ordering::Relaxed) {
                continue;
            }
            if w.readiness.ready() {
                w.was_ready.store(true, Ordering::Relaxed);
            } else {
                names.push(w.name);
            }
        }
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl HttpHandler for Ready {
    fn handle(&self, _req: &HttpRequest<'_>) -> HttpResponse {
        if self.lifecycle.shutting_down() {
            return HttpResponse::text(503, "Shutting down");
        }
        let not_ready = self.not_ready();
        if not_ready.is_empty() {
            return HttpResponse::text(200, "OK");
        }
        let list = not_ready.join(",");
        tracing::info!(target: "plugin/ready", "Plugins not ready: {list:?}");
        HttpResponse::text(503, list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Ready when its flag says so; counts how often it was asked.
    #[derive(Default)]
    struct Fake {
        ready: AtomicBool,
        asked: AtomicUsize,
    }

    impl Readiness for Fake {
        fn ready(&self) -> bool {
            self.asked.fetch_add(1, Ordering::Relaxed);
            self.ready.load(Ordering::Relaxed)
        }
    }

    fn get(r: &Ready) -> (u16, String) {
        let resp = r.handle(&HttpRequest { path: PATH, accept: None });
        (resp.status, String::from_utf8(resp.body).unwrap())
    }

    #[test]
    fn ok_without_plugins_that_report() {
        assert_eq!(get(&Ready::new(Arc::new(Lifecycle::new()))), (200, "OK".into()));
    }

    #[test]
    fn lists_the_plugins_not_ready_sorted_and_once() {
        let r = Ready::new(Arc::new(Lifecycle::new()));
        let (k1, k2, f) = (Arc::new(Fake::default()), Arc::new(Fake::default()), Arc::new(Fake::default()));
        r.watch(vec![("kubernetes", k1.clone()), ("file", f.clone())], Monitor::UntilReady);
        r.watch(vec![("kubernetes", k2.clone())], Monitor::UntilReady);
        assert_eq!(get(&r), (503, "file,kubernetes".into()));
        f.ready.store(true, Ordering::Relaxed);
        k1.ready.store(true, Ordering::Relaxed);
        // One kubernetes instance is still syncing: the name stays listed.
        assert_eq!(get(&r), (503, "kubernetes".into()));
        k2.ready.store(true, Ordering::Relaxed);
        assert_eq!(get(&r), (200, "OK".into()));
    }

    #[test]
    fn until_ready_stops_asking_and_continuously_keeps_asking() {
        let r = Ready::new(Arc::new(Lifecycle::new()));
        let (once, always) = (Arc::new(Fake::default()), Arc::new(Fake::default()));
        once.ready.store(true, Ordering::Relaxed);
        always.ready.store(true, Ordering::Relaxed);
        r.watch(vec![("file", once.clone())], Monitor::UntilReady);
        r.watch(vec![("kubernetes", always.clone())], Monitor::Continuously);
        assert_eq!(get(&r), (200, "OK".into()));
        once.ready.store(false, Ordering::Relaxed);
        always.ready.store(false, Ordering::Relaxed);
        assert_eq!(get(&r), (503, "kubernetes".into()));
        assert_eq!(once.asked.load(Ordering::Relaxed), 1);
        assert_eq!(always.asked.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn shutting_down_is_not_ready() {
        let lifecycle = Arc::new(Lifecycle::new());
        let r = Ready::new(lifecycle.clone());
        lifecycle.begin_shutdown();
        assert_eq!(get(&r), (503, "Shutting down".into()));
    }
}
