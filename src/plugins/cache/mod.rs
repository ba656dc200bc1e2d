//! *cache*: keeps the answers of the plugins after it and serves them again until their TTL runs
//! out, with CoreDNS's rules.
//!
//! A query for a name in the cache's zones is looked up by its question (name without regard to
//! case, type, class) and its DO and CD bits; the AD bit is not part of the key but is answered
//! per client. The lookup, as CoreDNS's `getIfNotStale`:
//!
//! | what is cached for the key                          | what the client gets                     |
//! |-----------------------------------------------------|------------------------------------------|
//! | a denial (NXDOMAIN, NODATA), fresh or stale-servable | the denial                              |
//! | a SERVFAIL and a servable positive entry            | the positive entry (coredns#7956)        |
//! | a SERVFAIL alone                                    | the SERVFAIL, for `servfail` (5s)        |
//! | a positive answer, fresh or stale-servable          | the answer                               |
//! | nothing servable                                    | the plugins after the cache answer       |
//!
//! Served answers carry one TTL, the entry's remaining lifetime, counting down (`keepttl`: the
//! TTL it was stored with). A stale one (`serve_stale`) carries RESPONSE_TTL (0) and the
//! extended DNS error "Stale Answer" (RFC 8914 4.4). Popular entries are refreshed before they
//! expire (`prefetch`), and stale ones after or before they are served (`serve_stale immediate`
//! or `verify`), by a background task running the rest of the chain ([`Next::to_owned`]); an
//! entry has at most one refresh in flight, which `verify` queries wait for together.
//!
//! # Cost of a hit
//!
//! A hash of the question, one lookup in a sharded map (a read lock and an `Arc` clone, see
//! [`store`]), a clock read, and a [`Response`] that shares the entry's sections, encoded once
//! ([`WireAnswer`]): the server copies them after the client's question and writes the TTL.
//! Nothing is allocated beyond the box of this plugin's future that every hop pays; a plugin in
//! front that reads answers (log, loadbalance) gets records read back from the bytes, one
//! allocation per non-empty section, as the hosts plugin's answer costs. Measured in
//! `benches/cache.rs` and `tests/allocations.rs`.
//!
//! # Memory
//!
//! An entry keeps its answer as bytes: about 400 bytes for an entry of one A record (the
//! [`Entry`] and its `Arc`, the [`WireAnswer`] and its boxes, the map's slot). The records are
//! read back from the bytes the first time a plugin in front reads answers, and kept with the
//! entry from then on (160 bytes a record): decoding on every hit cost about 1,100 instructions
//! more than copying records, measured with loadbalance in front (benches/callgrind.sh).

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use crate::dns::{ExtendedError, Rcode, Request, Response, WireAnswer};
use crate::plugin::{Next, OwnedNext, Plugin, ServeError};

mod entry;
mod metrics;
mod setup;
mod store;

pub use metrics::Metrics;
pub use setup::{Config, parse};

use entry::{Entry, Flight, Freq, RefreshState, Refreshed, Type};
use metrics::Kind;
use store::Store;

pub const NAME: &str = "cache";

/// How long a refresh may run before it is given up, so that a chain that never answers cannot
/// hold an entry's refresh slot (and stop all later refreshes of it) forever.
const REFRESH_LIMIT: Duration = Duration::from_secs(30);

/// See the [module documentation](self).
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    success: Tier,
    denial: Tier,
    metrics: Arc<Metrics>,
    /// Keys are 64-bit hashes of the question under a per-process random seed, so nobody can
    /// aim queries at each other's slots; an entry also keeps its question, so a collision is a
    /// miss, never a wrong answer.
    hasher: foldhash::fast::RandomState,
}

/// One kind of entry, in its own bounded store, with its metrics.
struct Tier {
    kind: Kind,
    store: Store,
    metrics: Arc<Metrics>,
}

impl Tier {
    fn new(kind: Kind, capacity: u64, metrics: &Arc<Metrics>) -> Tier {
        Tier { kind, store: Store::new(capacity), metrics: metrics.clone() }
    }

    fn get(&self, key: u64) -> Option<Arc<Entry>> {
        self.store.get(key)
    }

    fn insert(&self, key: u64, entry: Arc<Entry>, stale_for: Duration) {
        if let Some(evicted) = self.store.insert(key, entry.clone(), entry.stored, stale_for) {
            // CoreDNS counts the entries pushed out to make room, under the server of the query
            // that stored the one pushed out.
            self.metrics.server(evicted.server).evictions[self.kind as usize].inc();
        }
        self.metrics.set_entries(self.kind, self.store.len() as u64);
    }

    fn remove(&self, key: u64) {
        self.store.remove(key);
        self.metrics.set_entries(self.kind, self.store.len() as u64);
    }
}

impl Cache {
    pub fn new(config: Config, metrics: Metrics) -> Cache {
        let metrics = Arc::new(metrics);
        let success = Tier::new(Kind::Success, config.success.capacity, &metrics);
        let denial = Tier::new(Kind::Denial, config.denial.capacity, &metrics);
        let hasher = foldhash::fast::RandomState::default();
        Cache { inner: Arc::new(Inner { config, success, denial, metrics, hasher }) }
    }
}

impl Plugin for Cache {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        self.inner.serve(req, next).await
    }
}

/// How an entry is served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Freshness {
    Fresh,
    Stale,
}

/// Why a refresh runs: what it counts as and which answers it accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// `prefetch` of a fresh, popular entry: any cacheable answer replaces it.
    Prefetch,
    /// `serve_stale immediate`, after serving an expired entry: only an answer that is NOERROR
    /// or NXDOMAIN, complete, for the question, replaces it (RFC 8767 4); anything else leaves
    /// the stale one to be served. Counted as a prefetch, as in CoreDNS.
    Stale,
    /// `serve_stale verify`, before serving an expired entry: accepts what `Stale` accepts.
    Verify,
}

