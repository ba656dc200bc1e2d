//! *errors*: logs what the rest of the chain could not answer, as CoreDNS words it, and can
//! fold frequent errors into one line per period.
//!
//! The plugin wraps the rest of the chain and hands its result back unchanged: an `Err` still
//! becomes the reply's rcode in the server, in one place. What it adds is the log line
//!
//! ~~~ txt
//! [ERROR] plugin/errors: 2 example.org. A: plugin/forward: no healthy upstreams
//! ~~~
//!
//! (rcode number, lowercase query name, query type, the error), or, for errors matching a
//! `consolidate` rule, a count per period:
//!
//! ~~~ txt
//! [WARNING] plugin/errors: 3 errors like '.* i/o timeout$' occurred in last 5m0s
//! ~~~
//!
//! A rule's period starts with the first matching error; a background task (one per rule,
//! belonging to the configuration's generation) sleeps through it and prints the count. With
//! `show_first`, the error that starts a period is printed at once at the rule's level, and the
//! count only if more followed. When the plugin is dropped (reload, shutdown) pending counts are
//! printed, as CoreDNS does on shutdown.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::Notify;

use crate::corefile::format_duration;
use crate::dns::{Request, Response};
use crate::plugin::{Next, Plugin, ServeError};

mod setup;
pub use setup::parse;

pub const NAME: &str = "errors";

/// The level a consolidated line is printed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

/// Logs `args` at `level` as `plugin/errors`.
fn log(level: Level, args: fmt::Arguments<'_>) {
    match level {
        Level::Error => tracing::error!(target: "plugin/errors", "{args}"),
        Level::Warning => tracing::warn!(target: "plugin/errors", "{args}"),
        Level::Info => tracing::info!(target: "plugin/errors", "{args}"),
        Level::Debug => tracing::debug!(target: "plugin/errors", "{args}"),
    }
}

pub struct Errors {
    patterns: Box<[Arc<Consolidated>]>,
}

impl Errors {
    fn new(patterns: Vec<Arc<Consolidated>>) -> Errors {
        Errors { patterns: patterns.into() }
    }

    /// Logs `err`, or counts it under the first rule it matches.
    fn report(&self, req: &Request, err: &ServeError) {
        let text = err.to_string();
        let (rcode, name, qtype) = (err.rcode().0, req.qname().to_lowercase(), req.qtype());
        let line = format_args!("{rcode} {name} {qtype}: {text}");
        match self.patterns.iter().find(|p| p.spec.regex.is_match(&text)) {
            Some(p) => {
                if p.count.fetch_add(1, Ordering::AcqRel) == 0 {
                    p.period_started.notify_one();
                    if p.spec.show_first {
                        log(p.spec.level, line);
                    }
                }
            }
            None => log(Level::Error, line),
        }
    }
}

impl Plugin for Errors {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Only errors are looked at; answers pass as they are (a cache hit stays encoded).
    fn reads_answers(&self) -> bool {
        false
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        let result = next.run(req).await;
        if let Err(e) = &result {
            self.report(req, e);
        }
        result
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        for p in self.patterns.iter() {
            p.flush();
        }
    }
}

/// A `consolidate` rule with its count for the current period.
pub(crate) struct Consolidated {
    spec: setup::Consolidate,
    /// Errors matched since the period started; 0 when no period is running.
    count: AtomicU32,
    /// Woken when the count leaves 0, which starts a period.
    period_started: Notify,
}

impl Consolidated {
    fn new(spec: setup::Consolidate) -> Consolidated {
        Consolidated { spec, count: AtomicU32::new(0), period_started: Notify::new() }
    }

    /// Prints the count of the period ending now, if there is one to print.
    fn flush(&self) {
        let n = self.count.swap(0, Ordering::AcqRel);
        // With show_first, a lone error was printed when it happened.
        if n > 1 || (n == 1 && !self.spec.show_first) {
            log(
                self.spec.level,
                format_args!(
                    "{n} errors like '{}' occurred in last {}",
                    self.spec.regex.as_str(),
                    format_duration(self.spec.period)
                ),
            );
        }
    }

