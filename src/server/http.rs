//! The listeners of the HTTP endpoints of health, ready and prometheus.
//!
//! One listener per address, shared by every plugin and block that names it; its routes, and
//! its TLS configuration if the address has one (prometheus's `tls`), are swapped on reload like
//! the DNS zone tables, so a listener whose address is unchanged keeps its socket through a
//! reload. Each connection takes the TLS configuration current when it is accepted.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use crate::http::tls::HttpTls;
use crate::http::{HttpAddr, HttpHandler, HttpRequest, HttpResponse};

/// How long a client may take to send its request head, and to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a connection may last in all.
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The routes of one address.
pub type Routes = BTreeMap<&'static str, Arc<dyn HttpHandler>>;

/// What one address serves, swapped as a whole.
#[derive(Default)]
struct Site {
    routes: Routes,
    /// HTTPS when set; plain HTTP otherwise.
    tls: Option<TlsAcceptor>,
}

/// A bound HTTP listener; what it serves can be replaced while it runs.
pub struct HttpListener {
    pub local: Vec<SocketAddr>,
    site: Arc<ArcSwap<Site>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HttpListener {
    /// Binds `addr` (or 127.0.0.1 on an ephemeral port, with `loopback_ephemeral`), serving
    /// nothing until [`HttpListener::set_site`].
    pub async fn bind(addr: &HttpAddr, loopback_ephemeral: bool) -> std::io::Result<HttpListener> {
        let site: Arc<ArcSwap<Site>> = Arc::new(ArcSwap::from_pointee(Site::default()));
        let mut local = Vec::new();
        let mut tasks = Vec::new();
        let addrs = match loopback_ephemeral {
            true => vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
            false => addr.resolve()?,
        };
        for sa in addrs {
            let listener = bind_tcp(sa)?;
            local.push(listener.local_addr()?);
            tasks.push(tokio::spawn(serve(listener, site.clone())));
        }
        Ok(HttpListener { local, site, tasks })
    }

    /// Serves `routes`, over TLS with `tls`, on connections accepted from now on.
    pub fn set_site(&self, routes: Routes, tls: Option<&HttpTls>) {
        let tls = tls.map(|t| TlsAcceptor::from(t.config.clone()));
        self.site.store(Arc::new(Site { routes, tls }));
    }
}

impl Drop for HttpListener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A TCP listener on `sa`; the unspecified IPv6 address also accepts IPv4 where the system
/// allows, and falls back to IPv4 where IPv6 is absent.
fn bind_tcp(sa: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = match super::listen::tcp_listener(sa) {
        Err(e) if sa.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && super::listen::is_no_ipv6(&e) => {
            super::listen::tcp_listener(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), sa.port()))?
        }
        other => other?,
    };
    TcpListener::from_std(listener)
}

async fn serve(listener: TcpListener, site: Arc<ArcSwap<Site>>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let site = site.clone();
        tokio::spawn(async move {
            let tls = site.load().tls.clone();
            let _ = timeout(CONNECTION_TIMEOUT, async move {
                match tls {
                    None => serve_connection(stream, site).await,
                    Some(acceptor) => {
                        if let Some(stream) = accept_tls(stream, peer, acceptor).await {
                            serve_connection(stream, site).await;
                        }
                    }
                }
            })
            .await;
        });
    }
}

/// The TLS handshake of a connection to an HTTPS address. A client that speaks plain HTTP gets
/// the 400 Go's net/http sends (so `curl http://` is told what is wrong instead of seeing the
/// connection reset); a failed handshake is logged, as Go's server does.
async fn accept_tls(
    mut stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    match timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        // A TLS connection starts with a handshake record (content type 22); an HTTP request
        // with its method, in capitals.
        Ok(Ok(1)) if first[0].is_ascii_uppercase() => {
            let reply = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
            return None;
        }
        Ok(Ok(1)) => {}
        // Closed or timed out before sending anything: nothing worth a log line.
        _ => return None,
    }
    match timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::warn!("http: TLS handshake error from {peer}: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("http: TLS handshake error from {peer}: timed out");
            None
        }
    }
}

async fn serve_connection<I>(io: I, site: Arc<ArcSwap<Site>>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let response = respond(&site.load().routes, &req);
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn respond(routes: &Routes, req: &hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path();
    let answer = match routes.get(path) {
        Some(_) if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD => {
            HttpResponse::text(405, "method not allowed\n")
        }
        Some(h) => {
            let accept = req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
            h.handle(&HttpRequest { path, accept })
        }
        None => HttpResponse::text(404, "404 page not found\n"),
    };
    hyper::Response::builder()
        .status(answer.status)
        .header(hyper::header::CONTENT_TYPE, answer.content_type)
        .body(Full::new(Bytes::from(answer.body)))
        .expect("valid response parts")
}
