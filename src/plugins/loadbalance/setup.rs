//! `loadbalance` syntax, once per server block:
//!
//! ~~~ txt
//! loadbalance [round_robin] {
//!     prefer CIDR...
//! }
//! loadbalance weighted WEIGHTFILE {
//!     reload DURATION
//! }
//! ~~~
//!
//! `prefer` may be repeated (its networks add up, in order). `reload` defaults to 30s; `0s`
//! reads the file once. A relative WEIGHTFILE is relative to the working directory, CoreDNS's
//! rule when no `root` plugin is configured (clusterdns has none).

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
pub enum Config {
    RoundRobin {
        prefer: Vec<Cidr>,
    },
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
    if !weighted {
        args.finish()?;
        let mut prefer = Vec::new();
        for line in args.block() {
            let mut p = args.property(line);
            p.no_block()?;
            match line.name.text.as_str() {
                "prefer" => {
                    p.required("a network such as 10.0.0.0/8")?;
                    for t in &line.args {
                        let cidr = Cidr::parse(&t.text).ok_or_else(|| {
                            p.error(t, format!("invalid network '{}': expected ADDRESS/PREFIX", t.text))
                        })?;
                        prefer.push(cidr);
                    }
                }
                "reload" => return Err(p.error(&line.name, "reload applies to the weighted policy only")),
                _ => return Err(p.unknown_property()),
            }
        }
        return Ok(Box::new(Config::RoundRobin { prefer }));
    }

    let file = args.required("a weight file")?;
    args.finish()?;
    let mut reload = DEFAULT_RELOAD;
    for line in args.block() {
        let mut p = args.property(line);
        p.no_block()?;
        match line.name.text.as_str() {
            "reload" => {
                reload = p.duration("a reload interval")?;
                p.finish()?;
            }
            "prefer" => return Err(p.error(&line.name, "prefer applies to the round_robin policy only")),
            _ => return Err(p.unknown_property()),
        }
    }
    Ok(Box::new(Config::Weighted { file: PathBuf::from(&file.text), reload, pos: file.pos.clone() }))
}

impl PluginConfig for Config {
    fn build(&self, ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        let policy = match self {
            Config::RoundRobin { prefer } => Policy::RoundRobin { prefer: prefer.clone().into() },
            Config::Weighted { file, reload, pos } => {
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
        Ok(Some(Arc::new(LoadBalance { policy })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn lb(body: &str) -> Result<Config, Error> {
        let c = parse_str("Corefile", &format!(". {{\n{body}\n}}"), &|_| None).unwrap();
        let cfg = parse(&c.blocks[0].directives, &ParseCtx { zones: &[] })?;
        Ok(match cfg.as_any().downcast_ref::<Config>().unwrap() {
            Config::RoundRobin { prefer } => Config::RoundRobin { prefer: prefer.clone() },
            Config::Weighted { file, reload, pos } => {
                Config::Weighted { file: file.clone(), reload: *reload, pos: pos.clone() }
            }
        })
    }

    #[test]
    fn policies_and_options() {
        assert_eq!(lb("loadbalance").unwrap(), Config::RoundRobin { prefer: vec![] });
        assert_eq!(lb("loadbalance round_robin").unwrap(), Config::RoundRobin { prefer: vec![] });
        let c = lb("loadbalance {\n prefer 10.0.0.0/8 fd00::/8\n prefer 192.168.0.0/16\n}").unwrap();
        let want: Vec<Cidr> =
            ["10.0.0.0/8", "fd00::/8", "192.168.0.0/16"].iter().map(|c| Cidr::parse(c).unwrap()).collect();
        assert_eq!(c, Config::RoundRobin { prefer: want });
        let Config::Weighted { file, reload, pos } = lb("loadbalance weighted db.weights").unwrap() else {
            panic!("weighted")
        };
        assert_eq!(
            (file, reload, pos.to_string()),
            (PathBuf::from("db.weights"), DEFAULT_RELOAD, "Corefile:2:22".into())
        );
        let Config::Weighted { reload, .. } = lb("loadbalance weighted w {\n reload 0s\n}").unwrap() else {
            panic!("weighted")
        };
        assert_eq!(reload, Duration::ZERO);
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
            ("loadbalance {\n limit_answers 5\n}", "Corefile:3:2: loadbalance: unknown property 'limit_answers'"),
            (
                "loadbalance weighted w {\n prefer 10.0.0.0/8\n}",
                "Corefile:3:2: loadbalance: prefer applies to the round_robin policy only",
            ),
            ("loadbalance weighted w {\n reload\n}", "Corefile:3:8: loadbalance: reload: expected a reload interval"),
            ("loadbalance weighted w {\n reload 1s 2s\n}", "Corefile:3:12: loadbalance: unexpected argument '2s'"),
            ("loadbalance weighted w {\n bogus\n}", "Corefile:3:2: loadbalance: unknown property 'bogus'"),
        ];
        for (body, want) in cases {
            assert_eq!(lb(body).unwrap_err().to_string(), want, "{body}");
        }
    }
}
