//! `restore`: restore the latest backup, the third step of a restore drill.

use super::{
    backup::{
        Neo4jMethod, PgMethod, S3Method, logical_only, neo4j_method, one_store, pg_jobs, pg_method,
        s3_method, store_of, stores_decoded,
    },
    traffic::{JsonExpect, json_expect},
    *,
};

/// Restore the latest `backup` step's backup of the store. Postgres, `logical`: into a
/// fresh database that then takes the damaged one's place under the same name (so
/// `${scenario.database_url}` and every process that holds it reach the restored data).
/// Postgres, `physical`: the base backup into a fresh instance of Postgres, its WAL
/// replayed up to `target` and the instance promoted; the scenario's later `sql` and
/// `verify` steps reach its copy of the database there (its address is in the document).
/// The bucket: each backed-up object put back (`mirror`), or its backed-up version made
/// current again (`versions`). Each phase is timed: `provision` (the fresh database),
/// `restore`, `replay` (none for a logical backup) and `switch`.
///
/// The document: `{store, method, backup, phases_ms: {provision, restore, replay, switch},
/// duration_ms}`, for `s3` also `restored` (the keys put back).
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    #[serde(default)]
    pub postgres: Option<PgRestore>,
    #[serde(default)]
    pub s3: Option<S3Restore>,
    #[serde(default)]
    pub neo4j: Option<Neo4jRestore>,
    #[serde(default)]
    pub expect: JsonExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct PgRestore {
    /// The backup's method.
    pub method: PgMethod,
    /// Parallel jobs of `pg_restore` (default: the backup's; `logical` only).
    #[serde(default)]
    pub jobs: Option<u64>,
    /// Where a logical backup is restored (`logical` only): `database` (the default), a
    /// fresh database that takes the damaged one's place on the same server, so the
    /// processes that hold its URL reach the restored data; or `instance`, a fresh instance
    /// of Postgres started by the stack's provider (the backed-up server's roles first),
    /// which the scenario's later steps reach.
    #[serde(default)]
    pub into: Option<RestoreInto>,
    /// Where the WAL replay stops (`physical` and `pgbackrest`): by default just before the drill's
    /// `disaster` step, or at the end of the WAL without one.
    #[serde(default)]
    pub target: Option<PitrTarget>,
}

/// Where a logical restore goes.
#[derive(Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RestoreInto {
    Database,
    Instance,
}

/// The recovery target of a point-in-time restore.
#[derive(Clone, Debug, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PitrTarget {
    /// The WAL position the `disaster` step recorded just before it struck.
    BeforeDisaster,
    /// Every WAL record that was archived.
    EndOfWal,
    /// The last transaction committed at or before this time (`recovery_target_time`), such
    /// as a captured `clock_timestamp()`.
    Time(Template),
    /// A WAL position (`recovery_target_lsn`), such as a captured `pg_current_wal_lsn()`.
    Lsn(Template),
    /// A restore point made with `pg_create_restore_point(NAME)` (`recovery_target_name`).
    RestorePoint(Template),
}

fn pitr_target(cx: &mut Cx, n: &Node) -> Option<PitrTarget> {
    match n.as_str() {
        Some("before_disaster") => return Some(PitrTarget::BeforeDisaster),
        Some("end_of_wal") => return Some(PitrTarget::EndOfWal),
        Some(other) => {
            let mut p = Problem::new(n.span, "unknown recovery target").label("not a target");
            p = match did_you_mean(other, ["before_disaster", "end_of_wal"]) {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help(
                    "targets: `before_disaster`, `end_of_wal`, or one of `{ time: T }`, `{ lsn: L }`, `{ restore_point: NAME }`",
                ),
            };
            cx.push(p);
            return None;
        }
        None => {}
    }
    let what = "`target` of a `restore` step";
    let f = fields(cx, n, what, &["time", "lsn", "restore_point"])?;
    let given: Vec<&Node> = f.keys().collect();
    if given.len() != 1 {
        cx.push(
            Problem::new(
                n.span,
                "a recovery target is exactly one of `time`, `lsn` and `restore_point`",
            )
            .label(if given.is_empty() {
                "none given"
            } else {
                "more than one"
            }),
        );
        return None;
    }
    let key = given[0].as_str().unwrap_or_default().to_owned();
    let value = template(cx, f.get(&key)?)?;
    Some(match key.as_str() {
        "time" => PitrTarget::Time(value),
        "lsn" => PitrTarget::Lsn(value),
        _ => PitrTarget::RestorePoint(value),
    })
}

