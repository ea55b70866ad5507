//! `docker-compose.yml` is valid Compose and runs the fleet this binary provides.
//! No Compose engine runs on CI machines, so the file is checked against the
//! Compose Specification's JSON Schema (vendored under `schemas/vendor/`).

use serde_json::Value;

fn compose_file() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docker-compose.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    yaml.apply_merge().unwrap();
    serde_json::to_value(yaml).unwrap()
}

#[test]
fn docker_compose_file_satisfies_the_compose_specification() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/vendor/compose-spec.schema.json"
    );
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // The vendored file names its draft as `…/2019-09/schema#`, a spelling the
    // validator does not resolve; say the draft directly instead.
    schema.as_object_mut().unwrap().remove("$schema");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft201909)
        .build(&schema)
        .unwrap();
    let compose = compose_file();
    let errors: Vec<String> = validator
        .iter_errors(&compose)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "docker-compose.yml violates the Compose spec: {errors:#?}"
    );
}

#[test]
fn docker_compose_runs_every_fleet_role_with_commands_the_binary_has() {
    let compose = compose_file();
    let services = compose["services"].as_object().unwrap();
    for name in [
        "rabbitmq", "redis", "worker", "notifier", "webhook", "mock-llm",
    ] {
        assert!(services.contains_key(name), "service {name} is missing");
    }
    assert_eq!(services["worker"]["deploy"]["replicas"], 2);
    for (service, command) in [
        ("worker", "worker"),
        ("notifier", "notify"),
        ("webhook", "webhook"),
    ] {
        assert_eq!(services[service]["command"][0], command, "{service}");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_deploy-gate"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "deploy-gate {command} --help failed");
    }
    assert!(services["mock-llm"]["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "demo"));
}
