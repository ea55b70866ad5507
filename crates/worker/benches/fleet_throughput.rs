//! Benchmark (issue 4): how many merge events a second one worker turns into
//! decisions, beside what the broker allows for the same messages, from one run.
//!
//! 1. **Gate rate.** N events (`DEPLOY_GATE_BENCH_EVENTS`, default 2,000), built with
//!    `gate_producer::merge_event` and put on the bus with `gate_producer::enqueue`
//!    library calls, 16 calls in flight. ONE in-process worker (`gate_worker::run`,
//!    concurrency 16) decides each: the decision store and the verdict cache in
//!    Redis, the rules, ONE model provider (the Anthropic wire format) asking the
//!    mock model server at 0 ms latency, the consensus, the decision stored, published
//!    with a confirm, then the ack. The clock runs from the first `enqueue` until an
//!    observer queue bound to `decision.#` has seen all N event ids. Every event has
//!    its own id *and* its own diff, so the verdict cache never hits: this is the
//!    uncached rate (the worker's counters are printed to show it). The policy asks
//!    the model even for this docs-only change (`skip_models_when_trivial = false`).
//!
//!    1b. The same with N more events through one long-lived `Producer` (its own
//!    confirm channel, where `enqueue` uses the bus's shared one), so the run
//!    shows whether the entry point matters.
//! 2. **Raw rate.** The same loop in lapin alone: publish a message of the event's
//!    size with a confirm → a quorum queue with the gate's arguments → consume with
//!    the same prefetch and concurrency, manual acks → publish a message of the
//!    decision's size with a confirm to a topic exchange routing to the same kind of
//!    stream log and observer queue → ack. Persistent messages, `mandatory`, N
//!    distinct ids counted the same way, as many publishes in flight.
//! 3. **The ratio** gate / raw, with PASS or FAIL against the target of 50 % (1b /
//!    raw beside it), over `DEPLOY_GATE_BENCH_RATIO_ROUNDS` (4) rounds of each: 1
//!    and 2 are the first, the others follow in the order raw, gate, gate, raw, …
//!    so that a drift over the run falls on both sides. The target is judged on
//!    each side's median round (a round now and then stalls, and one stall should
//!    not decide); the ratio of the summed rates and every round's rate are
//!    printed beside it.
//! 4. **Latency at half the peak.** M events (`DEPLOY_GATE_BENCH_LATENCY_EVENTS`,
//!    default 1,000) offered through `gate_producer::enqueue` at half the rate
//!    measured in 1, paced (open loop); each event's latency runs from just before its
//!    `enqueue` call to the moment the observer receives its decision: p50 and p99.
//!
//! 5. **Telemetry overhead.** (`DEPLOY_GATE_BENCH_OTLP=0` skips it.) OTLP export
//!    is started (`gate_telemetry::Telemetry`, protocol from
//!    `OTEL_EXPORTER_OTLP_PROTOCOL`, default http/protobuf) toward an in-process
//!    OTLP/HTTP receiver (gate-testkit; it stands in for a collector on other
//!    machines, so it decodes what it got only after the rounds). Then rounds of
//!    step 1, of `DEPLOY_GATE_BENCH_OTLP_EVENTS` (10,000) events each, alternate,
//!    `DEPLOY_GATE_BENCH_OTLP_ROUNDS` (30) of each: span export
//!    paused (`Telemetry::export_spans(false)`: no span is built, as in a worker
//!    without OTLP) and on (every span of every event: producer, worker, cache
//!    lookup, model call, consensus, publish; metrics every 5 s), in the order
//!    paused, on, on, paused, …: rounds 2k and 2k+1 are a pair, one of each
//!    side, so drift over the run and the host's slower spells fall on both
//!    alike. The loss is the median of the pairs' losses (target: under 5 %),
//!    judged on its 95 % interval (order statistics, no assumed distribution):
//!    PASS when all of it is under 5 %, FAIL when none is, NOT SHOWN when it
//!    holds 5 % (`DEPLOY_GATE_BENCH_OTLP_CONTROL=1` runs it as a control: the
//!    same rounds with none exporting, whose loss should be 0 within its
//!    interval); the quartiles, the loss of each side's median round and
//!    of the summed rates, each round's rate and the spans received are printed
//!    beside it. Two figures that the host's noise moves less follow: the CPU
//!    per event of this process, RabbitMQ and Redis together on each side, and
//!    the span path alone (the spans one event opens, with their fields and
//!    trace context, on one thread) paused and exported. Last, because the
//!    tracing subscriber it installs stays for the rest of the process.
//!
//! Under 1, 1b and 2 a `cpu` line says where the CPU went per event: this process
//! (worker, producer, observer and the mock model), RabbitMQ and Redis, read from
//! `/proc`, and how busy other processes kept the machine meanwhile; on a shared
//! machine, read the rates with that line.
//!
//! lapin is a dev-dependency of gate-worker for the raw baseline only: production
//! code still talks to RabbitMQ only through gate-bus. The raw loop's topology is
//! even declared through gate-bus, so its queue arguments are exactly the gate's.
//!
//! Needs RabbitMQ at 127.0.0.1:5672 (guest/guest) and Redis at 127.0.0.1:6379.
//! Everything it creates is under a unique prefix and deleted at the end (queues,
//! exchanges, Redis keys), also when a step fails.
//!
//! Run: `cargo bench -p gate-worker --bench fleet_throughput`
//! Knobs: `DEPLOY_GATE_BENCH_EVENTS` (2000), `DEPLOY_GATE_BENCH_CONCURRENCY` (16),
//! `DEPLOY_GATE_BENCH_PUBLISHERS` (enqueue calls, and raw publishes, in flight:
//! 16), `DEPLOY_GATE_BENCH_LATENCY_EVENTS` (1000), `DEPLOY_GATE_BENCH_WARM_UP` (100
//! events through each loop before it is timed), `DEPLOY_GATE_BENCH_OTLP` (1),
//! `DEPLOY_GATE_BENCH_OTLP_ROUNDS` (30), `DEPLOY_GATE_BENCH_OTLP_EVENTS` (10000),
//! `DEPLOY_GATE_BENCH_OTLP_CONTROL` (0), `DEPLOY_GATE_BENCH_RATIO_ROUNDS` (4).

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context as _, Result};
use futures_util::StreamExt as _;
use gate_bus::{
    decision_routing_key, event_routing_key, Bus, BusSettings, Consumer, Redis, RedisSettings,
    Topology,
};
use gate_core::{Bands, ConsensusPolicy, DeployContext, MergeEvent, Policy, Recommendation};
use gate_mock_llm::{MockConfig, MockServer};
use gate_models::{
    Analyzer, AnthropicProvider, AnthropicSettings, ApiKey, HttpSettings, PriceTable,
    PromptSettings, ProviderSetup, RetrySettings,
};
use gate_worker::{WorkerDeps, WorkerError, WorkerSettings, WorkerStats};
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{FieldTable, LongString, ShortString},
    BasicProperties, Channel, Connection, ConnectionProperties,
};
use tokio::{
    sync::{oneshot, Semaphore},
    task::{JoinHandle, JoinSet},
};

/// The allocator the `deploy-gate` binary runs with, so the worker measured here
/// allocates as the shipped one does (the raw loop shares it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The machine's RabbitMQ.
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The machine's Redis.
const REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// The repository every event is about.
const REPO: &str = "acme/shop";
/// Unacked decisions an observer may hold (gate and raw alike).
const OBSERVER_PREFETCH: u16 = 200;
/// A loop that delivers no decision for this long has failed.
const STALL: Duration = Duration::from_secs(30);
/// The gate's target: at least this share of the raw loop's rate.
const TARGET_RATIO: f64 = 0.50;

