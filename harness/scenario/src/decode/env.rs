//! Services named in a scenario: a service name, and `env_from` with the variables it gives.

use super::*;

/// A service name (`postgres`, `s3`, `neo4j`, `otel`), with did-you-mean.
pub(crate) fn service_node(cx: &mut Cx, node: &Node) -> Option<Service> {
    scenario::service(cx, node)
}

/// What an `env_from` gives: its services, and their variables (name, template text, and
/// where the service is written) for `env` to be filled from where it has no entry.
#[derive(Default)]
pub(crate) struct EnvFrom {
    pub services: Vec<Service>,
    pub vars: Vec<(&'static str, &'static str, Span)>,
}

/// `env_from`: services of the scenario's `stack`, each once.
pub(crate) fn env_from(cx: &mut Cx, node: &Node) -> Option<EnvFrom> {
    let NodeValue::Seq(nodes) = &node.value else {
        cx.expected(node, "`env_from` (a list)");
        return None;
    };
    let mut out: Vec<(Service, Span)> = Vec::new();
    let mut ok = true;
    for n in nodes {
        // Every entry is checked, also after a bad one.
        let Some(service) = scenario::service(cx, n) else {
            ok = false;
            continue;
        };
        let span = n.span;
        if let Some((_, first)) = out.iter().find(|(s, _)| *s == service) {
            cx.push(
                Problem::new(span, format!("`{}` is listed twice", service.name()))
                    .also(*first, "first here"),
            );
            ok = false;
        } else if !cx.stack.contains(&service) {
            cx.push(
                Problem::new(
                    span,
                    format!("`{}` is not in the scenario's `stack`", service.name()),
                )
                .label("not in `stack`")
                .help(format!(
                    "add `{}` to `stack`, or leave it out of `env_from`",
                    service.name()
                )),
            );
            ok = false;
        } else {
            out.push((service, span));
        }
    }
    ok.then(|| EnvFrom {
        vars: out
            .iter()
            .flat_map(|(s, span)| s.env().iter().map(move |(k, t)| (*k, *t, *span)))
            .collect(),
        services: out.into_iter().map(|(s, _)| s).collect(),
    })
}

/// `env` and `env_from` of a step or process: the variables (`env` wins over a service's
/// usual names) and the services named.
pub(crate) fn env_with_from(
    cx: &mut Cx,
    f: &Fields<'_>,
) -> (BTreeMap<String, template::Template>, Vec<Service>) {
    let env = opt(cx, f, "env", |cx, n| template_map(cx, n, "`env`"));
    let from = opt(cx, f, "env_from", env_from).unwrap_or_default();
    let mut env = env.unwrap_or_default();
    for (key, text, span) in &from.vars {
        if !env.contains_key(*key)
            && let Ok(t) = template::Template::new((*text).to_owned(), *span)
        {
            env.insert((*key).to_owned(), t);
        }
    }
    (env, from.services)
}
