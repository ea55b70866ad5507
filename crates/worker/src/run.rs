//! The worker's life: connect (with backoff, for ever), consume with a bounded
//! number of deliveries in flight, reconnect when the broker goes away, and shut
//! down in two phases when asked.

use std::{
    collections::hash_map::RandomState,
    future::Future,
    hash::{BuildHasher, Hasher},
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use gate_bus::{Action, Bus, BusError, Consumer, Redis};
use gate_models::Rules;
use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
    task::JoinSet,
};

use crate::{
    health::{self, Health, Readiness},
    locks::KeyedLocks,
    process::{self, Shared},
    stats::Counter,
    stores::Stores,
    WorkerDeps, WorkerError, WorkerSettings,
};

/// How long requeueing the abandoned deliveries may take after the shutdown
/// deadline, before the connection is closed anyway (which requeues them too).
const FORCE_WAIT: Duration = Duration::from_secs(5);
/// How long, after cancelling the consumer, deliveries the broker had already
/// sent are drained from it and requeued.
const CANCEL_DRAIN: Duration = Duration::from_secs(2);
/// How often a worker asks the broker for its queues' depth and consumers.
const QUEUE_POLL: Duration = Duration::from_secs(15);

/// Exports the events queue's and the dead-letter queue's depth and consumers
/// (`deploy_gate_queue_messages`, `deploy_gate_queue_consumers`). A failed look
/// is only logged: the next tick tries again.
async fn observe_queues(bus: &Bus) {
    let topology = &bus.settings().topology;
    for queue in [&topology.events_queue, &topology.dead_letter_queue] {
        match bus.queue_depth(queue).await {
            Ok(depth) => gate_telemetry::events::QueueObserved {
                queue,
                messages: depth.messages,
                consumers: depth.consumers,
            }
            .emit(),
            Err(error) => tracing::debug!(%queue, %error, "cannot read the queue's depth"),
        }
    }
}

/// A session that lasted this long was healthy: after losing it, reconnect at
/// once instead of backing off.
const HEALTHY_SESSION: Duration = Duration::from_secs(5);

/// Runs a worker until `shutdown` resolves, then stops consuming, lets in-flight
/// events finish for up to `shutdown_grace_secs`, requeues the rest, closes the
/// connection and returns `Ok`.
///
/// Broker and Redis outages are not errors: the worker reconnects to the broker
/// with backoff for ever (readiness says so meanwhile) and decides without Redis
/// until it returns. An error means the settings or the deployment must change
/// (see [`WorkerError::is_configuration`]).
pub async fn run(
    settings: WorkerSettings,
    deps: WorkerDeps,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    settings.validate()?;
    deps.bands
        .validate()
        .map_err(|e| WorkerError::InvalidSettings(e.to_string()))?;
    if deps.consensus.on_analysis_error == gate_core::Recommendation::Deploy {
        return Err(WorkerError::InvalidSettings(
            "consensus.on_analysis_error must be hold or block: a failed analysis never deploys"
                .to_string(),
        ));
    }
    let WorkerDeps {
        amqp_url,
        mut bus,
        redis_url,
        mut redis,
        analyzers,
        bands,
        consensus,
        policy_version,
        policy,
        stats,
    } = deps;
    // The policy's own bands and failed-analysis outcome win, as in the binary.
    let bands = policy.bands().unwrap_or(bands);
    let mut consensus = consensus;
    if let Some(on_error) = policy.on_analysis_error() {
        consensus.on_analysis_error = on_error;
    }
    redis.decision_ttl_secs = settings.decision_ttl_secs;
    redis.verdict_ttl_secs = settings.verdict_ttl_secs;
    // The worker does its own backoff around single attempts, so that it can stop
    // waiting when asked to shut down and report each attempt on /readyz.
    bus.connect_attempts = 1;

    let listener = match settings.health_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| WorkerError::HealthListen { addr, source })?,
        ),
        None => None,
    };
    let redis = Redis::open(&redis_url, redis).map_err(WorkerError::Redis)?;
    // The providers' rate limits are the fleet's (README "Fleet-wide rate limits").
    crate::fleet_limits::share_fleet_limits(
        &redis,
        Duration::from_millis(settings.redis_retry_interval_ms.max(1)),
        &analyzers,
    );
    let outcome_store = redis.outcome_store();
    let stores = Stores::new(
        &redis,
        Duration::from_millis(settings.redis_retry_interval_ms.max(1)),
        stats.clone(),
    );
    let shared = Arc::new(Shared {
        model_set: Shared::model_set(&analyzers),
        analyzers,
        rules: Rules::new(bands),
        bands,
        consensus,
        policy_version,
        policy,
        notify: settings.notify.clone(),
        stores,
        stats,
        event_locks: KeyedLocks::default(),
        verdict_locks: KeyedLocks::default(),
    });

    let health = Arc::new(Health::new());
    let (stop_health, health_stopped) = watch::channel(false);
    let health_server = listener
        .map(|listener| tokio::spawn(health::serve(listener, Arc::clone(&health), health_stopped)));

    let supervisor = Supervisor {
        semaphore: Arc::new(Semaphore::new(usize::from(settings.concurrency))),
        settings,
        amqp_url,
        bus_settings: bus,
        shared,
        outcome_store,
        health,
        tasks: JoinSet::new(),
        force: watch::channel(false).0,
    };
    let result = supervisor.run(shutdown).await;

    let _ = stop_health.send(true);
    if let Some(server) = health_server {
        let _ = server.await;
    }
    result
}

