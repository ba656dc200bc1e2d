//! Where entries live: CoreDNS's layout, 256 shards, each a hash map under a read-write lock.
//!
//! A hit is a read lock and a map lookup: about 20 ns, where a moka cache's `get` took about
//! 200 ns on this machine (its clock read, epoch pin, and the access it records for its
//! admission policy; `cargo bench --bench cache -- store`), more than half the cost of a whole
//! query answered by the hosts plugin. So the hit path keeps CoreDNS's simpler structure.
//!
//! A full shard makes room when an entry for a new key comes in. CoreDNS evicts at random; here
//! a few entries from a random place in the map's order are looked at, and the one past its last
//! servable moment, or else the one that expires first, goes: an entry about to expire is the
//! cheapest to lose. The place must be random: always the first few in the map's order would
//! churn the entries that happen to sit there and keep dead ones elsewhere for ever (expired
//! entries are not removed otherwise, as in CoreDNS), which a test caught evicting a quarter of
//! the live entries of a cache that had room for them all.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::time::Instant;

use super::entry::Entry;

const SHARDS: usize = 256;
/// Entries looked at to choose one to evict.
const SAMPLE: usize = 8;

/// Keys are already seeded 64-bit hashes: used as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = RwLock<HashMap<u64, Arc<Entry>, BuildHasherDefault<Identity>>>;

pub struct Store {
    shards: Box<[Shard]>,
    per_shard: usize,
    len: AtomicUsize,
}

impl Store {
    /// A store of `capacity` entries (a multiple of 256, as the configuration rounds it).
    pub fn new(capacity: u64) -> Store {
        let per_shard = (capacity as usize / SHARDS).max(1);
        Store { shards: (0..SHARDS).map(|_| RwLock::default()).collect(), per_shard, len: AtomicUsize::new(0) }
    }

    /// The shard of `key`: bits the map itself does not use (it takes the low bits for the
    /// bucket and the top seven for its tags), so each shard's keys spread over its buckets.
    fn shard(&self, key: u64) -> &Shard {
        &self.shards[(key >> 32) as usize % SHARDS]
    }

    pub fn get(&self, key: u64) -> Option<Arc<Entry>> {
        self.shard(key).read().expect("cache shard lock").get(&key).cloned()
    }

    /// Stores `entry` under `key`, replacing any entry of the key; returns the entry evicted to
    /// make room, if one was. `stale_for` is how long past its TTL an entry is still servable.
    pub fn insert(
        &self,
        key: u64,
        entry: Arc<Entry>,
        now: Instant,
        stale_for: std::time::Duration,
    ) -> Option<Arc<Entry>> {
        let mut shard = self.shard(key).write().expect("cache shard lock");
        let mut evicted = None;
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            // A shard holds CAPACITY / 256 entries (39 by default): skipping is cheap.
            let skip = fastrand::usize(..=shard.len().saturating_sub(SAMPLE));
            let victim = shard
                .iter()
                .skip(skip)
                .take(SAMPLE)
                .min_by_key(|(_, e)| if e.servable(now, stale_for) { e.remaining(now) } else { i64::MIN })
                .map(|(k, _)| *k);
            evicted = victim.and_then(|k| shard.remove(&k));
        }
        if shard.insert(key, entry).is_none() && evicted.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        evicted
    }

    pub fn remove(&self, key: u64) {
        if self.shard(key).write().expect("cache shard lock").remove(&key).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}
