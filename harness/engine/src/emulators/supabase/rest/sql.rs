//! PostgREST requests as SQL: every name quoted (and checked against the live schema first),
//! every value a quoted `text` literal cast to its column's type as the catalog names it.

use std::collections::{BTreeMap, BTreeSet};

use super::query::{EmbedQuery, Filter, IsValue, Item, Op, Order, Path, Value};
use crate::run::stores::quote_ident;

/// A value of the request.
#[derive(Clone, Debug)]
pub enum Param {
    Text(String),
    List(Vec<String>),
}

/// A table (or view) of the exposed schema, as the catalog describes it now.
#[derive(Clone, Debug)]
pub struct Table {
    pub schema: String,
    pub name: String,
    /// Each column and its type (`format_type`), in order.
    pub columns: Vec<(String, String)>,
    pub primary_key: Vec<String>,
}

/// A request that names what does not exist, or cannot be built.
#[derive(Clone, Debug)]
pub struct BuildError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Option<String>,
    pub hint: Option<String>,
}

impl Table {
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    pub fn type_of(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, t)| t.as_str())
    }

    fn missing(&self, column: &str) -> BuildError {
        BuildError {
            status: 400,
            code: "42703".into(),
            message: format!("column {}.{} does not exist", self.name, column),
            details: None,
            hint: None,
        }
    }
}

/// A resource embedded through a foreign key, resolved against the catalog.
#[derive(Clone, Debug)]
pub struct Embed {
    pub table: Table,
    /// One-to-many (an array of rows) or many-to-one (one row or null).
    pub many: bool,
    /// The join: each embedded column and the outer column it equals.
    pub on: Vec<(String, String)>,
    /// `!inner`: an outer row without a related row is left out.
    pub inner: bool,
    /// The embedded items' own embeds, item by item.
    pub children: Vec<Option<Embed>>,
}

/// Builds one statement's text and parameters.
pub struct Builder<'t> {
    pub table: &'t Table,
    /// Conditions on the outer rows that `!inner` embeds add.
    pub inner: Vec<String>,
    /// Filters, order and paging of embedded resources, by their path in `select`.
    pub embedded: BTreeMap<Vec<String>, EmbedQuery>,
    /// The paths of `embedded` the select list has applied.
    used: BTreeSet<Vec<String>>,
}

impl<'t> Builder<'t> {
    pub fn new(table: &'t Table) -> Self {
        Builder {
            table,
            inner: Vec::new(),
            embedded: BTreeMap::new(),
            used: BTreeSet::new(),
        }
    }

    /// PostgREST's `PGRST108`, for filters on a resource the select list does not embed.
    pub fn unused_embedded(&self) -> Result<(), BuildError> {
        match self.embedded.keys().find(|k| !self.used.contains(*k)) {
            None => Ok(()),
            Some(k) => {
                let name = k.join(".");
                Err(BuildError {
                    status: 400,
                    code: "PGRST108".into(),
                    message: format!("'{name}' is not an embedded resource in this request"),
                    details: None,
                    hint: Some(format!(
                        "Verify that '{name}' is included in the 'select' query parameter."
                    )),
                })
            }
        }
    }

    /// A JSON document (rows to insert, a row's changes) as a `text` value.
    pub fn push_json(&mut self, v: serde_json::Value) -> String {
        self.bind(Param::Text(v.to_string()))
    }

    /// `p` as a SQL value: a quoted literal of type `text` (or `text[]`).
    pub fn bind(&mut self, p: Param) -> String {
        match p {
            Param::Text(s) => super::session::text(&s),
            Param::List(l) => super::session::text_array(&l),
        }
    }

