//! Many stacks at once get distinct ports and all pass their readiness checks.

use std::collections::HashSet;

use harness_engine::stack::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_stacks_get_distinct_ports() {
    let starts = (0..20).map(|_| async {
        Stack::builder()
            .postgres()
            .object_store()
            .otel_collector()
            .start()
            .await
    });
    let stacks: Vec<Stack> = futures::future::join_all(starts)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every stack must pass its readiness checks");
    let mut ports = HashSet::new();
    for s in &stacks {
        let e = s.endpoints();
        for p in [
            e.postgres.as_ref().expect("pg").port.to_string(),
            e.s3.as_ref().expect("s3").endpoint_url.clone(),
            e.otel.as_ref().expect("otel").otlp_grpc.clone(),
            e.otel.as_ref().expect("otel").otlp_http.clone(),
        ] {
            let port = p.rsplit(':').next().expect("port").to_owned();
            assert!(
                ports.insert(port.clone()),
                "port {port} was handed out twice"
            );
        }
    }
    assert_eq!(ports.len(), 80);
    for s in stacks {
        s.shutdown().await;
    }
}