    /// Ends each period on time. An error arriving after a flush starts the next period: its
    /// `notify_one` leaves a permit if this task is not waiting yet, so none is missed.
    async fn run(self: Arc<Self>) {
        loop {
            self.period_started.notified().await;
            tokio::time::sleep(self.spec.period).await;
            self.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::setup::Consolidate;
    use super::*;
    use crate::dns::RecordType;
    use crate::logging::capture;
    use crate::plugin::testing::{self, paused_runtime};
    use crate::plugin::{Chain, ErrorKind};
    use std::time::Duration;

    fn rule(period: u64, re: &str, level: Level, show_first: bool) -> Arc<Consolidated> {
        let regex = regex::Regex::new(re).unwrap();
        Arc::new(Consolidated::new(Consolidate { period: Duration::from_secs(period), regex, level, show_first }))
    }

    /// `errors` in front of a plugin that fails every query the way `fails` says.
    fn chain(errors: Arc<Errors>, fails: &'static str) -> Chain {
        let kind = if fails.contains("refused") { ErrorKind::Refused } else { ErrorKind::Upstream };
        testing::chain(vec![errors, testing::fail("xyz", kind, fails)])
    }

    async fn ask(chain: &Chain, name: &str) -> Result<Response, ServeError> {
        let mut req = Request::synthetic(name, RecordType::A);
        Next::chain(chain).run(&mut req).await
    }

    #[test]
    fn errors_are_logged_as_coredns_does_and_passed_on() {
        let rt = paused_runtime();
        let errors = Arc::new(Errors::new(vec![]));
        let (results, log) = capture::lines(|| {
            rt.block_on(async {
                let upstream = ask(&chain(errors.clone(), "upstream timed out"), "WWW.Example.org.").await;
                let refused = ask(&chain(errors.clone(), "refused here"), "example.org.").await;
                (upstream.unwrap_err().rcode(), refused.unwrap_err().rcode())
            })
        });
        assert_eq!(results, (crate::dns::Rcode::SERVFAIL, crate::dns::Rcode::REFUSED));
        assert_eq!(
            log,
            [
                "[ERROR] plugin/errors: 2 www.example.org. A: plugin/xyz: upstream timed out",
                "[ERROR] plugin/errors: 5 example.org. A: plugin/xyz: refused here",
            ]
        );
    }

    #[test]
    fn answers_pass_untouched_and_unlogged() {
        let answers = testing::rcode("answers", crate::dns::Rcode::NXDOMAIN);
        let chain = testing::chain(vec![Arc::new(Errors::new(vec![])), answers]);
        let (resp, log) = capture::lines(|| paused_runtime().block_on(ask(&chain, "a.example.org.")));
        assert_eq!(resp.unwrap(), Response::with_rcode("answers", crate::dns::Rcode::NXDOMAIN));
        assert!(log.is_empty(), "{log:?}");
    }

    /// Three timeouts within the period become one line at the rule's level when it ends; the
    /// first matching rule wins; errors matching no rule are logged one by one.
    #[test]
    fn consolidated_errors_are_counted_once_per_period() {
        let rt = paused_runtime();
        let timeouts = rule(30, "timed out$", Level::Warning, false);
        let shadowed = rule(30, "timed", Level::Error, false);
        let errors = Arc::new(Errors::new(vec![timeouts.clone(), shadowed.clone()]));
        let (_, log) = capture::lines(|| {
            rt.block_on(async {
                tokio::spawn(timeouts.clone().run());
                tokio::spawn(shadowed.clone().run());
                for _ in 0..3 {
                    let _ = ask(&chain(errors.clone(), "upstream timed out"), "a.example.org.").await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let _ = ask(&chain(errors.clone(), "something else"), "b.example.org.").await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                // The next error starts a new period.
                let _ = ask(&chain(errors.clone(), "upstream timed out"), "c.example.org.").await;
                tokio::time::sleep(Duration::from_secs(31)).await;
            })
        });
        assert_eq!(
            log,
            [
                "[ERROR] plugin/errors: 2 b.example.org. A: plugin/xyz: something else",
                "[WARNING] plugin/errors: 3 errors like 'timed out$' occurred in last 30s",
                "[WARNING] plugin/errors: 1 errors like 'timed out$' occurred in last 30s",
            ]
        );
    }

    /// show_first: the error that opens a period is printed at once; the count follows only
    /// if more came.
    #[test]
    fn show_first_prints_the_first_error_and_counts_only_several() {
        let rt = paused_runtime();
        let r = rule(60, "timed out", Level::Warning, true);
        let errors = Arc::new(Errors::new(vec![r.clone()]));
        let (_, log) = capture::lines(|| {
            rt.block_on(async {
                tokio::spawn(r.clone().run());
                for name in ["a.example.org.", "b.example.org.", "c.example.org."] {
                    let _ = ask(&chain(errors.clone(), "read udp: timed out"), name).await;
                }
                tokio::time::sleep(Duration::from_secs(61)).await;
                let _ = ask(&chain(errors.clone(), "read udp: timed out"), "d.example.org.").await;
                tokio::time::sleep(Duration::from_secs(61)).await;
            })
        });
        assert_eq!(
            log,
            [
                "[WARNING] plugin/errors: 2 a.example.org. A: plugin/xyz: read udp: timed out",
                "[WARNING] plugin/errors: 3 errors like 'timed out' occurred in last 1m0s",
                "[WARNING] plugin/errors: 2 d.example.org. A: plugin/xyz: read udp: timed out",
            ]
        );
    }

    #[test]
    fn pending_counts_are_printed_when_the_plugin_goes() {
        let rt = paused_runtime();
        let r = rule(300, ".", Level::Info, false);
        let errors = Arc::new(Errors::new(vec![r.clone()]));
        let (_, log) = capture::lines(|| {
            rt.block_on(async {
                let _ = ask(&chain(errors.clone(), "boom"), "a.example.org.").await;
                let _ = ask(&chain(errors.clone(), "boom"), "a.example.org.").await;
            });
            drop(errors);
        });
        assert_eq!(log, ["[INFO] plugin/errors: 2 errors like '.' occurred in last 5m0s"]);
    }
}
