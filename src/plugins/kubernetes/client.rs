//! The API client: how the plugin reaches the API server (`endpoint`/`tls`, `kubeconfig`, or
//! in-cluster), and what every request goes through (`apiserver_qps`/`apiserver_burst`,
//! `apiserver_max_inflight`, the `coredns_kubernetes_rest_client_*` metrics).
//!
//! The client is kube's, with its stack extended by one layer of ours ([`ApiLayer`]) that
//! rate-limits, measures, and notes when the API server last sent anything for each watched
//! kind (bookmarks included, which kube's watcher swallows), so an outage shows even in a quiet
//! cluster. kube's own retry of 503s is off: the watches retry with their own backoff.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use kube::client::{Body, ClientBuilder};
use tower::limit::ConcurrencyLimitLayer;
use tower::{BoxError, Layer, Service};

use super::metrics::Metrics;
use super::object::Kind;

/// How the plugin reaches the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The pod's service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, its token (re-read as it
    /// rotates) and CA from `/var/run/secrets/kubernetes.io/serviceaccount/`.
    InCluster,
    /// `endpoint URL` and, with `tls CERT KEY CACERT`, a client certificate and a CA.
    Endpoint { url: String, tls: Option<TlsFiles> },
    /// `kubeconfig KUBECONFIG [CONTEXT]`.
    Kubeconfig { path: PathBuf, context: Option<String> },
}

/// `tls CERT KEY CACERT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// `apiserver_qps`, `apiserver_burst`, `apiserver_max_inflight` (0 or absent: not set).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub qps: Option<f64>,
    pub burst: Option<u32>,
    pub max_inflight: Option<u32>,
}

/// client-go's defaults when only one of QPS and burst is given, as CoreDNS inherits them.
const DEFAULT_QPS: f64 = 5.0;
const DEFAULT_BURST: u32 = 10;

/// The kube configuration for `c`. Reads files (kubeconfig, certificates), contacts nothing.
pub fn config(c: &Connection) -> Result<kube::Config, String> {
    let mut config = match c {
        Connection::InCluster => {
            kube::Config::incluster().map_err(|e| format!("unable to load in-cluster configuration: {e}"))?
        }
        Connection::Endpoint { url, tls } => {
            let uri: http::Uri = url.parse().map_err(|e| format!("invalid endpoint '{url}': {e}"))?;
            let mut config = kube::Config::new(uri);
            if let Some(tls) = tls {
                for (what, path) in [("certificate", &tls.cert), ("key", &tls.key), ("CA certificate", &tls.ca)] {
                    std::fs::metadata(path).map_err(|e| format!("cannot read TLS {what} {}: {e}", path.display()))?;
                }
                config.root_cert_file = Some(tls.ca.clone());
                config.root_cert = Some(read_pem_certs(&tls.ca)?);
                config.auth_info.client_certificate = Some(tls.cert.display().to_string());
                config.auth_info.client_key = Some(tls.key.display().to_string());
            }
            config
        }
        Connection::Kubeconfig { path, context } => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            let options = kube::config::KubeConfigOptions { context: context.clone(), ..Default::default() };
            // Loading a kubeconfig is async in kube's API, but does no I/O once the file is read.
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .now_or_never()
                .ok_or("loading the kubeconfig did not complete")?
                .map_err(|e| format!("invalid kubeconfig {}: {e}", path.display()))?
        }
    };
    // The watches retry with their own backoff; kube's retries of 503 would stall them for
    // minutes.
    config.default_retry = false;
    Ok(config)
}

