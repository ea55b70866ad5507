//! Security of the fleet's human side: `approve`/`override` through the real CLI
//! are applied only for configured approvers holding the signing key.

use crate::fleet_harness::{app_repo, commit_drop_table, Fleet, FleetOptions};

#[test]
fn only_a_configured_approver_with_the_signing_key_can_approve() {
    let fleet = Fleet::start(FleetOptions::default());
    let _worker = fleet.spawn_worker(&[]);
    let repo = app_repo();
    commit_drop_table(&repo);
    let event_id = format!("{}approvals", fleet.prefix);
    fleet.enqueue(&repo, &event_id);
    let automatic = fleet.wait_for(&event_id, 1);
    assert_eq!(automatic["recommendation"], "block");

    let stranger = fleet.run(&[
        "approve", &event_id, "--by", "mallory", "--reason", "trust me",
    ]);
    assert_eq!(stranger.code, 2, "{}", stranger.all_output());
    assert!(
        stranger
            .all_output()
            .contains("\"mallory\" is not one of approvals.approvers"),
        "{}",
        stranger.all_output()
    );

    let mut keyless = fleet.command(&[
        "override", &event_id, "--to", "deploy", "--by", "alice", "--reason", "no key",
    ]);
    keyless.env("DEPLOY_GATE__APPROVALS__SIGNING_KEY", "");
    let keyless = crate::harness::Run::from_output(keyless.output().unwrap());
    assert_eq!(keyless.code, 2, "{}", keyless.all_output());
    assert!(
        keyless
            .all_output()
            .contains("DEPLOY_GATE__APPROVALS__SIGNING_KEY"),
        "{}",
        keyless.all_output()
    );

    // Neither refusal changed the decision.
    let stored = fleet.stored_decision(&event_id).unwrap();
    assert_eq!(stored["recommendation"], "block");
    assert!(stored.get("approval").is_none_or(|a| a.is_null()));

    let approved = fleet.run(&[
        "approve",
        &event_id,
        "--by",
        "alice",
        "--reason",
        "migration rehearsed on staging",
    ]);
    assert_eq!(approved.code, 0, "{}", approved.all_output());
    let approved = approved.decision();
    assert_eq!(approved["approval"]["by"], "alice");
    assert_eq!(
        approved["approval"]["reason"],
        "migration rehearsed on staging"
    );
    let notes = approved["consensus"]["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n
            .as_str()
            .unwrap()
            .starts_with("approval signature: hmac-sha256=")),
        "{notes:?}"
    );
    let after = fleet.wait_for(&event_id, 0);
    assert_eq!(after["approval"]["by"], "alice");
}

/// A virtual host of the test's own and the role users the script made in it,
/// deleted when dropped.
struct BrokerRealm {
    vhost: String,
    users: Vec<String>,
}

impl Drop for BrokerRealm {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.vhost])
            .output();
        for user in &self.users {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["delete_user", user])
                .output();
        }
    }
}

const ROLES: [(&str, &str); 5] = [
    ("gate-admin", "GATE_ADMIN_PASSWORD"),
    ("gate-producer", "GATE_PRODUCER_PASSWORD"),
    ("gate-worker", "GATE_WORKER_PASSWORD"),
    ("gate-notifier", "GATE_NOTIFIER_PASSWORD"),
    ("gate-orchestrator", "GATE_ORCHESTRATOR_PASSWORD"),
];

#[test]
fn each_role_works_with_its_own_least_privilege_broker_user() {
    use std::time::Duration;

    let fleet = Fleet::start(FleetOptions::default());
    let vhost = format!("{}vhost", fleet.prefix);
    let realm = BrokerRealm {
        vhost: vhost.clone(),
        users: ROLES
            .iter()
            .map(|(role, _)| format!("{}{role}", fleet.prefix))
            .collect(),
    };
    let password = |role: &str| format!("{role}-pw-not-a-secret");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/rabbitmq-users.sh"
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.args([
        script,
        "--vhost",
        &vhost,
        "--prefix",
        &fleet.prefix,
        "--user-prefix",
        &fleet.prefix,
    ]);
    for (role, variable) in ROLES {
        cmd.env(variable, password(role));
    }
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "scripts/rabbitmq-users.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let url = |role: &str| {
        format!(
            "amqp://{}{role}:{}@127.0.0.1:5672/{vhost}",
            fleet.prefix,
            password(role)
        )
    };

    // The administrator declares the topology once; the roles do not.
    let declared = crate::secrets::run_with(
        &fleet,
        &["declare-topology"],
        &[("DEPLOY_GATE__AMQP__URL", &url("gate-admin"))],
    );
    assert_eq!(declared.code, 0, "{}", declared.all_output());
    let role_env = |role: &str| {
        vec![
            ("DEPLOY_GATE__AMQP__URL".to_owned(), url(role)),
            (
                "DEPLOY_GATE__BUS__DECLARE_TOPOLOGY".to_owned(),
                "false".to_owned(),
            ),
        ]
    };
    let owned: Vec<Vec<(String, String)>> = [
        "gate-worker",
        "gate-notifier",
        "gate-producer",
        "gate-orchestrator",
    ]
    .iter()
    .map(|role| role_env(role))
    .collect();
    fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
    let (worker_env, notifier_env, producer_env, orchestrator_env) = (
        pairs(&owned[0]),
        pairs(&owned[1]),
        pairs(&owned[2]),
        pairs(&owned[3]),
    );

    let worker = fleet.spawn_worker(&worker_env);
    let _notifier = fleet.spawn_notifier(&notifier_env);
    let repo = app_repo();
    commit_drop_table(&repo);
    let event_id = format!("{}least-privilege", fleet.prefix);
    let enqueue = crate::secrets::run_with(
        &fleet,
        &[
            "enqueue",
            "--repo",
            repo.path().to_str().unwrap(),
            "--repo-name",
            crate::fleet_harness::REPO_NAME,
            "--event-id",
            &event_id,
        ],
        &producer_env,
    );
    assert_eq!(
        enqueue.code,
        0,
        "enqueue as gate-producer:\n{}",
        enqueue.all_output()
    );
    let wait = crate::secrets::run_with(
        &fleet,
        &["wait", "--event", &event_id, "--json", "--timeout", "60s"],
        &orchestrator_env,
    );
    assert_eq!(
        wait.code,
        1,
        "wait as gate-orchestrator:\n{}\nworker:\n{}",
        wait.all_output(),
        fleet.log(worker)
    );
    assert_eq!(wait.decision()["recommendation"], "block");
    // The notifier, as gate-notifier, delivered the block to Slack.
    fleet.wait_for_slack(1, Duration::from_secs(30));

    // The producer's user cannot read the events queue.
    let refused = fleet.block_on(async {
        let settings = gate_bus::BusSettings {
            declare_topology: false,
            ..fleet.bus_settings.clone()
        };
        let bus = gate_bus::Bus::connect(&url("gate-producer"), settings)
            .await
            .unwrap();
        let consumed = bus.consume(&fleet.topology().events_queue, 1).await;
        let _ = bus.close().await;
        consumed.err().map(|err| err.to_string())
    });
    let refused = refused.expect("gate-producer must not consume gate.merge-events");
    assert!(
        refused.to_uppercase().contains("ACCESS_REFUSED") || refused.contains("403"),
        "{refused}"
    );
    drop(realm);
}