/// What one run does, from the environment.
#[derive(Debug, Clone)]
struct Settings {
    n_events: usize,
    concurrency: u16,
    n_publishers: usize,
    n_latency_events: usize,
    n_warm_up: usize,
    /// Steps 1-3: rounds of the gate and of the raw loop each.
    ratio_rounds: usize,
    /// Step 5: the gate rate with OTLP span export paused and on, alternating.
    otlp: bool,
    /// Step 5's rounds of each kind.
    otlp_rounds: usize,
    /// Events per round of step 5: long enough for the merge queue to build the
    /// backlog a busy fleet has (2,000-event rounds measured the same loss).
    otlp_events: usize,
    /// Step 5 as a control (A/A): the rounds keep their sides, but none exports,
    /// so the loss printed is the measurement's own noise.
    otlp_control: bool,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let settings = Settings {
            n_events: env_or("DEPLOY_GATE_BENCH_EVENTS", 2_000)?,
            concurrency: env_or("DEPLOY_GATE_BENCH_CONCURRENCY", 16)?,
            n_publishers: env_or("DEPLOY_GATE_BENCH_PUBLISHERS", 16)?,
            n_latency_events: env_or("DEPLOY_GATE_BENCH_LATENCY_EVENTS", 1_000)?,
            n_warm_up: env_or("DEPLOY_GATE_BENCH_WARM_UP", 100)?,
            ratio_rounds: env_or("DEPLOY_GATE_BENCH_RATIO_ROUNDS", 4)?,
            otlp: env_or("DEPLOY_GATE_BENCH_OTLP", 1u8)? != 0,
            otlp_rounds: env_or("DEPLOY_GATE_BENCH_OTLP_ROUNDS", 30)?,
            otlp_events: env_or("DEPLOY_GATE_BENCH_OTLP_EVENTS", 10_000)?,
            otlp_control: env_or("DEPLOY_GATE_BENCH_OTLP_CONTROL", 0u8)? != 0,
        };
        ensure!(
            settings.n_events > 0
                && settings.concurrency > 0
                && settings.n_publishers > 0
                && settings.otlp_rounds > 0
                && settings.otlp_events > 0
                && settings.ratio_rounds > 0,
            "events, concurrency, publishers and rounds must be at least 1: {settings:?}"
        );
        Ok(settings)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .with_context(|| format!("{name}={value:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(async {
        print_machine(&settings);
        let mut world = World::start(&settings).await?;
        let result = bench(&settings, &mut world).await;
        let cleaned = world.cleanup().await;
        // A failed measurement is the news; a failed cleanup after it is secondary.
        result.and(cleaned)
    })
}

fn print_machine(settings: &Settings) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    println!("fleet_throughput (issue 4)");
    println!(
        "machine  : {cores} cores ({cpu}), {memory_gib:.1} GiB; RabbitMQ, Redis, the mock model, \
         the worker and the load generator all share these cores"
    );
    println!(
        "settings : events={} warm-up={} worker concurrency (= prefetch)={} enqueue calls in flight={} \
         latency events={} otlp events per round={}{}",
        settings.n_events,
        settings.n_warm_up,
        settings.concurrency,
        settings.n_publishers,
        settings.n_latency_events,
        settings.otlp_events,
        if settings.otlp_control {
            " (control: no round exports)"
        } else {
            ""
        }
    );
    println!(
        "model    : one provider (Anthropic wire format) -> mock model server at 0 ms; \
         every event has its own id and its own diff (uncached path); policy \
         `skip_models_when_trivial = false`, so the docs change goes to the model"
    );
}

/// Everything the run creates, so that it can all be deleted at the end.
struct World {
    prefix: String,
    raw_topology: Topology,
    /// Declared the gate topology; the producer's `enqueue` calls go through it.
    producer: Arc<Bus>,
    /// Holds the private decisions queue of the gate's observer.
    observer: Bus,
    decisions: Consumer,
    /// Declared the raw loop's topology (with the gate's arguments), and deletes it.
    raw_admin: Bus,
    redis: Redis,
    mock: MockServer,
    worker: Option<RunningWorker>,
}

struct RunningWorker {
    stats: WorkerStats,
    handle: JoinHandle<Result<(), WorkerError>>,
    stop: oneshot::Sender<()>,
}