impl Inner {
    async fn serve(self: &Arc<Self>, req: &mut Request, next: Next<'_>) -> Result<Response, ServeError> {
        if !self.config.zones.iter().any(|z| req.qname().is_subdomain_of(z)) {
            return next.run(req).await;
        }
        let server = req.route().server;
        let m = self.metrics.server(server);
        m.requests.inc();
        let now = Instant::now();
        let (dnssec_ok, checking_disabled) = (req.dnssec_ok(), req.checking_disabled());
        let key = self.key(req, dnssec_ok, checking_disabled);
        let Some(entry) = self.lookup(key, req, now) else {
            m.misses.inc();
            return self.fill(req, next, key).await;
        };
        m.hits[entry.kind as usize].inc();

        let left = entry.remaining(now);
        if left > 0 {
            if self.popular(&entry, now, left) {
                self.refresh(&entry, req, next, key, Refresh::Prefetch);
            }
            return Ok(self.reply(&entry, req, left, Freshness::Fresh));
        }
        // Stale, and within the serve_stale window (lookup saw to that).
        let stale = self.config.stale.expect("only serve_stale keeps expired entries servable");
        if stale.verify {
            // RFC 8767 5: "attempt to refresh before serving stale". Queries for the entry while a
            // refresh is in flight wait for that one, rather than each asking again.
            if let Some(flight) = self.refresh(&entry, req, next, key, Refresh::Verify) {
                let refreshed = if stale.verify_timeout.is_zero() {
                    flight.await
                } else {
                    tokio::time::timeout(stale.verify_timeout, flight).await.ok().flatten()
                };
                if let Some(fresh) = refreshed {
                    return Ok(self.reply(&fresh, req, fresh.remaining(Instant::now()), Freshness::Fresh));
                }
            }
        } else {
            self.refresh(&entry, req, next, key, Refresh::Stale);
        }
        m.served_stale.inc();
        Ok(self.reply(&entry, req, left, Freshness::Stale))
    }

    /// The key of `req`'s question and bits.
    fn key(&self, req: &Request, dnssec_ok: bool, checking_disabled: bool) -> u64 {
        let flags = (dnssec_ok as u8) | (checking_disabled as u8) << 1;
        self.hasher.hash_one((req.qname(), req.qtype().0, req.qclass().0, flags))
    }

    /// The entry to serve `req` from at `now`, if any (see the table in the module documentation).
    fn lookup(&self, key: u64, req: &Request, now: Instant) -> Option<Arc<Entry>> {
        let stale_for = self.config.stale.map_or(Duration::ZERO, |s| s.up_to);
        let (dnssec_ok, checking_disabled) = (req.dnssec_ok(), req.checking_disabled());
        let servable = |e: &Arc<Entry>| e.matches(req, dnssec_ok, checking_disabled) && e.servable(now, stale_for);
        // The positive entry first: one lookup for the commonest hit. Storing a denial that is not
        // a failure removes the positive entry of its key (see `store`), so a denial found beside
        // a positive entry is a failure, and a failure never hides an answer known to be good
        // (coredns#7956).
        self.success.get(key).filter(servable).or_else(|| self.denial.get(key).filter(servable))
    }

    /// A miss: runs the rest of the chain, caches what it answers when it may, and returns it.
    async fn fill(self: &Arc<Self>, req: &mut Request, next: Next<'_>, key: u64) -> Result<Response, ServeError> {
        let client_ad = req.authentic_data();
        // Asked with AD, so that a validating upstream tells whether the answer is authentic
        // whatever this client asked (RFC 6840 5.8), and the entry serves both kinds of client
        // (coredns#6642). The client's bit is back before anyone else sees the request.
        req.set_authentic_data(true);
        let result = next.run(req).await;
        req.set_authentic_data(client_ad);
        let mut resp = result?;
        self.store(key, req, &mut resp, false);
        if !(client_ad || req.dnssec_ok()) {
            // RFC 6840 5.8: AD only for clients that asked with AD or DO.
            resp.authentic_data = false;
        }
        Ok(resp)
    }

