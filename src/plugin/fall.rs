//! `fallthrough [ZONES...]`: which names a plugin hands on instead of answering "not found".
//!
//! The property is shared by every plugin that owns names (`hosts`, `kubernetes`, `file`, ...)
//! and means the same in each, as CoreDNS's `plugin/pkg/fall`: without the property the plugin
//! answers every name of its zones itself; `fallthrough` alone hands on any name it does not
//! have; `fallthrough ZONES...` hands on only the names under those zones.

use crate::corefile::{Args, Error};
use crate::dns::Name;

/// Where a plugin falls through. The default falls through nowhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fallthrough {
    /// Empty: never. The root zone: always.
    zones: Vec<Name>,
}

impl Fallthrough {
    /// Falls through nowhere (no `fallthrough` property).
    pub fn never() -> Fallthrough {
        Fallthrough::default()
    }

    /// Falls through for every name (`fallthrough` without zones).
    pub fn always() -> Fallthrough {
        Fallthrough { zones: vec![Name::root()] }
    }

    /// Reads the property's arguments: none means every name, otherwise zones (names or CIDRs).
    pub fn parse(args: &mut Args<'_>) -> Result<Fallthrough, Error> {
        let zones = args.zones()?;
        if zones.is_empty() { Ok(Fallthrough::always()) } else { Ok(Fallthrough { zones }) }
    }

    /// Whether a name this plugin has no data for goes to the next plugin.
    pub fn through(&self, name: &Name) -> bool {
        self.zones.iter().any(|z| name.is_subdomain_of(z))
    }

    /// Whether the property was given at all.
    pub fn is_set(&self) -> bool {
        !self.zones.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn fall(line: &str) -> Fallthrough {
        let text = format!(". {{\n    {line}\n}}\n");
        let corefile = crate::corefile::parse_str("Corefile", &text, &|_| None).unwrap();
        let dir = &corefile.blocks[0].directives[0];
        Fallthrough::parse(&mut Args::new("test", dir)).unwrap()
    }

    #[test]
    fn without_zones_everything_falls_through() {
        let f = fall("fallthrough");
        assert!(f.is_set());
        assert!(f.through(&n("a.example.org")) && f.through(&Name::root()));
    }

    #[test]
    fn with_zones_only_names_below_them() {
        let f = fall("fallthrough example.org 10.0.0.0/8");
        assert!(f.through(&n("a.Example.org")));
        assert!(f.through(&n("example.org")));
        assert!(f.through(&n("1.0.0.10.in-addr.arpa")));
        assert!(!f.through(&n("example.net")));
        assert!(!f.through(&n("1.0.0.11.in-addr.arpa")));
    }

    #[test]
    fn never_by_default() {
        assert!(!Fallthrough::never().is_set());
        assert!(!Fallthrough::default().through(&n("example.org")));
    }
}
