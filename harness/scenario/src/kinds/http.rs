//! `http`: send a request; check status, headers, JSON and body; capture values.

use super::*;

/// An HTTP request and what its response must look like.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    pub url: Template,
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    #[serde(default)]
    pub query: BTreeMap<String, Template>,
    /// A text body.
    #[serde(default)]
    pub body: Option<Template>,
    /// A JSON body (sets `content-type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub expect: HttpExpect,
    /// Values to keep: `NAME: "$.json.path"` or `NAME: { header: etag }`.
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
    /// Call the scenario's Supabase emulator as a fixture user (`supabase.users`): sends its
    /// access token as `Authorization: Bearer` and the publishable key as `apikey`, unless
    /// the step sets them. `anon` sends the publishable key only; `service_role` the secret
    /// key in both.
    #[serde(default, rename = "as")]
    pub caller: Option<String>,
    #[serde(skip)]
    pub caller_span: Option<Span>,
}

#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    #[serde(default)]
    pub status: Option<Matcher>,
    /// Header name (any case) to matcher.
    #[serde(default)]
    pub headers: BTreeMap<String, Matcher>,
    /// JSONPath into the response body to matcher.
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
    /// Matcher on the body text.
    #[serde(default)]
    pub body: Option<Matcher>,
}

impl Kind for Http {
    const KEY: &'static str = "http";
    const WHAT: &'static str = "an `http` step";

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let method = opt(cx, &f, "method", http_method);
        let url = req(cx, &f, "url", Self::WHAT, template);
        let headers = opt(cx, &f, "headers", |cx, n| template_map(cx, n, "`headers`"));
        let query = opt(cx, &f, "query", |cx, n| template_map(cx, n, "`query`"));
        let body = opt(cx, &f, "body", template);
        let json = opt(cx, &f, "json", value);
        if body.is_some() && json.is_some() {
            cx.error(node.span, "an `http` step has `body` or `json`, not both");
        }
        let expect = opt(cx, &f, "expect", |cx, n| {
            let g = fields(cx, n, "`expect` of an `http` step", HttpExpect::KEYS)?;
            let status = opt(cx, &g, "status", |cx, n| {
                let m = matcher(cx, n)?;
                let code = match &m.op {
                    MatchOp::Eq(Value::Number(code)) => code.as_f64(),
                    _ => None,
                };
                match code {
                    Some(c) if !(100.0..=599.0).contains(&c) => {
                        cx.error(n.span, "an HTTP status is a number from 100 to 599");
                        None
                    }
                    _ => Some(m),
                }
            });
            let headers = opt(cx, &g, "headers", |cx, n| {
                map(cx, n, "`headers`", |cx, _, v| matcher(cx, v))
            });
            let json = opt(cx, &g, "json", path_matchers);
            let body = opt(cx, &g, "body", matcher);
            Some(HttpExpect {
                status,
                headers: headers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
                json: json.unwrap_or_default(),
                body,
            })
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, true));
        let caller = opt(cx, &f, "as", name);
        Some(Http {
            caller,
            caller_span: f.get("as").map(|n| n.span),
            method,
            url: url?,
            headers: headers.unwrap_or_default(),
            query: query.unwrap_or_default(),
            body,
            json,
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