    /// Caches `resp`, the answer of the plugins after the cache to `req`, when it may be cached
    /// (see [`entry::cacheable`]) and its zone is not `disable`d; `refreshing_stale` accepts only
    /// what may replace a stale entry (NOERROR or NXDOMAIN, RFC 8767 4). Returns the entry made
    /// of it, stored or not (a zero lifetime), for a refresh to serve; `None` for an answer that
    /// is not cached.
    ///
    /// The TTLs of a stored answer are all set to the entry's lifetime, so the client that missed
    /// gets the TTL the next ones will count down from, as in CoreDNS.
    fn store(&self, key: u64, req: &Request, resp: &mut Response, refreshing_stale: bool) -> Refreshed {
        let m = self.metrics.server(req.route().server);
        let (dnssec_ok, checking_disabled) = (req.dnssec_ok(), req.checking_disabled());
        if self.key(req, dnssec_ok, checking_disabled) != key {
            // A plugin after the cache changed the question and did not put it back: the answer
            // may be for another question than the one the entry would be found by.
            m.drops.inc();
            return None;
        }
        let (qname, qtype, qclass) = (req.qname(), req.qtype(), req.qclass());
        let t = entry::typify(qname, qtype, qclass, dnssec_ok, resp);
        if !entry::cacheable(t, resp, qname, qtype, qclass) {
            return None;
        }
        if refreshing_stale && !(resp.rcode == Rcode::NOERROR || resp.rcode == Rcode::NXDOMAIN) {
            return None;
        }
        let kind = t.kind()?;
        let c = &self.config;
        let disabled = match kind {
            Kind::Success => &c.disable_success,
            Kind::Denial => &c.disable_denial,
        };
        if disabled.iter().any(|z| qname.is_subdomain_of(z)) {
            // Passed on as the plugins after the cache made it, TTLs and all.
            return None;
        }
        let ttl = match t {
            Type::ServerError => c.servfail.as_secs() as u32,
            Type::NameError | Type::NoData => {
                entry::minimal_ttl(t, resp, c.denial.max_ttl).max(c.denial.min_ttl).min(c.denial.max_ttl)
            }
            _ => entry::minimal_ttl(t, resp, c.success.max_ttl).max(c.success.min_ttl).min(c.success.max_ttl),
        };
        for r in resp.answer.iter_mut().chain(&mut resp.authority).chain(&mut resp.additional) {
            r.ttl = ttl;
        }
        let sections = WireAnswer::new(qname, [resp.answer.clone(), resp.authority.clone(), resp.additional.clone()]);
        if !sections.reads_back() {
            // Opaque records a plugin built that the decoder would not read (see `reads_back`):
            // passed on, not kept, so no later hit fails to show them to a plugin in front.
            return None;
        }
        let now = Instant::now();
        let e = Arc::new(Entry {
            qname: qname.clone(),
            qtype,
            qclass,
            dnssec_ok,
            checking_disabled,
            rcode: resp.rcode,
            authoritative: resp.authoritative,
            recursion_available: resp.recursion_available,
            authentic_data: resp.authentic_data,
            options: entry::kept_options(&resp.options),
            sections,
            kind,
            failure: t == Type::ServerError,
            stored: now,
            ttl,
            server: req.route().server,
            freq: Mutex::new(Freq { last: now, hits: 0 }),
            refresh: Mutex::new(RefreshState::default()),
        });
        if ttl == 0 {
            return Some(e);
        }
        let stale_for = c.stale.map_or(Duration::ZERO, |s| s.up_to);
        match (kind, e.failure) {
            // The newest answer for a key is the truth: a positive one ends a denial, a denial
            // ends a positive one, and a failure leaves a positive one be (coredns#7956).
            (Kind::Success, _) => {
                self.denial.remove(key);
                self.success.insert(key, e.clone(), stale_for);
            }
            (Kind::Denial, false) => {
                self.success.remove(key);
                self.denial.insert(key, e.clone(), stale_for);
            }
            (Kind::Denial, true) => self.denial.insert(key, e.clone(), stale_for),
        }
        Some(e)
    }

    /// Counts a hit for `prefetch` and says whether the entry is now popular and close enough to
    /// expiring to be refreshed (CoreDNS's `shouldPrefetch`): AMOUNT hits, each within DURATION of
    /// the one before, and at most PERCENTAGE of its TTL left (at least the last second).
    fn popular(&self, e: &Entry, now: Instant, left: i64) -> bool {
        let Some(p) = self.config.prefetch else { return false };
        let hits = {
            let mut f = e.freq.lock().expect("freq lock");
            f.hits = if now.saturating_duration_since(f.last) > p.window { 1 } else { f.hits + 1 };
            f.last = now;
            f.hits
        };
        let threshold = (p.percentage as u64 * e.ttl as u64).div_ceil(100) as i64;
        hits >= p.amount && left <= threshold
    }

    /// Starts refreshing `e` in the background unless a refresh of it is in flight (then that
    /// one is returned, to wait for) or failed less than FAILURE_RECHECK ago (then `None`).
    fn refresh(
        self: &Arc<Self>,
        e: &Arc<Entry>,
        req: &Request,
        next: Next<'_>,
        key: u64,
        how: Refresh,
    ) -> Option<Flight> {
        let mut state = e.refresh.lock().expect("refresh lock");
        if let Some(flight) = &state.in_flight {
            return Some(flight.clone());
        }
        if state.retry_after.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let task = tokio::spawn(self.clone().refresh_task(e.clone(), next.to_owned(), req.clone(), key, how));
        let flight = task.map(|done| done.ok().flatten()).boxed().shared();
        state.in_flight = Some(flight.clone());
        Some(flight)
    }

    /// One refresh: asks the rest of the chain again and stores what it answers; then lets the
    /// next refresh of `old` start.
    async fn refresh_task(
        self: Arc<Self>,
        old: Arc<Entry>,
        rest: OwnedNext,
        mut req: Request,
        key: u64,
        how: Refresh,
    ) -> Refreshed {
        let m = self.metrics.server(req.route().server);
        if how != Refresh::Verify {
            m.prefetch.inc();
        }
        req.set_authentic_data(true);
        let fresh = match tokio::time::timeout(REFRESH_LIMIT, rest.run(&mut req)).await {
            Ok(Ok(mut resp)) => self.store(key, &req, &mut resp, how != Refresh::Prefetch),
            _ => None,
        };
        let now = Instant::now();
        // A SERVFAIL is cached (for `servfail`) but does not replace `old` (coredns#7956).
        let replaced = fresh.as_ref().is_some_and(|f| !f.failure);
        if let Some(fresh) = fresh.as_ref().filter(|_| replaced) {
            // The new entry inherits the popularity of the one it replaces.
            let hits = old.freq.lock().expect("freq lock").hits;
            *fresh.freq.lock().expect("freq lock") = Freq { last: now, hits };
        }
        let mut state = old.refresh.lock().expect("refresh lock");
        state.in_flight = None;
        let recheck = match how {
            Refresh::Stale | Refresh::Verify => self.config.stale.map_or(Duration::ZERO, |s| s.failure_recheck),
            // A prefetch that failed is not tried again on every hit of the entry, which is still
            // served: a failing upstream would get a query per hit. It waits as long as a failure
            // is cached, at least a second.
            Refresh::Prefetch => self.config.servfail.max(Duration::from_secs(1)),
        };
        state.retry_after = (!replaced && !recheck.is_zero()).then(|| now + recheck);
        fresh
    }

