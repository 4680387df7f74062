//! "Did you mean …?" for misspelt keys, kinds and names.

/// The candidate closest to `input`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let input_lower = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let d = strsim::damerau_levenshtein(&input_lower, &c.to_ascii_lowercase());
            (d, c)
        })
        .filter(|(d, c)| *d <= (c.len() / 3).max(1) + usize::from(c.len() > 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn finds_near_misses_only() {
        let kinds = ["http", "sql", "s3", "cypher", "eventually"];
        assert_eq!(did_you_mean("htp", kinds), Some("http"));
        assert_eq!(did_you_mean("HTTP", kinds), Some("http"));
        assert_eq!(did_you_mean("eventualy", kinds), Some("eventually"));
        assert_eq!(did_you_mean("cyhper", kinds), Some("cypher"));
        assert_eq!(did_you_mean("graphql", kinds), None);
        assert_eq!(did_you_mean("GTE", ["GET", "POST"]), Some("GET"));
    }
}
