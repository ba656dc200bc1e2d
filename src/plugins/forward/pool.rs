//! Idle connections (or UDP sockets) to one upstream, kept for the next query.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Pool<T> {
    idle: Mutex<Vec<Idle<T>>>,
}

struct Idle<T> {
    item: T,
    used: Instant,
}

impl<T> Pool<T> {
    pub fn new() -> Pool<T> {
        Pool { idle: Mutex::new(Vec::new()) }
    }

    /// The most recently used idle item that has been idle for at most `expire`. Expired items
    /// met on the way are closed.
    pub fn take(&self, expire: Duration) -> Option<T> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(i) = idle.pop() {
            if i.used.elapsed() <= expire {
                return Some(i.item);
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
        idle.push(Idle { item, used: Instant::now() });
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