impl World {
    async fn start(settings: &Settings) -> Result<World> {
        let prefix = unique_prefix()?;
        // Everything that needs no cleanup first, so a missing service fails the run
        // before anything is declared on the broker.
        let redis_settings = RedisSettings {
            key_prefix: format!("{prefix}gate:"),
            ..RedisSettings::default()
        };
        // The bench's own handle pings and, at the end, deletes a million keys
        // or more: a generous timeout, so that one slow DEL among thousands does
        // not fail a run that measured everything (the worker keeps the default).
        // It bounds connecting too: with Redis down, the ping fails after 10 s.
        let redis = Redis::open(
            REDIS_URL,
            RedisSettings {
                op_timeout_ms: 10_000,
                ..redis_settings.clone()
            },
        )
        .context("opening Redis")?;
        redis
            .ping()
            .await
            .context("Redis must be running at 127.0.0.1:6379")?;
        // Bodies are not kept: 20,000 parsed prompts would take hundreds of MB
        // and the page faults of that growth would be charged to later rounds.
        let mock = MockServer::start(MockConfig {
            forget_bodies: true,
            ..MockConfig::default()
        })
        .await
        .context("starting the mock model server")?;
        let analyzer = anthropic(&mock)?;
        // Docs-only changes are trivial to the default policy, which would skip the
        // model: the benchmark measures the path with a model call.
        let policy = Policy::parse("skip_models_when_trivial = false\n", "fleet_throughput")?;

        let gate_settings = BusSettings {
            topology: Topology::default().with_prefix(&prefix),
            connect_attempts: 3,
            connect_backoff_initial_ms: 50,
            connection_name: format!("{prefix}producer"),
            ..BusSettings::default()
        };
        let raw_topology = Topology::default().with_prefix(&format!("{prefix}raw-"));
        let raw_settings = BusSettings {
            topology: raw_topology.clone(),
            connection_name: format!("{prefix}raw-admin"),
            ..gate_settings.clone()
        };
        let producer = Bus::connect(AMQP_URL, gate_settings.clone())
            .await
            .context("RabbitMQ must be running at 127.0.0.1:5672 with guest/guest")?;
        let connected = async {
            let observer = Bus::connect(
                AMQP_URL,
                BusSettings {
                    connection_name: format!("{prefix}observer"),
                    ..gate_settings.clone()
                },
            )
            .await
            .context("connecting the observer")?;
            let queue = observer
                .private_results_queue(&["decision.#".to_string()])
                .await
                .context("declaring the observer's decisions queue")?;
            let decisions = observer
                .consume(&queue, OBSERVER_PREFETCH)
                .await
                .context("consuming decisions")?;
            let raw_admin = Bus::connect(AMQP_URL, raw_settings.clone())
                .await
                .context("declaring the raw loop's topology")?;
            Ok::<_, anyhow::Error>((observer, decisions, raw_admin))
        }
        .await;
        let (observer, decisions, raw_admin) = match connected {
            Ok(connected) => connected,
            Err(error) => {
                // Best effort: what was declared goes again.
                let _ = producer.delete_topology().await;
                if let Ok(raw_admin) = Bus::connect(AMQP_URL, raw_settings).await {
                    let _ = raw_admin.delete_topology().await;
                    let _ = raw_admin.close().await;
                }
                let _ = producer.close().await;
                return Err(error);
            }
        };

        let stats = WorkerStats::new();
        let deps = WorkerDeps {
            amqp_url: AMQP_URL.to_string(),
            bus: BusSettings {
                connection_name: format!("{prefix}worker"),
                ..gate_settings.clone()
            },
            redis_url: REDIS_URL.to_string(),
            redis: redis_settings,
            analyzers: vec![Box::new(analyzer) as Box<dyn Analyzer>],
            bands: Bands::default(),
            consensus: ConsensusPolicy::default(),
            policy_version: "bench-policy-1".to_string(),
            policy,
            stats: stats.clone(),
        };
        let worker_settings = WorkerSettings {
            concurrency: settings.concurrency,
            shutdown_grace_secs: 10,
            ..WorkerSettings::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(gate_worker::run(worker_settings, deps, async move {
            let _ = stopped.await;
        }));
        Ok(World {
            prefix,
            raw_topology,
            producer: Arc::new(producer),
            observer,
            decisions,
            raw_admin,
            redis,
            mock,
            worker: Some(RunningWorker {
                stats,
                handle,
                stop,
            }),
        })
    }

    fn worker_stats(&self) -> gate_worker::StatsSnapshot {
        self.worker
            .as_ref()
            .map(|worker| worker.stats.snapshot())
            .unwrap_or_default()
    }

    /// Stops the worker, deletes both topologies and every Redis key of the run.
    async fn cleanup(mut self) -> Result<()> {
        let mut problems = Vec::new();
        if let Some(worker) = self.worker.take() {
            let _ = worker.stop.send(());
            match tokio::time::timeout(Duration::from_secs(20), worker.handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => problems.push(format!("the worker failed: {error}")),
                Ok(Err(error)) => problems.push(format!("the worker task: {error}")),
                Err(_) => problems.push("the worker did not stop within 20 s".to_string()),
            }
        }
        if let Err(error) = self.producer.delete_topology().await {
            problems.push(format!("deleting the gate topology: {error}"));
        }
        if let Err(error) = self.raw_admin.delete_topology().await {
            problems.push(format!("deleting the raw topology: {error}"));
        }
        let n_keys = match self.redis.delete_all_keys().await {
            Ok(n_keys) => n_keys,
            Err(error) => {
                problems.push(format!("deleting the Redis keys: {error}"));
                0
            }
        };
        let _ = self.observer.close().await;
        let _ = self.raw_admin.close().await;
        let _ = self.producer.close().await;
        let prefix = &self.prefix;
        println!(
            "cleanup  : deleted the topologies under {prefix:?} and {:?} and {n_keys} Redis keys \
             under {:?}",
            format!("{prefix}raw-"),
            format!("{prefix}gate:"),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("cleanup: {}", problems.join("; "))
        }
    }
}

/// Steps 1 to 4.
async fn bench(settings: &Settings, world: &mut World) -> Result<()> {
    let docs =
        common::docs_change(REPO).context("building the docs change from a git repository")?;
    let mut variants = Variants::new(docs);
    let cpu = CpuMeter::new();
    let per_call = Door::Enqueue(Arc::clone(&world.producer));

    // Warm-up: connections, channels, the provider's HTTP pool, Redis, the broker's
    // code paths. Not timed.
    let warm_up = variants.events("warm", settings.n_warm_up);
    if !warm_up.is_empty() {
        run_gate(world, warm_up, &per_call, settings.n_publishers).await?;
    }

    // 1. The gate, fed by `gate_producer::enqueue` calls.
    let events = variants.events("gate", settings.n_events);
    let event_bytes = events
        .iter()
        .map(|event| serde_json::to_vec(event).map(|json| json.len()))
        .sum::<Result<usize, _>>()?
        / events.len();
    let stats_before = world.worker_stats();
    let mock_before = world.mock.stats();
    let cpu_before = cpu.sample();
    let gate = run_gate(world, events, &per_call, settings.n_publishers).await?;
    let gate_cpu = cpu.since(&cpu_before, settings.n_events);
    let stats = world.worker_stats();
    let mock = world.mock.stats();
    let decision_bytes = gate.tally.mean_payload_bytes();
    let gate_rate = gate.rate();
    println!();
    println!(
        "1. gate   : {:>8.0} events/s  ({} events in {:.3} s, gate_producer::enqueue calls; the last \
         confirmed after {:.3} s)",
        gate_rate,
        settings.n_events,
        gate.elapsed.as_secs_f64(),
        gate.enqueued_after.as_secs_f64()
    );
    println!(
        "   worker : received {}, decided {}, verdict cache misses {} / hits {}, model calls answered {}, \
         republished {}, redis errors {}, requeued {}, publish failures {}",
        stats.received - stats_before.received,
        stats.decided - stats_before.decided,
        stats.cache_misses - stats_before.cache_misses,
        stats.cache_hits - stats_before.cache_hits,
        mock.n_ok - mock_before.n_ok,
        stats.republished_from_store - stats_before.republished_from_store,
        stats.redis_errors - stats_before.redis_errors,
        stats.requeued - stats_before.requeued,
        stats.publish_failures - stats_before.publish_failures,
    );
    println!(
        "   sizes  : merge event {event_bytes} bytes, decision {decision_bytes} bytes (mean); \
         decisions by routing key: {}",
        gate.tally.describe_keys()
    );
    println!("   cpu    : {gate_cpu}");

    // 1b. The same, fed by one long-lived `Producer` (a confirm channel of its own),
    // to show whether the entry point matters.
    let shared = Door::Producer(
        gate_producer::Producer::new(&world.producer)
            .await
            .context("a producer on the shared connection")?,
    );
    let events = variants.events("shared", settings.n_events);
    let cpu_before = cpu.sample();
    let gate_shared = run_gate(world, events, &shared, settings.n_publishers).await?;
    let shared_cpu = cpu.since(&cpu_before, settings.n_events);
    println!(
        "1b. gate  : {:>8.0} events/s  (the same through one Producer::enqueue confirm channel; the last \
         confirmed after {:.3} s)",
        gate_shared.rate(),
        gate_shared.enqueued_after.as_secs_f64()
    );
    println!("   cpu    : {shared_cpu}");

    // 2. The raw loop, with the same sizes.
    let mut raw = RawLoop::start(world, settings, event_bytes, decision_bytes).await?;
    let raw_result = async {
        if settings.n_warm_up > 0 {
            raw.run("warm", settings.n_warm_up, settings.n_publishers)
                .await?;
        }
        let cpu_before = cpu.sample();
        let round = raw
            .run("raw", settings.n_events, settings.n_publishers)
            .await?;
        let raw_cpu = cpu.since(&cpu_before, settings.n_events);
        let raw_rate = round.rate();
        println!(
            "2. raw    : {:>8.0} events/s  ({} messages in {:.3} s; lapin publish {event_bytes} B -> quorum queue -> \
             consume -> publish {decision_bytes} B -> ack, confirms on both publishes, prefetch {})",
            raw_rate,
            settings.n_events,
            round.elapsed.as_secs_f64(),
            settings.concurrency
        );
        println!("   cpu    : {raw_cpu}");

        // More rounds of both, in the order raw, gate, gate, raw, …, so that a
        // drift over the run (the broker's growing logs) falls on both sides.
        let mut gate_side = Side::default();
        gate_side.add_round(&gate);
        let mut raw_side = Side::default();
        raw_side.add_round(&round);
        let mut rounds = vec![format!("gate {gate_rate:.0}"), format!("raw {raw_rate:.0}")];
        for pair in 1..settings.ratio_rounds {
            for gate_first in [pair % 2 == 0, pair % 2 == 1] {
                if gate_first {
                    let events = variants.events(&format!("gate{pair}-"), settings.n_events);
                    let round = run_gate(world, events, &per_call, settings.n_publishers).await?;
                    rounds.push(format!("gate {:.0}", round.rate()));
                    gate_side.add_round(&round);
                } else {
                    let round = raw
                        .run(&format!("raw{pair}"), settings.n_events, settings.n_publishers)
                        .await?;
                    rounds.push(format!("raw {:.0}", round.rate()));
                    raw_side.add_round(&round);
                }
            }
        }
        Ok::<_, anyhow::Error>((gate_side, raw_side, rounds))
    }
    .await;
    let raw_stopped = raw.stop().await;
    let (gate_side, raw_side, rounds) = raw_result?;
    raw_stopped?;

    // 3. The ratio of the median rounds (the summed rates beside it).
    let (gate_rate, raw_rate) = (gate_side.median_rate(), raw_side.median_rate());
    let ratio = gate_rate / raw_rate;
    println!(
        "3. ratio  : {:>7.1} %  gate/raw (target >= {:.0} %): {}   [median rounds: gate {gate_rate:.0} events/s, \
         raw {raw_rate:.0} events/s, of {} rounds each; summed over the rounds: {:.1} %; 1b/raw: {:.1} %]",
        ratio * 100.0,
        TARGET_RATIO * 100.0,
        if ratio >= TARGET_RATIO {
            "PASS"
        } else {
            "FAIL"
        },
        settings.ratio_rounds,
        gate_side.rate() / raw_side.rate() * 100.0,
        gate_shared.rate() / raw_rate * 100.0
    );
    println!("   rounds : {}", rounds.join(", "));

    // 4. Latency at half the peak.
    if settings.n_latency_events > 0 {
        let offered_rate = gate_rate / 2.0;
        let events = variants.events("lat", settings.n_latency_events);
        let latency = run_paced(world, events, offered_rate).await?;
        println!(
            "4. latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms  ({} events offered at {:.0}/s = 50 % of \
             the gate rate in 1, through gate_producer::enqueue; achieved {:.0}/s)",
            latency.p50.as_secs_f64() * 1e3,
            latency.p99.as_secs_f64() * 1e3,
            latency.max.as_secs_f64() * 1e3,
            settings.n_latency_events,
            offered_rate,
            latency.achieved_rate
        );
    }
    if settings.otlp {
        overhead(settings, world, &mut variants, &per_call, &cpu).await?;
    }
    println!();
    Ok(())
}

/// Step 5: the gate rate without and with OTLP export, in alternating rounds.
///
/// The OTLP exporter is set up once; rounds then alternate between span export
/// paused (`Telemetry::export_spans(false)`: no span is built, as in a worker
/// without OTLP) and on, `otlp_rounds` of each, in the order paused, on, on,
/// paused, … so that drift over the run (the broker's and Redis's growing state)
/// falls on both sides alike. The loss is judged on the 95 % interval of the
/// median of the pairs' losses; each side's median round and the summed rates
/// are printed too.
async fn overhead(
    settings: &Settings,
    world: &mut World,
    variants: &mut Variants,
    door: &Door,
    cpu: &CpuMeter,
) -> Result<()> {
    // It stands in for a collector on other machines: it decodes what it got
    // after the rounds, so its decoding is not charged to the gate.
    let receiver = gate_testkit::otlp::OtlpReceiver::start_deferred()
        .await
        .context("the in-process OTLP receiver")?;
    let endpoint = receiver.endpoint();
    let telemetry = gate_telemetry::Telemetry::start_with_env(
        &gate_telemetry::TelemetrySettings::default(),
        "bench",
        &|name| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            "OTEL_METRIC_EXPORT_INTERVAL" => Some("5000".to_string()),
            // The span-path step below ends spans far faster than any worker
            // (hundreds of thousands a second): a deep queue keeps all of them,
            // so its figure includes their export. The rounds never queue more
            // than a few batches, the default queue's size or not.
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("1000000".to_string()),
            _ => std::env::var(name).ok(),
        },
    )
    .map_err(anyhow::Error::msg)?;

