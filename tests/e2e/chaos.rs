//! The chaos suite: real worker and notifier processes on the real RabbitMQ and
//! Redis take a stream of events while the harness, on a seeded random schedule,
//! SIGKILLs and restarts workers, cuts their broker connections and Redis through
//! fault proxies, and makes mock Slack answer 429 in bursts; the mock model fails a
//! tenth of its calls with mixed faults, and poison messages arrive among the
//! events. At the end it prints a table of what went in and what came out, and
//! fails unless every event has exactly one decision, the dead letters are exactly
//! the poison messages, and every expected notification reached Slack once.
//!
//! What "exactly one decision" means here (the design's rule, README "At least
//! once in, one decision out"): every event id has exactly one *distinct* decision
//! in `gate.decisions.log`, the source of truth. A worker killed after its decision
//! was confirmed but before its ack gets the event redelivered, and the redelivery
//! republishes the stored decision: an identical copy with the same message id,
//! which consumers drop. Such copies are counted in the table ("identical
//! republished copies") and allowed; two different decisions for one event fail
//! the suite, as do a missing decision and a decision for an unknown event.
//!
//! Faults overlap freely but for one pair: no kill or broker cut starts while
//! Redis is out (see [`Chaos::allowed`]). While Redis is out a worker decides
//! without the decision store (README: "Redis is an optimisation"); if such an
//! event is then redelivered, nothing remembers its first decision and it is
//! analysed again. Runs without that rule showed it: about one event in 1,000 got
//! two different decisions. Exactly one decision across that combination would
//! need a worker that does not decide without the store.
//!
//! Knobs (environment): `DEPLOY_GATE_CHAOS_SEED` replays a schedule (the seed is
//! printed at the start), `DEPLOY_GATE_CHAOS_EVENTS` sets the number of events
//! (1,000 by default; the long mode is 10,000), `DEPLOY_GATE_CHAOS_RATE` the events
//! enqueued per second (30 by default). Run with `--nocapture` to see the table of a
//! passing run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gate_core::{DeployContext, MergeEvent};
use gate_mock_llm::MockConfig;
use gate_testkit::proxy::FaultProxy;

use crate::fleet_harness::{
    amqp_url_via, app_repo, commit_code, commit_docs, context_of, merge_event, redis_url_via,
    DeadLetter, Fleet, FleetOptions, ProcId,
};

const RABBITMQ: &str = "127.0.0.1:5672";
const REDIS: &str = "127.0.0.1:6379";
const N_WORKERS: usize = 3;
const N_POISON: usize = 20;
const DEFAULT_EVENTS: usize = 1_000;
const DEFAULT_RATE: usize = 30;
const MODEL_FAULT_PERCENT: u8 = 10;
/// Replaced in each event's diff by the event's number, so every event has its own
/// content and the models are asked (no verdict cache hit).
const VARIANT: &str = "CHAOS-VARIANT";
/// The fleet's `bus.max_payload_bytes`.
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// SplitMix64: a seeded generator, so a schedule can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low)
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(self.range(low, high))
    }
}

/// What a fault does to the fleet; each is undone after its duration.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// SIGKILL a worker; start a new one in its place after `down`.
    Kill { slot: usize, down: Duration },
    /// Cut a process's broker connection (`None`: every process's) for `cut`; a
    /// zero `cut` drops the connections once and lets them reconnect at once.
    CutBroker { slot: Option<usize>, cut: Duration },
    /// Cut Redis for the whole fleet.
    CutRedis { cut: Duration },
    /// Mock Slack answers 429 with `Retry-After` to everything for `burst`.
    SlackBurst {
        burst: Duration,
        retry_after_secs: u64,
    },
}

