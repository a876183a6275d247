//! The production build has no demo: built as the Dockerfile builds it (`--no-default-features`),
//! the binary has no `demo` subcommand and does not contain the development IdP's signing key,
//! whose private half is published in src/demo/tokenidp/jwt.rs.
//!
//! `./scripts/test.sh` builds that binary before `cargo test` and puts it next to the test
//! build's binary as `token-handler-no-demo`. The test build's binary (default features, with
//! the demo) is the control: the same checks must find the demo there, so they can fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The default-features binary Cargo built for the tests.
const BIN: &str = env!("CARGO_BIN_EXE_token-handler");

/// The source file holding the demo's signing key.
const KEY_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/demo/tokenidp/jwt.rs");

fn no_demo_bin() -> PathBuf {
    let name = format!("token-handler-no-demo{}", std::env::consts::EXE_SUFFIX);
    let path = Path::new(BIN).with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run ./scripts/test.sh, which builds it \
         (cargo build --no-default-features) before running cargo test",
        path.display()
    );
    path
}

fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// The subcommands `--help` lists (the first word of each line under `Commands:`).
fn subcommands(bin: &Path) -> Vec<String> {
    let out = run(bin, &["--help"]);
    assert!(out.status.success(), "{} --help failed", bin.display());
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let commands: Vec<String> = help
        .lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with(' '))
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(
        commands.iter().any(|c| c == "keygen"),
        "no subcommand list in the help of {}:\n{help}",
        bin.display()
    );
    commands
}

#[test]
fn the_no_demo_binary_has_no_demo_subcommand() {
    let no_demo = no_demo_bin();
    assert!(subcommands(Path::new(BIN)).iter().any(|c| c == "demo"));
    let listed = subcommands(&no_demo);
    assert!(
        !listed.iter().any(|c| c == "demo"),
        "--help lists {listed:?}"
    );

    let out = run(&no_demo, &["demo", "--help"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("unrecognized subcommand 'demo'"),
        "stderr: {stderr}"
    );
    // The control: the default build knows the subcommand.
    assert!(run(Path::new(BIN), &["demo", "--help"]).status.success());
}

/// The lines of the demo's private key as they are in the compiled string (one PEM line
/// each), read from the source so they follow the key if it is ever replaced.
fn demo_key_lines() -> Vec<String> {
    let source = std::fs::read_to_string(KEY_SOURCE)
        .unwrap_or_else(|e| panic!("cannot read {KEY_SOURCE}: {e}"));
    let mut lines = source
        .lines()
        .skip_while(|line| !line.contains("-----BEGIN RSA PRIVATE KEY-----"));
    let mut pem: Vec<String> = Vec::new();
    for line in &mut lines {
        // `-----BEGIN RSA PRIVATE KEY-----\n\`: the line's text, then `\n` and a continuation.
        let text = line.split("\\n").next().unwrap_or_default();
        let text = text.rsplit('"').next().unwrap_or_default().trim();
        pem.push(text.to_string());
        if text == "-----END RSA PRIVATE KEY-----" {
            break;
        }
    }
    assert!(
        pem.len() > 20 && pem.last().map(String::as_str) == Some("-----END RSA PRIVATE KEY-----"),
        "no PEM private key found in {KEY_SOURCE}: {pem:?}"
    );
    pem
}

/// The binary's bytes as text: each run of ASCII is kept whole, which is all the key is.
fn binary_text(bin: &Path) -> String {
    let bytes = std::fs::read(bin).unwrap_or_else(|e| panic!("cannot read {}: {e}", bin.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn the_no_demo_binary_does_not_contain_the_demo_signing_key() {
    let no_demo = no_demo_bin();
    let pem = demo_key_lines();
    let whole = pem.join("\n") + "\n";
    // The base64 lines only: the BEGIN/END markers are in any PEM parser.
    let body = &pem[1..pem.len() - 1];

    let with_demo = binary_text(Path::new(BIN));
    assert!(
        with_demo.contains(&whole),
        "the demo key is not in the default build {BIN}, so this test could not see it"
    );

    let without = binary_text(&no_demo);
    let found: Vec<&String> = body
        .iter()
        .filter(|l| without.contains(l.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "{} contains {} of the {} lines of the demo's private key, the first: {}",
        no_demo.display(),
        found.len(),
        body.len(),
        found[0]
    );
}
