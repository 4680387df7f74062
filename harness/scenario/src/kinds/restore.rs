//! `restore`: restore the latest backup, the third step of a restore drill.

use super::{
    backup::{
        PgMethod, S3Method, one_store, pg_jobs, pg_method, s3_method, store_of, stores_decoded,
    },
    traffic::{JsonExpect, json_expect},
    *,
};

/// Restore the latest `backup` step's backup of the store. Postgres: into a fresh database
/// that then takes the damaged one's place under the same name (so
/// `${scenario.database_url}` and every process that holds it reach the restored data).
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
    pub expect: JsonExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct PgRestore {
    /// The backup's method.
    pub method: PgMethod,
    /// Parallel jobs of `pg_restore` (default: the backup's).
    #[serde(default)]
    pub jobs: Option<u64>,
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
        Some(store_of(self.postgres.is_some()))
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
        let postgres = opt(cx, &f, "postgres", |cx, n| {
            let what = "`postgres` of a `restore` step";
            let g = fields(cx, n, what, PgRestore::KEYS)?;
            let method = req(cx, &g, "method", what, pg_method);
            let jobs = opt(cx, &g, "jobs", pg_jobs);
            Some(PgRestore {
                method: method?,
                jobs,
            })
        });
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `restore` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        if !stores_decoded(&f, postgres.is_some(), s3.is_some()) {
            return None;
        }
        Some(Restore {
            postgres,
            s3,
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
