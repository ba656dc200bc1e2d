//! The process's lifecycle as plugins see it: health and readiness endpoints report it, and
//! waits that should not delay a shutdown watch it.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Whether the server is shutting down. Set at the start of the lameduck period: `/ready` turns
/// 503 at once so endpoints controllers stop sending traffic, while `/health` stays 200 and
/// queries are still answered until the period ends.
#[derive(Debug, Default)]
pub struct Lifecycle {
    shutting_down: AtomicBool,
    changed: Notify,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Completes once shutdown has begun.
    pub async fn stopping(&self) {
        loop {
            let changed = self.changed.notified();
            if self.shutting_down() {
                return;
            }
            changed.await;
        }
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
}
