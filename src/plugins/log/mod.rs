//! *log*: one line on standard output per query, in CoreDNS's formats.
//!
//! The plugin wraps the rest of the chain. A query is logged by the first rule whose name it is
//! in (CoreDNS uses only that rule, even when several match), once the rest of the chain has
//! answered, and only if the rule wants the reply's class (see [`classify`]) or the reply took
//! longer than the rule's `minDuration`. The line describes the reply the server will send: the
//! chain's answer, or the empty reply carrying an error's rcode.
//!
//! This is on the hot path of every logged query, so the work is arranged ahead: formats are
//! parsed into parts when the Corefile is read, each line is rendered into a buffer kept per
//! thread, and written with one `write` to the locked standard output (so lines from different
//! threads never interleave). Measured with `bench_render` below on the project's machine:
//! 0.30 to 0.43 µs to render a common-format line in a release build (1.04 µs before names,
//! addresses and mnemonics were copied as bytes instead of going through `fmt`); the `write(2)`
//! of the line costs more than that.

use std::cell::RefCell;
use std::io::Write;
use std::time::Duration;

use crate::dns::{Name, Request, Response};
use crate::plugin::{Next, Plugin, ServeError};

mod classify;
mod format;
mod setup;
pub use setup::parse;

use classify::{Class, classify};
use format::{Format, Reply};

pub const NAME: &str = "log";

/// Which reply classes a rule logs (`class` lines, OR-ed); empty means all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Classes {
    all: bool,
    success: bool,
    denial: bool,
    error: bool,
}

impl Classes {
    fn contains(&self, c: Class) -> bool {
        match c {
            Class::Success => self.success,
            Class::Denial => self.denial,
            Class::Error => self.error,
        }
    }
}

/// One name of a `log` line with that line's format and filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Queries for this name and below are this rule's (lowercase).
    scope: Name,
    format: Format,
    classes: Classes,
    /// Replies slower than this are logged whatever their class (`minDuration`).
    min_duration: Option<Duration>,
}

impl Rule {
    fn wants(&self, req: &Request, reply: &Reply<'_>, elapsed: Duration) -> bool {
        self.classes.all
            || self.classes.contains(classify(req, reply))
            || self.min_duration.is_some_and(|min| elapsed > min)
    }
}

/// Where lines go.
enum Output {
    Stdout,
    /// Lines collected by unit tests.
    #[cfg(test)]
    Capture(std::sync::Arc<std::sync::Mutex<Vec<String>>>),
}

pub struct Log {
    rules: Box<[Rule]>,
    out: Output,
}

thread_local! {
    /// The line being rendered; kept per thread so logging allocates nothing once warm.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
}

impl Log {
    fn new(rules: Vec<Rule>) -> Log {
        Log { rules: rules.into(), out: Output::Stdout }
    }

    fn emit(&self, rule: &Rule, req: &Request, reply: &Reply<'_>, elapsed: Duration) {
        LINE.with_borrow_mut(|line| {
            line.clear();
            // `[INFO] ` as CoreDNS's log.Infof prints it; no plugin name, no timestamp.
            line.extend_from_slice(b"[INFO] ");
            rule.format.render(line, req, reply, elapsed);
            line.push(b'\n');
            match &self.out {
                // A closed or full stdout must not fail the query.
                Output::Stdout => drop(std::io::stdout().lock().write_all(line)),
                #[cfg(test)]
                Output::Capture(lines) => {
                    lines.lock().unwrap().push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned())
                }
            }
        });
    }
}

