//! Requests: the faults in their way, authentication, routing, and the read verbs (get, list,
//! watch) with the query parameters kube-apiserver gives them.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery, ListMeta,
    ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;
use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::body::{ApiBody, ListBody};
use crate::selector::{FieldSelector, LabelSelector, Selectors};
use crate::server::{Shared, StreamingLists};
use crate::status::ApiError;
use crate::store::{ListQuery, Scope};
use crate::watch::{self, Start, WatchSpec};

/// How long a request for a resourceVersion the store has not reached waits for it, as the
/// watch cache does before answering "Too large resource version".
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// A watch's length when the request gives no `timeoutSeconds` (kube-apiserver's
/// `--min-request-timeout`).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// The Kubernetes release whose API k8s-openapi's `latest` feature describes.
const KUBERNETES_MINOR: &str = "37";

/// Answers one request of the Kubernetes API. `certified`: the connection presented a client
/// certificate that the client CA signed (the TLS handshake verified it).
pub(crate) async fn respond<B>(shared: &Arc<Shared>, req: &Request<B>, certified: bool) -> Response<ApiBody> {
    match try_respond(shared, req, certified).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    }
}

pub(crate) fn error_response(error: &ApiError) -> Response<ApiBody> {
    json_response(StatusCode::from_u16(error.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), error.to_json())
}

pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ApiBody> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-cache, private")
        .body(ApiBody::full(body))
        .expect("static headers are valid")
}

async fn try_respond<B>(
    shared: &Arc<Shared>,
    req: &Request<B>,
    certified: bool,
) -> Result<Response<ApiBody>, ApiError> {
    shared.faults.gate().await?;
    if !certified {
        authenticate(shared, req.headers())?;
    }

    let route = route(req.uri().path())?;
    if req.method() != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let query = req.uri().query().unwrap_or("");
    match route {
        Route::Health => Ok(Response::builder()
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(ApiBody::full("ok"))
            .expect("static headers are valid")),
        Route::Discovery(doc) => {
            no_parameters(query)?;
            Ok(json_response(StatusCode::OK, discovery(shared, doc)))
        }
        Route::Collection { kind, namespace } => {
            accepts_json(req.headers())?;
            let options = ListOptions::parse(query, kind)?;
            let scope = match &namespace {
                Some(ns) => Scope::Namespace(ns),
                None => Scope::All,
            };
            if options.watch {
                start_watch(shared, kind, namespace.clone(), options).await
            } else {
                list(shared, kind, scope, options).await
            }
        }
        Route::Object { kind, key, name } => {
            accepts_json(req.headers())?;
            get(shared, kind, &key, &name, query).await
        }
    }
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if presented == Some(shared.token.read().as_str()) { Ok(()) } else { Err(ApiError::unauthorized()) }
}

