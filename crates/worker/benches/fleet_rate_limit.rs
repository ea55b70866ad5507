//! Benchmark (issue 7): does a fleet of workers keep a model provider's limit
//! together? Three REAL worker processes (the `deploy-gate` binary, release build)
//! decide merge events against the mock model server set to 300 requests a minute
//! (its own token bucket, answering 429 with `retry-after` past it), while this
//! process offers 4× the limit: 1,200 distinct events a minute (each its own diff,
//! so the verdict cache never answers) for 3 minutes.
//!
//! Two runs, same everything, one after the other:
//!
//! 1. **fleet**: the fleet-wide limit (Redis) in front of the model, as shipped.
//! 2. **baseline**: `fleet = false`: each worker keeps to the 300 a minute by
//!    itself, as before the fleet limit existed.
//!
//! For each: the requests the mock received (and answered 200 or 429) per minute
//! window since the first event, the busiest sliding 60-second window, utilisation
//! of the limit, and the 429s. The fleet run PASSes when no 60-second window holds
//! more than the limit, no 429 was received, and at least 90 % of the limit was used
//! (answered 200) in every full minute.
//!
//! Needs RabbitMQ at 127.0.0.1:5672 (guest/guest), Redis at 127.0.0.1:6379 and the
//! release binary:
//!
//! ```text
//! cargo build --release -p deploy-gate --bin deploy-gate
//! cargo bench -p gate-worker --bench fleet_rate_limit
//! ```
//!
//! Knobs: `DEPLOY_GATE_BENCH_SECS` (offering time per run, default 180),
//! `DEPLOY_GATE_BENCH_RPM` (the mock's limit and the configured one, 300),
//! `DEPLOY_GATE_BENCH_WORKERS` (3), `DEPLOY_GATE_BENCH_OFFERED` (× the limit, 4),
//! `DEPLOY_GATE_BENCH_LATENCY_MS` (the mock's answer time, 300),
//! `DEPLOY_GATE_BENCH_BASELINE` (0 skips the baseline run), `DEPLOY_GATE_BIN` (the
//! binary; default `target/release/deploy-gate` beside this benchmark).
//! Everything a run creates is under a unique prefix and deleted at its end.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use gate_bus::{Bus, BusSettings, Redis, RedisSettings, Topology};
use gate_core::{DeployContext, MergeEvent};
use gate_mock_llm::{MockConfig, MockServer, Stats};
use gate_producer::Producer;

/// The machine's RabbitMQ.
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The machine's Redis.
const REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// The target share of the limit used in every full minute.
const TARGET_UTILISATION: f64 = 0.90;

/// What a run does, from the environment.
#[derive(Debug, Clone)]
struct Settings {
    secs: u64,
    rpm: u32,
    n_workers: usize,
    offered: f64,
    latency_ms: u64,
    baseline: bool,
    binary: PathBuf,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let binary = match std::env::var_os("DEPLOY_GATE_BIN") {
            Some(path) => PathBuf::from(path),
            None => default_binary()?,
        };
        ensure!(
            binary.is_file(),
            "no deploy-gate binary at {} (build it first: cargo build --release -p deploy-gate --bin deploy-gate, or set DEPLOY_GATE_BIN)",
            binary.display()
        );
        let settings = Settings {
            secs: env_or("DEPLOY_GATE_BENCH_SECS", 180)?,
            rpm: env_or("DEPLOY_GATE_BENCH_RPM", 300)?,
            n_workers: env_or("DEPLOY_GATE_BENCH_WORKERS", 3)?,
            offered: env_or("DEPLOY_GATE_BENCH_OFFERED", 4.0)?,
            latency_ms: env_or("DEPLOY_GATE_BENCH_LATENCY_MS", 300)?,
            baseline: env_or::<u8>("DEPLOY_GATE_BENCH_BASELINE", 1)? != 0,
            binary,
        };
        ensure!(
            settings.secs > 0,
            "DEPLOY_GATE_BENCH_SECS must be at least 1"
        );
        ensure!(settings.rpm > 0, "DEPLOY_GATE_BENCH_RPM must be at least 1");
        ensure!(
            settings.n_workers > 0,
            "DEPLOY_GATE_BENCH_WORKERS must be at least 1"
        );
        ensure!(
            settings.offered > 0.0,
            "DEPLOY_GATE_BENCH_OFFERED must be more than 0"
        );
        Ok(settings)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|error| anyhow::anyhow!("{name}={value:?}: {error}")),
        Err(_) => Ok(default),
    }
}

