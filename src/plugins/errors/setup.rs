//! `errors` syntax, once per server block:
//!
//! ~~~ txt
//! errors [stdout] {
//!     stacktrace
//!     consolidate DURATION REGEXP [warning|error|info|debug] [show_first]
//! }
//! ~~~
//!
//! `stdout` is the only destination CoreDNS accepts, and the default. `consolidate` may be given
//! several times; an error is counted under the first rule whose REGEXP matches its text. The
//! level defaults to `error`.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::{Consolidated, Errors, Level, NAME};
use crate::corefile::{Args, Directive, Error, once};
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

/// CoreDNS refuses longer expressions (a guard against pathological patterns).
const MAX_REGEXP_LEN: usize = 10_000;

#[derive(Debug, PartialEq)]
pub struct Config {
    stacktrace: bool,
    consolidate: Vec<Consolidate>,
}

/// One `consolidate` line.
#[derive(Clone, Debug)]
pub struct Consolidate {
    pub period: Duration,
    pub regex: Regex,
    pub level: Level,
    pub show_first: bool,
}

impl PartialEq for Consolidate {
    fn eq(&self, other: &Self) -> bool {
        self.period == other.period
            && self.regex.as_str() == other.regex.as_str()
            && self.level == other.level
            && self.show_first == other.show_first
    }
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    if let Some(to) = args.next_arg()
        && to.text != "stdout"
    {
        return Err(args.error(to, format!("invalid log file '{}': errors are written to stdout only", to.text)));
    }
    args.finish()?;
    let mut cfg = Config { stacktrace: false, consolidate: Vec::new() };
    for line in args.block() {
        let mut prop = args.property(line);
        prop.no_block()?;
        match line.name.text.as_str() {
            "stacktrace" => {
                prop.finish()?;
                cfg.stacktrace = true;
            }
            "consolidate" => cfg.consolidate.push(consolidate(&mut prop)?),
            _ => return Err(prop.unknown_property()),
        }
    }
    Ok(Box::new(cfg))
}

/// `consolidate DURATION REGEXP [LEVEL] [show_first]`
fn consolidate(prop: &mut Args<'_>) -> Result<Consolidate, Error> {
    let period = prop.duration("a period")?;
    let re = prop.required("a regular expression")?;
    if re.text.len() > MAX_REGEXP_LEN {
        return Err(prop.error(re, format!("regular expression longer than {MAX_REGEXP_LEN} characters")));
    }
    let regex = Regex::new(&re.text).map_err(|e| prop.error(re, format!("invalid regular expression: {e}")))?;
    let mut level = Level::Error;
    if let Some(t) = prop.peek().filter(|t| t.text != "show_first") {
        level = match t.text.as_str() {
            "warning" => Level::Warning,
            "error" => Level::Error,
            "info" => Level::Info,
            "debug" => Level::Debug,
            other => {
                return Err(
                    prop.error(t, format!("unknown log level '{other}': expected warning, error, info or debug"))
                );
            }
        };
        prop.next_arg();
    }
    let show_first = prop.peek().is_some_and(|t| t.text == "show_first");
    if show_first {
        prop.next_arg();
    }
    prop.finish()?;
    Ok(Consolidate { period, regex, level, show_first })
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        if self.stacktrace {
            ctx.log_panic_stacktraces();
        }
        let patterns: Vec<Arc<Consolidated>> =
            self.consolidate.iter().map(|c| Arc::new(Consolidated::new(c.clone()))).collect();
        for p in &patterns {
            ctx.spawn(p.clone().run());
        }
        Ok(Some(Arc::new(Errors::new(patterns))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn errors(body: &str) -> Result<Config, Error> {
        let c = parse_str("Corefile", &format!(". {{\n{body}\n}}"), &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        let cfg = cfg.as_any().downcast_ref::<Config>().unwrap();
        Ok(Config { stacktrace: cfg.stacktrace, consolidate: cfg.consolidate.clone() })
    }

    #[test]
    fn defaults_and_options() {
        assert_eq!(errors("errors").unwrap(), Config { stacktrace: false, consolidate: vec![] });
        assert_eq!(errors("errors stdout").unwrap(), Config { stacktrace: false, consolidate: vec![] });
        let c = errors(
            "errors {\n stacktrace\n consolidate 5m \".* i/o timeout$\" warning\n consolidate 30s \"^Failed to .+\"\n \
             consolidate 1m x show_first\n consolidate 1s y debug show_first\n}",
        )
        .unwrap();
        assert!(c.stacktrace);
        let got: Vec<(Duration, &str, Level, bool)> =
            c.consolidate.iter().map(|c| (c.period, c.regex.as_str(), c.level, c.show_first)).collect();
        assert_eq!(
            got,
            [
                (Duration::from_secs(300), ".* i/o timeout$", Level::Warning, false),
                (Duration::from_secs(30), "^Failed to .+", Level::Error, false),
                (Duration::from_secs(60), "x", Level::Error, true),
                (Duration::from_secs(1), "y", Level::Debug, true),
            ]
        );
    }

    #[test]
    fn errors_name_their_position() {
        let cases = [
            ("errors\nerrors", "Corefile:3:1: errors: this plugin can only be used once per Server Block"),
            ("errors stderr", "Corefile:2:8: errors: invalid log file 'stderr': errors are written to stdout only"),
            ("errors stdout more", "Corefile:2:15: errors: unexpected argument 'more'"),
            ("errors {\n  bogus\n}", "Corefile:3:3: errors: unknown property 'bogus'"),
            ("errors {\n  stacktrace on\n}", "Corefile:3:14: errors: unexpected argument 'on'"),
            ("errors {\n  consolidate\n}", "Corefile:3:14: errors: consolidate: expected a period"),
            ("errors {\n  consolidate 5m\n}", "Corefile:3:17: errors: consolidate: expected a regular expression"),
            (
                "errors {\n  consolidate 5x re\n}",
                "Corefile:3:15: errors: expected a period (a duration such as 30s), got '5x'",
            ),
            (
                "errors {\n  consolidate 5m \"(\"\n}",
                "Corefile:3:18: errors: invalid regular expression: regex parse error:\n    (\n    ^\nerror: unclosed group",
            ),
            (
                "errors {\n  consolidate 5m re warn\n}",
                "Corefile:3:21: errors: unknown log level 'warn': expected warning, error, info or debug",
            ),
            ("errors {\n  consolidate 5m re info info\n}", "Corefile:3:26: errors: unexpected argument 'info'"),
            ("errors {\n  consolidate 5m re show_first error\n}", "Corefile:3:32: errors: unexpected argument 'error'"),
        ];
        for (body, want) in cases {
            assert_eq!(errors(body).unwrap_err().to_string(), want, "{body}");
        }
        let long = format!("errors {{\n  consolidate 5m {}\n}}", "a".repeat(MAX_REGEXP_LEN + 1));
        assert_eq!(
            errors(&long).unwrap_err().to_string(),
            "Corefile:3:18: errors: regular expression longer than 10000 characters"
        );
    }
}
