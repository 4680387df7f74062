//! Checks that need the whole scenario: references resolve in their scope, vars do not
//! form cycles, and every step's service is part of the scenario's `stack`.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    Action,
    decode::{Phase, Scope, UsedRef, backticked},
    diag::{Problem, Span},
    model::{Fixture, Scenario, Service, Step},
    suggest::did_you_mean,
    template::{self, FAKE_KINDS, ROOTS, SCENARIO_FIELDS},
};

/// `fixture_spans` holds where each of `s.fixtures` was written.
pub fn check(s: &Scenario, refs: &[UsedRef], fixture_spans: &[Span], problems: &mut Vec<Problem>) {
    check_services(s, fixture_spans, problems);
    check_names(s, problems);
    for r in refs {
        check_ref(s, r, problems);
    }
    check_var_cycles(s, refs, problems);
    check_supabase(s, problems);
}

/// Fields of `${supabase.users.NAME.…}`.
pub const SUPABASE_USER_FIELDS: [&str; 6] = [
    "id",
    "email",
    "phone",
    "password",
    "access_token",
    "refresh_token",
];

/// The `http` steps' callers name fixture users, and the emails are the users' own.
fn check_supabase(s: &Scenario, problems: &mut Vec<Problem>) {
    let users = s.supabase.as_ref().map(|p| &p.users);
    let mut emails: BTreeMap<String, Span> = BTreeMap::new();
    for u in users.into_iter().flat_map(|u| u.values()) {
        if let Some(first) = emails.insert(u.email.to_ascii_lowercase(), u.span) {
            problems.push(
                Problem::new(
                    u.span,
                    format!("two fixture users have the email {}", u.email),
                )
                .also(first, "first here")
                .help("Supabase keeps one user per email address"),
            );
        }
    }
    let message = "the Supabase emulator serves the scenario's Postgres database";
    let callers = all_steps(s).any(|st| st.action.calls_supabase());
    if (s.supabase.is_some() || callers)
        && !s.stack.is_empty()
        && !s.stack.contains(&Service::Postgres)
        && !problems.iter().any(|p| p.message == message)
    {
        problems
            .push(Problem::new(s.span, message).help("add `postgres` to the scenario's `stack`"));
    }
    fn http_steps<'a>(step: &'a Step, out: &mut Vec<&'a crate::kinds::http::Http>) {
        match &step.action {
            Action::Http(h) => out.push(h),
            Action::Eventually(e) => http_steps(&e.probe, out),
            _ => {}
        }
    }
    let mut https = Vec::new();
    for step in all_steps(s) {
        http_steps(step, &mut https);
    }
    for step in all_steps(s) {
        let Action::Rls(r) = &step.action else {
            continue;
        };
        let declared = users.map(|u| u.len()).unwrap_or(0);
        if declared == 0 {
            problems.push(
                Problem::new(
                    step.span,
                    "an `rls` step reads as fixture users, and this scenario declares none",
                )
                .help("declare them under `supabase.users`"),
            );
        }
        for name in &r.users {
            if !users.is_some_and(|u| u.contains_key(name)) {
                let mut p = Problem::new(
                    step.span,
                    format!(
                        "`rls` reads as `{name}`, which is not a Supabase user of this scenario"
                    ),
                );
                if let Some(c) = did_you_mean(
                    name,
                    users.into_iter().flat_map(|u| u.keys().map(String::as_str)),
                ) {
                    p = p.help(format!("did you mean `{c}`?"));
                }
                problems.push(p);
            }
        }
    }
    for h in https {
        let (Some(name), Some(span)) = (&h.caller, h.caller_span) else {
            continue;
        };
        let known = users.is_some_and(|u| u.contains_key(name))
            || crate::decode::SUPABASE_CALLERS.contains(&name.as_str());
        if !known {
            let names: Vec<&str> = users
                .into_iter()
                .flat_map(|u| u.keys().map(String::as_str))
                .chain(crate::decode::SUPABASE_CALLERS)
                .collect();
            let mut p = Problem::new(
                span,
                format!("`as: {name}` is not a Supabase user of this scenario"),
            )
            .label("unknown user");
            p = match did_you_mean(name, names.iter().copied()) {
                Some(c) => p.help(format!("did you mean `{c}`?")),
                None => p.help(
                    "declare it under `supabase.users`, or write `as: anon` or `as: service_role`",
                ),
            };
            problems.push(p);
        }
    }
}

