//! `restore`: restore the latest backup, the third step of a restore drill.

use super::{
    backup::{PgMethod, pg_method},
    traffic::{JsonExpect, json_expect},
    *,
};

/// Restore the scenario's database from the latest `backup` step's backup, into a fresh
/// database that then takes the damaged one's place under the same name (so
/// `${scenario.database_url}` and every process that holds it reach the restored data).
/// Each phase is timed: `provision` (the fresh database), `restore` (`pg_restore`),
/// `replay` (none for a logical backup) and `switch`.
///
/// The document: `{store, method, backup, phases_ms: {provision, restore, replay, switch},
/// duration_ms}`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    pub postgres: PgRestore,
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

impl Kind for Restore {
    const KEY: &'static str = "restore";
    const WHAT: &'static str = "a `restore` step";
    const SERVICE: Option<Service> = Some(Service::Postgres);

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let postgres = req(cx, &f, "postgres", Self::WHAT, |cx, n| {
            let what = "`postgres` of a `restore` step";
            let g = fields(cx, n, what, PgRestore::KEYS)?;
            let method = req(cx, &g, "method", what, pg_method);
            let jobs = opt(cx, &g, "jobs", |cx, n| {
                let j = uint(cx, n)?;
                if (1..=16).contains(&j) {
                    Some(j)
                } else {
                    cx.error(n.span, "`jobs` is 1 to 16");
                    None
                }
            });
            Some(PgRestore {
                method: method?,
                jobs,
            })
        });
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `restore` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Restore {
            postgres: postgres?,
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
