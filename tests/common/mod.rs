//! Shared test harness: a real server started from a Corefile string, real clients (std sockets,
//! hickory's client, `dig`, `kdig`), and the real binary as a child process. Everything binds
//! 127.0.0.1 and every wait is bounded. Servers and processes stop when their guard drops.
#![allow(dead_code)]

pub mod plugins;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clusterdns::server::{Options, Server};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// How long any single wait in a test may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A clusterdns server running in this process on its own runtime, started from a Corefile
/// written to a temporary directory (so imports, hosts files and reloads work as in production).
pub struct TestServer {
    pub server: Server,
    rt: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
    pub corefile: PathBuf,
}

impl TestServer {
    /// Starts `corefile` with every listener on 127.0.0.1 and an ephemeral port. Panics with the
    /// configuration error if it does not start.
    pub fn start(corefile: &str) -> TestServer {
        TestServer::try_start(corefile).unwrap_or_else(|e| panic!("server did not start:\n{e}"))
    }

    /// Like [`start`](Self::start), returning the configuration error instead.
    pub fn try_start(corefile: &str) -> Result<TestServer, String> {
        TestServer::try_start_in(tempfile::tempdir().expect("temp dir"), corefile)
    }

    /// Starts `corefile` from `dir` (which may already hold files it imports or reads).
    pub fn try_start_in(dir: tempfile::TempDir, corefile: &str) -> Result<TestServer, String> {
        TestServer::try_start_configured(dir, corefile, |_| {})
    }

    /// Starts `corefile` listening exactly where it says, as the binary does: `bind` addresses,
    /// interfaces, the wildcard and the ports as written (the other constructors move every
    /// listener to 127.0.0.1 and an ephemeral port). Write ports from [`free_port`].
    pub fn try_start_as_written(corefile: &str) -> Result<TestServer, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::try_start_configured(dir, corefile, |o| o.loopback_ephemeral = false)
    }

    /// Starts `corefile` from `dir` with the plugins of `plugins` (the tests' own, say:
    /// [`plugins::TEST_PLUGINS`]).
    pub fn try_start_with(
        dir: tempfile::TempDir,
        corefile: &str,
        plugins: &'static clusterdns::plugin::registry::PluginSet,
    ) -> Result<TestServer, String> {
        TestServer::try_start_configured(dir, corefile, |o| o.plugins = plugins)
    }

    /// Starts `corefile` from `dir` with the harness's options changed by `adjust`.
    pub fn try_start_configured(
        dir: tempfile::TempDir,
        corefile: &str,
        adjust: impl FnOnce(&mut Options),
    ) -> Result<TestServer, String> {
        let path = dir.path().join("Corefile");
        std::fs::write(&path, corefile).expect("write Corefile");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let mut opts = Options {
            conf: Some(path.clone()),
            dns_port: 53,
            quiet: true,
            udp_workers: Some(2),
            loopback_ephemeral: true,
            ..Options::default()
        };
        adjust(&mut opts);
        let server = rt.block_on(Server::start(opts)).map_err(|e| e.to_string())?;
        Ok(TestServer { server, rt: Some(rt), dir, corefile: path })
    }

    /// The temporary directory holding the Corefile.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `f` on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("running").block_on(f)
    }

    /// The DNS address of the only listener (panics if there are several).
    pub fn addr(&self) -> SocketAddr {
        let addrs = self.block_on(self.server.dns_addrs());
        assert_eq!(addrs.len(), 1, "several listeners: use addr_for(port)");
        addrs[0].1
    }

    /// The DNS address of the listener configured with `port` in the Corefile.
    pub fn addr_for(&self, port: u16) -> SocketAddr {
        let addrs = self.block_on(self.server.dns_addrs());
        addrs.iter().find(|(k, _)| k.port == port).unwrap_or_else(|| panic!("no listener for port {port}: {addrs:?}")).1
    }

    /// The socket address of the HTTP listener configured as `addr` (`:8080`, `localhost:9153`).
    pub fn http(&self, addr: &str) -> SocketAddr {
        let addrs = self.block_on(self.server.http_addrs());
        let want = clusterdns::http::HttpAddr::parse(addr).expect("an HTTP address");
        addrs.iter().find(|(a, _)| *a == want).unwrap_or_else(|| panic!("no HTTP listener {addr}: {addrs:?}")).1[0]
    }

    /// Replaces the Corefile on disk (for reload tests).
    pub fn write_corefile(&self, text: &str) {
        std::fs::write(&self.corefile, text).expect("write Corefile");
    }

    /// Reloads now, as SIGUSR1 does.
    pub fn reload(&self) -> Result<bool, String> {
        self.block_on(self.server.reload(false)).map_err(|e| e.to_string())
    }

    /// The metrics exposition, as `/metrics` would serve it.
    pub fn metrics(&self) -> String {
        self.server.metrics().render(clusterdns::metrics::Format::Text)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.block_on(self.server.shutdown());
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A query message for `name` and `qtype` with RD set and EDNS (1232 bytes).
pub fn query_message(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.id = fastrand_id();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.edns = Some(edns);
    m
}

fn fastrand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(1);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// Sends `msg` over UDP and returns the reply.
pub fn exchange_udp(addr: SocketAddr, msg: &Message) -> Message {
    let reply = raw_udp(addr, &msg.to_vec().expect("encode")).expect("a reply over UDP");
    let reply = Message::from_vec(&reply).expect("a decodable reply");
    assert_eq!(reply.id, msg.id, "reply id");
    reply
}

/// Sends `msg` over TCP and returns the reply.
pub fn exchange_tcp(addr: SocketAddr, msg: &Message) -> Message {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let bytes = msg.to_vec().expect("encode");
    s.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&bytes).unwrap();
    let reply = read_tcp_message(&mut s).expect("a reply over TCP");
    Message::from_vec(&reply).expect("a decodable reply")
}

