//! ```text
//! reload [INTERVAL] [JITTER]
//! ```
//! CoreDNS's rules: INTERVAL defaults to 30s and may not be below 2s; JITTER defaults to 15s, is
//! 0 (no jitter) or at least 1s, and is cut to half of INTERVAL when larger.

use std::sync::Arc;
use std::time::Duration;

use super::NAME;
use crate::corefile::{Args, Directive, Error, format_duration, once};
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, ReloadSettings, SetupCtx};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_JITTER: Duration = Duration::from_secs(15);
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);
pub const MIN_JITTER: Duration = Duration::from_secs(1);

#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub settings: ReloadSettings,
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let mut interval = DEFAULT_INTERVAL;
    if let Some(t) = args.peek() {
        interval = args.duration("an interval")?;
        if interval < MIN_INTERVAL {
            let min = format_duration(MIN_INTERVAL);
            return Err(args.error(t, format!("interval value must be greater or equal to {min}")));
        }
    }
    let mut jitter = DEFAULT_JITTER;
    if let Some(t) = args.peek() {
        jitter = args.duration("a jitter")?;
        if !jitter.is_zero() && jitter < MIN_JITTER {
            let min = format_duration(MIN_JITTER);
            return Err(args.error(t, format!("jitter value must be 0 or greater or equal to {min}")));
        }
    }
    args.finish()?;
    args.no_block()?;
    Ok(Box::new(Config { settings: ReloadSettings { interval, jitter: jitter.min(interval / 2) } }))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        ctx.set_reload(self.settings);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn reload(text: &str) -> Result<(Duration, Duration), Error> {
        let c = parse_str("Corefile", text, &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        let s = cfg.as_any().downcast_ref::<Config>().unwrap().settings;
        Ok((s.interval, s.jitter))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn defaults_minimums_and_jitter_clamping() {
        assert_eq!(reload(". {\n reload\n}").unwrap(), (secs(30), secs(15)));
        // Jitter is at most half the interval.
        assert_eq!(reload(". {\n reload 10s\n}").unwrap(), (secs(10), secs(5)));
        assert_eq!(reload(". {\n reload 2s 1s\n}").unwrap(), (secs(2), secs(1)));
        assert_eq!(reload(". {\n reload 1m 20s\n}").unwrap(), (secs(60), secs(20)));
        assert_eq!(reload(". {\n reload 3s 1s\n}").unwrap(), (secs(3), secs(1)));
        // Jitter 0 is no jitter, as CoreDNS takes it.
        assert_eq!(reload(". {\n reload 10s 0\n}").unwrap(), (secs(10), secs(0)));
        assert_eq!(reload(". {\n reload 10s 0s\n}").unwrap(), (secs(10), secs(0)));
    }

    #[test]
    fn errors_name_their_position() {
        for (text, want) in [
            (". {\n reload 1s\n}", "Corefile:2:9: reload: interval value must be greater or equal to 2s"),
            (". {\n reload 10s 500ms\n}", "Corefile:2:13: reload: jitter value must be 0 or greater or equal to 1s"),
            (". {\n reload 10\n}", "Corefile:2:9: reload: expected an interval (a duration such as 30s), got '10'"),
            (". {\n reload 10s 2s 3s\n}", "Corefile:2:16: reload: unexpected argument '3s'"),
            (". {\n reload {\n }\n}", "Corefile:2:9: reload: takes no block"),
            (". {\n reload\n reload 5s\n}", "Corefile:3:2: reload: this plugin can only be used once per Server Block"),
        ] {
            assert_eq!(reload(text).unwrap_err().to_string(), want, "{text}");
        }
    }
}