/// Whether the client takes plain JSON, the only representation served.
fn accepts_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(accept) = headers.get(ACCEPT) else {
        return Ok(());
    };
    let accept = accept.to_str().unwrap_or("");
    let plain_json = accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let is_json = matches!(media, "application/json" | "application/*" | "*/*");
        // `as=Table` or `as=PartialObjectMetadata` asks for a transformation not served here.
        is_json && parts.all(|p| !p.starts_with("as="))
    });
    if plain_json || accept.is_empty() { Ok(()) } else { Err(ApiError::not_acceptable(accept)) }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Doc {
    Version,
    CoreVersions,
    Groups,
    Group,
    Resources { group: &'static str },
}

#[derive(Debug, PartialEq)]
enum Route {
    Health,
    Discovery(Doc),
    Collection { kind: Kind, namespace: Option<String> },
    Object { kind: Kind, key: String, name: String },
}

const DISCOVERY_GROUP: &str = "discovery.k8s.io";

fn route(path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["healthz" | "livez" | "readyz"] => return Ok(Route::Health),
        ["version"] => return Ok(Route::Discovery(Doc::Version)),
        ["api"] => return Ok(Route::Discovery(Doc::CoreVersions)),
        ["api", "v1"] => return Ok(Route::Discovery(Doc::Resources { group: "" })),
        ["apis"] => return Ok(Route::Discovery(Doc::Groups)),
        ["apis", DISCOVERY_GROUP] => return Ok(Route::Discovery(Doc::Group)),
        ["apis", DISCOVERY_GROUP, "v1"] => {
            return Ok(Route::Discovery(Doc::Resources { group: DISCOVERY_GROUP }));
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_such_path()),
    };
    let kind_at = |plural: &str| Kind::from_resource(group, version, plural).ok_or_else(ApiError::no_such_path);
    let valid = |s: &&str| !s.is_empty();
    match rest {
        [plural] => Ok(Route::Collection { kind: kind_at(plural)?, namespace: None }),
        // A namespace itself is `/api/v1/namespaces/{name}`, which this arm covers too.
        [plural, name] if valid(name) => {
            let kind = kind_at(plural)?;
            if kind.info().namespaced {
                return Err(ApiError::no_such_path());
            }
            Ok(Route::Object { kind, key: (*name).to_owned(), name: (*name).to_owned() })
        }
        ["namespaces", ns, plural] if valid(ns) => {
            let kind = kind_at(plural)?;
            if !kind.info().namespaced {
                return Err(ApiError::no_such_path());
            }
            Ok(Route::Collection { kind, namespace: Some((*ns).to_owned()) })
        }
        ["namespaces", ns, plural, name] if valid(ns) && valid(name) => {
            let kind = kind_at(plural)?;
            if !kind.info().namespaced {
                return Err(ApiError::no_such_path());
            }
            Ok(Route::Object { kind, key: format!("{ns}/{name}"), name: (*name).to_owned() })
        }
        _ => Err(ApiError::no_such_path()),
    }
}

/// The query parameters of a list or watch.
#[derive(Debug, Default)]
struct ListOptions {
    watch: bool,
    selectors: Selectors,
    limit: Option<usize>,
    continue_: Option<String>,
    resource_version: Option<String>,
    resource_version_match: Option<VersionMatch>,
    timeout: Option<Duration>,
    allow_watch_bookmarks: bool,
    send_initial_events: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum VersionMatch {
    NotOlderThan,
    Exact,
}

const LIST_PARAMETERS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeout",
    "timeoutSeconds",
    "watch",
];

impl ListOptions {
    fn parse(query: &str, kind: Kind) -> Result<Self, ApiError> {
        let mut o = ListOptions::default();
        let mut seen = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if seen.contains(&key) {
                continue; // Like kube-apiserver, the first value of a repeated parameter counts.
            }
            seen.push(key.clone());
            let value = value.into_owned();
            match key.as_ref() {
                "watch" => o.watch = parse_bool("watch", &value)?,
                "labelSelector" => o.selectors.labels = LabelSelector::parse(&value).map_err(ApiError::bad_request)?,
                "fieldSelector" => {
                    o.selectors.fields = FieldSelector::parse(&value, kind).map_err(ApiError::bad_request)?
                }
                "limit" => {
                    let n: i64 =
                        value.parse().map_err(|_| ApiError::bad_request(format!("limit: invalid value {value:?}")))?;
                    // Zero or less means no limit.
                    o.limit = usize::try_from(n).ok().filter(|&n| n > 0);
                }
                "continue" => o.continue_ = Some(value).filter(|v| !v.is_empty()),
                "resourceVersion" => o.resource_version = Some(value).filter(|v| !v.is_empty()),
                "resourceVersionMatch" => {
                    o.resource_version_match = match value.as_str() {
                        "" => None,
                        "NotOlderThan" => Some(VersionMatch::NotOlderThan),
                        "Exact" => Some(VersionMatch::Exact),
                        other => {
                            return Err(ApiError::invalid_list_options(
                                "resourceVersionMatch",
                                &format!("Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""),
                            ));
                        }
                    }
                }
                "timeoutSeconds" => {
                    let s: u64 = value
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("timeoutSeconds: invalid value {value:?}")))?;
                    o.timeout = Some(Duration::from_secs(s));
                }
                "timeout" => check_request_timeout(&value)?,
                "allowWatchBookmarks" => o.allow_watch_bookmarks = parse_bool("allowWatchBookmarks", &value)?,
                "sendInitialEvents" => o.send_initial_events = Some(parse_bool("sendInitialEvents", &value)?),
                other => return Err(unsupported_parameter(other, LIST_PARAMETERS)),
            }
        }
        Ok(o)
    }
}

