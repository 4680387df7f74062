//! Decoders for steps: the common keys, then one function per step kind.

use super::*;

pub(super) fn steps(cx: &mut Cx, node: &Node, phase: Phase) -> Option<Vec<Step>> {
    list(cx, node, &format!("`{}`", phase.key()), |cx, index, n| {
        cx.scope = Scope::Step { phase, index };
        step(cx, n)
    })
}

pub fn step(cx: &mut Cx, node: &Node) -> Option<Step> {
    // The common keys come from `Step`; the kinds from the kind table (`x-` kinds are open).
    let mut known: Vec<&str> = Step::KEYS.to_vec();
    known.extend(crate::kinds::step_kinds());
    let is_kind = |k: &Node| k.as_str().is_some_and(crate::kinds::is_kind);
    let f = fields_where(cx, node, "a step", &known, |k| is_kind(k))?;
    let step_name = opt(cx, &f, "name", |cx, n| literal(cx, n, "step names"));
    let timeout = opt(cx, &f, "timeout", duration);
    let kinds: Vec<(&Node, &Node)> = f
        .entries
        .iter()
        .filter(|(k, _)| is_kind(k))
        .map(|(k, v)| (k, v))
        .collect();
    let (kind_key, body) = match kinds.as_slice() {
        [] => {
            // An unknown key was already reported with a suggestion; say nothing more then.
            let unknown = f.keys().any(|k| !known.contains(&k.key_text().as_str()));
            if !unknown {
                cx.push(Problem::new(f.head, "step has no kind").help(format!(
                    "add one of {}",
                    backticked(&crate::kinds::step_kinds().collect::<Vec<_>>())
                )));
            }
            return None;
        }
        [one] => *one,
        [first, second, ..] => {
            cx.push(
                Problem::new(
                    second.0.span,
                    format!(
                        "a step has exactly one kind; this one has `{}` and `{}`",
                        first.0.key_text(),
                        second.0.key_text()
                    ),
                )
                .also(first.0.span, "first kind")
                .help("split it into two steps"),
            );
            return None;
        }
    };
    let action = crate::kinds::decode_kind(cx, kind_key, body);
    Some(Step {
        name: step_name,
        timeout,
        action: action?,
        span: node.span,
    })
}