    /// The answer to `req` from `e`, which has `left` seconds of freshness.
    fn reply(&self, e: &Entry, req: &Request, left: i64, freshness: Freshness) -> Response {
        let ttl = match freshness {
            Freshness::Stale => self.config.stale.map_or(0, |s| s.response_ttl),
            Freshness::Fresh if self.config.keepttl => e.ttl,
            Freshness::Fresh => left.max(0) as u32,
        };
        // No allocation: the sections are shared, and written by the server with this TTL.
        let mut resp = Response::with_rcode(NAME, e.rcode).with_wire(e.sections.clone(), Some(ttl));
        resp.authoritative = e.authoritative;
        resp.recursion_available = e.recursion_available;
        // RFC 6840 5.8: AD only for clients that asked with AD or DO.
        resp.authentic_data = e.authentic_data && (req.authentic_data() || req.dnssec_ok());
        resp.options = e.options.clone();
        if freshness == Freshness::Stale {
            resp.push_extended_error(&ExtendedError::new(ExtendedError::STALE_ANSWER, ""));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::dns::decode::decode_query;
    use crate::dns::{Class, Name, Proto, RData, Record, RecordType, Soa, build_query};
    use crate::metrics::{Format, Registry};
    use crate::plugin::testing;
    use crate::plugin::{Chain, DynPlugin, ErrorKind};

    type Answer = dyn Fn(&Request, usize) -> Result<Response, ServeError> + Send + Sync;

    /// The plugin behind the cache: counts the queries it gets, may wait (a timer, or a gate the
    /// test opens) before answering with what its function makes of the request and the count.
    struct Backend {
        calls: AtomicUsize,
        delay: Duration,
        gate: Option<Arc<tokio::sync::Semaphore>>,
        answer: Box<Answer>,
    }

    impl Plugin for Backend {
        fn name(&self) -> &'static str {
            "backend"
        }

        async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if let Some(gate) = &self.gate {
                gate.acquire().await.expect("gate").forget();
            }
            (self.answer)(req, n)
        }
    }

    struct Harness {
        rt: tokio::runtime::Runtime,
        chain: Chain,
        cache: Arc<Cache>,
        backend: Arc<Backend>,
        registry: Registry,
    }

    impl Harness {
        /// `cache` configured by `directive` (a `cache` line with its block) in front of a backend.
        fn new(
            directive: &str,
            answer: impl Fn(&Request, usize) -> Result<Response, ServeError> + Send + Sync + 'static,
        ) -> Harness {
            Harness::with_backend(directive, Duration::ZERO, None, answer)
        }

        fn with_backend(
            directive: &str,
            delay: Duration,
            gate: Option<Arc<tokio::sync::Semaphore>>,
            answer: impl Fn(&Request, usize) -> Result<Response, ServeError> + Send + Sync + 'static,
        ) -> Harness {
            let config: Config = testing::parse_config(&format!(". {{\n    {directive}\n}}\n"), NAME, parse).unwrap();
            let registry = Registry::new();
            let metrics = Metrics::new(&registry, &["dns://:53".into()], &config.zones);
            let cache = Arc::new(Cache::new(config, metrics));
            let backend = Arc::new(Backend { calls: AtomicUsize::new(0), delay, gate, answer: Box::new(answer) });
            let chain = testing::chain(vec![cache.clone() as Arc<dyn DynPlugin>, backend.clone()]);
            Harness { rt: testing::paused_runtime(), chain, cache, backend, registry }
        }

        /// The chain's answer, as records (a hit is kept encoded until someone reads it).
        fn ask(&self, req: &mut Request) -> Result<Response, ServeError> {
            let mut result = self.rt.block_on(Next::chain(&self.chain).run(req));
            if let Ok(resp) = &mut result {
                resp.materialize();
            }
            result
        }

        /// The reply to `name`/`qtype`, as [`show`] prints it.
        fn dig(&self, name: &str, qtype: RecordType) -> String {
            show(self.ask(&mut Request::synthetic(name, qtype)))
        }

        fn advance(&self, secs: u64) {
            self.rt.block_on(tokio::time::advance(Duration::from_secs(secs)));
        }

        /// Lets background refreshes run.
        fn settle(&self) {
            self.rt.block_on(async {
                for _ in 0..20 {
                    tokio::task::yield_now().await;
                }
            });
        }

        fn calls(&self) -> usize {
            self.backend.calls.load(Ordering::SeqCst)
        }

        /// The value of the metric sample line starting with `series`.
        fn metric(&self, series: &str) -> f64 {
            let text = self.registry.render(Format::Text);
            let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        }
    }

    /// A query with the given header bits and class, as a client sends it.
    fn query(name: &str, qtype: RecordType, dnssec_ok: bool, cd: bool, ad: bool, class: Class) -> Request {
        let mut wire = build_query(7, name, qtype, dnssec_ok.then_some((1232, 0, true)));
        wire[3] |= if cd { 0x10 } else { 0 } | if ad { 0x20 } else { 0 };
        let at = 12 + Name::parse(name).unwrap().wire_len() + 2;
        wire[at..at + 2].copy_from_slice(&class.0.to_be_bytes());
        let a = "127.0.0.1:5300".parse().unwrap();
        Request::new(decode_query(&wire).unwrap(), a, a, Proto::Udp, std::time::Instant::now())
    }

