//! Reading a directive's arguments and block with positions attached to every error.
//!
//! Plugins parse their directive through [`Args`], which cannot produce an error without a
//! position: a missing argument is reported just after the last one, a surplus one at itself.

use std::time::Duration;

use super::error::{Error, Pos};
use super::keys::reverse_zones;
use super::lexer::Token;
use super::parse::{Block, Directive};
use crate::dns::Name;

/// A cursor over a directive's (or a block property's) arguments.
pub struct Args<'a> {
    plugin: &'static str,
    dir: &'a Directive,
    next: usize,
}

impl<'a> Args<'a> {
    pub fn new(plugin: &'static str, dir: &'a Directive) -> Args<'a> {
        Args { plugin, dir, next: 0 }
    }

    /// The directive (or property) name token.
    pub fn name(&self) -> &'a Token {
        &self.dir.name
    }

    pub fn next_arg(&mut self) -> Option<&'a Token> {
        let t = self.dir.args.get(self.next)?;
        self.next += 1;
        Some(t)
    }

    pub fn peek(&self) -> Option<&'a Token> {
        self.dir.args.get(self.next)
    }

    /// The next argument, or an error saying `what` was expected.
    pub fn required(&mut self, what: &str) -> Result<&'a Token, Error> {
        match self.next_arg() {
            Some(t) => Ok(t),
            None => Err(self.error_at(&self.dir.end_pos(), format!("{}expected {what}", self.subject()))),
        }
    }

    /// `"except: "` for a property line; nothing for the directive itself, whose name the
    /// error already carries as its plugin (`bind: expected ...`, not `bind: bind: expected ...`).
    fn subject(&self) -> String {
        if self.dir.name.text == self.plugin { String::new() } else { format!("{}: ", self.dir.name.text) }
    }

    /// All remaining arguments.
    pub fn rest(&mut self) -> &'a [Token] {
        let rest = &self.dir.args[self.next.min(self.dir.args.len())..];
        self.next = self.dir.args.len();
        rest
    }

    pub fn remaining(&self) -> usize {
        self.dir.args.len().saturating_sub(self.next)
    }

    /// Errors on the first argument not consumed.
    pub fn finish(&self) -> Result<(), Error> {
        match self.peek() {
            Some(t) => Err(self.error(t, format!("unexpected argument '{}'", t.text))),
            None => Ok(()),
        }
    }

    /// The block's property lines, or an error if a block was given where none is accepted.
    pub fn block(&self) -> &'a [Directive] {
        self.dir.block.as_ref().map(|b| b.lines.as_slice()).unwrap_or(&[])
    }

    /// Errors at the second line of the block that repeats a property name, unless `repeatable`
    /// says the name may come more than once: `'ttl' is given twice`.
    pub fn each_once(&self, repeatable: impl Fn(&str) -> bool) -> Result<(), Error> {
        let lines = self.block();
        for (i, line) in lines.iter().enumerate() {
            let name = line.name.text.as_str();
            if !repeatable(name) && lines[..i].iter().any(|l| l.name.text == name) {
                return Err(self.error(&line.name, format!("'{name}' is given twice")));
            }
        }
        Ok(())
    }

    /// Errors if the directive has a block.
    pub fn no_block(&self) -> Result<(), Error> {
        match &self.dir.block {
            Some(Block { open, .. }) => Err(self.error_at(open, format!("{}takes no block", self.subject()))),
            None => Ok(()),
        }
    }

    /// A cursor over one property line of the block.
    pub fn property(&self, line: &'a Directive) -> Args<'a> {
        Args::new(self.plugin, line)
    }

    /// `unknown property 'x'` at the property's name.
    pub fn unknown_property(&self) -> Error {
        self.error(&self.dir.name, format!("unknown property '{}'", self.dir.name.text))
    }

    pub fn error(&self, tok: &Token, message: impl Into<String>) -> Error {
        Error::setup(self.plugin, &tok.pos, message)
    }

    pub fn error_at(&self, pos: &Pos, message: impl Into<String>) -> Error {
        Error::setup(self.plugin, pos, message)
    }

    /// The next argument parsed as `T`.
    pub fn parse<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, Error> {
        let t = self.required(what)?;
        t.text.parse().map_err(|_| self.error(t, format!("expected {what}, got '{}'", t.text)))
    }

    /// All remaining arguments as zones, lowercase and without repeats: a domain name, or a CIDR
    /// standing for its reverse zones (`10.0.0.0/8` is `10.in-addr.arpa.`), as CoreDNS
    /// normalizes the ZONES of `hosts`, `kubernetes` or `fallthrough`.
    pub fn zones(&mut self) -> Result<Vec<Name>, Error> {
        let mut zones: Vec<Name> = Vec::new();
        for t in self.rest() {
            let more = if t.text.contains('/') {
                reverse_zones(&t.text).ok_or_else(|| self.error(t, format!("invalid CIDR '{}'", t.text)))?
            } else {
                let zone =
                    Name::parse(&t.text).map_err(|e| self.error(t, format!("invalid zone '{}': {e}", t.text)))?;
                vec![zone.to_lowercase()]
            };
            for z in more {
                if !zones.contains(&z) {
                    zones.push(z);
                }
            }
        }
        Ok(zones)
    }

    /// The next argument as a Go duration (`30s`, `1m30s`, `500ms`).
    pub fn duration(&mut self, what: &str) -> Result<Duration, Error> {
        let t = self.required(what)?;
        parse_duration(&t.text)
            .ok_or_else(|| self.error(t, format!("expected {what} (a duration such as 30s), got '{}'", t.text)))
    }
}

