//! `verify`: check the restored data and give the drill's verdict, its last step.

use super::{
    backup::{one_store, store_of, stores_decoded, table_name},
    traffic::{JsonExpect, json_expect},
    *,
};

/// Check the restored database against what the backup captured, measure the drill, and
/// hold it to its objectives. Each of `tables` must be present with the row count and
/// checksum it had at the backup; a missing or different table fails the step, naming it.
/// The writer's records are looked up one by one: those committed before the disaster and
/// not found are the data lost (RPO). The recovery time (RTO) runs from the disaster to the
/// moment this verification passed, in phases.
///
/// For `s3`, every backed-up object (or the `keys` given) must be current with the
/// checksum it had; an object missing or changed fails the step, naming it.
///
/// The document: `{tables: {NAME: {rows, checksum, expected_rows}}, rto_ms, phases_ms:
/// {detect, provision, restore, replay, verify}, rpo_ms, rpo: {acknowledged, lost,
/// first_lost, last_lost, lost_span_ms}}`; for `s3`, `objects: {KEY: {sha256, size}}` in
/// place of `tables`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    #[serde(default)]
    pub postgres: Option<PgVerify>,
    #[serde(default)]
    pub s3: Option<S3Verify>,
    #[serde(default)]
    pub neo4j: Option<Neo4jVerify>,
    /// The recovery time objective: the drill fails when the RTO is longer.
    #[serde(default)]
    pub rto_max: Option<Dur>,
    /// The recovery point objective: the drill fails when more commit time was lost.
    #[serde(default)]
    pub rpo_max: Option<Dur>,
    #[serde(default)]
    pub expect: JsonExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct PgVerify {
    /// Tables compared with the backup's capture (row count and checksum).
    pub tables: Vec<String>,
}

/// The scenario's graph compared with the backup: its node and relationship counts, by
/// label and by type, and a checksum of their labels, types and properties.
#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Neo4jVerify {}

#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct S3Verify {
    /// Objects compared with the backup (default: every backed-up object).
    #[serde(default)]
    pub keys: Option<Vec<String>>,
}

impl Kind for Verify {
    const KEY: &'static str = "verify";
    const WHAT: &'static str = "a `verify` step";

    fn service(&self) -> Option<Service> {
        Some(store_of(self.postgres.is_some(), self.neo4j.is_some()))
    }

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        one_store(cx, &f, node, Self::WHAT)?;
        let s3 = opt(cx, &f, "s3", |cx, n| {
            let what = "`s3` of a `verify` step";
            let g = fields(cx, n, what, S3Verify::KEYS)?;
            let keys = opt(cx, &g, "keys", |cx, n| {
                list(cx, n, "`keys`", |cx, _, n| name(cx, n))
            });
            if g.get("keys").is_some() && keys.is_none() {
                return None;
            }
            Some(S3Verify { keys })
        });
        let neo4j = opt(cx, &f, "neo4j", |cx, n| {
            fields(cx, n, "`neo4j` of a `verify` step", Neo4jVerify::KEYS)?;
            Some(Neo4jVerify {})
        });
        let postgres = opt(cx, &f, "postgres", |cx, n| {
            let what = "`postgres` of a `verify` step";
            let g = fields(cx, n, what, PgVerify::KEYS)?;
            let tables = req(cx, &g, "tables", what, |cx, n| {
                list(cx, n, "`tables`", |cx, _, n| table_name(cx, n))
            });
            Some(PgVerify { tables: tables? })
        });
        let rto_max = opt(cx, &f, "rto_max", duration);
        let rpo_max = opt(cx, &f, "rpo_max", duration);
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `verify` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        if !stores_decoded(&f, postgres.is_some(), s3.is_some(), neo4j.is_some()) {
            return None;
        }
        Some(Verify {
            postgres,
            s3,
            neo4j,
            rto_max,
            rpo_max,
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
