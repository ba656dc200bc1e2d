//! health and ready over real HTTP, in-process: the answers, the self-check, and what a probe
//! sees while the server shuts down.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// The value of the sample `name` (exact, labels included) in a text exposition.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn health_is_ok_and_times_itself_every_second() {
    let s = TestServer::start(". {\n    health\n    whoami\n}\n");
    let addr = s.http(":8080");
    assert_eq!(http_get(addr, "/health"), (200, "OK".to_string()));
    assert_eq!(http_get(addr, "/ready").0, 404);
    // The self-check runs once a second against the bound endpoint, and succeeds.
    let checks = eventually(Duration::from_secs(5), || {
        sample(&s.metrics(), "coredns_health_request_duration_seconds_count").filter(|n| *n >= 2.0)
    });
    assert!(checks.is_some(), "no self-check recorded:\n{}", s.metrics());
    assert_eq!(sample(&s.metrics(), "coredns_health_request_failures_total"), Some(0.0));
    assert!(s.metrics().contains("coredns_health_request_duration_seconds_bucket{le=\"0.00025\"} "));
    assert!(s.metrics().contains("coredns_health_request_duration_seconds_bucket{le=\"2.5\"} "));
}

#[test]
fn blocks_share_an_endpoint_by_address() {
    let s =
        TestServer::start(". {\n ready\n health :8080\n whoami\n}\nexample.org {\n ready\n health :8080\n whoami\n}\n");
    assert_eq!(http_get(s.http(":8080"), "/health"), (200, "OK".to_string()));
    assert_eq!(http_get(s.http(":8181"), "/ready"), (200, "OK".to_string()));
    assert_eq!(s.block_on(s.server.http_addrs()).len(), 2);
}

#[test]
fn health_and_ready_may_share_a_port() {
    // health and ready may share a port: different paths.
    let s = TestServer::start(". {\n ready :8080\n health :8080\n whoami\n}\n");
    let addr = s.http(":8080");
    assert_eq!(http_get(addr, "/health"), (200, "OK".to_string()));
    assert_eq!(http_get(addr, "/ready"), (200, "OK".to_string()));
}

#[test]
fn during_lameduck_ready_is_503_health_200_and_queries_are_answered() {
    let s = TestServer::start(". {\n    health {\n        lameduck 2s\n    }\n    ready\n    whoami\n}\n");
    let (health, ready, dns) = (s.http(":8080"), s.http(":8181"), s.addr());
    assert_eq!(http_get(ready, "/ready"), (200, "OK".to_string()));

    let server = s.server.clone();
    // Shut down in the background, as a SIGTERM would.
    s.block_on(async {
        tokio::spawn(async move { server.shutdown().await });
    });

    let shutting = eventually(TIMEOUT, || Some(http_get(ready, "/ready")).filter(|r| r.0 == 503));
    assert_eq!(shutting, Some((503, "Shutting down".to_string())));
    assert_eq!(http_get(health, "/health"), (200, "OK".to_string()));
    let m = query_udp(dns, "a.example.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);
    assert_eq!(rrs(&m.additionals)[0], "a.example. 0 IN A 127.0.0.1");
    let m = query_tcp(dns, "b.example.", RecordType::A);
    assert_eq!(m.response_code, ResponseCode::NoError);

    // After the lameduck period the listeners close.
    let gone = eventually(TIMEOUT, || {
        raw_udp_wait(dns, &query_message("c.example.", RecordType::A).to_vec().unwrap(), Duration::from_millis(200))
            .is_none()
            .then_some(())
    });
    assert!(gone.is_some(), "still answering after the lameduck period");
}