/// A query for `name`/`qtype` over UDP.
pub fn query_udp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    exchange_udp(addr, &query_message(name, qtype))
}

/// A query for `name`/`qtype` over TCP.
pub fn query_tcp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    exchange_tcp(addr, &query_message(name, qtype))
}

/// Sends raw bytes over UDP; the reply, or `None` if none came within `wait`.
pub fn raw_udp_wait(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind(if addr.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" }).expect("bind client");
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(bytes, addr).expect("send");
    let mut buf = vec![0u8; 65535];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends raw bytes over UDP; the reply, or `None` after [`TIMEOUT`].
pub fn raw_udp(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    raw_udp_wait(addr, bytes, TIMEOUT)
}

/// Reads one length-prefixed message from a TCP stream.
pub fn read_tcp_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Records of a section in presentation format, as dig prints them with single spaces:
/// `example.org. 0 IN A 127.0.0.1`.
pub fn rrs(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records.iter().map(|r| format!("{} {} {} {} {}", r.name, r.ttl, r.dns_class, r.record_type(), r.data)).collect()
}

/// Queries with hickory's async client (hickory-net) over UDP or TCP.
pub fn hickory_query(addr: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Message {
    use hickory_net::client::{Client, ClientHandle};
    use hickory_net::runtime::TokioRuntimeProvider;
    use hickory_net::tcp::TcpClientStream;
    use hickory_net::udp::UdpClientStream;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let name = Name::from_ascii(name).expect("name");
    rt.block_on(async {
        let provider = TokioRuntimeProvider::default();
        let resp = if tcp {
            let (stream, sender) = TcpClientStream::new(addr, None, Some(TIMEOUT), provider);
            let (mut client, bg) = Client::<TokioRuntimeProvider>::new(stream.await.expect("tcp connect"), sender);
            tokio::spawn(bg);
            tokio::time::timeout(TIMEOUT, client.query(name, DNSClass::IN, qtype)).await
        } else {
            let stream = UdpClientStream::builder(addr, provider).with_timeout(Some(TIMEOUT)).build();
            let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
            tokio::spawn(bg);
            tokio::time::timeout(TIMEOUT, client.query(name, DNSClass::IN, qtype)).await
        };
        resp.expect("hickory client timed out").expect("hickory client query").into_message()
    })
}

/// Runs `dig @addr -p port ARGS +tries=1 +time=2` and returns its output.
pub fn dig(addr: SocketAddr, args: &[&str]) -> String {
    run_tool("dig", addr, args, &["+tries=1", "+time=2"])
}

/// Runs `kdig @addr -p port ARGS +retry=0 +time=2` and returns its output.
pub fn kdig(addr: SocketAddr, args: &[&str]) -> String {
    run_tool("kdig", addr, args, &["+retry=0", "+time=2"])
}

fn run_tool(tool: &str, addr: SocketAddr, args: &[&str], bound: &[&str]) -> String {
    let out = Command::new(tool)
        .arg(format!("@{}", addr.ip()))
        .arg("-p")
        .arg(addr.port().to_string())
        .args(args)
        .args(bound)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (install dnsutils / knot-dnsutils): {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A plain HTTP/1.1 GET; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_with(addr, path, &[])
}

/// A GET with extra headers; returns (status, body).
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (status, _, body) = http_request(addr, path, headers);
    (status, body)
}

/// A GET returning (status, headers, body).
pub fn http_request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect HTTP");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read HTTP response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body =
        if text.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The clusterdns binary running as a child process, its output collected; killed on drop.
pub struct Process {
    pub child: Child,
    output: Arc<Mutex<Vec<String>>>,
    /// Output pipes read to their end (0, 1 or 2).
    closed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Process {
    /// Starts the binary with `args` in `dir`.
    pub fn spawn(dir: &Path, args: &[&str]) -> Process {
        Process::spawn_with(dir, args, |_| {})
    }

    /// Starts the binary with `args` in `dir`, the command first changed by `adjust` (to set
    /// its resource limits, or run it in a network namespace).
    pub fn spawn_with(dir: &Path, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Process {
        Process::spawn_command(Command::new(env!("CARGO_BIN_EXE_clusterdns")), dir, args, adjust)
    }

    /// Starts `cmd` with `args` in `dir`, changed by `adjust`, its output collected.
    pub fn spawn_command(mut cmd: Command, dir: &Path, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Process {
        adjust(&mut cmd);
        let mut child = cmd
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn clusterdns");
        let output = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for pipe in
            [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
        {
            let (output, closed) = (output.clone(), closed.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
                closed.fetch_add(1, std::sync::atomic::Ordering::Release);
            });
        }
        Process { child, output, closed }
    }

    /// Every line the process printed, once both output pipes are read to their end (after it
    /// exited); panics after `timeout`.
    pub fn all_lines(&self, timeout: Duration) -> Vec<String> {
        let closed = || self.closed.load(std::sync::atomic::Ordering::Acquire) == 2;
        eventually(timeout, || closed().then_some(()))
            .unwrap_or_else(|| panic!("output still open after {timeout:?}:\n{}", self.lines().join("\n")));
        self.lines()
    }

    /// Every line printed so far (stdout and stderr interleaved).
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Waits until a printed line satisfies `pred`; panics with the output after `timeout`.
    pub fn wait_for_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            if start.elapsed() > timeout {
                panic!("no matching line within {timeout:?}; output:\n{}", self.lines().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the process to exit; its exit code, or panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            if start.elapsed() > timeout {
                panic!("process did not exit within {timeout:?}; output:\n{}", self.lines().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's soft open-file limit to the hard one, as the binary does, for tests
/// that hold thousands of connections; returns the limit, which must be at least `need`.
pub fn raise_descriptor_limit(need: u64) -> u64 {
    let limit = clusterdns::server::listen::raise_descriptor_limit().expect("raise RLIMIT_NOFILE");
    assert!(limit >= need, "this test needs {need} open files; `ulimit -Hn` allows {limit}");
    limit
}

/// A TCP connection to `to` from the address `from` (any of 127.0.0.0/8 is the loopback
/// interface, so tests can be many clients), with reads bounded by [`TIMEOUT`].
pub fn connect_from(from: std::net::IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    // Pick the source port at connect, not at bind: the kernel's search for a free port at
    // bind slows down badly once thousands are taken from one address.
    let no_port: libc::c_int = 1;
    // SAFETY: setsockopt on our own socket with an int option.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &no_port as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&to.into(), TIMEOUT)?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(TIMEOUT))?;
    Ok(s)
}

/// Sends `name`/`qtype` on an open TCP connection and reads the reply; `None` if the server
/// closed the connection instead.
pub fn ask_on(s: &mut TcpStream, name: &str, qtype: RecordType) -> Option<Message> {
    let q = query_message(name, qtype);
    let bytes = q.to_vec().expect("encode");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).ok()?;
    let reply = Message::from_vec(&read_tcp_message(s)?).expect("a decodable reply");
    assert_eq!(reply.id, q.id, "reply id");
    Some(reply)
}

/// A free TCP+UDP port on 127.0.0.1, for child processes that need a port up front.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `f` until it returns `Some`, at most `timeout`.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real binary serving a Corefile on 127.0.0.1, for tests that read what it prints.
pub struct Binary {
    pub process: Process,
    /// The DNS address (UDP and TCP).
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Binary {
    /// Starts the binary on `corefile`, where every `PORT` is replaced by one free port; each
    /// block should `bind 127.0.0.1`. Returns once the startup banner is printed.
    pub fn start(corefile: &str) -> Binary {
        let dir = tempfile::tempdir().expect("temp dir");
        Binary::start_in(dir, corefile)
    }

    /// Like [`start`](Self::start), from `dir` (which may hold files the Corefile reads).
    pub fn start_in(dir: tempfile::TempDir, corefile: &str) -> Binary {
        let port = free_port();
        std::fs::write(dir.path().join("Corefile"), corefile.replace("PORT", &port.to_string())).expect("write");
        let process = Process::spawn(dir.path(), &["-conf", "Corefile"]);
        process.wait_for_line(TIMEOUT, |l| l.starts_with("clusterdns-"));
        Binary { process, addr: SocketAddr::from(([127, 0, 0, 1], port)), dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Printed lines (stdout and stderr) starting with `prefix`, in order.
    pub fn lines_starting(&self, prefix: &str) -> Vec<String> {
        self.process.lines().into_iter().filter(|l| l.starts_with(prefix)).collect()
    }

    /// Waits until `n` printed lines start with `prefix`; returns them. Panics with the output
    /// after [`TIMEOUT`].
    pub fn wait_lines(&self, prefix: &str, n: usize) -> Vec<String> {
        eventually(TIMEOUT, || Some(self.lines_starting(prefix)).filter(|l| l.len() >= n)).unwrap_or_else(|| {
            panic!("fewer than {n} lines starting with {prefix:?}; output:\n{}", self.process.lines().join("\n"))
        })
    }
}