/// The service a step kind talks to.
fn service_of(action: &Action) -> Option<Service> {
    match action {
        Action::Sql(_) => Some(Service::Postgres),
        Action::S3(_) => Some(Service::S3),
        Action::Cypher(_) => Some(Service::Neo4j),
        Action::Telemetry(_) => Some(Service::Otel),
        Action::Eventually(e) => service_of(&e.probe.action),
        _ => None,
    }
}

fn all_steps(s: &Scenario) -> impl Iterator<Item = &Step> {
    s.steady_state.iter().chain(&s.steps).chain(&s.rollbacks)
}

fn check_services(s: &Scenario, fixture_spans: &[Span], problems: &mut Vec<Problem>) {
    for step in all_steps(s) {
        if let Some(svc) = service_of(&step.action)
            && !s.stack.contains(&svc)
        {
            problems.push(
                Problem::new(
                    step.span,
                    format!(
                        "`{}` step needs {} but the scenario's `stack` does not list it",
                        step.action.kind(),
                        svc.name()
                    ),
                )
                .label(format!("uses {}", svc.name()))
                .help(format!("add `{}` to `stack`", svc.name())),
            );
        }
    }
    for (i, f) in s.fixtures.iter().enumerate() {
        let svc = match f {
            Fixture::Sql(_) => Service::Postgres,
            Fixture::Cypher(_) => Service::Neo4j,
            Fixture::S3(_) => Service::S3,
        };
        if !s.stack.contains(&svc) {
            let span = fixture_spans.get(i).copied().unwrap_or(s.span);
            problems.push(
                Problem::new(
                    span,
                    format!(
                        "a fixture needs {} but the scenario's `stack` does not list it",
                        svc.name()
                    ),
                )
                .label(format!("uses {}", svc.name()))
                .help(format!("add `{}` to `stack`", svc.name())),
            );
        }
    }
}

fn check_names(s: &Scenario, problems: &mut Vec<Problem>) {
    let mut mocks = BTreeMap::new();
    for m in &s.mocks {
        if let Some(first) = mocks.insert(m.name.clone(), m.span) {
            problems.push(
                Problem::new(m.span, format!("mock `{}` is declared twice", m.name))
                    .also(first, "first declared here"),
            );
        }
    }
    let mut procs = BTreeMap::new();
    for p in &s.processes {
        if let Some(first) = procs.insert(p.name.clone(), p.span) {
            problems.push(
                Problem::new(p.span, format!("process `{}` is declared twice", p.name))
                    .also(first, "first declared here"),
            );
        }
    }
    let mut snaps = BTreeMap::new();
    for step in all_steps(s) {
        if let Action::Snapshot(snap) = &step.action
            && let Some(first) = snaps.insert(snap.name.clone(), step.span)
        {
            problems.push(
                Problem::new(
                    step.span,
                    format!("snapshot `{}` is used twice in this scenario", snap.name),
                )
                .also(first, "first used here"),
            );
        }
    }
}

/// Captures visible from a step: those of earlier steps, in phase order.
fn captures_before(s: &Scenario, phase: Phase, index: usize) -> BTreeSet<String> {
    let names = |steps: &[Step]| -> Vec<String> {
        steps
            .iter()
            .flat_map(|st| st.action.captures().into_iter().map(str::to_owned))
            .collect()
    };
    let mut out = BTreeSet::new();
    match phase {
        Phase::SteadyState => out.extend(names(&s.steady_state[..index.min(s.steady_state.len())])),
        Phase::Steps => {
            out.extend(names(&s.steady_state));
            out.extend(names(&s.steps[..index.min(s.steps.len())]));
        }
        Phase::Rollbacks => {
            out.extend(names(&s.steady_state));
            out.extend(names(&s.steps));
            out.extend(names(&s.rollbacks[..index.min(s.rollbacks.len())]));
        }
    }
    out
}