/// The graph: a fresh DBMS started on a copy of the backed-up store, checked first.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Neo4jRestore {
    /// The backup's method.
    pub method: Neo4jMethod,
    /// Run Neo4j's consistency checker on the restored store before the DBMS starts on it
    /// (default true); an inconsistent store fails the step.
    #[serde(default)]
    pub check: Option<bool>,
}

#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct S3Restore {
    /// The backup's method.
    pub method: S3Method,
}

impl Kind for Restore {
    const KEY: &'static str = "restore";
    const WHAT: &'static str = "a `restore` step";

    fn service(&self) -> Option<Service> {
        Some(store_of(self.postgres.is_some(), self.neo4j.is_some()))
    }

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        one_store(cx, &f, node, Self::WHAT)?;
        let s3 = opt(cx, &f, "s3", |cx, n| {
            let what = "`s3` of a `restore` step";
            let g = fields(cx, n, what, S3Restore::KEYS)?;
            let method = req(cx, &g, "method", what, s3_method);
            Some(S3Restore { method: method? })
        });
        let neo4j = opt(cx, &f, "neo4j", |cx, n| {
            let what = "`neo4j` of a `restore` step";
            let g = fields(cx, n, what, Neo4jRestore::KEYS)?;
            let method = req(cx, &g, "method", what, neo4j_method);
            let check = opt(cx, &g, "check", boolean);
            Some(Neo4jRestore {
                method: method?,
                check,
            })
        });
        let postgres = opt(cx, &f, "postgres", |cx, n| {
            let what = "`postgres` of a `restore` step";
            let g = fields(cx, n, what, PgRestore::KEYS)?;
            let method = req(cx, &g, "method", what, pg_method);
            let jobs = opt(cx, &g, "jobs", pg_jobs);
            let target = opt(cx, &g, "target", pitr_target);
            let into = opt(cx, &g, "into", |cx, n| match n.as_str() {
                Some("database") => Some(RestoreInto::Database),
                Some("instance") => Some(RestoreInto::Instance),
                _ => {
                    let mut p = Problem::new(n.span, "unknown restore destination")
                        .label("not a destination");
                    p = match n.as_str().and_then(|s| did_you_mean(s, ["database", "instance"])) {
                        Some(s) => p.help(format!("did you mean `{s}`?")),
                        None => p.help("`database` (a fresh database in the damaged one's place) or `instance` (a fresh instance of Postgres)"),
                    };
                    cx.push(p);
                    None
                }
            });
            let method = method?;
            logical_only(cx, &g, method, &["jobs", "into"])?;
            if method == PgMethod::Logical
                && let Some(t) = g.get("target")
            {
                cx.push(
                    Problem::new(
                        t.span,
                        "a recovery target goes with the `physical` and `pgbackrest` methods (a logical backup restores as it was taken)",
                    )
                    .label("not for `logical`"),
                );
                return None;
            }
            Some(PgRestore {
                method,
                jobs,
                into,
                target,
            })
        });
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `restore` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        if !stores_decoded(&f, postgres.is_some(), s3.is_some(), neo4j.is_some()) {
            return None;
        }
        Some(Restore {
            postgres,
            s3,
            neo4j,
            expect: expect.unwrap_or_default(),
            capture: capture.unwrap_or_default(),
        })
    }

    fn json_expect(&self) -> &BTreeMap<String, Matcher> {
        &self.expect.json
    }

    fn captures(&self) -> &BTreeMap<String, Capture> {
        &self.capture
    }
}
