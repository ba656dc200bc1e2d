//! Plugins of the tests' own, built outside the crate against the public contract only (as a
//! third party's plugin would be), and a plugin set that adds them to this build's plugins, so
//! integration tests can start the real server with them over real sockets.
//!
//! | directive                        | what it does                                                   |
//! |----------------------------------|----------------------------------------------------------------|
//! | `echo`                           | answers a TXT `cd=0/1 do=0/1` and returns the query's EDNS options, plus an extended error 18 "echoed" |
//! | `opaque TYPE HEX`                | answers one record of an unmodelled type with the given RDATA   |
//! | `relay HEX`                      | answers with the upstream message HEX, decoded whole and passed on as a forwarder does |
//! | `requestion NAME`                | asks the rest of the chain NAME instead, answers a CNAME to it followed by its answer |
//! | `counter KEY`                    | answers a TXT `KEY n` counting queries, the count kept across reloads while KEY stays |
//! | `slow_ready NAME DELAY [BOUND]`  | answers TXT NAME; a new instance holds the swap for DELAY (at most BOUND, default 5s) |
//! | `background`                     | answers TXT `answered` at once, then runs the rest of the chain in a task |
//! | `record`                         | answers TXT with every name asked of it so far (kept across reloads) |
//! | `resolve NAME`                   | answers with what the server answers for NAME (A), through the resolver |
//! | `probe`                          | once serving, sends a query for `probe.<zone>` to its own listener and keeps the reply's rcode; answers TXT with it |
//! | `stop_on_serving MESSAGE`        | once serving, stops the server with MESSAGE                     |
//! | `consumer` / `provider WORD`     | the consumer answers TXT WORD, from a handle the provider gives |
//! | `boom`                           | panics for names starting with `boom.`, hands the rest on       |
//! | `slow MILLIS`                    | answers TXT `slow` after MILLIS milliseconds (a timer, not a blocked thread) |
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use clusterdns::corefile::{Args, Directive, Error, Pos, once};
use clusterdns::dns::{
    ExtendedError, Message, Name, RData, Rcode, Record, RecordType, Request, Response, decode_message,
};
use clusterdns::plugin::handles::{Fatal, Resolver, Serving};
use clusterdns::plugin::registry::{PluginEntry, PluginSet};
use clusterdns::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};
use clusterdns::plugin::{DynPlugin, Next, OwnedNext, Plugin, ServeError};

/// This build's plugins with the tests' own, placed before `hosts` and `whoami` so they can
/// hand on to them.
pub static TEST_PLUGINS: LazyLock<PluginSet> =
    LazyLock::new(|| PluginSet { order: ORDER.as_slice(), known_elsewhere: clusterdns::plugins::ALL.known_elsewhere });

static ORDER: LazyLock<Vec<PluginEntry>> = LazyLock::new(|| {
    let ours = [
        PluginEntry { name: "requestion", parse: requestion },
        PluginEntry { name: "background", parse: background },
        PluginEntry { name: "record", parse: record },
        PluginEntry { name: "echo", parse: echo },
        PluginEntry { name: "opaque", parse: opaque },
        PluginEntry { name: "relay", parse: relay },
        PluginEntry { name: "counter", parse: counter },
        PluginEntry { name: "slow_ready", parse: slow_ready },
        PluginEntry { name: "resolve", parse: resolve },
        PluginEntry { name: "probe", parse: probe },
        PluginEntry { name: "stop_on_serving", parse: stop_on_serving },
        PluginEntry { name: "consumer", parse: consumer },
        PluginEntry { name: "provider", parse: provider },
        PluginEntry { name: "boom", parse: boom },
        PluginEntry { name: "slow", parse: slow },
    ];
    let mut order = Vec::new();
    for p in clusterdns::plugins::ALL.order {
        if p.name == "hosts" {
            order.extend(ours.iter().map(|e| PluginEntry { name: e.name, parse: e.parse }));
        }
        order.push(PluginEntry { name: p.name, parse: p.parse });
    }
    order
});

fn txt(req: &Request, plugin: &'static str, text: &str) -> Response {
    let mut resp = Response::authoritative(plugin);
    resp.answer.push(Record::new(req.qname().clone(), 0, RData::Txt(vec![text.as_bytes().into()])));
    resp
}

/// The directive's arguments as text, no block.
fn args(name: &'static str, dirs: &[Directive]) -> Result<(Vec<String>, Pos), Error> {
    let dir = once(name, dirs)?;
    let mut args = Args::new(name, dir);
    args.no_block()?;
    Ok((args.rest().iter().map(|t| t.text.clone()).collect(), dir.name.pos.clone()))
}

/// A config that is its arguments, and a plugin made from them.
macro_rules! simple_plugin {
    ($parse:ident, $config:ident, $name:literal, |$cfg:ident, $ctx:ident| $build:expr) => {
        #[derive(Debug, PartialEq)]
        struct $config {
            args: Vec<String>,
            pos: Pos,
        }

        fn $parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
            let (args, pos) = args($name, dirs)?;
            Ok(Box::new($config { args, pos }))
        }

        impl PluginConfig for $config {
            fn build(&self, $ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
                let $cfg = self;
                $build
            }
        }
    };
}

