//! Restore drills: back a store up, damage it on purpose, restore it, and verify what came
//! back, measuring how long recovery took (RTO) and how much committed data was lost (RPO).
//!
//! One file per store and method: `postgres.rs` (logical: `pg_dump` / `pg_restore`),
//! `physical.rs` (Postgres: a base backup and streamed WAL, restored to a point in time in a
//! fresh instance), `pgbackrest.rs` (Postgres with pgBackRest's stanza, backups, verify and
//! restore), `object_store.rs` (mirror and versions), and `writer.rs`, the writer of sequence-numbered records whose losses are the RPO. The
//! scenario steps `backup`, `disaster`, `restore` and `verify` (`run/steps/drill.rs`) drive
//! them over one [`Drill`] per scenario.

pub mod neo4j;
pub mod object_store;
pub mod pgbackrest;
pub mod physical;
pub mod postgres;
pub mod writer;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What one scenario's drill has done so far.
#[derive(Default)]
pub struct Drill {
    /// Backups taken, the latest last.
    pub backups: Vec<postgres::Backup>,
    pub s3_backups: Vec<object_store::Backup>,
    pub graph_backups: Vec<neo4j::Backup>,
    /// The fresh DBMSs graph restores started, stopped with the drill.
    pub graph_instances: Vec<neo4j::Instance>,
    pub writer: Option<writer::Writer>,
    /// The writer's acknowledged records once it stopped at the disaster.
    pub acknowledged: Option<Vec<writer::Record>>,
    pub disaster: Option<Disaster>,
    pub restore: Option<Restored>,
    /// An external target (`harness drill --target`), when the drill acts on one.
    pub target: Option<Target>,
    /// The pool of the target's database, once a step opened it.
    pub target_pool: Option<sqlx::PgPool>,
    /// The verdict's numbers, once a `verify` step measured them (in the reports).
    pub report: Option<DrillReport>,
    /// The WAL stream of a physical backup, until a restore drains it.
    pub receiver: Option<physical::Receiver>,
    /// The scenario's pgBackRest repository, once a backup created it; the drill's end
    /// resets the server's `archive_command`.
    pub pgbackrest: Option<pgbackrest::Repo>,
    /// Replication slots a stream could not drop (its server was down), dropped at the
    /// drill's end, once the server is up again.
    pub stale_slots: Vec<(crate::stack::native::postgres::PostgresEndpoint, String)>,
    /// The instances physical restores started, stopped with the drill.
    pub instances: Vec<physical::Instance>,
    /// The folder of the backups, removed with the drill.
    dir: Option<std::path::PathBuf>,
}

