//! `bind` as written, with the real binary in a network namespace of the test's own (`ip netns`),
//! where the addresses and interfaces it names exist and port 53 is free: interface names
//! expanded to their addresses, `except`, IPv6, two blocks on one port told apart by address,
//! and the wildcard of a block without `bind`; and, under a seccomp filter denying IPv6
//! sockets, the wildcard's fallback to IPv4. The in-process harness moves every listener to
//! 127.0.0.1 and an ephemeral port; here nothing is moved. Needs root and `ip` (iproute2): the
//! tests fail, not skip, without them.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

/// A network namespace with `lo` up and an interface `dummy0` holding `addrs`; deleted on drop.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2; .ci/setup installs it)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    fn new(addrs: &[&str]) -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("clusterdns-bind-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        // A veth pair, both ends here (the dummy link type needs a kernel module containers
        // may not have); dummy0 holds the addresses, its peer gives it a carrier.
        ip(&["-n", &ns.name, "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy0p"]);
        for a in addrs {
            let mut args = vec!["-n", &ns.name, "addr", "add", a, "dev", "dummy0"];
            if a.contains(':') {
                args.push("nodad"); // usable at once, not after duplicate address detection
            }
            ip(&args);
        }
        ip(&["-n", &ns.name, "link", "set", "dummy0p", "up"]);
        ip(&["-n", &ns.name, "link", "set", "dummy0", "up"]);
        ns
    }

    /// The server, started in the namespace with `corefile`; waits for its listeners' lines.
    fn start(&self, dir: &std::path::Path, corefile: &str, listening: &[&str]) -> Process {
        std::fs::write(dir.join("Corefile"), corefile).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_clusterdns")]);
        let p = Process::spawn_command(cmd, dir, &["-conf", "Corefile"], |_| {});
        for l in listening {
            p.wait_for_line(TIMEOUT, |line| line == *l);
        }
        p
    }

    /// dig's short answer for `name` A from `server` port 53 inside the namespace (empty when
    /// nothing answered within a second).
    fn dig(&self, server: &str, name: &str, tcp: bool) -> String {
        let mut args = vec!["netns", "exec", &self.name, "dig", "+short", "+time=1", "+tries=1", "-p", "53"];
        if tcp {
            args.push("+tcp");
        }
        let at = format!("@{server}");
        args.extend([at.as_str(), name, "A"]);
        let out = Command::new("ip").args(&args).output().expect("dig");
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with(";;")).collect::<Vec<_>>().join(" ")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Two blocks on port 53 of the same zone: one bound to an interface less an address, one to
/// that address. Each address is answered by its block, over UDP and TCP; the excluded address
/// is answered only by the block naming it, the interface's IPv6 address by the interface's.
#[test]
fn interfaces_except_ipv6_and_two_blocks_on_one_port() {
    let ns = Netns::new(&["10.53.0.1/24", "10.53.0.2/24", "fd53::1/64"]);
    let dir = tempfile::tempdir().unwrap();
    let corefile = "\
. {
    bind dummy0 {
        except 10.53.0.2
    }
    hosts {
        10.0.0.1 which.test
    }
}
. {
    bind 10.53.0.2
    hosts {
        10.0.0.2 which.test
    }
}
";
    let p = ns.start(dir.path(), corefile, &[".:53 on 10.53.0.1", ".:53 on fd53::1", ".:53 on 10.53.0.2"]);
    for tcp in [false, true] {
        assert_eq!(ns.dig("10.53.0.1", "which.test", tcp), "10.0.0.1", "tcp {tcp}");
        assert_eq!(ns.dig("fd53::1", "which.test", tcp), "10.0.0.1", "tcp {tcp}");
        assert_eq!(ns.dig("10.53.0.2", "which.test", tcp), "10.0.0.2", "tcp {tcp}");
        // Loopback is no address of dummy0's, and nothing binds it.
        assert_eq!(ns.dig("127.0.0.1", "which.test", tcp), "", "tcp {tcp}");
    }
    // No link-local address is listened on (it needs a scope), and nothing else either.
    let listening: Vec<String> = p.lines().into_iter().filter(|l| l.starts_with(".:53 on ")).collect();
    assert_eq!(listening.len(), 3, "{listening:?}");
}

/// A block without `bind` listens on the IPv6 wildcard, which takes IPv4 too: every address of
/// the namespace, both families, and addresses added while it runs, each answered from itself.
#[test]
fn without_bind_every_address_of_both_families() {
    let ns = Netns::new(&["10.53.0.1/24", "fd53::1/64"]);
    let dir = tempfile::tempdir().unwrap();
    let _p = ns.start(dir.path(), ". {\n    hosts {\n        10.0.0.3 which.test\n    }\n}\n", &[".:53"]);
    // Addresses added while it runs, secondary on their subnets: a UDP reply must leave from the
    // address asked (the kernel's choice would be the primary one, which dig discards).
    ip(&["-n", &ns.name, "addr", "add", "10.53.0.9/24", "dev", "dummy0"]);
    ip(&["-n", &ns.name, "addr", "add", "fd53::9/64", "dev", "dummy0", "nodad"]);
    for server in ["10.53.0.1", "fd53::1", "127.0.0.1", "::1", "10.53.0.9", "fd53::9"] {
        for tcp in [false, true] {
            assert_eq!(ns.dig(server, "which.test", tcp), "10.0.0.3", "{server} tcp {tcp}");
        }
    }
}

/// Makes `socket(AF_INET6, ...)` fail with EAFNOSUPPORT in the child, as on a host booted with
/// `ipv6.disable=1` (which a network namespace cannot imitate: there `[::]` still binds), by a
/// seccomp filter installed between fork and exec.
fn without_ipv6(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // seccomp_data: nr (u32) at 0, arch at 4, instruction pointer at 8, args (u64) from 16.
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jeq =
        |k: u32, jf: u8| libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt: 0, jf, k };
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        jeq(libc::SYS_socket as u32, 3),
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 16),
        jeq(libc::AF_INET6 as u32, 1),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::EAFNOSUPPORT as u32),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    // SAFETY: prctl only, between fork and exec; the filter outlives the call (it is copied by
    // the kernel at PR_SET_SECCOMP).
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// On a host without IPv6, a block without `bind` falls back to the IPv4 wildcard for DNS over
/// UDP and TCP, and so does an HTTP address without a host (`health :PORT`).
#[test]
fn without_ipv6_the_wildcard_falls_back_to_ipv4() {
    let (dns, health) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let corefile = format!(".:{dns} {{\n    health :{health}\n    hosts {{\n        10.0.0.4 which.test\n    }}\n}}\n");
    std::fs::write(dir.path().join("Corefile"), corefile).unwrap();
    let p = Process::spawn_with(dir.path(), &["-conf", "Corefile"], without_ipv6);
    p.wait_for_line(TIMEOUT, |l| l == format!(".:{dns}"));
    let at = std::net::SocketAddr::from(([127, 0, 0, 1], dns));
    for tcp in [false, true] {
        let m = if tcp {
            query_tcp(at, "which.test.", hickory_proto::rr::RecordType::A)
        } else {
            query_udp(at, "which.test.", hickory_proto::rr::RecordType::A)
        };
        assert_eq!(rrs(&m.answers), ["which.test. 3600 IN A 10.0.0.4"], "tcp {tcp}");
    }
    assert_eq!(http_get(std::net::SocketAddr::from(([127, 0, 0, 1], health)), "/health"), (200, "OK".to_string()));
    // It really had no IPv6: nothing listens on ::1.
    assert!(std::net::TcpStream::connect(std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, dns))).is_err());
}