fn all_captures(s: &Scenario) -> BTreeSet<String> {
    all_steps(s)
        .flat_map(|st| st.action.captures().into_iter().map(str::to_owned))
        .collect()
}

fn check_ref(s: &Scenario, u: &UsedRef, problems: &mut Vec<Problem>) {
    let r = &u.r;
    let err = |msg: String| Problem::new(u.span, msg).label(format!("`${{{}}}`", r.dotted()));
    let first = r.path.first().map(String::as_str);
    match r.root.as_str() {
        "vars" => match first {
            None => problems.push(err("`vars` needs a name, like `${vars.user}`".into())),
            Some(name) if !s.vars.contains_key(name) => {
                let mut p = err(format!("unknown var `{name}`"));
                p = match did_you_mean(name, s.vars.keys().map(String::as_str)) {
                    Some(c) => p.help(format!("did you mean `{c}`?")),
                    None => p.help("declare it under `vars`"),
                };
                problems.push(p);
            }
            Some(_) => {}
        },
        "captures" => {
            let Some(name) = first else {
                problems.push(err("`captures` needs a name, like `${captures.id}`".into()));
                return;
            };
            match &u.scope {
                Scope::Step { phase, index } => {
                    let visible = captures_before(s, *phase, *index);
                    if !visible.contains(name) {
                        let all = all_captures(s);
                        let mut p = if all.contains(name) {
                            err(format!("capture `{name}` is not set yet here"))
                                .help("a step can use only captures of the steps before it")
                        } else {
                            err(format!("unknown capture `{name}`"))
                        };
                        if !all.contains(name) {
                            p = match did_you_mean(name, all.iter().map(String::as_str)) {
                                Some(c) => p.help(format!("did you mean `{c}`?")),
                                None => p.help("no earlier step captures it; add `capture:` to the step that produces it"),
                            };
                        }
                        problems.push(p);
                    }
                }
                Scope::Var(_)
                | Scope::Fixture
                | Scope::Mock
                | Scope::Process(_)
                | Scope::Defaults => problems.push(
                    err("captures are set by steps, so they cannot be used here".into())
                        .help("vars, fixtures and mocks are resolved before any step runs"),
                ),
            }
        }
        "faults" if first == Some("processes") || first == Some("mocks") => {
            check_fault_proxy_ref(s, u, problems);
        }
        "stack" | "faults" => {
            let names = Service::ALL.map(Service::name);
            let Some(svc) = first else {
                problems.push(err(
                    "`stack` needs a service, like `${stack.postgres.url}`".into()
                ));
                return;
            };
            let Some(service) = Service::ALL.into_iter().find(|x| x.name() == svc) else {
                let mut p = err(format!("unknown service `{svc}`"));
                p = match did_you_mean(svc, names) {
                    Some(c) => p.help(format!("did you mean `{c}`?")),
                    None => p.help(format!("services: {}", backticked(&names))),
                };
                problems.push(p);
                return;
            };
            if !s.stack.contains(&service) {
                problems.push(
                    err(format!("`{svc}` is not in the scenario's `stack`"))
                        .help(format!("add `{svc}` to `stack`")),
                );
            }
            let fields = template::stack_fields(svc).unwrap_or(&[]);
            match r.path.get(1) {
                Some(field) if r.path.len() == 2 && fields.contains(&field.as_str()) => {}
                Some(field) if r.path.len() == 2 => {
                    let mut p = err(format!("{svc} has no field `{field}`"));
                    p = match did_you_mean(field, fields.iter().copied()) {
                        Some(c) => p.help(format!("did you mean `{c}`?")),
                        None => p.help(format!("fields: {}", backticked(fields))),
                    };
                    problems.push(p);
                }
                _ => problems.push(err(format!(
                    "write `${{stack.{svc}.FIELD}}` with one of {}",
                    backticked(fields)
                ))),
            }
        }
        "env" => {
            if r.path.len() != 1 {
                problems.push(err("write `${env.NAME}` with one variable name".into()));
            }
        }
        "scenario" => match first {
            Some(field) if r.path.len() == 1 && SCENARIO_FIELDS.contains(&field) => {
                let needs = match field {
                    "database" | "database_url" => Some(Service::Postgres),
                    "bucket" => Some(Service::S3),
                    "graph_label" => Some(Service::Neo4j),
                    _ => None,
                };
                if let Some(svc) = needs
                    && !s.stack.contains(&svc)
                {
                    problems.push(err(format!(
                        "`scenario.{field}` needs {} in `stack`",
                        svc.name()
                    )));
                }
            }
            Some(field) => {
                let mut p = err(format!("unknown scenario field `{field}`"));
                p = match did_you_mean(field, SCENARIO_FIELDS) {
                    Some(c) => p.help(format!("did you mean `{c}`?")),
                    None => p.help(format!("fields: {}", backticked(&SCENARIO_FIELDS))),
                };
                problems.push(p);
            }
            None => problems.push(err(format!(
                "write `${{scenario.FIELD}}` with one of {}",
                backticked(&SCENARIO_FIELDS)
            ))),
        },
        "processes" if matches!(u.scope, Scope::Var(_) | Scope::Mock) => problems.push(
            err("processes start after vars and mocks are resolved, so vars and mocks cannot refer to them".into())
                .help("use `${processes.NAME.url}` in steps, or in a process declared after NAME"),
        ),
        "processes"
            if matches!(u.scope, Scope::Process(i)
                if !first.is_some_and(|name| s.processes[..i.min(s.processes.len())].iter().any(|p| p.name == name))
                    && first.is_some_and(|name| s.processes.iter().any(|p| p.name == name))) =>
        {
            problems.push(
                err("a process can refer only to processes declared before it".into())
                    .help("processes start in order; move this one after the one it uses"),
            )
        }
        "processes" => match first {
            Some(name) if s.processes.iter().any(|p| p.name == name) => {
                let field = r.path.get(1).map(String::as_str);
                if r.path.len() != 2 || !matches!(field, Some("url" | "port")) {
                    problems.push(err(format!("write `${{processes.{name}.url}}` or `${{processes.{name}.port}}`")));
                }
            }
            Some(name) => {
                let mut p = err(format!("unknown process `{name}`"));
                p = match did_you_mean(name, s.processes.iter().map(|p| p.name.as_str())) {
                    Some(c) => p.help(format!("did you mean `{c}`?")),
                    None => p.help("declare it under `processes`"),
                };
                problems.push(p);
            }
            None => problems.push(err("write `${processes.NAME.url}`".into())),
        },
        "mocks" if matches!(u.scope, Scope::Var(_)) => problems.push(
            err("vars are resolved before the mocks start, so they cannot refer to mocks".into())
                .help("write `${mocks.NAME.url}` where the value is used"),
        ),
        "cloud_run" => check_cloud_run_ref(s, u, problems),
        "supabase" if first == Some("users") => {
            let users = s.supabase.as_ref().map(|p| &p.users);
            match (r.path.get(1), r.path.get(2)) {
                (Some(name), field) if users.is_some_and(|u| u.contains_key(name)) => {
                    let field = field.map(String::as_str).unwrap_or_default();
                    if r.path.len() != 3 || !SUPABASE_USER_FIELDS.contains(&field) {
                        let mut p = err(format!("`${{supabase.users.{name}.{field}}}` is not a field of a Supabase user"));
                        p = match did_you_mean(field, SUPABASE_USER_FIELDS) {
                            Some(c) => p.help(format!("did you mean `{c}`?")),
                            None => p.help(format!("fields: {}", SUPABASE_USER_FIELDS.join(", "))),
                        };
                        problems.push(p);
                    }
                }
                (Some(name), _) => {
                    let mut p = err(format!("unknown Supabase user `{name}`"));
                    p = match did_you_mean(name, users.into_iter().flat_map(|u| u.keys().map(String::as_str))) {
                        Some(c) => p.help(format!("did you mean `{c}`?")),
                        None => p.help("declare it under `supabase.users`"),
                    };
                    problems.push(p);
                }
                (None, _) => problems.push(err("write `${supabase.users.NAME.FIELD}`".into())),
            }
        }
        "supabase" => {
            let field = first.unwrap_or_default();
            if r.path.len() != 1 || !crate::template::SUPABASE_FIELDS.contains(&field) {
                let mut p = err(format!("`${{supabase.{}}}` is not a field of the Supabase emulator", r.path.join(".")));
                p = match did_you_mean(field, crate::template::SUPABASE_FIELDS) {
                    Some(c) => p.help(format!("did you mean `{c}`?")),
                    None => p.help(format!("fields: {}", crate::template::SUPABASE_FIELDS.join(", "))),
                };
                problems.push(p);
            } else if !s.stack.is_empty() && !s.stack.contains(&Service::Postgres) {
                problems.push(
                    err("the Supabase emulator serves the scenario's Postgres database".into())
                        .help("add `postgres` to the scenario's `stack`"),
                );
            }
        }
        "mocks" => match first {
            Some(name) if s.mocks.iter().any(|m| m.name == name) => {
                if r.path.get(1).map(String::as_str) != Some("url") || r.path.len() != 2 {
                    problems.push(err(format!("write `${{mocks.{name}.url}}`")));
                }
            }
            Some(name) => {
                let mut p = err(format!("unknown mock `{name}`"));
                p = match did_you_mean(name, s.mocks.iter().map(|m| m.name.as_str())) {
                    Some(c) => p.help(format!("did you mean `{c}`?")),
                    None => p.help("declare it under `mocks`"),
                };
                problems.push(p);
            }
            None => problems.push(err("write `${mocks.NAME.url}`".into())),
        },
        "fake" => match first {
            Some(kind) if r.path.len() == 1 && FAKE_KINDS.contains(&kind) => {}
            None => problems.push(
                err("`fake` needs a generator, like `${fake.email}`".into())
                    .help(format!("generators: {}", backticked(&FAKE_KINDS))),
            ),
            Some(_) => {
                let mut p = err(format!("unknown generator `{}`", r.path.join(".")));
                p = match first.and_then(|k| did_you_mean(k, FAKE_KINDS)) {
                    Some(c) => p.help(format!("did you mean `{c}`?")),
                    None => p.help(format!("generators: {}", backticked(&FAKE_KINDS))),
                };
                problems.push(p);
            }
        },
        other => {
            let mut p = err(format!("unknown reference root `{other}`"));
            p = match did_you_mean(other, ROOTS) {
                Some(c) => p.help(format!("did you mean `{c}`?")),
                None => p.help(format!("references start with {}", backticked(&ROOTS))),
            };
            problems.push(p);
        }
    }
}

