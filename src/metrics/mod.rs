//! Prometheus metrics: a registry of families, hot-path handles, and the exposition formats.
//!
//! Families are created once by name and live as long as the process, across reloads, as
//! CoreDNS's global registry does (counters do not reset when the Corefile changes). A series
//! (one label combination) appears when it is first asked for, as with client_golang's vectors,
//! so an unused label combination is absent rather than zero. Hot paths ask once and keep the
//! returned `Arc` (see `plugins/prometheus`), so recording a query is a few atomic adds.
//!
//! Exposition follows client_golang: families sorted by name, label pairs sorted by label name,
//! `# HELP` and `# TYPE` per family; OpenMetrics 1.0 when the scraper asks for it.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub mod dns;
pub mod process;

/// A monotonically increasing integer.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default, Debug)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per-bucket (not cumulative) counts; the last is the +Inf bucket. Their total is the
    /// count, so an observation is two atomic operations, not three.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let mut old = self.sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + v).to_bits();
            match self.sum.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(cur) => old = cur,
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }
}

/// The kind of a family, as `# TYPE` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The exposition format a scraper asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, what CoreDNS serves by default.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// Picks the format from an `Accept` header, as client_golang's promhttp does.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric family's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

/// Anything the registry can expose.
pub trait Collect: Send + Sync + 'static {
    fn desc(&self) -> &Desc;
    /// Writes the samples (not the HELP and TYPE lines) of this family.
    fn collect(&self, out: &mut Exposition);
}

/// A value type a [`Family`] can hold.
pub trait Metric: Send + Sync + 'static {
    fn write(&self, family: &Desc, labels: &[(&str, &str)], out: &mut Exposition);
}

impl Metric for Counter {
    fn write(&self, d: &Desc, labels: &[(&str, &str)], out: &mut Exposition) {
        out.sample(d.name, "", labels, None, self.get() as f64);
    }
}

impl Metric for Gauge {
    fn write(&self, d: &Desc, labels: &[(&str, &str)], out: &mut Exposition) {
        out.sample(d.name, "", labels, None, self.get());
    }
}

impl Metric for Histogram {
    fn write(&self, d: &Desc, labels: &[(&str, &str)], out: &mut Exposition) {
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().chain(std::iter::once(&f64::INFINITY)).enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            out.sample(d.name, "_bucket", labels, Some(*bound), cumulative as f64);
        }
        out.sample(d.name, "_sum", labels, None, self.sum());
        out.sample(d.name, "_count", labels, None, cumulative as f64);
    }
}

/// A family of series of metric `M`, keyed by label values.
pub struct Family<M> {
    desc: Desc,
    series: RwLock<BTreeMap<Box<[String]>, Arc<M>>>,
    new: Box<dyn Fn() -> M + Send + Sync>,
}

impl<M: Metric> Family<M> {
    fn new(desc: Desc, new: Box<dyn Fn() -> M + Send + Sync>) -> Family<M> {
        let family = Family { desc, series: RwLock::new(BTreeMap::new()), new };
        if family.desc.labels.is_empty() {
            // A metric without labels exists from the start, at zero, as in client_golang.
            family.with(&[]);
        }
        family
    }

    /// The series with these label values (in the family's label order), created at zero if new.
    ///
    /// This takes a lock and allocates: callers on a hot path look a series up once and keep it.
    pub fn with(&self, values: &[&str]) -> Arc<M> {
        assert_eq!(values.len(), self.desc.labels.len(), "label values for {}", self.desc.name);
        let key: Box<[String]> = values.iter().map(|v| v.to_string()).collect();
        if let Some(m) = self.series.read().expect("metrics lock").get(&key) {
            return m.clone();
        }
        self.series.write().expect("metrics lock").entry(key).or_insert_with(|| Arc::new((self.new)())).clone()
    }

    /// Removes every series (CoreDNS resets `coredns_plugin_enabled` on reload).
    pub fn clear(&self) {
        self.series.write().expect("metrics lock").clear();
    }

