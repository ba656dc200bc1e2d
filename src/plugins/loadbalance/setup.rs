//! `loadbalance` syntax, once per server block:
//!
//! ~~~ txt
//! loadbalance [round_robin] {
//!     prefer CIDR...
//!     limit_answers NUM
//! }
//! loadbalance weighted WEIGHTFILE {
//!     reload DURATION
//!     limit_answers NUM
//! }
//! ~~~
//!
//! `prefer` may be repeated (its networks add up, in order). `reload` defaults to 30s; `0s`
//! reads the file once. A relative WEIGHTFILE is relative to the working directory, CoreDNS's
//! rule when no `root` plugin is configured (clusterdns has none). `limit_answers` (1 or more,
//! at most once) keeps the first NUM records of the answer section once it is balanced.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::weighted::Weights;
use super::{Cidr, LoadBalance, NAME, Policy};
use crate::corefile::{Args, Directive, Error, Pos, once};
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

const DEFAULT_RELOAD: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub policy: PolicyConfig,
    /// `prefer` networks, in order (the lines add up).
    pub prefer: Vec<Cidr>,
    /// `limit_answers`: how many answer records a balanced reply keeps; `None` keeps them all.
    pub limit_answers: Option<NonZeroUsize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyConfig {
    RoundRobin,
    Weighted {
        file: PathBuf,
        reload: Duration,
        /// The file argument, to blame when the file is unreadable or broken.
        pos: Pos,
    },
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let dir = once(NAME, dirs)?;
    let mut args = Args::new(NAME, dir);
    let weighted = match args.next_arg() {
        None => false,
        Some(t) if t.text == "round_robin" => false,
        Some(t) if t.text == "weighted" => true,
        Some(t) => {
            return Err(args.error(t, format!("unknown policy '{}': expected round_robin or weighted", t.text)));
        }
    };
    let mut policy = match weighted {
        false => PolicyConfig::RoundRobin,
        true => {
            let file = args.required("a weight file")?;
            PolicyConfig::Weighted {
                file: file.pos.resolve_path(&file.text),
                reload: DEFAULT_RELOAD,
                pos: file.pos.clone(),
            }
        }
    };
    args.finish()?;

    let mut limit_answers = None;
    let mut prefer = Vec::new();
    for line in args.block() {
        let mut p = args.property(line);
        p.no_block()?;
        match (line.name.text.as_str(), &mut policy) {
            ("prefer", _) => {
                p.required("a network such as 10.0.0.0/8")?;
                for t in &line.args {
                    let cidr = Cidr::parse(&t.text)
                        .ok_or_else(|| p.error(t, format!("invalid network '{}': expected ADDRESS/PREFIX", t.text)))?;
                    prefer.push(cidr);
                }
            }
            ("reload", PolicyConfig::Weighted { reload, .. }) => {
                *reload = p.duration("a reload interval")?;
                p.finish()?;
            }
            ("reload", PolicyConfig::RoundRobin) => {
                return Err(p.error(&line.name, "reload applies to the weighted policy only"));
            }
            ("limit_answers", _) => {
                if limit_answers.is_some() {
                    return Err(p.error(&line.name, "limit_answers is given twice"));
                }
                let t = p.required("a number of answer records")?;
                let n = t.text.parse::<NonZeroUsize>().map_err(|_| {
                    p.error(
                        t,
                        format!("limit_answers: expected a number of answer records, 1 or more, got '{}'", t.text),
                    )
                })?;
                p.finish()?;
                limit_answers = Some(n);
            }
            _ => return Err(p.unknown_property()),
        }
    }
    Ok(Box::new(Config { policy, prefer, limit_answers }))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let policy = match &self.policy {
            PolicyConfig::RoundRobin => Policy::RoundRobin,
            PolicyConfig::Weighted { file, reload, pos } => {
                let weights = Arc::new(Weights::new(file.clone()));
                match std::fs::read(file) {
                    Ok(bytes) => {
                        weights.update(bytes).map_err(|e| Error::setup(NAME, pos, e))?;
                    }
                    Err(e) if !reload.is_zero() => weights.warn_unreadable(&e, *reload),
                    Err(e) => {
                        return Err(Error::setup(
                            NAME,
                            pos,
                            format!("cannot read weight file {}: {e}", file.display()),
                        ));
                    }
                }
                if !reload.is_zero() {
                    ctx.spawn(weights.clone().watch(*reload));
                }
                Policy::Weighted(weights)
            }
        };
        let prefer = self.prefer.clone().into();
        Ok(Some(Arc::new(LoadBalance { policy, prefer, limit_answers: self.limit_answers })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn lb(body: &str) -> Result<Config, Error> {
        let c = parse_str("Corefile", &format!(". {{\n{body}\n}}"), &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        let cfg = cfg.as_any().downcast_ref::<Config>().unwrap();
        Ok(Config { policy: cfg.policy.clone(), prefer: cfg.prefer.clone(), limit_answers: cfg.limit_answers })
    }

    fn round_robin(prefer: Vec<Cidr>) -> Config {
        Config { policy: PolicyConfig::RoundRobin, prefer, limit_answers: None }
    }

    #[test]
    fn policies_and_options() {
        assert_eq!(lb("loadbalance").unwrap(), round_robin(vec![]));
        assert_eq!(lb("loadbalance round_robin").unwrap(), round_robin(vec![]));
        let c = lb("loadbalance {\n prefer 10.0.0.0/8 fd00::/8\n prefer 192.168.0.0/16\n}").unwrap();
        let want: Vec<Cidr> =
            ["10.0.0.0/8", "fd00::/8", "192.168.0.0/16"].iter().map(|c| Cidr::parse(c).unwrap()).collect();
        assert_eq!(c, round_robin(want));
        let PolicyConfig::Weighted { file, reload, pos } = lb("loadbalance weighted db.weights").unwrap().policy else {
            panic!("weighted")
        };
        assert_eq!(
            (file, reload, pos.to_string()),
            (PathBuf::from("db.weights"), DEFAULT_RELOAD, "Corefile:2:22".into())
        );
        // As in current CoreDNS, prefer reorders after either policy.
        let c = lb("loadbalance weighted w {\n prefer 10.0.0.0/8\n}").unwrap();
        assert_eq!(c.prefer, vec![Cidr::parse("10.0.0.0/8").unwrap()]);
        let PolicyConfig::Weighted { reload, .. } = lb("loadbalance weighted w {\n reload 0s\n}").unwrap().policy
        else {
            panic!("weighted")
        };
        assert_eq!(reload, Duration::ZERO);
    }

    /// CoreDNS's README gives `limit_answers` to both policies, beside their own options.
    #[test]
    fn limit_answers_goes_with_either_policy() {
        let five = NonZeroUsize::new(5);
        let c = lb("loadbalance round_robin {\n limit_answers 5\n prefer 10.0.0.0/8\n}").unwrap();
        assert_eq!(c.limit_answers, five);
        assert_eq!(c.policy, PolicyConfig::RoundRobin);
        assert_eq!(c.prefer, vec![Cidr::parse("10.0.0.0/8").unwrap()]);
        assert_eq!(lb("loadbalance {\n limit_answers 1\n}").unwrap().limit_answers, NonZeroUsize::new(1));
        let c = lb("loadbalance weighted w {\n reload 10s\n limit_answers 5\n}").unwrap();
        assert_eq!(c.limit_answers, five);
        assert!(matches!(c.policy, PolicyConfig::Weighted { reload, .. } if reload == Duration::from_secs(10)));
        assert_eq!(lb("loadbalance weighted w").unwrap().limit_answers, None);
    }

    #[test]
    fn errors_name_their_position() {
        let cases = [
            (
                "loadbalance\nloadbalance",
                "Corefile:3:1: loadbalance: this plugin can only be used once per Server Block",
            ),
            (
                "loadbalance random",
                "Corefile:2:13: loadbalance: unknown policy 'random': expected round_robin or weighted",
            ),
            ("loadbalance round_robin x", "Corefile:2:25: loadbalance: unexpected argument 'x'"),
            ("loadbalance weighted", "Corefile:2:21: loadbalance: expected a weight file"),
            ("loadbalance weighted a b", "Corefile:2:24: loadbalance: unexpected argument 'b'"),
            ("loadbalance {\n prefer\n}", "Corefile:3:8: loadbalance: prefer: expected a network such as 10.0.0.0/8"),
            (
                "loadbalance {\n prefer 10.0.0.0/8 10.0.0.1\n}",
                "Corefile:3:20: loadbalance: invalid network '10.0.0.1': expected ADDRESS/PREFIX",
            ),
            ("loadbalance {\n reload 10s\n}", "Corefile:3:2: loadbalance: reload applies to the weighted policy only"),
            (
                "loadbalance {\n limit_answers\n}",
                "Corefile:3:15: loadbalance: limit_answers: expected a number of answer records",
            ),
            (
                "loadbalance {\n limit_answers 0\n}",
                "Corefile:3:16: loadbalance: limit_answers: expected a number of answer records, 1 or more, got '0'",
            ),
            (
                "loadbalance weighted w {\n limit_answers -1\n}",
                "Corefile:3:16: loadbalance: limit_answers: expected a number of answer records, 1 or more, got '-1'",
            ),
            (
                "loadbalance {\n limit_answers five\n}",
                "Corefile:3:16: loadbalance: limit_answers: expected a number of answer records, 1 or more, got 'five'",
            ),
            ("loadbalance {\n limit_answers 5 6\n}", "Corefile:3:18: loadbalance: unexpected argument '6'"),
            (
                "loadbalance {\n limit_answers 5\n limit_answers 6\n}",
                "Corefile:4:2: loadbalance: limit_answers is given twice",
            ),
            ("loadbalance {\n limit_answers 5 {\n }\n}", "Corefile:3:18: loadbalance: limit_answers: takes no block"),
            ("loadbalance weighted w {\n reload\n}", "Corefile:3:8: loadbalance: reload: expected a reload interval"),
            ("loadbalance weighted w {\n reload 1s 2s\n}", "Corefile:3:12: loadbalance: unexpected argument '2s'"),
            ("loadbalance weighted w {\n bogus\n}", "Corefile:3:2: loadbalance: unknown property 'bogus'"),
        ];
        for (body, want) in cases {
            assert_eq!(lb(body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