fn check_var_cycles(s: &Scenario, refs: &[UsedRef], problems: &mut Vec<Problem>) {
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for u in refs {
        if let (Scope::Var(from), "vars", Some(to)) =
            (&u.scope, u.r.root.as_str(), u.r.path.first())
        {
            edges.entry(from.as_str()).or_default().push(to.as_str());
        }
    }
    let mut reported = BTreeSet::new();
    for start in edges.keys() {
        let mut path = vec![*start];
        if let Some(cycle) = find_cycle(&edges, &mut path) {
            let mut members: Vec<&str> = cycle.clone();
            members.sort_unstable();
            if reported.insert(members) {
                let span = s.vars.get(cycle[0]).map(|v| v.span).unwrap_or(s.span);
                let chain = cycle
                    .iter()
                    .chain(std::iter::once(&cycle[0]))
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(" → ");
                problems.push(
                    Problem::new(
                        span,
                        format!("vars refer to each other in a cycle: {chain}"),
                    )
                    .label("this var is part of the cycle"),
                );
            }
        }
    }
}

fn find_cycle<'a>(
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    path: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    let last = *path.last()?;
    for next in edges.get(last).into_iter().flatten() {
        if let Some(pos) = path.iter().position(|p| p == next) {
            return Some(path[pos..].to_vec());
        }
        if path.len() > 64 {
            return None;
        }
        path.push(next);
        if let Some(c) = find_cycle(edges, path) {
            return Some(c);
        }
        path.pop();
    }
    None
}

