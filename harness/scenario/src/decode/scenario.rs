//! Decoders for the scenario's top-level sections: vars, fixtures, mocks and processes.

use super::{steps::steps as step_list, *};

pub fn scenario(cx: &mut Cx, root: &Node) -> Option<Scenario> {
    let f = fields(cx, root, "a scenario", Scenario::KEYS)?;
    let scenario_name = req(cx, &f, "name", "the scenario", string);
    let description = opt(cx, &f, "description", string);
    let tags = opt(cx, &f, "tags", |cx, n| {
        list(cx, n, "`tags`", |cx, _, n| name(cx, n))
    })
    .unwrap_or_default();
    let stack = opt(cx, &f, "stack", |cx, n| {
        list(cx, n, "`stack`", |cx, _, n| service(cx, n))
    });
    cx.stack = stack.clone().unwrap_or_default();
    let timeout = opt(cx, &f, "timeout", duration);
    let vars = opt(cx, &f, "vars", |cx, n| {
        map(cx, n, "`vars`", |cx, k, v| {
            let key = k.key_text();
            if !valid_ident(&key) {
                cx.error(
                    k.span,
                    format!("var name `{key}` must be 1 to 100 letters, digits, `_` or `-`"),
                );
                return None;
            }
            cx.scope = Scope::Var(key);
            var(cx, v)
        })
    });
    cx.scope = Scope::Fixture;
    let fixtures = opt(cx, &f, "fixtures", |cx, n| {
        list(cx, n, "`fixtures`", |cx, _, n| {
            let f = fixture(cx, n)?;
            cx.fixture_spans.push(n.span);
            Some(f)
        })
    });
    cx.scope = Scope::Mock;
    let mocks = opt(cx, &f, "mocks", |cx, n| {
        list(cx, n, "`mocks`", |cx, _, n| mock(cx, n))
    });
    let supabase = opt(cx, &f, "supabase", supabase_project);
    let processes = opt(cx, &f, "processes", |cx, n| {
        list(cx, n, "`processes`", |cx, i, n| {
            cx.scope = Scope::Process(i);
            process(cx, n)
        })
    });
    cx.scope = Scope::Defaults;
    let defaults = opt(cx, &f, "defaults", defaults);
    let steady_state = opt(cx, &f, "steady_state", |cx, n| {
        step_list(cx, n, Phase::SteadyState)
    });
    let steps_span = f.key_span("steps").unwrap_or(f.head);
    let body = req(cx, &f, "steps", "the scenario", |cx, n| {
        step_list(cx, n, Phase::Steps)
    });
    if let Some(s) = &body
        && s.is_empty()
    {
        cx.error(
            steps_span,
            "`steps` is empty; a scenario needs at least one step",
        );
    }
    let rollbacks = opt(cx, &f, "rollbacks", |cx, n| {
        step_list(cx, n, Phase::Rollbacks)
    });

    Some(Scenario {
        name: scenario_name?,
        description,
        tags,
        stack: stack.unwrap_or_default(),
        timeout,
        vars: vars.unwrap_or_default(),
        fixtures: fixtures.unwrap_or_default(),
        mocks: mocks.unwrap_or_default(),
        supabase,
        processes: processes.unwrap_or_default(),
        defaults: defaults.unwrap_or_default(),
        steady_state: steady_state.unwrap_or_default(),
        steps: body?,
        rollbacks: rollbacks.unwrap_or_default(),
        span: steps_span,
        code_refs: std::mem::take(&mut cx.code_refs),
        captures_used: BTreeMap::new(),
        fault_targets: Default::default(),
        uses_supabase: false,
        fault_processes: Default::default(),
        fault_mocks: Default::default(),
    })
}

