//! Process faults on a running stack: pause, unpause, kill, start, stop and restart, on
//! whichever provider HARNESS_PROVIDER names (CI runs this file once per provider). Each
//! fault is observed from a client, and the data written before it survives the restart.

use std::time::Duration;

use harness_engine::stack::{Fault, ServiceKind, Stack};
use sqlx::{Connection, PgConnection};

async fn read_note(stack: &Stack) -> Result<String, String> {
    let options = stack.postgres().expect("pg").connect_options();
    let attempt = async {
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|e| e.to_string())?;
        let body: String = sqlx::query_scalar("SELECT body FROM notes WHERE id = 1")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        Ok(body)
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

async fn select_one(conn: &mut PgConnection) -> Result<(), ()> {
    let q = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(conn);
    match tokio::time::timeout(Duration::from_secs(2), q).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(()),
    }
}

#[tokio::test]
async fn postgres_faults_are_seen_by_clients_and_data_survives_restarts() {
    let mut stack = Stack::builder().postgres().start().await.expect("stack");
    let pool = stack.postgres().expect("pg").pool().await.expect("pool");
    sqlx::query("CREATE TABLE notes (id int primary key, body text)")
        .execute(&pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO notes VALUES (1, 'kept')")
        .execute(&pool)
        .await
        .expect("insert");
    pool.close().await;
    assert_eq!(read_note(&stack).await.as_deref(), Ok("kept"));
    // A connection opened before the pause is served by a backend of its own, outside the
    // server's process group (Postgres's children call setsid()): it must freeze too.
    let options = stack.postgres().expect("pg").connect_options();
    let mut held = PgConnection::connect_with(&options).await.expect("connect");

    stack
        .fault(ServiceKind::Postgres, Fault::Pause)
        .await
        .expect("pause");
    assert_eq!(
        read_note(&stack).await,
        Err("timed out".to_owned()),
        "a paused server must not answer"
    );
    assert!(
        select_one(&mut held).await.is_err(),
        "a connection opened before the pause was still answered"
    );
    stack
        .fault(ServiceKind::Postgres, Fault::Unpause)
        .await
        .expect("unpause");
    assert_eq!(read_note(&stack).await.as_deref(), Ok("kept"));
    drop(held);
    // The stack runs with synchronous_commit=off, and the WAL writer was frozen with the
    // rest: write the commits out before the crash, as a real server would have by now.
    let mut conn = PgConnection::connect_with(&options).await.expect("connect");
    sqlx::query("CHECKPOINT")
        .execute(&mut conn)
        .await
        .expect("checkpoint");
    drop(conn);

    stack
        .fault(ServiceKind::Postgres, Fault::Kill)
        .await
        .expect("kill");
    assert!(
        read_note(&stack).await.is_err(),
        "a killed server must refuse connections"
    );
    stack
        .fault(ServiceKind::Postgres, Fault::Start)
        .await
        .expect("start after kill");
    assert_eq!(read_note(&stack).await.as_deref(), Ok("kept"));

    stack
        .fault(ServiceKind::Postgres, Fault::Restart)
        .await
        .expect("restart");
    assert_eq!(read_note(&stack).await.as_deref(), Ok("kept"));

    stack
        .fault(ServiceKind::Postgres, Fault::Stop)
        .await
        .expect("stop");
    assert!(
        read_note(&stack).await.is_err(),
        "a stopped server must refuse connections"
    );
    let dir = stack.run_dir().to_owned();
    stack.shutdown().await;
    assert!(!dir.exists(), "shutdown after a stop must still clean up");
}

#[tokio::test]
async fn a_restarted_collector_receives_spans_again() {
    let mut stack = Stack::builder()
        .otel_collector()
        .start()
        .await
        .expect("stack");
    stack
        .fault(ServiceKind::Otel, Fault::Restart)
        .await
        .expect("restart");
    // The restart waits for a fresh readiness span; send one more and find it.
    let otel = stack.otel().expect("otel").clone();
    otel.send_span(
        "faults",
        "after-restart",
        "0af7651916cd43dd8448eb211c80319c",
    )
    .await
    .expect("send");
    let mut found = false;
    for _ in 0..100 {
        let spans = otel.output().spans().expect("read output");
        if spans.iter().any(|s| s.name == "after-restart") {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "the restarted collector did not write the span");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_fault_on_a_service_outside_the_stack_is_an_error() {
    let mut stack = Stack::builder()
        .object_store()
        .start()
        .await
        .expect("stack");
    let err = stack
        .fault(ServiceKind::Postgres, Fault::Kill)
        .await
        .expect_err("postgres is not in this stack");
    assert!(
        err.to_string()
            .contains("postgres is not part of this stack"),
        "{err}"
    );
    stack.shutdown().await;
}
