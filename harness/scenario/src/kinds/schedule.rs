//! `schedule`: faults on a timeline that runs alongside the steps after it.

use super::{fault::Fault, *};

/// Faults on a timeline: each entry is a `fault` (its keys: `target` or `process`, one
/// fault, `for`) with `at`, the moment after this step at which it is applied. The step
/// returns at once; the faults come and go while the next steps run, and whatever is still in
/// force when the steps end is removed before the rollbacks.
#[derive(Clone, Debug, JsonSchema)]
pub struct Schedule(pub Vec<Timed>);

impl Keys for Schedule {
    const KEYS: &'static [&'static str] = &[];
}

/// One fault of a schedule.
#[derive(Clone, Debug, JsonSchema, Keys)]
pub struct Timed {
    /// When it is applied, counted from the `schedule` step.
    pub at: Dur,
    /// The fault, with the keys of a `fault` step.
    #[serde(flatten)]
    pub fault: Fault,
    /// Where the entry is, for reports.
    #[serde(skip)]
    pub span: Span,
}

impl Kind for Schedule {
    const KEY: &'static str = "schedule";
    const WHAT: &'static str = "a `schedule` step";

    fn decode(cx: &mut Cx, node: &Node) -> Option<Self> {
        let entries = list(cx, node, "a `schedule` step's faults", |cx, _, n| {
            let NodeValue::Map(pairs) = &n.value else {
                cx.expected(n, "a fault with `at` (a map)");
                return None;
            };
            let at_node = pairs
                .iter()
                .find(|(k, _)| matches!(&k.value, NodeValue::Str(s) if s == "at"))
                .map(|(_, v)| v);
            let Some(at_node) = at_node else {
                cx.push(
                    Problem::new(n.span, "a scheduled fault is missing `at`")
                        .help("`at: 2s` applies it 2 seconds after the `schedule` step"),
                );
                return None;
            };
            let at = duration(cx, at_node);
            // The rest is a `fault` step's body.
            let rest = Node {
                span: n.span,
                value: NodeValue::Map(
                    pairs
                        .iter()
                        .filter(|(k, _)| !matches!(&k.value, NodeValue::Str(s) if s == "at"))
                        .cloned()
                        .collect(),
                ),
            };
            let fault = <Fault as Kind>::decode(cx, &rest);
            if let Some(f) = &fault
                && f.process.is_some()
                && (f.start == Some(true) || f.restart == Some(true))
            {
                cx.push(
                    Problem::new(n.span, "a scenario process is started again by a `fault` step, not from a schedule")
                        .help("use a `fault` step with `start` or `restart` among the steps"),
                );
                return None;
            }
            Some(Timed {
                at: at?,
                fault: fault?,
                span: n.span,
            })
        })?;
        if entries.is_empty() {
            cx.error(node.span, "a `schedule` step needs at least one fault");
            return None;
        }
        Some(Schedule(entries))
    }
}
