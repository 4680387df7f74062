//! Random per-run credentials, and a wrapper that keeps them out of debug output.

use std::fmt;

use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Serialize};

/// A secret value. `Debug` and `Display` print `[redacted]`; use [`Secret::expose`] where the
/// raw value is genuinely needed (a connection string, a child's environment).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A fresh random alphanumeric secret of `len` characters.
    pub fn random(len: usize) -> Self {
        let value: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(len)
            .map(char::from)
            .collect();
        Secret(value)
    }

    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A lowercase random identifier, safe in paths, bucket names and database names.
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn random_secrets_differ() {
        assert_ne!(Secret::random(24), Secret::random(24));
        assert_eq!(Secret::random(24).expose().len(), 24);
    }
}
