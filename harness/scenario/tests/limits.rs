//! Inputs too large or too odd to keep as files in `tests/malformed/`: they are generated
//! here, and their reports are snapshots in `tests/snapshots/`.

use harness_scenario::{MAX_FILE_BYTES, parse_bytes};

const HEAD: &str = "name: big\nsteps:\n  - exec: { command: \"true\" }\n";

/// A valid scenario padded with comment lines to exactly `len` bytes.
fn padded(len: usize) -> Vec<u8> {
    let mut text = String::from(HEAD);
    let line = format!("# {}\n", "x".repeat(77));
    while text.len() + line.len() <= len {
        text.push_str(&line);
    }
    text.push_str(&"#".repeat(len - text.len()));
    text.into_bytes()
}

#[test]
fn a_file_of_exactly_the_limit_is_read() {
    let bytes = padded(MAX_FILE_BYTES);
    assert_eq!(bytes.len(), MAX_FILE_BYTES);
    if let Err(d) = parse_bytes("limit.yaml", &bytes) {
        panic!("rejected:\n{}", d.to_plain());
    }
}

#[test]
fn a_file_over_the_limit_is_refused_before_parsing() {
    let bytes = padded(MAX_FILE_BYTES + 1);
    let d = parse_bytes("huge.yaml", &bytes).expect_err("too large");
    assert_eq!(d.problems.len(), 1);
    insta::assert_snapshot!(d.render());
}

#[test]
fn a_string_over_64_kib_is_refused() {
    let long = "a".repeat(64 * 1024 + 1);
    let text = format!(
        "name: big\nvars:\n  blob: \"{long}\"\nsteps:\n  - exec: {{ command: \"echo {long}\" }}\n"
    );
    let d = parse_bytes("long_string.yaml", text.as_bytes()).expect_err("too long");
    assert_eq!(d.problems.len(), 2, "{}", d.to_plain());
    // The rendered report would quote the 64 KiB lines; the plain form keeps it readable.
    insta::assert_snapshot!(d.to_plain());
}

#[test]
fn a_string_of_exactly_64_kib_is_read() {
    let long = "a".repeat(64 * 1024);
    let text = format!("name: big\nsteps:\n  - exec: {{ command: \"{long}\" }}\n");
    if let Err(d) = parse_bytes("limit.yaml", text.as_bytes()) {
        panic!("rejected:\n{}", d.to_plain());
    }
}

#[test]
fn invalid_utf8_after_multibyte_text_points_at_the_bad_byte() {
    let mut bytes = "name: café ünïcode\nsteps:\n  - exec: { command: \"echo "
        .as_bytes()
        .to_vec();
    bytes.extend_from_slice(&[0xC3, 0x28]);
    bytes.extend_from_slice(b"\" }\n");
    let d = parse_bytes("mixed.yaml", &bytes).expect_err("not UTF-8");
    insta::assert_snapshot!(d.render());
}

#[test]
fn random_bytes_are_refused_without_panicking() {
    // A fixed xorshift stream stands in for binary junk such as an image saved as .yaml.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    let d = parse_bytes("junk.bin", &bytes).expect_err("junk");
    insta::assert_snapshot!(d.to_plain());
}

#[test]
fn a_control_character_in_a_long_file_is_located() {
    let mut text = String::from(HEAD);
    for i in 0..200 {
        text.push_str(&format!("# line {i}\n"));
    }
    text.push_str("description: \"bell \u{7}\"\n");
    let d = parse_bytes("bell.yaml", text.as_bytes()).expect_err("control character");
    insta::assert_snapshot!(d.to_plain());
}
