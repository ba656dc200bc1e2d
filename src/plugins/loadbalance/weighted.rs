//! The `weighted` policy: a weights file says how likely each address of a name is to be put
//! first.
//!
//! The file, as CoreDNS reads it:
//!
//! ~~~ txt
//! # comments and blank lines are skipped
//! www.example.com          <- a name: the lines below give its addresses' weights
//! 100.64.1.1 3             <- address, weight 1..=255
//! 100.64.1.2 1
//! ~~~
//!
//! An address of an answer gets its weight from the entry of the record's owner name, or 1 when
//! it has none; one address is drawn with probability weight / sum of weights and moved first.
//! The rest keep their order: only the first address is balanced.
//!
//! The file is read when the plugin is built (a file that cannot be read is an error, unless a
//! reload interval is set: then it is a warning and the file is tried again) and, with a reload
//! interval, re-read on that interval; a changed file replaces the weights in one swap, a broken
//! one is logged and the previous weights stay.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::corefile::format_duration;
use crate::dns::{Name, NameMap, RData, Record};

/// Name -> (address, weight). Names hash and compare case-insensitively.
type Table = NameMap<Vec<(IpAddr, u8)>>;

pub struct Weights {
    path: PathBuf,
    table: ArcSwap<Table>,
    /// The bytes last read, to tell a changed file (a broken file is not re-parsed until it
    /// changes again, as in CoreDNS).
    last: Mutex<Option<Vec<u8>>>,
}

impl Weights {
    /// Weights from `path`, empty until [`update`](Self::update) reads it.
    pub fn new(path: PathBuf) -> Weights {
        Weights { path, table: ArcSwap::from_pointee(Table::default()), last: Mutex::new(None) }
    }

    /// Replaces the weights with `bytes` (the file's contents) if they changed. `Ok(true)` when
    /// they did and parsed.
    pub fn update(&self, bytes: Vec<u8>) -> Result<bool, String> {
        {
            let mut last = self.last.lock().expect("not poisoned");
            if last.as_deref() == Some(bytes.as_slice()) {
                return Ok(false);
            }
            *last = Some(bytes.clone());
        }
        let table = parse(&self.path, &String::from_utf8_lossy(&bytes))?;
        self.table.store(Arc::new(table));
        tracing::info!(target: "plugin/loadbalance", "Successfully reloaded weight file {}", self.path.display());
        Ok(true)
    }

