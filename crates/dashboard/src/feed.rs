//! Feeding the board: where the replay starts, the decisions log followed with
//! [`gate_orchestrator::watch`] (which reconnects and resumes by itself), and the
//! events queue's depth polled from the broker.

use std::{
    ops::ControlFlow,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use gate_bus::{Action, Bus, BusError, BusSettings, StreamOffset};
use gate_orchestrator::{OrchestratorDeps, WatchFilter, WatchFrom, Watched};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::{
    board::{Board, Snapshot},
    DashboardDeps, DashboardError, DashboardSettings,
};

/// How long a probe of the log waits for its first entry: an empty log (or no
/// decision since midnight) answers nothing, and this is what that costs at start.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// The pause before probing again after the broker failed a probe.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The board and the signal that it changed, shared by the feed and every page.
pub(crate) struct Shared {
    board: Mutex<Board>,
    changed: watch::Sender<u64>,
}

impl Shared {
    pub(crate) fn new(board: Board) -> Arc<Shared> {
        Arc::new(Shared {
            board: Mutex::new(board),
            changed: watch::Sender::new(0),
        })
    }

    /// Changes the board and tells the live pages.
    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut Board) -> T) -> T {
        let result = change(&mut self.board.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
        result
    }

    /// What the page shows now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot(OffsetDateTime::now_utc())
    }

    /// Notified at every change (a version number; only "it changed" matters).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Resolves once `stop` is raised (or its sender is gone).
pub(crate) async fn raised(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Replays the recent decisions, then follows the log and polls the queue depth,
/// until `stop` is raised. Broker outages are waited out; only what reconnecting
/// cannot fix returns an error.
pub(crate) async fn follow(
    deps: &DashboardDeps,
    settings: &DashboardSettings,
    shared: &Shared,
    stop: watch::Receiver<bool>,
) -> Result<(), DashboardError> {
    let polling = poll_queue(deps, settings, shared, stop.clone());
    let reading = read_log(deps, settings, shared, stop.clone());
    tokio::pin!(polling, reading);
    // Reading ends at the stop or with an error that ends the page; polling
    // only at the stop.
    tokio::select! {
        read = &mut reading => read,
        () = &mut polling => reading.await,
    }
}

async fn read_log(
    deps: &DashboardDeps,
    settings: &DashboardSettings,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DashboardError> {
    let Some((from, tail)) = replay_start(deps, settings.replay, &mut stop).await? else {
        return Ok(());
    };
    shared.update(|board| board.set_replay_tail(tail));
    tracing::info!(?from, ?tail, "reading the decisions log");
    let orchestrator = OrchestratorDeps::new(
        deps.amqp_url.clone(),
        deps.bus.clone(),
        None,
        deps.orchestrator.clone(),
    );
    let mut watch_stop = stop.clone();
    gate_orchestrator::watch(
        &orchestrator,
        WatchFilter::default(),
        from,
        |watched: Watched| {
            shared.update(|board| {
                board.add(&watched.decision, watched.offset, OffsetDateTime::now_utc())
            });
            ControlFlow::Continue(())
        },
        async move { raised(&mut watch_stop).await },
    )
    .await
    .map(|_| ())
    .map_err(DashboardError::Log)
}

/// Where to start reading so that the page lists the last `replay` decisions and
/// today's sums cover the whole UTC day; with the log's tail at start (`None`
/// for an empty log). `None` when stopped first. Waits out broker outages.
async fn replay_start(
    deps: &DashboardDeps,
    replay: usize,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<(WatchFrom, Option<u64>)>, DashboardError> {
    // Retries until connected (the bus's own backoff); only a refusal returns.
    let forever = BusSettings {
        connect_attempts: 0,
        ..deps.bus.clone()
    };
    loop {
        let bus = tokio::select! {
            biased;
            () = raised(stop) => return Ok(None),
            bus = Bus::connect(&deps.amqp_url, forever.clone()) => bus.map_err(DashboardError::Broker)?,
        };
        let probed = probe(&bus, &deps.bus.topology.decisions_log, replay).await;
        let _ = bus.close().await;
        match probed {
            Ok(start) => return Ok(Some(start)),
            Err(error) if error.action() == Action::Fail => {
                return Err(DashboardError::Broker(error))
            }
            Err(error) => tracing::warn!(%error, "cannot read the decisions log yet; retrying"),
        }
        tokio::select! {
            biased;
            () = raised(stop) => return Ok(None),
            () = tokio::time::sleep(RETRY_PAUSE) => {}
        }
    }
}

async fn probe(bus: &Bus, log: &str, replay: usize) -> Result<(WatchFrom, Option<u64>), BusError> {
    // The first entry of the last chunk: the tail is at or just after it.
    let Some(tail) = first_offset(bus, log, StreamOffset::Last).await? else {
        return Ok((WatchFrom::Beginning, None));
    };
    let last_n = tail.saturating_sub(u64::try_from(replay).unwrap_or(u64::MAX));
    let midnight = OffsetDateTime::now_utc()
        .replace_time(time::Time::MIDNIGHT)
        .unix_timestamp();
    let since = StreamOffset::Since(u64::try_from(midnight).unwrap_or(0));
    let today = first_offset(bus, log, since).await?;
    let start = today.map_or(last_n, |today| today.min(last_n));
    Ok((WatchFrom::Offset(start), Some(tail)))
}

/// The offset of the first entry a stream consumer starting at `from` receives;
/// `None` when none comes within [`PROBE_WAIT`]. Nothing is acked: the probe's
/// channel closes with its consumer.
async fn first_offset(bus: &Bus, log: &str, from: StreamOffset) -> Result<Option<u64>, BusError> {
    let mut consumer = bus.consume_stream(log, 1, from).await?;
    let offset = match tokio::time::timeout(PROBE_WAIT, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery.stream_offset(),
        Ok(Some(Err(error))) => return Err(error),
        Ok(None) | Err(_) => None,
    };
    let _ = consumer.cancel().await;
    Ok(offset)
}

/// Polls the events queue's depth every `queue_poll_ms` on a connection of its
/// own, reconnecting when it is lost; failures are shown on the page.
async fn poll_queue(
    deps: &DashboardDeps,
    settings: &DashboardSettings,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) {
    let queue = deps.bus.topology.events_queue.clone();
    let mut bus: Option<Bus> = None;
    loop {
        if bus.as_ref().is_some_and(|bus| !bus.is_connected()) {
            bus = None;
        }
        if bus.is_none() {
            match connect_once(deps).await {
                Ok(connected) => bus = Some(connected),
                Err(error) => {
                    let text = format!("broker unreachable: {error}");
                    shared.update(|board| board.set_queue(Err(text), OffsetDateTime::now_utc()));
                }
            }
        }
        if let Some(connected) = &bus {
            let depth = connected
                .queue_depth(&queue)
                .await
                .map(|depth| (depth.messages, depth.consumers))
                .map_err(|error| error.to_string());
            shared.update(|board| board.set_queue(depth, OffsetDateTime::now_utc()));
        }
        tokio::select! {
            biased;
            () = raised(&mut stop) => break,
            () = tokio::time::sleep(Duration::from_millis(settings.queue_poll_ms)) => {}
        }
    }
    if let Some(bus) = bus {
        let _ = bus.close().await;
    }
}

/// One attempt: the callers retry on their own schedule, so that they can stop.
async fn connect_once(deps: &DashboardDeps) -> Result<Bus, BusError> {
    let settings = BusSettings {
        connect_attempts: 1,
        ..deps.bus.clone()
    };
    Bus::connect(&deps.amqp_url, settings).await
}
