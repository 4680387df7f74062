//! `s3`: an object-store operation on the scenario's bucket.

use super::*;

/// An object-store operation on the scenario's bucket (or `bucket`).
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct S3 {
    pub op: S3Op,
    #[serde(default)]
    pub bucket: Option<Template>,
    #[serde(default)]
    pub key: Option<Template>,
    /// For `list` and `list_versions`.
    #[serde(default)]
    pub prefix: Option<Template>,
    /// Text to put.
    #[serde(default)]
    pub body: Option<Template>,
    /// A file to put (relative to the scenario file).
    #[serde(default)]
    pub file: Option<Template>,
    #[serde(default)]
    pub content_type: Option<Template>,
    /// Read or delete this version.
    #[serde(default)]
    pub version_id: Option<Template>,
    #[serde(default)]
    pub expect: S3Expect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Keys)]
#[serde(rename_all = "snake_case")]
pub enum S3Op {
    Put,
    Get,
    Head,
    List,
    ListVersions,
    Delete,
}

#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct S3Expect {
    /// Matcher on the object's text (`get`).
    #[serde(default)]
    pub body: Option<Matcher>,
    /// Whether the object exists (`get`, `head`).
    #[serde(default)]
    pub exists: Option<bool>,
    /// Number of keys or versions (`list`, `list_versions`).
    #[serde(default)]
    pub count: Option<Matcher>,
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
    /// The operation must fail with an error that matches.
    #[serde(default)]
    pub error: Option<Matcher>,
}

impl Kind for S3 {
    const KEY: &'static str = "s3";
    const WHAT: &'static str = "an `s3` step";
    const SERVICE: Option<Service> = Some(Service::S3);

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let op = req(cx, &f, "op", Self::WHAT, |cx, n| {
            let Some(text) = n.as_str() else {
                cx.expected(n, "an s3 op");
                return None;
            };
            let op = match text {
                "put" => S3Op::Put,
                "get" => S3Op::Get,
                "head" => S3Op::Head,
                "list" => S3Op::List,
                "list_versions" => S3Op::ListVersions,
                "delete" => S3Op::Delete,
                _ => {
                    let mut p = Problem::new(n.span, format!("unknown s3 op `{text}`"));
                    p = match did_you_mean(text, S3Op::KEYS.iter().copied()) {
                        Some(s) => p.help(format!("did you mean `{s}`?")),
                        None => p.help(format!("ops: {}", backticked(S3Op::KEYS))),
                    };
                    cx.push(p);
                    return None;
                }
            };
            Some(op)
        });
        let bucket = opt(cx, &f, "bucket", template);
        let key = opt(cx, &f, "key", template);
        let prefix = opt(cx, &f, "prefix", template);
        let body = opt(cx, &f, "body", template);
        let file = opt(cx, &f, "file", |cx, n| {
            let path = file_path(cx, n)?;
            Template::new(path, n.span).ok()
        });
        let content_type = opt(cx, &f, "content_type", template);
        let version_id = opt(cx, &f, "version_id", template);
        let expect = opt(cx, &f, "expect", |cx, n| {
            let g = fields(cx, n, "`expect` of an `s3` step", S3Expect::KEYS)?;
            let body = opt(cx, &g, "body", matcher);
            let exists = opt(cx, &g, "exists", boolean);
            let count = opt(cx, &g, "count", matcher);
            let json = opt(cx, &g, "json", path_matchers);
            let error = opt(cx, &g, "error", matcher);
            Some(S3Expect {
                body,
                exists,
                count,
                json: json.unwrap_or_default(),
                error,
            })
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        let op = op?;
        let needs_key = matches!(op, S3Op::Put | S3Op::Get | S3Op::Head | S3Op::Delete);
        if needs_key && f.get("key").is_none() {
            cx.push(Problem::new(
                node.span,
                format!("`s3` op `{}` needs a `key`", S3Op::KEYS[op as usize]),
            ));
            return None;
        }
        if op == S3Op::Put && f.get("body").is_some() == f.get("file").is_some() {
            cx.push(Problem::new(
                node.span,
                "`s3` op `put` needs exactly one of `body` and `file`",
            ));
            return None;
        }
        Some(S3 {
            op,
            bucket,
            key,
            prefix,
            body,
            file,
            content_type,
            version_id,
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