    /// `RCODE flags; records...; ede=N`, like dig's summary.
    fn show(r: Result<Response, ServeError>) -> String {
        let r = match r {
            Ok(r) => r,
            Err(e) => return format!("error: {e}"),
        };
        let mut out = r.rcode.to_string();
        for (on, flag) in [(r.authoritative, " aa"), (r.authentic_data, " ad")] {
            if on {
                out.push_str(flag);
            }
        }
        for rec in r.answer.iter().chain(&r.authority) {
            out.push_str(&format!("; {rec}"));
        }
        for e in r.options.extended_errors() {
            out.push_str(&format!("; ede={}", e.info_code));
        }
        out
    }

    fn a(req: &Request, ttl: u32, ip: &str) -> Response {
        let mut resp = Response::new("backend");
        resp.recursion_available = true;
        let mut rec = Record::new(req.qname().clone(), ttl, RData::A(ip.parse().unwrap()));
        rec.class = req.qclass();
        resp.answer.push(rec);
        resp
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let n = Name::parse("example.org.").unwrap();
        let data = Soa { mname: n.clone(), rname: n.clone(), serial: 1, refresh: 2, retry: 3, expire: 4, minimum };
        Record::new(n, ttl, RData::Soa(Box::new(data)))
    }

    fn nxdomain(soa_ttl: u32, minimum: u32) -> Response {
        let mut resp = Response::with_rcode("backend", Rcode::NXDOMAIN);
        resp.authority.push(soa(soa_ttl, minimum));
        resp
    }

    fn upstream_down() -> ServeError {
        ServeError::new("backend", ErrorKind::Upstream, "no healthy upstreams")
    }

