//! *bind*: the addresses a server block listens on.
//!
//! Not a link of the chain: the server reads [`BindConfig`] when it works out listen addresses.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::corefile::{Args, Directive, Error, Pos};
use crate::plugin::DynPlugin;
use crate::plugin::setup::{DynConfig, ParseCtx, PluginConfig, SetupCtx};

pub const NAME: &str = "bind";

/// An address to bind, or a network interface standing for all of its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindTarget {
    Addr(IpAddr),
    Interface(String),
}

impl fmt::Display for BindTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindTarget::Addr(a) => write!(f, "{a}"),
            BindTarget::Interface(i) => f.write_str(i),
        }
    }
}

/// A target and where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub what: BindTarget,
    pub pos: Pos,
}

#[derive(Debug, PartialEq, Eq)]
pub struct BindConfig {
    targets: Vec<Target>,
    except: Vec<Target>,
    pos: Pos,
}

impl BindConfig {
    /// The targets as written (interfaces not yet expanded), with their positions.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter()
    }

    /// The addresses to listen on: the targets with interfaces expanded to their addresses
    /// (link-local IPv6 addresses, which need a scope to bind, are left out), minus `except`;
    /// each with the position of the target it came from. An address two targets stand for
    /// is an error at the second, as CoreDNS refuses to serve a zone twice on one address.
    pub fn resolve(&self) -> Result<Vec<(IpAddr, Pos)>, Error> {
        let ifaces = interface_addresses();
        let expand = |t: &Target| -> Result<Vec<IpAddr>, Error> {
            match &t.what {
                BindTarget::Addr(a) => Ok(vec![*a]),
                BindTarget::Interface(name) => {
                    let addrs: Vec<IpAddr> = ifaces.iter().filter(|(n, _)| n == name).map(|(_, a)| *a).collect();
                    if addrs.is_empty() {
                        return Err(Error::setup(NAME, &t.pos, format!("interface '{name}' has no usable address")));
                    }
                    Ok(addrs)
                }
            }
        };
        let mut excluded = Vec::new();
        for t in &self.except {
            excluded.extend(expand(t)?);
        }
        let mut out: Vec<(IpAddr, Pos, &Target)> = Vec::new();
        for t in &self.targets {
            for a in expand(t)? {
                if excluded.contains(&a) {
                    continue;
                }
                if let Some((_, _, first)) = out.iter().find(|(b, _, _)| *b == a) {
                    return Err(Error::setup(
                        NAME,
                        &t.pos,
                        format!("{a} is listed twice: '{}' at {} stands for it too", first.what, first.pos),
                    ));
                }
                out.push((a, t.pos.clone(), t));
            }
        }
        if out.is_empty() {
            return Err(Error::setup(NAME, &self.pos, "every address is excluded: nothing to listen on"));
        }
        Ok(out.into_iter().map(|(a, pos, _)| (a, pos)).collect())
    }
}

pub fn parse(dirs: &[Directive], _ctx: &ParseCtx<'_>) -> Result<Box<dyn DynConfig>, Error> {
    let mut cfg = BindConfig { targets: Vec::new(), except: Vec::new(), pos: dirs[0].name.pos.clone() };
    for dir in dirs {
        let mut args = Args::new(NAME, dir);
        args.required("an address or interface name")?;
        for t in dir.args.iter() {
            let what = target(&args, t)?;
            // CoreDNS refuses a zone served twice on one address, which a repeated address
            // amounts to; say so at the repeat, not at the block.
            if let Some(first) = cfg.targets.iter().find(|f| f.what == what) {
                return Err(args.error(t, format!("'{}' is given twice (first at {})", t.text, first.pos)));
            }
            cfg.targets.push(Target { what, pos: t.pos.clone() });
        }
        args.rest();
        for line in args.block() {
            let mut prop = args.property(line);
            match line.name.text.as_str() {
                "except" => {
                    prop.required("an address or interface name to exclude")?;
                    prop.rest();
                    for t in &line.args {
                        cfg.except.push(Target { what: target(&prop, t)?, pos: t.pos.clone() });
                    }
                    prop.no_block()?;
                }
                _ => return Err(prop.unknown_property()),
            }
        }
    }
    Ok(Box::new(cfg))
}

