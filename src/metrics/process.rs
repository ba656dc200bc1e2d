//! Process metrics with the names client_golang's process collector gives them
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes` ...), read from `/proc` at
//! scrape time, and `go_goroutines`, which CoreDNS dashboards plot: here the number of tasks alive
//! in the async runtime plus the server's own threads, the nearest equivalent of goroutines.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Collect, Desc, Exposition, Kind, Registry};

/// Registers the process collectors; `threads` counts the server's own threads (UDP workers).
pub fn register(registry: &Registry, threads: Arc<AtomicUsize>) {
    for (name, help, kind, read) in PROCESS {
        registry.register_collector(Arc::new(ProcStat { desc: Desc { name, help, kind, labels: &[] }, read }));
    }
    registry.register_collector(Arc::new(Goroutines {
        desc: Desc {
            name: "go_goroutines",
            help: "Number of goroutines that currently exist.",
            kind: Kind::Gauge,
            labels: &[],
        },
        threads,
    }));
}

type Reader = fn(&Proc) -> Option<f64>;

static PROCESS: [(&str, &str, Kind, Reader); 7] = [
    ("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", Kind::Counter, |p| {
        Some((p.stat_field(14)? + p.stat_field(15)?) / ticks_per_second())
    }),
    ("process_open_fds", "Number of open file descriptors.", Kind::Gauge, |_| {
        Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as f64)
    }),
    ("process_max_fds", "Maximum number of open file descriptors.", Kind::Gauge, |p| p.limit("Max open files")),
    ("process_virtual_memory_bytes", "Virtual memory size in bytes.", Kind::Gauge, |p| p.stat_field(23)),
    ("process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes.", Kind::Gauge, |p| {
        p.limit("Max address space")
    }),
    ("process_resident_memory_bytes", "Resident memory size in bytes.", Kind::Gauge, |p| {
        Some(p.stat_field(24)? * page_size())
    }),
    ("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", Kind::Gauge, |p| {
        Some(boot_time()? + p.stat_field(22)? / ticks_per_second())
    }),
];

struct ProcStat {
    desc: Desc,
    read: Reader,
}

impl Collect for ProcStat {
    fn desc(&self) -> &Desc {
        &self.desc
    }

    fn collect(&self, out: &mut Exposition) {
        if let Some(v) = (self.read)(&Proc::read()) {
            out.sample(self.desc.name, "", &[], None, v);
        }
    }
}

struct Goroutines {
    desc: Desc,
    threads: Arc<AtomicUsize>,
}

impl Collect for Goroutines {
    fn desc(&self) -> &Desc {
        &self.desc
    }

    fn collect(&self, out: &mut Exposition) {
        let tasks = tokio::runtime::Handle::try_current().map(|h| h.metrics().num_alive_tasks()).unwrap_or(0);
        out.sample(self.desc.name, "", &[], None, (tasks + self.threads.load(Ordering::Relaxed)) as f64);
    }
}

/// `/proc/self/stat` and `/proc/self/limits`, read once per sample.
struct Proc {
    stat: String,
    limits: String,
}

impl Proc {
    fn read() -> Proc {
        Proc {
            stat: std::fs::read_to_string("/proc/self/stat").unwrap_or_default(),
            limits: std::fs::read_to_string("/proc/self/limits").unwrap_or_default(),
        }
    }

    /// Field `n` of /proc/self/stat, counted from 1 as proc(5) does. The command name (field 2)
    /// may hold spaces, so fields are counted after its closing parenthesis.
    fn stat_field(&self, n: usize) -> Option<f64> {
        let after = &self.stat[self.stat.rfind(')')? + 1..];
        after.split_whitespace().nth(n - 3)?.parse().ok()
    }

    /// The soft limit of `name` in /proc/self/limits ("unlimited" as client_golang reports it).
    fn limit(&self, name: &str) -> Option<f64> {
        let line = self.limits.lines().find(|l| l.starts_with(name))?;
        let soft = line[name.len()..].split_whitespace().next()?;
        if soft == "unlimited" { Some(u64::MAX as f64) } else { soft.parse().ok() }
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as f64 } else { 4096.0 }
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Format;

    #[test]
    fn process_metrics_are_read_from_proc() {
        let r = Registry::new();
        register(&r, Arc::new(AtomicUsize::new(2)));
        let text = r.render(Format::Text);
        for name in [
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_max_fds ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_start_time_seconds ",
            "go_goroutines 2",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        let rss: f64 =
            text.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes ")).unwrap().parse().unwrap();
        assert!(rss > 1e6, "rss {rss}");
    }
}
