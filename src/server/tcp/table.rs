//! The TCP connections of every DNS listener of the process, and the limits they share.
//!
//! Every accepted connection is admitted here before it is served, and leaves when it closes.
//! Three limits apply, checked in this order:
//!
//! 1. **per client address**, per listen address (`maxtcpconnsperclient`, default a tenth of
//!    what the listen address may hold): a client at its limit gets its own longest-idle
//!    connection closed to make room, or is refused when every one of them is busy;
//! 2. **per listen address** (`maxtcpconns`, default no limit of its own);
//! 3. **the process's budget**: the descriptor limit less a reserve for everything else the
//!    process opens (HTTP endpoints, files, upstream sockets; see [`descriptor_budget`]).
//!
//! When (2) or (3) is reached, the connection idle longest is closed to admit the new one: RFC
//! 7766 section 6.2.3 lets a server "close idle connections ... when under pressure", and so a
//! client holding thousands of idle or keep-alive connections cannot lock others out. Only when
//! every connection is busy (a reply being made or written) is the newcomer refused.
//!
//! The table is touched at accept, at close and once a second by the sweeper that applies the
//! timeouts; never per query. A connection reports its state through two atomics of its
//! [`Conn`], which only it writes (busy count and flags, last progress time), so the hot path
//! pays two uncontended atomic operations per read batch and per waiting query.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use smallvec::SmallVec;

use super::TcpSettings;
use crate::metrics::{Counter, Family, Gauge, Registry};

/// How often the sweeper closes connections past their timeouts: timeouts are enforced to
/// within this.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// At most one log line per listener and kind of limit in this long.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Eviction candidates taken from one scan of the table (the longest idle first).
const CANDIDATES: usize = 256;
/// A scan's candidates are used for at most this long before the table is scanned again.
const CANDIDATES_FOR: Duration = Duration::from_secs(1);

/// Descriptors kept out of the DNS connections' budget for everything else: at least 256, an
/// eighth of the limit, at most 4,096. With the 1,024 of a default `ulimit -n` that leaves 768
/// connections; with 20,000, 17,500.
pub fn descriptor_reserve(limit: u64) -> u64 {
    (limit / 8).clamp(256, 4096)
}

/// The DNS connections' budget under a descriptor limit of `limit`: what the whole process
/// holds at most, whatever `maxtcpconns` says.
pub fn descriptor_budget(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(descriptor_reserve(limit))).unwrap_or(usize::MAX).max(1)
}

/// Connections one listen address holds at most unless `maxtcpconns` says otherwise: an idle
/// connection costs about 0.9 KiB here and 4-5 KiB in the kernel (`bench/tcp-hold`), so about
/// 110 MiB at this many, whatever descriptor limit a container runtime grants (often 1,048,576).
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;

// The bits of `Conn::state`.
/// Polls of the connection in progress plus queries waiting on a chain: non-zero is busy.
const BUSY: u32 = 0x00ff_ffff;
/// No complete message yet: the read timeout applies instead of the idle one.
const FIRST: u32 = 1 << 24;
/// Replies wait for the client to read them: the write timeout applies.
const WRITING: u32 = 1 << 25;
/// The listener stops: read nothing more, finish what is in flight, close.
const DRAIN: u32 = 1 << 26;
/// Close now: evicted, or past a timeout.
const CLOSE: u32 = 1 << 27;

/// What the table and a connection's task share.
pub struct Conn {
    state: AtomicU32,
    /// Milliseconds since the table's epoch at the last progress: accepted, a message read in
    /// full, a reply written.
    last: AtomicU64,
    waker: AtomicWaker,
}

impl Conn {
    fn new(now: u64) -> Conn {
        Conn { state: AtomicU32::new(FIRST), last: AtomicU64::new(now), waker: AtomicWaker::new() }
    }

