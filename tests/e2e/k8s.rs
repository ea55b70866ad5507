//! The Kubernetes base (`deploy/k8s/base`) renders, validates against the
//! Kubernetes schemas and KEDA's, and agrees with the configuration the binary
//! really loads: probes on the ports the roles listen on, a worker grace period
//! longer than its drain deadline, KEDA watching the real events queue.
//!
//! Rendering is concatenation: the base has no generators or patches, so
//! `kubectl kustomize` outputs its resources as they are (plus the
//! `app.kubernetes.io/part-of` label and the image tag, which this test checks are
//! declared). The core kinds are validated by `kubernetes-validate` (PyPI; bundled
//! schemas, strict: unknown keys fail), which `scripts/test` installs when missing;
//! the KEDA kinds against the schemas vendored under `schemas/vendor/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

/// The Kubernetes version the manifests are validated against: the oldest minor
/// still supported upstream when the base was written.
const KUBERNETES_VERSION: &str = "1.30.0";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn base() -> PathBuf {
    root().join("deploy/k8s/base")
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            let value = serde_norway::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            serde_json::to_value(value).unwrap()
        })
        .filter(|value: &Value| !value.is_null())
        .collect()
}

/// The kustomization's resources, rendered: every document of every file, in order.
fn rendered() -> Vec<(String, Value)> {
    let kustomization = yaml_documents(&base().join("kustomization.yaml")).remove(0);
    assert_eq!(kustomization["kind"], "Kustomization");
    for absent in [
        "configMapGenerator",
        "secretGenerator",
        "patches",
        "patchesStrategicMerge",
        "replacements",
    ] {
        assert!(
            kustomization.get(absent).is_none(),
            "the base renders by concatenation only; `{absent}` would change its output"
        );
    }
    kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|file| {
            let file = file.as_str().unwrap().to_owned();
            yaml_documents(&base().join(&file))
                .into_iter()
                .map(move |doc| (file.clone(), doc))
        })
        .collect()
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, doc)| doc)
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered base"))
}