fn unsupported_parameter(name: &str, supported: &[&str]) -> ApiError {
    ApiError::bad_request(format!(
        "query parameter {name:?} is not supported by this test API server (supported here: {})",
        supported.join(", ")
    ))
}

/// Only the `timeout` every client-go request carries.
fn no_parameters(query: &str) -> Result<(), ApiError> {
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "timeout" => check_request_timeout(&value)?,
            other => return Err(unsupported_parameter(other, &["timeout"])),
        }
    }
    Ok(())
}

/// `timeout`, the deadline client-go puts on every request, as a Go duration (`32s`, `1m30s`).
/// Every answer here is immediate or waits at most [`FRESHNESS_WAIT`] (or a test's pause, which the
/// client's own deadline ends), so it needs checking, not enforcing.
fn check_request_timeout(value: &str) -> Result<(), ApiError> {
    let mut rest = value;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let unit_len = rest[digits..].find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len() - digits);
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        if number.parse::<f64>().is_err() || !matches!(unit, "ns" | "us" | "µs" | "ms" | "s" | "m" | "h") {
            return Err(ApiError::bad_request(format!("timeout: invalid duration {value:?}")));
        }
        rest = &rest[digits + unit_len..];
        parts += 1;
    }
    if parts == 0 && value != "0" {
        return Err(ApiError::bad_request(format!("timeout: invalid duration {value:?}")));
    }
    Ok(())
}

/// Booleans as Go's `strconv.ParseBool` reads them.
fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
        _ => Err(ApiError::bad_request(format!("{name}: invalid boolean {value:?}"))),
    }
}

fn parse_rv(value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version {value:?}: not a number")))
}

/// Waits until the store has reached resourceVersion `rv`, or fails as the watch cache does
/// when it has not within [`FRESHNESS_WAIT`].
pub(crate) async fn wait_for_rv(shared: &Shared, rv: u64) -> Result<(), ApiError> {
    let mut current = shared.store.read().subscribe_rv();
    let reached = matches!(tokio::time::timeout(FRESHNESS_WAIT, current.wait_for(|&now| now >= rv)).await, Ok(Ok(_)));
    if reached { Ok(()) } else { Err(ApiError::too_large_resource_version(rv, *current.borrow())) }
}

/// A continue token: the resourceVersion of the list's snapshot (-1 for "whatever is current", as
/// in the token a 410 hands back), the key to start from, and how many keys came before.
#[derive(Debug, Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: i64,
    start: String,
    #[serde(default)]
    off: u64,
}

const TOKEN_VERSION: &str = "meta.k8s.io/v1";

impl ContinueToken {
    fn encode(rv: i64, start: String, off: u64) -> String {
        let token = ContinueToken { v: TOKEN_VERSION.into(), rv, start, off };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("tokens serialize"))
    }

    fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid = |why: String| ApiError::bad_request(format!("continue key is not valid: {why}"));
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|e| invalid(e.to_string()))?;
        let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if token.v != TOKEN_VERSION {
            return Err(invalid(format!("unknown version {:?}", token.v)));
        }
        if token.rv < -1 || token.rv == 0 {
            return Err(invalid(format!("incorrect encoded start resourceVersion {}", token.rv)));
        }
        Ok(token)
    }
}