    /// Registers the task to wake when the table closes or drains the connection.
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Marks the connection busy (one more poll or waiting query); false if it is closing.
    pub fn enter(&self) -> bool {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & CLOSE != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Ends what [`enter`](Self::enter) began. `progress` is the time (see
    /// [`Conns::now_ms`]) of a message read or bytes written meanwhile; `read_one` says a whole
    /// message has been read at least once; `writing` that replies wait to be written.
    pub fn leave(&self, progress: Option<u64>, read_one: bool, writing: bool) {
        if let Some(ms) = progress {
            self.last.store(ms, Ordering::Release);
        }
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let mut next = s - 1;
            if read_one {
                next &= !FIRST;
            }
            if writing {
                next |= WRITING;
            } else {
                next &= !WRITING;
            }
            match self.state.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    /// Ends the busy mark of one query that waited (taken with [`enter`](Self::enter)).
    pub fn release(&self) {
        self.state.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the table closed the connection (evicted, or past a timeout).
    #[cfg(test)]
    pub fn closing(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSE != 0
    }

    /// Whether the listener is stopping: read no more.
    pub fn draining(&self) -> bool {
        self.state.load(Ordering::Acquire) & DRAIN != 0
    }

    /// Closes the connection if it is idle and has made no progress since `last`; false if it
    /// is busy or already closing.
    fn try_evict(&self, last: u64) -> bool {
        if self.last.load(Ordering::Acquire) != last {
            return false;
        }
        let s = self.state.load(Ordering::Acquire);
        if s & (BUSY | WRITING | CLOSE) != 0 {
            return false;
        }
        if self.state.compare_exchange(s, s | CLOSE, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        self.waker.wake();
        true
    }

    fn set(&self, flag: u32) {
        self.state.fetch_or(flag, Ordering::AcqRel);
        self.waker.wake();
    }

    fn idle(&self) -> bool {
        self.state.load(Ordering::Acquire) & (BUSY | WRITING | CLOSE) == 0
    }
}

/// A listener's handle in the table.
pub type ListenerId = u32;

/// Why a newcomer was refused or an idle connection closed for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pressure {
    /// The client address holds as many connections as one address may.
    Client,
    /// The listen address, or the process, holds as many connections as it may.
    Full,
}

impl Pressure {
    fn label(self) -> &'static str {
        match self {
            Pressure::Client => "client_limit",
            Pressure::Full => "limit",
        }
    }
}

/// The metric families of the table, registered once per server.
struct Families {
    open: Arc<Family<Gauge>>,
    refused: Arc<Family<Counter>>,
    evicted: Arc<Family<Counter>>,
}

/// A listener's series.
struct ListenerMetrics {
    open: Arc<Gauge>,
    refused: [Arc<Counter>; 2],
    evicted: [Arc<Counter>; 2],
}

/// A log line that says what happened at most once per [`LOG_EVERY`], with how often.
#[derive(Default)]
struct Note {
    /// When the last line was written (ms), if ever.
    logged: Option<u64>,
    /// Events since that line.
    since: u64,
}

impl Note {
    /// Counts an event; the number of events to report if a line is due now.
    fn due(&mut self, now: u64) -> Option<u64> {
        self.since += 1;
        match self.logged {
            Some(at) if now.saturating_sub(at) < LOG_EVERY.as_millis() as u64 => None,
            _ => {
                self.logged = Some(now);
                Some(std::mem::take(&mut self.since))
            }
        }
    }
}

struct ListenerEntry {
    label: String,
    settings: TcpSettings,
    open: usize,
    /// Stopped: its connections drain, and the entry goes when the last one has.
    stopped: bool,
    metrics: ListenerMetrics,
    /// [evicted, refused] × [client limit, full].
    notes: [[Note; 2]; 2],
}

struct Entry {
    conn: Arc<Conn>,
    listener: ListenerId,
    client: IpAddr,
    /// Its place in its client's list of slots (`Table::clients`).
    at: usize,
}

#[derive(Default)]
struct Table {
    /// A slab: a connection's slot is its index until it leaves.
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    open: usize,
    listeners: HashMap<ListenerId, ListenerEntry>,
    next_listener: ListenerId,
    /// The slots of each client address on each listener.
    clients: HashMap<(ListenerId, IpAddr), SmallVec<[u32; 2]>>,
    /// Idle connections from the last scan, (last progress, slot), the longest idle last.
    candidates: Vec<(u64, u32)>,
    candidates_at: u64,
}

/// The process's TCP connections. See the [module documentation](self).
pub struct Conns {
    budget: usize,
    epoch: Instant,
    table: Mutex<Table>,
    families: Families,
}

/// A connection admitted to the table; dropping it takes the connection out.
pub struct Admitted {
    conns: Arc<Conns>,
    pub conn: Arc<Conn>,
    slot: u32,
    /// The listener's `maxtcpqueries` when the connection was accepted.
    pub max_queries: Option<std::num::NonZeroU32>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut t = self.conns.lock();
        if t.slots[self.slot as usize].as_ref().is_some_and(|e| Arc::ptr_eq(&e.conn, &self.conn)) {
            t.remove(self.slot);
        }
    }
}

/// What a limit did, to be logged once the table's lock is released.
struct Report {
    label: String,
    pressure: Pressure,
    evicted: bool,
    client: IpAddr,
    limit: usize,
    count: u64,
}

impl Conns {
    /// A table for a process whose DNS connections may use `budget` descriptors; starts the
    /// sweeper on the current tokio runtime.
    pub fn new(budget: usize, registry: &Registry) -> Arc<Conns> {
        let families = Families {
            open: registry.gauge(
                "coredns_dns_tcp_open_connections",
                "Number of open DNS over TCP connections.",
                &["server"],
            ),
            refused: registry.counter(
                "coredns_dns_tcp_refused_connections_total",
                "Counter of DNS over TCP connections closed on accept because a connection limit was reached and no idle connection could be closed instead.",
                &["server", "reason"],
            ),
            evicted: registry.counter(
                "coredns_dns_tcp_evicted_connections_total",
                "Counter of idle DNS over TCP connections closed to admit a new one because a connection limit was reached.",
                &["server", "reason"],
            ),
        };
        let conns = Arc::new(Conns { budget: budget.max(1), epoch: Instant::now(), table: Mutex::default(), families });
        let weak = Arc::downgrade(&conns);
        tokio::spawn(sweep_until_dropped(weak));
        conns
    }

    /// Connections the process may hold at once.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Milliseconds since the table was made, the clock of [`Conn::leave`].
    pub fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    pub fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a listener labelled `label` (its metrics `server` label).
    pub fn add_listener(&self, label: &str, settings: TcpSettings) -> ListenerId {
        let f = &self.families;
        let metrics = ListenerMetrics {
            open: f.open.with(&[label]),
            refused: [Pressure::Client, Pressure::Full].map(|p| f.refused.with(&[label, p.label()])),
            evicted: [Pressure::Client, Pressure::Full].map(|p| f.evicted.with(&[label, p.label()])),
        };
        let mut t = self.lock();
        let id = t.next_listener;
        t.next_listener += 1;
        let entry = ListenerEntry {
            label: label.to_string(),
            settings,
            open: 0,
            stopped: false,
            metrics,
            notes: Default::default(),
        };
        t.listeners.insert(id, entry);
        id
    }

    /// New settings for a listener (a reload); they apply to the timeouts of every connection
    /// from the next sweep, and to the query limit of connections accepted from now on.
    pub fn set_settings(&self, id: ListenerId, settings: TcpSettings) {
        if let Some(l) = self.lock().listeners.get_mut(&id) {
            l.settings = settings;
        }
    }

    /// The listener stopped accepting: its connections read no more, finish what they are
    /// answering, and close.
    pub fn drain_listener(&self, id: ListenerId) {
        let mut t = self.lock();
        for e in t.slots.iter().flatten().filter(|e| e.listener == id) {
            e.conn.set(DRAIN);
        }
        if let Some(l) = t.listeners.get_mut(&id) {
            l.stopped = true;
            if l.open == 0 {
                t.listeners.remove(&id);
            }
        }
    }

    /// Admits a connection from `client` on listener `id`, closing an idle one if a limit is
    /// reached (see the [module documentation](self)); `None` if it must be refused.
    pub fn admit(self: &Arc<Self>, id: ListenerId, client: IpAddr) -> Option<Admitted> {
        let client = client.to_canonical();
        let now = self.now_ms();
        let mut reports: SmallVec<[Report; 2]> = SmallVec::new();
        let admitted = {
            let mut t = self.lock();
            let t = &mut *t;
            let l = t.listeners.get(&id)?;
            let listener_max =
                l.settings.max_connections.map_or(DEFAULT_MAX_CONNECTIONS, NonZeroUsize::get).min(self.budget);
            let per_client = l.settings.max_per_client.map_or(listener_max / 10, NonZeroUsize::get).max(1);
            let max_queries = l.settings.max_queries;

            let mut refused = None;
            let held = t.clients.get(&(id, client)).map_or(0, |s| s.len());
            if held >= per_client {
                match t.evict_client(id, client) {
                    true => reports.extend(t.note(id, Pressure::Client, true, client, per_client, now)),
                    false => refused = Some((Pressure::Client, per_client)),
                }
            }
            if refused.is_none() {
                let listener_full = t.listeners[&id].open >= listener_max;
                if listener_full || t.open >= self.budget {
                    let scope = listener_full.then_some(id);
                    let limit = if listener_full { listener_max } else { self.budget };
                    match t.evict_idle(scope, now) {
                        true => reports.extend(t.note(id, Pressure::Full, true, client, limit, now)),
                        false => refused = Some((Pressure::Full, limit)),
                    }
                }
            }
            match refused {
                Some((pressure, limit)) => {
                    let l = t.listeners.get_mut(&id).expect("looked up above");
                    l.metrics.refused[pressure as usize].inc();
                    reports.extend(t.note(id, pressure, false, client, limit, now));
                    None
                }
                None => {
                    let conn = Arc::new(Conn::new(now));
                    let slot = t.insert(Entry { conn: conn.clone(), listener: id, client, at: 0 });
                    Some(Admitted { conns: self.clone(), conn, slot, max_queries })
                }
            }
        };
        for r in reports {
            r.log();
        }
        admitted
    }

    /// Closes the connections past their timeouts.
    fn sweep(&self) {
        self.sweep_at(self.now_ms());
    }

    fn sweep_at(&self, now: u64) {
        let mut t = self.lock();
        let mut expired: Vec<u32> = Vec::new();
        for (slot, e) in t.slots.iter().enumerate() {
            let Some(e) = e else { continue };
            let Some(l) = t.listeners.get(&e.listener) else { continue };
            let s = e.conn.state.load(Ordering::Acquire);
            let timeout = if s & CLOSE != 0 {
                continue;
            } else if s & WRITING != 0 {
                l.settings.write
            } else if s & BUSY != 0 {
                // Answering: the chain's own timeouts bound it (forward's, for one).
                continue;
            } else if s & FIRST != 0 {
                l.settings.read
            } else {
                l.settings.idle
            };
            if now.saturating_sub(e.conn.last.load(Ordering::Acquire)) >= timeout.as_millis() as u64 {
                expired.push(slot as u32);
            }
        }
        for slot in expired {
            if let Some(e) = t.remove(slot) {
                e.conn.set(CLOSE);
            }
        }
    }
}

async fn sweep_until_dropped(conns: Weak<Conns>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match conns.upgrade() {
            Some(c) => c.sweep(),
            None => return,
        }
    }
}

impl Table {
    fn insert(&mut self, mut e: Entry) -> u32 {
        let key = (e.listener, e.client);
        let listener = e.listener;
        let slot = self.free.last().copied().unwrap_or(self.slots.len() as u32);
        let of_client = self.clients.entry(key).or_default();
        e.at = of_client.len();
        of_client.push(slot);
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(e);
                s
            }
            None => {
                self.slots.push(Some(e));
                (self.slots.len() - 1) as u32
            }
        };
        self.open += 1;
        let l = self.listeners.get_mut(&listener).expect("admitted on a known listener");
        l.open += 1;
        l.metrics.open.set(l.open as f64);
        slot
    }

    /// Takes slot `slot` out of the table.
    fn remove(&mut self, slot: u32) -> Option<Entry> {
        let e = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.open -= 1;
        let key = (e.listener, e.client);
        if let Some(slots) = self.clients.get_mut(&key) {
            slots.swap_remove(e.at);
            match slots.get(e.at) {
                // The client's last slot moved into the place of the one removed.
                Some(&moved) => self.slots[moved as usize].as_mut().expect("listed slots are taken").at = e.at,
                None if slots.is_empty() => drop(self.clients.remove(&key)),
                None => {}
            }
        }
        if let Some(l) = self.listeners.get_mut(&e.listener) {
            l.open -= 1;
            l.metrics.open.set(l.open as f64);
            if l.stopped && l.open == 0 {
                self.listeners.remove(&e.listener);
            }
        }
        Some(e)
    }

    /// Closes the longest-idle connection of `client` on `listener`; false if none is idle.
    fn evict_client(&mut self, listener: ListenerId, client: IpAddr) -> bool {
        let Some(slots) = self.clients.get(&(listener, client)) else { return false };
        let oldest = slots
            .iter()
            .filter_map(|&s| {
                let e = self.slots[s as usize].as_ref()?;
                e.conn.idle().then(|| (e.conn.last.load(Ordering::Acquire), s))
            })
            .min();
        match oldest {
            Some((last, slot)) => self.evict(slot, last, Pressure::Client),
            None => false,
        }
    }

    /// Closes the longest-idle connection of `listener`, or of the whole process with `None`;
    /// false if every one is busy.
    fn evict_idle(&mut self, listener: Option<ListenerId>, now: u64) -> bool {
        if let Some(id) = listener {
            // A listener's own limit: scan its connections (an operator's explicit setting;
            // the process-wide case below is the common one and amortised).
            let oldest = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(s, e)| {
                    let e = e.as_ref().filter(|e| e.listener == id && e.conn.idle())?;
                    Some((e.conn.last.load(Ordering::Acquire), s as u32))
                })
                .min();
            return oldest.is_some_and(|(last, slot)| self.evict(slot, last, Pressure::Full));
        }
        for rescanned in [false, true] {
            if rescanned
                || self.candidates.is_empty()
                || now.saturating_sub(self.candidates_at) > CANDIDATES_FOR.as_millis() as u64
            {
                self.scan_candidates(now);
            }
            while let Some((last, slot)) = self.candidates.pop() {
                if self.evict(slot, last, Pressure::Full) {
                    return true;
                }
            }
        }
        false
    }

    /// Collects the [`CANDIDATES`] longest-idle connections, the longest idle last.
    fn scan_candidates(&mut self, now: u64) {
        self.candidates.clear();
        self.candidates_at = now;
        for (s, e) in self.slots.iter().enumerate() {
            if let Some(e) = e
                && e.conn.idle()
            {
                self.candidates.push((e.conn.last.load(Ordering::Acquire), s as u32));
            }
        }
        if self.candidates.len() > CANDIDATES {
            self.candidates.select_nth_unstable(CANDIDATES);
            self.candidates.truncate(CANDIDATES);
        }
        self.candidates.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Closes the connection in `slot` if it is still the idle one seen at `last`.
    fn evict(&mut self, slot: u32, last: u64, why: Pressure) -> bool {
        let Some(e) = self.slots[slot as usize].as_ref() else { return false };
        if !e.conn.try_evict(last) {
            return false;
        }
        let e = self.remove(slot).expect("present");
        if let Some(l) = self.listeners.get(&e.listener) {
            l.metrics.evicted[why as usize].inc();
        }
        true
    }

    /// Counts a limit biting on `listener`; a report to log if one is due.
    fn note(
        &mut self,
        listener: ListenerId,
        pressure: Pressure,
        evicted: bool,
        client: IpAddr,
        limit: usize,
        now: u64,
    ) -> Option<Report> {
        let l = self.listeners.get_mut(&listener)?;
        let count = l.notes[!evicted as usize][pressure as usize].due(now)?;
        Some(Report { label: l.label.clone(), pressure, evicted, client, limit, count })
    }
}