/// The DER certificates of a PEM file.
fn read_pem_certs(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<Vec<u8>>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read CA certificate {}: {e}", path.display()))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect();
    let certs = certs.map_err(|e| format!("invalid CA certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The client for `config`, with `limits` and our layer.
pub fn client(config: kube::Config, limits: Limits, api: Arc<ApiState>) -> Result<kube::Client, String> {
    let builder = ClientBuilder::try_from(config).map_err(|e| format!("cannot make the API client: {e}"))?;
    let layer = ApiLayer { api, limits };
    Ok(match limits.max_inflight.filter(|&n| n > 0) {
        Some(n) => builder.with_layer(&ConcurrencyLimitLayer::new(n as usize)).with_layer(&layer).build(),
        None => builder.with_layer(&layer).build(),
    })
}

/// What the layer shares with the watches.
pub struct ApiState {
    pub metrics: Arc<Metrics>,
    /// The `host` label: the API server's `host:port`.
    host: String,
    /// Per kind: when (Unix nanoseconds) the API server last sent a response or data.
    heard: [AtomicU64; 4],
    /// Per kind: successful (2xx) responses, so a watch that failed can tell it recovered.
    ok: [AtomicU64; 4],
}

impl ApiState {
    pub fn new(metrics: Arc<Metrics>, cluster_url: &http::Uri) -> ApiState {
        let host = cluster_url.authority().map(|a| a.to_string()).unwrap_or_default();
        ApiState { metrics, host, heard: Default::default(), ok: Default::default() }
    }

    /// Seconds since the API server last sent anything for `kind`; `None` if it never has.
    pub fn silence(&self, kind: Kind) -> Option<Duration> {
        let heard = self.heard[kind.slot()].load(Ordering::Relaxed);
        (heard > 0).then(|| now_nanos().saturating_sub(heard)).map(Duration::from_nanos)
    }

    /// Successful responses for `kind` so far.
    pub fn successes(&self, kind: Kind) -> u64 {
        self.ok[kind.slot()].load(Ordering::Relaxed)
    }

    fn hear(&self, kind: Option<Kind>) {
        if let Some(k) = kind {
            self.heard[k.slot()].store(now_nanos(), Ordering::Relaxed);
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The kind a request path is for: the collections the watches use end in the plural.
fn kind_of(path: &str) -> Option<Kind> {
    let last = path.rsplit('/').next()?;
    Kind::ALL.into_iter().find(|k| k.resource() == last)
}

/// Rate limiting, metrics and liveness for every request (see the module documentation).
#[derive(Clone)]
struct ApiLayer {
    api: Arc<ApiState>,
    limits: Limits,
}

impl<S> Layer<S> for ApiLayer {
    type Service = ApiService<S>;

    fn layer(&self, inner: S) -> ApiService<S> {
        let limiter = (self.limits.qps.is_some() || self.limits.burst.is_some()).then(|| {
            TokenBucket::new(self.limits.qps.unwrap_or(DEFAULT_QPS), self.limits.burst.unwrap_or(DEFAULT_BURST))
        });
        ApiService { inner, api: self.api.clone(), limiter }
    }
}

struct ApiService<S> {
    inner: S,
    api: Arc<ApiState>,
    limiter: Option<TokenBucket>,
}

impl<S, B> Service<Request<Body>> for ApiService<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = Response<Tracked<B>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Tracked<B>>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if let Some(limiter) = &mut self.limiter {
            ready!(limiter.poll_acquire(cx));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let verb = req.method().as_str().to_owned();
        let kind = kind_of(req.uri().path());
        let api = self.api.clone();
        if let Some(limiter) = &mut self.limiter {
            let waited = limiter.take_wait();
            api.metrics.rate_limiter_duration.with(&[&verb, &api.host]).observe(waited.as_secs_f64());
        }
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await.map_err(Into::into);
            let m = &api.metrics;
            m.request_duration.with(&[&verb, &api.host]).observe(start.elapsed().as_secs_f64());
            let code = match &result {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(_) => "<error>".to_string(),
            };
            m.requests.with(&[&code, &verb, &api.host]).inc();
            let resp = result?;
            // Only a success is news from the API server: the body of a 503 is not, or an
            // outage would never look silent while the watches retry.
            let kind = kind.filter(|_| resp.status().is_success());
            if let Some(k) = kind {
                api.hear(Some(k));
                api.ok[k.slot()].fetch_add(1, Ordering::Relaxed);
            }
            Ok(resp.map(|inner| Tracked { inner, kind, api }))
        })
    }
}

/// A response body that notes when data arrives (watch events and bookmarks alike).
pub struct Tracked<B> {
    inner: B,
    kind: Option<Kind>,
    api: Arc<ApiState>,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(_)) = &frame {
            self.api.hear(self.kind);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// client-go's token bucket: `qps` tokens a second, at most `burst` saved up.
struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    /// The runtime's clock, which tests can pause.
    last: tokio::time::Instant,
    /// A token is taken for the request about to be called.
    reserved: bool,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When the request now waiting began to wait, and how long the last one waited.
    waiting_since: Option<tokio::time::Instant>,
    waited: Duration,
}

impl TokenBucket {
    fn new(qps: f64, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: tokio::time::Instant::now(),
            reserved: false,
            sleep: None,
            waiting_since: None,
            waited: Duration::ZERO,
        }
    }

    fn poll_acquire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.reserved {
                return Poll::Ready(());
            }
            if let Some(sleep) = &mut self.sleep {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            let now = tokio::time::Instant::now();
            if self.qps > 0.0 {
                self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
            }
            self.last = now;
            if self.tokens >= 1.0 || self.qps <= 0.0 {
                self.tokens -= 1.0;
                self.reserved = true;
                self.waited = self.waiting_since.take().map(|t| t.elapsed()).unwrap_or_default();
                return Poll::Ready(());
            }
            self.waiting_since.get_or_insert(now);
            let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.qps);
            self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
        }
    }

    /// Consumes the reservation; how long its request waited.
    fn take_wait(&mut self) -> Duration {
        self.reserved = false;
        std::mem::take(&mut self.waited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_name_their_kind() {
        assert_eq!(kind_of("/api/v1/services"), Some(Kind::Service));
        assert_eq!(kind_of("/apis/discovery.k8s.io/v1/endpointslices"), Some(Kind::EndpointSlice));
        assert_eq!(kind_of("/api/v1/namespaces"), Some(Kind::Namespace));
        assert_eq!(kind_of("/api/v1/pods"), Some(Kind::Pod));
        assert_eq!(kind_of("/version"), None);
    }

    #[test]
    fn the_token_bucket_allows_a_burst_then_the_rate() {
        crate::plugin::testing::paused_runtime().block_on(async {
            let mut bucket = TokenBucket::new(10.0, 3);
            let start = tokio::time::Instant::now();
            for _ in 0..5 {
                std::future::poll_fn(|cx| bucket.poll_acquire(cx)).await;
                bucket.take_wait();
            }
            // Three at once, then two more at 10 a second.
            assert!(start.elapsed() >= Duration::from_millis(190), "{:?}", start.elapsed());
        });
    }
}