    // The span path alone, on this thread with nothing else running: what the
    // layer, the registry and the trace context cost per event.
    let span_path = span_path_cost(&telemetry).await;

    let mut sides = [Side::default(), Side::default()];
    let mut per_round = Vec::new();
    let mut rates = Vec::new();
    for round in 0..settings.otlp_rounds * 2 {
        // Paused, on, on, paused, paused, on, …: a steady drift over the run
        // falls on both sides alike.
        let exported = matches!(round % 4, 1 | 2);
        telemetry.export_spans(exported && !settings.otlp_control);
        let events = variants.events(&format!("otlp{round}-"), settings.otlp_events);
        let cpu_before = cpu.sample();
        let result = run_gate(world, events, door, settings.n_publishers).await?;
        let side = &mut sides[usize::from(exported)];
        side.add(&result, &cpu_before, &cpu.sample());
        per_round.push(format!(
            "{}{:.0}",
            if exported { "with " } else { "without " },
            result.rate()
        ));
        rates.push((exported, result.rate()));
        // The observer sees a decision before the worker's spans of it close (the
        // ack comes after the publish): let the last ones close in this round's mode.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The last batches leave at shutdown (a blocking call: off the runtime).
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .context("flushing the exporters")?;
    let spans = receiver.spans().len();
    let protocol = receiver
        .content_types()
        .first()
        .cloned()
        .unwrap_or_default();

    let [plain, exported] = &sides;
    // Rounds 2k and 2k+1 are one pair, one of each side (paused, on | on, paused
    // | …): each pair's loss is measured against its neighbour, so slow drift and
    // the host's slower spells cancel within it.
    let mut paired: Vec<f64> = rates
        .chunks_exact(2)
        .map(|pair| {
            let rate = |exported: bool| {
                pair.iter()
                    .find(|(e, _)| *e == exported)
                    .map_or(f64::NAN, |(_, r)| *r)
            };
            1.0 - rate(true) / rate(false)
        })
        .collect();
    paired.sort_by(f64::total_cmp);
    let loss = median(&paired);
    let quartile = |q: usize| paired[(paired.len() - 1) * q / 4];
    // The verdict stands on the median's 95 % interval, not on the median
    // alone: on a noisy host one run's median can fall either side of 5 %.
    let interval = median_interval(&paired);
    let verdict = match interval {
        _ if settings.otlp_control => format!(
            "CONTROL (DEPLOY_GATE_BENCH_OTLP_CONTROL: no round exported; the \"with\" rounds are \
             paused too, so this is the measurement's own noise, 0 within its interval {})",
            match interval {
                None => "unknown: too few pairs for an interval",
                Some((low, high)) if low <= 0.0 && 0.0 <= high => "as it should be",
                Some(_) => "NOT as it should be: the rounds' order or drift favours one side",
            }
        ),
        Some((_, high)) if high < 0.05 => "PASS".to_string(),
        Some((low, _)) if low >= 0.05 => "FAIL".to_string(),
        Some(_) => "NOT SHOWN (the interval holds 5 %: more pairs or a quieter host)".to_string(),
        None => format!(
            "NOT SHOWN (too few pairs for an interval: {})",
            paired.len()
        ),
    };
    println!(
        "5. otlp   : loss {:.1} % (median of {} paired rounds; 95 % interval {}; quartiles {:.1} % .. {:.1} %) \
         (target < 5 %, judged on the interval): {verdict}",
        loss * 100.0,
        paired.len(),
        interval.map_or("none".to_string(), |(low, high)| format!(
            "{:.1} % .. {:.1} %",
            low * 100.0,
            high * 100.0
        )),
        quartile(1) * 100.0,
        quartile(3) * 100.0,
    );
    println!(
        "   rates  : {:>8.0} events/s without export, {:>8.0} events/s {} (median rounds, loss {:.1} %); \
         summed over the rounds {:.0} / {:.0} (loss {:.1} %)",
        plain.median_rate(),
        exported.median_rate(),
        if settings.otlp_control {
            "in the control's \"with\" rounds"
        } else {
            "with OTLP export"
        },
        (1.0 - exported.median_rate() / plain.median_rate()) * 100.0,
        plain.rate(),
        exported.rate(),
        (1.0 - exported.rate() / plain.rate()) * 100.0
    );
    println!(
        "   rounds : {} rounds of {} events each, span export paused and on in turn: {}",
        settings.otlp_rounds * 2,
        settings.otlp_events,
        per_round.join(", ")
    );
    println!(
        "   export : {spans} spans received ({} expected: 6 per event exported, in the rounds and the span path \
         below), {} metric exports, as {protocol}; refused {}",
        6 * (if settings.otlp_control {
            0
        } else {
            exported.n_events
        } + SPAN_PATH_EVENTS
            + SPAN_PATH_WARM_UP),
        receiver
            .metrics()
            .iter()
            .filter(|m| m.name == "deploy_gate_events_received")
            .count(),
        receiver.refused().len()
    );
    let without = cpu.between(&plain.cpu, plain.n_events);
    let with = cpu.between(&exported.cpu, exported.n_events);
    println!("   cpu    : without {without}");
    println!("            with    {with}");
    println!(
        "            all three: {:.0} us without, {:.0} us with per event: {:.1} % more CPU per event \
         (on two busy cores, the throughput lost is about as much)",
        without.total_us(),
        with.total_us(),
        (with.total_us() / without.total_us() - 1.0) * 100.0
    );
    let extra = span_path.exported.cpu_us - span_path.paused.cpu_us;
    println!(
        "   spans  : the span path alone, {SPAN_PATH_EVENTS} events on one thread (6 spans with the gate's fields, \
         traceparent out and in): paused {}, exported {}; export adds {extra:.1} us of CPU per event = {:.1} % \
         of the gate's CPU per event without export",
        span_path.paused,
        span_path.exported,
        extra / without.total_us() * 100.0
    );
    Ok(())
}

/// One side of [`span_path_cost`].
struct SpanPathSide {
    /// Wall time per event on the thread that opens the spans.
    thread_us: f64,
    /// This process's CPU per event, until it is idle again: the export thread's
    /// encoding and posting, and the in-process receiver taking the requests.
    cpu_us: f64,
}

impl std::fmt::Display for SpanPathSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} us per event on the thread, {:.1} us of process CPU",
            self.thread_us, self.cpu_us
        )
    }
}

