//! Keeping the table in step with the hosts file.
//!
//! As CoreDNS does, the file is polled: every `reload` interval its modification time and size
//! are compared with those of the last read, and on any difference it is read and parsed again,
//! a new table is built with the inline entries, and swapped in whole. A file that cannot be
//! read (deleted, a directory, unreadable) leaves the table as it is, so the entries last read
//! keep being served until the file is back; that is logged once, not on every poll.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use super::hostsfile::{self, Line, SkipLog};
use super::table::{Builder, Table};
use crate::dns::Name;
use crate::metrics::Gauge;

/// The modification time and size of the file as last read.
type Stamp = (Option<SystemTime>, u64);

/// The file, what it was last seen as, and where its entries go.
pub struct Source {
    path: PathBuf,
    /// `path` as logs and the `hostsfile` label show it.
    label: String,
    origins: Arc<[Name]>,
    reverse: bool,
    inline: Arc<[Line]>,
    table: Arc<ArcSwap<Table>>,
    /// `coredns_hosts_entries{hostsfile}`.
    entries: Arc<Gauge>,
    /// `coredns_hosts_reload_timestamp_seconds`: the modification time of the file last read.
    reloaded: Arc<Gauge>,
    last: Option<Stamp>,
    /// The file could not be read at the last poll (and that was logged).
    failing: bool,
}

/// What [`Source::new`] needs.
pub struct Settings {
    pub path: PathBuf,
    pub origins: Arc<[Name]>,
    pub reverse: bool,
    pub inline: Arc<[Line]>,
    pub entries: Arc<Gauge>,
    pub reloaded: Arc<Gauge>,
}

impl Source {
    /// A source serving the inline entries until the file is read. `reported` says the caller
    /// already warned that the file is missing or no file, so the first failed read stays quiet.
    pub fn new(s: Settings, reported: bool) -> Source {
        let label = s.path.display().to_string();
        let source = Source {
            path: s.path,
            label,
            origins: s.origins,
            reverse: s.reverse,
            inline: s.inline,
            table: Arc::new(ArcSwap::from_pointee(Table::default())),
            entries: s.entries,
            reloaded: s.reloaded,
            last: None,
            failing: reported,
        };
        source.install(&[]);
        source
    }

    /// The table queries read; swapped by [`refresh`](Self::refresh).
    pub fn table(&self) -> Arc<ArcSwap<Table>> {
        self.table.clone()
    }

    /// Reads the file if its modification time or size changed since the last read, and swaps
    /// in the new table. Returns whether it did. Blocking: reads and parses the whole file.
    pub fn refresh(&mut self) -> bool {
        let (stamp, text) = match self.read_if_changed() {
            Ok(Some(read)) => read,
            Ok(None) => return false,
            Err(e) => {
                if !self.failing {
                    tracing::warn!(target: "plugin/hosts", "Cannot read hosts file {}: {e}; serving the entries last read", self.label);
                    self.failing = true;
                }
                return false;
            }
        };
        self.failing = false;
        let lines = {
            let mut log = SkipLog::new(&self.label);
            hostsfile::parse(&text, |n, why| log.skipped(n, why))
        };
        let entries = self.install(&lines);
        tracing::debug!(target: "plugin/hosts", "Parsed hosts file into {entries} entries");
        self.last = Some(stamp);
        if let Some(mtime) = stamp.0 {
            self.reloaded.set(mtime.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64());
        }
        true
    }

    fn read_if_changed(&self) -> std::io::Result<Option<(Stamp, Vec<u8>)>> {
        let mut file = File::open(&self.path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"));
        }
        let stamp = (meta.modified().ok(), meta.len());
        if self.last == Some(stamp) {
            return Ok(None);
        }
        let mut text = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut text)?;
        Ok(Some((stamp, text)))
    }

    /// Builds the table from the file's `lines` and the inline entries, swaps it in, and
    /// returns its entry count.
    fn install(&self, lines: &[Line]) -> usize {
        let mut b = Builder::new(&self.origins, self.reverse);
        b.add_all(lines);
        b.add_all(self.inline.iter());
        let table = b.finish();
        let entries = table.entries();
        self.entries.set(entries as f64);
        self.table.store(Arc::new(table));
        entries
    }
}

/// Polls `source` every `every` until the task is aborted (no configuration keeps it any more).
pub async fn poll(source: Arc<Mutex<Source>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate, and setup has just read the file
    loop {
        tick.tick().await;
        let source = source.clone();
        let read = tokio::task::spawn_blocking(move || source.lock().expect("hosts source lock").refresh());
        if let Err(e) = read.await {
            tracing::error!(target: "plugin/hosts", "Hosts file reader failed, no longer reloading: {e}");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: PathBuf, inline: &str) -> Source {
        let inline: Vec<Line> = hostsfile::parse(inline.as_bytes(), |_, why| panic!("{why}"));
        Source::new(
            Settings {
                path,
                origins: vec![Name::root()].into(),
                reverse: true,
                inline: inline.into(),
                entries: Arc::new(Gauge::default()),
                reloaded: Arc::new(Gauge::default()),
            },
            false,
        )
    }

    fn v4(s: &Source, name: &str) -> Vec<String> {
        let table = s.table.load();
        match table.lookup(&Name::parse(name).unwrap()) {
            Some(a) => a.v4.iter().map(|ip| ip.to_string()).collect(),
            None => vec![],
        }
    }

    #[test]
    fn reads_on_change_only_and_keeps_entries_when_the_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        let mut s = source(path.clone(), "10.0.0.9 a\n10.0.0.8 inline\n");
        // Missing file: inline entries only.
        assert!(!s.refresh());
        assert_eq!(v4(&s, "a"), ["10.0.0.9"]);
        assert_eq!(s.entries.get(), 4.0);

        std::fs::write(&path, "10.0.0.1 a\n").unwrap();
        assert!(s.refresh());
        // The file's address first, then the Corefile's.
        assert_eq!(v4(&s, "a"), ["10.0.0.1", "10.0.0.9"]);
        assert_eq!(s.entries.get(), 6.0);
        assert!(s.reloaded.get() > 1.0e9);
        assert!(!s.refresh(), "unchanged");

        std::fs::write(&path, "10.0.0.2 a b\n").unwrap();
        assert!(s.refresh());
        assert_eq!(v4(&s, "b"), ["10.0.0.2"]);

        std::fs::remove_file(&path).unwrap();
        assert!(!s.refresh());
        assert!(s.failing);
        assert_eq!(v4(&s, "b"), ["10.0.0.2"], "the entries last read stay");
    }

    #[test]
    fn a_directory_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = source(dir.path().to_path_buf(), "");
        assert!(!s.refresh());
        assert!(s.failing);
    }
}
