//! `rollback`: send all of a Cloud Run service's traffic back to an earlier revision.

use super::{
    deploy::run_name,
    traffic::{JsonExpect, json_expect},
    *,
};

/// Send 100 % of a Cloud Run service's traffic to an earlier revision: `to`, or else the
/// ready revision before the one serving now. Tags are kept. The document is a `deploy`
/// step's, for the service afterwards, with `from` (what served before) and `to`.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The Cloud Run service.
    pub service: String,
    /// The revision to go back to (default: the previous ready one).
    #[serde(default)]
    pub to: Option<Template>,
    #[serde(default)]
    pub expect: JsonExpect,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
}

impl Kind for Rollback {
    const KEY: &'static str = "rollback";
    const WHAT: &'static str = "a `rollback` step";

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let service = req(cx, &f, "service", Self::WHAT, |cx, n| {
            run_name(cx, n, "service name")
        });
        let to = opt(cx, &f, "to", template);
        let expect = opt(cx, &f, "expect", |cx, n| {
            json_expect(cx, n, "`expect` of a `rollback` step")
        });
        let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
        Some(Rollback {
            service: service?,
            to,
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