// echo: the CD and DO bits and the EDNS options the query carried come back.
simple_plugin!(echo, EchoConfig, "echo", |_c, _ctx| Ok(Some(Arc::new(Echo))));
struct Echo;
impl Plugin for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        let text = format!("cd={} do={}", req.checking_disabled() as u8, req.dnssec_ok() as u8);
        let mut resp = txt(req, "echo", &text);
        if let Some(edns) = req.edns() {
            resp.options = edns.options.clone();
        }
        resp.push_extended_error(&ExtendedError::new(ExtendedError::PROHIBITED, "echoed"));
        Ok(resp)
    }
}

// opaque TYPE HEX: a record of a type the codec does not model, RDATA as given.
simple_plugin!(opaque, OpaqueConfig, "opaque", |c, _ctx| {
    let rtype = RecordType(c.args[0].parse().expect("a type number"));
    let data: Vec<u8> =
        (0..c.args[1].len()).step_by(2).map(|i| u8::from_str_radix(&c.args[1][i..i + 2], 16).unwrap()).collect();
    Ok(Some(Arc::new(Opaque(RData::Opaque { rtype, data: data.into() }))))
});
struct Opaque(RData);
impl Plugin for Opaque {
    fn name(&self) -> &'static str {
        "opaque"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        let mut resp = Response::authoritative("opaque");
        resp.answer.push(Record::new(req.qname().clone(), 300, self.0.clone()));
        resp.push_extended_error(&ExtendedError::new(ExtendedError::OTHER, "opaque here"));
        Ok(resp)
    }
}

// relay HEX: an upstream's whole message, as a forwarder receives it, passed on.
simple_plugin!(relay, RelayConfig, "relay", |c, _ctx| {
    let message = decode_message(&hex(&c.args[0])).expect("relay: the test gives a well-formed message");
    Ok(Some(Arc::new(Relay(message))))
});
struct Relay(Message);
impl Plugin for Relay {
    fn name(&self) -> &'static str {
        "relay"
    }
    async fn serve<'a>(&'a self, _req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        Ok(self.0.clone().into_response("relay"))
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

// requestion NAME: what autopath and rewrite do, another question down the chain.
simple_plugin!(requestion, RequestionConfig, "requestion", |c, _ctx| {
    Ok(Some(Arc::new(Requestion(Name::parse(&c.args[0]).unwrap()))))
});
struct Requestion(Name);
impl Plugin for Requestion {
    fn name(&self) -> &'static str {
        "requestion"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        let asked = req.qname().clone();
        req.set_question(self.0.clone(), req.qtype());
        let mut resp = next.run(req).await?;
        resp.answer.insert(0, Record::new(asked, 0, RData::Cname(self.0.clone())));
        Ok(resp)
    }
}

// counter KEY: state kept across reloads while KEY is unchanged.
simple_plugin!(counter, CounterConfig, "counter", |c, ctx| {
    let key = c.args[0].clone();
    let count = ctx.keep(("counter", key.clone()), |_| Ok(AtomicU64::new(0)))?;
    Ok(Some(Arc::new(Counter { key, count })))
});
struct Counter {
    key: String,
    count: Arc<AtomicU64>,
}
impl Plugin for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(txt(req, "counter", &format!("{} {n}", self.key)))
    }
}

// slow_ready NAME DELAY [BOUND]: a new instance takes DELAY to warm up.
simple_plugin!(slow_ready, SlowReadyConfig, "slow_ready", |c, ctx| {
    let delay = clusterdns::corefile::parse_duration(&c.args[1]).expect("a delay");
    let bound = c.args.get(2).map_or(Duration::from_secs(5), |b| clusterdns::corefile::parse_duration(b).unwrap());
    ctx.warm_up("slow_ready", bound, tokio::time::sleep(delay));
    Ok(Some(Arc::new(SlowReady(c.args[0].clone()))))
});
struct SlowReady(String);
impl Plugin for SlowReady {
    fn name(&self) -> &'static str {
        "slow_ready"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        Ok(txt(req, "slow_ready", &self.0))
    }
}

// background: answers, then runs the rest of the chain after the answer is gone.
simple_plugin!(background, BackgroundConfig, "background", |_c, _ctx| Ok(Some(Arc::new(Background))));
struct Background;
impl Plugin for Background {
    fn name(&self) -> &'static str {
        "background"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        if req.qname().first_label() == Some(b"now") {
            return next.run(req).await;
        }
        let rest: OwnedNext = next.to_owned();
        let mut later = req.clone();
        tokio::spawn(async move {
            // Answered already: the client has its reply before this runs.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = rest.run(&mut later).await;
        });
        Ok(txt(req, "background", "answered"))
    }
}

