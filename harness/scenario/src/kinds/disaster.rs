//! `disaster`: damage a store under test on purpose, the second step of a restore drill.

use super::{
    backup::{one_store, store_of, stores_decoded, table_name},
    traffic::{JsonExpect, json_expect},
    *,
};

/// Damage the scenario's database, its server, its bucket or its graph on purpose. The drill's recovery time (RTO) is
/// counted from this moment, and the writer a `backup` started stops here: every record it
/// had committed by now must be found again after the restore, or counts as lost (RPO).
///
/// The document: `{store, what, table, acknowledged}` (the writer's records so far), or
/// for `s3` `{store, what, keys}`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Disaster {
    /// What happens to the scenario's Postgres database: exactly one of the keys.
    #[serde(default)]
    pub postgres: Option<PgDisaster>,
    /// What happens to the scenario's bucket: exactly one of the keys.
    #[serde(default)]
    pub s3: Option<S3Disaster>,
    /// What happens to the scenario's graph: exactly one of the keys.
    #[serde(default)]
    pub neo4j: Option<Neo4jDisaster>,
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
    /// `true`: the stack's server is killed (SIGKILL, as a crash or a lost machine) and stays
    /// down until the scenario ends; only a restore into a fresh instance (`physical`,
    /// `pgbackrest`) brings the data back, and what the server had not yet streamed or
    /// archived is lost.
    #[serde(default)]
    pub kill: bool,
    /// A table whose data file is corrupted on disk: its first page is overwritten after a
    /// checkpoint and the server restarted at once (so no cached copy hides it); reading
    /// the table then fails with Postgres's `invalid page` error.
    #[serde(default)]
    pub corrupt: Option<String>,
}

#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Neo4jDisaster {
    /// `true`: deletes every node of the scenario (and their relationships).
    #[serde(default)]
    pub wipe: bool,
    /// Deletes the scenario's nodes that carry this label too (`DETACH DELETE`).
    #[serde(default)]
    pub delete_label: Option<String>,
}

#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct S3Disaster {
    /// Deletes these objects (a versioned bucket keeps their versions behind delete markers).
    #[serde(default)]
    pub delete: Vec<String>,
    /// `true`: deletes every object.
    #[serde(default)]
    pub delete_all: bool,
    /// Replaces these objects' bodies with the given text.
    #[serde(default)]
    pub overwrite: BTreeMap<String, String>,
}

impl Kind for Disaster {
    const KEY: &'static str = "disaster";
    const WHAT: &'static str = "a `disaster` step";

    fn service(&self) -> Option<Service> {
        Some(store_of(self.postgres.is_some(), self.neo4j.is_some()))
    }

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        one_store(cx, &f, node, Self::WHAT)?;
        let s3 = opt(cx, &f, "s3", |cx, n| {
            let what = "`s3` of a `disaster` step";
            let g = fields(cx, n, what, S3Disaster::KEYS)?;
            let delete = opt(cx, &g, "delete", |cx, n| {
                list(cx, n, "`delete`", |cx, _, n| name(cx, n))
            });
            let delete_all = opt(cx, &g, "delete_all", boolean);
            let overwrite = opt(cx, &g, "overwrite", |cx, n| {
                string_map(cx, n, "`overwrite`")
            });
            let given = usize::from(g.get("delete").is_some())
                + usize::from(g.get("delete_all").is_some())
                + usize::from(g.get("overwrite").is_some());
            if given != 1 {
                cx.push(
                    Problem::new(
                        n.span,
                        format!("{what} needs exactly one of `delete`, `delete_all`, `overwrite`"),
                    )
                    .label(if given == 0 {
                        "nothing to do"
                    } else {
                        "more than one"
                    }),
                );
                return None;
            }
            if delete_all == Some(false) {
                cx.error(n.span, "`delete_all: false` does nothing; leave it out");
                return None;
            }
            let bad = |k: &str, ok: bool| g.get(k).is_some() && !ok;
            if bad("delete", delete.is_some())
                || bad("delete_all", delete_all.is_some())
                || bad("overwrite", overwrite.is_some())
            {
                return None;
            }
            Some(S3Disaster {
                delete: delete.unwrap_or_default(),
                delete_all: delete_all.unwrap_or(false),
                overwrite: overwrite.unwrap_or_default(),
            })
        });
        let neo4j = opt(cx, &f, "neo4j", |cx, n| {
            let what = "`neo4j` of a `disaster` step";
            let g = fields(cx, n, what, Neo4jDisaster::KEYS)?;
            let wipe = opt(cx, &g, "wipe", boolean);
            let delete_label = opt(cx, &g, "delete_label", |cx, n| {
                let l = name(cx, n)?;
                if l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    Some(l)
                } else {
                    cx.error(n.span, "a label is letters, digits and `_`");
                    None
                }
            });
            let given =
                usize::from(g.get("wipe").is_some()) + usize::from(g.get("delete_label").is_some());
            if given != 1 {
                cx.push(
                    Problem::new(
                        n.span,
                        format!("{what} needs exactly one of `wipe`, `delete_label`"),
                    )
                    .label(if given == 0 {
                        "nothing to do"
                    } else {
                        "more than one"
                    }),
                );
                return None;
            }
            if wipe == Some(false) {
                cx.error(n.span, "`wipe: false` does nothing; leave it out");
                return None;
            }
            if g.get("delete_label").is_some() && delete_label.is_none() {
                return None;
            }
            Some(Neo4jDisaster {
                wipe: wipe.unwrap_or(false),
                delete_label,
            })
        });
        let postgres = opt(cx, &f, "postgres", |cx, n| {
            let what = "`postgres` of a `disaster` step";
            let g = fields(cx, n, what, PgDisaster::KEYS)?;
            let drop_table = opt(cx, &g, "drop_table", table_name);
            let truncate = opt(cx, &g, "truncate", table_name);
            let kill = opt(cx, &g, "kill", boolean);
            let corrupt = opt(cx, &g, "corrupt", table_name);
            let keys = ["drop_table", "truncate", "kill", "corrupt"];
            let given = keys.iter().filter(|k| g.get(k).is_some()).count();
            if given != 1 {
                cx.push(
                    Problem::new(
                        n.span,
                        format!(
                            "{what} needs exactly one of `drop_table`, `truncate`, `kill`, `corrupt`"
                        ),
                    )
                    .label(if given == 0 {
                        "nothing to do"
                    } else {
                        "more than one"
                    }),
                );
                return None;
            }
            if kill == Some(false) {
                cx.error(n.span, "`kill: false` does nothing; leave it out");
                return None;
            }
            if drop_table.is_none() && truncate.is_none() && kill.is_none() && corrupt.is_none() {
                return None;
            }
            Some(PgDisaster {
                drop_table,
                truncate,
                kill: kill.unwrap_or(false),
                corrupt,
            })
        });
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `disaster` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        if !stores_decoded(&f, postgres.is_some(), s3.is_some(), neo4j.is_some()) {
            return None;
        }
        Some(Disaster {
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