impl Action {
    /// The next fault of the schedule: the seed decides the kind, the target and
    /// the durations.
    fn draw(rng: &mut Rng) -> Action {
        match rng.range(0, 100) {
            0..=34 => Action::Kill {
                slot: rng.range(0, N_WORKERS as u64) as usize,
                down: rng.millis(200, 2_000),
            },
            35..=59 => {
                // Slots 0..N_WORKERS are the workers, N_WORKERS the notifier, and
                // one more means all of them.
                let target = rng.range(0, N_WORKERS as u64 + 2) as usize;
                let cut = if rng.range(0, 4) == 0 {
                    Duration::ZERO
                } else {
                    rng.millis(300, 3_000)
                };
                Action::CutBroker {
                    slot: (target <= N_WORKERS).then_some(target),
                    cut,
                }
            }
            60..=79 => Action::CutRedis {
                cut: rng.millis(300, 3_000),
            },
            _ => Action::SlackBurst {
                burst: rng.millis(500, 3_000),
                retry_after_secs: rng.range(1, 3),
            },
        }
    }
}

/// How many faults of each kind were played.
#[derive(Debug, Default)]
struct Played {
    kills: usize,
    broker_cuts: usize,
    broker_blips: usize,
    redis_cuts: usize,
    slack_bursts: usize,
}

/// The fleet under test and its fault points.
struct Chaos {
    fleet: Fleet,
    /// One proxy per worker slot, then the notifier's.
    amqp_proxies: Vec<FaultProxy>,
    redis_proxy: FaultProxy,
    workers: Vec<Option<ProcId>>,
    notifier: Option<ProcId>,
    /// When to undo a fault: restart a slot's worker, or restore a proxy.
    pending: Vec<(Instant, Undo)>,
    played: Played,
    /// When Redis was last restored: see [`Chaos::allowed`].
    redis_restored_at: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Undo {
    Restart(usize),
    RestoreBroker(usize),
    RestoreRedis,
}

impl Chaos {
    fn env_of(&self, amqp_slot: usize) -> [(String, String); 3] {
        [
            // Below the harness publisher's own limit, so it can send an
            // oversized event.
            (
                "DEPLOY_GATE__BUS__MAX_PAYLOAD_BYTES".to_string(),
                MAX_PAYLOAD_BYTES.to_string(),
            ),
            (
                "DEPLOY_GATE__AMQP__URL".to_string(),
                amqp_url_via(self.amqp_proxies[amqp_slot].addr()),
            ),
            (
                "DEPLOY_GATE__REDIS__URL".to_string(),
                redis_url_via(self.redis_proxy.addr()),
            ),
        ]
    }

    fn spawn(&self, role: &str, amqp_slot: usize) -> ProcId {
        let env = self.env_of(amqp_slot);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.fleet.spawn(&[role], &env)
    }

    /// Whether `action` may start now. Faults overlap freely, except that a kill
    /// or broker cut never starts while Redis is out, nor within 2 s of its
    /// return. While Redis is out a worker decides without the decision store
    /// (README: "Redis is an optimisation"); an event decided then whose ack is
    /// lost (the kill, the cut) is redelivered with nothing remembering its
    /// decision, and analysed again: the one case the design does not promise a
    /// single decision for. The 2 s let every worker find Redis again (it skips
    /// the store for `redis_retry_interval_ms` after a failure) and ack what it
    /// decided meanwhile. A Redis cut may start at any time: a redelivery it
    /// meets waits for Redis before deciding.
    fn allowed(&self, action: &Action, now: Instant) -> bool {
        match action {
            Action::Kill { .. } | Action::CutBroker { .. } => {
                !self
                    .pending
                    .iter()
                    .any(|(_, undo)| matches!(undo, Undo::RestoreRedis))
                    && now >= self.redis_restored_at + Duration::from_secs(2)
            }
            Action::CutRedis { .. } | Action::SlackBurst { .. } => true,
        }
    }

