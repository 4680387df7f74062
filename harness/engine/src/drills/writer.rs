//! The drill's writer: commits sequence-numbered records to the store under test at a set
//! rate and keeps each one the store acknowledged, with the moment it did. After a
//! restore, an acknowledged record that is not found is lost data, and the commit times of
//! the lost ones are the recovery point (RPO), measured rather than assumed.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use tokio_util::sync::CancellationToken;

/// The table the writer fills in the scenario's database.
pub const TABLE: &str = "harness_drill_writes";

/// One acknowledged record.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub seq: i64,
    pub committed: SystemTime,
}

pub struct Writer {
    pub rate: u64,
    acked: Arc<Mutex<Vec<Record>>>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Writer {
    /// Creates the table and starts writing `rate` records a second.
    pub async fn start(options: PgConnectOptions, rate: u64) -> Result<Writer, String> {
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
        let acked = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(write(
            conn,
            options,
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
    mut conn: PgConnection,
    options: PgConnectOptions,
    rate: u64,
    acked: Arc<Mutex<Vec<Record>>>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: i64 = 0;
    let mut healthy = true;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if !healthy {
            match PgConnection::connect_with(&options).await {
                Ok(c) => {
                    conn = c;
                    healthy = true;
                }
                Err(_) => continue,
            }
        }
        seq += 1;
        // A cancel while the insert is in flight waits for its answer, so that a record
        // the store committed is never left out of the list.
        let done = sqlx::query(&format!("INSERT INTO {TABLE} (seq) VALUES ($1)"))
            .bind(seq)
            .execute(&mut conn)
            .await;
        match done {
            Ok(_) => {
                if let Ok(mut a) = acked.lock() {
                    a.push(Record {
                        seq,
                        committed: SystemTime::now(),
                    });
                }
            }
            Err(_) => healthy = false,
        }
    }
    let _ = conn.close().await;
}
