//! Inputs too large or too odd to keep as files in `tests/malformed/`: they are generated
//! here, and their reports are snapshots in `tests/snapshots/`.

use harness_scenario::{MAX_EXPANDED_BYTES, MAX_FILE_BYTES, parse_bytes};

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

/// A scenario whose `vars` hold one 60 KiB string, aliased 16 times per level, four levels
/// deep: about 75 000 nodes (inside the node budget) that would copy 3.75 GiB of text.
fn byte_bomb() -> String {
    let mut text = format!("name: bomb\nvars:\n  s: &s \"{}\"\n", "a".repeat(60 * 1024));
    let mut prev = "s".to_owned();
    for level in 1..=4 {
        let items = vec![format!("*{prev}"); 16].join(", ");
        text.push_str(&format!("  l{level}: &l{level} [{items}]\n"));
        prev = format!("l{level}");
    }
    text.push_str("steps:\n  - exec: { command: \"true\" }\n");
    text
}

#[test]
fn a_byte_bomb_of_aliases_is_refused() {
    let bytes = byte_bomb().into_bytes();
    assert!(bytes.len() <= MAX_FILE_BYTES);
    let d = parse_bytes("byte_bomb.yaml", &bytes).expect_err("too much text");
    assert_eq!(d.problems.len(), 1, "{}", d.to_plain());
    assert_eq!(
        d.problems[0].message,
        format!(
            "aliases expand to more than {} MiB of text",
            MAX_EXPANDED_BYTES / (1024 * 1024)
        )
    );
    // The rendered report would quote the 60 KiB line; the plain form keeps it readable.
    insta::assert_snapshot!(d.to_plain());
}

/// Set for the child process of `a_byte_bomb_is_refused_within_1_gib_of_memory`.
const BOMB_CHILD: &str = "HARNESS_SCENARIO_BOMB_CHILD";
/// What the child prints once the bomb is refused.
const REFUSED: &str = "byte bomb refused: ";

/// Does nothing unless `BOMB_CHILD` is set: then it is the child process of the test below,
/// parsing the bomb under its memory limit.
#[test]
fn byte_bomb_child_process() {
    if std::env::var_os(BOMB_CHILD).is_none() {
        return;
    }
    let d = parse_bytes("byte_bomb.yaml", byte_bomb().as_bytes()).expect_err("too much text");
    println!("{REFUSED}{}", d.to_plain().trim_end());
}

/// The byte budget is checked before a copy is made: with 1 GiB of address space the bomb
/// is refused, where copying it would abort the process for lack of memory.
#[cfg(target_os = "linux")]
#[test]
fn a_byte_bomb_is_refused_within_1_gib_of_memory() {
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 1048576 && exec "$0" "$@""#)
        .arg(&exe)
        .args([
            "byte_bomb_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(BOMB_CHILD, "1")
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    assert!(
        stdout.contains(&format!("{REFUSED}byte_bomb.yaml:")),
        "the child did not parse the bomb:\n{stdout}\n{stderr}"
    );
}
