//! `deploy-gate config` and configuration errors as a user meets them.

use crate::harness::{gate, run};

#[test]
fn config_prints_the_effective_configuration_with_passwords_masked() {
    let dir = tempfile::tempdir().unwrap();
    let out = gate(dir.path())
        .args(["config"])
        .env(
            "DEPLOY_GATE__AMQP__URL",
            "amqp://gate:hunter2-not-real@broker:5672/prod",
        )
        .env("DEPLOY_GATE__BANDS__HOLD_FROM", "60")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("hunter2-not-real"), "{stdout}");
    assert!(
        stdout.contains("amqp://gate:****@broker:5672/prod"),
        "{stdout}"
    );
    assert!(stdout.contains("hold_from = 60"), "{stdout}");
}

#[test]
fn invalid_config_file_is_a_usage_error_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gate.toml");
    std::fs::write(&file, "[bands]\nreview_from = 20\nhold_frm = 60\n").unwrap();
    let out = run(dir.path(), &["--config", file.to_str().unwrap(), "config"]);
    assert_eq!(out.code, 2, "{}", out.all_output());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    for needle in ["gate.toml", "line 3", "hold_frm"] {
        assert!(
            out.stderr.contains(needle),
            "missing {needle}: {}",
            out.stderr
        );
    }
}

#[test]
fn unreadable_config_file_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--config", "does-not-exist.toml", "check"]);
    assert_eq!(out.code, 2, "{}", out.all_output());
    assert!(out.stderr.contains("does-not-exist.toml"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn config_dir_and_environment_layer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.toml"),
        "[bands]\nblock_from = 90\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("staging.toml"),
        "[bands]\nblock_from = 85\n",
    )
    .unwrap();
    let out = gate(dir.path())
        .args(["config"])
        .env("DEPLOY_GATE_CONFIG_DIR", dir.path())
        .env("DEPLOY_GATE_ENV", "staging")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("block_from = 85"), "{stdout}");
}