pub(crate) fn service(cx: &mut Cx, node: &Node) -> Option<Service> {
    let names = Service::ALL.map(Service::name);
    let Some(text) = node.as_str() else {
        cx.push(
            Problem::new(
                node.span,
                format!("expected a service name, found {}", node.kind()),
            )
            .label("not a service")
            .help(format!("services: {}", backticked(&names))),
        );
        return None;
    };
    match Service::ALL.into_iter().find(|s| s.name() == text) {
        Some(s) => Some(s),
        None => {
            let mut p =
                Problem::new(node.span, format!("unknown service `{text}`")).label("not a service");
            p = match did_you_mean(text, names) {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help(format!("services: {}", backticked(&names))),
            };
            cx.push(p);
            None
        }
    }
}

fn var(cx: &mut Cx, node: &Node) -> Option<Var> {
    if let NodeValue::Map(entries) = &node.value {
        // `{ value, secret }`; with both keys present, any other key is a typo, not data.
        let has = |key: &str| entries.iter().any(|(k, _)| k.as_str() == Some(key));
        let detailed = has("secret")
            && (has("value")
                || entries
                    .iter()
                    .all(|(k, _)| matches!(k.as_str(), Some("value" | "secret"))));
        if detailed {
            let f = fields(cx, node, "a var", DetailedVar::KEYS)?;
            let secret = req(cx, &f, "secret", "a var", boolean);
            let value = req(cx, &f, "value", "a secret var", value);
            return Some(Var {
                value: value?,
                secret: secret?,
                span: node.span,
            });
        }
    }
    value(cx, node).map(|value| Var {
        value,
        secret: false,
        span: node.span,
    })
}

fn fixture(cx: &mut Cx, node: &Node) -> Option<Fixture> {
    let f = fields(cx, node, "a fixture", Fixture::KEYS)?;
    let present: Vec<&str> = Fixture::KEYS
        .iter()
        .copied()
        .filter(|k| f.get(k).is_some())
        .collect();
    let unknown = f
        .keys()
        .any(|k| !Fixture::KEYS.contains(&k.key_text().as_str()));
    if present.is_empty() && unknown {
        // The unknown key was reported with a suggestion already.
        return None;
    }
    if present.len() != 1 {
        cx.error(
            node.span,
            "a fixture has exactly one of `sql`, `cypher` and `s3`",
        );
        return None;
    }
    match present[0] {
        "sql" => opt(cx, &f, "sql", fixture_path).map(Fixture::Sql),
        "cypher" => opt(cx, &f, "cypher", fixture_path).map(Fixture::Cypher),
        _ => opt(cx, &f, "s3", |cx, n| {
            let g = fields(cx, n, "an s3 fixture", S3Fixture::KEYS)?;
            let key = req(cx, &g, "key", "an s3 fixture", |cx, n| {
                literal(
                    cx,
                    n,
                    "fixture keys (fixtures load before the scenario starts)",
                )
            });
            let file = opt(cx, &g, "file", fixture_path);
            let body = opt(cx, &g, "body", |cx, n| {
                literal(
                    cx,
                    n,
                    "fixture bodies (fixtures load before the scenario starts)",
                )
            });
            // Presence, not decoded values: a bad `file` is reported on its own.
            if g.get("file").is_some() == g.get("body").is_some() {
                cx.error(n.span, "an s3 fixture has exactly one of `file` and `body`");
                return None;
            }
            Some(Fixture::S3(S3Fixture {
                key: key?,
                file,
                body,
            }))
        }),
    }
}

/// Names an `http` step's `as` takes besides the fixture users.
pub const SUPABASE_CALLERS: [&str; 2] = ["anon", "service_role"];