impl Plugin for Log {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        let Some(rule) = self.rules.iter().find(|r| req.qname().is_subdomain_of(&r.scope)) else {
            return next.run(req).await;
        };
        let result = next.run(req).await;
        let reply = match &result {
            Ok(resp) => Reply::Answer(resp),
            Err(e) => Reply::Failed(e.rcode()),
        };
        let elapsed = req.received().elapsed();
        if rule.wants(req, &reply, elapsed) {
            self.emit(rule, req, &reply, elapsed);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{RData, Rcode, Record, RecordType};
    use crate::plugin::{DynPlugin, ErrorKind, testing};
    use std::sync::{Arc, Mutex};

    /// Answers each name by its first label: `nx` NXDOMAIN with a SOA, `nodata` NODATA with a
    /// SOA, `fail` an error, anything else an address.
    fn fake() -> Arc<dyn DynPlugin> {
        testing::answer("fake", |req| {
            let soa = || {
                let n = Name::parse("example.org.").unwrap();
                let soa = crate::dns::Soa {
                    mname: n.clone(),
                    rname: n,
                    serial: 1,
                    refresh: 1,
                    retry: 1,
                    expire: 1,
                    minimum: 1,
                };
                Record::new(Name::parse("example.org.").unwrap(), 5, RData::Soa(Box::new(soa)))
            };
            let mut resp = Response::authoritative("fake");
            match req.qname().first_label() {
                Some(b"nx") => {
                    resp.rcode = Rcode::NXDOMAIN;
                    resp.authority.push(soa());
                }
                Some(b"nodata") => resp.authority.push(soa()),
                Some(b"fail") => return Err(ServeError::new("fake", ErrorKind::Upstream, "down")),
                _ => resp.answer.push(Record::new(req.qname().clone(), 5, RData::A("10.0.0.1".parse().unwrap()))),
            }
            Ok(resp)
        })
    }

    /// Runs a query per name through `log` (parsed from `directives`) and the fake; returns the
    /// logged lines with a trailing duration replaced by `D`. Names starting with `slow` are
    /// queries received 50 ms ago.
    fn logged(directives: &str, names: &[&str]) -> Vec<String> {
        let c = crate::corefile::parse_str("Corefile", &format!(". {{\n{directives}\n}}"), &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &crate::plugin::setup::ParseCtx { zones: &[] }).unwrap();
        let rules = cfg.as_any().downcast_ref::<setup::Config>().unwrap().rules.clone();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = Log { rules: rules.into(), out: Output::Capture(lines.clone()) };
        let chain = testing::chain(vec![Arc::new(log), fake()]);
        let rt = testing::runtime();
        for name in names {
            let mut req = Request::synthetic(name, RecordType::A);
            if name.starts_with("slow") {
                let received = req.received() - Duration::from_millis(50);
                req = Request::new(req.query().clone(), req.client(), req.local(), req.proto(), received);
            }
            let _ = rt.block_on(Next::chain(&chain).run(&mut req));
        }
        let lines = lines.lock().unwrap().clone();
        let duration = |d: &str| d.strip_suffix('s').is_some_and(|f| f.parse::<f64>().is_ok());
        lines
            .into_iter()
            .map(|l| match l.rsplit_once(' ') {
                Some((head, last)) if duration(last) => format!("{head} D"),
                _ => l,
            })
            .collect()
    }

    #[test]
    fn logs_every_query_in_the_common_format_by_default() {
        assert_eq!(
            logged("log", &["ok.example.org.", "nx.example.net.", "fail.example.org."]),
            [
                r#"[INFO] 127.0.0.1:53535 - 4660 "A IN ok.example.org. udp 32 false 512" NOERROR qr,aa,rd 62 D"#,
                r#"[INFO] 127.0.0.1:53535 - 4660 "A IN nx.example.net. udp 32 false 512" NXDOMAIN qr,aa,rd 101 D"#,
                r#"[INFO] 127.0.0.1:53535 - 4660 "A IN fail.example.org. udp 34 false 512" SERVFAIL qr,rd 34 D"#,
            ]
        );
    }

    #[test]
    fn names_pick_the_first_matching_rule_only() {
        let lines = logged(
            "log example.org {name}\nlog sub.example.org example.net \"other {name}\"",
            &["a.sub.example.org.", "a.example.net.", "a.example.com."],
        );
        // a.sub.example.org. matches both lines; the first wins. example.com. matches none.
        assert_eq!(lines, ["[INFO] a.sub.example.org.", "[INFO] other a.example.net."]);
    }

    #[test]
    fn classes_select_replies() {
        let names = ["ok.example.org.", "nx.example.org.", "nodata.example.org.", "fail.example.org."];
        let only = |block: &str| logged(&format!("log . {{name}} {{\n{block}\n}}"), &names);
        assert_eq!(only("class denial"), ["[INFO] nx.example.org.", "[INFO] nodata.example.org."]);
        assert_eq!(only("class success"), ["[INFO] ok.example.org."]);
        assert_eq!(only("class error"), ["[INFO] fail.example.org."]);
        assert_eq!(only("class denial\nclass error"), only("class denial error"));
        assert_eq!(only("class denial error").len(), 3);
        assert_eq!(only("class all success").len(), 4);
    }

    #[test]
    fn slow_replies_are_logged_whatever_their_class() {
        let names = ["ok.example.org.", "slow.example.org.", "fail.example.org."];
        let lines = logged("log . {name} {\n class error\n minDuration 10ms\n}", &names);
        assert_eq!(lines, ["[INFO] slow.example.org.", "[INFO] fail.example.org."]);
        // The default minimum is 100ms.
        let lines = logged("log . {name} {\n class error\n minDuration\n}", &names);
        assert_eq!(lines, ["[INFO] fail.example.org."]);
    }

    /// Not a test: `cargo test --release --lib bench_render -- --ignored --nocapture` prints the
    /// cost of rendering one common-format line.
    #[test]
    #[ignore]
    fn bench_render() {
        let req = Request::synthetic("web.apps.svc.cluster.local.", RecordType::A);
        let mut resp = Response::authoritative("kubernetes");
        resp.answer.push(Record::new(req.qname().clone(), 5, RData::A("10.96.0.12".parse().unwrap())));
        let format = Format::parse(format::COMMON);
        let mut line = Vec::with_capacity(256);
        let n = 1_000_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            line.clear();
            format.render(&mut line, &req, &Reply::Answer(&resp), Duration::from_nanos(153_000));
            std::hint::black_box(&line);
        }
        println!("render: {:?} per line", start.elapsed() / n);
    }
}
