//! `log` syntax; the directive may be repeated, each line adding rules in file order:
//!
//! ~~~ txt
//! log [NAMES...] [FORMAT] {
//!     class success|denial|error|all...
//!     minDuration [DURATION]
//! }
//! ~~~
//!
//! As in CoreDNS: with no argument the rule covers `.` in the common format; with one, that
//! argument is a name; with several, the last is the format when it contains `{` (`{common}`,
//! `{combined}` or a format of placeholders) and every other argument is a name. `class` lines
//! add up; without any, all classes are logged. `minDuration` alone means 100ms.

use std::sync::Arc;
use std::time::Duration;

use super::format::{self, Format};
use super::{Classes, Log, NAME, Rule};
use crate::corefile::{Args, Directive, Error, Token};
use crate::dns::Name;
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

/// CoreDNS's default for a bare `minDuration`.
const DEFAULT_MIN_DURATION: Duration = Duration::from_millis(100);

#[derive(Debug, PartialEq)]
pub struct Config {
    pub(super) rules: Vec<Rule>,
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let mut rules = Vec::new();
    for dir in dirs {
        rules.extend(line(dir)?);
    }
    Ok(Box::new(Config { rules }))
}

/// The rules of one `log` line.
fn line(dir: &Directive) -> Result<Vec<Rule>, Error> {
    let mut args = Args::new(NAME, dir);
    let all = args.rest();
    let (names, format): (&[Token], Format) = match all {
        [] => (&[], Format::parse(format::COMMON)),
        // CoreDNS reads a lone argument as a name, so `log {combined}` would log nothing there.
        [only] if only.text.contains('{') => {
            return Err(args.error(
                only,
                format!("'{}' is a format but is read as a name here: write `log . {}`", only.text, only.text),
            ));
        }
        [_] => (all, Format::parse(format::COMMON)),
        [names @ .., last] if last.text.contains('{') => (names, Format::parse(format_text(&last.text))),
        names => (names, Format::parse(format::COMMON)),
    };
    let mut scopes = Vec::new();
    for t in names {
        let name = Name::parse(&t.text).map_err(|e| args.error(t, format!("invalid name '{}': {e}", t.text)))?;
        scopes.push(name.to_lowercase());
    }
    if scopes.is_empty() {
        scopes.push(Name::root());
    }

    let mut classes = Classes::default();
    let mut min_duration = None;
    for prop in args.block() {
        let mut p = args.property(prop);
        p.no_block()?;
        match prop.name.text.as_str() {
            "class" => {
                p.required("a class: success, denial, error or all")?;
                for t in &prop.args {
                    match t.text.as_str() {
                        "all" => classes.all = true,
                        "success" => classes.success = true,
                        "denial" => classes.denial = true,
                        "error" => classes.error = true,
                        other => {
                            return Err(
                                p.error(t, format!("unknown class '{other}': expected success, denial, error or all"))
                            );
                        }
                    }
                }
            }
            "minDuration" => {
                min_duration = Some(match p.peek() {
                    Some(_) => p.duration("a duration")?,
                    None => DEFAULT_MIN_DURATION,
                });
                p.finish()?;
            }
            _ => return Err(p.unknown_property()),
        }
    }
    if classes == Classes::default() {
        classes.all = true;
    }
    Ok(scopes.into_iter().map(|scope| Rule { scope, format: format.clone(), classes, min_duration }).collect())
}

/// The format `{common}` and `{combined}` stand for, else the text itself.
fn format_text(text: &str) -> &str {
    match text {
        "{common}" => format::COMMON,
        "{combined}" => format::COMBINED,
        other => other,
    }
}

impl PluginConfig for Config {
    fn build(&self, _ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        Ok(Some(Arc::new(Log::new(self.rules.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn rules(body: &str) -> Result<Vec<Rule>, Error> {
        let c = parse_str("Corefile", &format!(". {{\n{body}\n}}"), &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        Ok(cfg.as_any().downcast_ref::<Config>().unwrap().rules.clone())
    }

    fn rule(scope: &str, format: &str, classes: Classes, min: Option<u64>) -> Rule {
        Rule {
            scope: Name::parse(scope).unwrap(),
            format: Format::parse(format),
            classes,
            min_duration: min.map(Duration::from_millis),
        }
    }

    const ALL: Classes = Classes { all: true, success: false, denial: false, error: false };

    #[test]
    fn rules_as_coredns_reads_them() {
        let denial = Classes { denial: true, ..Classes::default() };
        let denial_error = Classes { denial: true, error: true, ..Classes::default() };
        let cases: Vec<(&str, Vec<Rule>)> = vec![
            ("log", vec![rule(".", format::COMMON, ALL, None)]),
            ("log Example.ORG", vec![rule("example.org.", format::COMMON, ALL, None)]),
            ("log example.org {common}", vec![rule("example.org.", format::COMMON, ALL, None)]),
            ("log example.org {combined}", vec![rule("example.org.", format::COMBINED, ALL, None)]),
            (
                "log example.org example.net",
                vec![rule("example.org.", format::COMMON, ALL, None), rule("example.net.", format::COMMON, ALL, None)],
            ),
            (
                "log example.org example.net \"{name} {when}\"",
                vec![
                    rule("example.org.", "{name} {when}", ALL, None),
                    rule("example.net.", "{name} {when}", ALL, None),
                ],
            ),
            (
                "log example.org\nlog example.net {combined}",
                vec![
                    rule("example.org.", format::COMMON, ALL, None),
                    rule("example.net.", format::COMBINED, ALL, None),
                ],
            ),
            ("log {\n class denial\n}", vec![rule(".", format::COMMON, denial, None)]),
            ("log {\n class denial\n class error\n}", vec![rule(".", format::COMMON, denial_error, None)]),
            ("log . {\n class error denial\n}", vec![rule(".", format::COMMON, denial_error, None)]),
            ("log {\n class all\n}", vec![rule(".", format::COMMON, ALL, None)]),
            ("log {\n minDuration\n}", vec![rule(".", format::COMMON, ALL, Some(100))]),
            (
                "log {\n class error\n minDuration 1s\n}",
                vec![rule(".", format::COMMON, Classes { error: true, ..Classes::default() }, Some(1000))],
            ),
        ];
        for (body, want) in cases {
            assert_eq!(rules(body).unwrap(), want, "{body}");
        }
    }

    #[test]
    fn errors_name_their_position() {
        let cases = [
            (
                "log {combined}",
                "Corefile:2:5: log: '{combined}' is a format but is read as a name here: write `log . {combined}`",
            ),
            ("log a..b {common}", "Corefile:2:5: log: invalid name 'a..b': empty label in 'a..b'"),
            ("log {\n  class\n}", "Corefile:3:8: log: class: expected a class: success, denial, error or all"),
            (
                "log {\n  class denial abracadabra\n}",
                "Corefile:3:16: log: unknown class 'abracadabra': expected success, denial, error or all",
            ),
            (
                "log {\n  minDuration 123abc\n}",
                "Corefile:3:15: log: expected a duration (a duration such as 30s), got '123abc'",
            ),
            ("log {\n  minDuration 1s 2s\n}", "Corefile:3:18: log: unexpected argument '2s'"),
            ("log {\n  unknown\n}", "Corefile:3:3: log: unknown property 'unknown'"),
        ];
        for (body, want) in cases {
            assert_eq!(rules(body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
