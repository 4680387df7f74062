//! `backup`: take a backup of a store under test, the first step of a restore drill.

use super::{
    traffic::{JsonExpect, json_expect},
    *,
};

/// Back up one store under test, `postgres` (the scenario's database), `s3` (its bucket) or
/// `neo4j` (its graph), and keep what a restore of it must reproduce: each table's row count
/// and checksum, each object's checksum and version, or the graph's counts and checksum, at
/// the moment of the backup. With `writer`, a writer starts first and keeps committing
/// numbered records to the store (rows of `harness_drill_writes`, objects under
/// `harness-drill-writes/`, or nodes labelled `HarnessDrillWrite`) until the `disaster`
/// step, so that the restore's data loss (RPO) is measured rather than assumed.
///
/// The document: `{store, method, backup, path, bytes, duration_ms, tables: {NAME: {rows,
/// checksum}}, writer: {rate, acknowledged}}`, or for `s3` `{store, method, backup, path,
/// bytes, duration_ms, objects: {KEY: {sha256, size, version_id}}}`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// The scenario's Postgres database.
    #[serde(default)]
    pub postgres: Option<PgBackup>,
    /// The scenario's bucket.
    #[serde(default)]
    pub s3: Option<S3Backup>,
    /// The scenario's graph: the nodes of its label and their relationships.
    #[serde(default)]
    pub neo4j: Option<Neo4jBackup>,
    /// A writer of sequence-numbered records, started before the backup.
    #[serde(default)]
    pub writer: Option<Writer>,
    #[serde(default)]
    pub expect: JsonExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

/// How the database is backed up.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct PgBackup {
    /// `logical`: `pg_dump` in the directory format. `physical`: a base backup of the
    /// server (`pg_basebackup`) and its WAL streamed from then on (`pg_receivewal`), for a
    /// point-in-time restore into a fresh instance. `pgbackrest`: a pgBackRest backup of
    /// the server into a repository of the scenario's, its WAL archived by the server's
    /// `archive_command` (`pgbackrest archive-push`), checked with `pgbackrest verify`.
    pub method: PgMethod,
    /// The pgBackRest backup type (`pgbackrest` only): `full`, `diff` (changes since the
    /// last full backup) or `incr` (since the last backup). Default: `full` for the
    /// scenario's first backup, `incr` after it.
    #[serde(default, rename = "type")]
    pub kind: Option<BackrestType>,
    /// Parallel jobs of `pg_dump` and later `pg_restore` (default 2; `logical` only).
    #[serde(default)]
    pub jobs: Option<u64>,
    /// Tables left out of the backup, as a faulty backup script would (`pg_dump
    /// --exclude-table`); a drill's `verify` must then fail, naming them (`logical` only).
    #[serde(default)]
    pub exclude_tables: Vec<String>,
}

/// A pgBackRest backup type.
#[derive(Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackrestType {
    /// Every file of the server.
    Full,
    /// The files changed since the last full backup.
    Diff,
    /// The files changed since the last backup of any type.
    Incr,
}

impl BackrestType {
    pub fn name(self) -> &'static str {
        match self {
            BackrestType::Full => "full",
            BackrestType::Diff => "diff",
            BackrestType::Incr => "incr",
        }
    }
}

/// How the bucket is backed up.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct S3Backup {
    /// `mirror`: every current object copied to a folder, with its SHA-256 and version.
    pub method: S3Method,
}

/// An object store backup method.
#[derive(Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum S3Method {
    /// A copy of every current object (restored by putting them back).
    Mirror,
    /// The bucket's own versions (restored by making each backed-up version current again,
    /// a deleted object's delete markers removed).
    Versions,
}

/// How the graph is backed up.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Neo4jBackup {
    /// `offline`: the DBMS stopped, its store copied, and started again (what Neo4j
    /// Community allows).
    pub method: Neo4jMethod,
}

/// A graph backup method.
#[derive(Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Neo4jMethod {
    /// A copy of the stopped DBMS's store, restored by starting a fresh DBMS on a copy of
    /// it.
    Offline,
}

/// A backup and restore method.
#[derive(Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PgMethod {
    /// `pg_dump -Fd` and `pg_restore -j`.
    Logical,
    /// `pg_basebackup` and `pg_receivewal`, restored to a recovery target and promoted.
    Physical,
    /// pgBackRest: `stanza-create`, `backup`, `verify`, and `restore` to a recovery target,
    /// the WAL archived by the server itself.
    Pgbackrest,
}

