//! kube-rs's watcher and reflector against the test API server over HTTPS: the client the DNS
//! server uses, doing what it does.

mod common;

use std::time::{Duration, Instant};

use clusterdns_test_apiserver::{Kind, PauseMode, RequestRecord, StreamingLists, TestApiServer};
use common::*;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};

type Events<K> = std::pin::Pin<Box<dyn Stream<Item = Result<Event<K>, watcher::Error>> + Send>>;

async fn start(api: &TestApiServer) -> (Api<Service>, reflector::Store<Service>, Events<Service>) {
    start_with(api, watcher::Config::default()).await
}

async fn start_with(
    api: &TestApiServer,
    config: watcher::Config,
) -> (Api<Service>, reflector::Store<Service>, Events<Service>) {
    let services: Api<Service> = Api::all(api.kube_client().await.expect("client"));
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(services.clone(), config)).boxed();
    (services, reader, stream)
}

/// Polls `events` (the watcher only works while polled) until `condition` completes.
async fn drive_until<S: Stream + Unpin>(events: &mut S, condition: impl std::future::Future<Output = bool>) -> bool {
    tokio::pin!(condition);
    loop {
        tokio::select! {
            done = &mut condition => return done,
            item = events.next() => if item.is_none() { return false },
        }
    }
}

fn is_init_done<K>(e: &Result<Event<K>, watcher::Error>) -> bool {
    matches!(e, Ok(Event::InitDone))
}

fn applied<'a>(name: &'a str) -> impl Fn(&Result<Event<Service>, watcher::Error>) -> bool + 'a {
    move |e| matches!(e, Ok(Event::Apply(s)) if s.metadata.name.as_deref() == Some(name))
}

fn service_lists(log: &[RequestRecord]) -> usize {
    log.iter().filter(|r| r.path == "/api/v1/services" && !r.query.contains("watch=true")).count()
}

fn service_watches(log: &[RequestRecord]) -> Vec<&RequestRecord> {
    log.iter().filter(|r| r.path == "/api/v1/services" && r.query.contains("watch=true")).collect()
}