impl Drop for Drill {
    /// The backups and the restored instances do not outlive their scenario.
    fn drop(&mut self) {
        for i in &mut self.instances {
            i.kill_now();
        }
        for g in &mut self.graph_instances {
            g.host.kill_now();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Who starts a restore's fresh instance: the provider of the stack under test.
pub enum Provider {
    /// A child process, as the native provider runs the service.
    Native,
    /// A container of the stack's own image of the service, labelled with the run of
    /// scenarios (`run_id`), reached with the backed-up service's `password` (a restored
    /// store keeps its own credentials).
    Docker {
        image: String,
        run_id: String,
        password: crate::secret::Secret,
    },
}

/// An external target of `harness drill --target FILE`: the database and the bucket the
/// drills act on (the endpoints' own, not a scenario's copies), and whether they may destroy
/// them: only when the file's `destroy` allow-list names each and the run was given
/// `--i-understand-this-destroys-data`.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// The target's database (`postgres.database` of the file).
    pub database: Option<String>,
    /// The target's bucket (`s3.bucket` of the file).
    pub bucket: Option<String>,
    /// The databases the file's `destroy.postgres` allows.
    pub allowed: Vec<String>,
    /// The buckets the file's `destroy.s3` allows.
    pub allowed_buckets: Vec<String>,
    /// `--i-understand-this-destroys-data` was given.
    pub confirmed: bool,
}

impl Target {
    /// Why a destructive step must not touch the target's database, or `None` when it may.
    pub fn refusal(&self, step: &str) -> Option<String> {
        self.refusal_of(
            step,
            "postgres",
            "database",
            self.database.as_deref(),
            &self.allowed,
        )
    }

    /// Why a destructive step must not touch the target's bucket, or `None` when it may.
    pub fn bucket_refusal(&self, step: &str) -> Option<String> {
        self.refusal_of(
            step,
            "s3",
            "bucket",
            self.bucket.as_deref(),
            &self.allowed_buckets,
        )
    }

    fn refusal_of(
        &self,
        step: &str,
        store: &str,
        noun: &str,
        name: Option<&str>,
        allowed: &[String],
    ) -> Option<String> {
        // Without one of its own the drill acts on the scenario's copy, which harness made.
        let name = name?;
        let mut missing = Vec::new();
        if !allowed.iter().any(|d| d == name) {
            missing.push(format!(
                "`destroy: {{ {store}: [{name}] }}` in the target file"
            ));
        }
        if !self.confirmed {
            missing.push("`--i-understand-this-destroys-data`".to_owned());
        }
        (!missing.is_empty()).then(|| {
            format!(
                "refused: this `{step}` step would destroy {noun} {name} of the target, and it needs {}; nothing was touched",
                missing.join(" and ")
            )
        })
    }
}

/// When the store was damaged, and how.
#[derive(Clone, Debug)]
pub struct Disaster {
    pub at: Instant,
    pub wall: SystemTime,
    pub what: String,
    /// Postgres: the WAL position just before the damage (a point-in-time restore's
    /// default target).
    pub lsn: Option<String>,
    /// The server itself is down (killed): only a restore into a fresh instance helps, and
    /// nothing more can be asked of the server.
    pub down: bool,
}

/// When the restore ran, phase by phase.
#[derive(Clone, Debug)]
pub struct Restored {
    /// From the disaster to the start of the restore: how long it took to act.
    pub detect: Duration,
    pub phases: Vec<(&'static str, Duration)>,
    pub ended: Instant,
}

/// What a drill lost: records committed before the disaster and missing after the restore.
#[derive(Clone, Debug, Default)]
pub struct Loss {
    pub acknowledged: usize,
    pub lost: Vec<writer::Record>,
}

impl Loss {
    /// The commit time lost: from the first lost record's commit to the disaster.
    pub fn rpo(&self, disaster: SystemTime) -> Duration {
        self.lost
            .first()
            .and_then(|r| disaster.duration_since(r.committed).ok())
            .unwrap_or_default()
    }

    pub fn json(&self, disaster: SystemTime) -> Value {
        let span = match (self.lost.first(), self.lost.last()) {
            (Some(a), Some(b)) => b.committed.duration_since(a.committed).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        // Every lost record, as runs of consecutive sequence numbers: `[[first, last], …]`.
        let mut ranges: Vec<[i64; 2]> = Vec::new();
        for r in &self.lost {
            match ranges.last_mut() {
                Some(last) if last[1] + 1 == r.seq => last[1] = r.seq,
                _ => ranges.push([r.seq, r.seq]),
            }
        }
        json!({
            "acknowledged": self.acknowledged,
            "lost": self.lost.len(),
            "lost_ranges": ranges,
            "first_lost": self.lost.first().map(|r| r.seq),
            "last_lost": self.lost.last().map(|r| r.seq),
            "lost_span_ms": ms(span),
            "rpo_ms": ms(self.rpo(disaster)),
        })
    }
}

/// A drill's numbers against its objectives, as the reports show them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// What the disaster did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disaster: Option<String>,
    /// From the disaster to the verification's verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_max_ms: Option<f64>,
    /// Commit time lost: from the first lost record to the disaster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_max_ms: Option<f64>,
    /// detect, provision, restore, replay, verify.
    #[serde(default)]
    pub phases_ms: BTreeMap<String, f64>,
    /// The writer's records committed before the disaster, and how many were not restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<usize>,
    /// Whether the verification passed and every objective was met.
    pub met: bool,
    /// When the disaster struck (ms since the Unix epoch), for the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disaster_unix_ms: Option<f64>,
    /// The writer's records (at most 10,000), for the HTML report's strip; the JSON report
    /// leaves them out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<StripRecord>,
}

/// One of the writer's records on the timeline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StripRecord {
    pub seq: i64,
    pub committed_unix_ms: f64,
    pub lost: bool,
}

/// Ms since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

impl DrillReport {
    /// One line for the console and JUnit: `RTO 1.234 s ≤ 60 s (detect …) · RPO …`.
    pub fn line(&self) -> String {
        let s = |ms: f64| format!("{:.3} s", ms / 1000.0);
        let mut parts = Vec::new();
        if let Some(rto) = self.rto_ms {
            let mut p = format!("RTO {}", s(rto));
            if let Some(max) = self.rto_max_ms {
                p.push_str(&format!(" (objective {})", s(max)));
            }
            let phases: Vec<String> = ["detect", "provision", "restore", "replay", "verify"]
                .iter()
                .filter_map(|k| self.phases_ms.get(*k).map(|v| format!("{k} {}", s(*v))))
                .collect();
            if !phases.is_empty() {
                p.push_str(&format!(": {}", phases.join(", ")));
            }
            parts.push(p);
        }
        if let Some(rpo) = self.rpo_ms {
            let mut p = format!("RPO {}", s(rpo));
            if let Some(max) = self.rpo_max_ms {
                p.push_str(&format!(" (objective {})", s(max)));
            }
            if let (Some(a), Some(l)) = (self.acknowledged, self.lost) {
                p.push_str(&format!(", {l} of {a} committed records lost"));
            }
            parts.push(p);
        }
        let verdict = if self.met { "met" } else { "NOT met" };
        if parts.is_empty() {
            return format!("drill {verdict}: the verification failed, so nothing was measured");
        }
        format!("drill {verdict}: {}", parts.join("; "))
    }
}

/// Milliseconds with a microsecond's precision, for documents.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Each table's row count and checksum.
pub type Tables = BTreeMap<String, TableState>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableState {
    pub rows: i64,
    pub checksum: String,
}

impl Drill {
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    pub fn set_dir(&mut self, dir: std::path::PathBuf) {
        self.dir = Some(dir);
    }

    /// Ends the drill's processes: the writer, a WAL stream, the restored instances (a
    /// fast shutdown each; a restored graph DBMS is killed, since its store is thrown away
    /// and Neo4j's clean shutdown takes seconds).
    pub async fn close(&mut self) {
        self.stop_writer().await;
        if let Some(r) = self.receiver.take() {
            r.release().await;
        }
        if let Some(r) = self.pgbackrest.take() {
            r.release().await;
        }
        for (server, slot) in std::mem::take(&mut self.stale_slots) {
            physical::drop_slot_on(&server, &slot).await;
        }
        for mut i in std::mem::take(&mut self.instances) {
            i.stop().await;
        }
        for mut g in std::mem::take(&mut self.graph_instances) {
            match &mut g.host {
                physical::Host::Process(p) => p.stop(std::time::Duration::ZERO).await,
                physical::Host::Container(c) => c.remove().await,
            }
        }
    }

    /// Stops the writer (its last record is then before the disaster) and keeps what it
    /// committed.
    pub async fn stop_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            self.acknowledged = Some(w.stop().await);
        }
    }
}
