//! The Helm chart's tests (tests/helm/test_chart.py), run with the binary cargo just built:
//! lint, render with the real Helm engine for every option, validate every manifest against
//! the Kubernetes schemas, `token-handler check` the rendered config, refuse bad values.
//!
//! They need Python with tests/helm/requirements.txt installed; scripts/test.sh makes that venv
//! at target/venv (override with TOKEN_HANDLER_HELM_PYTHON).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn helm_chart_lints_renders_validates_and_refuses_bad_values() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("TOKEN_HANDLER_HELM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test.sh, which creates target/venv from tests/helm/requirements.txt",
        python.display()
    );
    let output = Command::new(&python)
        .arg(root.join("tests/helm/test_chart.py"))
        .env("TOKEN_HANDLER_BIN", env!("CARGO_BIN_EXE_token-handler"))
        .output()
        .expect("run tests/helm/test_chart.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "tests/helm/test_chart.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