impl Report {
    fn log(&self) {
        let Report { label, client, limit, count, .. } = self;
        match (self.pressure, self.evicted) {
            (Pressure::Client, true) => tracing::warn!(
                "{label}: {client} holds {limit} TCP connections, the most one client address may (timeouts maxtcpconnsperclient): \
                 closing its longest-idle ones for its new ones ({count} since the last report)"
            ),
            (Pressure::Client, false) => tracing::warn!(
                "{label}: {client} holds {limit} TCP connections, the most one client address may (timeouts maxtcpconnsperclient), \
                 and all are busy: refusing its new ones ({count} since the last report)"
            ),
            (Pressure::Full, true) => tracing::warn!(
                "{label}: {limit} TCP connections open, the most this server holds: closing the longest-idle ones for new \
                 clients, as RFC 7766 6.2.3 allows ({count} since the last report)"
            ),
            (Pressure::Full, false) => tracing::warn!(
                "{label}: {limit} TCP connections open, the most this server holds, and all are busy: refusing new \
                 connections ({count} since the last report; newest from {client})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: Option<usize>, per_client: Option<usize>) -> TcpSettings {
        TcpSettings {
            max_connections: max.and_then(NonZeroUsize::new),
            max_per_client: per_client.and_then(NonZeroUsize::new),
            ..TcpSettings::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Runs `f` with a table of `budget` connections on a runtime (the sweeper needs one).
    fn with_table(budget: usize, f: impl FnOnce(Arc<Conns>)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async { f(Conns::new(budget, &Registry::new())) });
    }

    /// An idle connection that last progressed at `ms`.
    fn idle_since(a: &Admitted, ms: u64) {
        assert!(a.conn.enter());
        a.conn.leave(Some(ms), true, false);
    }

    #[test]
    fn budgets_leave_a_reserve() {
        assert_eq!(descriptor_budget(1024), 768);
        assert_eq!(descriptor_budget(20_000), 17_500);
        assert_eq!(descriptor_budget(65_536), 61_440);
        assert_eq!(descriptor_budget(1 << 20), (1 << 20) - 4096);
        assert_eq!(descriptor_budget(100), 1);
    }

    #[test]
    fn a_listener_holds_the_default_maximum_or_its_own_within_the_budget() {
        with_table(DEFAULT_MAX_CONNECTIONS + 10, |c| {
            let id = c.add_listener("dns://:53", settings(None, Some(DEFAULT_MAX_CONNECTIONS)));
            let held: Vec<Admitted> =
                (0..DEFAULT_MAX_CONNECTIONS).map(|_| c.admit(id, ip("10.0.0.1")).unwrap()).collect();
            held.iter().for_each(|a| assert!(a.conn.enter()));
            assert!(c.admit(id, ip("10.0.0.2")).is_none(), "the default maximum is reached");
            let more = c.add_listener("dns://:54", settings(Some(1_000_000), Some(100)));
            let extra: Vec<Admitted> = (0..10).map(|_| c.admit(more, ip("10.0.0.3")).unwrap()).collect();
            extra.iter().for_each(|a| assert!(a.conn.enter()));
            assert!(c.admit(more, ip("10.0.0.4")).is_none(), "the process's budget is reached");
        });
    }

    /// RFC 7766 6.2.3: when full, the longest-idle connection makes room; busy ones never do.
    #[test]
    fn full_evicts_the_longest_idle_and_refuses_only_when_all_are_busy() {
        with_table(3, |c| {
            let id = c.add_listener("dns://:53", settings(None, Some(10)));
            let a: Vec<Admitted> = (0..3).map(|_| c.admit(id, ip("10.0.0.1")).unwrap()).collect();
            idle_since(&a[0], 50);
            idle_since(&a[1], 10);
            idle_since(&a[2], 30);
            let fourth = c.admit(id, ip("10.0.0.2")).expect("room made");
            assert!(a[1].conn.closing() && !a[0].conn.closing() && !a[2].conn.closing());
            // Everything busy: refused.
            assert!(a[0].conn.enter() && a[2].conn.enter() && fourth.conn.enter());
            assert!(c.admit(id, ip("10.0.0.3")).is_none());
            let m = c.families.refused.with(&["dns://:53", "limit"]).get();
            assert_eq!((m, c.families.evicted.with(&["dns://:53", "limit"]).get()), (1, 1));
        });
    }

    #[test]
    fn a_client_at_its_limit_gives_up_its_own_idle_connection_not_others() {
        with_table(100, |c| {
            let id = c.add_listener("dns://:53", settings(None, Some(2)));
            let other = c.admit(id, ip("10.0.0.9")).unwrap();
            idle_since(&other, 1);
            let mine: Vec<Admitted> = (0..2).map(|_| c.admit(id, ip("10.0.0.1")).unwrap()).collect();
            idle_since(&mine[0], 20);
            idle_since(&mine[1], 10);
            let _third = c.admit(id, ip("10.0.0.1")).unwrap();
            assert!(mine[1].conn.closing() && !mine[0].conn.closing() && !other.conn.closing());
            // IPv4-mapped IPv6 is the same client.
            assert!(mine[0].conn.enter() && _third.conn.enter());
            assert!(c.admit(id, ip("::ffff:10.0.0.1")).is_none());
            assert_eq!(c.families.refused.with(&["dns://:53", "client_limit"]).get(), 1);
        });
    }

    #[test]
    fn the_per_client_default_is_a_tenth_of_what_the_listener_holds() {
        with_table(1000, |c| {
            let id = c.add_listener("dns://:53", settings(Some(50), None));
            let held: Vec<Admitted> = (0..5).map(|_| c.admit(id, ip("10.0.0.1")).unwrap()).collect();
            held.iter().for_each(|a| assert!(a.conn.enter()));
            assert!(c.admit(id, ip("10.0.0.1")).is_none());
            assert!(c.admit(id, ip("10.0.0.2")).is_some());
        });
    }

    #[test]
    fn leaving_frees_the_slot_and_draining_reaches_every_connection() {
        with_table(2, |c| {
            let id = c.add_listener("dns://:53", settings(None, Some(2)));
            let a = c.admit(id, ip("10.0.0.1")).unwrap();
            let b = c.admit(id, ip("10.0.0.2")).unwrap();
            assert!(a.conn.enter() && b.conn.enter());
            drop(a);
            let _c = c.admit(id, ip("10.0.0.3")).expect("the slot left is free");
            c.drain_listener(id);
            assert!(b.conn.draining());
            assert_eq!(c.families.open.with(&["dns://:53"]).get(), 2.0);
        });
    }

    #[test]
    fn the_sweep_applies_read_idle_and_write_timeouts() {
        with_table(10, |c| {
            let id = c.add_listener("dns://:53", TcpSettings::default());
            let first = c.admit(id, ip("10.0.0.1")).unwrap();
            let idle = c.admit(id, ip("10.0.0.2")).unwrap();
            let busy = c.admit(id, ip("10.0.0.3")).unwrap();
            let writing = c.admit(id, ip("10.0.0.4")).unwrap();
            idle_since(&idle, 0);
            assert!(busy.conn.enter());
            assert!(writing.conn.enter());
            writing.conn.leave(Some(0), true, true);
            c.sweep_at(2_999);
            assert!(!first.conn.closing());
            c.sweep_at(3_000); // read (3s) passed
            assert!(first.conn.closing() && !idle.conn.closing() && !writing.conn.closing());
            c.sweep_at(5_000); // write (5s) passed
            assert!(writing.conn.closing() && !idle.conn.closing());
            c.sweep_at(10_000); // idle (10s) passed
            assert!(idle.conn.closing() && !busy.conn.closing());
            assert_eq!(c.families.open.with(&["dns://:53"]).get(), 1.0);
        });
    }
}
