//! `snapshot`: compare a value with a snapshot stored beside the scenario.

use super::*;

/// Compare a value with the snapshot stored beside the scenario.
#[derive(Clone, Debug, JsonSchema, Keys)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Snapshot name, unique within the scenario.
    pub name: String,
    /// The value; templates are expanded first.
    pub value: Value,
    /// JSONPaths whose values are replaced by `[redacted]` before comparing.
    #[serde(default)]
    pub redact: Vec<String>,
}

impl Kind for Snapshot {
    const KEY: &'static str = "snapshot";
    const WHAT: &'static str = "a `snapshot` step";

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let f = kind_fields::<Self>(cx, node)?;
        let snap_name = req(cx, &f, "name", Self::WHAT, |cx, n| {
            let s = name(cx, n)?;
            if valid_ident(&s) {
                Some(s)
            } else {
                cx.error(
                    n.span,
                    "a snapshot name must be letters, digits, `_` or `-` (it names a file)",
                );
                None
            }
        });
        let value = req(cx, &f, "value", Self::WHAT, value);
        let redact = opt(cx, &f, "redact", |cx, n| {
            list(cx, n, "`redact`", |cx, _, n| {
                let p = string(cx, n)?;
                json_path(cx, n, &p).then_some(p)
            })
        });
        Some(Snapshot {
            name: snap_name?,
            value: value?,
            redact: redact.unwrap_or_default(),
        })
    }
}