impl PgMethod {
    pub fn name(self) -> &'static str {
        match self {
            PgMethod::Logical => "logical",
            PgMethod::Physical => "physical",
            PgMethod::Pgbackrest => "pgbackrest",
        }
    }

    /// Whether the method restores a whole server to a recovery target.
    pub fn point_in_time(self) -> bool {
        matches!(self, PgMethod::Physical | PgMethod::Pgbackrest)
    }
}

/// Records committed at a steady rate while the drill runs.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Writer {
    /// Records per second (1 to 1000).
    pub rate: u64,
    /// How long the writer runs before the backup starts (default 500ms), so that some
    /// records precede it.
    #[serde(default)]
    pub lead: Option<Dur>,
}

impl Kind for Backup {
    const KEY: &'static str = "backup";
    const WHAT: &'static str = "a `backup` step";

    fn service(&self) -> Option<Service> {
        Some(store_of(self.postgres.is_some(), self.neo4j.is_some()))
    }

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        one_store(cx, &f, node, Self::WHAT)?;
        let postgres = opt(cx, &f, "postgres", pg_backup);
        let neo4j = opt(cx, &f, "neo4j", |cx, n| {
            let what = "`neo4j` of a `backup` step";
            let g = fields(cx, n, what, Neo4jBackup::KEYS)?;
            let method = req(cx, &g, "method", what, neo4j_method);
            Some(Neo4jBackup { method: method? })
        });
        let s3 = opt(cx, &f, "s3", |cx, n| {
            let what = "`s3` of a `backup` step";
            let g = fields(cx, n, what, S3Backup::KEYS)?;
            let method = req(cx, &g, "method", what, s3_method);
            Some(S3Backup { method: method? })
        });
        let writer = opt(cx, &f, "writer", writer);
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `backup` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        if !stores_decoded(&f, postgres.is_some(), s3.is_some(), neo4j.is_some()) {
            return None;
        }
        Some(Backup {
            postgres,
            s3,
            neo4j,
            writer,
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

/// Parallel jobs of the Postgres tools: 1 to 16.
pub(crate) fn pg_jobs(cx: &mut Cx, n: &Node) -> Option<u64> {
    let j = uint(cx, n)?;
    if (1..=16).contains(&j) {
        Some(j)
    } else {
        cx.error(n.span, "`jobs` is 1 to 16");
        None
    }
}

/// Whether a store's map that the step gives decoded (its problems are reported already).
pub(crate) fn stores_decoded(f: &Fields<'_>, postgres: bool, s3: bool, neo4j: bool) -> bool {
    (f.get("postgres").is_none() || postgres)
        && (f.get("s3").is_none() || s3)
        && (f.get("neo4j").is_none() || neo4j)
}

/// The store the step names: Postgres, Neo4j, else the object store.
pub(crate) fn store_of(postgres: bool, neo4j: bool) -> Service {
    match (postgres, neo4j) {
        (true, _) => Service::Postgres,
        (_, true) => Service::Neo4j,
        _ => Service::S3,
    }
}

/// Exactly one of `postgres`, `s3` and `neo4j`.
pub(crate) fn one_store(cx: &mut Cx, f: &Fields<'_>, node: &Node, what: &str) -> Option<()> {
    let given = ["postgres", "s3", "neo4j"]
        .iter()
        .filter(|k| f.get(k).is_some())
        .count();
    if given == 1 {
        return Some(());
    }
    cx.push(
        Problem::new(
            node.span,
            format!("{what} names exactly one store: `postgres`, `s3` or `neo4j`"),
        )
        .label(if given == 0 { "no store" } else { "two stores" }),
    );
    None
}

pub(crate) fn s3_method(cx: &mut Cx, n: &Node) -> Option<S3Method> {
    match n.as_str() {
        Some("mirror") => Some(S3Method::Mirror),
        Some("versions") => Some(S3Method::Versions),
        _ => {
            let mut p = Problem::new(n.span, "unknown object store method").label("not a method");
            p = match n.as_str().and_then(|s| did_you_mean(s, ["mirror", "versions"])) {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help("methods: `mirror` (a copy of every object), `versions` (the bucket's own versions)"),
            };
            cx.push(p);
            None
        }
    }
}

pub(crate) fn neo4j_method(cx: &mut Cx, n: &Node) -> Option<Neo4jMethod> {
    match n.as_str() {
        Some("offline") => Some(Neo4jMethod::Offline),
        _ => {
            let mut p = Problem::new(n.span, "unknown graph backup method").label("not a method");
            p = match n.as_str().and_then(|s| did_you_mean(s, ["offline"])) {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help(
                    "methods: `offline` (the DBMS stopped and its store copied: what Neo4j Community allows)",
                ),
            };
            cx.push(p);
            None
        }
    }
}

pub(crate) fn pg_method(cx: &mut Cx, n: &Node) -> Option<PgMethod> {
    match n.as_str() {
        Some("logical") => Some(PgMethod::Logical),
        Some("physical") => Some(PgMethod::Physical),
        Some("pgbackrest") => Some(PgMethod::Pgbackrest),
        _ => {
            let mut p = Problem::new(n.span, "unknown backup method").label("not a method");
            p = match n
                .as_str()
                .and_then(|s| did_you_mean(s, ["logical", "physical", "pgbackrest"]))
            {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help(
                    "methods: `logical` (pg_dump / pg_restore), `physical` (pg_basebackup and WAL, restored to a point in time), `pgbackrest` (pgBackRest's backup, verify and restore)",
                ),
            };
            cx.push(p);
            None
        }
    }
}

/// Refuses `keys` of the logical method's tools on another method.
pub(crate) fn logical_only(
    cx: &mut Cx,
    f: &Fields<'_>,
    method: PgMethod,
    keys: &[&str],
) -> Option<()> {
    if method == PgMethod::Logical {
        return Some(());
    }
    let mut ok = true;
    for key in keys {
        if let Some(n) = f.get(key) {
            cx.push(
                Problem::new(
                    n.span,
                    format!("`{key}` goes with the `logical` method (pg_dump / pg_restore)"),
                )
                .label(format!("not for `{}`", method.name())),
            );
            ok = false;
        }
    }
    ok.then_some(())
}

/// A table name as Postgres takes it unquoted (`schema.table` allowed).
pub(crate) fn table_name(cx: &mut Cx, n: &Node) -> Option<String> {
    let s = name(cx, n)?;
    let ok = s.split('.').count() <= 2
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !ok {
        cx.error(
            n.span,
            "a table name is lowercase letters, digits and `_` (optionally `schema.table`)",
        );
        return None;
    }
    Some(s)
}

fn pg_backup(cx: &mut Cx, n: &Node) -> Option<PgBackup> {
    let what = "`postgres` of a `backup` step";
    let f = fields(cx, n, what, PgBackup::KEYS)?;
    let method = req(cx, &f, "method", what, pg_method);
    let jobs = opt(cx, &f, "jobs", pg_jobs);
    let exclude_tables = opt(cx, &f, "exclude_tables", |cx, n| {
        list(cx, n, "`exclude_tables`", |cx, _, n| table_name(cx, n))
    });
    let kind = opt(cx, &f, "type", backrest_type);
    let method = method?;
    logical_only(cx, &f, method, &["jobs", "exclude_tables"])?;
    if method != PgMethod::Pgbackrest
        && let Some(t) = f.get("type")
    {
        cx.push(
            Problem::new(t.span, "a backup `type` goes with the `pgbackrest` method")
                .label(format!("not for `{}`", method.name())),
        );
        return None;
    }
    Some(PgBackup {
        method,
        jobs,
        exclude_tables: exclude_tables.unwrap_or_default(),
        kind,
    })
}

fn backrest_type(cx: &mut Cx, n: &Node) -> Option<BackrestType> {
    match n.as_str() {
        Some("full") => Some(BackrestType::Full),
        Some("diff") => Some(BackrestType::Diff),
        Some("incr") => Some(BackrestType::Incr),
        _ => {
            let mut p = Problem::new(n.span, "unknown pgBackRest backup type").label("not a type");
            p = match n
                .as_str()
                .and_then(|s| did_you_mean(s, ["full", "diff", "incr"]))
            {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help("types: `full`, `diff`, `incr`"),
            };
            cx.push(p);
            None
        }
    }
}

fn writer(cx: &mut Cx, n: &Node) -> Option<Writer> {
    let what = "`writer` of a `backup` step";
    let f = fields(cx, n, what, Writer::KEYS)?;
    let rate = req(cx, &f, "rate", what, |cx, n| {
        let r = uint(cx, n)?;
        if (1..=1000).contains(&r) {
            Some(r)
        } else {
            cx.error(n.span, "`rate` is 1 to 1000 records per second");
            None
        }
    });
    let lead = opt(cx, &f, "lead", duration);
    Some(Writer { rate: rate?, lead })
}