struct SpanPath {
    paused: SpanPathSide,
    exported: SpanPathSide,
}

/// Events through [`span_path_cost`] per side, and untimed before them.
const SPAN_PATH_EVENTS: usize = 20_000;
const SPAN_PATH_WARM_UP: usize = SPAN_PATH_EVENTS / 10;

/// The span work one event causes, with span export paused and on: the spans
/// the producer and worker open (their names, kinds and fields as in the code),
/// each entered and left a few times as an instrumented future is polled, and
/// the `traceparent` written and read. Leaves export on.
async fn span_path_cost(telemetry: &gate_telemetry::Telemetry) -> SpanPath {
    use gate_telemetry::trace::{continue_trace, traceparent};

    fn polled(span: &tracing::Span) {
        for _ in 0..3 {
            let _entered = span.enter();
        }
    }
    let one_event = |i: usize| {
        let producer = tracing::info_span!(
            "enqueue",
            otel.name = "gate.events publish",
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "send",
            event_id = %i,
            repo = "acme/app",
        );
        let sent = traceparent(&producer);
        polled(&producer);
        drop(producer);

        let process = tracing::info_span!(
            "process",
            otel.name = "gate.merge-events process",
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            event_id = %i,
            repo = "acme/app",
            redelivered = false,
        );
        continue_trace(&process, sent.as_deref());
        polled(&process);
        process.in_scope(|| {
            let lookup = tracing::info_span!(
                "verdict cache lookup",
                db.system.name = "redis",
                hit = tracing::field::Empty,
            );
            polled(&lookup);
            lookup.record("hit", false);
            let call = tracing::info_span!(
                "chat",
                otel.name = "chat claude",
                otel.kind = "client",
                gen_ai.system = "anthropic",
                gen_ai.request.model = "claude",
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
            );
            polled(&call);
            call.record("gen_ai.usage.input_tokens", 1200);
            call.record("gen_ai.usage.output_tokens", 90);
            let consensus = tracing::info_span!(
                "consensus",
                n_model_verdicts = tracing::field::Empty,
                agreed = tracing::field::Empty,
                floor_applied = tracing::field::Empty,
                risk_score = tracing::field::Empty,
            );
            consensus.in_scope(|| {});
            consensus.record("n_model_verdicts", 1);
            consensus.record("agreed", true);
            consensus.record("floor_applied", false);
            consensus.record("risk_score", 12);
            let publish = tracing::info_span!(
                "publish",
                otel.name = "gate.results publish",
                otel.kind = "producer",
                messaging.system = "rabbitmq",
                recommendation = "deploy",
            );
            std::hint::black_box(traceparent(&publish));
            polled(&publish);
        });
    };
    let mut sides = Vec::new();
    for exported in [false, true] {
        telemetry.export_spans(exported);
        for i in 0..SPAN_PATH_WARM_UP {
            one_event(i);
        }
        settle().await;
        let ticks = process_ticks("self").unwrap_or(0);
        let started = Instant::now();
        for i in 0..SPAN_PATH_EVENTS {
            one_event(i);
        }
        let thread = started.elapsed();
        settle().await;
        let spent = process_ticks("self").unwrap_or(0).saturating_sub(ticks);
        sides.push(SpanPathSide {
            thread_us: thread.as_secs_f64() * 1e6 / SPAN_PATH_EVENTS as f64,
            cpu_us: spent as f64 * TICK_US / SPAN_PATH_EVENTS as f64,
        });
    }
    let exported = sides.pop().expect("two sides");
    let paused = sides.pop().expect("two sides");
    SpanPath { paused, exported }
}

/// Waits until this process is idle: under 3 clock ticks of CPU in 300 ms (its
/// runtime, the mock model and the receiver at rest), at most 20 s.
async fn settle() {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = process_ticks("self").unwrap_or(0);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = process_ticks("self").unwrap_or(0);
        if now.saturating_sub(last) < 3 {
            return;
        }
        last = now;
    }
}

/// The median of sorted values.
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A 95 % confidence interval for the median of `sorted`, free of any
/// assumption about its distribution: the order statistics j and n + 1 - j
/// (1-based) with j the largest rank that leaves at most 2.5 % of the
/// Binomial(n, 1/2) distribution on each side. `None` under 6 values, where no
/// such pair exists.
fn median_interval(sorted: &[f64]) -> Option<(f64, f64)> {
    let n = sorted.len();
    // P(B <= k) for B ~ Binomial(n, 1/2), accumulated term by term.
    let mut term = 0.5_f64.powi(i32::try_from(n).ok()?);
    let mut below = 0.0;
    let mut rank = 0;
    for k in 0..n / 2 {
        below += term;
        if 2.0 * below > 0.05 {
            break;
        }
        rank = k + 1;
        term *= (n - k) as f64 / (k + 1) as f64;
    }
    (rank > 0).then(|| (sorted[rank - 1], sorted[n - rank]))
}