fn supabase_project(cx: &mut Cx, node: &Node) -> Option<SupabaseProject> {
    let f = fields(cx, node, "`supabase`", SupabaseProject::KEYS)?;
    let users = opt(cx, &f, "users", |cx, n| {
        map(cx, n, "`supabase.users`", |cx, k, v| {
            let key = k.key_text();
            if !valid_ident(&key) {
                cx.error(
                    k.span,
                    format!("user name `{key}` must be 1 to 100 letters, digits, `_` or `-`"),
                );
                return None;
            }
            if SUPABASE_CALLERS.contains(&key.as_str()) {
                cx.error(
                    k.span,
                    format!("`{key}` is the name `as: {key}` already gives a caller; pick another"),
                );
                return None;
            }
            supabase_user(cx, v)
        })
    });
    let confirm_email = opt(cx, &f, "confirm_email", boolean).unwrap_or(false);
    let asymmetric_keys = opt(cx, &f, "asymmetric_keys", boolean).unwrap_or(false);
    Some(SupabaseProject {
        users: users.unwrap_or_default(),
        confirm_email,
        asymmetric_keys,
    })
}

fn supabase_user(cx: &mut Cx, node: &Node) -> Option<SupabaseUser> {
    let what = "a Supabase user";
    let f = fields(cx, node, what, SupabaseUser::KEYS)?;
    let email = req(cx, &f, "email", what, |cx, n| {
        let s = literal(
            cx,
            n,
            "fixture users (they exist before the scenario starts)",
        )?;
        if s.contains('@') {
            Some(s)
        } else {
            cx.error(n.span, format!("`{s}` is not an email address"));
            None
        }
    });
    let password = opt(cx, &f, "password", |cx, n| {
        let s = literal(
            cx,
            n,
            "fixture users (they exist before the scenario starts)",
        )?;
        if s.len() >= 6 {
            Some(s)
        } else {
            // Supabase's default minimum.
            cx.error(n.span, "Password should be at least 6 characters.");
            None
        }
    });
    let phone = opt(cx, &f, "phone", |cx, n| {
        literal(
            cx,
            n,
            "fixture users (they exist before the scenario starts)",
        )
    });
    let object = |cx: &mut Cx, n: &Node| {
        let v = value(cx, n)?;
        if v.is_object() {
            Some(v)
        } else {
            cx.error(n.span, "metadata is a map");
            None
        }
    };
    let user_metadata = opt(cx, &f, "user_metadata", object);
    let app_metadata = opt(cx, &f, "app_metadata", object);
    Some(SupabaseUser {
        email: email?,
        password,
        phone,
        user_metadata,
        app_metadata,
        span: node.span,
    })
}

fn defaults(cx: &mut Cx, node: &Node) -> Option<Defaults> {
    let f = fields(cx, node, "`defaults`", Defaults::KEYS)?;
    let http = opt(cx, &f, "http", |cx, n| {
        let g = fields(cx, n, "`defaults.http`", HttpDefaults::KEYS)?;
        let base_url = opt(cx, &g, "base_url", template);
        let headers = opt(cx, &g, "headers", |cx, n| template_map(cx, n, "`headers`"));
        Some(HttpDefaults {
            base_url,
            headers: headers.unwrap_or_default(),
        })
    });
    Some(Defaults {
        http: http.unwrap_or_default(),
    })
}