/// `target/release/deploy-gate`: this benchmark runs from `target/release/deps/`.
fn default_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the benchmark executable")?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .context("the benchmark executable has no target directory")?;
    Ok(release.join("deploy-gate"))
}

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(async {
        print_setup(&settings);
        let base = common::docs_change("acme/shop")?;
        let fleet = run(&settings, &base, Mode::Fleet).await?;
        fleet.print(&settings);
        let baseline = if settings.baseline {
            let baseline = run(&settings, &base, Mode::Baseline).await?;
            baseline.print(&settings);
            Some(baseline)
        } else {
            None
        };
        verdict(&settings, &fleet, baseline.as_ref())
    })
}

/// The binary's last three path components (`target/release/deploy-gate`): enough
/// to tell the build, without the machine's own directories in a published report.
fn short_path(path: &Path) -> String {
    let parts: Vec<_> = path.components().collect();
    let tail = &parts[parts.len().saturating_sub(3)..];
    tail.iter()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn print_setup(settings: &Settings) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let offered_per_minute = f64::from(settings.rpm) * settings.offered;
    println!(
        "fleet_rate_limit: {} worker processes ({}), concurrency 4 each",
        settings.n_workers,
        short_path(&settings.binary)
    );
    println!(
        "  mock model: {} requests/min (token bucket, 429 + retry-after past it), {} ms per answer",
        settings.rpm, settings.latency_ms
    );
    println!(
        "  offered   : {offered_per_minute:.0} distinct events/min ({:.1}× the limit) for {} s per run",
        settings.offered, settings.secs
    );
    println!("  machine   : {cores} cores; RabbitMQ and Redis on loopback");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The fleet-wide limit through Redis.
    Fleet,
    /// Each worker alone (`fleet = false`).
    Baseline,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Fleet => "fleet limit (Redis)",
            Mode::Baseline => "baseline: per-process limit only",
        }
    }
}

/// The mock's counters once a second from the first event on.
struct Measured {
    mode: Mode,
    samples: Vec<Stats>,
    n_offered: usize,
}

/// One minute window (or what is left of the run).
struct Window {
    secs: usize,
    received: u64,
    ok: u64,
    rate_limited: u64,
}

impl Measured {
    fn windows(&self) -> Vec<Window> {
        let mut windows = Vec::new();
        let last = self.samples.len() - 1;
        let mut start = 0;
        while start < last {
            let end = (start + 60).min(last);
            let (a, b) = (&self.samples[start], &self.samples[end]);
            windows.push(Window {
                secs: end - start,
                received: b.n_requests - a.n_requests,
                ok: b.n_ok - a.n_ok,
                rate_limited: b.n_rate_limited - a.n_rate_limited,
            });
            start = end;
        }
        windows
    }

    /// The most requests received in any 60 seconds (1-second resolution).
    fn busiest_minute(&self) -> u64 {
        let n = self.samples.len();
        (0..n)
            .map(|start| {
                let end = (start + 60).min(n - 1);
                self.samples[end].n_requests - self.samples[start].n_requests
            })
            .max()
            .unwrap_or(0)
    }

    fn total(&self) -> &Stats {
        &self.samples[self.samples.len() - 1]
    }

    /// The lowest share of the limit answered 200 in a full minute window (the
    /// whole run's average when no minute is full).
    fn utilisation(&self, rpm: u32) -> f64 {
        let windows = self.windows();
        let full: Vec<&Window> = windows.iter().filter(|w| w.secs == 60).collect();
        if full.is_empty() {
            let secs = (self.samples.len() - 1).max(1) as f64;
            return self.total().n_ok as f64 / (f64::from(rpm) * secs / 60.0);
        }
        full.iter()
            .map(|w| w.ok as f64 / f64::from(rpm))
            .fold(f64::INFINITY, f64::min)
    }

    fn print(&self, settings: &Settings) {
        println!();
        println!("{}:", self.mode.label());
        println!(
            "  {:>8}  {:>9}  {:>8}  {:>5}  {:>6}  {:>11}",
            "window", "received", "answered", "429s", "limit", "utilisation"
        );
        for (idx, window) in self.windows().iter().enumerate() {
            let limit = f64::from(settings.rpm) * window.secs as f64 / 60.0;
            println!(
                "  {:>8}  {:>9}  {:>8}  {:>5}  {:>6.0}  {:>10.1}%",
                format!("min {}{}", idx + 1, if window.secs < 60 { "*" } else { "" }),
                window.received,
                window.ok,
                window.rate_limited,
                limit,
                100.0 * window.ok as f64 / limit.max(1.0),
            );
        }
        let total = self.total();
        println!(
            "  total: {} events offered, {} requests received by the mock, {} answered, {} answered 429",
            self.n_offered, total.n_requests, total.n_ok, total.n_rate_limited
        );
        println!(
            "  busiest 60 s: {} requests received (limit {}); lowest utilisation of a full minute: {:.1}%",
            self.busiest_minute(),
            settings.rpm,
            100.0 * self.utilisation(settings.rpm)
        );
    }
}