fn names(objects: &[std::sync::Arc<Service>]) -> Vec<String> {
    let mut names: Vec<_> = objects.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn watcher_lists_in_pages_then_follows_changes() {
    let api = TestApiServer::builder().token("secret").start().await.unwrap();
    api.apply_batch(services(1200)).unwrap();
    let (_, reader, mut events) = start(&api).await;

    until("InitDone", &mut events, is_init_done).await;
    assert_eq!(reader.state().len(), 1200);
    let lists: Vec<_> =
        api.requests().into_iter().filter(|r| r.path == "/api/v1/services" && !r.query.contains("watch")).collect();
    assert_eq!(lists.len(), 3, "1200 services in pages of 500: {lists:?}");
    assert!(lists.iter().all(|r| r.query.contains("limit=500")));
    assert!(
        !lists[0].query.contains("continue=")
            && lists[1].query.contains("continue=")
            && lists[2].query.contains("continue=")
    );

    api.apply(service("ns-0", "new", "10.0.0.1")).unwrap();
    until("the new service", &mut events, applied("new")).await;

    api.apply(service("ns-1", "svc-00001", "10.1.1.1")).unwrap();
    until("the changed service", &mut events, applied("svc-00001")).await;
    let changed = reader.get(&ObjectRef::new("svc-00001").within("ns-1")).unwrap();
    assert_eq!(changed.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("10.1.1.1"));

    assert!(api.delete(Kind::Service, "ns-2", "svc-00002").is_some());
    until(
        "the deletion",
        &mut events,
        |e| matches!(e, Ok(Event::Delete(s)) if s.metadata.name.as_deref() == Some("svc-00002")),
    )
    .await;
    assert!(reader.get(&ObjectRef::new("svc-00002").within("ns-2")).is_none());
    assert_eq!(reader.state().len(), 1200);
    assert_eq!(service_lists(&api.requests()), 3, "no relist while watching");
}

#[tokio::test]
async fn paginated_list_is_one_snapshot_until_history_is_compacted() {
    let api = TestApiServer::builder().start().await.unwrap();
    api.apply_batch(services(10)).unwrap();
    let services: Api<Service> = Api::all(api.kube_client().await.unwrap());

    let first = services.list(&ListParams::default().limit(4)).await.unwrap();
    let list_rv: u64 = first.metadata.resource_version.as_deref().unwrap().parse().unwrap();
    assert_eq!(list_rv, api.resource_version());
    assert_eq!(first.metadata.remaining_item_count, Some(6));
    assert!(
        first
            .items
            .iter()
            .all(|s| { s.metadata.resource_version.as_deref().unwrap().parse::<u64>().unwrap() <= list_rv })
    );
    let mut seen: Vec<_> = first.items.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
    assert_eq!(seen, ["svc-00000", "svc-00005", "svc-00001", "svc-00006"], "ordered by namespace, then name");

    // Changes between pages do not show: the rest of the list is still at the first page's version.
    api.delete(Kind::Service, "ns-4", "svc-00004");
    api.apply(service("ns-3", "svc-00003", "10.9.9.9")).unwrap();
    api.apply(service("ns-2", "late", "10.9.9.8")).unwrap();
    let mut token = first.metadata.continue_.clone();
    let mut pages = 1;
    while let Some(t) = token {
        let page = services.list(&ListParams::default().limit(4).continue_token(&t)).await.unwrap();
        assert_eq!(page.metadata.resource_version.as_deref(), Some(list_rv.to_string().as_str()));
        seen.extend(page.items.iter().map(|s| s.metadata.name.clone().unwrap()));
        let three = page.items.iter().find(|s| s.metadata.name.as_deref() == Some("svc-00003"));
        assert!(three.is_none_or(|s| s.spec.as_ref().unwrap().cluster_ip.as_deref() != Some("10.9.9.9")));
        token = page.metadata.continue_.clone();
        pages += 1;
        assert!(pages <= 3);
    }
    assert_eq!(pages, 3);
    seen.sort();
    assert_eq!(seen, (0..10).map(|i| format!("svc-{i:05}")).collect::<Vec<_>>());

    // Once the history is compacted, the token expires as etcd's do: 410 Expired, with a token
    // that continues against the current state.
    let first = services.list(&ListParams::default().limit(4)).await.unwrap();
    api.apply(service("ns-0", "after", "10.9.9.7")).unwrap();
    api.compact();
    let err = services
        .list(&ListParams::default().limit(4).continue_token(first.metadata.continue_.as_deref().unwrap()))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else { panic!("not an API error: {err}") };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    let inconsistent = status.metadata.and_then(|m| m.continue_).expect("a 410 for a continue token carries a new one");
    let rest = services.list(&ListParams::default().continue_token(&inconsistent)).await.unwrap();
    assert_eq!(rest.metadata.resource_version, Some(api.resource_version().to_string()));
    // 11 services now; the 4 of the first page, and "after" (in ns-0) sort before where it ended.
    assert_eq!(rest.items.len(), 11 - 4 - 1, "the remainder at the current state");
    assert!(rest.items.iter().all(|s| s.metadata.name.as_deref() != Some("after")));
}

#[tokio::test]
async fn watcher_resumes_after_dropped_and_broken_watches_without_relisting() {
    let api = TestApiServer::builder().token("t").start().await.unwrap();
    api.apply_batch(services(20)).unwrap();
    let (_, reader, mut events) = start(&api).await;
    until("InitDone", &mut events, is_init_done).await;

    for (round, cut) in
        [("dropped", TestApiServer::drop_watches as fn(&TestApiServer)), ("broken", TestApiServer::break_watches)]
    {
        let watches_before = service_watches(&api.requests()).len();
        cut(&api);
        // The watcher must notice and open a new watch, without a new list.
        let resumed = api.wait_for_requests(|log| service_watches(log).len() > watches_before, WAIT);
        assert!(drive_until(&mut events, resumed).await, "no new watch after the {round} watch");
        let name = format!("after-{round}");
        api.apply(service("ns-0", &name, "10.0.0.2")).unwrap();
        until(&name, &mut events, applied(&name)).await;
    }
    let log = api.requests();
    assert_eq!(service_lists(&log), 1, "resuming needs no relist: {log:?}");
    let resumed_from = service_watches(&log)[1].query.clone();
    assert!(
        !resumed_from.contains("resourceVersion=0&") && resumed_from.contains("resourceVersion="),
        "{resumed_from}"
    );
    assert_eq!(reader.state().len(), 22);
}

#[tokio::test]
async fn watcher_relists_after_410_gone() {
    let api = TestApiServer::builder().token("t").start().await.unwrap();
    api.apply_batch(services(20)).unwrap();
    let (_, reader, mut events) = start(&api).await;
    until("InitDone", &mut events, is_init_done).await;

    // While the watcher is cut off, things change and the history it would resume from goes.
    // (This watcher only reconnects when polled; a server's, always polled, would be held here.)
    api.pause(PauseMode::Hold);
    api.drop_watches();
    api.delete(Kind::Service, "ns-0", "svc-00000");
    api.apply(service("ns-0", "while-away", "10.0.0.3")).unwrap();
    api.compact();
    api.resume();

    let seen = until("the relist's InitDone", &mut events, is_init_done).await;
    let gone = seen.iter().find_map(|e| match e {
        Err(watcher::Error::WatchError(status)) => Some(status),
        _ => None,
    });
    let gone = gone.expect("the resumed watch gets an ERROR event");
    assert_eq!((gone.code, gone.reason.as_str()), (410, "Expired"));
    assert!(gone.message.starts_with("too old resource version"), "{}", gone.message);
    assert!(seen.iter().any(|e| matches!(e, Ok(Event::Init))));
    assert_eq!(service_lists(&api.requests()), 2, "one list, then one relist");
    let names = names(&reader.state());
    assert!(names.contains(&"while-away".to_string()) && !names.contains(&"svc-00000".to_string()));
    assert_eq!(names.len(), 20);
}

#[tokio::test]
async fn a_watcher_the_history_outruns_is_closed_and_relists() {
    let api = TestApiServer::builder().history_limit(10).start().await.unwrap();
    api.apply_batch(services(5)).unwrap();
    let (_, reader, mut events) = start(&api).await;
    until("InitDone", &mut events, is_init_done).await;

    // One write of 50 changes: the open watch finds the 10-event history already past it.
    api.apply_batch((0..50).map(|i| service("ns-9", &format!("burst-{i:02}"), "10.0.9.1"))).unwrap();
    until("the relist's InitDone", &mut events, is_init_done).await;
    assert_eq!(reader.state().len(), 55);
    assert_eq!(service_lists(&api.requests()), 2);
}

#[tokio::test]
async fn bookmarks_arrive_and_move_the_watcher_forward() {
    let api = TestApiServer::builder().bookmark_interval(Duration::from_millis(200)).start().await.unwrap();
    api.apply_batch(services(3)).unwrap();
    let client = api.kube_client().await.unwrap();
    let services: Api<Service> = Api::all(client.clone());

    // A raw watch: the bookmark carries only the current resourceVersion.
    let from = api.resource_version();
    let mut stream = services.watch(&WatchParams::default(), &from.to_string()).await.unwrap().boxed();
    let pods: Api<Pod> = Api::namespaced(client, "ns-0");
    api.apply(pod("ns-0", "p", "10.128.0.9", "node-0")).unwrap();
    let now = api.resource_version();
    let seen = until("a bookmark", &mut stream, |e| matches!(e, Ok(WatchEvent::Bookmark(_)))).await;
    assert_eq!(seen.len(), 1, "a pod change is not a service event");
    let Some(Ok(WatchEvent::Bookmark(bookmark))) = seen.last() else { unreachable!() };
    assert_eq!(bookmark.metadata.resource_version, now.to_string());
    assert_eq!((bookmark.types.kind.as_str(), bookmark.types.api_version.as_str()), ("Service", "v1"));
    assert!(bookmark.metadata.annotations.is_empty());
    assert_eq!(pods.list(&ListParams::default()).await.unwrap().items.len(), 1);

    // kube's watcher takes the bookmark's resourceVersion to resume from.
    let (_, _, mut events) = start(&api).await;
    until("InitDone", &mut events, is_init_done).await;
    assert!(drive_until(&mut events, api.wait_for_open_watches(|n| *n == 2, WAIT)).await, "the watcher's watch opens");
    api.apply(pod("ns-0", "q", "10.128.0.10", "node-0")).unwrap();
    let after_pod = api.resource_version();
    let sent = api.bookmarks_sent();
    assert!(
        drive_until(&mut events, api.wait_for_bookmarks(|n| *n >= sent + 2, WAIT)).await,
        "bookmarks on both watches"
    );
    let watches_before = service_watches(&api.requests()).len();
    api.drop_watches();
    let resumed = api.wait_for_requests(|log| service_watches(log).len() > watches_before, WAIT);
    assert!(drive_until(&mut events, resumed).await);
    let log = api.requests();
    let last = &service_watches(&log).last().unwrap().query;
    assert!(last.contains(&format!("resourceVersion={after_pod}")), "resumed from the bookmark: {last}");
}

#[tokio::test]
async fn streaming_list_watcher_needs_no_list() {
    let api = TestApiServer::builder().token("t").start().await.unwrap();
    api.apply_batch(services(700)).unwrap();
    let (_, reader, mut events) = start_with(&api, watcher::Config::default().streaming_lists()).await;
    until("InitDone", &mut events, is_init_done).await;
    assert_eq!(reader.state().len(), 700);
    let log = api.requests();
    assert_eq!(service_lists(&log), 0);
    let first = &service_watches(&log)[0].query;
    assert!(first.contains("sendInitialEvents=true") && first.contains("resourceVersionMatch=NotOlderThan"), "{first}");

    api.apply(service("ns-0", "streamed", "10.0.0.4")).unwrap();
    until("a change after the initial events", &mut events, applied("streamed")).await;
}

/// A server without the WatchList feature: the streaming list is refused with 422, as a
/// kube-apiserver that knows `resourceVersionMatch` only for lists refuses it, and kube's
/// watcher, which does not fall back by itself, gets the error on every retry.
#[tokio::test]
async fn streaming_lists_can_be_rejected_as_old_servers_do() {
    let api = TestApiServer::builder().token("t").start().await.unwrap();
    api.set_streaming_lists(StreamingLists::Reject);
    api.apply_batch(services(3)).unwrap();
    let (_, _, mut events) = start_with(&api, watcher::Config::default().streaming_lists()).await;
    for _ in 0..2 {
        let e = within("an error", events.next()).await.unwrap();
        match e {
            Err(watcher::Error::WatchStartFailed(kube::Error::Api(s))) => {
                assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
                assert!(s.message.contains("resourceVersionMatch is forbidden for watch"), "{s:?}");
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }
    // Paginated lists still work.
    let (_, reader, mut events) = start(&api).await;
    until("InitDone", &mut events, is_init_done).await;
    assert_eq!(reader.state().len(), 3);
}

/// An API proxy that drops the parameters it does not know: the watch sends the state as ADDED
/// events and then follows changes, but never the bookmark that ends the initial events, so
/// kube's watcher never reaches InitDone.
#[tokio::test]
async fn streaming_lists_can_be_ignored_as_proxies_do() {
    let api = TestApiServer::builder().token("t").bookmark_interval(Duration::from_millis(100)).start().await.unwrap();
    api.set_streaming_lists(StreamingLists::Ignore);
    api.apply_batch(services(3)).unwrap();
    let (_, reader, mut events) = start_with(&api, watcher::Config::default().streaming_lists()).await;
    let seen = until("three objects", &mut events, {
        let mut n = 0;
        move |e| {
            n += matches!(e, Ok(Event::InitApply(_))) as usize;
            n == 3
        }
    })
    .await;
    assert!(!seen.iter().any(is_init_done));
    // Bookmarks come (not the one that ends the initial events), changes come, InitDone never.
    assert!(api.wait_for_bookmarks(|n| *n >= 2, WAIT).await);
    api.apply(service("ns-0", "later", "10.0.0.9")).unwrap();
    let more = until(
        "the change",
        &mut events,
        |e| matches!(e, Ok(Event::InitApply(s)) if s.metadata.name.as_deref() == Some("later")),
    )
    .await;
    assert!(!more.iter().any(is_init_done));
    assert_eq!(reader.state().len(), 0, "a reflector waits for InitDone");
    // Back to serving: a new watcher completes.
    api.set_streaming_lists(StreamingLists::Serve);
    let (_, reader, mut events) = start_with(&api, watcher::Config::default().streaming_lists()).await;
    until("InitDone", &mut events, is_init_done).await;
    assert_eq!(reader.state().len(), 4);
}

#[tokio::test]
async fn wrong_or_missing_token_gets_401() {
    let api = TestApiServer::builder().token("right").start().await.unwrap();
    assert!(Api::<Service>::all(api.kube_client().await.unwrap()).list(&ListParams::default()).await.is_ok());

    for replacement in ["\"wrong\"", "\"\""] {
        let text = std::fs::read_to_string(api.kubeconfig_path()).unwrap().replace("\"right\"", replacement);
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        let services: Api<Service> = Api::all(kube::Client::try_from(config).unwrap());
        match services.list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"))
            }
            other => panic!("token {replacement}: expected 401, got {other:?}"),
        }
        let mut events = watcher::watcher(services, watcher::Config::default()).boxed();
        let seen = until("the watcher's first error", &mut events, |e| e.is_err()).await;
        let error = seen.last().unwrap();
        assert!(
            matches!(error, Err(watcher::Error::InitialListFailed(kube::Error::Api(s))) if s.code == 401),
            "{error:?}"
        );
    }
    // A rotation revokes the old token.
    let services = Api::<Service>::all(api.kube_client().await.unwrap());
    api.set_token("rotated");
    assert_eq!(api.token(), "rotated");
    assert!(matches!(services.list(&ListParams::default()).await, Err(kube::Error::Api(s)) if s.code == 401));
}

#[tokio::test]
async fn selectors_filter_lists_and_watches() {
    let api = TestApiServer::builder().start().await.unwrap();
    api.apply_batch(services(10)).unwrap();
    let (services, _, _) = start(&api).await;

    let by_label = services.list(&ListParams::default().labels("app in (svc-00001,svc-00002)")).await.unwrap();
    assert_eq!(by_label.items.len(), 2);
    let by_field = services
        .list(&ListParams::default().fields("metadata.namespace=ns-1,spec.clusterIP!=10.96.0.1"))
        .await
        .unwrap();
    assert_eq!(by_field.items.iter().map(|s| s.metadata.name.clone().unwrap()).collect::<Vec<_>>(), ["svc-00006"]);
    let bad = services.list(&ListParams::default().fields("spec.nodeName=x")).await.unwrap_err();
    assert!(
        matches!(&bad, kube::Error::Api(s) if s.code == 400 && s.message.contains("field label not supported")),
        "{bad}"
    );

    // A watch with a selector: entering it is ADDED, leaving it DELETED.
    let config = watcher::Config::default().labels("tier=front");
    let mut events = watcher::watcher(services.clone(), config).boxed();
    let initial = until("InitDone", &mut events, is_init_done).await;
    assert!(!initial.iter().any(|e| matches!(e, Ok(Event::InitApply(_)))));
    let mut front = service("ns-0", "svc-00000", "10.96.0.0");
    front.metadata.labels = labels(&[("tier", "front")]);
    api.apply(front).unwrap();
    until("entering the selection", &mut events, applied("svc-00000")).await;
    api.apply(service("ns-0", "svc-00000", "10.96.0.0")).unwrap();
    until(
        "leaving the selection",
        &mut events,
        |e| matches!(e, Ok(Event::Delete(s)) if s.metadata.name.as_deref() == Some("svc-00000")),
    )
    .await;
}

#[tokio::test]
async fn errors_are_the_status_objects_kube_apiserver_sends() {
    let api = TestApiServer::builder().start().await.unwrap();
    api.apply_batch(services(3)).unwrap();
    let client = api.kube_client().await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "ns-0");

    let missing = services.get("nope").await.unwrap_err();
    assert!(
        matches!(&missing, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound" && s.message == "services \"nope\" not found"),
        "{missing}"
    );
    assert_eq!(services.get("svc-00000").await.unwrap().metadata.name.as_deref(), Some("svc-00000"));

    let raw = |uri: &str| http::Request::get(uri).body(Vec::new()).unwrap();
    let unsupported = client.request_text(raw("/api/v1/services?pretty=true")).await.unwrap_err();
    assert!(
        matches!(&unsupported, kube::Error::Api(s) if s.code == 400 && s.message.contains("\"pretty\"")),
        "{unsupported}"
    );
    let no_path = client.request_text(raw("/api/v1/configmaps")).await.unwrap_err();
    assert!(matches!(&no_path, kube::Error::Api(s) if s.code == 404), "{no_path}");
    let table_only = http::Request::get("/api/v1/services")
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let not_acceptable = client.request_text(table_only).await.unwrap_err();
    assert!(matches!(&not_acceptable, kube::Error::Api(s) if s.code == 406), "{not_acceptable}");
    let post = http::Request::post("/api/v1/namespaces/ns-0/services").body(b"{}".to_vec()).unwrap();
    let not_allowed = client.request_text(post).await.unwrap_err();
    assert!(matches!(&not_allowed, kube::Error::Api(s) if s.code == 405), "{not_allowed}");

    // A watch from before the history: HTTP 200, then an ERROR event carrying a 410 Status.
    let old = api.resource_version();
    api.apply(service("ns-0", "newer", "10.0.0.5")).unwrap();
    api.compact();
    let mut stream = services.watch(&WatchParams::default(), &old.to_string()).await.unwrap().boxed();
    match within("the ERROR event", stream.next()).await {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert_eq!(status.message, format!("too old resource version: {old} ({})", api.resource_version()));
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    assert!(within("the end of the failed watch", stream.next()).await.is_none());
    // From the current resourceVersion it is fine.
    let now = api.resource_version().to_string();
    assert!(services.watch(&WatchParams::default().timeout(1), &now).await.is_ok());
}

#[tokio::test]
async fn watch_timeout_ends_the_stream_cleanly() {
    let api = TestApiServer::builder().start().await.unwrap();
    let services: Api<Service> = Api::all(api.kube_client().await.unwrap());
    let started = Instant::now();
    let mut stream =
        services.watch(&WatchParams::default().timeout(1), &api.resource_version().to_string()).await.unwrap().boxed();
    assert!(within("the end of the stream", stream.next()).await.is_none(), "ends without an event or error");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn pause_and_latency() {
    let api = TestApiServer::builder().start().await.unwrap();
    let services: Api<Service> = Api::all(api.kube_client().await.unwrap());

    api.pause(PauseMode::Unavailable);
    // kube retries 503s (15 times, backing off exponentially); see the bare answer.
    let mut no_retry = api.kube_config().await.unwrap();
    no_retry.default_retry = false;
    let once: Api<Service> = Api::all(kube::Client::try_from(no_retry).unwrap());
    let err = once.list(&ListParams::default()).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 503 && s.reason == "ServiceUnavailable"), "{err}");

    api.pause(PauseMode::Hold);
    let held = tokio::spawn({
        let services = services.clone();
        async move { services.list(&ListParams::default()).await.map(|l| l.items.len()) }
    });
    // Nothing to await for "not answered": give it time to be, and check it was not.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a held request is not answered");
    api.apply(service("ns-0", "during-pause", "10.0.0.6")).unwrap();
    api.resume();
    assert_eq!(within("the held request", held).await.unwrap().unwrap(), 1);

    api.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    services.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    api.set_latency(Duration::ZERO);
    let started = Instant::now();
    services.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn gen_cluster_file_serves_every_kind_to_watchers() {
    let api = TestApiServer::builder().objects_file(SMALL_CLUSTER).token("t").start().await.unwrap();
    assert_eq!([Kind::Namespace, Kind::Service, Kind::EndpointSlice, Kind::Pod].map(|k| api.count(k)), [5, 32, 29, 56]);
    let client = api.kube_client().await.unwrap();

    async fn init_count<K>(api: Api<K>) -> usize
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (reader, writer) = reflector::store();
        let mut events =
            reflector::reflector(writer, watcher::watcher(api, watcher::Config::default().page_size(10))).boxed();
        until("InitDone", &mut events, is_init_done).await;
        reader.state().len()
    }
    let (ns, svc, eps, pods) = tokio::join!(
        init_count(Api::<Namespace>::all(client.clone())),
        init_count(Api::<Service>::all(client.clone())),
        init_count(Api::<EndpointSlice>::all(client.clone())),
        init_count(Api::<Pod>::all(client.clone())),
    );
    assert_eq!((ns, svc, eps, pods), (5, 32, 29, 56));

    let in_apps = init_count(Api::<Service>::namespaced(client.clone(), "apps")).await;
    let listed = Api::<Service>::namespaced(client, "apps").list(&ListParams::default()).await.unwrap();
    assert_eq!(in_apps, listed.items.len());
    assert!(in_apps > 0 && in_apps < 32);
    assert!(listed.items.iter().all(|s| s.metadata.namespace.as_deref() == Some("apps")));
}

