//! The fault proxy on real loopback traffic: each fault kind's effect is measured on bytes
//! that went through it, and the seeded decisions replay.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use harness_engine::faults::{
    Bandwidth, Decisions, Latency, LimitData, Proxy, ResetPeer, Slicer, SlowClose, Stream, Timeout,
    Toxic, ToxicKind,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::Instant,
};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// A server that echoes every connection.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A server that writes `len` bytes (0, 1, 2, … 250, 0, …) to each connection and closes it.
async fn source(len: usize) -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(&pattern(len)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn proxy(upstream: SocketAddr, seed: u64) -> Proxy {
    Proxy::start("svc", loopback(), upstream, Decisions::new(seed))
        .await
        .expect("proxy")
}

async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let start = Instant::now();
    s.write_all(msg).await.expect("write");
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).await.expect("read");
    assert_eq!(got, msg);
    start.elapsed()
}

/// Reads to the end, counting the reads.
async fn read_all(s: &mut TcpStream) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut reads = 0;
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                reads += 1;
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    (out, reads)
}

#[tokio::test]
async fn latency_adds_at_least_its_delay_and_jitter_stays_in_bounds() {
    let p = proxy(echo().await, 1).await;
    let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
    let baseline = round_trip(&mut s, b"ping").await;
    p.add(Toxic::new(
        Stream::Downstream,
        ToxicKind::Latency(Latency {
            latency: 100,
            jitter: 20,
        }),
    ))
    .expect("add");
    let mut slowest = Duration::ZERO;
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let rtt = round_trip(&mut s, b"ping").await;
        slowest = slowest.max(rtt);
        fastest = fastest.min(rtt);
    }
    assert!(
        fastest >= Duration::from_millis(80),
        "fastest round trip {fastest:?} with 100±20 ms of latency (baseline {baseline:?})"
    );
    let delays: Vec<u64> = p_delays(&p);
    assert_eq!(delays.len(), 5, "one logged delay per chunk: {delays:?}");
    assert!(delays.iter().all(|d| (80..=120).contains(d)), "{delays:?}");
    assert!(slowest >= Duration::from_millis(*delays.iter().max().unwrap_or(&0)));
}

fn p_delays(p: &Proxy) -> Vec<u64> {
    p_log(p)
        .iter()
        .filter_map(|c| c.strip_prefix("delay ")?.strip_suffix("ms")?.parse().ok())
        .collect()
}

fn p_log(p: &Proxy) -> Vec<String> {
    p.decisions().log().into_iter().map(|d| d.choice).collect()
}

#[tokio::test]
async fn removing_a_toxic_keeps_the_connection_and_takes_the_delay_away() {
    let p = proxy(echo().await, 1).await;
    let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
    p.add(Toxic::new(
        Stream::Upstream,
        ToxicKind::Latency(Latency {
            latency: 300,
            jitter: 0,
        }),
    ))
    .expect("add");
    assert!(round_trip(&mut s, b"slow").await >= Duration::from_millis(300));
    p.remove("latency_upstream").expect("remove");
    // The same connection, now without the delay.
    assert!(round_trip(&mut s, b"fast").await < Duration::from_millis(300));
    assert_eq!(
        p.remove("latency_upstream"),
        Err(harness_engine::faults::FaultError::NotFound(
            "latency_upstream".into()
        ))
    );
}

#[tokio::test]
async fn bandwidth_caps_throughput_within_ten_percent() {
    let len = 200_000;
    let p = proxy(source(len).await, 1).await;
    p.add(Toxic::new(
        Stream::Downstream,
        ToxicKind::Bandwidth(Bandwidth { rate: 100 }),
    ))
    .expect("add");
    let start = Instant::now();
    let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
    let (got, _) = read_all(&mut s).await;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, pattern(len));
    let rate = len as f64 / secs / 1000.0;
    assert!(
        (90.0..=110.0).contains(&rate),
        "{rate:.1} KB/s through a 100 KB/s toxic ({secs:.2} s)"
    );
}

#[tokio::test]
async fn limit_data_closes_after_exactly_n_bytes() {
    let p = proxy(source(10_000).await, 1).await;
    p.add(Toxic::new(
        Stream::Downstream,
        ToxicKind::LimitData(LimitData { bytes: 1234 }),
    ))
    .expect("add");
    let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
    let (got, _) = read_all(&mut s).await;
    assert_eq!(got.len(), 1234);
    assert_eq!(got, pattern(1234));
}

