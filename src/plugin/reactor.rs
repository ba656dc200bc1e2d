//! Which async reactor the running code's I/O is registered with.
//!
//! A query whose chain waits is finished on the thread that read it: each UDP worker thread has
//! a runtime of its own, which drives the waiting queries' sockets and timers between batches,
//! so that a forwarded query costs one sleep of one thread, as in a single-threaded forwarder
//! (see `server/udp.rs`). Everything else (TCP, health checks, watches, HTTP) runs on the
//! server's shared runtime.
//!
//! A socket is bound to the reactor it was registered with: it is only ever woken by that
//! reactor, which only runs on its own thread. A plugin that **pools** sockets or connections
//! across queries must therefore hand a pooled one only to a query running on the same reactor,
//! by keeping [`current`] beside it. Everything else may ignore this: a socket used by one
//! query and dropped after it, and channels, locks and `Notify`, work across reactors.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// A reactor's identity; never reused within a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReactorId(u64);

thread_local! {
    /// The shared runtime's threads, and every thread that never set one, are reactor 0.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The reactor the calling thread's new I/O registers with.
pub fn current() -> ReactorId {
    ReactorId(CURRENT.with(Cell::get))
}

/// Makes the calling thread the home of a new reactor, for as long as the thread lives: for a
/// thread that runs a runtime of its own and never leaves it.
pub(crate) fn start_own() -> ReactorId {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    CURRENT.with(|c| c.set(id));
    ReactorId(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_own_reactor_is_new_and_the_shared_one_is_common() {
        let shared = std::thread::spawn(current).join().unwrap();
        assert_eq!(shared, current());
        let (a, b) = (std::thread::spawn(start_own).join().unwrap(), std::thread::spawn(start_own).join().unwrap());
        assert_ne!(a, b);
        assert_ne!(a, shared);
        let here = std::thread::spawn(|| {
            let id = start_own();
            (id, current())
        })
        .join()
        .unwrap();
        assert_eq!(here.0, here.1);
    }
}