#[tokio::test]
async fn resource_version_semantics_of_lists_and_watches() {
    let api = TestApiServer::builder().start().await.unwrap();
    api.apply_batch(services(3)).unwrap();
    let client = api.kube_client().await.unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "ns-0");
    let before = api.resource_version();
    api.apply(service("ns-0", "later", "10.0.0.7")).unwrap();

    // Exact: the list as it was; NotOlderThan and unset: as it is.
    let exact = services
        .list(&ListParams::default().at(&before.to_string()).matching(kube::api::VersionMatch::Exact))
        .await
        .unwrap();
    assert_eq!(exact.metadata.resource_version, Some(before.to_string()));
    assert_eq!(exact.items.len(), 1);
    let newer = services
        .list(&ListParams::default().at(&before.to_string()).matching(kube::api::VersionMatch::NotOlderThan))
        .await
        .unwrap();
    assert_eq!(newer.items.len(), 2);
    assert_eq!(newer.metadata.resource_version, Some(api.resource_version().to_string()));

    let raw = |uri: &str| http::Request::get(uri).body(Vec::new()).unwrap();
    for (uri, code) in [
        ("/api/v1/services?resourceVersionMatch=Exact", 422),
        ("/api/v1/services?resourceVersion=0&resourceVersionMatch=Exact", 422),
        ("/api/v1/services?watch=1&resourceVersionMatch=NotOlderThan", 422),
        ("/api/v1/services?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan", 422),
        ("/api/v1/services?resourceVersion=abc", 400),
        ("/api/v1/services?continue=garbage", 400),
        ("/api/v1/services?watch=1&limit=5", 400),
    ] {
        let err = client.request_text(raw(uri)).await.unwrap_err();
        assert!(matches!(&err, kube::Error::Api(s) if s.code == code), "{uri}: {err}");
    }

    // A streaming list: the state as ADDED events, then the bookmark that ends it.
    let wp = WatchParams { send_initial_events: true, ..WatchParams::default() };
    let mut stream = services.watch(&wp, "").await.unwrap().boxed();
    let seen =
        until("the initial-events-end bookmark", &mut stream, |e| matches!(e, Ok(WatchEvent::Bookmark(_)))).await;
    assert_eq!(seen.iter().filter(|e| matches!(e, Ok(WatchEvent::Added(_)))).count(), 2);
    let Some(Ok(WatchEvent::Bookmark(end))) = seen.last() else { unreachable!() };
    assert_eq!(end.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str), Some("true"));
    assert_eq!(end.metadata.resource_version, api.resource_version().to_string());
    api.delete(Kind::Service, "ns-0", "later");
    let seen = until("the deletion", &mut stream, |e| matches!(e, Ok(WatchEvent::Deleted(_)))).await;
    assert_eq!(seen.len(), 1, "nothing but the deletion: {seen:?}");

    // A watch from a resourceVersion the server has not reached waits, then fails with 504.
    let ahead = (api.resource_version() + 100).to_string();
    let mut stream = services.watch(&WatchParams::default(), &ahead).await.unwrap().boxed();
    match within("the too-large ERROR", stream.next()).await {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!((status.code, status.reason.as_str()), (504, "Timeout"))
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_certificate_from_the_client_ca_stands_in_for_the_token() {
    let api = TestApiServer::builder().client_certificates().start().await.unwrap();
    api.apply(service("ns-0", "a", "10.0.0.1")).unwrap();
    let issued = api.client_certificate().expect("client certificates were asked for").clone();
    assert_ne!(issued.ca_pem, api.ca_pem().unwrap(), "the client CA is not the serving CA");
    let dir = tempfile::tempdir().unwrap();
    let base = api.kube_config().await.unwrap();
    // A client with a certificate and key, and no token.
    let with_certificate = |name: &str, cert_pem: &str, key_pem: &str| {
        let (cert, key) = (dir.path().join(format!("{name}.crt")), dir.path().join(format!("{name}.key")));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let mut config = base.clone();
        config.auth_info = Default::default();
        config.auth_info.client_certificate = Some(cert.display().to_string());
        config.auth_info.client_key = Some(key.display().to_string());
        Api::<Service>::all(kube::Client::try_from(config).unwrap())
    };

    let list =
        with_certificate("issued", &issued.cert_pem, &issued.key_pem).list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "a client certificate the client CA signed is enough");

    let mut anonymous = base.clone();
    anonymous.auth_info = Default::default();
    let refused = Api::<Service>::all(kube::Client::try_from(anonymous).unwrap()).list(&ListParams::default()).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 401),
        "neither a certificate nor a token: 401, got {refused:?}"
    );

    // A certificate no CA of the server signed: the handshake fails.
    let stranger = rcgen::generate_simple_self_signed(vec!["clusterdns".to_string()]).unwrap();
    let refused = with_certificate("stranger", &stranger.cert.pem(), &stranger.signing_key.serialize_pem())
        .list(&ListParams::default())
        .await;
    assert!(refused.is_err() && !matches!(refused, Err(kube::Error::Api(_))), "a TLS failure, got {refused:?}");

    // The token still works.
    let services: Api<Service> = Api::all(api.kube_client().await.unwrap());
    assert_eq!(services.list(&ListParams::default()).await.unwrap().items.len(), 1);
}
