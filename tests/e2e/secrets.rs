//! Secrets never leave through the side doors: with recognisable fake keys planted
//! in the config file, the environment and the change itself, the whole fleet
//! (enqueue → worker → notifier, the mock model and the mock Slack) runs with debug
//! logging, and no log line of any process, no message that crossed the broker and
//! no request the mocks received carries one — except each key in the one place it
//! must go (the model key in the mock model's auth header, the Slack token in the
//! webhook's own URL path).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use gate_bus::Bus;
use serde_json::Value;

use crate::fleet_harness::{app_repo, Fleet, FleetOptions, AMQP_URL, REPO_NAME};
use crate::harness::Run;

/// The model provider's key (Anthropic's format, obviously fake).
const ANTHROPIC_KEY: &str =
    "sk-ant-api03-FAKEplantedMODELkey0000000000000000000000000000000000000000000000000000000000000-AAAAAAAA";
/// A GitHub token in the environment (the webhook's API token variable).
const GITHUB_TOKEN: &str = "ghp_FAKEplantedGITHUBtoken0000000000000000";
/// The broker password, in the config file's `[amqp] url`.
const AMQP_PASSWORD: &str = "amqpFAKEplantedPASSWORD7c1d";
/// The Redis password of a Redis user of the test's own, in
/// `DEPLOY_GATE__REDIS__URL`.
const REDIS_PASSWORD: &str = "redisFAKEplantedPASSWORD9e2a";
/// The signed-events webhook secret, in the environment.
const WEBHOOK_SECRET: &str = "whsecFAKEplantedWEBHOOKsecret4b7e";
/// A key committed in the change: core must redact it before anything leaves.
const DIFF_KEY: &str =
    "sk-ant-api03-FAKEplantedDIFFkey11111111111111111111111111111111111111111111111111111111111-BBBBBBBB";

/// A RabbitMQ user of this test's own, deleted when dropped.
struct BrokerUser(String);

impl BrokerUser {
    fn create(name: &str, password: &str) -> BrokerUser {
        rabbitmqctl(&["add_user", name, password]);
        rabbitmqctl(&["set_permissions", "-p", "/", name, ".*", ".*", ".*"]);
        BrokerUser(name.to_owned())
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_user", &self.0])
            .output();
    }
}

/// Runs `rabbitmqctl`, failing the test (never skipping) when it cannot.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed (the tests create broker users with it)");
    assert!(
        output.status.success(),
        "rabbitmqctl {} failed: {}{}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A Redis ACL user of this test's own, deleted when dropped.
struct RedisUser(String);

impl RedisUser {
    fn create(name: &str, password: &str) -> RedisUser {
        let output = Command::new("redis-cli")
            .args([
                "ACL",
                "SETUSER",
                name,
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
            ])
            .output()
            .expect("redis-cli must be installed (the test creates a Redis user with it)");
        let answer = String::from_utf8_lossy(&output.stdout);
        assert!(answer.trim() == "OK", "ACL SETUSER {name}: {answer}");
        RedisUser(name.to_owned())
    }
}

impl Drop for RedisUser {
    fn drop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["ACL", "DELUSER", &self.0])
            .output();
    }
}

/// Where a text was seen, and the text.
struct Seen {
    place: String,
    text: String,
}

