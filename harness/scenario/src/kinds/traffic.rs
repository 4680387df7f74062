//! `traffic`: set a Cloud Run service's traffic split and tags.

use super::{deploy::run_name, *};

/// Set the traffic of a Cloud Run service on the scenario's emulator: a split by revision
/// and percent (summing to 100), tags (each its own URL), or `to_latest`. The document is a
/// `deploy` step's, for the service as it is afterwards.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// The Cloud Run service.
    pub service: String,
    /// The split: each entry a `revision` (or `latest: true`) with its `percent`, and an
    /// optional `tag`.
    #[serde(default)]
    pub split: Vec<Split>,
    /// `true`: all traffic to the latest ready revision (tags are kept).
    #[serde(default)]
    pub to_latest: Option<bool>,
    /// Tags to set or move, tag → revision (tags are kept otherwise).
    #[serde(default)]
    pub tags: BTreeMap<String, Template>,
    /// Tags to remove.
    #[serde(default)]
    pub remove_tags: Vec<String>,
    #[serde(default)]
    pub expect: JsonExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

/// One target of a split.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Split {
    #[serde(default)]
    pub revision: Option<Template>,
    /// `true`: the latest ready revision, whichever it is when a request comes.
    #[serde(default)]
    pub latest: Option<bool>,
    pub percent: u64,
    #[serde(default)]
    pub tag: Option<String>,
}

/// `expect.json` alone.
#[derive(Clone, Debug, Default, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct JsonExpect {
    #[serde(default)]
    pub json: BTreeMap<String, Matcher>,
}

pub(crate) fn json_expect(cx: &mut Cx, n: &Node, what: &str) -> Option<JsonExpect> {
    let g = fields(cx, n, what, JsonExpect::KEYS)?;
    Some(JsonExpect {
        json: opt(cx, &g, "json", path_matchers).unwrap_or_default(),
    })
}

impl Kind for Traffic {
    const KEY: &'static str = "traffic";
    const WHAT: &'static str = "a `traffic` step";

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let service = req(cx, &f, "service", Self::WHAT, |cx, n| {
            run_name(cx, n, "service name")
        });
        let split = opt(cx, &f, "split", |cx, n| {
            list(cx, n, "`split`", |cx, _, n| {
                let g = fields(cx, n, "a split target", Split::KEYS)?;
                let revision = opt(cx, &g, "revision", template);
                let latest = opt(cx, &g, "latest", boolean);
                let percent = req(cx, &g, "percent", "a split target", uint);
                let tag = opt(cx, &g, "tag", |cx, n| run_name(cx, n, "tag"));
                if revision.is_some() == (latest == Some(true)) {
                    cx.push(
                        Problem::new(n.span, "a split target has exactly one of `revision` and `latest: true`")
                            .help("`{ revision: api-v1, percent: 90 }` or `{ latest: true, percent: 10 }`"),
                    );
                    return None;
                }
                if percent.is_some_and(|p| p > 100) {
                    cx.error(n.span, "`percent` is at most 100");
                    return None;
                }
                Some(Split { revision, latest, percent: percent?, tag })
            })
        })
        .unwrap_or_default();
        let sum: u64 = split.iter().map(|s| s.percent).sum();
        if !split.is_empty() && sum != 100 {
            cx.push(
                Problem::new(
                    node.span,
                    format!("the split's percentages sum to {sum}, not 100"),
                )
                .help("every request goes somewhere: make the percents add up to 100"),
            );
        }
        let to_latest = opt(cx, &f, "to_latest", boolean);
        let tags = opt(cx, &f, "tags", |cx, n| template_map(cx, n, "`tags`")).unwrap_or_default();
        let remove_tags = opt(cx, &f, "remove_tags", |cx, n| {
            list(cx, n, "`remove_tags`", |cx, _, n| string(cx, n))
        })
        .unwrap_or_default();
        if split.is_empty() && to_latest != Some(true) && tags.is_empty() && remove_tags.is_empty()
        {
            cx.push(
                Problem::new(
                    node.span,
                    "a `traffic` step needs `split`, `to_latest`, `tags` or `remove_tags`",
                )
                .help("`split: [{ revision: ..., percent: 50 }, { latest: true, percent: 50 }]`"),
            );
            return None;
        }
        if !split.is_empty() && to_latest == Some(true) {
            cx.error(node.span, "`split` and `to_latest` cannot both be set");
            return None;
        }
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `traffic` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Traffic {
            service: service?,
            split,
            to_latest,
            tags,
            remove_tags,
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
