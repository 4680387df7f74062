//! Warnings about scenarios that are valid but risky.
//!
//! Values from outside the scenario file, `${captures.…}` (what the system under test
//! answered) and `${env.…}` (the environment of the run), are pasted as text wherever they
//! are written. Inside SQL (run as the database owner, several statements allowed), Cypher
//! or a `sh -c` command line that text becomes code, so a response such as
//! `1; drop table users` runs. Each such reference is one warning, pointing at it, with the
//! form that passes the value as data instead. `harness validate --strict` makes them errors.
//!
//! The decoder records which references sit in code ([`Scenario::code_refs`]); this pass
//! only judges them, so it runs on a scenario that already parsed.

use crate::{
    diag::Problem,
    model::Scenario,
    template::{CodeRef, Sink},
};

/// One warning per `${captures.…}` or `${env.…}` written into SQL, Cypher or shell text.
pub fn lint(scenario: &Scenario) -> Vec<Problem> {
    scenario.code_refs.iter().filter_map(warning).collect()
}

fn warning(c: &CodeRef) -> Option<Problem> {
    let what = match c.r.root.as_str() {
        "captures" => "captured value",
        "env" => "environment variable",
        _ => return None,
    };
    let reference = format!("${{{}}}", c.r.dotted());
    let (code, label, help) = match c.sink {
        Sink::Sql => (
            "SQL text",
            "its text becomes part of the statement",
            format!(
                "bind it as a parameter: write `$1` (`$2`, …) in the statement and list \
                 `\"{reference}\"` in the step's `params` (a step with `params` runs one \
                 statement)"
            ),
        ),
        Sink::Cypher => (
            "Cypher text",
            "its text becomes part of the query",
            format!(
                "bind it as a parameter: write `$name` in the query and set \
                 `params: {{ name: \"{reference}\" }}`"
            ),
        ),
        Sink::Shell => (
            "a shell command line",
            "the shell parses its text",
            format!(
                "pass it through `env` (`env: {{ NAME: \"{reference}\" }}`, then `\"$NAME\"` \
                 in the command), or as its own argument (`args`, or `command` as a list \
                 without a shell), which no shell parses"
            ),
        ),
    };
    Some(
        Problem::new(
            c.span,
            format!("{what} `{reference}` is pasted into {code}"),
        )
        .label(label)
        .help(help)
        .warning(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;

    const HEAD: &str = "name: lint\nstack: [postgres, neo4j]\nsteps:\n  - name: get\n    http:\n      url: http://127.0.0.1:1/\n      capture: { id: \"$.id\" }\n";

    fn warnings(steps: &str) -> (String, Vec<Problem>) {
        let text = format!("{HEAD}{steps}");
        let scenario = match crate::parse("lint.yaml", &text) {
            Ok(s) => s,
            Err(d) => panic!("invalid:\n{}", d.to_plain()),
        };
        (text, lint(&scenario))
    }

    fn at<'t>(text: &'t str, p: &Problem) -> &'t str {
        &text[p.span.offset..p.span.offset + p.span.len]
    }

    #[test]
    fn a_capture_in_sql_text_is_flagged_where_it_is_written() {
        let (text, w) =
            warnings("  - sql:\n      execute: \"update t set a = 1 where id = ${captures.id}\"\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(at(&text, &w[0]), "${captures.id}");
        assert_eq!(w[0].severity, Severity::Warning);
        assert_eq!(
            w[0].message,
            "captured value `${captures.id}` is pasted into SQL text"
        );
        assert!(w[0].help.as_deref().is_some_and(|h| h.contains("`params`")));
    }

    #[test]
    fn a_capture_in_sql_params_is_not_flagged() {
        let (_, w) = warnings(
            "  - sql:\n      query: select * from t where id = $1\n      params: [\"${captures.id}\"]\n",
        );
        assert_eq!(w, []);
    }

    #[test]
    fn env_in_a_shell_command_string_is_flagged() {
        let (text, w) = warnings("  - exec: { command: \"echo ${env.HOME}\" }\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(at(&text, &w[0]), "${env.HOME}");
        assert!(w[0].message.contains("shell command line"));
        assert!(w[0].help.as_deref().is_some_and(|h| h.contains("`env`")));
    }

    #[test]
    fn env_in_exec_args_or_env_is_not_flagged() {
        let (_, w) = warnings(
            "  - exec:\n      command: [printf, \"%s\", \"${env.HOME}\"]\n      args: [\"${env.HOME}\"]\n      env: { H: \"${env.HOME}\" }\n",
        );
        assert_eq!(w, []);
    }

    #[test]
    fn the_script_of_an_argv_shell_is_shell_text() {
        let (text, w) = warnings(
            "  - exec: { command: [/bin/bash, -euc, \"echo ${env.HOME}\", \"${env.HOME}\"] }\n",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].span.offset, text.find("${env.HOME}").expect("ref"));
    }

    #[test]
    fn a_capture_in_an_http_url_is_not_flagged() {
        let (_, w) = warnings("  - http: { url: \"http://127.0.0.1:1/decks/${captures.id}\" }\n");
        assert_eq!(w, []);
    }

    #[test]
    fn other_roots_in_sql_are_not_flagged() {
        let (_, w) = warnings(
            "  - sql: { query: \"select '${scenario.id}', '${stack.postgres.host}', '${fake.word}'\" }\n",
        );
        assert_eq!(w, []);
    }

    #[test]
    fn every_use_is_flagged_in_probes_and_rollbacks_too() {
        let (text, w) = warnings(concat!(
            "  - eventually:\n      timeout: 1s\n      probe:\n",
            "        cypher: { query: \"match (n {id: '${captures.id}'}) return n\" }\n",
            "rollbacks:\n",
            "  - sql: { execute: \"delete from t where a = ${captures.id} or b = ${captures.id}\" }\n",
        ));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].message.contains("Cypher"));
        // The same reference twice in one string points at each use.
        assert_ne!(w[1].span, w[2].span);
        assert!(w.iter().all(|p| at(&text, p) == "${captures.id}"));
    }

    #[test]
    fn warnings_render_as_miette_warnings() {
        let (text, w) = warnings("  - sql: { query: \"select ${env.USER}\" }\n");
        let d = crate::Diagnostics::new(crate::Source::new("lint.yaml", text), w);
        assert!(!d.has_errors());
        assert_eq!(d.to_string(), "lint.yaml has 1 warning");
        let plain = d.to_plain();
        assert!(
            plain.starts_with("lint.yaml:8:27: warning: environment variable"),
            "{plain}"
        );
        let report = d.render();
        assert!(!report.contains("harness::scenario"), "no frame: {report}");
        assert!(report.contains("⚠"), "{report}");
        assert!(!report.contains("×"), "{report}");
    }
}