// record: remembers every name asked of it; `now.*` lists them.
simple_plugin!(record, RecordConfig, "record", |_c, ctx| {
    let seen = ctx.keep("record", |_| Ok(Mutex::new(Vec::<String>::new())))?;
    Ok(Some(Arc::new(RecordNames(seen))))
});
struct RecordNames(Arc<Mutex<Vec<String>>>);
impl Plugin for RecordNames {
    fn name(&self) -> &'static str {
        "record"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        let mut seen = self.0.lock().unwrap();
        if req.qname().first_label() != Some(b"now") {
            seen.push(req.qname().to_string().to_lowercase());
        }
        Ok(txt(req, "record", &seen.join(" ")))
    }
}

// resolve NAME: the server's own answer for NAME, through whichever block serves it.
simple_plugin!(resolve, ResolveConfig, "resolve", |c, ctx| {
    Ok(Some(Arc::new(Resolve { target: Name::parse(&c.args[0]).unwrap(), resolver: ctx.resolver() })))
});
struct Resolve {
    target: Name,
    resolver: Resolver,
}
impl Plugin for Resolve {
    fn name(&self) -> &'static str {
        "resolve"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        let found = self.resolver.resolve(req, self.target.clone(), RecordType::A).await?;
        let mut resp = Response::with_rcode("resolve", found.rcode);
        resp.answer = found.answer;
        Ok(resp)
    }
}

// probe: once serving, a real query to its own listener, as the loop plugin's probe.
simple_plugin!(probe, ProbeConfig, "probe", |_c, ctx| {
    let result = Arc::new(Mutex::new(String::from("pending")));
    let zone = ctx.block().zones[0].to_string();
    let keep = result.clone();
    ctx.on_serving(move |serving: Serving| async move {
        let text = tokio::task::spawn_blocking(move || probe_once(&serving.dns, &zone)).await.unwrap();
        *keep.lock().unwrap() = text;
    });
    Ok(Some(Arc::new(Probe(result))))
});
fn probe_once(addrs: &[SocketAddr], zone: &str) -> String {
    let Some(addr) = addrs.first() else { return "no address".into() };
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let name = if zone == "." { "probe.".to_string() } else { format!("probe.{zone}") };
    let query = clusterdns::dns::build_query(7, &name, RecordType::HINFO, None);
    sock.send_to(&query, addr).unwrap();
    let mut buf = [0u8; 512];
    match sock.recv(&mut buf) {
        Ok(n) if n >= 4 => format!("{} from {addr}", Rcode((buf[3] & 0xf) as u16)),
        _ => format!("no reply from {addr}"),
    }
}
struct Probe(Arc<Mutex<String>>);
impl Plugin for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        if req.qname().first_label() == Some(b"probe") {
            return next.run(req).await;
        }
        let text = self.0.lock().unwrap().clone();
        Ok(txt(req, "probe", &text))
    }
}

// stop_on_serving MESSAGE: the loop plugin's way out.
simple_plugin!(stop_on_serving, StopConfig, "stop_on_serving", |c, ctx| {
    let fatal: Fatal = ctx.fatal();
    let message = c.args.join(" ");
    ctx.on_serving(move |_| async move { fatal.stop("stop_on_serving", message) });
    Ok(Some(Arc::new(Echo)))
});

// provider WORD / consumer: typed handles between plugins of a block.
trait Word: Send + Sync {
    fn word(&self) -> String;
}
struct Fixed(String);
impl Word for Fixed {
    fn word(&self) -> String {
        self.0.clone()
    }
}
simple_plugin!(provider, ProviderConfig, "provider", |c, ctx| {
    ctx.provide::<dyn Word>("provider", Arc::new(Fixed(c.args[0].clone())));
    Ok(None)
});
simple_plugin!(consumer, ConsumerConfig, "consumer", |c, ctx| {
    let word = ctx.require::<dyn Word>("consumer", "provider", &c.pos)?;
    Ok(Some(Arc::new(Consumer(word))))
});
struct Consumer(Arc<dyn Word>);
impl Plugin for Consumer {
    fn name(&self) -> &'static str {
        "consumer"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        Ok(txt(req, "consumer", &self.0.word()))
    }
}

// boom: a plugin that panics (for names under `boom.`), as a plugin bug would.
simple_plugin!(boom, BoomConfig, "boom", |_c, _ctx| Ok(Some(Arc::new(Boom))));
struct Boom;
impl Plugin for Boom {
    fn name(&self) -> &'static str {
        "boom"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, next: Next<'a>) -> Result<Response, ServeError> {
        if req.qname().to_string().starts_with("boom.") {
            panic!("boom: {}", req.qname());
        }
        next.run(req).await
    }
}

// slow MILLIS: answers after a delay, for queries in flight when something happens.
simple_plugin!(slow, SlowConfig, "slow", |c, _ctx| {
    Ok(Some(Arc::new(Slow(Duration::from_millis(c.args[0].parse().expect("milliseconds"))))))
});
struct Slow(Duration);
impl Plugin for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn serve<'a>(&'a self, req: &'a mut Request, _next: Next<'a>) -> Result<Response, ServeError> {
        tokio::time::sleep(self.0).await;
        Ok(txt(req, "slow", "slow"))
    }
}