/// `${faults.processes.NAME.url|port}` and `${faults.mocks.NAME.url}`: the same rules as
/// `${processes.…}` and `${mocks.…}`, through the scenario's proxy of that process or mock.
/// `${cloud_run.SERVICE.url}`, `.revision` (the latest ready one), `.tags.TAG`: for a
/// service that a `deploy` step of the scenario deploys.
fn check_cloud_run_ref(s: &Scenario, u: &UsedRef, problems: &mut Vec<Problem>) {
    let r = &u.r;
    let err = |m: String| Problem::new(u.span, m);
    if !matches!(u.scope, Scope::Step { .. }) {
        problems.push(
            err("a Cloud Run service exists only once a `deploy` step has run".into())
                .help("vars, fixtures, mocks and processes are resolved before any step runs"),
        );
        return;
    }
    let deployed: Vec<&str> = all_steps(s)
        .filter_map(|st| match &st.action {
            crate::Action::Deploy(d) => Some(d.service.as_str()),
            _ => None,
        })
        .collect();
    let Some(name) = r.path.first().map(String::as_str) else {
        problems.push(err("write `${cloud_run.SERVICE.url}`".into()));
        return;
    };
    if !deployed.contains(&name) {
        let mut p = err(format!(
            "no `deploy` step of this scenario deploys `{name}`"
        ));
        p = match did_you_mean(name, deployed.iter().copied()) {
            Some(c) => p.help(format!("did you mean `{c}`?")),
            None => p.help("a Cloud Run service exists once a `deploy` step has deployed it"),
        };
        problems.push(p);
        return;
    }
    let field = r.path.get(1).map(String::as_str);
    let ok = match field {
        Some("url" | "revision") => r.path.len() == 2,
        Some("tags") => r.path.len() == 3,
        _ => false,
    };
    if !ok {
        problems.push(err(format!(
            "write `${{cloud_run.{name}.url}}`, `${{cloud_run.{name}.revision}}` or `${{cloud_run.{name}.tags.TAG}}`"
        )));
    }
}

