//! What the server knows of plugins: each compiled-in plugin's name and parse function, in
//! execution order. The list itself lives with the plugins ([`crate::plugins::ALL`]); the
//! server takes it as a value, so tests can add plugins of their own.

use super::setup::ParseFn;

/// A compiled-in plugin.
pub struct PluginEntry {
    pub name: &'static str,
    pub parse: ParseFn,
}

impl std::fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The plugins a server can build, and the directives it recognises without having them.
#[derive(Clone, Copy, Debug)]
pub struct PluginSet {
    /// In execution order: a Corefile lists directives in any order, the chain runs them in this
    /// one (`clusterdns -plugins` prints these names).
    pub order: &'static [PluginEntry],
    /// Directive names of plugins this build does not have (CoreDNS's), so a Corefile naming one
    /// gets an error saying so rather than "unknown directive".
    pub known_elsewhere: &'static [&'static str],
}

impl PluginSet {
    /// The position of `name` in the execution order and its entry.
    pub fn lookup(&self, name: &str) -> Option<(usize, &'static PluginEntry)> {
        self.order.iter().enumerate().find(|(_, p)| p.name == name)
    }
}
