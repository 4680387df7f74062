//! Traffic targets: the `spec.traffic` a client writes, checked as the real API checks it,
//! and resolved against the revisions into `status.traffic` and the ingress's split.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    error::{ApiError, ApiResult},
    spec::known_keys,
};

/// One target of `spec.traffic`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub revision: Option<String>,
    pub latest: bool,
    pub percent: u32,
    pub tag: Option<String>,
}

impl Target {
    pub fn all_to_latest() -> Vec<Target> {
        vec![Target {
            revision: None,
            latest: true,
            percent: 100,
            tag: None,
        }]
    }

    pub fn json(&self) -> Value {
        let mut t = json!({});
        if let Some(r) = &self.revision {
            t["revisionName"] = json!(r);
        }
        if self.latest {
            t["latestRevision"] = json!(true);
        }
        if self.percent > 0 {
            t["percent"] = json!(self.percent);
        }
        if let Some(tag) = &self.tag {
            t["tag"] = json!(tag);
        }
        t
    }
}

/// Reads and checks `spec.traffic`. Missing or empty: all traffic to the latest revision.
pub fn parse(v: Option<&Value>) -> ApiResult<Vec<Target>> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Target::all_to_latest()),
        Some(Value::Array(a)) if a.is_empty() => return Ok(Target::all_to_latest()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "spec.traffic",
                "Invalid value at 'spec.traffic': expected a list.",
            ));
        }
    };
    let mut targets = Vec::new();
    let mut tags = BTreeSet::new();
    for (i, t) in list.iter().enumerate() {
        let at = format!("spec.traffic[{i}]");
        let Some(obj) = t.as_object() else {
            return Err(ApiError::invalid_field(
                &at,
                format!("Invalid value at '{at}'."),
            ));
        };
        known_keys(
            obj,
            &[
                "revisionName",
                "latestRevision",
                "percent",
                "tag",
                "configurationName",
                "url",
            ],
            &at,
        )?;
        let revision = obj
            .get("revisionName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let latest = obj
            .get("latestRevision")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let percent = match obj.get("percent") {
            None | Some(Value::Null) => 0,
            Some(p) => match p.as_u64() {
                Some(p) if p <= 100 => u32::try_from(p).unwrap_or(0),
                _ => {
                    return Err(ApiError::invalid_field(
                        &format!("{at}.percent"),
                        format!("{at}.percent: expected an integer from 0 to 100, got {p}"),
                    ));
                }
            },
        };
        let tag = obj
            .get("tag")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if latest && revision.is_some() {
            return Err(ApiError::invalid_field(
                &at,
                format!(
                    "{at}: may not set revisionName \"{}\" when latestRevision is true",
                    revision.unwrap_or_default()
                ),
            ));
        }
        if !latest && revision.is_none() {
            return Err(ApiError::invalid_field(
                &at,
                format!("{at}: expected exactly one, got neither: revisionName, latestRevision"),
            ));
        }
        if let Some(tag) = &tag {
            if !valid_tag(tag) {
                return Err(ApiError::invalid_field(
                    &format!("{at}.tag"),
                    format!(
                        "{at}.tag: Invalid tag '{tag}': a tag must be lowercase letters, digits and dashes, start with a letter and be at most 46 characters."
                    ),
                ));
            }
            if !tags.insert(tag.clone()) {
                return Err(ApiError::invalid_field(
                    &format!("{at}.tag"),
                    format!("{at}.tag: Multiple definitions for \"{tag}\""),
                ));
            }
        }
        targets.push(Target {
            revision,
            latest,
            percent,
            tag,
        });
    }
    let sum: u32 = targets.iter().map(|t| t.percent).sum();
    if sum != 100 {
        return Err(ApiError::invalid_field(
            "spec.traffic",
            format!("Traffic targets sum to {sum}, want 100: spec.traffic"),
        ));
    }
    Ok(targets)
}

fn valid_tag(tag: &str) -> bool {
    tag.len() <= 46
        && tag.starts_with(|c: char| c.is_ascii_lowercase())
        && !tag.ends_with('-')
        && tag
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_must_sum_to_100_and_tags_be_unique() {
        let e = parse(Some(
            &json!([{"revisionName": "a", "percent": 50}, {"revisionName": "b", "percent": 40}]),
        ))
        .expect_err("an error");
        assert_eq!(
            e.message,
            "Traffic targets sum to 90, want 100: spec.traffic"
        );
        let e = parse(Some(&json!([{"revisionName": "a", "percent": 100, "tag": "x"}, {"revisionName": "b", "tag": "x"}]))).expect_err("an error");
        assert!(e.message.contains("Multiple definitions for \"x\""), "{e}");
        let ok = parse(Some(&json!([{"latestRevision": true, "percent": 100}, {"revisionName": "b", "tag": "blue"}]))).expect("ok");
        assert_eq!(ok.len(), 2);
        assert_eq!(parse(None).expect("ok"), Target::all_to_latest());
    }
}