    #[test]
    fn a_hit_skips_the_plugins_after_and_its_ttl_counts_down() {
        let h = Harness::new("cache", |req, _| Ok(a(req, 60, "10.0.0.1")));
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 60 IN A 10.0.0.1");
        h.advance(10);
        let hit = h.ask(&mut Request::synthetic("a.example.org.", RecordType::A)).unwrap();
        assert_eq!(hit.plugin(), NAME);
        assert!(hit.recursion_available);
        assert_eq!(show(Ok(hit)), "NOERROR; a.example.org. 50 IN A 10.0.0.1");
        assert_eq!(h.calls(), 1);
        h.advance(50);
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 60 IN A 10.0.0.1");
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn ttls_are_capped_and_raised_to_the_minimum_and_made_one() {
        let h = Harness::new("cache 30", |req, n| {
            let mut r = a(req, if n == 1 { 300 } else { 1 }, "10.0.0.1");
            r.answer.push(Record::new(req.qname().clone(), 40, RData::A("10.0.0.2".parse().unwrap())));
            Ok(r)
        });
        // The lowest TTL, capped at 30, for every record; the miss's reply says it too.
        assert_eq!(
            h.dig("a.example.org.", RecordType::A),
            "NOERROR; a.example.org. 30 IN A 10.0.0.1; a.example.org. 30 IN A 10.0.0.2"
        );
        // A TTL of 1 is kept for the 5 second minimum.
        assert_eq!(
            h.dig("b.example.org.", RecordType::A),
            "NOERROR; b.example.org. 5 IN A 10.0.0.1; b.example.org. 5 IN A 10.0.0.2"
        );
        h.advance(4);
        assert!(h.dig("b.example.org.", RecordType::A).contains("b.example.org. 1 IN A"));
        assert_eq!(h.calls(), 2);
        // `success CAPACITY TTL MINTTL` overrides both.
        let h = Harness::new("cache {\n        success 1024 20 10\n    }", |req, _| Ok(a(req, 2, "10.0.0.1")));
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 10 IN A 10.0.0.1");
    }

    #[test]
    fn rfc2308_denials_are_cached_apart_for_the_soa_minimum() {
        let h = Harness::new("cache", |req, _| match req.qname().to_string().as_str() {
            "nx.example.org." => Ok(nxdomain(300, 60)),
            "nosoa.example.org." => Ok(Response::with_rcode("backend", Rcode::NXDOMAIN)),
            _ => {
                let mut r = Response::new("backend");
                r.authority.push(soa(20, 3600));
                Ok(r)
            }
        });
        let nx = "NXDOMAIN; example.org. 60 IN SOA example.org. example.org. 1 2 3 4 60";
        assert_eq!(h.dig("nx.example.org.", RecordType::A), nx);
        h.advance(59);
        assert!(h.dig("nx.example.org.", RecordType::A).starts_with("NXDOMAIN; example.org. 1 IN SOA"));
        assert_eq!(h.calls(), 1);
        assert_eq!(h.metric("coredns_cache_hits_total{server=\"dns://:53\",type=\"denial\""), 1.0);
        assert_eq!(h.metric("coredns_cache_entries{server=\"dns://:53\",type=\"denial\""), 1.0);
        assert_eq!(h.metric("coredns_cache_entries{server=\"dns://:53\",type=\"success\""), 0.0);
        // NODATA: the SOA's own TTL when it is the lower.
        assert!(h.dig("nodata.example.org.", RecordType::AAAA).starts_with("NOERROR; example.org. 20 IN SOA"));
        // RFC 2308 5: no SOA, no negative caching.
        h.dig("nosoa.example.org.", RecordType::A);
        h.dig("nosoa.example.org.", RecordType::A);
        assert_eq!(h.calls(), 4);
    }

    #[test]
    fn servfail_is_cached_for_the_servfail_duration_and_errors_never() {
        let h = Harness::new("cache", |_, n| match n {
            1 => Ok(Response::with_rcode("backend", Rcode::SERVFAIL)),
            2 => Err(upstream_down()),
            _ => Ok(Response::with_rcode("backend", Rcode::REFUSED)),
        });
        assert_eq!(h.dig("a.example.org.", RecordType::A), "SERVFAIL");
        h.advance(4);
        assert_eq!(h.dig("a.example.org.", RecordType::A), "SERVFAIL");
        assert_eq!(h.calls(), 1);
        h.advance(1);
        // A plugin's error is not an answer: nothing to cache.
        assert_eq!(h.dig("a.example.org.", RecordType::A), "error: plugin/backend: no healthy upstreams");
        assert_eq!(h.dig("a.example.org.", RecordType::A), "REFUSED");
        assert_eq!(h.dig("a.example.org.", RecordType::A), "REFUSED");
        assert_eq!(h.calls(), 4);

        let h = Harness::new("cache {\n        servfail 0\n    }", |_, _| {
            Ok(Response::with_rcode("backend", Rcode::SERVFAIL))
        });
        h.dig("a.example.org.", RecordType::A);
        h.dig("a.example.org.", RecordType::A);
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn rfc2181_9_truncated_answers_are_not_cached() {
        let h = Harness::new("cache", |req, _| {
            let mut r = a(req, 60, "10.0.0.1");
            r.truncated = true;
            Ok(r)
        });
        h.dig("a.example.org.", RecordType::A);
        h.dig("a.example.org.", RecordType::A);
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn the_questions_case_does_not_split_the_key() {
        let h = Harness::new("cache", |req, _| Ok(a(req, 60, "10.0.0.1")));
        h.dig("WWW.Example.ORG.", RecordType::A);
        // The stored owner is the first client's spelling; the server writes it as a pointer to
        // the question, so each client reads its own case (tests/cache.rs checks the wire).
        assert_eq!(h.dig("www.example.org.", RecordType::A), "NOERROR; WWW.Example.ORG. 60 IN A 10.0.0.1");
        assert_eq!(h.calls(), 1);
    }

    #[test]
    fn regression_coredns_8261_the_class_is_part_of_the_key() {
        let h = Harness::new("cache", |req, _| {
            if req.qclass() == Class::CH {
                let mut r = nxdomain(60, 60);
                r.authority[0].class = Class::CH;
                Ok(r)
            } else {
                Ok(a(req, 60, "192.0.2.1"))
            }
        });
        let ch = h.ask(&mut query("victim.example.org.", RecordType::A, false, false, false, Class::CH)).unwrap();
        assert_eq!(ch.rcode, Rcode::NXDOMAIN);
        let inet = h.ask(&mut query("victim.example.org.", RecordType::A, false, false, false, Class::IN)).unwrap();
        assert_eq!(show(Ok(inet)), "NOERROR; victim.example.org. 60 IN A 192.0.2.1");
        assert_eq!(h.calls(), 2);
    }

    /// A validating upstream as RFC 6840 5.8 has it: AD only for queries with AD or DO.
    fn validating(req: &Request, _: usize) -> Result<Response, ServeError> {
        let mut r = a(req, 60, "10.0.0.1");
        r.authentic_data = req.authentic_data() || req.dnssec_ok();
        Ok(r)
    }

    #[test]
    fn regression_coredns_6642_ad_is_cached_as_validated_and_answered_per_client() {
        let h = Harness::new("cache", validating);
        let noad = || query("invent.example.org.", RecordType::A, false, false, false, Class::IN);
        let ad = || query("invent.example.org.", RecordType::A, false, false, true, Class::IN);
        // +noad first fills the entry: asked upstream with AD, answered to the client without.
        let mut first = noad();
        assert_eq!(show(h.ask(&mut first)), "NOERROR; invent.example.org. 60 IN A 10.0.0.1");
        assert!(!first.authentic_data(), "the client's bit is restored");
        assert_eq!(show(h.ask(&mut ad())), "NOERROR ad; invent.example.org. 60 IN A 10.0.0.1");
        assert_eq!(show(h.ask(&mut noad())), "NOERROR; invent.example.org. 60 IN A 10.0.0.1");
        assert_eq!(h.calls(), 1);
        // DO is part of the key; a DO client gets AD too.
        let mut dnssec = query("invent.example.org.", RecordType::A, true, false, false, Class::IN);
        assert_eq!(show(h.ask(&mut dnssec)), "NOERROR ad; invent.example.org. 60 IN A 10.0.0.1");
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn do_and_cd_bits_are_part_of_the_key() {
        let h = Harness::new("cache", |req, _| {
            let ip = match (req.dnssec_ok(), req.checking_disabled()) {
                (false, false) => "10.0.0.1",
                (true, false) => "10.0.0.2",
                (false, true) => "10.0.0.3",
                (true, true) => "10.0.0.4",
            };
            Ok(a(req, 60, ip))
        });
        for round in 0..2 {
            for (dnssec_ok, cd, ip) in [
                (false, false, "10.0.0.1"),
                (true, false, "10.0.0.2"),
                (false, true, "10.0.0.3"),
                (true, true, "10.0.0.4"),
            ] {
                let r = h.ask(&mut query("a.example.org.", RecordType::A, dnssec_ok, cd, false, Class::IN)).unwrap();
                assert_eq!(r.answer[0].data.to_string(), ip, "round {round} do={dnssec_ok} cd={cd}");
            }
        }
        assert_eq!(h.calls(), 4);
    }

    #[test]
    fn names_outside_the_zones_and_disabled_zones_are_not_cached() {
        let h = Harness::new(
            "cache example.org {\n        disable success no.example.org\n        disable denial\n    }",
            |req, _| if req.qtype() == RecordType::A { Ok(a(req, 60, "10.0.0.1")) } else { Ok(nxdomain(60, 60)) },
        );
        for name in ["a.example.net.", "x.no.example.org.", "a.example.org."] {
            h.dig(name, RecordType::A);
            h.dig(name, RecordType::A);
        }
        h.dig("a.example.org.", RecordType::TXT);
        h.dig("a.example.org.", RecordType::TXT);
        // Only a.example.org A came from the cache the second time.
        assert_eq!(h.calls(), 7);
        assert_eq!(
            h.metric("coredns_cache_requests_total{server=\"dns://:53\",view=\"\",zones=\"example.org.\"}"),
            6.0
        );
    }

    #[test]
    fn keepttl_serves_the_ttl_it_stored() {
        let h = Harness::new("cache {\n        keepttl\n    }", |req, _| Ok(a(req, 60, "10.0.0.1")));
        h.dig("a.example.org.", RecordType::A);
        h.advance(30);
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 60 IN A 10.0.0.1");
        h.advance(30);
        h.dig("a.example.org.", RecordType::A);
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn a_plugin_after_that_leaves_the_question_changed_is_dropped_not_cached() {
        let h = Harness::new("cache", |_, _| unreachable!());
        let rewrite = testing::answer("rewrite", |req| {
            req.set_question(Name::parse("other.example.org.").unwrap(), RecordType::A);
            Ok(a(req, 60, "10.0.0.9"))
        });
        let chain = testing::chain(vec![h.cache.clone() as Arc<dyn DynPlugin>, rewrite]);
        for _ in 0..2 {
            h.rt.block_on(Next::chain(&chain).run(&mut Request::synthetic("a.example.org.", RecordType::A))).unwrap();
        }
        assert_eq!(h.metric("coredns_cache_drops_total"), 2.0);
        assert_eq!(h.metric("coredns_cache_misses_total"), 2.0);
    }

    #[test]
    fn popular_names_are_prefetched_before_they_expire() {
        let h =
            Harness::new("cache {\n        prefetch 2 1m 50%\n    }", |req, n| Ok(a(req, 10, &format!("10.0.0.{n}"))));
        h.dig("a.example.org.", RecordType::A);
        h.advance(2);
        h.dig("a.example.org.", RecordType::A); // one hit: not popular yet
        h.settle();
        assert_eq!(h.calls(), 1);
        h.advance(4);
        // Two hits within a minute, 4 of 10 seconds left (at most 50%): refreshed in the
        // background; this query still gets the old answer.
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 4 IN A 10.0.0.1");
        h.settle();
        assert_eq!(h.calls(), 2);
        assert_eq!(h.metric("coredns_cache_prefetch_total"), 1.0);
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 10 IN A 10.0.0.2");
    }

    #[test]
    fn regression_coredns_7956_a_cached_servfail_never_hides_a_positive_entry() {
        // The prefetch of a popular name gets a SERVFAIL, which is cached; the answer still
        // valid goes on being served.
        let h = Harness::new("cache {\n        prefetch 1 1m 90%\n    }", |req, n| {
            if n == 1 { Ok(a(req, 10, "10.0.0.1")) } else { Ok(Response::with_rcode("backend", Rcode::SERVFAIL)) }
        });
        h.dig("a.example.org.", RecordType::A);
        h.advance(2);
        h.dig("a.example.org.", RecordType::A);
        h.settle();
        assert_eq!(h.calls(), 2);
        assert_eq!(h.metric("coredns_cache_entries{server=\"dns://:53\",type=\"denial\""), 1.0);
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 8 IN A 10.0.0.1");
        assert_eq!(h.calls(), 2);
    }

    /// A stale entry: `a.example.org. A` cached for 10 seconds, then the backend fails (or answers
    /// as `later` says), and the clock is past the TTL.
    fn stale_harness(
        directive: &str,
        delay: Duration,
        gate: Option<Arc<tokio::sync::Semaphore>>,
        later: fn(&Request, usize) -> Result<Response, ServeError>,
    ) -> Harness {
        let h = Harness::with_backend(directive, delay, gate.clone(), move |req, n| {
            if n == 1 { Ok(a(req, 10, "10.0.0.1")) } else { later(req, n) }
        });
        if let Some(g) = &gate {
            g.add_permits(1);
        }
        h.dig("a.example.org.", RecordType::A);
        h.advance(12);
        h
    }

    #[test]
    fn serve_stale_answers_with_ede_3_while_the_chain_fails() {
        let h =
            stale_harness("cache {\n        serve_stale 1h\n    }", Duration::ZERO, None, |_, _| Err(upstream_down()));
        // RFC 8914 4.4 Stale Answer, TTL 0 (CoreDNS's default RESPONSE_TTL).
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 0 IN A 10.0.0.1; ede=3");
        h.settle();
        assert_eq!(h.calls(), 2, "one refresh, in the background");
        assert_eq!(h.metric("coredns_cache_served_stale_total"), 1.0);
        h.advance(3600);
        assert_eq!(h.dig("a.example.org.", RecordType::A), "error: plugin/backend: no healthy upstreams");
    }

    #[test]
    fn serve_stale_immediate_refreshes_after_serving() {
        let h =
            stale_harness("cache {\n        serve_stale 1h immediate 30s\n    }", Duration::ZERO, None, |req, _| {
                Ok(a(req, 10, "10.0.0.2"))
            });
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 30 IN A 10.0.0.1; ede=3");
        h.settle();
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 10 IN A 10.0.0.2");
    }

    #[test]
    fn serve_stale_verify_asks_first_and_serves_stale_only_on_failure() {
        let h = stale_harness("cache {\n        serve_stale 1h verify\n    }", Duration::ZERO, None, |req, n| {
            if n == 2 { Ok(a(req, 10, "10.0.0.2")) } else { Err(upstream_down()) }
        });
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 10 IN A 10.0.0.2");
        h.advance(12);
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 0 IN A 10.0.0.2; ede=3");
        // A SERVFAIL answer does not refresh a stale entry either (RFC 8767 4).
        assert_eq!(h.calls(), 3);
        assert_eq!(h.metric("coredns_cache_prefetch_total"), 0.0);
    }

    #[test]
    fn serve_stale_verify_timeout_serves_stale_and_lets_the_refresh_finish() {
        let h = stale_harness(
            "cache {\n        serve_stale 1h verify 100ms\n    }",
            Duration::from_secs(1),
            None,
            |req, _| Ok(a(req, 10, "10.0.0.2")),
        );
        // The first query waited 1s for its fill: the entry was stored then. The refresh takes
        // 1s, longer than 100ms: stale now, fresh once it lands.
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 0 IN A 10.0.0.1; ede=3");
        h.advance(1);
        h.settle();
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 10 IN A 10.0.0.2");
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn serve_stale_failure_recheck_spaces_refreshes_out() {
        let h =
            stale_harness("cache {\n        serve_stale 1h immediate 0 30s\n    }", Duration::ZERO, None, |_, _| {
                Err(upstream_down())
            });
        for _ in 0..5 {
            assert!(h.dig("a.example.org.", RecordType::A).ends_with("ede=3"));
            h.settle();
        }
        assert_eq!(h.calls(), 2, "one failed refresh, then none for 30s");
        h.advance(30);
        h.dig("a.example.org.", RecordType::A);
        h.settle();
        assert_eq!(h.calls(), 3);
    }

    /// Many queries for one entry while its refresh is in flight start no other refresh.
    #[test]
    fn regression_coredns_4324_7963_one_refresh_in_flight_per_entry() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        // serve_stale immediate and prefetch together, as in coredns#4324.
        let h = stale_harness(
            "cache {\n        serve_stale 1h\n        prefetch 1 1m 90%\n    }",
            Duration::ZERO,
            Some(gate.clone()),
            |req, _| Ok(a(req, 10, "10.0.0.2")),
        );
        for _ in 0..100 {
            assert!(h.dig("a.example.org.", RecordType::A).ends_with("ede=3"));
            h.settle();
        }
        assert_eq!(h.calls(), 2);
        gate.add_permits(1);
        h.settle();
        assert_eq!(h.dig("a.example.org.", RecordType::A), "NOERROR; a.example.org. 10 IN A 10.0.0.2");
        // A popular fresh entry: one prefetch, however many queries ask while it runs.
        h.advance(2);
        for _ in 0..100 {
            h.dig("a.example.org.", RecordType::A);
            h.settle();
        }
        assert_eq!(h.calls(), 3);
        assert_eq!(h.metric("coredns_cache_prefetch_total"), 2.0);
        gate.add_permits(1);
        h.settle();
    }

    /// `verify` queries that arrive while a refresh is in flight wait for it, together.
    #[test]
    fn regression_coredns_4324_verify_queries_share_one_refresh() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let h = stale_harness(
            "cache {\n        serve_stale 1h verify\n    }",
            Duration::ZERO,
            Some(gate.clone()),
            |req, _| Ok(a(req, 10, "10.0.0.2")),
        );
        let replies = h.rt.block_on(async {
            let queries = (0..20).map(|_| async {
                let mut req = Request::synthetic("a.example.org.", RecordType::A);
                let mut result = Next::chain(&h.chain).run(&mut req).await;
                if let Ok(resp) = &mut result {
                    resp.materialize();
                }
                show(result)
            });
            let all = futures_util::future::join_all(queries);
            let open = async {
                tokio::task::yield_now().await;
                gate.add_permits(1);
            };
            futures_util::join!(all, open).0
        });
        assert!(replies.iter().all(|r| r == "NOERROR; a.example.org. 10 IN A 10.0.0.2"), "{replies:?}");
        assert_eq!(h.calls(), 2);
    }

    #[test]
    fn evictions_keep_the_store_within_capacity_and_are_counted() {
        let h = Harness::new("cache {\n        success 1024\n    }", |req, _| Ok(a(req, 60, "10.0.0.1")));
        for i in 0..3000 {
            h.dig(&format!("n{i}.example.org."), RecordType::A);
        }
        let evicted = h.metric("coredns_cache_evictions_total{server=\"dns://:53\",type=\"success\"");
        let entries = h.metric("coredns_cache_entries{server=\"dns://:53\",type=\"success\"");
        // CoreDNS's shards of 4 (1024 / 256): the store holds at most 1024, and each entry
        // pushed out is counted.
        assert!(entries <= 1024.0 && entries > 900.0, "{entries}");
        assert_eq!(entries + evicted, 3000.0);
        // The latest names are in; a name evicted long ago is asked for again.
        let calls = h.calls();
        h.dig("n2999.example.org.", RecordType::A);
        assert_eq!(h.calls(), calls);
    }

    /// A full shard evicts entries that can no longer be served before live ones, wherever they
    /// sit in the shard: dead entries must not pile up and shrink the cache.
    #[test]
    fn dead_entries_are_evicted_before_live_ones() {
        let h = Harness::new("cache {\n        success 10240\n    }", |req, _| {
            let old = req.qname().to_string().starts_with("old");
            Ok(a(req, if old { 5 } else { 3600 }, "10.0.0.1"))
        });
        for i in 0..12_000 {
            h.dig(&format!("old{i}.example.org."), RecordType::A);
        }
        h.advance(10);
        for i in 0..5_000 {
            h.dig(&format!("new{i}.example.org."), RecordType::A);
        }
        let calls = h.calls();
        for i in 0..5_000 {
            h.dig(&format!("new{i}.example.org."), RecordType::A);
        }
        // 5,000 live entries fit in 10,240 once the dead ones make room: (almost) all are hits.
        // A sample of 8 misses the dead entries of its shard now and then: 24-34 here, against
        // 1,231 when the sample always started at the shard's first entry.
        let misses = h.calls() - calls;
        assert!(misses < 150, "{misses} of 5000 live entries were evicted while dead ones were kept");
    }
}
