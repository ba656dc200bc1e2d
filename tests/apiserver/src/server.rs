//! The server: its shared state, the faults a test can inject, the accept loop, and the handle
//! tests hold.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::load::{self, LoadError, LoadSummary};
use crate::object::{ClusterObject, ObjectError};
use crate::status::ApiError;
use crate::store::Store;
use crate::tls::ClientCertificate;
use crate::{Kind, control, http, kubeconfig, tls};

/// Why the server could not start or a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding, or writing the kubeconfig.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Making the certificates or the TLS configuration.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// Loading an objects file.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An object given to the builder was refused.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// Reading the kubeconfig back into a kube-rs configuration.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// Making the kube-rs client.
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
}

/// How a paused server treats requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseMode {
    /// Requests wait, unanswered, until [`TestApiServer::resume`].
    Hold,
    /// Requests get 503 ServiceUnavailable.
    Unavailable,
}

/// How the server treats streaming lists (`sendInitialEvents=true`, KEP-3157).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamingLists {
    /// As kube-apiserver with the WatchList feature: the state, then a bookmark marking its end.
    Serve,
    /// As a server without it: 422 Invalid, because `resourceVersionMatch` is forbidden on a watch.
    Reject,
    /// As an API proxy or aggregated server that drops the parameters it does not know: a plain
    /// watch, whose initial ADDED events are never followed by the end bookmark.
    Ignore,
}

/// A request the server answered, for tests to look back at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The HTTP status of the response (200 for a watch, even one that then sends an ERROR).
    pub status: u16,
}

/// How many requests [`TestApiServer::requests`] remembers.
const REQUEST_LOG: usize = 10_000;

/// A cut of every open watch; `abort` breaks connections instead of ending streams.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cut {
    generation: u64,
    pub abort: bool,
}

/// The faults in force.
pub(crate) struct Faults {
    latency_micros: AtomicU64,
    /// A [`StreamingLists`] as a number.
    streaming: AtomicU8,
    pause: watch::Sender<Option<PauseMode>>,
    cuts: watch::Sender<Cut>,
    open_watches: watch::Sender<usize>,
    bookmarks: watch::Sender<u64>,
}

impl Faults {
    fn new() -> Self {
        Faults {
            latency_micros: AtomicU64::new(0),
            streaming: AtomicU8::new(0),
            pause: watch::Sender::new(None),
            cuts: watch::Sender::new(Cut::default()),
            open_watches: watch::Sender::new(0),
            bookmarks: watch::Sender::new(0),
        }
    }

    /// What every API request goes through first: a pause, then the added latency.
    pub(crate) async fn gate(&self) -> Result<(), ApiError> {
        let mut pause = self.pause.subscribe();
        loop {
            let mode = *pause.borrow_and_update();
            match mode {
                None => break,
                Some(PauseMode::Unavailable) => return Err(ApiError::service_unavailable()),
                Some(PauseMode::Hold) => {
                    if pause.changed().await.is_err() {
                        break;
                    }
                }
            }
        }
        let latency = self.latency_micros.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        Ok(())
    }

    /// How streaming lists are treated now.
    pub(crate) fn streaming(&self) -> StreamingLists {
        match self.streaming.load(Ordering::Relaxed) {
            1 => StreamingLists::Reject,
            2 => StreamingLists::Ignore,
            _ => StreamingLists::Serve,
        }
    }

    pub(crate) fn set_streaming(&self, mode: StreamingLists) {
        let n = match mode {
            StreamingLists::Serve => 0,
            StreamingLists::Reject => 1,
            StreamingLists::Ignore => 2,
        };
        self.streaming.store(n, Ordering::Relaxed);
    }

    pub(crate) fn set_pause(&self, mode: Option<PauseMode>) {
        self.pause.send_replace(mode);
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.store(micros, Ordering::Relaxed);
    }

    pub(crate) fn open_watches(&self) -> usize {
        *self.open_watches.borrow()
    }

    pub(crate) fn subscribe_cuts(&self) -> watch::Receiver<Cut> {
        self.cuts.subscribe()
    }

