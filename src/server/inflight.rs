//! Counting the queries and connections still being served, so shutdown can wait for them. The
//! UDP workers, the TCP connections and the listeners that start them all hold it; each UDP
//! worker also counts its own queries that wait, to know where to sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Counts queries and connections still being served, for graceful shutdown.
#[derive(Default)]
pub struct InFlight {
    n: AtomicUsize,
    idle: Notify,
}

/// Held while a query or connection is being served.
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.n.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    /// Nothing is being served.
    pub(super) fn idle(&self) -> bool {
        self.n.load(Ordering::Acquire) == 0
    }

    pub(super) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.n.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