/// The settings a role's container really loads: the ConfigMap's file as
/// `$DEPLOY_GATE_CONFIG_DIR/$DEPLOY_GATE_ENV.toml` plus the container's plain
/// environment, through `deploy-gate config` (the binary's own loader, unknown
/// keys refused).
fn loaded_settings(docs: &[(String, Value)], deployment: &Value) -> toml::Table {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let env: BTreeMap<String, String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|var| {
            Some((
                var["name"].as_str()?.to_owned(),
                var["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .expect("the config volume is mounted");
    assert_eq!(
        env["DEPLOY_GATE_CONFIG_DIR"],
        mount["mountPath"].as_str().unwrap()
    );
    let config_map = find(docs, "ConfigMap", "deploy-gate-config");
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in config_map["data"].as_object().unwrap() {
        std::fs::write(dir.path().join(file), text.as_str().unwrap()).unwrap();
    }
    let mut cmd = crate::harness::gate(dir.path());
    cmd.arg("config");
    for (name, value) in &env {
        cmd.env(name, value);
    }
    cmd.env("DEPLOY_GATE_CONFIG_DIR", dir.path());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "deploy-gate config refused the Kubernetes configuration: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

fn port_of(listen: &toml::Value) -> u16 {
    listen
        .as_str()
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("not an address: {listen}"))
}

fn container_port(container: &Value, name_or_number: &Value) -> u16 {
    if let Some(number) = name_or_number.as_u64() {
        return u16::try_from(number).unwrap();
    }
    let name = name_or_number.as_str().unwrap();
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .map(|p| u16::try_from(p).unwrap())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

/// Runs `kubernetes-validate`, or says how to install it. Missing tools fail the
/// test: `scripts/test` installs it (and fails loudly in CI when it cannot).
fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .args(["--kubernetes-version", KUBERNETES_VERSION])
        .args(files)
        .output()
        .inspect(|out| {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("No module named kubernetes_validate"),
                "kubernetes-validate is needed to check deploy/k8s: run scripts/test, which \
                 installs it, or `python3 -m pip install kubernetes-validate`"
            );
        })
        .unwrap_or_else(|e| panic!("python3 is needed to run kubernetes-validate: {e}"))
}

#[test]
fn kubernetes_base_validates_against_the_kubernetes_and_keda_schemas() {
    let docs = rendered();
    let (keda, core): (Vec<_>, Vec<_>) = docs
        .iter()
        .partition(|(_, doc)| doc["apiVersion"].as_str().unwrap().starts_with("keda.sh/"));

    // Core kinds: one rendered file, plus the example Secret users copy.
    let dir = tempfile::tempdir().unwrap();
    let rendered_path = dir.path().join("rendered.yaml");
    let text: Vec<String> = core
        .iter()
        .map(|(_, doc)| serde_norway::to_string(doc).unwrap())
        .collect();
    std::fs::write(&rendered_path, text.join("---\n")).unwrap();
    let out = kubernetes_validate(&[rendered_path, base().join("secret.example.yaml")]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate failed:\n{report}"
    );
    assert!(!report.contains("Couldn't find schema"), "{report}");
    assert_eq!(
        report.matches(" passed for resource ").count(),
        core.len() + 1,
        "every core document is validated:\n{report}"
    );

    // KEDA kinds against the vendored schemas.
    let mut n_keda = 0;
    for (file, doc) in &keda {
        let schema_file = match doc["kind"].as_str().unwrap() {
            "ScaledObject" => "keda-scaledobject.schema.json",
            "TriggerAuthentication" => "keda-triggerauthentication.schema.json",
            other => panic!("{file}: no vendored schema for KEDA kind {other}"),
        };
        let path = root().join("schemas/vendor").join(schema_file);
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:#?}");
        n_keda += 1;
    }
    assert_eq!(n_keda, 2, "a ScaledObject and its TriggerAuthentication");
}

#[test]
fn a_misspelt_key_fails_the_validation() {
    // The check above can fail: strict validation refuses an unknown key in a
    // Deployment, and the closed KEDA schema an unknown key in a trigger.
    let docs = rendered();
    let mut worker = find(&docs, "Deployment", "deploy-gate-worker").clone();
    worker["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 45.into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, serde_norway::to_string(&worker).unwrap()).unwrap();
    let out = kubernetes_validate(&[path]);
    assert!(
        !out.status.success(),
        "an unknown key passed kubernetes-validate"
    );

    let mut scaled = find(&docs, "ScaledObject", "deploy-gate-worker").clone();
    scaled["spec"]["triggers"][0]["authRef"] = serde_json::json!({"name": "x"});
    let path = root().join("schemas/vendor/keda-scaledobject.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(!jsonschema::validator_for(&schema)
        .unwrap()
        .is_valid(&scaled));
}

/// A role: its command, its Deployment's component, the settings key of the
/// address its probes hit, and its drain deadline (seconds) read from its settings.
type Role = (
    &'static str,
    &'static str,
    &'static [&'static str],
    fn(&toml::Table) -> u64,
);

#[test]
fn kubernetes_probes_and_grace_periods_match_what_each_role_loads() {
    let docs = rendered();
    let roles: [Role; 4] = [
        ("worker", "worker", &["worker", "health_listen"], |s| {
            s["worker"]["shutdown_grace_secs"].as_integer().unwrap() as u64
        }),
        (
            "notify",
            "notifier",
            &["telemetry", "metrics_listen"],
            |s| s["notify"]["shutdown_grace_secs"].as_integer().unwrap() as u64,
        ),
        ("webhook", "webhook", &["webhook", "listen"], |s| {
            s["webhook"]["drain_timeout_ms"].as_integer().unwrap() as u64 / 1000
        }),
        ("dashboard", "dashboard", &["dashboard", "listen"], |_| 0),
    ];
    for (command, component, listen_key, drain_secs) in roles {
        let deployment = find(&docs, "Deployment", &format!("deploy-gate-{component}"));
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(
            container["args"][0], command,
            "{component} runs `deploy-gate {command}`"
        );
        let out = crate::harness::gate(&root())
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "deploy-gate {command} --help failed");

        let settings = loaded_settings(&docs, deployment);
        let listen = &settings[listen_key[0]][listen_key[1]];
        let port = port_of(listen);
        assert!(
            listen.as_str().unwrap().starts_with("0.0.0.0:"),
            "{component}: {}.{} = {listen} is not reachable from the kubelet",
            listen_key[0],
            listen_key[1]
        );
        let (live, ready) = (&container["livenessProbe"], &container["readinessProbe"]);
        for probe in [live, ready] {
            assert_eq!(
                container_port(container, &probe["httpGet"]["port"]),
                port,
                "{component}: probe port vs {}.{}",
                listen_key[0],
                listen_key[1]
            );
        }
        match component {
            "worker" => {
                assert_eq!(live["httpGet"]["path"], "/healthz");
                assert_eq!(ready["httpGet"]["path"], "/readyz");
            }
            "notifier" => assert_eq!(live["httpGet"]["path"], "/metrics"),
            _ => assert_eq!(live["httpGet"]["path"], "/healthz"),
        }
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        let drain = drain_secs(&settings);
        assert!(
            grace > drain,
            "{component}: terminationGracePeriodSeconds {grace} must exceed the drain deadline {drain} s"
        );
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"][kind][resource].is_string(),
                    "{component}: resources.{kind}.{resource} is missing"
                );
            }
        }
        // Secrets only through the Secret, and only keys the example names.
        let example = yaml_documents(&base().join("secret.example.yaml")).remove(0);
        for var in container["env"].as_array().unwrap() {
            let name = var["name"].as_str().unwrap();
            if let Some(secret) = var["valueFrom"]["secretKeyRef"].as_object() {
                assert_eq!(
                    secret["name"], example["metadata"]["name"],
                    "{component} {name}"
                );
                let key = secret["key"].as_str().unwrap();
                assert!(
                    example["stringData"].get(key).is_some(),
                    "{component}: {name} reads key {key}, which secret.example.yaml does not name"
                );
            } else {
                assert!(
                    !name.ends_with("_URL") && !name.ends_with("_KEY") && !name.ends_with("SECRET"),
                    "{component}: {name} must come from the Secret, not a plain value"
                );
            }
        }
    }
}