    /// Counts a watch as open until the guard drops.
    pub(crate) fn watch_opened(&self) -> OpenWatch<'_> {
        self.open_watches.send_modify(|n| *n += 1);
        OpenWatch(&self.open_watches)
    }

    /// Counts a BOOKMARK sent.
    pub(crate) fn bookmark_sent(&self) {
        self.bookmarks.send_modify(|n| *n += 1);
    }

    pub(crate) fn cut(&self, abort: bool) {
        self.cuts.send_modify(|c| *c = Cut { generation: c.generation + 1, abort });
    }
}

pub(crate) struct OpenWatch<'a>(&'a watch::Sender<usize>);

impl Drop for OpenWatch<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// What request handlers share.
pub(crate) struct Shared {
    pub store: RwLock<Store>,
    /// The bearer token every request must present ([`TestApiServer::set_token`] rotates it).
    pub token: RwLock<String>,
    pub bookmark_interval: Duration,
    /// Where clients reach the server, for discovery's serverAddressByClientCIDRs.
    pub address: SocketAddr,
    pub faults: Faults,
    requests: Mutex<VecDeque<RequestRecord>>,
    /// How many requests were answered, for tests waiting on one.
    answered: watch::Sender<u64>,
}

impl Shared {
    fn record(&self, record: RequestRecord) {
        let mut log = self.requests.lock();
        if log.len() == REQUEST_LOG {
            log.pop_front();
        }
        log.push_back(record);
        drop(log);
        self.answered.send_modify(|n| *n += 1);
    }
}

/// Sets up a [`TestApiServer`].
#[derive(Debug)]
pub struct Builder {
    https: bool,
    token: Option<String>,
    bind: SocketAddr,
    history_limit: usize,
    bookmark_interval: Duration,
    kubeconfig_path: Option<PathBuf>,
    objects: Vec<ClusterObject>,
    files: Vec<PathBuf>,
    control: Option<SocketAddr>,
    client_certificates: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            https: true,
            token: None,
            bind: (Ipv4Addr::LOCALHOST, 0).into(),
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(60),
            kubeconfig_path: None,
            objects: Vec::new(),
            files: Vec::new(),
            control: None,
            client_certificates: false,
        }
    }
}

impl Builder {
    /// Also authenticate clients by certificate, as kube-apiserver's `--client-ca-file`: a client
    /// CA and a certificate it signed are made at start ([`TestApiServer::client_certificate`]);
    /// a connection presenting that certificate needs no bearer token, one presenting a
    /// certificate the client CA did not sign fails its TLS handshake, and one presenting none
    /// still needs the token. HTTPS only.
    pub fn client_certificates(mut self) -> Self {
        self.client_certificates = true;
        self
    }

    /// Serve HTTPS with a freshly made CA (the default).
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    /// Serve plain HTTP.
    pub fn http(mut self) -> Self {
        self.https = false;
        self
    }

    /// The bearer token requests must present (`Authorization: Bearer <token>`, 401 otherwise);
    /// a random one by default. The kubeconfig presents it.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The address to listen on; the default is `127.0.0.1:0`, a free port.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Listen on `127.0.0.1:port`.
    pub fn port(self, port: u16) -> Self {
        self.bind((Ipv4Addr::LOCALHOST, port).into())
    }

    /// How many events of each kind to keep for watches to resume from (default 10,000). A watch
    /// from before them, or one that falls further behind, gets 410 and must relist.
    pub fn history_limit(mut self, events: usize) -> Self {
        self.history_limit = events;
        self
    }

