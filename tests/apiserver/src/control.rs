//! The control endpoint: [`TestApiServer`](crate::TestApiServer)'s faults and object changes for
//! another process (a benchmark, an operator's experiment), over plain HTTP on loopback.
//!
//! | request                                   | what it does                                              |
//! |-------------------------------------------|-----------------------------------------------------------|
//! | `POST /compact`                           | forget the watch history: older resourceVersions get 410  |
//! | `POST /drop-watches`                      | end every open watch cleanly                              |
//! | `POST /break-watches`                     | cut every open watch connection mid-stream                |
//! | `POST /pause?mode=hold\|unavailable`      | hold new requests, or answer them 503 (default `hold`)    |
//! | `POST /resume`                            | end a pause                                               |
//! | `POST /latency?ms=N`                      | delay every request by N ms (0 to stop)                   |
//! | `POST /streaming-lists?mode=serve\|reject\|ignore` | how `sendInitialEvents` is treated               |
//! | `POST /apply` with objects as the body    | create or replace them (`{"Kind": [...]}` or a `List`)   |
//! | `POST /delete` with objects as the body   | delete them (only kind, namespace and name are read)      |
//! | `GET /status`                             | resourceVersion, object counts, open watches             |
//!
//! Every answer is a line of JSON; an error is a 4xx with `{"error": "..."}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::load::decode_bytes;
use crate::server::{PauseMode, Shared, StreamingLists};
use crate::{Kind, ObjectRef};

/// Serves the control endpoint on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = conn.await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match route(shared, req).await {
        Ok(body) => reply(StatusCode::OK, body),
        Err((status, message)) => reply(status, serde_json::json!({ "error": message }).to_string()),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body + "\n")))
        .expect("static headers are valid")
}

type Failure = (StatusCode, String);

async fn route(shared: &Shared, req: Request<Incoming>) -> Result<String, Failure> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    if method == Method::GET && path == "/status" {
        return Ok(status(shared));
    }
    if method != Method::POST {
        return Err((StatusCode::METHOD_NOT_ALLOWED, format!("{method} {path}: use POST (or GET /status)")));
    }
    match path.as_str() {
        "/compact" => shared.store.write().compact(),
        "/drop-watches" => shared.faults.cut(false),
        "/break-watches" => shared.faults.cut(true),
        "/pause" => {
            let mode = match param("mode").unwrap_or("hold") {
                "hold" => PauseMode::Hold,
                "unavailable" => PauseMode::Unavailable,
                other => return Err(bad(format!("mode must be hold or unavailable, not '{other}'"))),
            };
            shared.faults.set_pause(Some(mode));
        }
        "/resume" => shared.faults.set_pause(None),
        "/latency" => {
            let ms: u64 = param("ms")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("latency needs ms=N (milliseconds)".into()))?;
            shared.faults.set_latency(Duration::from_millis(ms));
        }
        "/streaming-lists" => {
            let mode = match param("mode").unwrap_or("") {
                "serve" => StreamingLists::Serve,
                "reject" => StreamingLists::Reject,
                "ignore" => StreamingLists::Ignore,
                other => return Err(bad(format!("mode must be serve, reject or ignore, not '{other}'"))),
            };
            shared.faults.set_streaming(mode);
        }
        "/apply" | "/delete" => {
            let body = req.into_body().collect().await.map_err(|e| bad(format!("reading the body: {e}")))?.to_bytes();
            let objects = decode_bytes(&body).map_err(|e| bad(e.to_string()))?;
            let n = objects.len();
            if path == "/apply" {
                let rv = shared.store.write().apply(objects);
                return Ok(serde_json::json!({ "applied": n, "resourceVersion": rv }).to_string());
            }
            let refs: Vec<(Kind, String)> = objects
                .iter()
                .map(|(_, o)| {
                    let m = o.metadata();
                    let r = ObjectRef::new(o.kind(), m.namespace.as_deref(), m.name.as_deref().unwrap_or(""));
                    (r.kind, r.key())
                })
                .collect();
            let (rv, deleted) = shared.store.write().delete(&refs);
            return Ok(serde_json::json!({ "deleted": deleted, "resourceVersion": rv }).to_string());
        }
        other => return Err((StatusCode::NOT_FOUND, format!("no control {other}; see the README"))),
    }
    Ok(status(shared))
}

fn status(shared: &Shared) -> String {
    let store = shared.store.read();
    let objects: serde_json::Map<String, serde_json::Value> =
        Kind::ALL.into_iter().map(|k| (k.info().kind.to_string(), store.len(k).into())).collect();
    serde_json::json!({
        "resourceVersion": store.rv(),
        "objects": objects,
        "openWatches": shared.faults.open_watches(),
    })
    .to_string()
}
