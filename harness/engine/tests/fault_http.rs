//! HTTP faults on real HTTP traffic through the fault proxy: a share of requests aborted
//! with a status (the same share, request by request, for the same seed), a delay, a body
//! cut short, and every request forwarded whole once the fault is cleared.

use std::{net::SocketAddr, time::Duration};

use harness_engine::faults::{Decisions, HttpFault, Proxy};
use tokio::time::Instant;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};

const BODY: usize = 1000;

async fn upstream() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; BODY]))
        .mount(&server)
        .await;
    server
}

async fn proxy(server: &MockServer, seed: u64) -> Proxy {
    let upstream: SocketAddr = *server.address();
    Proxy::start(
        "api",
        "127.0.0.1:0".parse().expect("addr"),
        upstream,
        Decisions::new(seed),
    )
    .await
    .expect("proxy")
}

fn fault(abort: Option<u16>, delay: u64, truncate: Option<u64>, rate: f64) -> HttpFault {
    HttpFault {
        abort,
        delay,
        truncate,
        rate,
    }
}

/// The statuses of `n` requests over one kept-alive connection.
async fn statuses(p: &Proxy, n: usize) -> Vec<u16> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .no_proxy()
        .build()
        .expect("client");
    let mut out = Vec::new();
    for _ in 0..n {
        let r = client
            .get(format!("http://{}/thing", p.listen_addr()))
            .send()
            .await
            .expect("request");
        out.push(r.status().as_u16());
        let _ = r.bytes().await;
    }
    out
}

/// The statuses of 40 requests through a fresh proxy that aborts half of them.
async fn half_aborted(server: &MockServer, seed: u64) -> Vec<u16> {
    let p = proxy(server, seed).await;
    p.set_http(Some(fault(Some(500), 0, None, 0.5)))
        .expect("set");
    statuses(&p, 40).await
}

#[tokio::test]
async fn abort_answers_its_status_for_its_share_of_requests_and_the_seed_replays_it() {
    let server = upstream().await;
    let p = proxy(&server, 11).await;
    assert_eq!(statuses(&p, 3).await, [200, 200, 200], "no fault yet");

    p.set_http(Some(fault(Some(503), 0, None, 1.0)))
        .expect("set");
    let all = statuses(&p, 5).await;
    assert_eq!(all, [503; 5], "every request aborted");

    // Half of them: the same requests for the same seed, others for another seed.
    let half = half_aborted(&server, 11).await;
    let aborted = half.iter().filter(|s| **s == 500).count();
    assert!(
        (8..=32).contains(&aborted),
        "about half of 40 requests aborted, got {aborted}: {half:?}"
    );
    assert!(half.iter().all(|s| *s == 500 || *s == 200), "{half:?}");
    assert_eq!(
        half_aborted(&server, 11).await,
        half,
        "same seed, same requests aborted"
    );
    assert_ne!(
        half_aborted(&server, 12).await,
        half,
        "another seed, other choices"
    );

    p.set_http(None).expect("clear");
    assert_eq!(statuses(&p, 3).await, [200, 200, 200], "cleared");
    assert!(
        p.decisions()
            .log()
            .iter()
            .any(|d| d.toxic == "http" && d.choice == "abort 503"),
        "the decisions are logged"
    );
}

#[tokio::test]
async fn delay_holds_each_request_and_truncate_cuts_the_body() {
    let server = upstream().await;
    let p = proxy(&server, 1).await;
    let url = format!("http://{}/thing", p.listen_addr());
    p.set_http(Some(fault(None, 300, None, 1.0))).expect("set");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    for _ in 0..2 {
        let start = Instant::now();
        let r = client.get(&url).send().await.expect("request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.expect("body").len(), BODY);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300),
            "a 300 ms delay took {took:?}"
        );
    }

    // Setting a fault closes the open connections (so none goes around it): a new client.
    p.set_http(Some(fault(None, 0, Some(10), 1.0)))
        .expect("set");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let r = client.get(&url).send().await.expect("request");
    assert_eq!(r.status(), 200, "the head is forwarded");
    match r.bytes().await {
        Ok(b) => assert!(b.len() < BODY, "the body was not cut: {} bytes", b.len()),
        Err(e) => assert!(e.is_body() || e.is_decode(), "{e}"),
    }

    p.set_http(None).expect("clear");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let r = client.get(&url).send().await.expect("request");
    assert_eq!(r.bytes().await.expect("body").len(), BODY, "whole again");
    let e = p
        .set_http(Some(fault(Some(503), 0, None, 1.5)))
        .expect_err("rate over 1");
    assert!(e.to_string().contains("between 0 and 1"), "{e}");
}
