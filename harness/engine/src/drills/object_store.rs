//! The object store: a bucket's backup and restore.
//!
//! - `mirror`: every current object is copied to a folder with its SHA-256, and a restore
//!   puts each one back.
//! - `versions`: the bucket's own versions are the backup (the scenario's bucket is
//!   versioned); the backup records each object's current version, and a restore makes that
//!   version current again: a delete marker above it is removed, a later version is
//!   replaced by a copy of it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aws_sdk_s3::{Client, primitives::ByteStream};
use sha2::{Digest, Sha256};

use crate::run::stores::sdk_error;

/// One object as backed up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub sha256: String,
    pub size: u64,
    pub version_id: Option<String>,
    /// Where its bytes are (a mirror).
    pub file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Backup {
    pub id: String,
    pub path: PathBuf,
    pub mirror: bool,
    pub objects: BTreeMap<String, Object>,
    pub bytes: u64,
    pub took: Duration,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every current object's key, with its version.
async fn current(client: &Client, bucket: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| format!("list {bucket}: {}", sdk_error(&e)))?;
        for o in page.contents() {
            if let Some(k) = o.key() {
                all.push(k.to_owned());
            }
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for key in all {
        let head = client
            .head_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("head {key}: {}", sdk_error(&e)))?;
        out.push((key, head.version_id().map(str::to_owned)));
    }
    Ok(out)
}

async fn get(
    client: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Vec<u8>, String> {
    let got = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .map_err(|e| format!("get {key}: {}", sdk_error(&e)))?;
    let body = got
        .body
        .collect()
        .await
        .map_err(|e| format!("read {key}: {e}"))?;
    Ok(body.into_bytes().to_vec())
}

/// Backs the bucket up into `path` (created): a mirror of every object, or a record of
/// each one's current version.
pub async fn backup(
    client: &Client,
    bucket: &str,
    path: &Path,
    mirror: bool,
) -> Result<Backup, String> {
    let t0 = Instant::now();
    std::fs::create_dir_all(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut objects = BTreeMap::new();
    let mut bytes = 0;
    for (n, (key, version)) in current(client, bucket).await?.into_iter().enumerate() {
        let body = get(client, bucket, &key, version.as_deref()).await?;
        let file = if mirror {
            // Numbered files: a key may hold any character, a file name may not.
            let f = path.join(format!("{n:06}.bin"));
            std::fs::write(&f, &body).map_err(|e| format!("write {}: {e}", f.display()))?;
            Some(f)
        } else {
            None
        };
        bytes += body.len() as u64;
        objects.insert(
            key,
            Object {
                sha256: hex(&Sha256::digest(&body)),
                size: body.len() as u64,
                version_id: version,
                file,
            },
        );
    }
    let manifest: serde_json::Map<String, serde_json::Value> = objects
        .iter()
        .map(|(k, o)| {
            (
                k.clone(),
                serde_json::json!({"sha256": o.sha256, "size": o.size, "version_id": o.version_id,
                    "file": o.file.as_ref().and_then(|f| f.file_name()).map(|f| f.to_string_lossy().into_owned())}),
            )
        })
        .collect();
    let m = path.join("manifest.json");
    std::fs::write(&m, serde_json::to_vec_pretty(&manifest).unwrap_or_default())
        .map_err(|e| format!("write {}: {e}", m.display()))?;
    Ok(Backup {
        id: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path: path.to_owned(),
        mirror,
        objects,
        bytes,
        took: t0.elapsed(),
    })
}

/// Damages the bucket; what was done.
pub async fn damage(
    client: &Client,
    bucket: &str,
    delete: &[String],
    delete_all: bool,
    overwrite: &BTreeMap<String, String>,
) -> Result<(String, Vec<String>), String> {
    let keys: Vec<String> = if delete_all {
        current(client, bucket)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    } else {
        delete.to_vec()
    };
    for key in &keys {
        client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("delete {key}: {}", sdk_error(&e)))?;
    }
    for (key, text) in overwrite {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(text.clone().into_bytes()))
            .send()
            .await
            .map_err(|e| format!("overwrite {key}: {}", sdk_error(&e)))?;
    }
    if !overwrite.is_empty() {
        let keys: Vec<String> = overwrite.keys().cloned().collect();
        return Ok((format!("overwrite {}", keys.join(", ")), keys));
    }
    Ok((format!("delete {}", keys.join(", ")), keys))
}

/// Restores every backed-up object; the keys that had to be put back or made current.
pub async fn restore(
    client: &Client,
    bucket: &str,
    backup: &Backup,
) -> Result<Vec<String>, String> {
    let now: BTreeMap<String, Option<String>> =
        current(client, bucket).await?.into_iter().collect();
    let mut restored = Vec::new();
    for (key, o) in &backup.objects {
        if now.get(key) == Some(&o.version_id) && o.version_id.is_some() {
            continue;
        }
        if backup.mirror {
            let file = o
                .file
                .as_ref()
                .ok_or_else(|| format!("the mirror of {key} is missing"))?;
            let body = std::fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| format!("put {key}: {}", sdk_error(&e)))?;
        } else {
            let version = o.version_id.as_deref().ok_or_else(|| {
                format!("{key} had no version when it was backed up: the bucket is not versioned")
            })?;
            if !remove_markers_above(client, bucket, key, version).await? {
                client
                    .copy_object()
                    .bucket(bucket)
                    .key(key)
                    .copy_source(format!(
                        "{bucket}/{}?versionId={version}",
                        url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
                    ))
                    .send()
                    .await
                    .map_err(|e| format!("copy {key} version {version}: {}", sdk_error(&e)))?;
            }
        }
        restored.push(key.clone());
    }
    Ok(restored)
}

/// When only delete markers lie above `version` of `key`, removes them (the version is
/// current again) and says so.
async fn remove_markers_above(
    client: &Client,
    bucket: &str,
    key: &str,
    version: &str,
) -> Result<bool, String> {
    let page = client
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .map_err(|e| format!("list the versions of {key}: {}", sdk_error(&e)))?;
    let newer_version = page
        .versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .take_while(|v| v.version_id() != Some(version))
        .count();
    let found = page
        .versions()
        .iter()
        .any(|v| v.key() == Some(key) && v.version_id() == Some(version));
    if !found {
        return Err(format!(
            "version {version} of {key} is gone from the bucket"
        ));
    }
    if newer_version > 0 {
        return Ok(false);
    }
    for m in page
        .delete_markers()
        .iter()
        .filter(|m| m.key() == Some(key))
    {
        client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(m.version_id().map(str::to_owned))
            .send()
            .await
            .map_err(|e| format!("remove a delete marker of {key}: {}", sdk_error(&e)))?;
    }
    Ok(true)
}

/// The current object's SHA-256 and size, or `None` when there is none.
pub async fn state(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<(String, u64)>, String> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => {}
        Err(e) => {
            let text = sdk_error(&e);
            if text.contains("NotFound") || text.contains("NoSuchKey") || text.contains("404") {
                return Ok(None);
            }
            return Err(format!("head {key}: {text}"));
        }
    }
    let body = get(client, bucket, key, None).await?;
    Ok(Some((hex(&Sha256::digest(&body)), body.len() as u64)))
}