/// One side (gate or raw in step 3, with or without export in step 5), summed
/// over its rounds.
#[derive(Default)]
struct Side {
    n_events: usize,
    elapsed: Duration,
    cpu: CpuSpent,
    /// Each round's rate, in order.
    rates: Vec<f64>,
}

impl Side {
    fn add(&mut self, round: &Round, before: &CpuSample, after: &CpuSample) {
        self.add_round(round);
        self.cpu.add(before, after);
    }

    fn add_round(&mut self, round: &Round) {
        self.n_events += round.tally.seen_at.len();
        self.elapsed += round.elapsed;
        self.rates.push(round.rate());
    }

    /// The median round's rate: what the targets are judged on, because a round
    /// now and then stalls (the broker's log segments, a scheduler hiccup on two
    /// shared cores) and one such round would otherwise decide PASS or FAIL.
    fn median_rate(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        median(&rates)
    }

    fn rate(&self) -> f64 {
        self.n_events as f64 / self.elapsed.as_secs_f64()
    }
}

/// How events reach the bus.
#[derive(Clone)]
enum Door {
    /// `gate_producer::enqueue(&bus, &event)`: the library call the issue names; it
    /// publishes on the bus's shared confirm channel.
    Enqueue(Arc<Bus>),
    /// `Producer::enqueue`: one confirm channel shared by every call.
    Producer(gate_producer::Producer),
}

impl Door {
    async fn enqueue(&self, event: &MergeEvent) -> Result<()> {
        let enqueued = match self {
            Door::Enqueue(bus) => gate_producer::enqueue(bus, event).await,
            Door::Producer(producer) => producer.enqueue(event, None).await,
        };
        enqueued.with_context(|| format!("enqueue {}", event.event_id))
    }
}

/// Where a round's CPU went: this process (worker, producer, observer and the mock
/// model all live here), the broker and Redis, read from `/proc` (Linux; the clock
/// tick is taken to be the usual 10 ms). The broker's and Redis's figures include
/// whatever other clients made them do meanwhile, hence the machine's share used by
/// other processes beside them.
struct CpuMeter {
    broker: Option<String>,
    redis: Option<String>,
}

struct CpuSample {
    own: u64,
    broker: u64,
    redis: u64,
    machine_busy: u64,
    machine_total: u64,
}

/// A round's CPU per event, in microseconds, ready to print.
struct CpuPerEvent {
    own_us: f64,
    broker_us: Option<f64>,
    redis_us: Option<f64>,
    others_pct: Option<f64>,
}

impl CpuPerEvent {
    /// This process, RabbitMQ and Redis together.
    fn total_us(&self) -> f64 {
        self.own_us + self.broker_us.unwrap_or(0.0) + self.redis_us.unwrap_or(0.0)
    }
}

/// Microseconds of one clock tick (`USER_HZ` = 100 on Linux).
const TICK_US: f64 = 10_000.0;

impl CpuMeter {
    fn new() -> CpuMeter {
        CpuMeter {
            broker: busiest_process("beam.smp"),
            redis: busiest_process("redis-server"),
        }
    }

    fn sample(&self) -> CpuSample {
        let (machine_busy, machine_total) = machine_ticks().unwrap_or((0, 0));
        CpuSample {
            own: process_ticks("self").unwrap_or(0),
            broker: self.broker.as_deref().and_then(process_ticks).unwrap_or(0),
            redis: self.redis.as_deref().and_then(process_ticks).unwrap_or(0),
            machine_busy,
            machine_total,
        }
    }

    fn since(&self, before: &CpuSample, n_events: usize) -> CpuPerEvent {
        let mut spent = CpuSpent::default();
        spent.add(before, &self.sample());
        self.between(&spent, n_events)
    }

    /// `spent` per event.
    fn between(&self, spent: &CpuSpent, n_events: usize) -> CpuPerEvent {
        let per_event = |ticks: u64| ticks as f64 * TICK_US / n_events.max(1) as f64;
        let CpuSpent {
            own,
            broker,
            redis,
            busy,
            total,
        } = *spent;
        CpuPerEvent {
            own_us: per_event(own),
            broker_us: self.broker.as_ref().map(|_| per_event(broker)),
            redis_us: self.redis.as_ref().map(|_| per_event(redis)),
            others_pct: (total > 0)
                .then(|| 100.0 * busy.saturating_sub(own + broker + redis) as f64 / total as f64),
        }
    }
}

/// Clock ticks spent between samples, summed over one or more intervals.
#[derive(Debug, Default, Clone, Copy)]
struct CpuSpent {
    own: u64,
    broker: u64,
    redis: u64,
    busy: u64,
    total: u64,
}

impl CpuSpent {
    fn add(&mut self, before: &CpuSample, after: &CpuSample) {
        self.own += after.own.saturating_sub(before.own);
        self.broker += after.broker.saturating_sub(before.broker);
        self.redis += after.redis.saturating_sub(before.redis);
        self.busy += after.machine_busy.saturating_sub(before.machine_busy);
        self.total += after.machine_total.saturating_sub(before.machine_total);
    }
}

impl std::fmt::Display for CpuPerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |us: Option<f64>| us.map_or("n/a".to_string(), |us| format!("{us:.0} us"));
        write!(
            f,
            "per event {:.0} us this process, {} RabbitMQ, {} Redis; \
             other processes kept the machine {} busy meanwhile",
            self.own_us,
            show(self.broker_us),
            show(self.redis_us),
            self.others_pct
                .map_or("n/a".to_string(), |pct| format!("{pct:.0} %"))
        )
    }
}

/// User + system clock ticks of a process (`self` or a pid).
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Busy and total clock ticks of the whole machine, all cores.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The pid of the process named `comm` that has used the most CPU (the server, not
/// a short-lived `rabbitmqctl` that shares its name).
fn busiest_process(comm: &str) -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (name.trim() == comm).then(|| (process_ticks(&pid).unwrap_or(0), pid))
        })
        .max()
        .map(|(_, pid)| pid)
}

/// Distinct merge events: each its own id, head and diff.
struct Variants {
    base: DeployContext,
    next: usize,
}

impl Variants {
    fn new(base: DeployContext) -> Variants {
        Variants { base, next: 0 }
    }

    /// `n` new events with ids `<label>-<i>`.
    fn events(&mut self, label: &str, n: usize) -> Vec<MergeEvent> {
        (0..n)
            .map(|i| {
                let variant = self.next;
                self.next += 1;
                common::varied_event(
                    &self.base,
                    &variant.to_string(),
                    variant,
                    format!("{label}-{i}"),
                )
            })
            .collect()
    }
}

/// Which ids a loop waits for, and when each was first seen.
struct Tally {
    index: HashMap<String, usize>,
    seen_at: Vec<Option<Instant>>,
    n_seen: usize,
    n_duplicates: usize,
    payload_bytes: u64,
    by_key: BTreeMap<String, usize>,
}

impl Tally {
    fn new(ids: impl IntoIterator<Item = String>) -> Tally {
        let index: HashMap<String, usize> =
            ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect();
        let n = index.len();
        Tally {
            index,
            seen_at: vec![None; n],
            n_seen: 0,
            n_duplicates: 0,
            payload_bytes: 0,
            by_key: BTreeMap::new(),
        }
    }

