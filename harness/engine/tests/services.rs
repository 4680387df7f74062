//! One test per service: start it and do a real round trip. The provider is HARNESS_PROVIDER
//! (native when unset), so CI runs this file once per provider.

use aws_sdk_s3::{
    primitives::ByteStream,
    types::{BucketVersioningStatus, VersioningConfiguration},
};
use harness_engine::stack::Stack;

#[tokio::test]
async fn postgres_write_and_read() {
    let stack = Stack::builder().postgres().start().await.expect("stack");
    let pool = stack.postgres().expect("pg").pool().await.expect("pool");
    sqlx::query("CREATE TABLE notes (id int primary key, body text)")
        .execute(&pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO notes VALUES (1, 'written')")
        .execute(&pool)
        .await
        .expect("insert");
    let body: String = sqlx::query_scalar("SELECT body FROM notes WHERE id = 1")
        .fetch_one(&pool)
        .await
        .expect("select");
    assert_eq!(body, "written");
    pool.close().await;
    let dir = stack.run_dir().to_owned();
    stack.shutdown().await;
    assert!(!dir.exists(), "shutdown must remove {}", dir.display());
}

#[tokio::test]
async fn postgres_rejects_a_wrong_password() {
    let stack = Stack::builder().postgres().start().await.expect("stack");
    let mut ep = stack.postgres().expect("pg").clone();
    ep.password = harness_engine::secret::Secret::new("not-the-password");
    assert!(
        ep.pool().await.is_err(),
        "TCP login must need the run's password"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn s3_bucket_objects_and_versions() {
    let stack = Stack::builder()
        .object_store()
        .start()
        .await
        .expect("stack");
    let s3 = stack.s3().expect("s3").client();
    s3.create_bucket()
        .bucket("roundtrip")
        .send()
        .await
        .expect("create bucket");
    s3.put_bucket_versioning()
        .bucket("roundtrip")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
    let v1 = s3
        .put_object()
        .bucket("roundtrip")
        .key("doc.txt")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .expect("put v1")
        .version_id
        .expect("a version id");
    s3.put_object()
        .bucket("roundtrip")
        .key("doc.txt")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .expect("put v2");
    let latest = s3
        .get_object()
        .bucket("roundtrip")
        .key("doc.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(
        latest
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"second"
    );
    let old = s3
        .get_object()
        .bucket("roundtrip")
        .key("doc.txt")
        .version_id(&v1)
        .send()
        .await
        .expect("get by version");
    assert_eq!(
        old.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"first"
    );
    let listed = s3
        .list_objects_v2()
        .bucket("roundtrip")
        .send()
        .await
        .expect("list");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["doc.txt"]);
    stack.shutdown().await;
}

#[tokio::test]
async fn neo4j_create_and_match() {
    let stack = Stack::builder().neo4j().start().await.expect("stack");
    let graph = stack.neo4j().expect("neo4j").graph().expect("graph");
    graph
        .run(neo4rs::query(
            "CREATE (:Topic {id: 'a'})-[:REQUIRES]->(:Topic {id: 'b'})",
        ))
        .await
        .expect("create");
    let mut rows = graph
        .execute(neo4rs::query(
            "MATCH (:Topic {id: 'a'})-[:REQUIRES]->(t:Topic) RETURN t.id AS id",
        ))
        .await
        .expect("match");
    let row = rows.next().await.expect("row").expect("one row");
    assert_eq!(row.get::<String>("id").expect("id"), "b");
    stack.shutdown().await;
}

#[tokio::test]
async fn otel_span_reaches_the_collector_output() {
    let stack = Stack::builder()
        .otel_collector()
        .start()
        .await
        .expect("stack");
    let otel = stack.otel().expect("otel");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    otel.send_span("roundtrip-test", "checkout", trace)
        .await
        .expect("export");
    let mut found = None;
    for _ in 0..100 {
        found = otel
            .output()
            .spans()
            .expect("read")
            .into_iter()
            .find(|s| s.trace_id == trace);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let span = found.expect("the span must appear in the collector's file output");
    assert_eq!(span.name, "checkout");
    assert_eq!(span.service_name.as_deref(), Some("roundtrip-test"));
    stack.shutdown().await;
}

#[tokio::test]
async fn the_stack_runs_on_the_provider_asked_for() {
    use harness_engine::stack::ProviderKind;
    let asked = ProviderKind::from_env().expect("HARNESS_PROVIDER");
    let stack = Stack::builder()
        .object_store()
        .start()
        .await
        .expect("stack");
    assert_eq!(stack.provider(), asked);
    match asked {
        ProviderKind::Docker => {
            assert_eq!(stack.containers().len(), 1, "one container per service");
            assert!(stack.service_pids().is_empty());
        }
        _ => {
            assert_eq!(
                stack.service_pids().len(),
                1,
                "one process group per service"
            );
            assert!(stack.containers().is_empty());
        }
    }
    stack.shutdown().await;
}