/// An IP address (IPv6 may be bracketed), else an interface name: what Linux accepts as one
/// (`dev_valid_name`: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace). Anything
/// else is an error here, so `-validate` catches `10.0.0.1/8` without looking at the host.
fn target(args: &Args<'_>, t: &crate::corefile::Token) -> Result<BindTarget, Error> {
    let text = t.text.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(&t.text);
    if let Ok(a) = text.parse::<IpAddr>() {
        return Ok(BindTarget::Addr(a));
    }
    let name = t.text.as_str();
    let valid = (1..16).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if !valid {
        return Err(args.error(t, format!("not a valid IP address or interface name: '{name}'")));
    }
    Ok(BindTarget::Interface(name.to_string()))
}

impl PluginConfig for BindConfig {
    fn build(&self, _ctx: &mut SetupCtx<'_>) -> Result<Option<Arc<dyn DynPlugin>>, Error> {
        Ok(None)
    }
}

/// (interface name, address) for every address of every interface.
fn interface_addresses() -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below; we only read it meanwhile.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
        // SAFETY: ifa_addr points at a sockaddr whose family tells its real type.
        let addr = unsafe {
            match (*ifa.ifa_addr).sa_family as i32 {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        match addr {
            Some(IpAddr::V6(v6)) if v6.segments()[0] & 0xffc0 == 0xfe80 => {}
            Some(a) => out.push((name, a)),
            None => {}
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corefile::parse_str;

    fn bind(text: &str) -> Result<BindConfig, Error> {
        let c = parse_str("Corefile", text, &|_| None).unwrap();
        let dirs = &c.blocks[0].directives;
        parse(dirs, &ParseCtx { zones: &[] }).map(|b| b.as_any().downcast_ref::<BindConfig>().unwrap().clone_for_test())
    }

    impl BindConfig {
        fn clone_for_test(&self) -> BindConfig {
            BindConfig { targets: self.targets.clone(), except: self.except.clone(), pos: self.pos.clone() }
        }
    }

    #[test]
    fn addresses_interfaces_and_exceptions() {
        let b = bind(". {\n bind 127.0.0.1 [::1]\n bind lo {\n  except ::1\n }\n}").unwrap();
        assert_eq!(b.targets().map(|t| t.what.to_string()).collect::<Vec<_>>(), ["127.0.0.1", "::1", "lo"]);
        // 127.0.0.1 is both written and on lo: named twice.
        let e = b.resolve().unwrap_err();
        assert_eq!(
            e.to_string(),
            "Corefile:3:7: bind: 127.0.0.1 is listed twice: '127.0.0.1' at Corefile:2:7 stands for it too"
        );
        let b = bind(". {\n bind lo {\n  except ::1\n }\n}").unwrap();
        let addrs: Vec<IpAddr> = b.resolve().unwrap().into_iter().map(|(a, _)| a).collect();
        assert!(addrs.contains(&"127.0.0.1".parse().unwrap()));
        assert!(!addrs.contains(&"::1".parse().unwrap()));
    }

    #[test]
    fn errors_name_their_position() {
        for (text, want) in [
            (". {\n bind\n}", "Corefile:2:6: bind: expected an address or interface name"),
            (". {\n bind 127.0.0.1 {\n  only 1.2.3.4\n }\n}", "Corefile:3:3: bind: unknown property 'only'"),
            // Neither an address nor a name Linux would give an interface.
            (". {\n bind 10.0.0.1/8\n}", "Corefile:2:7: bind: not a valid IP address or interface name: '10.0.0.1/8'"),
            (
                ". {\n bind eth0 averyveryverylongname\n}",
                "Corefile:2:12: bind: not a valid IP address or interface name: 'averyveryverylongname'",
            ),
            (
                ". {\n bind lo {\n  except fe80::1%eth0\n }\n}",
                "Corefile:3:10: bind: not a valid IP address or interface name: 'fe80::1%eth0'",
            ),
            // A repeat is named where it is, across lines too.
            (
                ". {\n bind 127.0.0.1 127.0.0.1\n}",
                "Corefile:2:17: bind: '127.0.0.1' is given twice (first at Corefile:2:7)",
            ),
            (". {\n bind lo\n bind eth0 lo\n}", "Corefile:3:12: bind: 'lo' is given twice (first at Corefile:2:7)"),
        ] {
            assert_eq!(bind(text).unwrap_err().to_string(), want, "{text}");
        }
        let e = bind(". {\n bind nosuchiface0\n}").unwrap().resolve().unwrap_err();
        assert_eq!(e.to_string(), "Corefile:2:7: bind: interface 'nosuchiface0' has no usable address");
    }
}
