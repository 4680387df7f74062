//! `harness run --partition`: one machine's share of a scenario library, deterministic by
//! file, in nextest's two forms. `count:K/N` deals the files (sorted by path) round-robin, so
//! the shares differ by at most one file; `hash:K/N` puts each file by a hash of its path, so
//! a file stays in its share when others are added or removed. A bare `K/N` is `count:K/N`.

use std::{fmt, path::Path, str::FromStr};

/// Which share of the files a run takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub hash: bool,
    /// 1-based.
    pub shard: u64,
    pub total: u64,
}

impl FromStr for Partition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (hash, rest) = match s.split_once(':') {
            Some(("count", r)) => (false, r),
            Some(("hash", r)) => (true, r),
            Some((kind, _)) => {
                return Err(format!(
                    "unknown partition kind `{kind}`: write count:K/N or hash:K/N"
                ));
            }
            None => (false, s),
        };
        let (k, n) = rest
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a partition: write count:K/N or hash:K/N"))?;
        let parse = |v: &str, what: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("`{v}` in `{s}` is not a {what}"))
        };
        let (shard, total) = (parse(k, "shard number")?, parse(n, "shard count")?);
        if total == 0 || shard == 0 || shard > total {
            return Err(format!(
                "`{s}`: the shard K of K/N runs from 1 to N (N at least 1)"
            ));
        }
        Ok(Partition { hash, shard, total })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.hash { "hash" } else { "count" };
        write!(f, "{kind}:{}/{}", self.shard, self.total)
    }
}

/// FNV-1a: the same on every machine and toolchain (std's hasher is neither promised).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The key a file is placed by: its path as found, `/`-separated, without a leading `./`.
fn key(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").unwrap_or(&s).to_owned()
}

impl Partition {
    /// The items of this share, in their order; `path` gives an item's file.
    pub fn select<T>(&self, items: Vec<T>, path: impl Fn(&T) -> &Path) -> Vec<T> {
        let mut keyed: Vec<(String, T)> = items.into_iter().map(|t| (key(path(&t)), t)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed
            .into_iter()
            .enumerate()
            .filter(|(i, (k, _))| {
                let bucket = if self.hash {
                    fnv1a(k.as_bytes()) % self.total
                } else {
                    *i as u64 % self.total
                };
                bucket + 1 == self.shard
            })
            .map(|(_, (_, t))| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn files(n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| PathBuf::from(format!("./scenarios/s{i:04}.yaml")))
            .collect()
    }

    #[test]
    fn the_shares_are_disjoint_and_cover_every_file_in_both_kinds() {
        for hash in [false, true] {
            for total in [1, 2, 3, 7] {
                let all = files(100);
                let mut seen = Vec::new();
                for shard in 1..=total {
                    let p = Partition { hash, shard, total };
                    let share = p.select(all.clone(), |p| p.as_path());
                    if !hash {
                        let (lo, hi) = (100 / total as usize, 100usize.div_ceil(total as usize));
                        assert!((lo..=hi).contains(&share.len()), "{p}: {}", share.len());
                    }
                    seen.extend(share);
                }
                seen.sort();
                assert_eq!(seen, all, "hash={hash} total={total}");
            }
        }
    }

    #[test]
    fn a_hash_share_keeps_its_files_when_others_come_and_go() {
        let p = Partition {
            hash: true,
            shard: 2,
            total: 4,
        };
        let before = p.select(files(50), |p| p.as_path());
        let after = p.select(files(80), |p| p.as_path());
        assert!(before.iter().all(|f| after.contains(f)));
        // `./` or not, the same share.
        let bare: Vec<PathBuf> = files(50)
            .iter()
            .map(|f| f.strip_prefix("./").expect("prefix").to_path_buf())
            .collect();
        assert_eq!(p.select(bare, |p| p.as_path()).len(), before.len());
    }

    #[test]
    fn partitions_parse_as_nextest_writes_them() {
        assert_eq!(
            "hash:2/5".parse(),
            Ok(Partition {
                hash: true,
                shard: 2,
                total: 5
            })
        );
        assert_eq!(
            "1/3".parse::<Partition>().map(|p| p.to_string()),
            Ok("count:1/3".into())
        );
        for bad in ["0/3", "4/3", "1/0", "slice:1/2", "1-2", "a/b"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }
}
