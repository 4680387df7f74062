//! The image map of the native provider: which program runs for an image reference.
//!
//! ```yaml
//! images:
//!   example/hello:v1:            # an exact reference
//!     command: [python3, hello.py]
//!     env: { APP_VERSION: v1 }
//!   sample/api:                  # a repository: any tag or digest of it
//!     cargo: sample-api          # a binary package of the Cargo workspace around the file
//! ```
//!
//! Commands run in the map file's folder. An image the map does not have is a deploy error,
//! as a missing image is for the real API.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::Error;

/// What runs for one image.
#[derive(Clone, Debug, PartialEq)]
pub enum Program {
    /// An argv; a relative program path is taken from the map's folder.
    Command(Vec<String>),
    /// A binary package of the Cargo workspace around the map's folder.
    Cargo(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub program: Program,
    /// Environment the image itself carries (its `ENV` lines), under the revision's own.
    pub env: BTreeMap<String, String>,
    /// The folder commands run in.
    pub dir: PathBuf,
}

/// Image references to programs.
#[derive(Clone, Debug, Default)]
pub struct ImageMap {
    images: BTreeMap<String, Image>,
}

impl ImageMap {
    pub fn new() -> Self {
        ImageMap::default()
    }

    /// Reads a map file (YAML or JSON).
    pub fn load(file: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::BadInput(format!("read the image map {}: {e}", file.display())))?;
        let doc = harness_scenario::yaml::parse(&text)
            .map_err(|p| {
                Error::BadInput(format!(
                    "read the image map {}: {}",
                    file.display(),
                    p.iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            })?
            .map(|n| n.to_json())
            .unwrap_or(Value::Null);
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_json(&doc, &dir)
            .map_err(|e| Error::BadInput(format!("read the image map {}: {e}", file.display())))
    }

    /// A map from its document: `{images: {REF: {command | cargo, env}}}`.
    pub fn from_json(doc: &Value, dir: &Path) -> Result<Self, String> {
        let Some(images) = doc.get("images").and_then(Value::as_object) else {
            return Err("expected `images:`, a map of image references".into());
        };
        let mut map = ImageMap::new();
        for (reference, entry) in images {
            let at = |what: &str| format!("images.{reference}: {what}");
            let Some(obj) = entry.as_object() else {
                return Err(at("expected a map with `command` or `cargo`"));
            };
            for k in obj.keys() {
                if !["command", "cargo", "env"].contains(&k.as_str()) {
                    return Err(at(&format!(
                        "unknown key `{k}` (expected command, cargo, env)"
                    )));
                }
            }
            let program = match (obj.get("command"), obj.get("cargo")) {
                (Some(Value::String(line)), None) => {
                    Program::Command(vec!["sh".into(), "-c".into(), line.clone()])
                }
                (Some(Value::Array(argv)), None) if !argv.is_empty() => Program::Command(
                    argv.iter()
                        .map(|a| match a {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect(),
                ),
                (None, Some(Value::String(package))) => Program::Cargo(package.clone()),
                (Some(_), Some(_)) => return Err(at("set `command` or `cargo`, not both")),
                _ => {
                    return Err(at(
                        "expected `command` (a string or a list) or `cargo` (a package)",
                    ));
                }
            };
            let mut env = BTreeMap::new();
            if let Some(e) = obj.get("env") {
                let Some(e) = e.as_object() else {
                    return Err(at("`env` must be a map"));
                };
                for (k, v) in e {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    env.insert(k.clone(), v);
                }
            }
            map.insert(
                reference,
                Image {
                    program,
                    env,
                    dir: dir.to_path_buf(),
                },
            );
        }
        Ok(map)
    }

    pub fn insert(&mut self, reference: &str, image: Image) {
        self.images.insert(reference.to_owned(), image);
    }

    /// The program for `reference`: the exact reference, else its repository (the
    /// reference without its tag or digest).
    pub fn resolve(&self, reference: &str) -> Option<&Image> {
        self.images
            .get(reference)
            .or_else(|| self.images.get(repository(reference)))
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.images.keys().map(String::as_str)
    }
}

/// `host/repo` of `host/repo:tag` or `host/repo@sha256:…` (a port in the host is kept).
pub fn repository(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_repository_matches_any_tag_and_an_exact_reference_wins() {
        let doc = json!({"images": {
            "example/hello": {"command": ["python3", "hello.py"]},
            "example/hello:v2": {"command": "exec ./v2", "env": {"APP_VERSION": "v2"}},
            "localhost:5000/api": {"cargo": "sample-api"},
        }});
        let map = ImageMap::from_json(&doc, Path::new("/m")).expect("ok");
        let v1 = map.resolve("example/hello:v1").expect("ok");
        assert_eq!(
            v1.program,
            Program::Command(vec!["python3".into(), "hello.py".into()])
        );
        let v2 = map.resolve("example/hello:v2").expect("ok");
        assert_eq!(v2.env["APP_VERSION"], "v2");
        assert!(map.resolve("example/hello@sha256:abc").is_some());
        assert_eq!(
            map.resolve("localhost:5000/api:7").expect("ok").program,
            Program::Cargo("sample-api".into())
        );
        assert!(map.resolve("example/other:v1").is_none());
    }

    #[test]
    fn a_bad_entry_is_named() {
        let doc = json!({"images": {"a": {"comand": "x"}}});
        let e = ImageMap::from_json(&doc, Path::new(".")).expect_err("an error");
        assert!(e.contains("images.a: unknown key `comand`"), "{e}");
        let e = ImageMap::from_json(&json!({"image": {}}), Path::new(".")).expect_err("an error");
        assert!(e.contains("expected `images:`"), "{e}");
    }
}