fn mock(cx: &mut Cx, node: &Node) -> Option<Mock> {
    let f = fields(cx, node, "a mock", Mock::KEYS)?;
    let mock_name = req(cx, &f, "name", "a mock", |cx, n| {
        let s = name(cx, n)?;
        if valid_ident(&s) {
            Some(s)
        } else {
            cx.error(n.span, "a mock name must be letters, digits, `_` or `-`");
            None
        }
    });
    let request = req(cx, &f, "request", "a mock", |cx, n| {
        let g = fields(cx, n, "a mock request", MockRequest::KEYS)?;
        let method = opt(cx, &g, "method", http_method);
        let path = req(cx, &g, "path", "a mock request", string);
        if let (Some(p), Some(pn)) = (&path, g.get("path"))
            && !p.starts_with('/')
        {
            cx.error(pn.span, "a mock path starts with `/`");
        }
        let headers = opt(cx, &g, "headers", |cx, n| string_map(cx, n, "`headers`"));
        let query = opt(cx, &g, "query", |cx, n| string_map(cx, n, "`query`"));
        let json = opt(cx, &g, "json", value);
        Some(MockRequest {
            method,
            path: path?,
            headers: headers.unwrap_or_default(),
            query: query.unwrap_or_default(),
            json,
        })
    });
    let response = opt(cx, &f, "response", |cx, n| {
        let g = fields(cx, n, "a mock response", MockResponse::KEYS)?;
        let status = opt(cx, &g, "status", status_code).unwrap_or(200);
        let headers = opt(cx, &g, "headers", |cx, n| string_map(cx, n, "`headers`"));
        let body = opt(cx, &g, "body", string);
        let json = opt(cx, &g, "json", value);
        if body.is_some() && json.is_some() {
            cx.error(n.span, "a mock response has `body` or `json`, not both");
        }
        let delay = opt(cx, &g, "delay", duration);
        Some(MockResponse {
            status,
            headers: headers.unwrap_or_default(),
            body,
            json,
            delay,
        })
    });
    let expect_calls = opt(cx, &f, "expect_calls", uint);
    Some(Mock {
        name: mock_name?,
        request: request?,
        response: response.unwrap_or_default(),
        expect_calls,
        span: node.span,
    })
}

fn process(cx: &mut Cx, node: &Node) -> Option<Process> {
    let f = fields(cx, node, "a process", Process::KEYS)?;
    let process_name = req(cx, &f, "name", "a process", |cx, n| {
        let s = name(cx, n)?;
        if valid_ident(&s) {
            Some(s)
        } else {
            cx.error(n.span, "a process name must be letters, digits, `_` or `-`");
            None
        }
    });
    let cargo = opt(cx, &f, "cargo", cargo_package);
    let command = opt(cx, &f, "command", command);
    if f.get("cargo").is_some() == f.get("command").is_some() {
        cx.push(
            Problem::new(
                node.span,
                "a process has exactly one of `cargo` and `command`",
            )
            .help(
                "`cargo: PACKAGE` builds and runs a workspace binary; `command` runs any program",
            ),
        );
    }
    let args = opt(cx, &f, "args", |cx, n| {
        list(cx, n, "`args`", |cx, _, n| string(cx, n))
    });
    let env = opt(cx, &f, "env", |cx, n| string_map(cx, n, "`env`"));
    let env_from = opt(cx, &f, "env_from", env_from).unwrap_or_default();
    let mut env = env.unwrap_or_default();
    for (key, text, _) in &env_from.vars {
        env.entry((*key).to_owned())
            .or_insert_with(|| (*text).to_owned());
    }
    let ready = opt(cx, &f, "ready", |cx, n| {
        let g = fields(cx, n, "`ready`", Ready::KEYS)?;
        let present: Vec<&str> = Ready::KEYS
            .iter()
            .copied()
            .filter(|k| g.get(k).is_some())
            .collect();
        if present.len() != 1 {
            cx.error(n.span, "`ready` has exactly one of `http`, `log` and `tcp`");
            return None;
        }
        match present[0] {
            "http" => opt(cx, &g, "http", |cx, n| {
                let p = string(cx, n)?;
                if p.starts_with('/') {
                    Some(Ready::Http(p))
                } else {
                    cx.error(
                        n.span,
                        "`ready.http` is a path starting with `/`, such as `/healthz`",
                    );
                    None
                }
            }),
            "log" => opt(cx, &g, "log", string).map(Ready::Log),
            _ => opt(cx, &g, "tcp", boolean).map(Ready::Tcp),
        }
    });
    let timeout = opt(cx, &f, "timeout", duration);
    Some(Process {
        name: process_name?,
        cargo,
        command: if f.get("cargo").is_some() == f.get("command").is_some() {
            return None;
        } else {
            command
        },
        args: args.unwrap_or_default(),
        env,
        env_from: env_from.services,
        ready,
        timeout,
        span: node.span,
    })
}