fn verdict(settings: &Settings, fleet: &Measured, baseline: Option<&Measured>) -> Result<()> {
    let busiest = fleet.busiest_minute();
    let n_429 = fleet.total().n_rate_limited;
    let utilisation = fleet.utilisation(settings.rpm);
    let pass =
        busiest <= u64::from(settings.rpm) && n_429 == 0 && utilisation >= TARGET_UTILISATION;
    println!();
    println!(
        "verdict: {} — fleet: busiest 60 s {busiest} ≤ {} {}, 429s {n_429} (want 0), utilisation {:.1}% (want ≥ {:.0}%)",
        if pass { "PASS" } else { "FAIL" },
        settings.rpm,
        if busiest <= u64::from(settings.rpm) { "yes" } else { "NO" },
        100.0 * utilisation,
        100.0 * TARGET_UTILISATION
    );
    if let Some(baseline) = baseline {
        println!(
            "         baseline (per-process limit only): busiest 60 s {}, 429s {}",
            baseline.busiest_minute(),
            baseline.total().n_rate_limited
        );
    }
    if !pass {
        bail!("the fleet run missed its target");
    }
    Ok(())
}

/// One run: a fresh mock, topology and key prefix, N workers, the offered load,
/// the samples; then everything stopped and deleted.
async fn run(settings: &Settings, base: &DeployContext, mode: Mode) -> Result<Measured> {
    let prefix = unique_prefix()?;
    let redis = Redis::open(
        REDIS_URL,
        RedisSettings {
            key_prefix: format!("{prefix}gate:"),
            ..RedisSettings::default()
        },
    )
    .context("opening Redis")?;
    redis
        .ping()
        .await
        .context("Redis must be running at 127.0.0.1:6379")?;
    let mock = MockServer::start(MockConfig {
        rpm: Some(settings.rpm),
        latency_ms: settings.latency_ms,
        ..MockConfig::default()
    })
    .await
    .context("starting the mock model server")?;
    let topology = Topology::default().with_prefix(&prefix);
    let bus = Bus::connect(
        AMQP_URL,
        BusSettings {
            topology: topology.clone(),
            connect_attempts: 3,
            connect_backoff_initial_ms: 50,
            connection_name: format!("{prefix}bench-producer"),
            ..BusSettings::default()
        },
    )
    .await
    .context("RabbitMQ must be running at 127.0.0.1:5672 with guest/guest")?;
    let dir = tempfile::Builder::new()
        .prefix("gate-bench-rate-limit-")
        .tempdir()
        .context("creating a temporary directory")?;
    let config = write_config(dir.path(), &prefix, &topology, settings, mode)?;

    let mut workers = Vec::new();
    let measured = async {
        let producer = Producer::new(&bus).await.context("opening a publisher")?;
        for idx in 0..settings.n_workers {
            workers.push(spawn_worker(settings, dir.path(), &config, &mock, idx)?);
        }
        offer(settings, base, &producer, &mock, &mut workers, mode).await
    }
    .await;

    let mut problems = Vec::new();
    for worker in &mut workers {
        if let Err(error) = stop(worker) {
            problems.push(error.to_string());
        }
    }
    if let Err(error) = bus.delete_topology().await {
        problems.push(format!("deleting the topology: {error}"));
    }
    let _ = bus.close().await;
    if let Err(error) = redis.delete_all_keys().await {
        problems.push(format!("deleting the Redis keys: {error}"));
    }
    let measured = measured.inspect_err(|_| {
        // Show what the workers said: the reason is usually there.
        for worker in &workers {
            if let Ok(log) = std::fs::read_to_string(&worker.log) {
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("--- {} (last lines)", worker.log.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    })?;
    if !problems.is_empty() {
        bail!("cleanup: {}", problems.join("; "));
    }
    Ok(measured)
}

/// The config file of a run: the mock's limit configured, the fleet limit on or
/// off, every name prefixed, models asked even for this docs-only change.
fn write_config(
    dir: &Path,
    prefix: &str,
    topology: &Topology,
    settings: &Settings,
    mode: Mode,
) -> Result<PathBuf> {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, "skip_models_when_trivial = false\n").context("writing the policy")?;
    let topology = toml::to_string(topology).context("rendering the topology")?;
    let fleet = mode == Mode::Fleet;
    let text = format!(
        r#"# Written by the fleet_rate_limit benchmark for one run.
[models]
enabled = ["anthropic"]

[models.anthropic]
model = "claude-sonnet-4-5"

[models.anthropic.rate_limit]
requests_per_minute = {rpm}
fleet = {fleet}
expected_workers = {n_workers}

[models.anthropic.retry]
max_attempts = 5
initial_backoff_ms = 200
max_backoff_ms = 2000
deadline_ms = 120000

[policy]
file = "{policy}"

[bus]
confirm_timeout_ms = 5000
connect_attempts = 10
connect_backoff_initial_ms = 50
connect_backoff_max_ms = 500

[bus.topology]
{topology}
[stores]
key_prefix = "{prefix}gate:"

[worker]
concurrency = 4
shutdown_grace_secs = 1
reconnect_backoff_initial_ms = 50
reconnect_backoff_max_ms = 500

[worker.notify]
channels = []
"#,
        rpm = settings.rpm,
        n_workers = settings.n_workers,
        policy = policy.display(),
    );
    let path = dir.join("bench.toml");
    std::fs::write(&path, text).context("writing the config")?;
    Ok(path)
}

struct Worker {
    child: Child,
    log: PathBuf,
}

fn spawn_worker(
    settings: &Settings,
    dir: &Path,
    config: &Path,
    mock: &MockServer,
    idx: usize,
) -> Result<Worker> {
    let log = dir.join(format!("worker-{idx}.log"));
    let file = std::fs::File::create(&log).context("creating a worker log")?;
    let child = Command::new(&settings.binary)
        .current_dir(dir)
        .arg("--config")
        .arg(config)
        .arg("worker")
        .env_remove("DEPLOY_GATE_CONFIG_DIR")
        .env_remove("DEPLOY_GATE_ENV")
        .env("ANTHROPIC_BASE_URL", mock.anthropic_base_url())
        .env("ANTHROPIC_API_KEY", "sk-bench-not-a-real-key")
        .env("DEPLOY_GATE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(file.try_clone().context("cloning a log handle")?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {}", settings.binary.display()))?;
    Ok(Worker { child, log })
}

/// SIGTERM, a few seconds to drain, then SIGKILL.
fn stop(worker: &mut Worker) -> Result<()> {
    if worker.child.try_wait()?.is_some() {
        return Ok(());
    }
    let _ = Command::new("kill")
        .args(["-TERM", &worker.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if worker.child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    worker.child.kill().context("killing a worker")?;
    worker.child.wait().context("reaping a worker")?;
    Ok(())
}

/// Offers the load for the configured time and samples the mock every second.
async fn offer(
    settings: &Settings,
    base: &DeployContext,
    producer: &Producer,
    mock: &MockServer,
    workers: &mut [Worker],
    mode: Mode,
) -> Result<Measured> {
    let per_minute = f64::from(settings.rpm) * settings.offered;
    let period = Duration::from_secs_f64(60.0 / per_minute);
    let n_events = (per_minute * settings.secs as f64 / 60.0).round() as usize;
    let run_id = unique_prefix()?;
    let started = Instant::now();
    let mut next_sample = Duration::ZERO;
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut variant = 0usize;
    loop {
        if started.elapsed() >= next_sample {
            samples.push(mock.stats());
            next_sample += Duration::from_secs(1);
            for worker in workers.iter_mut() {
                if let Some(status) = worker.child.try_wait()? {
                    bail!(
                        "a worker exited during the run ({status}); its log: {}",
                        worker.log.display()
                    );
                }
            }
            if samples.len() > settings.secs as usize {
                break;
            }
        }
        ticker.tick().await;
        if variant < n_events {
            let event = event(base, &run_id, variant);
            producer
                .enqueue(&event, None)
                .await
                .with_context(|| format!("enqueueing event {variant}"))?;
            variant += 1;
        }
    }
    ensure!(
        samples.last().is_some_and(|s| s.n_requests > 0),
        "the mock received no request: the workers did not call the model (see their logs)"
    );
    Ok(Measured {
        mode,
        samples,
        n_offered: variant,
    })
}

/// Event `variant`: its own id, head and diff (so its own verdict cache key).
fn event(base: &DeployContext, run_id: &str, variant: usize) -> MergeEvent {
    let id = format!("{run_id}{variant}");
    common::varied_event(base, &id, variant, id.clone())
}

/// A prefix no other run uses: `bench-rl-<16 hex>-`.
fn unique_prefix() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("getrandom: {error}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("bench-rl-{hex}-"))
}
