//! `disaster`: damage a store under test on purpose, the second step of a restore drill.

use super::{
    backup::table_name,
    traffic::{JsonExpect, json_expect},
    *,
};

/// Damage the scenario's database on purpose. The drill's recovery time (RTO) is counted
/// from this moment, and the writer a `backup` started stops here: every record it had
/// committed by now must be found again after the restore, or counts as lost (RPO).
///
/// The document: `{store, what, table, acknowledged}` (the writer's records so far).
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Disaster {
    /// What happens to the scenario's Postgres database: exactly one of the keys.
    pub postgres: PgDisaster,
    #[serde(default)]
    pub expect: JsonExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct PgDisaster {
    /// `DROP TABLE … CASCADE`.
    #[serde(default)]
    pub drop_table: Option<String>,
    /// `TRUNCATE … CASCADE`.
    #[serde(default)]
    pub truncate: Option<String>,
}

impl Kind for Disaster {
    const KEY: &'static str = "disaster";
    const WHAT: &'static str = "a `disaster` step";
    const SERVICE: Option<Service> = Some(Service::Postgres);

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let postgres = req(cx, &f, "postgres", Self::WHAT, |cx, n| {
            let what = "`postgres` of a `disaster` step";
            let g = fields(cx, n, what, PgDisaster::KEYS)?;
            let drop_table = opt(cx, &g, "drop_table", table_name);
            let truncate = opt(cx, &g, "truncate", table_name);
            let given = usize::from(g.get("drop_table").is_some())
                + usize::from(g.get("truncate").is_some());
            if given != 1 {
                cx.push(
                    Problem::new(
                        n.span,
                        format!("{what} needs exactly one of `drop_table`, `truncate`"),
                    )
                    .label(if given == 0 {
                        "nothing to do"
                    } else {
                        "more than one"
                    }),
                );
                return None;
            }
            Some(PgDisaster {
                drop_table,
                truncate,
            })
        });
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `disaster` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Disaster {
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
