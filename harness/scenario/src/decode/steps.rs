//! Decoders for steps: the common keys, then one function per step kind.

use super::*;

pub(super) fn steps(cx: &mut Cx, node: &Node, phase: Phase) -> Option<Vec<Step>> {
    list(cx, node, &format!("`{}`", phase.key()), |cx, index, n| {
        cx.scope = Scope::Step { phase, index };
        step(cx, n)
    })
}

const STEP_COMMON: [&str; 2] = ["name", "timeout"];

pub fn step(cx: &mut Cx, node: &Node) -> Option<Step> {
    let known: Vec<&str> = STEP_COMMON
        .iter()
        .chain(STEP_KINDS.iter())
        .copied()
        .collect();
    let f = fields(cx, node, "a step", &known)?;
    let step_name = opt(cx, &f, "name", |cx, n| literal(cx, n, "step names"));
    let timeout = opt(cx, &f, "timeout", duration);
    let kinds: Vec<(&Node, &Node)> = f
        .entries
        .iter()
        .filter(|(k, _)| k.as_str().is_some_and(|k| STEP_KINDS.contains(&k)))
        .map(|(k, v)| (k, v))
        .collect();
    let (kind_key, body) = match kinds.as_slice() {
        [] => {
            // An unknown key was already reported with a suggestion; say nothing more then.
            let unknown = f.keys().any(|k| !known.contains(&k.key_text().as_str()));
            if !unknown {
                cx.push(
                    Problem::new(f.head, "step has no kind")
                        .help(format!("add one of {}", backticked(&STEP_KINDS))),
                );
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
    let action = match kind_key.as_str().unwrap_or_default() {
        "http" => http(cx, body).map(Action::Http),
        "sql" => sql(cx, body).map(Action::Sql),
        "s3" => s3(cx, body).map(Action::S3),
        "cypher" => cypher(cx, body).map(Action::Cypher),
        "eventually" => eventually(cx, body).map(|e| Action::Eventually(Box::new(e))),
        "exec" => exec(cx, body).map(Action::Exec),
        "snapshot" => snapshot(cx, body).map(Action::Snapshot),
        "telemetry" => telemetry(cx, body).map(Action::Telemetry),
        other => value(cx, body).map(|args| {
            Action::Extension(Extension {
                kind: other.to_owned(),
                args,
                span: body.span,
            })
        }),
    };
    Some(Step {
        name: step_name,
        timeout,
        action: action?,
        span: node.span,
    })
}

fn http(cx: &mut Cx, node: &Node) -> Option<Http> {
    let f = fields(
        cx,
        node,
        "an `http` step",
        &[
            "method", "url", "headers", "query", "body", "json", "expect", "capture",
        ],
    )?;
    let method = opt(cx, &f, "method", http_method);
    let url = req(cx, &f, "url", "an `http` step", string);
    let headers = opt(cx, &f, "headers", |cx, n| string_map(cx, n, "`headers`"));
    let query = opt(cx, &f, "query", |cx, n| string_map(cx, n, "`query`"));
    let body = opt(cx, &f, "body", string);
    let json = opt(cx, &f, "json", value);
    if body.is_some() && json.is_some() {
        cx.error(node.span, "an `http` step has `body` or `json`, not both");
    }
    let expect = opt(cx, &f, "expect", |cx, n| {
        let g = fields(
            cx,
            n,
            "`expect` of an `http` step",
            &["status", "headers", "json", "body"],
        )?;
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
    Some(Http {
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

fn rows_expect(cx: &mut Cx, node: &Node, what: &str) -> Option<RowsExpect> {
    let g = fields(
        cx,
        node,
        what,
        &["rows", "row_count", "affected", "json", "error"],
    )?;
    let rows = opt(cx, &g, "rows", |cx, n| {
        list(cx, n, "`rows`", |cx, _, n| value(cx, n))
    });
    let row_count = opt(cx, &g, "row_count", matcher);
    let affected = opt(cx, &g, "affected", matcher);
    let json = opt(cx, &g, "json", path_matchers);
    let error = opt(cx, &g, "error", matcher);
    Some(RowsExpect {
        rows,
        row_count,
        affected,
        json: json.unwrap_or_default(),
        error,
    })
}

fn sql(cx: &mut Cx, node: &Node) -> Option<Sql> {
    let f = fields(
        cx,
        node,
        "a `sql` step",
        &[
            "query", "execute", "params", "role", "settings", "expect", "capture",
        ],
    )?;
    let query = opt(cx, &f, "query", |cx, n| {
        cx.in_sink(Sink::Sql, |cx| string(cx, n))
    });
    let execute = opt(cx, &f, "execute", |cx, n| {
        cx.in_sink(Sink::Sql, |cx| string(cx, n))
    });
    if f.get("query").is_some() == f.get("execute").is_some() {
        cx.push(
            Problem::new(
                node.span,
                "a `sql` step has exactly one of `query` and `execute`",
            )
            .help("`query` returns rows; `execute` runs a statement for its effect"),
        );
    }
    let params = opt(cx, &f, "params", |cx, n| {
        list(cx, n, "`params`", |cx, _, n| value(cx, n))
    });
    let role = opt(cx, &f, "role", string);
    let settings = opt(cx, &f, "settings", |cx, n| string_map(cx, n, "`settings`"));
    let expect = opt(cx, &f, "expect", |cx, n| {
        rows_expect(cx, n, "`expect` of a `sql` step")
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
    if query.is_none() && execute.is_none() {
        return None;
    }
    Some(Sql {
        query,
        execute,
        params: params.unwrap_or_default(),
        role,
        settings: settings.unwrap_or_default(),
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}

fn s3(cx: &mut Cx, node: &Node) -> Option<S3> {
    let f = fields(
        cx,
        node,
        "an `s3` step",
        &[
            "op",
            "bucket",
            "key",
            "prefix",
            "body",
            "file",
            "content_type",
            "version_id",
            "expect",
            "capture",
        ],
    )?;
    let op = req(cx, &f, "op", "an `s3` step", |cx, n| {
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
                p = match did_you_mean(text, S3Op::NAMES) {
                    Some(s) => p.help(format!("did you mean `{s}`?")),
                    None => p.help(format!("ops: {}", backticked(&S3Op::NAMES))),
                };
                cx.push(p);
                return None;
            }
        };
        Some(op)
    });
    let bucket = opt(cx, &f, "bucket", string);
    let key = opt(cx, &f, "key", string);
    let prefix = opt(cx, &f, "prefix", string);
    let body = opt(cx, &f, "body", string);
    let file = opt(cx, &f, "file", file_path);
    let content_type = opt(cx, &f, "content_type", string);
    let version_id = opt(cx, &f, "version_id", string);
    let expect = opt(cx, &f, "expect", |cx, n| {
        let g = fields(
            cx,
            n,
            "`expect` of an `s3` step",
            &["body", "exists", "count", "json", "error"],
        )?;
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
            format!("`s3` op `{}` needs a `key`", S3Op::NAMES[op as usize]),
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

fn cypher(cx: &mut Cx, node: &Node) -> Option<Cypher> {
    let f = fields(
        cx,
        node,
        "a `cypher` step",
        &["query", "params", "expect", "capture"],
    )?;
    let query = req(cx, &f, "query", "a `cypher` step", |cx, n| {
        cx.in_sink(Sink::Cypher, |cx| string(cx, n))
    });
    let params = opt(cx, &f, "params", |cx, n| {
        map(cx, n, "`params`", |cx, _, v| value(cx, v))
    });
    let expect = opt(cx, &f, "expect", |cx, n| {
        rows_expect(cx, n, "`expect` of a `cypher` step")
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
    Some(Cypher {
        query: query?,
        params: params.unwrap_or_default(),
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}

fn eventually(cx: &mut Cx, node: &Node) -> Option<Eventually> {
    let f = fields(
        cx,
        node,
        "an `eventually` step",
        &["timeout", "interval", "backoff", "max_interval", "probe"],
    )?;
    let timeout = req(cx, &f, "timeout", "an `eventually` step", duration);
    let interval = opt(cx, &f, "interval", duration);
    let backoff = opt(cx, &f, "backoff", |cx, n| {
        let b = number(cx, n)?;
        if (1.0..=10.0).contains(&b) {
            Some(b)
        } else {
            cx.error(n.span, "`backoff` is a factor from 1 to 10");
            None
        }
    });
    let max_interval = opt(cx, &f, "max_interval", duration);
    let probe = req(cx, &f, "probe", "an `eventually` step", |cx, n| {
        let s = step(cx, n)?;
        if let Action::Eventually(_) = s.action {
            cx.error(
                n.span,
                "an `eventually` probe cannot itself be `eventually`",
            );
            return None;
        }
        Some(s)
    });
    Some(Eventually {
        timeout: timeout?,
        interval,
        backoff,
        max_interval,
        probe: probe?,
    })
}

fn exec(cx: &mut Cx, node: &Node) -> Option<Exec> {
    let f = fields(
        cx,
        node,
        "an `exec` step",
        &[
            "command", "cargo", "args", "env", "cwd", "stdin", "expect", "capture",
        ],
    )?;
    let command_node = opt(cx, &f, "command", command);
    let cargo = opt(cx, &f, "cargo", cargo_package);
    let args = opt(cx, &f, "args", |cx, n| {
        list(cx, n, "`args`", |cx, _, n| string(cx, n))
    });
    let one_program = f.get("command").is_some() != f.get("cargo").is_some();
    if !one_program {
        cx.push(
            Problem::new(
                node.span,
                "an `exec` step has exactly one of `command` and `cargo`",
            )
            .help("`command` runs a program; `cargo: PACKAGE` builds and runs a workspace binary"),
        );
    }
    let env = opt(cx, &f, "env", |cx, n| string_map(cx, n, "`env`"));
    let cwd = opt(cx, &f, "cwd", string);
    let stdin = opt(cx, &f, "stdin", string);
    let expect = opt(cx, &f, "expect", |cx, n| {
        let g = fields(
            cx,
            n,
            "`expect` of an `exec` step",
            &["exit_code", "stdout", "stderr", "json"],
        )?;
        let exit_code = opt(cx, &g, "exit_code", matcher);
        let stdout = opt(cx, &g, "stdout", matcher);
        let stderr = opt(cx, &g, "stderr", matcher);
        let json = opt(cx, &g, "json", path_matchers);
        Some(ExecExpect {
            exit_code,
            stdout,
            stderr,
            json: json.unwrap_or_default(),
        })
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
    if !one_program || (command_node.is_none() && cargo.is_none()) {
        return None;
    }
    Some(Exec {
        command: command_node,
        cargo,
        args: args.unwrap_or_default(),
        env: env.unwrap_or_default(),
        cwd,
        stdin,
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}

fn snapshot(cx: &mut Cx, node: &Node) -> Option<Snapshot> {
    let f = fields(cx, node, "a `snapshot` step", &["name", "value", "redact"])?;
    let snap_name = req(cx, &f, "name", "a `snapshot` step", |cx, n| {
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
    let value = req(cx, &f, "value", "a `snapshot` step", value);
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

fn telemetry(cx: &mut Cx, node: &Node) -> Option<Telemetry> {
    let f = fields(
        cx,
        node,
        "a `telemetry` step",
        &["signal", "where", "within", "expect", "capture"],
    )?;
    let signal = req(cx, &f, "signal", "a `telemetry` step", |cx, n| {
        let Some(text) = n.as_str() else {
            cx.expected(n, "a signal");
            return None;
        };
        match text {
            "spans" => Some(Signal::Spans),
            "metrics" => Some(Signal::Metrics),
            "logs" => Some(Signal::Logs),
            other => {
                let mut p = Problem::new(n.span, format!("unknown signal `{other}`"));
                p = match did_you_mean(other, ["spans", "metrics", "logs"]) {
                    Some(s) => p.help(format!("did you mean `{s}`?")),
                    None => p.help("signals: `spans`, `metrics`, `logs`"),
                };
                cx.push(p);
                None
            }
        }
    });
    let filter = opt(cx, &f, "where", |cx, n| {
        map(cx, n, "`where`", |cx, _, v| matcher(cx, v))
    });
    let within = opt(cx, &f, "within", duration);
    let expect = opt(cx, &f, "expect", |cx, n| {
        let g = fields(cx, n, "`expect` of a `telemetry` step", &["count"])?;
        Some(TelemetryExpect {
            count: opt(cx, &g, "count", matcher),
        })
    });
    let capture = opt(cx, &f, "capture", |cx, n| captures(cx, n, false));
    Some(Telemetry {
        signal: signal?,
        filter: filter.unwrap_or_default(),
        within,
        expect: expect.unwrap_or_default(),
        capture: capture.unwrap_or_default(),
    })
}