    /// The number of series.
    pub fn len(&self) -> usize {
        self.series.read().expect("metrics lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<M: Metric> Collect for Family<M> {
    fn desc(&self) -> &Desc {
        &self.desc
    }

    fn collect(&self, out: &mut Exposition) {
        let mut order: Vec<usize> = (0..self.desc.labels.len()).collect();
        order.sort_by_key(|&i| self.desc.labels[i]);
        for (values, m) in self.series.read().expect("metrics lock").iter() {
            let labels: Vec<(&str, &str)> = order.iter().map(|&i| (self.desc.labels[i], values[i].as_str())).collect();
            m.write(&self.desc, &labels, out);
        }
    }
}

/// All metric families of the process.
#[derive(Default)]
pub struct Registry {
    families: RwLock<BTreeMap<&'static str, Entry>>,
}

struct Entry {
    collect: Arc<dyn Collect>,
    /// The family itself, for typed lookups (`None` for scrape-time collectors).
    family: Option<Arc<dyn Any + Send + Sync>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The counter family `name`, created on first use.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family<Counter>> {
        self.family(Desc { name, help, kind: Kind::Counter, labels }, Counter::default)
    }

    /// The gauge family `name`, created on first use.
    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Arc<Family<Gauge>> {
        self.family(Desc { name, help, kind: Kind::Gauge, labels }, Gauge::default)
    }

    /// The histogram family `name` with upper bounds `bounds`, created on first use.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Arc<Family<Histogram>> {
        self.family(Desc { name, help, kind: Kind::Histogram, labels }, move || Histogram::new(bounds))
    }

    fn family<M: Metric>(&self, desc: Desc, new: impl Fn() -> M + Send + Sync + 'static) -> Arc<Family<M>> {
        if let Some(e) = self.families.read().expect("metrics lock").get(desc.name) {
            return self.existing(e, &desc);
        }
        let mut families = self.families.write().expect("metrics lock");
        if let Some(e) = families.get(desc.name) {
            return self.existing(e, &desc);
        }
        let name = desc.name;
        let family = Arc::new(Family::new(desc, Box::new(new)));
        families.insert(name, Entry { collect: family.clone(), family: Some(family.clone()) });
        family
    }

    fn existing<M: Metric>(&self, e: &Entry, desc: &Desc) -> Arc<Family<M>> {
        assert_eq!(e.collect.desc(), desc, "metric {} registered twice with different shapes", desc.name);
        let family = e.family.clone().unwrap_or_else(|| panic!("metric {} is a collector", desc.name));
        family.downcast::<Family<M>>().expect("same desc, same metric type")
    }

    /// Registers a collector computed at scrape time (process metrics); a second registration
    /// under the same name is ignored.
    pub fn register_collector(&self, collector: Arc<dyn Collect>) {
        let name = collector.desc().name;
        self.families.write().expect("metrics lock").entry(name).or_insert(Entry { collect: collector, family: None });
    }

    /// Renders every family with at least one series.
    pub fn render(&self, format: Format) -> String {
        let mut out = Exposition { format, buf: String::with_capacity(16 * 1024) };
        for entry in self.families.read().expect("metrics lock").values() {
            let d = entry.collect.desc();
            let mut samples = Exposition { format, buf: String::new() };
            entry.collect.collect(&mut samples);
            if samples.buf.is_empty() {
                continue;
            }
            let name = match (format, d.kind) {
                (Format::OpenMetrics, Kind::Counter) => d.name.strip_suffix("_total").unwrap_or(d.name),
                _ => d.name,
            };
            let _ = writeln!(out.buf, "# HELP {name} {}", escape_help(d.help));
            let _ = writeln!(out.buf, "# TYPE {name} {}", d.kind.as_str());
            out.buf.push_str(&samples.buf);
        }
        if format == Format::OpenMetrics {
            out.buf.push_str("# EOF\n");
        }
        out.buf
    }
}

/// Sample lines being written.
pub struct Exposition {
    format: Format,
    buf: String,
}

impl Exposition {
    /// Writes `name``suffix`{labels[,le]} value.
    pub fn sample(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], le: Option<f64>, value: f64) {
        self.buf.push_str(name);
        self.buf.push_str(suffix);
        if !labels.is_empty() || le.is_some() {
            self.buf.push('{');
            let mut first = true;
            for (k, v) in labels {
                if !first {
                    self.buf.push(',');
                }
                first = false;
                let _ = write!(self.buf, "{k}=\"{}\"", escape_label(v));
            }
            if let Some(le) = le {
                if !first {
                    self.buf.push(',');
                }
                let _ = write!(self.buf, "le=\"{}\"", format_float(le, self.format));
            }
            self.buf.push('}');
        }
        let _ = writeln!(self.buf, " {}", format_float(value, Format::Text));
    }
}

/// Go-like float formatting: integers without a fraction, `+Inf`, `NaN`. OpenMetrics wants
/// bucket bounds as floats (`1.0`).
fn format_float(v: f64, format: Format) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v.is_nan() {
        return "NaN".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return match format {
            Format::Text => format!("{}", v as i64),
            Format::OpenMetrics => format!("{}.0", v as i64),
        };
    }
    format!("{v}")
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    static BOUNDS: &[f64] = &[0.5, 1.0];

    #[test]
    fn renders_text_format_like_client_golang() {
        let r = Registry::new();
        let c = r.counter("t_requests_total", "Requests.", &["zone", "proto"]);
        c.with(&["example.org.", "udp"]).inc();
        c.with(&["example.org.", "udp"]).add(2);
        r.counter("t_unused_total", "Unused.", &["x"]);
        r.counter("t_plain_total", "Plain.", &[]);
        let h = r.histogram("t_seconds", "Time.", &["zone"], BOUNDS);
        h.with(&["a"]).observe(0.25);
        h.with(&["a"]).observe(2.0);
        assert_eq!(
            r.render(Format::Text),
            "# HELP t_plain_total Plain.\n# TYPE t_plain_total counter\nt_plain_total 0\n\
             # HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n\
             t_requests_total{proto=\"udp\",zone=\"example.org.\"} 3\n\
             # HELP t_seconds Time.\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{zone=\"a\",le=\"0.5\"} 1\nt_seconds_bucket{zone=\"a\",le=\"1\"} 1\n\
             t_seconds_bucket{zone=\"a\",le=\"+Inf\"} 2\nt_seconds_sum{zone=\"a\"} 2.25\nt_seconds_count{zone=\"a\"} 2\n"
        );
    }

    #[test]
    fn renders_openmetrics() {
        let r = Registry::new();
        r.counter("t_requests_total", "Requests.", &[]).with(&[]).inc();
        let text = r.render(Format::OpenMetrics);
        assert!(text.starts_with("# HELP t_requests Requests.\n# TYPE t_requests counter\nt_requests_total 1\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn families_are_shared_by_name() {
        let r = Registry::new();
        let a = r.counter("t_total", "T.", &["x"]);
        let b = r.counter("t_total", "T.", &["x"]);
        a.with(&["1"]).inc();
        assert_eq!(b.with(&["1"]).get(), 1);
        assert!(Arc::ptr_eq(&a.with(&["1"]), &b.with(&["1"])));
    }

    #[test]
    fn label_values_are_escaped() {
        let r = Registry::new();
        r.gauge("t_g", "G.", &["v"]).with(&["a\"b\\c\nd"]).set(1.5);
        assert!(r.render(Format::Text).contains("t_g{v=\"a\\\"b\\\\c\\nd\"} 1.5\n"));
    }
}