/// Why a session (one connection) ended.
enum SessionEnd {
    /// Shutdown was asked for; the consumer is cancelled, the bus still open.
    Shutdown,
    /// The connection or the subscription was lost: connect again.
    Lost(String),
    /// The broker refused something retrying cannot fix.
    Fatal(BusError),
}

struct Supervisor {
    settings: WorkerSettings,
    amqp_url: String,
    bus_settings: gate_bus::BusSettings,
    shared: Arc<Shared>,
    /// Where the outcome consumer stores orchestrators' reports.
    outcome_store: gate_bus::OutcomeStore,
    health: Arc<Health>,
    /// One permit per delivery in flight, across sessions: work of a lost
    /// connection still counts until it ends.
    semaphore: Arc<Semaphore>,
    tasks: JoinSet<()>,
    /// Turns true when the shutdown deadline passes: tasks requeue and stop.
    force: watch::Sender<bool>,
}

impl Supervisor {
    async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), WorkerError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let random = RandomState::new();
        let mut failed_attempts = 0u32;
        let mut last_error: Option<String> = None;
        let mut connected_before = false;
        loop {
            self.health.set(Readiness::Connecting {
                attempt: failed_attempts.saturating_add(1),
                last_error: last_error.clone(),
            });
            let connected = tokio::select! {
                biased;
                () = shutdown.as_mut() => None,
                connected = Bus::connect(&self.amqp_url, self.bus_settings.clone()) => Some(connected),
            };
            let bus = match connected {
                None => return self.finish(None).await,
                Some(Ok(bus)) => bus,
                Some(Err(error)) if error.action() == Action::Fail => {
                    tracing::error!(error = %error, "the broker refused the worker");
                    self.finish(None).await?;
                    return Err(WorkerError::Broker(error));
                }
                Some(Err(error)) => {
                    tracing::warn!(error = %error, attempt = failed_attempts.saturating_add(1), "cannot connect to the broker");
                    last_error = Some(error.to_string());
                    failed_attempts = failed_attempts.saturating_add(1);
                    if self
                        .back_off(failed_attempts, &random, shutdown.as_mut())
                        .await
                    {
                        return self.finish(None).await;
                    }
                    continue;
                }
            };
            if connected_before {
                self.shared.stats.count(Counter::Reconnects);
                tracing::info!("reconnected to the broker");
            }
            connected_before = true;

            let session_started = Instant::now();
            match self.session(&bus, shutdown.as_mut()).await {
                SessionEnd::Shutdown => return self.finish(Some(bus)).await,
                SessionEnd::Lost(reason) => {
                    tracing::warn!(reason = %reason, "lost the broker: reconnecting; unacked events will be redelivered");
                    last_error = Some(reason);
                    let _ = bus.close().await;
                    drop(bus);
                    // A session that ends as soon as it starts must not make the
                    // worker spin: back off as after a failed attempt. After a
                    // healthy session, reconnect at once.
                    if session_started.elapsed() >= HEALTHY_SESSION {
                        failed_attempts = 0;
                    } else {
                        failed_attempts = failed_attempts.saturating_add(1);
                        if self
                            .back_off(failed_attempts, &random, shutdown.as_mut())
                            .await
                        {
                            return self.finish(None).await;
                        }
                    }
                }
                SessionEnd::Fatal(error) => {
                    tracing::error!(error = %error, "the broker refused the worker");
                    self.finish(Some(bus)).await?;
                    return Err(WorkerError::Broker(error));
                }
            }
        }
    }

    /// Waits before the next connection attempt; true when shutdown came first.
    async fn back_off(
        &self,
        failed_attempts: u32,
        random: &RandomState,
        shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let mut hasher = random.build_hasher();
        hasher.write_u32(failed_attempts);
        let wait = self
            .settings
            .reconnect_backoff(failed_attempts, hasher.finish());
        tracing::debug!(
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "waiting before reconnecting"
        );
        tokio::select! {
            biased;
            () = shutdown => true,
            () = tokio::time::sleep(wait) => false,
        }
    }

    /// Consumes on one connection until shutdown or loss.
    async fn session(
        &mut self,
        bus: &Bus,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> SessionEnd {
        let lost_or_fatal = |error: BusError| {
            if error.action() == Action::Fail {
                SessionEnd::Fatal(error)
            } else {
                SessionEnd::Lost(error.to_string())
            }
        };
        let queue = bus.settings().topology.events_queue.clone();
        let publisher = match bus.publisher().await {
            Ok(publisher) => publisher,
            Err(error) => return lost_or_fatal(error),
        };
        let mut consumer = match bus.consume(&queue, self.settings.concurrency).await {
            Ok(consumer) => consumer,
            Err(error) => return lost_or_fatal(error),
        };
        // Outcome reports, stored beside the decisions; stops when this session ends.
        let _outcomes = match crate::outcomes::start(
            bus,
            self.outcome_store.clone(),
            self.shared.stats.clone(),
        )
        .await
        {
            Ok(task) => task,
            Err(error) => return lost_or_fatal(error),
        };
        self.health.set(Readiness::Consuming {
            queue: queue.clone(),
        });
        tracing::info!(queue = %queue, concurrency = self.settings.concurrency, "consuming");

        let closed = bus.closed();
        tokio::pin!(closed);
        // Queue depth and consumers, from the broker, for /metrics and OTLP.
        let mut queue_poll = tokio::time::interval(QUEUE_POLL);
        queue_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.reap();
            // A permit first: with prefetch = concurrency the broker never sends
            // more than can be worked on, and a slow model slows the intake.
            let permit = tokio::select! {
                biased;
                () = shutdown.as_mut() => return self.stop_consuming(consumer).await,
                () = closed.as_mut() => return SessionEnd::Lost("the connection to the broker closed".to_string()),
                permit = Arc::clone(&self.semaphore).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return SessionEnd::Lost("the worker's semaphore closed".to_string()),
                },
            };
            let next = tokio::select! {
                biased;
                () = shutdown.as_mut() => return self.stop_consuming(consumer).await,
                () = closed.as_mut() => return SessionEnd::Lost("the connection to the broker closed".to_string()),
                _ = queue_poll.tick() => {
                    observe_queues(bus).await;
                    continue;
                }
                next = consumer.next() => next,
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                // The subscription worked until now: whatever broke it, a new
                // connection is the cure (never a reason to stop the worker).
                Some(Err(error)) => return SessionEnd::Lost(error.to_string()),
                None => {
                    return SessionEnd::Lost(format!(
                        "the subscription to {queue} ended (channel closed or queue deleted)"
                    ))
                }
            };
            self.tasks.spawn(process::handle(
                Arc::clone(&self.shared),
                publisher.clone(),
                delivery,
                permit,
                self.force.subscribe(),
            ));
        }
    }

    /// The first phase of a shutdown: no new deliveries. Deliveries the broker had
    /// already pushed but no task has taken go straight back to the queue, so
    /// other workers get them now rather than when this one closes.
    async fn stop_consuming(&mut self, mut consumer: Consumer) -> SessionEnd {
        self.health.set(Readiness::ShuttingDown);
        tracing::info!("shutting down: cancelling the consumer");
        if let Err(error) = consumer.cancel().await {
            tracing::warn!(error = %error, "could not cancel the consumer; closing the connection will stop it");
            return SessionEnd::Shutdown;
        }
        let drained = tokio::time::timeout(CANCEL_DRAIN, async {
            while let Some(Ok(delivery)) = consumer.next().await {
                self.shared.stats.count(Counter::Requeued);
                let _ = delivery.requeue().await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("the broker did not confirm the consumer's cancel in time");
        }
        SessionEnd::Shutdown
    }

    /// The second phase: let in-flight events finish until the grace deadline,
    /// then make the rest requeue, then close the connection.
    async fn finish(mut self, bus: Option<Bus>) -> Result<(), WorkerError> {
        self.health.set(Readiness::ShuttingDown);
        let grace = Duration::from_secs(self.settings.shutdown_grace_secs);
        let n_in_flight = self.tasks.len();
        if n_in_flight > 0 {
            tracing::info!(
                n_in_flight,
                grace_secs = grace.as_secs(),
                "waiting for in-flight events"
            );
        }
        let tasks = &mut self.tasks;
        let finished =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if finished.is_err() {
            tracing::warn!(
                n_left = self.tasks.len(),
                "shutdown deadline passed: requeueing the events still in flight"
            );
            let _ = self.force.send(true);
            let tasks = &mut self.tasks;
            let requeued = tokio::time::timeout(FORCE_WAIT, async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            if requeued.is_err() {
                // Closing the connection returns whatever is still unacked.
                self.tasks.shutdown().await;
            }
        }
        if let Some(bus) = bus {
            if let Err(error) = bus.close().await {
                tracing::warn!(error = %error, "closing the broker connection failed; the broker requeues unacked events anyway");
            }
        }
        tracing::info!("worker stopped");
        Ok(())
    }

    /// Collects finished tasks, so the set holds only work in flight.
    fn reap(&mut self) {
        while let Some(joined) = self.tasks.try_join_next() {
            if let Err(error) = joined {
                if error.is_panic() {
                    tracing::error!("a delivery task panicked outside its guarded section (a bug)");
                }
            }
        }
    }
}