#[test]
fn keda_scales_the_worker_deployment_on_the_events_queue_and_disruptions_keep_one() {
    let docs = rendered();
    let worker = find(&docs, "Deployment", "deploy-gate-worker");
    let settings = loaded_settings(&docs, worker);
    let scaled = find(&docs, "ScaledObject", "deploy-gate-worker");
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"],
        worker["metadata"]["name"]
    );
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "rabbitmq");
    assert_eq!(
        trigger["metadata"]["queueName"].as_str(),
        settings["bus"]["topology"]["events_queue"].as_str(),
        "KEDA watches the queue the workers consume"
    );
    let auth_name = trigger["authenticationRef"]["name"].as_str().unwrap();
    let auth = find(&docs, "TriggerAuthentication", auth_name);
    assert_eq!(auth["spec"]["secretTargetRef"][0]["parameter"], "host");
    assert!(scaled["spec"]["minReplicaCount"].as_u64().unwrap() >= 1);

    let labels = &worker["spec"]["template"]["metadata"]["labels"];
    for (component, deployment) in [
        ("worker", worker),
        ("webhook", find(&docs, "Deployment", "deploy-gate-webhook")),
    ] {
        let pdb = find(
            &docs,
            "PodDisruptionBudget",
            &format!("deploy-gate-{component}"),
        );
        let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (key, value) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(
                &pod_labels[key], value,
                "{component}: the PDB selects the pods"
            );
        }
        assert_eq!(pdb["spec"]["minAvailable"], 1);
    }
    for service in ["deploy-gate-webhook", "deploy-gate-dashboard"] {
        let svc = find(&docs, "Service", service);
        let deployment = find(&docs, "Deployment", service);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        for (key, value) in svc["spec"]["selector"].as_object().unwrap() {
            assert_eq!(
                &deployment["spec"]["template"]["metadata"]["labels"][key],
                value
            );
        }
        container_port(container, &svc["spec"]["ports"][0]["targetPort"]);
    }
    assert_eq!(labels["app.kubernetes.io/component"], "worker");
}
