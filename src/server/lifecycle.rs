//! The process's lifecycle as health and readiness endpoints report it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the server is shutting down. Set at the start of the lameduck period: `/ready` turns
/// 503 at once so endpoints controllers stop sending traffic, while `/health` stays 200 and
/// queries are still answered until the period ends.
#[derive(Debug, Default)]
pub struct Lifecycle {
    shutting_down: AtomicBool,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle::default()
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }
}
