//! Idle connections (or UDP sockets) to one upstream, kept for the next query.
//!
//! An idle connection is handed only to a query running on the reactor it is registered with
//! ([`reactor`](crate::plugin::reactor)): UDP workers finish their waiting queries on runtimes
//! of their own, and a socket handed to another reactor would never be woken. A connection whose
//! reactor has stopped is never matched again and is closed when it expires.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::plugin::reactor::{self, ReactorId};

pub struct Pool<T> {
    idle: Mutex<Vec<Idle<T>>>,
}

struct Idle<T> {
    item: T,
    used: Instant,
    reactor: ReactorId,
}

impl<T> Pool<T> {
    pub fn new() -> Pool<T> {
        Pool { idle: Mutex::new(Vec::new()) }
    }

    /// The most recently used idle item of the calling reactor that has been idle for at most
    /// `expire`. Expired items met on the way are closed.
    pub fn take(&self, expire: Duration) -> Option<T> {
        let here = reactor::current();
        let mut idle = self.idle.lock().expect("pool lock");
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].used.elapsed() > expire {
                idle.remove(i);
            } else if idle[i].reactor == here {
                return Some(idle.remove(i).item);
            }
        }
        None
    }

    /// Keeps `item` unless `max_idle` (0: no limit) items are idle already or `expire` is zero.
    pub fn put(&self, item: T, expire: Duration, max_idle: usize) {
        if expire.is_zero() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if max_idle != 0 && idle.len() >= max_idle {
            return;
        }
        idle.push(Idle { item, used: Instant::now(), reactor: reactor::current() });
    }

    /// Closes the items idle for longer than `expire`.
    pub fn reap(&self, expire: Duration) {
        self.idle.lock().expect("pool lock").retain(|i| i.used.elapsed() <= expire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_go_back_to_their_own_reactor_newest_first() {
        let pool = Pool::new();
        let expire = Duration::from_secs(10);
        pool.put(1, expire, 0);
        pool.put(2, expire, 0);
        let pool = std::sync::Arc::new(pool);
        let other = pool.clone();
        std::thread::spawn(move || {
            reactor::start_own();
            assert_eq!(other.take(expire), None, "another reactor's item was handed out");
            other.put(3, expire, 0);
            assert_eq!(other.take(expire), Some(3));
            other.put(4, expire, 0);
        })
        .join()
        .unwrap();
        assert_eq!(pool.take(expire), Some(2));
        assert_eq!(pool.take(expire), Some(1));
        assert_eq!(pool.take(expire), None);
    }

    #[test]
    fn expired_items_are_closed_and_limits_hold() {
        let pool = Pool::new();
        pool.put("a", Duration::from_secs(10), 1);
        pool.put("b", Duration::from_secs(10), 1);
        assert_eq!(pool.take(Duration::from_secs(10)), Some("a"));
        pool.put("c", Duration::ZERO, 0);
        assert_eq!(pool.take(Duration::from_secs(10)), None);
        pool.put("d", Duration::from_secs(10), 0);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(pool.take(Duration::from_millis(1)), None);
        pool.reap(Duration::ZERO);
        assert!(pool.idle.lock().unwrap().is_empty());
    }
}