fn check_fault_proxy_ref(s: &Scenario, u: &UsedRef, problems: &mut Vec<Problem>) {
    let r = &u.r;
    let err = |m: String| Problem::new(u.span, m).label("here");
    let (kind, name, field) = (
        r.path[0].as_str(),
        r.path.get(1).map(String::as_str),
        r.path.get(2).map(String::as_str),
    );
    let names: Vec<&str> = if kind == "processes" {
        s.processes.iter().map(|p| p.name.as_str()).collect()
    } else {
        s.mocks.iter().map(|m| m.name.as_str()).collect()
    };
    let fields: &[&str] = if kind == "processes" {
        &["url", "port"]
    } else {
        &["url"]
    };
    let Some(name) = name.filter(|n| names.contains(n)) else {
        let shown = name.unwrap_or("NAME");
        let one = if kind == "processes" {
            "process"
        } else {
            "mock"
        };
        let mut p = err(format!("no {one} `{shown}` in this scenario"));
        p = match name.and_then(|n| did_you_mean(n, names.iter().copied())) {
            Some(c) => p.help(format!("did you mean `{c}`?")),
            None => p.help(format!("write `${{faults.{kind}.NAME.{}}}`", fields[0])),
        };
        problems.push(p);
        return;
    };
    if r.path.len() != 3 || !field.is_some_and(|f| fields.contains(&f)) {
        problems.push(err(format!(
            "write `${{faults.{kind}.{name}.FIELD}}` with one of {}",
            backticked(fields)
        )));
        return;
    }
    let earlier = |i: usize| {
        s.processes[..i.min(s.processes.len())]
            .iter()
            .any(|p| p.name == name)
    };
    match (kind, &u.scope) {
        ("processes", Scope::Var(_) | Scope::Mock) | ("mocks", Scope::Var(_)) => {
            problems.push(err(format!(
                "`{kind}` start after this is resolved, so it cannot refer to them"
            )))
        }
        ("processes", Scope::Process(i)) if !earlier(*i) => problems.push(
            err("a process can refer only to processes declared before it".into())
                .help("processes start in order; move this one after the one it uses"),
        ),
        _ => {}
    }
}