/// Errors at the second and later directives: "this plugin can only be used once per Server
/// Block", as CoreDNS says.
pub fn once<'a>(plugin: &'static str, dirs: &'a [Directive]) -> Result<&'a Directive, Error> {
    if let Some(second) = dirs.get(1) {
        return Err(Error::setup(plugin, &second.name.pos, "this plugin can only be used once per Server Block"));
    }
    Ok(dirs.first().expect("a plugin is parsed with at least one directive"))
}

/// Parses Go's duration syntax: a sequence of decimal numbers with units ns, us (or µs), ms, s,
/// m, h, e.g. `1h30m`, `1.5s`, `300ms`. A bare `0` is zero. Negative durations are not accepted.
pub fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Formats `d` as Go's `time.Duration.String` does (`2s`, `1m30s`, `1.5s`, `250ms`, `0s`), for
/// log lines and errors that CoreDNS users know.
pub fn format_duration(d: Duration) -> String {
    fn trim(n: u128, unit_nanos: u128, suffix: &str) -> String {
        let (whole, frac) = (n / unit_nanos, n % unit_nanos);
        if frac == 0 {
            return format!("{whole}{suffix}");
        }
        let width = unit_nanos.ilog10() as usize;
        let digits = format!("{frac:0width$}");
        format!("{whole}.{}{suffix}", digits.trim_end_matches('0'))
    }
    let n = d.as_nanos();
    match n {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => trim(n, 1_000, "µs"),
        n if n < 1_000_000_000 => trim(n, 1_000_000, "ms"),
        n => {
            let secs = n / 1_000_000_000;
            let (h, m) = (secs / 3600, secs / 60 % 60);
            let s = trim(n % 60_000_000_000, 1_000_000_000, "s");
            match (h, m) {
                (0, 0) => s,
                (0, m) => format!("{m}m{s}"),
                (h, m) => format!("{h}h{m}m{s}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn missing_after(text: &str) -> String {
        let c = parse_str("Corefile", text, &|_| None).unwrap();
        let mut args = Args::new("demo", &c.blocks[0].directives[0]);
        args.rest();
        args.required("a value").unwrap_err().to_string()
    }

    /// "Expected more" pointed past the start line of a quoted argument spanning lines, and
    /// miscounted quoted arguments with escapes: it now points just after the argument as written.
    #[test]
    fn missing_argument_is_reported_just_after_the_last_one() {
        assert_eq!(missing_after(". {\n  demo a bc\n}"), "Corefile:2:12: demo: expected a value");
        assert_eq!(missing_after(". {\n  demo \"x\ny\"\n}"), "Corefile:3:3: demo: expected a value");
        assert_eq!(missing_after(". {\n  demo \"a\\\"b\"\n}"), "Corefile:2:14: demo: expected a value");
        assert_eq!(missing_after(". {\n  demo\n}"), "Corefile:2:7: demo: expected a value");
    }

    #[test]
    fn go_duration_strings() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(15), "15ns"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(3_723_004), "1h2m3.004s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
            assert_eq!(parse_duration(want), Some(d), "{want} parses back");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "5x", "-5s", "5s5", "1..5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    fn directive(text: &str) -> Directive {
        let corefile = crate::corefile::parse_str("Corefile", text, &|_| None).unwrap();
        corefile.blocks[0].directives[0].clone()
    }

    #[test]
    fn zones_are_names_or_cidrs_lowercased_without_repeats() {
        let dir = directive(". {\n    x Example.ORG 10.0.0.0/15 example.org fd00::/16\n}\n");
        let zones: Vec<String> = Args::new("x", &dir).zones().unwrap().iter().map(|z| z.to_string()).collect();
        assert_eq!(zones, ["example.org.", "0.10.in-addr.arpa.", "1.10.in-addr.arpa.", "0.0.d.f.ip6.arpa."]);
        let dir = directive(". {\n    x a..b\n}\n");
        let err = Args::new("x", &dir).zones().unwrap_err();
        assert_eq!(err.to_string(), "Corefile:2:7: x: invalid zone 'a..b': empty label in 'a..b'");
        let dir = directive(". {\n    x 10.0.0.0/33\n}\n");
        let err = Args::new("x", &dir).zones().unwrap_err();
        assert_eq!(err.to_string(), "Corefile:2:7: x: invalid CIDR '10.0.0.0/33'");
    }
}