    fn is_complete(&self) -> bool {
        self.n_seen == self.seen_at.len()
    }

    /// Counts one decision; ids of other rounds are ignored.
    fn record(&mut self, id: Option<&str>, routing_key: &str, payload_len: usize, at: Instant) {
        let Some(&i) = id.and_then(|id| self.index.get(id)) else {
            return;
        };
        if self.seen_at[i].is_some() {
            self.n_duplicates += 1;
            return;
        }
        self.seen_at[i] = Some(at);
        self.n_seen += 1;
        self.payload_bytes += payload_len as u64;
        let recommendation = routing_key.split('.').nth(1).unwrap_or("?");
        *self.by_key.entry(recommendation.to_string()).or_default() += 1;
    }

    fn mean_payload_bytes(&self) -> usize {
        usize::try_from(self.payload_bytes / self.n_seen.max(1) as u64).unwrap_or(usize::MAX)
    }

    fn describe_keys(&self) -> String {
        let mut parts: Vec<String> = self
            .by_key
            .iter()
            .map(|(recommendation, n)| format!("decision.{recommendation}.* x{n}"))
            .collect();
        if self.n_duplicates > 0 {
            parts.push(format!("{} duplicates", self.n_duplicates));
        }
        parts.join(", ")
    }

    fn stalled(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{what}: only {} of {} decisions, none for {} s",
            self.n_seen,
            self.seen_at.len(),
            STALL.as_secs()
        )
    }
}

/// One timed round trip of N events.
struct Round {
    elapsed: Duration,
    /// When the last publish was confirmed.
    enqueued_after: Duration,
    tally: Tally,
}

