//! Shared defaults: the sections a folder's `_defaults.yaml` gives every scenario file in
//! that folder, merged into each file's YAML tree before it is decoded. Every node keeps the
//! span of the file it was written in, so a problem in an inherited block is reported in
//! `_defaults.yaml` at its own line and column.

use crate::{
    Keys, Scenario,
    decode::backticked,
    diag::{Problem, Span},
    suggest::did_you_mean,
    yaml::{Node, NodeValue},
};

/// The name of a folder's shared defaults file.
pub const SHARED_FILE: &str = "_defaults.yaml";

/// The sections a shared defaults file may hold.
pub const SHARED_KEYS: &[&str] = &[
    "stack",
    "tags",
    "timeout",
    "vars",
    "fixtures",
    "mocks",
    "processes",
    "defaults",
];

/// Merges the shared defaults into a scenario's tree.
///
/// - `stack` and `tags`: the shared entries, then the file's, each once.
/// - `fixtures`: the shared ones load first.
/// - `processes` and `mocks`: an entry with the name of a shared one is merged into it key
///   by key (maps such as `env` entry by entry; the file's values win), in the shared
///   entry's place; the others follow.
/// - `vars` and `defaults`: merged key by key, the file's values winning.
/// - `timeout`: the file's, if it has one.
pub fn inherit(own: Node, shared: &Node, problems: &mut Vec<Problem>) -> Node {
    let NodeValue::Map(shared_entries) = &shared.value else {
        if !matches!(shared.value, NodeValue::Null) {
            problems.push(
                Problem::new(
                    shared.span,
                    format!(
                        "a shared defaults file is a map of scenario sections, found {}",
                        shared.kind()
                    ),
                )
                .help(format!("sections: {}", backticked(SHARED_KEYS))),
            );
        }
        return own;
    };
    let mut valid = Vec::new();
    for (k, v) in shared_entries {
        let key = k.key_text();
        if SHARED_KEYS.contains(&key.as_str()) {
            valid.push((k, v));
            continue;
        }
        let p = if Scenario::KEYS.contains(&key.as_str()) {
            Problem::new(k.span, format!("`{key}` cannot be shared"))
                .label("belongs in each scenario file")
                .help(format!(
                    "a shared defaults file holds {}",
                    backticked(SHARED_KEYS)
                ))
        } else {
            let p = Problem::new(
                k.span,
                format!("unknown key `{key}` in a shared defaults file"),
            )
            .label("unknown key");
            match did_you_mean(&key, SHARED_KEYS.iter().copied()) {
                Some(s) => p.help(format!("did you mean `{s}`?")),
                None => p.help(format!("valid keys: {}", backticked(SHARED_KEYS))),
            }
        };
        problems.push(p);
    }
    let Node {
        value: NodeValue::Map(mut entries),
        span,
    } = own
    else {
        // Not a map: the decoder says so.
        return own;
    };
    for (k, v) in valid {
        let key = k.key_text();
        match entries.iter_mut().find(|(ok, _)| ok.key_text() == key) {
            None => entries.push((k.clone(), v.clone())),
            Some((_, mine)) => {
                let merged = match key.as_str() {
                    "stack" | "tags" => union(v, mine),
                    "fixtures" => concat(v, mine),
                    "processes" | "mocks" => by_name(v, mine),
                    "vars" => shallow(v, mine),
                    "defaults" => deep(v, mine),
                    _ => None,
                };
                if let Some(m) = merged {
                    *mine = m;
                }
            }
        }
    }
    Node {
        value: NodeValue::Map(entries),
        span,
    }
}

fn seqs<'a>(shared: &'a Node, mine: &'a Node) -> Option<(&'a [Node], &'a [Node])> {
    match (&shared.value, &mine.value) {
        (NodeValue::Seq(a), NodeValue::Seq(b)) => Some((a, b)),
        // A wrong type is the decoder's to report, in the file that has it.
        _ => None,
    }
}

fn with_items(mine: &Node, items: Vec<Node>) -> Node {
    Node {
        value: NodeValue::Seq(items),
        span: mine.span,
    }
}

fn concat(shared: &Node, mine: &Node) -> Option<Node> {
    let (a, b) = seqs(shared, mine)?;
    Some(with_items(mine, a.iter().chain(b).cloned().collect()))
}

fn union(shared: &Node, mine: &Node) -> Option<Node> {
    let (a, b) = seqs(shared, mine)?;
    let mut items: Vec<Node> = Vec::new();
    for n in a.iter().chain(b) {
        if !items.iter().any(|m| m.value == n.value) {
            items.push(n.clone());
        }
    }
    Some(with_items(mine, items))
}

fn name_of(node: &Node) -> Option<&str> {
    let NodeValue::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some("name"))
        .and_then(|(_, v)| v.as_str())
}

fn by_name(shared: &Node, mine: &Node) -> Option<Node> {
    let (a, b) = seqs(shared, mine)?;
    let mut used = vec![false; b.len()];
    let mut items = Vec::new();
    for s in a {
        let same = name_of(s).and_then(|n| {
            b.iter()
                .enumerate()
                .find(|(i, m)| !used[*i] && name_of(m) == Some(n))
        });
        match same {
            Some((i, m)) => {
                used[i] = true;
                items.push(deep(s, m).unwrap_or_else(|| m.clone()));
            }
            None => items.push(s.clone()),
        }
    }
    items.extend(
        b.iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(m, _)| m.clone()),
    );
    Some(with_items(mine, items))
}

/// Map over map, key by key (a var's value is data, not merged further).
fn shallow(shared: &Node, mine: &Node) -> Option<Node> {
    let (NodeValue::Map(a), NodeValue::Map(b)) = (&shared.value, &mine.value) else {
        return None;
    };
    let mut entries = b.clone();
    for (k, v) in a {
        if !b.iter().any(|(ok, _)| ok.key_text() == k.key_text()) {
            entries.push((k.clone(), v.clone()));
        }
    }
    Some(Node {
        value: NodeValue::Map(entries),
        span: mine.span,
    })
}

/// Map over map, key by key and recursively; `mine` wins everywhere else.
fn deep(shared: &Node, mine: &Node) -> Option<Node> {
    let (NodeValue::Map(a), NodeValue::Map(b)) = (&shared.value, &mine.value) else {
        return None;
    };
    let mut entries = b.clone();
    for (k, v) in a {
        let key = k.key_text();
        match entries.iter_mut().find(|(ok, _)| ok.key_text() == key) {
            None => entries.push((k.clone(), v.clone())),
            Some((_, m)) => {
                if let Some(merged) = deep(v, m) {
                    *m = merged;
                }
            }
        }
    }
    Some(Node {
        value: NodeValue::Map(entries),
        span: mine.span,
    })
}

/// Moves every span of a tree by `by` bytes (a file appended after another).
pub fn shift(node: &mut Node, by: usize) {
    node.span = Span::new(node.span.offset + by, node.span.len);
    match &mut node.value {
        NodeValue::Seq(items) => items.iter_mut().for_each(|n| shift(n, by)),
        NodeValue::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            shift(k, by);
            shift(v, by);
        }),
        _ => {}
    }
}
