//! `rls`: row-level security over every user-scoped table, proven through the Supabase
//! emulator's REST API.

use super::{
    traffic::{JsonExpect, json_expect},
    *,
};

/// Prove that no caller reaches another user's rows, in **every** user-scoped table of the
/// scenario's database (schema `public`), not only those a step happens to touch. A table is
/// user-scoped when it has the `owner` column, or is listed in `tables`. Each must have
/// row-level security on and no permissive policy that lets every row through
/// (`USING (true)` or `WITH CHECK (true)`); and, through the Supabase emulator's REST API,
/// each fixture user must read none of the rows other users own, and an anonymous caller
/// (the publishable key) none at all. So a user-scoped table added without a policy fails
/// the step even when no scenario writes to it. The document is
/// `{tables: [{table, owner, rls, others_rows}], findings: [...]}`; `others_rows` counts the
/// rows the readers do not own (0: the reads proved nothing for that table).
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Rls {
    /// The column naming a row's user (default `owner_id`).
    #[serde(default)]
    pub owner: Option<String>,
    /// More user-scoped tables, each with the column naming its rows' user: `{ users: id }`.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// The fixture users (`supabase.users`) who read (default: all of them).
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub expect: JsonExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

fn sql_ident(cx: &mut Cx, n: &Node, what: &str) -> Option<String> {
    let s = name(cx, n)?;
    let ok = s.len() <= 63
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Some(s)
    } else {
        cx.error(
            n.span,
            format!("`{s}` is not a {what} name: lowercase letters, digits and `_`"),
        );
        None
    }
}

impl Kind for Rls {
    const KEY: &'static str = "rls";
    const WHAT: &'static str = "an `rls` step";
    const SERVICE: Option<Service> = Some(Service::Postgres);

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let owner = opt(cx, &f, "owner", |cx, n| sql_ident(cx, n, "column"));
        let tables = opt(cx, &f, "tables", |cx, n| {
            map(cx, n, "`tables`", |cx, k, v| {
                sql_ident(cx, k, "table")?;
                sql_ident(cx, v, "column")
            })
        });
        let users = opt(cx, &f, "users", |cx, n| {
            list(cx, n, "`users`", |cx, _, n| name(cx, n))
        });
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of an `rls` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Rls {
            owner,
            tables: tables.unwrap_or_default(),
            users: users.unwrap_or_default(),
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