    /// A column or JSON path as an expression, and its type (`None` for a JSON step: `jsonb`
    /// or text).
    fn path(&mut self, p: &Path) -> Result<(String, Option<String>), BuildError> {
        let ty = self
            .table
            .type_of(&p.column)
            .ok_or_else(|| self.table.missing(&p.column))?
            .to_owned();
        let mut expr = quote_ident(&p.column);
        if p.json.is_empty() {
            return Ok((expr, Some(ty)));
        }
        if !ty.starts_with("json") {
            return Err(BuildError {
                status: 400,
                code: "42883".into(),
                message: format!(
                    "operator does not exist: {ty} -> unknown (column {} is not json or jsonb)",
                    p.column
                ),
                details: None,
                hint: None,
            });
        }
        for (text, key) in &p.json {
            let k = self.bind(Param::Text(key.clone()));
            // An integer key indexes an array, as PostgREST takes it.
            let k = if key.parse::<i64>().is_ok() {
                format!("CAST({k} AS integer)")
            } else {
                format!("CAST({k} AS text)")
            };
            expr = format!("({expr} {} {k})", if *text { "->>" } else { "->" });
        }
        let last_text = p.json.last().is_some_and(|(t, _)| *t);
        Ok((
            expr,
            Some(if last_text {
                "text".into()
            } else {
                "jsonb".into()
            }),
        ))
    }

    /// A `WHERE` condition for `filters` (all of them), or `TRUE`.
    pub fn filters(&mut self, filters: &[Filter]) -> Result<String, BuildError> {
        if filters.is_empty() {
            return Ok("TRUE".into());
        }
        let parts: Vec<String> = filters
            .iter()
            .map(|f| self.filter(f))
            .collect::<Result<_, _>>()?;
        Ok(parts.join(" AND "))
    }