#[test]
fn planted_secrets_never_reach_logs_broker_messages_or_the_model() {
    let fleet = Fleet::start(FleetOptions { models: true });
    let slack_token = fleet.slack_url.rsplit('/').next().unwrap().to_owned();
    assert!(slack_token.len() >= 20, "{}", fleet.slack_url);
    let user = format!("{}secrets", fleet.prefix);
    let _broker_user = BrokerUser::create(&user, AMQP_PASSWORD);
    fleet.append_config(&format!(
        "[amqp]\nurl = \"amqp://{user}:{AMQP_PASSWORD}@127.0.0.1:5672/%2f\"\n"
    ));
    let _redis_user = RedisUser::create(&user, REDIS_PASSWORD);
    let redis_url = format!("redis://{user}:{REDIS_PASSWORD}@127.0.0.1:6379/0");
    let env: Vec<(&str, &str)> = vec![
        ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
        ("GITHUB_TOKEN", GITHUB_TOKEN),
        ("DEPLOY_GATE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("DEPLOY_GATE__REDIS__URL", &redis_url),
        ("DEPLOY_GATE_LOG", "debug"),
        ("RUST_LOG", "debug"),
    ];
    let planted: BTreeMap<&str, &str> = [
        ("the model key", ANTHROPIC_KEY),
        ("the GitHub token", GITHUB_TOKEN),
        ("the AMQP password", AMQP_PASSWORD),
        ("the Redis password", REDIS_PASSWORD),
        ("the webhook secret", WEBHOOK_SECRET),
        ("the Slack webhook token", slack_token.as_str()),
        ("the key in the diff", DIFF_KEY),
    ]
    .into_iter()
    .collect();

    // Taps on both exchanges, bound before anything is published.
    let (tap_bus, mut taps) = fleet.block_on(async {
        let bus = Bus::connect(AMQP_URL, fleet.bus_settings.clone())
            .await
            .unwrap();
        let all = vec!["#".to_owned()];
        let mut consumers = Vec::new();
        for exchange in [
            fleet.topology().events_exchange.clone(),
            fleet.topology().results_exchange.clone(),
        ] {
            let queue = bus.private_queue(&exchange, &all).await.unwrap();
            consumers.push((exchange, bus.consume(&queue, 100).await.unwrap()));
        }
        (bus, consumers)
    });

    let repo = app_repo();
    repo.write(
        "src/settings.py",
        &format!("ANTHROPIC_API_KEY = \"{DIFF_KEY}\"\nTIMEOUT = 30\n"),
    );
    repo.commit("configure the model client");

    let worker = fleet.spawn(&["--log-format", "json", "worker"], &env);
    let notifier = fleet.spawn(&["notify"], &env);
    let event_id = format!("{}ev-secrets", fleet.prefix);
    let enqueue = run_with(
        &fleet,
        &[
            "enqueue",
            "--repo",
            repo.path().to_str().unwrap(),
            "--repo-name",
            REPO_NAME,
            "--event-id",
            &event_id,
            "--ref",
            "refs/heads/main",
        ],
        &env,
    );
    assert_eq!(enqueue.code, 0, "enqueue:\n{}", enqueue.all_output());
    let wait = run_with(
        &fleet,
        &[
            "--log-format",
            "json",
            "wait",
            "--event",
            &event_id,
            "--json",
            "--timeout",
            "60s",
        ],
        &env,
    );
    assert!(
        wait.code == 0 || wait.code == 4 || wait.code == 1,
        "wait:\n{}",
        wait.all_output()
    );
    let decision = wait.decision();
    let categories = crate::harness::categories(&decision);
    assert!(
        categories.iter().any(|c| c == "secrets"),
        "the key in the diff is reported as a secrets risk: {categories:?}"
    );
    assert!(
        fleet.model_calls() > 0,
        "the model was asked, so its requests are scanned"
    );
    let slack = fleet.wait_for_slack(1, Duration::from_secs(30));

    // Everything that crossed the broker.
    let mut seen: Vec<Seen> = Vec::new();
    fleet.block_on(async {
        for (exchange, consumer) in &mut taps {
            let mut n_read = 0;
            // Everything was published before the decision reached `wait`; what
            // is still in the tap arrives at once.
            let quiet = Duration::from_millis(1_500);
            while let Ok(Some(Ok(delivery))) = tokio::time::timeout(quiet, consumer.next()).await {
                n_read += 1;
                let place = format!(
                    "message {} on {exchange} ({})",
                    n_read,
                    delivery.routing_key()
                );
                let mut text = String::from_utf8_lossy(delivery.payload()).into_owned();
                text.push('\n');
                text.push_str(&delivery.headers_text().join("\n"));
                text.push_str(&format!("\nmessage-id: {:?}", delivery.message_id()));
                seen.push(Seen { place, text });
                delivery.ack().await.unwrap();
            }
            assert!(n_read > 0, "the tap on {exchange} saw no message");
        }
        let _ = tap_bus.close().await;
    });
    let n_broker_messages = seen.len();
    let mut log_reader = fleet.log_reader();
    log_reader.read_until(Duration::from_secs(10), "the decision", |entries| {
        entries.iter().any(|d| d["event_id"] == event_id.as_str())
    });
    for (idx, entry) in log_reader.entries.iter().enumerate() {
        seen.push(Seen {
            place: format!("decisions log entry {idx}"),
            text: entry.to_string(),
        });
    }

    // Every request the mocks received: bodies and headers (the mock model masks
    // the key it was sent; the header must be there, masked).
    for (idx, request) in fleet.mock.requests().iter().enumerate() {
        let has_auth = request.headers.contains_key("x-api-key")
            || request.headers.contains_key("authorization");
        assert!(has_auth, "model request {idx} carries the key in a header");
        seen.push(Seen {
            place: format!("model request {idx} ({})", request.path),
            text: format!("{}\n{:?}\n{}", request.path, request.headers, request.body),
        });
    }
    for (idx, request) in slack.iter().enumerate() {
        seen.push(Seen {
            place: format!("Slack request {idx} (body and headers)"),
            text: format!("{:?}\n{}", request.headers, request.body),
        });
    }

    // Every log line of every process, text and JSON, at debug level.
    let _ = fleet.terminate(worker, Duration::from_secs(10));
    let _ = fleet.terminate(notifier, Duration::from_secs(10));
    let logs = [
        ("worker (json)", fleet.log(worker)),
        ("notifier (text)", fleet.log(notifier)),
        ("enqueue (text)", enqueue.all_output()),
        ("wait (json)", wait.all_output()),
    ];
    for (name, log) in &logs[..2] {
        assert!(
            log.contains("DEBUG"),
            "{name} logged at debug level (the test scans debug lines):\n{log}"
        );
    }
    for (name, log) in &logs {
        for (idx, line) in log.lines().enumerate() {
            seen.push(Seen {
                place: format!("{name} log line {}", idx + 1),
                text: line.to_owned(),
            });
        }
    }
    let worker_log = fleet.log(worker);
    let json_lines = worker_log
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).is_ok())
        .count();
    assert!(json_lines > 0, "the worker logged JSON lines");

    // The planted credentials were really used: Redis answered through its user.
    assert!(
        !worker_log.contains("redis is unavailable"),
        "the worker reached Redis with the planted password:\n{worker_log}"
    );
    // The scan finds what it looks for: the config file itself holds the password.
    let config_text = std::fs::read_to_string(&fleet.config).unwrap();
    assert!(config_text.contains(AMQP_PASSWORD));

    let mut leaks = Vec::new();
    for item in &seen {
        for (what, secret) in &planted {
            if item.text.contains(secret) {
                leaks.push(format!("{what} in {}: {}", item.place, clip(&item.text)));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "{} planted secret(s) leaked (scanned {} texts, {} broker messages):\n{}",
        leaks.len(),
        seen.len(),
        n_broker_messages,
        leaks.join("\n")
    );
    // The Slack token is where it belongs: in the webhook's own path, only.
    assert!(slack.iter().all(|r| r.path.contains(&slack_token)));
}

/// A one-shot command of the fleet with extra environment.
pub fn run_with(fleet: &Fleet, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = fleet.command(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    Run::from_output(cmd.output().expect("cannot start deploy-gate"))
}

/// At most 300 characters of a text around nothing in particular: enough to find
/// the line, not a wall of JSON.
fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}