    /// How often watches that allow bookmarks get one (default 60 s, as kube-apiserver).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Where to write the kubeconfig; by default, a temporary directory removed with the server.
    pub fn kubeconfig_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig_path = Some(path.into());
        self
    }

    /// Also serves the control endpoint (plain HTTP, see the README) on `addr`, so another
    /// process can inject faults and change objects; port 0 picks a free one.
    pub fn control(mut self, addr: SocketAddr) -> Self {
        self.control = Some(addr);
        self
    }

    /// An object to start with.
    pub fn object(mut self, object: impl Into<ClusterObject>) -> Self {
        self.objects.push(object.into());
        self
    }

    /// A gen-cluster `objects.json` (or a `List`) to start with.
    pub fn objects_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Loads the objects, binds, writes the kubeconfig and starts serving on the current tokio
    /// runtime.
    pub async fn start(self) -> Result<TestApiServer, Error> {
        let listener = TcpListener::bind(self.bind).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: RwLock::new(Store::new(self.history_limit)),
            token: RwLock::new(match self.token {
                Some(token) => token,
                None => random_token()?,
            }),
            bookmark_interval: self.bookmark_interval,
            address,
            faults: Faults::new(),
            requests: Mutex::new(VecDeque::new()),
            answered: watch::Sender::new(0),
        });

        let objects = self.objects.into_iter().map(|o| Ok((o.key()?, o))).collect::<Result<Vec<_>, ObjectError>>()?;
        shared.store.write().apply(objects);
        for file in self.files {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || load::load_file(&shared, &file))
                .await
                .expect("loading does not panic")?;
        }

        let (tls, scheme) = if self.https {
            let extra = if address.ip().is_loopback() || address.ip().is_unspecified() {
                vec![]
            } else {
                vec![address.ip().to_string()]
            };
            (Some(tls::generate(&extra, self.client_certificates)?), "https")
        } else if self.client_certificates {
            return Err(Error::Tls("client certificates need HTTPS".into()));
        } else {
            (None, "http")
        };
        let client = tls.as_ref().and_then(|t| t.client.clone());
        let url = format!("{scheme}://{address}");
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let (kubeconfig_path, tempdir) = match self.kubeconfig_path {
            Some(path) => (path, None),
            None => {
                let dir = tempfile::Builder::new().prefix("clusterdns-apiserver-").tempdir()?;
                (dir.path().join("kubeconfig"), Some(dir))
            }
        };
        std::fs::write(&kubeconfig_path, kubeconfig::render(&url, ca_pem.as_deref(), &shared.token.read()))?;

        let acceptor = tls.map(|t| TlsAcceptor::from(t.config));
        let mut task = tokio::spawn(accept_loop(listener, acceptor, shared.clone()));
        let control = match self.control {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let bound = listener.local_addr()?;
                let api = task;
                let control = tokio::spawn(control::serve(listener, shared.clone()));
                task = tokio::spawn(async move {
                    // Both end when the server is dropped: aborting this drops both handles' tasks.
                    let _control = AbortOnDrop(control);
                    let _api = AbortOnDrop(api);
                    std::future::pending::<()>().await;
                });
                Some(bound)
            }
            None => None,
        };
        tracing::info!(%url, kubeconfig = %kubeconfig_path.display(), "test API server started");
        Ok(TestApiServer { shared, address, url, ca_pem, client, kubeconfig_path, _tempdir: tempdir, task, control })
    }
}

/// 128 random bits, hex-encoded, from the crypto provider the server's TLS uses.
fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Tls("no secure random source for a token".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    // Dropping the set (when the server stops) aborts every connection, and with it every watch.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                // The verifier let the handshake finish only with no certificate
                                // or one the client CA signed.
                                let certified = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                                serve_connection(stream, shared, certified).await
                            }
                            Err(error) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        },
                        None => serve_connection(stream, shared, false).await,
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    shared: Arc<Shared>,
    certified: bool,
) {
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let shared = shared.clone();
        async move {
            let response = http::respond(&shared, &req, certified).await;
            shared.record(RequestRecord {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
                query: req.uri().query().unwrap_or("").to_owned(),
                status: response.status().as_u16(),
            });
            Ok::<_, Infallible>(response)
        }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().timer(TokioTimer::new()).serve_connection(TokioIo::new(io), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// A running test API server. Dropping it stops the server and closes every connection.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use clusterdns_test_apiserver::TestApiServer;
/// use k8s_openapi::api::core::v1::Service;
///
/// let api = TestApiServer::builder().https().token("t").start().await?;
/// let client = api.kube_client().await?;
/// let mut svc = Service::default();
/// svc.metadata.name = Some("web".into());
/// svc.metadata.namespace = Some("default".into());
/// api.apply(svc)?;
/// # Ok(()) }
/// ```
pub struct TestApiServer {
    shared: Arc<Shared>,
    address: SocketAddr,
    url: String,
    ca_pem: Option<String>,
    client: Option<ClientCertificate>,
    kubeconfig_path: PathBuf,
    _tempdir: Option<tempfile::TempDir>,
    task: JoinHandle<()>,
    control: Option<SocketAddr>,
}

/// Aborts its task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for TestApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApiServer")
            .field("url", &self.url)
            .field("kubeconfig", &self.kubeconfig_path)
            .finish_non_exhaustive()
    }
}