    /// Re-reads the file every `interval`, for as long as the configuration runs.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = match tokio::fs::read(&self.path).await {
                Ok(bytes) => self.update(bytes).map(drop),
                Err(e) => Err(format!("cannot read weight file {}: {e}", self.path.display())),
            };
            if let Err(e) = result {
                tracing::error!(target: "plugin/loadbalance", "{e}");
            }
        }
    }

    /// Logs that the file could not be read at startup and will be tried again.
    pub fn warn_unreadable(&self, err: &std::io::Error, interval: Duration) {
        tracing::warn!(
            target: "plugin/loadbalance",
            "Failed to open weight file {}: {err}. Will try again in {}",
            self.path.display(),
            format_duration(interval)
        );
    }

    /// Moves the address drawn by weight to the first address position of `section`, after
    /// ordering it CNAMEs, others, addresses, MX as round robin does. A section without
    /// addresses is left as it is.
    pub fn balance(&self, section: &mut [Record], rng: &mut fastrand::Rng) {
        if !section.iter().any(super::is_address) {
            return;
        }
        let addresses = super::group(section).addresses;
        let table = self.table.load();
        let weight = |r: &Record| -> u32 {
            let ip = match r.data {
                RData::A(ip) => IpAddr::V4(ip),
                RData::Aaaa(ip) => IpAddr::V6(ip).to_canonical(),
                _ => return 1,
            };
            let entries = table.get(&r.name).map(Vec::as_slice).unwrap_or_default();
            entries.iter().find(|(a, _)| *a == ip).map_or(1, |(_, w)| *w as u32)
        };
        let records = &mut section[addresses];
        let total: u32 = records.iter().map(weight).sum();
        let mut draw = rng.u32(..total);
        let top = records
            .iter()
            .position(|r| {
                let w = weight(r);
                if draw < w {
                    return true;
                }
                draw -= w;
                false
            })
            .expect("the draw is below the sum of the weights");
        records.swap(0, top);
    }
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Parses a weights file (see the [module documentation](self)); errors name `file:line`.
fn parse(path: &Path, text: &str) -> Result<Table, String> {
    let mut table = Table::default();
    let mut current: Option<Name> = None;
    for (i, line) in text.lines().enumerate() {
        let at = || format!("weight file {}:{}", path.display(), i + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [name] => {
                if name.parse::<IpAddr>().is_ok() {
                    return Err(format!("{}: '{name}' is an address, not a name (a weight missing?)", at()));
                }
                let name = Name::parse(name).map_err(|e| format!("{}: invalid name: {e}", at()))?;
                table.entry(name.clone()).or_default();
                current = Some(name);
            }
            [ip, weight] => {
                let ip: IpAddr = ip.parse().map_err(|_| format!("{}: invalid address '{ip}'", at()))?;
                let weight = match weight.parse::<u8>() {
                    Ok(w) if w > 0 => w,
                    _ => return Err(format!("{}: invalid weight '{weight}': expected 1 to 255", at())),
                };
                let Some(name) = &current else {
                    return Err(format!("{}: an address before any name", at()));
                };
                table.get_mut(name).expect("entered with the name").push((ip.to_canonical(), weight));
            }
            _ => return Err(format!("{}: expected a name, or an address and a weight: '{line}'", at())),
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(text: &str) -> Weights {
        let w = Weights::new("db.weights".into());
        w.update(text.as_bytes().to_vec()).unwrap();
        w
    }

    fn a(name: &str, ip: &str) -> Record {
        Record::new(Name::parse(name).unwrap(), 60, RData::A(ip.parse().unwrap()))
    }

    #[test]
    fn files_parse_as_coredns_reads_them() {
        let w = weights(
            "# weights\n\nwww.example.com\n100.64.1.1 3\n 100.64.1.2   1 \nOther.Example.com.\n::ffff:10.0.0.1 255\n",
        );
        let t = w.table.load();
        assert_eq!(
            t[&Name::parse("www.example.com.").unwrap()],
            [("100.64.1.1".parse().unwrap(), 3), ("100.64.1.2".parse().unwrap(), 1)]
        );
        assert_eq!(t[&Name::parse("other.example.com.").unwrap()], [("10.0.0.1".parse().unwrap(), 255)]);
        assert!(!w.update(b"# weights\n\nwww.example.com\n100.64.1.1 3\n 100.64.1.2   1 \nOther.Example.com.\n::ffff:10.0.0.1 255\n".to_vec()).unwrap(), "unchanged");
    }

    #[test]
    fn broken_files_name_the_line() {
        for (text, want) in [
            ("10.0.0.1\n", "weight file db.weights:1: '10.0.0.1' is an address, not a name (a weight missing?)"),
            ("a\nb 1\n", "weight file db.weights:2: invalid address 'b'"),
            ("a\n10.0.0.1 0\n", "weight file db.weights:2: invalid weight '0': expected 1 to 255"),
            ("a\n10.0.0.1 256\n", "weight file db.weights:2: invalid weight '256': expected 1 to 255"),
            ("# c\n10.0.0.1 2\n", "weight file db.weights:2: an address before any name"),
            ("a b c\n", "weight file db.weights:1: expected a name, or an address and a weight: 'a b c'"),
            ("a..b\n", "weight file db.weights:1: invalid name: empty label in 'a..b'"),
        ] {
            let w = Weights::new("db.weights".into());
            assert_eq!(w.update(text.as_bytes().to_vec()).unwrap_err(), want, "{text}");
        }
    }

    /// 3:1:2 weights: over 6000 draws each address comes first in proportion, within 10%; the
    /// seed makes the run reproducible.
    #[test]
    fn the_first_address_is_drawn_by_weight() {
        let w = weights("www.example.com\n100.64.1.1 3\n100.64.1.2 1\n100.64.1.3 2\n");
        let mut rng = fastrand::Rng::with_seed(7);
        let mut firsts: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        for _ in 0..6000 {
            let mut section = vec![
                a("WWW.example.com.", "100.64.1.1"),
                a("www.example.com.", "100.64.1.2"),
                a("www.example.com.", "100.64.1.3"),
            ];
            w.balance(&mut section, &mut rng);
            *firsts.entry(section[0].data.to_string()).or_default() += 1;
        }
        for (ip, want) in [("100.64.1.1", 3000.0), ("100.64.1.2", 1000.0), ("100.64.1.3", 2000.0)] {
            let got = firsts[ip] as f64;
            assert!((got - want).abs() < want * 0.1, "{ip}: {got} of 6000, want about {want}");
        }
    }

    #[test]
    fn unknown_names_weigh_one_and_sections_without_addresses_stay() {
        let w = weights("www.example.com\n100.64.1.1 3\n");
        let mut rng = fastrand::Rng::with_seed(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut section = vec![a("other.example.com.", "10.0.0.1"), a("other.example.com.", "10.0.0.2")];
            w.balance(&mut section, &mut rng);
            seen.insert(section[0].data.to_string());
        }
        assert_eq!(seen.len(), 2);
        let mx = Record::new(
            Name::parse("example.com.").unwrap(),
            60,
            RData::Mx { preference: 10, exchange: Name::parse("mx.example.com.").unwrap() },
        );
        let txt = Record::new(Name::parse("example.com.").unwrap(), 60, RData::Txt(vec![b"x".to_vec().into()]));
        let mut section = vec![mx.clone(), txt.clone()];
        w.balance(&mut section, &mut rng);
        assert_eq!(section, [mx, txt]);
    }
}
