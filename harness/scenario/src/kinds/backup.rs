//! `backup`: take a backup of a store under test, the first step of a restore drill.

use super::{
    traffic::{JsonExpect, json_expect},
    *,
};

/// Back up the scenario's database (the only store drills cover so far), and keep what a
/// restore of it must reproduce: each table's row count and checksum at the moment of the
/// backup. With `writer`, a writer starts first and keeps committing numbered records to
/// the database until the `disaster` step, so that the restore's data loss (RPO) is
/// measured rather than assumed.
///
/// The document: `{store, method, backup, path, bytes, duration_ms, tables: {NAME: {rows,
/// checksum}}, writer: {rate, acknowledged}}`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// The scenario's Postgres database.
    pub postgres: PgBackup,
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
    /// `logical`: `pg_dump` in the directory format.
    pub method: PgMethod,
    /// Parallel jobs of `pg_dump` and later `pg_restore` (default 2).
    #[serde(default)]
    pub jobs: Option<u64>,
    /// Tables left out of the backup, as a faulty backup script would (`pg_dump
    /// --exclude-table`); a drill's `verify` must then fail, naming them.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
}

/// A backup and restore method.
#[derive(Clone, Copy, Debug, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PgMethod {
    /// `pg_dump -Fd` and `pg_restore -j`.
    Logical,
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
    const SERVICE: Option<Service> = Some(Service::Postgres);

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let postgres = req(cx, &f, "postgres", Self::WHAT, pg_backup);
        let writer = opt(cx, &f, "writer", writer);
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `backup` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Backup {
            postgres: postgres?,
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

pub(crate) fn pg_method(cx: &mut Cx, n: &Node) -> Option<PgMethod> {
    match n.as_str() {
        Some("logical") => Some(PgMethod::Logical),
        _ => {
            let mut p = Problem::new(n.span, "unknown backup method").label("not a method");
            p = match n.as_str().and_then(|s| did_you_mean(s, ["logical"])) {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help("methods: `logical` (pg_dump / pg_restore)"),
            };
            cx.push(p);
            None
        }
    }
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
    let jobs = opt(cx, &f, "jobs", |cx, n| {
        let j = uint(cx, n)?;
        if (1..=16).contains(&j) {
            Some(j)
        } else {
            cx.error(n.span, "`jobs` is 1 to 16");
            None
        }
    });
    let exclude_tables = opt(cx, &f, "exclude_tables", |cx, n| {
        list(cx, n, "`exclude_tables`", |cx, _, n| table_name(cx, n))
    });
    Some(PgBackup {
        method: method?,
        jobs,
        exclude_tables: exclude_tables.unwrap_or_default(),
    })
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