/// A `fault` step acts on the scenario's proxy of its target: something must connect
/// through that proxy, or the fault changes nothing.
pub fn check_fault_targets(s: &Scenario, problems: &mut Vec<Problem>) {
    let faults = all_steps(s).flat_map(|step| {
        let scheduled = matches!(step.action, crate::Action::Schedule(_));
        step.action
            .faults(step.span)
            .into_iter()
            .map(move |(f, span)| (f, span, scheduled))
    });
    for (f, span, scheduled) in faults {
        if let Some(name) = &f.process
            && !s.processes.iter().any(|p| &p.name == name)
        {
            let names = s.processes.iter().map(|p| p.name.as_str());
            let p = Problem::new(span, format!("no process `{name}` in this scenario"))
                .label("not under `processes`");
            problems.push(match did_you_mean(name, names) {
                Some(n) => p.help(format!("did you mean `{n}`?")),
                None => p.help("`process:` names one of the scenario's `processes`"),
            });
        }
        if let Some(name) = &f.mock
            && !s.mocks.iter().any(|m| &m.name == name)
        {
            let p = Problem::new(span, format!("no mock `{name}` in this scenario"))
                .label("not under `mocks`");
            problems.push(
                match did_you_mean(name, s.mocks.iter().map(|m| m.name.as_str())) {
                    Some(n) => p.help(format!("did you mean `{n}`?")),
                    None => p.help("`mock:` names one of the scenario's `mocks`"),
                },
            );
        }
        // A `fault` step's service is checked with every step's; a schedule's here.
        if scheduled
            && let Some(target) = f.target
            && !s.stack.contains(&target)
        {
            problems.push(
                Problem::new(
                    span,
                    format!(
                        "this fault needs {} but the scenario's `stack` does not list it",
                        target.name()
                    ),
                )
                .label("not in `stack`"),
            );
        }
        if f.is_network()
            && f.target.is_none()
            && let Some((kind, name)) = f
                .process
                .as_ref()
                .map(|p| ("processes", p))
                .or(f.mock.as_ref().map(|m| ("mocks", m)))
            && (if kind == "processes" {
                s.processes.iter().any(|p| &p.name == name)
            } else {
                s.mocks.iter().any(|m| &m.name == name)
            })
            && !(if kind == "processes" {
                &s.fault_processes
            } else {
                &s.fault_mocks
            })
            .contains(name)
        {
            let field = "url";
            problems.push(
                Problem::new(
                    span,
                    format!(
                        "nothing reaches {} `{name}` through its fault proxy, so this fault changes nothing",
                        if kind == "processes" { "process" } else { "mock" }
                    ),
                )
                .label("a fault on the proxy")
                .help(format!(
                    "give the system under test `${{faults.{kind}.{name}.{field}}}` instead of `${{{kind}.{name}.{field}}}`"
                )),
            );
        }
        if f.is_network()
            && let Some(target) = f.target
            && s.stack.contains(&target)
            && !s.fault_targets.contains(&target)
        {
            let svc = target.name();
            let field = template::stack_fields(svc)
                .and_then(|f| f.first())
                .copied()
                .unwrap_or("url");
            problems.push(
                Problem::new(
                    span,
                    format!("nothing reaches {svc} through its fault proxy, so this fault changes nothing"),
                )
                .label("a fault on the proxy")
                .help(format!(
                    "give the system under test `${{faults.{svc}.{field}}}` (the fields of `${{stack.{svc}.…}}`, through the proxy) instead of the direct address"
                )),
            );
        }
    }
}
