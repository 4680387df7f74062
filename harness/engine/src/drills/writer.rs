//! The drill's writer: commits sequence-numbered records to the store under test at a set
//! rate and keeps each one the store acknowledged, with the moment it did. After a
//! restore, an acknowledged record that is not found is lost data, and the commit times of
//! the lost ones are the recovery point (RPO), measured rather than assumed.
//!
//! A record is a row of [`TABLE`] in the scenario's Postgres database, an object under
//! [`OBJECT_PREFIX`] in its bucket, or a node labelled [`NODE_LABEL`] in its graph.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use tokio_util::sync::CancellationToken;

use crate::stack::native::neo4j::Neo4jEndpoint;

/// The table the writer fills in the scenario's database.
pub const TABLE: &str = "harness_drill_writes";
/// Where the writer's objects go in the scenario's bucket (`PREFIX000000042`).
pub const OBJECT_PREFIX: &str = "harness-drill-writes/";
/// The label of the writer's nodes (with the scenario's own).
pub const NODE_LABEL: &str = "HarnessDrillWrite";

/// One acknowledged record.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub seq: i64,
    pub committed: SystemTime,
}

/// Where the writer commits.
pub enum Sink {
    Postgres(Box<PgConnectOptions>),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    /// The graph at `endpoint`, nodes with the scenario's `label` (a client is made again
    /// after a failed write: the DBMS may have restarted).
    Neo4j {
        endpoint: Neo4jEndpoint,
        label: String,
    },
}

pub struct Writer {
    pub rate: u64,
    acked: Arc<Mutex<Vec<Record>>>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The writer's open connection to its store.
enum State {
    Postgres {
        options: Box<PgConnectOptions>,
        conn: Option<PgConnection>,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    Neo4j {
        endpoint: Neo4jEndpoint,
        label: String,
        graph: Option<neo4rs::Graph>,
    },
}

impl State {
    async fn open(sink: Sink) -> Result<State, String> {
        Ok(match sink {
            Sink::Postgres(options) => {
                let mut conn = PgConnection::connect_with(&options)
                    .await
                    .map_err(|e| format!("the drill's writer could not connect: {e}"))?;
                sqlx::query(&format!(
                    "CREATE TABLE IF NOT EXISTS {TABLE} (seq bigint PRIMARY KEY, \
                     committed_at timestamptz NOT NULL DEFAULT clock_timestamp())"
                ))
                .execute(&mut conn)
                .await
                .map_err(|e| format!("the drill's writer could not create {TABLE}: {e}"))?;
                State::Postgres {
                    options,
                    conn: Some(conn),
                }
            }
            Sink::S3 { client, bucket } => State::S3 { client, bucket },
            Sink::Neo4j { endpoint, label } => {
                let graph = endpoint
                    .graph()
                    .map_err(|e| format!("the drill's writer could not reach the graph: {e}"))?;
                State::Neo4j {
                    endpoint,
                    label: label.replace('`', ""),
                    graph: Some(graph),
                }
            }
        })
    }

    /// Writes record `seq`; whether the store acknowledged it. A cancel while a write is in
    /// flight waits for its answer, so that a committed record is never left out.
    async fn put(&mut self, seq: i64) -> bool {
        match self {
            State::Postgres { options, conn } => {
                if conn.is_none() {
                    *conn = PgConnection::connect_with(options).await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    return false;
                };
                let done = sqlx::query(&format!("INSERT INTO {TABLE} (seq) VALUES ($1)"))
                    .bind(seq)
                    .execute(c)
                    .await;
                if done.is_err() {
                    *conn = None;
                }
                done.is_ok()
            }
            State::S3 { client, bucket } => client
                .put_object()
                .bucket(bucket.as_str())
                .key(format!("{OBJECT_PREFIX}{seq:09}"))
                .body(aws_sdk_s3::primitives::ByteStream::from(
                    seq.to_string().into_bytes(),
                ))
                .send()
                .await
                .is_ok(),
            State::Neo4j {
                endpoint,
                label,
                graph,
            } => {
                if graph.is_none() {
                    *graph = endpoint.graph().ok();
                }
                let Some(g) = graph.as_ref() else {
                    return false;
                };
                let q = neo4rs::query(&format!("CREATE (:`{label}`:{NODE_LABEL} {{seq: $seq}})"))
                    .param("seq", seq);
                let done = g.run(q).await;
                if done.is_err() {
                    *graph = None;
                }
                done.is_ok()
            }
        }
    }

    async fn close(self) {
        if let State::Postgres { conn: Some(c), .. } = self {
            let _ = c.close().await;
        }
    }
}

impl Writer {
    /// Opens the store (for Postgres, creates the table) and starts writing `rate` records
    /// a second.
    pub async fn start(sink: Sink, rate: u64) -> Result<Writer, String> {
        let state = State::open(sink).await?;
        let acked = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(write(
            state,
            rate.max(1),
            Arc::clone(&acked),
            cancel.clone(),
        ));
        Ok(Writer {
            rate,
            acked,
            cancel,
            task: Some(task),
        })
    }

    /// How many records were acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acked.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Stops writing (no write is in flight afterwards); every acknowledged record.
    pub async fn stop(mut self) -> Vec<Record> {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.acked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn write(
    mut state: State,
    rate: u64,
    acked: Arc<Mutex<Vec<Record>>>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: i64 = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        seq += 1;
        if state.put(seq).await
            && let Ok(mut a) = acked.lock()
        {
            a.push(Record {
                seq,
                committed: SystemTime::now(),
            });
        }
    }
    state.close().await;
}

/// The sequence numbers of the writer's objects in `bucket`.
pub async fn objects_written(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Vec<i64>, String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(OBJECT_PREFIX)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "list the writer's objects: {}",
                    crate::run::stores::sdk_error(&e)
                )
            })?;
        out.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key()?.strip_prefix(OBJECT_PREFIX)?.parse::<i64>().ok()),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The sequence numbers of the writer's nodes of the scenario's `label`.
pub async fn nodes_written(graph: &neo4rs::Graph, label: &str) -> Result<Vec<i64>, String> {
    let rows = crate::run::stores::run_query(
        graph,
        neo4rs::query(&format!(
            "MATCH (n:`{}`:{NODE_LABEL}) RETURN n.seq AS seq ORDER BY seq",
            label.replace('`', "")
        )),
    )
    .await
    .map_err(|e| format!("read the writer's nodes: {e}"))?;
    Ok(rows
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["seq"].as_i64())
        .collect())
}