#[tokio::test]
async fn reset_peer_gives_connection_reset() {
    let p = proxy(echo().await, 1).await;
    let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
    round_trip(&mut s, b"before").await;
    p.add(Toxic::new(
        Stream::Downstream,
        ToxicKind::ResetPeer(ResetPeer { timeout: 50 }),
    ))
    .expect("add");
    let mut buf = [0u8; 16];
    let err = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the reset came")
        .expect_err("a reset, not data or a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

#[tokio::test]
async fn timeout_holds_the_connection_and_drops_data_then_closes_after_its_time() {
    let p = proxy(echo().await, 1).await;
    let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
    p.add(Toxic::new(
        Stream::Upstream,
        ToxicKind::Timeout(Timeout { timeout: 0 }),
    ))
    .expect("add");
    s.write_all(b"lost").await.expect("write");
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(400), s.read(&mut buf))
            .await
            .is_err(),
        "data got through a timeout toxic, or the connection closed"
    );
    // Removed: the same connection carries data again.
    p.remove("timeout_upstream").expect("remove");
    round_trip(&mut s, b"after").await;

    // With a time, the connection closes after it.
    p.add(Toxic::new(
        Stream::Upstream,
        ToxicKind::Timeout(Timeout { timeout: 200 }),
    ))
    .expect("add");
    let start = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without data");
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn slicer_delivers_the_same_bytes_in_more_reads() {
    let len = 20_000;
    let plain = proxy(source(len).await, 1).await;
    let mut s = TcpStream::connect(plain.listen_addr())
        .await
        .expect("connect");
    let (got, plain_reads) = read_all(&mut s).await;
    assert_eq!(got, pattern(len));

    let sliced = proxy(source(len).await, 1).await;
    sliced
        .add(Toxic::new(
            Stream::Downstream,
            ToxicKind::Slicer(Slicer {
                average_size: 500,
                size_variation: 200,
                delay: 2_000,
            }),
        ))
        .expect("add");
    let mut s = TcpStream::connect(sliced.listen_addr())
        .await
        .expect("connect");
    let (got, reads) = read_all(&mut s).await;
    assert_eq!(got, pattern(len), "the slicer changed the bytes");
    assert!(
        reads >= 10 && reads > plain_reads,
        "{reads} reads through the slicer, {plain_reads} without"
    );
    let sizes: Vec<usize> = p_log(&sliced)
        .iter()
        .filter_map(|c| c.strip_prefix("slices "))
        .flat_map(|s| {
            s.split(',')
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<usize>>()
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), len);
    // Every piece but a chunk's last is within average ± variation.
    assert!(sizes.iter().all(|n| *n <= 700), "{sizes:?}");
}

#[tokio::test]
async fn slow_close_holds_the_close_back() {
    let p = proxy(source(100).await, 1).await;
    p.add(Toxic::new(
        Stream::Downstream,
        ToxicKind::SlowClose(SlowClose { delay: 300 }),
    ))
    .expect("add");
    let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
    let mut buf = vec![0u8; 100];
    s.read_exact(&mut buf).await.expect("data");
    let start = Instant::now();
    let n = s.read(&mut buf).await.expect("close");
    assert_eq!(n, 0);
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "closed {:?} after the data",
        start.elapsed()
    );
}

#[tokio::test]
async fn down_refuses_and_cuts_then_accepts_again() {
    let p = proxy(echo().await, 1).await;
    let addr = p.listen_addr();
    let mut open = TcpStream::connect(addr).await.expect("connect");
    round_trip(&mut open, b"up").await;
    p.set_enabled(false).await.expect("down");
    let err = TcpStream::connect(addr)
        .await
        .expect_err("refused while down");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let mut buf = [0u8; 4];
    let cut = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf))
        .await
        .expect("the open connection was cut");
    assert!(matches!(cut, Ok(0) | Err(_)), "{cut:?}");
    p.set_enabled(true).await.expect("up");
    let mut again = TcpStream::connect(addr).await.expect("accepts again");
    round_trip(&mut again, b"back").await;
}

#[tokio::test]
async fn a_toxic_that_does_not_apply_leaves_its_connection_alone() {
    let p = proxy(echo().await, 1).await;
    let mut t = Toxic::new(
        Stream::Downstream,
        ToxicKind::Latency(Latency {
            latency: 500,
            jitter: 0,
        }),
    );
    t.toxicity = 0.0;
    p.add(t).expect("add");
    let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
    assert!(round_trip(&mut s, b"x").await < Duration::from_millis(500));
    assert_eq!(p_log(&p), ["skipped"]);
    let mut bad = Toxic::new(Stream::Upstream, ToxicKind::Timeout(Timeout { timeout: 0 }));
    bad.toxicity = 1.5;
    assert!(p.add(bad).is_err(), "a toxicity above 1 was accepted");
}

/// Twenty connections, one after the other, through a toxic that applies to half of them
/// and a jittered latency: the decisions, in order.
async fn decisions_for(seed: u64) -> Vec<harness_engine::faults::Decision> {
    let decisions = Decisions::new(seed);
    let p = Proxy::start("svc", loopback(), echo().await, Arc::clone(&decisions))
        .await
        .expect("proxy");
    let mut half = Toxic::new(
        Stream::Downstream,
        ToxicKind::Latency(Latency {
            latency: 1,
            jitter: 1,
        }),
    );
    half.toxicity = 0.5;
    p.add(half).expect("add");
    for _ in 0..20 {
        let mut s = TcpStream::connect(p.listen_addr()).await.expect("connect");
        round_trip(&mut s, b"x").await;
    }
    decisions.log()
}

#[tokio::test]
async fn the_same_seed_makes_the_same_decisions_and_another_seed_others() {
    let a = decisions_for(7).await;
    let b = decisions_for(7).await;
    let c = decisions_for(8).await;
    assert_eq!(a, b, "same seed, different decisions");
    assert_ne!(a, c, "a different seed changed nothing");
    let applied = a.iter().filter(|d| d.choice == "applies").count();
    assert!(
        (3..=17).contains(&applied),
        "toxicity 0.5 applied to {applied} of 20 connections"
    );
}