/// Names an object to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    /// Names `kind` `namespace/name` (pass `None` as the namespace of a Namespace).
    pub fn new<'a>(kind: Kind, namespace: impl Into<Option<&'a str>>, name: &str) -> Self {
        ObjectRef { kind, namespace: namespace.into().map(String::from), name: name.into() }
    }

    pub(crate) fn key(&self) -> String {
        match &self.namespace {
            Some(ns) if self.kind.info().namespaced => format!("{ns}/{}", self.name),
            _ => self.name.clone(),
        }
    }
}

impl TestApiServer {
    /// Starts setting one up.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.address
    }

    /// `https://127.0.0.1:PORT` (or `http://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig that reaches it, for kube-rs, kubectl or the DNS server under test.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// With [`Builder::client_certificates`]: a client certificate the server accepts in place of
    /// the bearer token, its key, and the client CA that signed it.
    pub fn client_certificate(&self) -> Option<&ClientCertificate> {
        self.client.as_ref()
    }

    /// The bearer token clients must present.
    pub fn token(&self) -> String {
        self.shared.token.read().clone()
    }

    /// Replaces the bearer token, as a rotation that revokes the old one: from now on only
    /// `token` is accepted (open watches go on). The kubeconfig written at start keeps the old one.
    pub fn set_token(&self, token: impl Into<String>) {
        *self.shared.token.write() = token.into();
    }

    /// The CA certificate (PEM) that signed its serving certificate; `None` over plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kube-rs configuration read from the written kubeconfig.
    pub async fn kube_config(&self) -> Result<kube::Config, Error> {
        // kube-rs asks rustls for the process's crypto provider; make it ring, which this crate
        // builds, whatever else in the process enables.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig_path)?;
        Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?)
    }

    /// A kube-rs client from the written kubeconfig.
    pub async fn kube_client(&self) -> Result<kube::Client, Error> {
        Ok(kube::Client::try_from(self.kube_config().await?)?)
    }

    /// Creates or replaces an object; returns the resourceVersion after the write (unchanged when
    /// the object is identical to the stored one).
    pub fn apply(&self, object: impl Into<ClusterObject>) -> Result<u64, ObjectError> {
        self.apply_batch([object])
    }

    /// Creates or replaces objects in one go: each write gets its own resourceVersion and event,
    /// and watches see them all at once. Nothing is written if any object is refused.
    pub fn apply_batch<O: Into<ClusterObject>>(
        &self,
        objects: impl IntoIterator<Item = O>,
    ) -> Result<u64, ObjectError> {
        let objects = objects
            .into_iter()
            .map(|o| {
                let o = o.into();
                Ok((o.key()?, o))
            })
            .collect::<Result<Vec<_>, ObjectError>>()?;
        Ok(self.shared.store.write().apply(objects))
    }

    /// Deletes an object (`None` as the namespace of a Namespace); returns the deletion's
    /// resourceVersion, or `None` if there was no such object.
    pub fn delete<'a>(&self, kind: Kind, namespace: impl Into<Option<&'a str>>, name: &str) -> Option<u64> {
        let (rv, deleted) = self.delete_batch([ObjectRef::new(kind, namespace, name)]);
        (deleted == 1).then_some(rv)
    }

    /// Deletes objects in one go; returns the resourceVersion after and how many existed.
    pub fn delete_batch(&self, refs: impl IntoIterator<Item = ObjectRef>) -> (u64, usize) {
        let refs: Vec<_> = refs.into_iter().map(|r| (r.kind, r.key())).collect();
        self.shared.store.write().delete(&refs)
    }

    /// Loads a gen-cluster `objects.json` (or a `List`) into the running server.
    pub async fn load_objects_file(&self, path: impl Into<PathBuf>) -> Result<LoadSummary, LoadError> {
        let (shared, path) = (self.shared.clone(), path.into());
        tokio::task::spawn_blocking(move || load::load_file(&shared, &path)).await.expect("loading does not panic")
    }

    /// The resourceVersion of the latest write.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.read().rv()
    }

    /// How many objects of `kind` it holds.
    pub fn count(&self, kind: Kind) -> usize {
        self.shared.store.read().len(kind)
    }

    /// Ends every open watch stream cleanly, as kube-apiserver does when it shuts down; clients
    /// resume from their last resourceVersion.
    pub fn drop_watches(&self) {
        self.shared.faults.cut(false);
    }

    /// Breaks every open watch connection mid-stream (the chunked body never finishes), as a
    /// crashed server or a lost network does.
    pub fn break_watches(&self) {
        self.shared.faults.cut(true);
    }

    /// Forgets all watch history, as an etcd compaction at the current revision: a watch or a
    /// continue token from an older resourceVersion gets 410 Expired. Open watches go on.
    pub fn compact(&self) {
        self.shared.store.write().compact();
    }

    /// Holds every new request, or answers it 503, until [`resume`](Self::resume). Open watch
    /// streams go on; [`drop_watches`](Self::drop_watches) ends them.
    pub fn pause(&self, mode: PauseMode) {
        self.shared.faults.set_pause(Some(mode));
    }

    /// Ends a pause; held requests proceed.
    pub fn resume(&self) {
        self.shared.faults.set_pause(None);
    }

    /// Delays every request by `latency` before it is handled (zero to stop).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.set_latency(latency);
    }

    /// Serves, rejects or ignores streaming lists from now on (see [`StreamingLists`]).
    pub fn set_streaming_lists(&self, mode: StreamingLists) {
        self.shared.faults.set_streaming(mode);
    }

    /// The control endpoint's address, when the builder asked for one.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.shared.faults.open_watches()
    }

    /// Waits until `condition` holds for the number of open watches; false on timeout.
    pub async fn wait_for_open_watches(&self, condition: impl FnMut(&usize) -> bool, timeout: Duration) -> bool {
        let mut open = self.shared.faults.open_watches.subscribe();
        matches!(tokio::time::timeout(timeout, open.wait_for(condition)).await, Ok(Ok(_)))
    }

    /// How many BOOKMARK events watches have sent.
    pub fn bookmarks_sent(&self) -> u64 {
        *self.shared.faults.bookmarks.borrow()
    }

    /// Waits until `condition` holds for the number of bookmarks sent; false on timeout.
    pub async fn wait_for_bookmarks(&self, condition: impl FnMut(&u64) -> bool, timeout: Duration) -> bool {
        let mut sent = self.shared.faults.bookmarks.subscribe();
        matches!(tokio::time::timeout(timeout, sent.wait_for(condition)).await, Ok(Ok(_)))
    }

    /// The requests answered so far (the last 10,000), oldest first. A watch counts as answered
    /// when its stream starts.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests.lock().iter().cloned().collect()
    }

    /// Waits until `condition` holds for [`requests`](Self::requests); false on timeout.
    pub async fn wait_for_requests(
        &self,
        mut condition: impl FnMut(&[RequestRecord]) -> bool,
        timeout: Duration,
    ) -> bool {
        let mut answered = self.shared.answered.subscribe();
        let wait = async {
            loop {
                answered.borrow_and_update();
                if condition(&self.requests()) {
                    return true;
                }
                if answered.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }
}