    fn play(&mut self, action: Action, now: Instant) {
        match action {
            Action::Kill { slot, down } => {
                // A slot already down stays down until its own restart.
                if let Some(worker) = self.workers[slot].take() {
                    self.fleet.kill(worker);
                    self.pending.push((now + down, Undo::Restart(slot)));
                    self.played.kills += 1;
                }
            }
            Action::CutBroker { slot, cut } => {
                let slots: Vec<usize> = match slot {
                    Some(slot) => vec![slot],
                    None => (0..self.amqp_proxies.len()).collect(),
                };
                for slot in slots {
                    if cut.is_zero() {
                        self.amqp_proxies[slot].drop_connections();
                        self.played.broker_blips += 1;
                    } else {
                        self.amqp_proxies[slot].cut();
                        self.pending.push((now + cut, Undo::RestoreBroker(slot)));
                        self.played.broker_cuts += 1;
                    }
                }
            }
            Action::CutRedis { cut } => {
                self.redis_proxy.cut();
                self.pending.push((now + cut, Undo::RestoreRedis));
                self.played.redis_cuts += 1;
            }
            Action::SlackBurst {
                burst,
                retry_after_secs,
            } => {
                self.fleet.slack.rate_limit_for(burst, retry_after_secs);
                self.played.slack_bursts += 1;
            }
        }
    }

    /// Undoes the faults whose time has come (all of them with `now = None`). A
    /// proxy is restored only when no later cut of it is still pending.
    fn undo_due(&mut self, now: Option<Instant>) {
        let (due, later): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..)
            .partition(|(at, _)| now.is_none_or(|now| *at <= now));
        self.pending = later;
        let now = now.unwrap_or_else(Instant::now);
        for (_, undo) in due {
            match undo {
                Undo::Restart(slot) => {
                    if self.workers[slot].is_none() {
                        self.workers[slot] = Some(self.spawn("worker", slot));
                    }
                }
                Undo::RestoreBroker(slot) => {
                    let still_cut = self
                        .pending
                        .iter()
                        .any(|(_, u)| matches!(u, Undo::RestoreBroker(s) if *s == slot));
                    if !still_cut {
                        self.amqp_proxies[slot].restore();
                    }
                }
                Undo::RestoreRedis => {
                    let still_cut = self
                        .pending
                        .iter()
                        .any(|(_, u)| matches!(u, Undo::RestoreRedis));
                    if !still_cut {
                        self.redis_proxy.restore();
                    }
                    self.redis_restored_at = now;
                }
            }
        }
    }

    /// Workers that exited without being killed: a crash is a failure.
    fn crashed_workers(&self) -> Vec<String> {
        let mut crashed: Vec<String> = self
            .workers
            .iter()
            .flatten()
            .filter(|&&worker| !self.fleet.is_running(worker))
            .map(|&worker| self.fleet.log(worker))
            .collect();
        if let Some(notifier) = self.notifier {
            if !self.fleet.is_running(notifier) {
                crashed.push(self.fleet.log(notifier));
            }
        }
        crashed
    }
}

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// `context` with its diff made unique to event `idx` (the verdict key changes).
fn variant(context: &DeployContext, idx: usize) -> DeployContext {
    assert!(
        context.packed_diff.contains(VARIANT),
        "the template diff has no {VARIANT}:\n{}",
        context.packed_diff
    );
    let mut context = context.clone();
    context.packed_diff = context
        .packed_diff
        .replace(VARIANT, &format!("variant {idx}"));
    context
}

/// The events: 60 % code changes (models asked: deploy), 10 % scripted at score
/// 60 (hold: notified), 10 % destructive migrations (block: notified), 20 % docs
/// (the models are skipped), each with its own content, in a seeded order.
fn make_events(prefix: &str, n_events: usize, rng: &mut Rng) -> Vec<MergeEvent> {
    let code = app_repo();
    commit_code(&code, 1, VARIANT);
    let code = context_of(&code);
    let held = app_repo();
    commit_code(&held, 2, &format!("MOCK:score=60 {VARIANT}"));
    let held = context_of(&held);
    let drop = app_repo();
    drop.write(
        "migrations/V2__x.sql",
        &format!("-- retire the legacy table ({VARIANT})\nDROP TABLE customers;\n"),
    );
    drop.commit("drop the customers table");
    let drop = context_of(&drop);
    let docs = app_repo();
    commit_docs(&docs, 1);
    let docs = context_of(&docs);
    (0..n_events)
        .map(|idx| {
            let context = match rng.range(0, 10) {
                0..=5 => variant(&code, idx),
                6 => variant(&held, idx),
                7 => variant(&drop, idx),
                _ => docs.clone(),
            };
            merge_event(&event_id(prefix, idx), &context)
        })
        .collect()
}

