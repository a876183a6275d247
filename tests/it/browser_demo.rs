//! `token-handler demo` in a real browser: Debian's Chromium driven by playwright-core
//! (tests/browser/e2e.mjs): login at the development IdP on another site, a Bearer at the API,
//! a new token after expiry without a login page, no token readable by the page, cookie
//! attributes, a refused cross-site POST, logout. `./scripts/test.sh` installs Chromium and
//! the npm packages.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_token-handler");

#[test]
fn demo_works_end_to_end_in_chromium() {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        Path::new("/usr/bin/chromium").exists()
            && Path::new(root)
                .join("tests/browser/node_modules/playwright-core")
                .exists(),
        "Chromium or playwright-core is missing: run ./scripts/test.sh, which installs them"
    );
    let mut demo = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--access-token-ttl",
            "4s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo");
    let mut lines = BufReader::new(demo.stdout.take().expect("stdout")).lines();
    let app_url = loop {
        let line = lines
            .next()
            .expect("the demo prints its URL")
            .expect("line");
        if let Some(rest) = line.split("Open ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    assert!(app_url.starts_with("http://localhost:"), "{app_url}");
    // Keep draining the demo's output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    let output = Command::new("node")
        .arg(Path::new(root).join("tests/browser/e2e.mjs"))
        .arg(&app_url)
        .arg(&artifacts)
        .output()
        .expect("run node");
    let _ = demo.kill();
    let _ = demo.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the browser test failed (see its output above)"
    );
    let screenshot = artifacts.join("demo-logged-in.png");
    assert!(screenshot.exists());
    println!("screenshot of the logged-in demo: {}", screenshot.display());
    assert!(stdout.contains(r#""ok":true"#));
}