    fn filter(&mut self, f: &Filter) -> Result<String, BuildError> {
        match f {
            Filter::Logic {
                negate,
                and,
                children,
            } => {
                let parts: Vec<String> = children
                    .iter()
                    .map(|c| self.filter(c))
                    .collect::<Result<_, _>>()?;
                let joined = if parts.is_empty() {
                    if *and { "TRUE".into() } else { "FALSE".into() }
                } else {
                    parts.join(if *and { " AND " } else { " OR " })
                };
                Ok(if *negate {
                    format!("NOT ({joined})")
                } else {
                    format!("({joined})")
                })
            }
            Filter::Cond {
                path,
                negate,
                op,
                language,
                value,
            } => {
                let (lhs, ty) = self.path(path)?;
                let ty = ty.unwrap_or_else(|| "text".into());
                let one = |v: &Value| match v {
                    Value::One(s) => s.clone(),
                    Value::List(l) => l.join(","),
                    Value::Is(_) => String::new(),
                };
                let cond = match op {
                    Op::Eq | Op::Neq | Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                        let sym = match op {
                            Op::Eq => "=",
                            Op::Neq => "<>",
                            Op::Gt => ">",
                            Op::Gte => ">=",
                            Op::Lt => "<",
                            _ => "<=",
                        };
                        let p = self.bind(Param::Text(one(value)));
                        format!("{lhs} {sym} CAST({p} AS {ty})")
                    }
                    Op::Like | Op::Ilike => {
                        let p = self.bind(Param::Text(one(value).replace('*', "%")));
                        let sym = if *op == Op::Like { "LIKE" } else { "ILIKE" };
                        format!("CAST({lhs} AS text) {sym} {p}")
                    }
                    Op::Match | Op::Imatch => {
                        let p = self.bind(Param::Text(one(value)));
                        let sym = if *op == Op::Match { "~" } else { "~*" };
                        format!("CAST({lhs} AS text) {sym} {p}")
                    }
                    Op::Is => match value {
                        Value::Is(IsValue::Null) => format!("{lhs} IS NULL"),
                        Value::Is(IsValue::NotNull) => format!("{lhs} IS NOT NULL"),
                        Value::Is(IsValue::True) => format!("{lhs} IS TRUE"),
                        Value::Is(IsValue::False) => format!("{lhs} IS FALSE"),
                        _ => format!("{lhs} IS UNKNOWN"),
                    },
                    Op::In => {
                        let list = match value {
                            Value::List(l) => l.clone(),
                            other => vec![one(other)],
                        };
                        let p = self.bind(Param::List(list));
                        format!("{lhs} = ANY(CAST({p} AS {ty}[]))")
                    }
                    Op::Cs | Op::Cd | Op::Ov => {
                        let sym = match op {
                            Op::Cs => "@>",
                            Op::Cd => "<@",
                            _ => "&&",
                        };
                        let raw = one(value);
                        // `{a,b}` for arrays, JSON for jsonb, `[1,5)` for ranges: the
                        // column's type reads it.
                        let text = if ty.ends_with("[]") && raw.starts_with('(') {
                            format!("{{{}}}", &raw[1..raw.len().saturating_sub(1)])
                        } else {
                            raw
                        };
                        let p = self.bind(Param::Text(text));
                        format!("{lhs} {sym} CAST({p} AS {ty})")
                    }
                    Op::Fts | Op::Plfts | Op::Phfts | Op::Wfts => {
                        let func = match op {
                            Op::Fts => "to_tsquery",
                            Op::Plfts => "plainto_tsquery",
                            Op::Phfts => "phraseto_tsquery",
                            _ => "websearch_to_tsquery",
                        };
                        let p = self.bind(Param::Text(one(value)));
                        let (query, doc) = match language {
                            Some(l) => {
                                let c = self.bind(Param::Text(l.clone()));
                                (
                                    format!("{func}(CAST({c} AS regconfig), {p})"),
                                    format!("to_tsvector(CAST({c} AS regconfig), {lhs})"),
                                )
                            }
                            None => (format!("{func}({p})"), format!("to_tsvector({lhs})")),
                        };
                        let doc = if ty == "tsvector" { lhs.clone() } else { doc };
                        format!("{doc} @@ {query}")
                    }
                };
                Ok(if *negate {
                    format!("NOT ({cond})")
                } else {
                    cond
                })
            }
        }
    }

    /// The select list for `items` (`None`: every column). `casts` are the checked type
    /// names of the items' casts, in order.
    pub fn select_list(
        &mut self,
        items: Option<&[Item]>,
        casts: &[Option<String>],
    ) -> Result<String, BuildError> {
        self.select_in(items, casts, "", &[], 0, &[])
    }

    /// The select list of rows of `self.table` reached as `alias`, with `embeds` resolved
    /// item by item (`depth` names the nested aliases).
    pub fn select_in(
        &mut self,
        items: Option<&[Item]>,
        casts: &[Option<String>],
        alias: &str,
        embeds: &'t [Option<Embed>],
        depth: usize,
        at: &[String],
    ) -> Result<String, BuildError> {
        let Some(items) = items else {
            return Ok("*".into());
        };
        let mut out = Vec::new();
        let mut cast_i = 0;
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Star => out.push("*".to_owned()),
                Item::Column { path, alias, cast } => {
                    let (expr, _) = self.path(path)?;
                    let expr = match cast {
                        Some(_) => {
                            let ty = casts.get(cast_i).cloned().flatten().unwrap_or_default();
                            cast_i += 1;
                            format!("CAST({expr} AS {ty})")
                        }
                        None => expr,
                    };
                    let name = alias.as_deref().unwrap_or(path.default_name());
                    out.push(format!("{expr} AS {}", quote_ident(name)));
                }
                Item::Embed {
                    name,
                    alias: as_name,
                    items: inner_items,
                    ..
                } => {
                    let Some(Some(e)) = embeds.get(i) else {
                        return Err(BuildError {
                            status: 400,
                            code: "PGRST200".into(),
                            message: format!(
                                "Could not find a relationship between '{}' and '{name}' in the schema cache",
                                self.table.name
                            ),
                            details: None,
                            hint: None,
                        });
                    };
                    let here = format!("_e{depth}");
                    let mut path = at.to_vec();
                    path.push(as_name.clone().unwrap_or_else(|| name.clone()));
                    let outer = self.table;
                    self.table = &e.table;
                    let list = self.select_in(
                        Some(inner_items),
                        &[],
                        &here,
                        &e.children,
                        depth + 1,
                        &path,
                    );
                    // The embed's own filters, order and page, on its table's columns.
                    let own = match self.embedded.get(&path).cloned() {
                        Some(q) => {
                            self.used.insert(path.clone());
                            self.embed_clauses(&q)
                        }
                        None => Ok((String::new(), String::new(), String::new())),
                    };
                    self.table = outer;
                    let list = list?;
                    let (own_filter, own_order, own_page) = own?;
                    let on = |a: &str| {
                        e.on.iter()
                            .map(|(inner, o)| {
                                let outer_col = if alias.is_empty() {
                                    format!("{}.{}", self.table.qualified(), quote_ident(o))
                                } else {
                                    format!("{alias}.{}", quote_ident(o))
                                };
                                format!("{a}.{} = {outer_col}", quote_ident(inner))
                            })
                            .collect::<Vec<_>>()
                            .join(" AND ")
                    };
                    let from = e.table.qualified();
                    let sub = if e.many {
                        format!(
                            "(SELECT coalesce(json_agg(_j), '[]'::json) FROM (SELECT {list} FROM {from} AS {here} WHERE {}{own_filter}{own_order}{own_page}) _j)",
                            on(&here)
                        )
                    } else {
                        format!(
                            "(SELECT row_to_json(_j) FROM (SELECT {list} FROM {from} AS {here} WHERE {}{own_filter} LIMIT 1) _j)",
                            on(&here)
                        )
                    };
                    if e.inner {
                        let x = format!("_x{depth}_{i}");
                        self.inner.push(format!(
                            "EXISTS (SELECT 1 FROM {from} AS {x} WHERE {}{own_filter})",
                            on(&x)
                        ));
                    }
                    // A to-one embed whose row its filters leave out is null, as PostgREST
                    // has it; the outer row stays (unless `!inner`).
                    out.push(format!(
                        "{sub} AS {}",
                        quote_ident(as_name.as_deref().unwrap_or(name))
                    ));
                }
            }
        }
        if out.is_empty() {
            return Ok("*".into());
        }
        Ok(out.join(", "))
    }

    /// ` AND (filters)`, ` ORDER BY …` and ` LIMIT … OFFSET …` of an embed, on
    /// `self.table` (the embedded table; its columns resolve in the nearest scope).
    fn embed_clauses(&mut self, q: &EmbedQuery) -> Result<(String, String, String), BuildError> {
        let filter = if q.filters.is_empty() {
            String::new()
        } else {
            format!(" AND ({})", self.filters(&q.filters)?)
        };
        let order = self.order(&q.order)?;
        let page = match (q.limit, q.offset) {
            (None, None) => String::new(),
            (Some(l), o) => format!(" LIMIT {l} OFFSET {}", o.unwrap_or(0)),
            (None, Some(o)) => format!(" OFFSET {o}"),
        };
        Ok((filter, order, page))
    }

    pub fn order(&mut self, order: &[Order]) -> Result<String, BuildError> {
        if order.is_empty() {
            return Ok(String::new());
        }
        let mut terms = Vec::new();
        for o in order {
            let (expr, _) = self.path(&o.path)?;
            let nulls = match o.nulls_first {
                Some(true) => " NULLS FIRST",
                Some(false) => " NULLS LAST",
                None => "",
            };
            terms.push(format!(
                "{expr} {}{nulls}",
                if o.desc { "DESC" } else { "ASC" }
            ));
        }
        Ok(format!(" ORDER BY {}", terms.join(", ")))
    }

    /// Checks that every column exists, and quotes them.
    pub fn columns(&self, columns: &[String]) -> Result<Vec<String>, BuildError> {
        columns
            .iter()
            .map(|c| {
                self.table
                    .type_of(c)
                    .map(|_| quote_ident(c))
                    .ok_or_else(|| BuildError {
                        status: 400,
                        code: "PGRST204".into(),
                        message: format!(
                            "Could not find the '{c}' column of '{}' in the schema cache",
                            self.table.name
                        ),
                        details: None,
                        hint: None,
                    })
            })
            .collect()
    }
}

/// Every distinct key of a JSON object or array of objects, in first-seen order.
pub fn keys_of(body: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let rows: Vec<&serde_json::Value> = match body {
        serde_json::Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for r in rows {
        if let Some(o) = r.as_object() {
            for k in o.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    keys
}