fn event_id(prefix: &str, idx: usize) -> String {
    format!("{prefix}ev-{idx:06}")
}

/// The event ids a text mentions (`<prefix>ev-NNNNNN`).
fn event_ids_in(text: &str, prefix: &str) -> BTreeSet<String> {
    let needle = format!("{prefix}ev-");
    text.match_indices(&needle)
        .filter_map(|(at, _)| {
            let digits = text.get(at + needle.len()..at + needle.len() + 6)?;
            digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| format!("{needle}{digits}"))
        })
        .collect()
}

/// A poison message: its message id, what it carries, and the reason code the
/// dead letter must name.
fn poison(prefix: &str, k: usize) -> (String, Vec<u8>, &'static str) {
    let id = format!("{prefix}poison-{k:02}");
    match k % 4 {
        0 => (
            id,
            format!("{{not json, poison {k}").into_bytes(),
            "malformed",
        ),
        1 => {
            let mut payload = br#"{"schema_version": 1, "padding": ""#.to_vec();
            payload.resize(MAX_PAYLOAD_BYTES + 1_000, b'x');
            payload.extend_from_slice(br#""}"#);
            (id, payload, "oversized")
        }
        2 => (
            id.clone(),
            format!(r#"{{"schema_version": 99, "event_id": "{id}"}}"#).into_bytes(),
            "unknown_version",
        ),
        _ => (
            id.clone(),
            format!(r#"{{"schema_version": 1, "event_id": "{id}", "repo": 42}}"#).into_bytes(),
            "malformed",
        ),
    }
}

#[test]
fn under_seeded_chaos_every_event_gets_one_decision_and_every_notification_arrives_once() {
    let seed = match std::env::var("DEPLOY_GATE_CHAOS_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("DEPLOY_GATE_CHAOS_SEED={text:?} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    let n_events = env_number("DEPLOY_GATE_CHAOS_EVENTS", DEFAULT_EVENTS);
    let rate = env_number("DEPLOY_GATE_CHAOS_RATE", DEFAULT_RATE).max(1);
    say(&format!(
        "chaos: seed {seed} (replay with DEPLOY_GATE_CHAOS_SEED={seed}), {n_events} events at {rate}/s"
    ));
    let mut rng = Rng(seed);

    let fleet = Fleet::start(FleetOptions { models: true });
    fleet.mock.set_config(MockConfig {
        latency_ms: 10,
        fault_percent: MODEL_FAULT_PERCENT,
        fault_seed: seed,
        ..MockConfig::default()
    });
    // A hung model call ends after 1.5 s (then retried), not after a minute.
    fleet.append_config("[models.anthropic.http]\nrequest_timeout_ms = 1500\n");
    let events = make_events(&fleet.prefix, n_events, &mut rng);
    let ids: BTreeSet<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let poisons: Vec<(String, Vec<u8>, &str)> =
        (0..N_POISON).map(|k| poison(&fleet.prefix, k)).collect();

    let upstream_amqp: SocketAddr = RABBITMQ.parse().unwrap();
    let mut chaos = Chaos {
        amqp_proxies: (0..=N_WORKERS)
            .map(|_| FaultProxy::start(upstream_amqp))
            .collect(),
        redis_proxy: FaultProxy::start(REDIS.parse().unwrap()),
        workers: Vec::new(),
        notifier: None,
        pending: Vec::new(),
        played: Played::default(),
        redis_restored_at: Instant::now(),
        fleet,
    };
    chaos.workers = (0..N_WORKERS)
        .map(|slot| Some(chaos.spawn("worker", slot)))
        .collect();
    chaos.notifier = Some(chaos.spawn("notify", N_WORKERS));

    let mut log = chaos.fleet.log_reader();
    let started = Instant::now();
    let started_at = gate_core::rfc3339(time::OffsetDateTime::now_utc());
    let deadline = started + Duration::from_secs(90) + Duration::from_millis(n_events as u64 * 60);
    let mut decided: BTreeSet<String> = BTreeSet::new();
    let mut n_read = 0;
    let mut n_published = 0;
    let mut n_poisoned = 0;
    let mut next_fault = started + rng.millis(500, 2_000);
    // A drawn fault that may not start yet waits here; the sequence stays the
    // seed's, only its timing shifts.
    let mut deferred: Option<Action> = None;
    let mut faults: Vec<String> = Vec::new();
    let mut crashes: Vec<String> = Vec::new();
    let routing_key = gate_bus::event_routing_key(crate::fleet_harness::REPO_NAME);
    // Chaos runs until every event is decided (or the deadline passes).
    while decided.len() < n_events && Instant::now() < deadline {
        let now = Instant::now();
        // Enqueue what the rate allows by now, and the poison spread among it.
        let due =
            (now.duration_since(started).as_millis() as usize * rate / 1_000 + 1).min(n_events);
        if due > n_published {
            chaos.fleet.publish_events(&events[n_published..due]);
            n_published = due;
        }
        while n_poisoned < N_POISON && n_poisoned * n_events <= n_published * N_POISON {
            let (id, payload, _) = &poisons[n_poisoned];
            chaos.fleet.publish_raw(&routing_key, id, payload);
            n_poisoned += 1;
        }
        chaos.undo_due(Some(now));
        if deferred.is_none() && now >= next_fault {
            deferred = Some(Action::draw(&mut rng));
            next_fault = now + rng.millis(500, 2_000);
        }
        if let Some(action) = deferred.filter(|action| chaos.allowed(action, now)) {
            faults.push(format!(
                "{:>7.1}s {action:?}",
                now.duration_since(started).as_secs_f64()
            ));
            chaos.play(action, now);
            deferred = None;
        }
        let crashed = chaos.crashed_workers();
        if !crashed.is_empty() {
            crashes.extend(crashed);
            break;
        }
        log.drain(Duration::from_millis(20));
        for entry in &log.entries[n_read..] {
            decided.insert(entry["event_id"].as_str().unwrap().to_string());
        }
        n_read = log.entries.len();
    }
    let chaos_time = started.elapsed();
    // Heal: every proxy restored, every slot's worker running, no more faults.
    chaos.undo_due(None);
    for slot in 0..N_WORKERS {
        if chaos.workers[slot].is_none() {
            chaos.workers[slot] = Some(chaos.spawn("worker", slot));
        }
    }
    while n_poisoned < N_POISON {
        let (id, payload, _) = &poisons[n_poisoned];
        chaos.fleet.publish_raw(&routing_key, id, payload);
        n_poisoned += 1;
    }
    if n_published < n_events {
        chaos.fleet.publish_events(&events[n_published..]);
    }
    let heal_deadline = deadline.max(Instant::now()) + Duration::from_secs(30);
    while decided.len() < n_events && Instant::now() < heal_deadline {
        log.drain(Duration::from_millis(200));
        for entry in &log.entries[n_read..] {
            decided.insert(entry["event_id"].as_str().unwrap().to_string());
        }
        n_read = log.entries.len();
    }
    // Late copies would arrive in this time.
    log.drain(Duration::from_secs(2));

    // Decisions, from the log.
    let by_event = log.by_event();
    let logged: BTreeSet<String> = by_event.keys().cloned().collect();
    let missing: Vec<&String> = ids.difference(&logged).collect();
    let unknown: Vec<&String> = logged.difference(&ids).collect();
    let mut n_copies = 0;
    let mut conflicting: Vec<String> = Vec::new();
    for (event_id, copies) in &by_event {
        n_copies += copies.len() - 1;
        if copies.iter().any(|copy| copy != &copies[0]) {
            let summary: Vec<String> = copies
                .iter()
                .map(|c| {
                    format!(
                        "{} {} decided at {}",
                        c["recommendation"].as_str().unwrap_or("?"),
                        c["risk_score"],
                        c["decided_at"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            conflicting.push(format!("{event_id} ({})", summary.join(", then ")));
        }
    }

    // Notifications: expected for each decision at or above `hold`.
    let expected: BTreeSet<String> = by_event
        .iter()
        .filter(|(_, copies)| copies[0]["recommendation"] != "deploy")
        .map(|(event_id, _)| event_id.clone())
        .collect();
    let notified = |fleet: &Fleet| -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for message in fleet.slack_messages() {
            for event_id in event_ids_in(&message.body.to_string(), &fleet.prefix) {
                *counts.entry(event_id).or_default() += 1;
            }
        }
        counts
    };
    let notify_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let so_far = notified(&chaos.fleet);
        if expected.iter().all(|id| so_far.contains_key(id)) || Instant::now() > notify_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Late duplicates would arrive in this time.
    std::thread::sleep(Duration::from_secs(2));
    let notified = notified(&chaos.fleet);
    let delivered: BTreeSet<String> = notified.keys().cloned().collect();
    let n_notifications: usize = notified.values().sum();
    let duplicated: Vec<(&String, &usize)> = notified.iter().filter(|(_, &n)| n > 1).collect();
    let not_delivered: Vec<&String> = expected.difference(&delivered).collect();
    let not_expected: Vec<&String> = delivered.difference(&expected).collect();

    // Dead letters: exactly the poison messages, each with its reason.
    let dead: Vec<DeadLetter> = chaos.fleet.drain_dead_letters(Duration::from_secs(2));
    let poison_ids: BTreeSet<String> = poisons.iter().map(|(id, _, _)| id.clone()).collect();
    let dead_ids: BTreeSet<String> = dead
        .iter()
        .map(|d| {
            d.message_id
                .clone()
                .unwrap_or_else(|| "(no id)".to_string())
        })
        .collect();
    let wrong_reason: Vec<String> = poisons
        .iter()
        .filter(|(id, _, code)| {
            !dead.iter().any(|d| {
                d.message_id.as_deref() == Some(id.as_str())
                    && d.reason.as_deref().is_some_and(|r| r.starts_with(code))
            })
        })
        .map(|(id, _, code)| format!("{id} (want {code})"))
        .collect();

    let model = chaos.fleet.mock.stats();
    let slack = chaos.fleet.slack.requests();
    let slack_429 = slack.iter().filter(|r| r.status == 429).count();
    let played = &chaos.played;
    let mut table = String::new();
    let mut row = |what: &str, value: String| {
        writeln!(table, "| {what:<42} | {value:>15} |").unwrap();
    };
    row("events in", n_events.to_string());
    row(
        "decisions out (distinct / total)",
        format!("{} / {}", logged.len(), log.entries.len()),
    );
    row("identical republished copies", n_copies.to_string());
    row(
        "conflicting decisions (duplicates)",
        conflicting.len().to_string(),
    );
    row("missing decisions", missing.len().to_string());
    row("decisions for unknown events", unknown.len().to_string());
    row(
        "dead-lettered (poison / distinct / total)",
        format!(
            "{} / {} / {}",
            dead_ids.intersection(&poison_ids).count(),
            dead_ids.len(),
            dead.len()
        ),
    );
    row(
        "notifications expected (hold, block)",
        expected.len().to_string(),
    );
    row(
        "notifications delivered (distinct / total)",
        format!("{} / {n_notifications}", delivered.len()),
    );
    row("notifications duplicated", duplicated.len().to_string());
    row("notifications missing", not_delivered.len().to_string());
    row("notifications not expected", not_expected.len().to_string());
    row(
        "faults: kills / broker cuts / blips",
        format!(
            "{} / {} / {}",
            played.kills, played.broker_cuts, played.broker_blips
        ),
    );
    row(
        "faults: redis cuts / slack 429 bursts",
        format!("{} / {}", played.redis_cuts, played.slack_bursts),
    );
    row(
        "model requests (failed with a mixed fault)",
        format!("{} ({})", model.n_requests, model.n_faults),
    );
    row(
        "slack requests (429 answered)",
        format!("{} ({slack_429})", slack.len()),
    );
    row(
        "time: chaos / total",
        format!(
            "{:.0}s / {:.0}s",
            chaos_time.as_secs_f64(),
            started.elapsed().as_secs_f64()
        ),
    );
    say(&format!(
        "chaos run, seed {seed}: {n_events} events, {N_WORKERS} workers, 1 notifier, {N_POISON} poison messages\n\
         | {:<42} | {:>15} |\n|{}|{}|\n{table}",
        "what",
        "count",
        "-".repeat(44),
        "-".repeat(17)
    ));

    let mut failures = Vec::new();
    if !crashes.is_empty() {
        failures.push(format!(
            "a process exited by itself:\n{}",
            crashes.join("\n-----\n")
        ));
    }
    if !missing.is_empty() {
        failures.push(format!(
            "{} events have no decision: {:?}",
            missing.len(),
            first(&missing)
        ));
    }
    if !unknown.is_empty() {
        failures.push(format!(
            "decisions for unknown events: {:?}",
            first(&unknown)
        ));
    }
    if !conflicting.is_empty() {
        failures.push(format!(
            "{} events have two different decisions: {:?}",
            conflicting.len(),
            first(&conflicting)
        ));
    }
    if dead_ids != poison_ids {
        let extra: Vec<&String> = dead_ids.difference(&poison_ids).collect();
        let absent: Vec<&String> = poison_ids.difference(&dead_ids).collect();
        failures.push(format!(
            "dead letters are not exactly the poison messages: unexpected {:?}, not dead-lettered {absent:?}",
            first(&extra)
        ));
    } else if !wrong_reason.is_empty() {
        failures.push(format!(
            "poison dead-lettered without its reason: {wrong_reason:?}"
        ));
    }
    if !not_delivered.is_empty() {
        failures.push(format!(
            "{} expected notifications never reached Slack: {:?}",
            not_delivered.len(),
            first(&not_delivered)
        ));
    }
    if !duplicated.is_empty() {
        failures.push(format!(
            "{} notifications reached Slack more than once: {:?}",
            duplicated.len(),
            first(&duplicated)
        ));
    }
    if !not_expected.is_empty() {
        failures.push(format!(
            "notifications for deploy decisions: {:?}",
            first(&not_expected)
        ));
    }
    if !failures.is_empty() {
        // Whole process logs, for the post-mortem (the failure prints only tails).
        let kept = std::env::temp_dir().join(format!("deploy-gate-chaos-{seed}"));
        let _ = std::fs::create_dir_all(&kept);
        for entry in std::fs::read_dir(chaos.fleet.dir.path()).unwrap().flatten() {
            let _ = std::fs::copy(entry.path(), kept.join(entry.file_name()));
        }
        eprintln!("process logs kept in {}", kept.display());
    }
    assert!(
        failures.is_empty(),
        "chaos (seed {seed}, replay with DEPLOY_GATE_CHAOS_SEED={seed}) failed:\n- {}\nfault schedule (started at {started_at}):\n{}",
        failures.join("\n- "),
        faults.join("\n")
    );
}

/// The first few items, for a failure message that stays readable.
fn first<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(10).map(|i| format!("{i:?}")).collect();
    if items.len() > shown.len() {
        format!(
            "[{}, … {} more]",
            shown.join(", "),
            items.len() - shown.len()
        )
    } else {
        format!("[{}]", shown.join(", "))
    }
}

/// Writes straight to the process's stderr, past the test harness's capture, so
/// the seed and the table are in the CI log of a passing run too.
fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