async fn list(shared: &Shared, kind: Kind, scope: Scope<'_>, o: ListOptions) -> Result<Response<ApiBody>, ApiError> {
    if o.send_initial_events.is_some() {
        return Err(ApiError::invalid_list_options(
            "sendInitialEvents",
            "Forbidden: sendInitialEvents is forbidden for list",
        ));
    }
    let token = o.continue_.as_deref().map(ContinueToken::decode).transpose()?;
    let at = match (&token, o.resource_version.as_deref(), o.resource_version_match) {
        (Some(_), _, Some(_)) => {
            return Err(ApiError::invalid_list_options(
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        (Some(_), Some(rv), None) if rv != "0" => {
            return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
        }
        (Some(token), _, None) => (token.rv > 0).then_some(token.rv as u64),
        (None, None, Some(_)) => {
            return Err(ApiError::invalid_list_options(
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        (None, None, None) | (None, Some("0"), None | Some(VersionMatch::NotOlderThan)) => None,
        (None, Some("0"), Some(VersionMatch::Exact)) => {
            return Err(ApiError::invalid_list_options(
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        (None, Some(rv), version_match) => {
            let rv = parse_rv(rv)?;
            wait_for_rv(shared, rv).await?;
            // Without a match, a resourceVersion on a list means "not older than".
            (version_match == Some(VersionMatch::Exact)).then_some(rv)
        }
    };

    let query = ListQuery {
        scope,
        at,
        start: token.as_ref().map(|t| t.start.as_str()),
        offset: token.as_ref().map_or(0, |t| t.off),
        limit: o.limit,
        selectors: &o.selectors,
    };
    let page = match shared.store.read().list(kind, &query) {
        Ok(page) => page,
        Err(_) => {
            return Err(match &token {
                Some(t) => ApiError::continue_expired(ContinueToken::encode(-1, t.start.clone(), t.off)),
                None => ApiError::list_expired(),
            });
        }
    };

    let info = kind.info();
    let meta = ListMeta {
        continue_: page.next.map(|(start, off)| ContinueToken::encode(page.rv as i64, start, off)),
        remaining_item_count: page.remaining,
        resource_version: Some(page.rv.to_string()),
        ..ListMeta::default()
    };
    let head = format!(
        r#"{{"kind":"{}","apiVersion":"{}","metadata":{},"items":["#,
        info.list_kind,
        info.api_version,
        serde_json::to_string(&meta).expect("ListMeta serializes")
    );
    Ok(Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-cache, private")
        .body(ApiBody::List(ListBody::new(head.into_bytes(), page.items, b"]}".to_vec())))
        .expect("static headers are valid"))
}

async fn start_watch(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: Option<String>,
    o: ListOptions,
) -> Result<Response<ApiBody>, ApiError> {
    if o.limit.is_some() || o.continue_.is_some() {
        return Err(ApiError::bad_request("limit and continue do not apply to a watch"));
    }
    let rv = o.resource_version.as_deref().filter(|rv| *rv != "0").map(parse_rv).transpose()?;
    let mut o = o;
    if o.send_initial_events == Some(true) {
        match shared.faults.streaming() {
            StreamingLists::Serve => {}
            StreamingLists::Reject => {
                // What a server without the WatchList feature says: it knows resourceVersionMatch
                // only for lists.
                return Err(ApiError::invalid_list_options(
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden for watch",
                ));
            }
            StreamingLists::Ignore => {
                o.send_initial_events = None;
                o.resource_version_match = None;
            }
        }
    }
    let start = match o.send_initial_events {
        Some(true) => {
            if !o.allow_watch_bookmarks {
                return Err(ApiError::invalid_list_options(
                    "allowWatchBookmarks",
                    "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
                ));
            }
            if o.resource_version_match != Some(VersionMatch::NotOlderThan) {
                return Err(ApiError::invalid_list_options(
                    "resourceVersionMatch",
                    "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            Start::InitialEvents { not_older_than: rv, end_bookmark: true }
        }
        Some(false) if o.resource_version_match.is_some_and(|m| m != VersionMatch::NotOlderThan) => {
            return Err(ApiError::invalid_list_options(
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        Some(false) => match rv {
            Some(rv) => Start::After(rv),
            None => Start::Now,
        },
        None => {
            if o.resource_version_match.is_some() {
                return Err(ApiError::invalid_list_options(
                    "resourceVersionMatch",
                    "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            match rv {
                Some(rv) => Start::After(rv),
                // Unset or "0": the current state as ADDED events, then changes.
                None => Start::InitialEvents { not_older_than: None, end_bookmark: false },
            }
        }
    };
    let spec = WatchSpec {
        kind,
        namespace,
        selectors: o.selectors,
        start,
        bookmarks: o.allow_watch_bookmarks,
        timeout: o.timeout.unwrap_or(DEFAULT_WATCH_TIMEOUT),
    };
    Ok(Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, "no-cache, private")
        .body(ApiBody::Stream(watch::spawn(shared.clone(), spec)))
        .expect("static headers are valid"))
}

async fn get(shared: &Shared, kind: Kind, key: &str, name: &str, query: &str) -> Result<Response<ApiBody>, ApiError> {
    for (param, value) in form_urlencoded::parse(query.as_bytes()) {
        match param.as_ref() {
            // A get at a resourceVersion wants a state not older than it; the store is always current.
            "resourceVersion" if !value.is_empty() && value != "0" => wait_for_rv(shared, parse_rv(&value)?).await?,
            "resourceVersion" => {}
            "timeout" => check_request_timeout(&value)?,
            other => {
                return Err(unsupported_parameter(other, &["resourceVersion", "timeout"]));
            }
        }
    }
    let object = shared.store.read().get(kind, key).ok_or_else(|| ApiError::not_found(kind, name))?;
    Ok(json_response(StatusCode::OK, Bytes::from(object.json.to_vec())))
}

fn discovery(shared: &Shared, doc: Doc) -> Vec<u8> {
    let group_version =
        GroupVersionForDiscovery { group_version: format!("{DISCOVERY_GROUP}/v1"), version: "v1".into() };
    let group = APIGroup {
        name: DISCOVERY_GROUP.into(),
        preferred_version: Some(group_version.clone()),
        server_address_by_client_cidrs: None,
        versions: vec![group_version],
    };
    fn to_json(document: &impl Serialize) -> Vec<u8> {
        serde_json::to_vec(document).expect("discovery documents serialize")
    }
    match doc {
        Doc::Version => to_json(&Info {
            major: "1".into(),
            minor: KUBERNETES_MINOR.into(),
            git_version: format!("v1.{KUBERNETES_MINOR}.0+clusterdns-test"),
            git_tree_state: "clean".into(),
            compiler: "rustc".into(),
            platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            ..Info::default()
        }),
        Doc::CoreVersions => to_json(&APIVersions {
            versions: vec!["v1".into()],
            server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
                client_cidr: "0.0.0.0/0".into(),
                server_address: shared.address.to_string(),
            }],
        }),
        Doc::Groups => to_json(&APIGroupList { groups: vec![group] }),
        Doc::Group => to_json(&group),
        Doc::Resources { group } => {
            let resources = Kind::ALL
                .into_iter()
                .map(Kind::info)
                .filter(|info| info.group == group)
                .map(|info| APIResource {
                    name: info.plural.into(),
                    singular_name: info.singular.into(),
                    namespaced: info.namespaced,
                    kind: info.kind.into(),
                    verbs: vec!["get".into(), "list".into(), "watch".into()],
                    short_names: Some(info.short_names.iter().map(|s| s.to_string()).collect())
                        .filter(|v: &Vec<_>| !v.is_empty()),
                    categories: matches!(info.kind, "Pod" | "Service").then(|| vec!["all".into()]),
                    ..APIResource::default()
                })
                .collect();
            let group_version = if group.is_empty() { "v1".to_owned() } else { format!("{group}/v1") };
            to_json(&APIResourceList { group_version, resources })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let collection = |kind, ns: Option<&str>| Ok(Route::Collection { kind, namespace: ns.map(String::from) });
        assert_eq!(route("/api/v1/services"), collection(Kind::Service, None));
        assert_eq!(route("/api/v1/namespaces/prod/pods"), collection(Kind::Pod, Some("prod")));
        assert_eq!(route("/apis/discovery.k8s.io/v1/endpointslices"), collection(Kind::EndpointSlice, None));
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"),
            collection(Kind::EndpointSlice, Some("a"))
        );
        assert_eq!(route("/api/v1/namespaces"), collection(Kind::Namespace, None));
        assert_eq!(
            route("/api/v1/namespaces/prod"),
            Ok(Route::Object { kind: Kind::Namespace, key: "prod".into(), name: "prod".into() })
        );
        assert_eq!(
            route("/api/v1/namespaces/prod/services/web"),
            Ok(Route::Object { kind: Kind::Service, key: "prod/web".into(), name: "web".into() })
        );
        assert_eq!(route("/apis"), Ok(Route::Discovery(Doc::Groups)));
        for missing in [
            "/",
            "/api/v2/pods",
            "/api/v1/configmaps",
            "/api/v1/services/web",
            "/api/v1/namespaces/a/namespaces",
            "/api/v1/namespaces/a/pods/p/status",
            "/apis/discovery.k8s.io/v1beta1/endpointslices",
            "/api/v1/endpointslices",
        ] {
            assert_eq!(route(missing).unwrap_err().code(), 404, "{missing}");
        }
    }

    #[test]
    fn options() {
        let o =
            ListOptions::parse("limit=500&labelSelector=app%3Dweb&watch=true&resourceVersion=7", Kind::Pod).unwrap();
        assert!(o.watch);
        assert_eq!(o.limit, Some(500));
        assert_eq!(o.resource_version.as_deref(), Some("7"));
        assert!(!o.selectors.is_empty());
        assert_eq!(ListOptions::parse("limit=0", Kind::Pod).unwrap().limit, None);
        let err = ListOptions::parse("pretty=true", Kind::Pod).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.0.message.unwrap().contains("\"pretty\""));
        assert_eq!(ListOptions::parse("fieldSelector=spec.foo%3Dx", Kind::Pod).unwrap_err().code(), 400);
        assert_eq!(ListOptions::parse("resourceVersionMatch=Newest", Kind::Pod).unwrap_err().code(), 422);
        assert_eq!(ListOptions::parse("watch=maybe", Kind::Pod).unwrap_err().code(), 400);
        assert!(ListOptions::parse("timeout=32s", Kind::Pod).is_ok());
        assert!(no_parameters("timeout=1m30.5s").is_ok());
        assert_eq!(no_parameters("timeout=soon").unwrap_err().code(), 400);
        assert_eq!(no_parameters("timeout=5").unwrap_err().code(), 400);
        assert_eq!(no_parameters("pretty=1").unwrap_err().code(), 400);
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let text = ContinueToken::encode(42, "ns/name\0".into(), 500);
        let token = ContinueToken::decode(&text).unwrap();
        assert_eq!((token.rv, token.start.as_str(), token.off), (42, "ns/name\0", 500));
        assert_eq!(ContinueToken::decode("not base64!").unwrap_err().code(), 400);
        assert_eq!(ContinueToken::decode(&URL_SAFE_NO_PAD.encode(b"{}")).unwrap_err().code(), 400);
    }

    #[test]
    fn accept_negotiation() {
        let mut headers = HeaderMap::new();
        assert!(accepts_json(&headers).is_ok());
        headers.insert(ACCEPT, "application/json;as=Table;v=v1;g=meta.k8s.io,application/json".parse().unwrap());
        assert!(accepts_json(&headers).is_ok());
        headers.insert(ACCEPT, "application/json;as=Table;v=v1;g=meta.k8s.io".parse().unwrap());
        assert_eq!(accepts_json(&headers).unwrap_err().code(), 406);
        headers.insert(ACCEPT, "application/vnd.kubernetes.protobuf".parse().unwrap());
        assert_eq!(accepts_json(&headers).unwrap_err().code(), 406);
        headers.insert(ACCEPT, "*/*".parse().unwrap());
        assert!(accepts_json(&headers).is_ok());
    }
}
