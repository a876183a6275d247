//! The SPA client library, `clients/js` (`@token-handler/client`): its Node tests
//! (`node --test`, on the compiled `dist/index.js` with an injected fetch and location) pass,
//! and the committed `dist/` is exactly what `tsc` makes of `src/` (the demo serves
//! `dist/index.js`, so the two must not drift). `./scripts/test.sh` installs TypeScript
//! (`npm ci` in `clients/js`); the build then needs no network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js")
}

fn report(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    stdout.into_owned()
}

/// The number after `# <name> ` in the TAP summary.
fn count(tap: &str, name: &str) -> Option<u64> {
    let prefix = format!("# {name} ");
    tap.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn client_node_tests_pass() {
    let output = Command::new("node")
        .args(["--test", "--test-reporter=tap", "test/client.test.mjs"])
        .current_dir(client_dir())
        .output()
        .expect("run node (./scripts/test.sh installs it)");
    let tap = report(&output);
    assert!(
        output.status.success(),
        "the client's Node tests failed (see above)"
    );
    let (pass, fail) = (count(&tap, "pass"), count(&tap, "fail"));
    assert_eq!(fail, Some(0), "failed tests (see above)");
    assert!(pass.is_some_and(|n| n >= 40), "too few tests ran: {pass:?}");
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                out.insert(relative, std::fs::read(&path).expect("read file"));
            }
        }
    }
    out
}

#[test]
fn committed_dist_is_what_tsc_builds_from_the_source() {
    let dir = client_dir();
    let tsc = dir.join("node_modules/typescript/bin/tsc");
    assert!(
        tsc.exists(),
        "TypeScript is missing: run ./scripts/test.sh (npm ci in clients/js)"
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("js-client-dist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new("node")
        .arg(&tsc)
        .args(["-p", "tsconfig.json", "--outDir"])
        .arg(&out)
        .current_dir(&dir)
        .output()
        .expect("run tsc");
    report(&output);
    assert!(output.status.success(), "tsc failed (see above)");
    let built = files(&out);
    let committed = files(&dir.join("dist"));
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        built.contains_key(Path::new("index.js")) && built.contains_key(Path::new("index.d.ts"))
    );
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "clients/js/dist has other files than tsc builds: run `npm run build` in clients/js"
    );
    for (name, bytes) in &built {
        assert!(
            committed[name] == *bytes,
            "clients/js/dist/{} is not what tsc builds from src/: run `npm run build` in clients/js and commit dist/",
            name.display()
        );
    }
}