impl Round {
    fn rate(&self) -> f64 {
        self.tally.seen_at.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Enqueues `events` through `gate_producer::enqueue`, `n_publishers` at a time,
/// and waits until the observer has seen every one's decision.
async fn run_gate(
    world: &mut World,
    events: Vec<MergeEvent>,
    door: &Door,
    n_publishers: usize,
) -> Result<Round> {
    let mut tally = Tally::new(events.iter().map(|event| event.event_id.clone()));
    let started = Instant::now();
    let producing = enqueue_all(door, events, n_publishers, started);
    let decisions = &mut world.decisions;
    let observing = async {
        while !tally.is_complete() {
            let delivery = match tokio::time::timeout(STALL, decisions.next()).await {
                Err(_) => return Err(tally.stalled("gate")),
                Ok(None) => bail!("the observer's subscription ended"),
                Ok(Some(delivery)) => delivery.context("observer delivery")?,
            };
            tally.record(
                delivery.message_id(),
                delivery.routing_key(),
                delivery.payload().len(),
                Instant::now(),
            );
            delivery.ack().await.context("observer ack")?;
        }
        Ok(started.elapsed())
    };
    let (enqueued_after, elapsed) = tokio::try_join!(producing, observing)?;
    Ok(Round {
        elapsed,
        enqueued_after,
        tally,
    })
}

/// Enqueues each event through `door`, `n_publishers` calls in flight; returns when
/// every one is confirmed, with the time since `started`.
async fn enqueue_all(
    door: &Door,
    events: Vec<MergeEvent>,
    n_publishers: usize,
    started: Instant,
) -> Result<Duration> {
    let permits = Arc::new(Semaphore::new(n_publishers));
    let mut tasks = JoinSet::new();
    for event in events {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let door = door.clone();
        tasks.spawn(async move {
            let enqueued = door.enqueue(&event).await;
            drop(permit);
            enqueued
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// Latency percentiles of a paced round.
struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
    achieved_rate: f64,
}

/// Offers `events` at `rate` a second, each `enqueue` on its own task at its
/// scheduled time (open loop: a slow answer never delays the next offer), and
/// measures each event from just before its `enqueue` call to its decision.
async fn run_paced(world: &mut World, events: Vec<MergeEvent>, rate: f64) -> Result<Latency> {
    ensure!(rate > 0.0, "the offered rate must be positive");
    let n_events = events.len();
    let mut tally = Tally::new(events.iter().map(|event| event.event_id.clone()));
    let door = Door::Enqueue(Arc::clone(&world.producer));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let producing = async move {
        let start = tokio::time::Instant::now() + Duration::from_millis(10);
        let mut tasks = JoinSet::new();
        for (i, event) in events.into_iter().enumerate() {
            tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
            let door = door.clone();
            tasks.spawn(async move {
                let sent_at = Instant::now();
                door.enqueue(&event).await?;
                Ok::<_, anyhow::Error>((i, sent_at))
            });
        }
        let offered_for = start.elapsed();
        let mut sent_at = vec![None; n_events];
        while let Some(done) = tasks.join_next().await {
            let (i, at) = done??;
            sent_at[i] = Some(at);
        }
        Ok::<_, anyhow::Error>((sent_at, offered_for))
    };
    let decisions = &mut world.decisions;
    let observing = async {
        while !tally.is_complete() {
            let delivery = match tokio::time::timeout(STALL, decisions.next()).await {
                Err(_) => return Err(tally.stalled("latency")),
                Ok(None) => bail!("the observer's subscription ended"),
                Ok(Some(delivery)) => delivery.context("observer delivery")?,
            };
            tally.record(
                delivery.message_id(),
                delivery.routing_key(),
                delivery.payload().len(),
                Instant::now(),
            );
            delivery.ack().await.context("observer ack")?;
        }
        Ok(())
    };
    let ((sent_at, offered_for), ()) = tokio::try_join!(producing, observing)?;
    let mut latencies: Vec<Duration> = sent_at
        .iter()
        .zip(&tally.seen_at)
        .map(|(sent, seen)| match (sent, seen) {
            (Some(sent), Some(seen)) => Ok(seen.saturating_duration_since(*sent)),
            _ => bail!("an event without a send or a decision time"),
        })
        .collect::<Result<_>>()?;
    latencies.sort_unstable();
    Ok(Latency {
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or_default(),
        achieved_rate: n_events.saturating_sub(1) as f64 / offered_for.as_secs_f64().max(1e-9),
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], pct: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The baseline: the gate's message path in lapin alone, with the gate's queue
/// arguments, sizes, persistence, confirms, acks, prefetch and concurrency, and
/// none of its work.
struct RawLoop {
    topology: Topology,
    event_payload: Arc<Vec<u8>>,
    producer: Connection,
    publish_channel: Channel,
    observer: Connection,
    decisions: lapin::Consumer,
    worker_connection: Connection,
    worker: JoinHandle<Result<()>>,
    stop_worker: oneshot::Sender<()>,
}

impl RawLoop {
    async fn start(
        world: &World,
        settings: &Settings,
        event_bytes: usize,
        decision_bytes: usize,
    ) -> Result<RawLoop> {
        let topology = world.raw_topology.clone();
        let connect = |name: String| async move {
            let properties =
                ConnectionProperties::default().with_connection_name(LongString::from(name));
            Connection::connect(AMQP_URL, properties)
                .await
                .context("raw lapin connection")
        };
        let prefix = &world.prefix;

        // The worker: one consuming channel with the prefetch, one confirm channel
        // shared by every in-flight delivery, a permit per delivery.
        let worker_connection = connect(format!("{prefix}raw-worker")).await?;
        let consume_channel = worker_connection.create_channel().await?;
        consume_channel
            .basic_qos(settings.concurrency, BasicQosOptions::default())
            .await?;
        let consumer = consume_channel
            .basic_consume(
                short(&topology.events_queue)?,
                "raw-worker".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let worker_publish = worker_connection.create_channel().await?;
        worker_publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let (stop_worker, stopped) = oneshot::channel();
        let worker = tokio::spawn(raw_worker(
            consumer,
            worker_publish,
            short(&topology.results_exchange)?,
            Arc::new(vec![b'd'; decision_bytes]),
            usize::from(settings.concurrency),
            stopped,
        ));

        // The observer: a private queue bound to `decision.#`, like the gate's.
        let observer = connect(format!("{prefix}raw-observer")).await?;
        let observe_channel = observer.create_channel().await?;
        let queue = observe_channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        observe_channel
            .queue_bind(
                queue.name().clone(),
                short(&topology.results_exchange)?,
                "decision.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        observe_channel
            .basic_qos(OBSERVER_PREFETCH, BasicQosOptions::default())
            .await?;
        let decisions = observe_channel
            .basic_consume(
                queue.name().clone(),
                "raw-observer".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;

        // The producer: one confirm channel, publishes in flight as the gate's.
        let producer = connect(format!("{prefix}raw-producer")).await?;
        let publish_channel = producer.create_channel().await?;
        publish_channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(RawLoop {
            topology,
            event_payload: Arc::new(vec![b'e'; event_bytes]),
            producer,
            publish_channel,
            observer,
            decisions,
            worker_connection,
            worker,
            stop_worker,
        })
    }

    /// Publishes `n` messages with ids `<label>-<i>`, `n_publishers` in flight, and
    /// waits until the observer has seen each one's answer.
    async fn run(&mut self, label: &str, n: usize, n_publishers: usize) -> Result<Round> {
        let mut tally = Tally::new((0..n).map(|i| format!("{label}-{i}")));
        let exchange = short(&self.topology.events_exchange)?;
        let routing_key = short(&event_routing_key(REPO))?;
        let publish_channel = &self.publish_channel;
        let event_payload = &self.event_payload;
        let decisions = &mut self.decisions;
        let started = Instant::now();
        let producing = async {
            let permits = Arc::new(Semaphore::new(n_publishers));
            let mut tasks = JoinSet::new();
            for i in 0..n {
                let permit = Arc::clone(&permits).acquire_owned().await?;
                let channel = publish_channel.clone();
                let payload = Arc::clone(event_payload);
                let (exchange, routing_key) = (exchange.clone(), routing_key.clone());
                let id = format!("{label}-{i}");
                tasks.spawn(async move {
                    let published = publish_confirmed(
                        &channel,
                        exchange,
                        routing_key,
                        &payload,
                        properties(&id, "merge_event")?,
                    )
                    .await;
                    drop(permit);
                    published
                });
                while let Some(done) = tasks.try_join_next() {
                    done??;
                }
            }
            while let Some(done) = tasks.join_next().await {
                done??;
            }
            Ok::<_, anyhow::Error>(started.elapsed())
        };
        let observing = async {
            while !tally.is_complete() {
                let delivery = match tokio::time::timeout(STALL, decisions.next()).await {
                    Err(_) => return Err(tally.stalled("raw")),
                    Ok(None) => bail!("the raw observer's subscription ended"),
                    Ok(Some(delivery)) => delivery.context("raw observer delivery")?,
                };
                tally.record(
                    delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(ShortString::as_str),
                    delivery.routing_key.as_str(),
                    delivery.data.len(),
                    Instant::now(),
                );
                ensure!(
                    delivery.acker.ack(BasicAckOptions::default()).await?,
                    "raw observer ack: channel closed"
                );
            }
            Ok(started.elapsed())
        };
        let (enqueued_after, elapsed) = tokio::try_join!(producing, observing)?;
        Ok(Round {
            elapsed,
            enqueued_after,
            tally,
        })
    }

    async fn stop(self) -> Result<()> {
        let _ = self.stop_worker.send(());
        let worker = tokio::time::timeout(Duration::from_secs(10), self.worker).await;
        for connection in [&self.producer, &self.observer, &self.worker_connection] {
            let _ = connection.close(200, "bye".into()).await;
        }
        match worker {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => Err(error.into()),
            Err(_) => bail!("the raw worker did not stop within 10 s"),
        }
    }
}

/// The raw worker: for each delivery (at most `concurrency` at a time), publish a
/// decision-sized message with a confirm, then ack.
async fn raw_worker(
    mut consumer: lapin::Consumer,
    publish: Channel,
    results_exchange: ShortString,
    decision_payload: Arc<Vec<u8>>,
    concurrency: usize,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let routing_key = short(&decision_routing_key(Recommendation::Deploy, REPO))?;
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = &mut stop => break,
            permit = Arc::clone(&permits).acquire_owned() => permit?,
        };
        let delivery = tokio::select! {
            _ = &mut stop => break,
            next = consumer.next() => match next {
                Some(delivery) => delivery?,
                None => break,
            },
        };
        let channel = publish.clone();
        let payload = Arc::clone(&decision_payload);
        let (exchange, routing_key) = (results_exchange.clone(), routing_key.clone());
        tasks.spawn(async move {
            let id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_string())
                .unwrap_or_default();
            publish_confirmed(
                &channel,
                exchange,
                routing_key,
                &payload,
                properties(&id, "decision")?,
            )
            .await?;
            ensure!(
                delivery.acker.ack(BasicAckOptions::default()).await?,
                "raw worker ack: channel closed"
            );
            drop(permit);
            Ok(())
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// A persistent, `mandatory` publish that is `Ok` only when the broker confirmed it
/// and routed it, as gate-bus's publisher requires.
async fn publish_confirmed(
    channel: &Channel,
    exchange: ShortString,
    routing_key: ShortString,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<()> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let confirmation = channel
        .basic_publish(exchange, routing_key, options, payload, properties)
        .await?
        .await?;
    ensure!(confirmation.is_ack(), "nacked by the broker");
    ensure!(
        confirmation.take_message().is_none(),
        "returned by the broker: unroutable"
    );
    Ok(())
}

/// The properties every gate message carries (see gate-bus's envelope): persistent,
/// JSON, stamped, identified, typed.
fn properties(message_id: &str, kind: &str) -> Result<BasicProperties> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(BasicProperties::default()
        .with_message_id(short(message_id)?)
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(u64::try_from(now).unwrap_or(0))
        .with_type(short(kind)?)
        .with_app_id("deploy-gate".into())
        .with_headers(FieldTable::default()))
}

fn short(value: &str) -> Result<ShortString> {
    ShortString::try_new(value).map_err(|_| anyhow::anyhow!("{value:?} is over 255 bytes"))
}

/// A prefix no other run uses: `bench-<16 hex>-`.
fn unique_prefix() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("getrandom: {error}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("bench-{hex}-"))
}

/// The Anthropic provider against the mock, as the worker's tests configure it.
fn anthropic(mock: &MockServer) -> Result<AnthropicProvider> {
    let setup = ProviderSetup::new(
        Bands::default(),
        &PromptSettings::default(),
        PriceTable::default(),
    )?;
    let settings = AnthropicSettings {
        model: "claude-sonnet-4-5".into(),
        base_url: Some(mock.anthropic_base_url()),
        api_key: Some(ApiKey::new("bench-key")),
        retry: RetrySettings {
            max_attempts: 3,
            initial_backoff_ms: 10,
            max_backoff_ms: 50,
            deadline_ms: 20_000,
        },
        http: HttpSettings {
            connect_timeout_ms: 1_000,
            request_timeout_ms: 15_000,
        },
        ..Default::default()
    };
    Ok(AnthropicProvider::new(&settings, &setup)?)
}
