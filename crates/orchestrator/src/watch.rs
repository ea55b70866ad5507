//! Watching every decision as it is made, or replayed from the decisions log, for
//! orchestrators that follow the fleet rather than one merge (and for
//! `deploy-gate watch`, which prints them as JSON lines for other languages).
//!
//! The source is the `gate.decisions.log` stream, not a private queue: a stream
//! keeps every decision whether or not anyone listens, so a watcher that was down
//! resumes where it stopped ([`WatchEnd::next_offset`], [`WatchFrom::Offset`]) and
//! misses nothing.

use std::{future::Future, ops::ControlFlow, pin::Pin, time::SystemTime};

use gate_bus::{Action, Bus, BusError, Consumer, Delivery, StreamOffset};
use gate_core::Decision;
use tokio::time::Instant;
use tracing::warn;

use crate::{
    deps::{close_quietly, OrchestratorDeps},
    WatchError,
};

/// Which decisions to hand over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchFilter {
    /// Only this repository's decisions (compared without ASCII case); all when
    /// `None`.
    pub repo: Option<String>,
}

impl WatchFilter {
    fn matches(&self, decision: &Decision) -> bool {
        self.repo
            .as_ref()
            .is_none_or(|repo| decision.repo.eq_ignore_ascii_case(repo))
    }
}

/// Where in the decisions log to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFrom {
    /// Only decisions made after the watch starts.
    Now,
    /// Every decision the log still keeps (30 days by default): a replay.
    Beginning,
    /// From this offset on, e.g. a previous watch's [`WatchEnd::next_offset`].
    Offset(u64),
    /// Decisions logged since this time. The log is indexed in chunks, so a few
    /// decisions from shortly before may come too.
    Timestamp(time::OffsetDateTime),
}

impl WatchFrom {
    fn stream_offset(self) -> StreamOffset {
        match self {
            WatchFrom::Now => StreamOffset::Next,
            WatchFrom::Beginning => StreamOffset::First,
            WatchFrom::Offset(offset) => StreamOffset::Offset(offset),
            WatchFrom::Timestamp(at) => {
                StreamOffset::Since(u64::try_from(at.unix_timestamp()).unwrap_or(0))
            }
        }
    }
}

/// One decision from the log, with where it is in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    /// The decision (a person's decision has `approval` set and supersedes the
    /// automatic one for the same event, which came earlier in the log).
    pub decision: Decision,
    /// Its offset in the log; resume after it with `WatchFrom::Offset(offset + 1)`.
    /// `None` only if the broker did not say (it always does for a stream).
    pub offset: Option<u64>,
}

/// Why a watch returned normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStop {
    /// The shutdown future resolved.
    Shutdown,
    /// The handler returned [`ControlFlow::Break`].
    Handler,
}

/// How a watch ended and where to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEnd {
    /// What stopped it.
    pub stopped_by: WatchStop,
    /// Decisions handed to the handler (after the repository filter).
    pub n_decisions: u64,
    /// Log entries that were not decisions this build reads (logged, skipped).
    pub n_skipped: u64,
    /// The offset after the last entry read: pass it as [`WatchFrom::Offset`] to
    /// resume without missing or repeating anything. `None` if nothing was read
    /// and the watch did not start from an offset.
    pub next_offset: Option<u64>,
}

/// Hands every decision of the log that passes `filter` to `on_decision`, from
/// `from` on, until `shutdown` resolves or the handler breaks.
///
/// The log is read by a stream consumer (`x-stream-offset`, manual acks, the
/// configured prefetch); a decision is acked after the handler returned. When the
/// connection is lost the watch reconnects with backoff and resumes after the
/// last entry it read, so nothing is skipped; if it had read nothing yet after
/// starting from [`WatchFrom::Now`], it resumes from its start time, which may
/// repeat a few decisions made just before it started.
///
/// Shutdown has two phases: the consumer is cancelled (no new decisions are
/// taken), then the decisions already received are handed over until
/// `watch_drain_ms` passes. Only errors that retrying cannot fix end a watch with
/// an error.
pub async fn watch<F>(
    deps: &OrchestratorDeps,
    filter: WatchFilter,
    from: WatchFrom,
    mut on_decision: F,
    shutdown: impl Future<Output = ()>,
) -> Result<WatchEnd, WatchError>
where
    F: FnMut(Watched) -> ControlFlow<()>,
{
    let mut state = WatchState {
        position: from.stream_offset(),
        from_now: from == WatchFrom::Now,
        started_at: unix_now(),
        next_offset: match from {
            WatchFrom::Offset(offset) => Some(offset),
            _ => None,
        },
        n_decisions: 0,
        n_skipped: 0,
    };
    tokio::pin!(shutdown);
    let mut n_failures = 0u32;
    loop {
        let connected = tokio::select! {
            biased;
            () = &mut shutdown => return Ok(state.end(WatchStop::Shutdown)),
            connected = deps.connect_once() => connected,
        };
        let error = match connected {
            Ok(bus) => {
                let read = read_log(
                    deps,
                    &bus,
                    &filter,
                    &mut on_decision,
                    &mut state,
                    shutdown.as_mut(),
                )
                .await;
                close_quietly(&bus).await;
                match read {
                    Ok(stop) => return Ok(state.end(stop)),
                    Err(Interrupted::Lost(what)) => {
                        warn!(what, "lost the decisions log; connecting again");
                        n_failures = 0;
                        None
                    }
                    Err(Interrupted::Bus(error)) => Some(error),
                }
            }
            Err(error) => Some(error),
        };
        if let Some(error) = error {
            if error.action() == Action::Fail {
                return Err(WatchError::Bus(error));
            }
            warn!(%error, "cannot read the decisions log; connecting again");
        }
        state.prepare_resume();
        n_failures = n_failures.saturating_add(1);
        tokio::select! {
            biased;
            () = &mut shutdown => return Ok(state.end(WatchStop::Shutdown)),
            () = tokio::time::sleep(deps.backoff(n_failures)) => {}
        }
    }
}

/// Why one connection's reading ended without a stop.
enum Interrupted {
    Bus(BusError),
    Lost(&'static str),
}

impl From<BusError> for Interrupted {
    fn from(error: BusError) -> Self {
        Interrupted::Bus(error)
    }
}

struct WatchState {
    /// Where the next consumer starts.
    position: StreamOffset,
    from_now: bool,
    started_at: u64,
    /// The offset after the last entry read; entries below it are repeats.
    next_offset: Option<u64>,
    n_decisions: u64,
    n_skipped: u64,
}

impl WatchState {
    fn end(&self, stopped_by: WatchStop) -> WatchEnd {
        WatchEnd {
            stopped_by,
            n_decisions: self.n_decisions,
            n_skipped: self.n_skipped,
            next_offset: self.next_offset,
        }
    }

    /// Where to start again after losing the connection.
    fn prepare_resume(&mut self) {
        if let Some(offset) = self.next_offset {
            self.position = StreamOffset::Offset(offset);
        } else if self.from_now {
            self.position = StreamOffset::Since(self.started_at);
        }
    }

    /// Hands one log entry to the handler (if it is a decision that passes the
    /// filter and not a repeat), then acks it.
    async fn take<F>(
        &mut self,
        delivery: Delivery,
        filter: &WatchFilter,
        on_decision: &mut F,
    ) -> Result<ControlFlow<()>, BusError>
    where
        F: FnMut(Watched) -> ControlFlow<()>,
    {
        let offset = delivery.stream_offset();
        let repeat =
            matches!((offset, self.next_offset), (Some(offset), Some(next)) if offset < next);
        let mut flow = ControlFlow::Continue(());
        if !repeat {
            match delivery.decision() {
                Ok(decision) if filter.matches(&decision) => {
                    self.n_decisions += 1;
                    let span = crate::received_span(&decision, delivery.traceparent());
                    flow = span.in_scope(|| on_decision(Watched { decision, offset }));
                }
                Ok(_) => {}
                Err(rejection) => {
                    self.n_skipped += 1;
                    warn!(?offset, %rejection, "skipping a log entry that is not a decision this build reads");
                }
            }
            if let Some(offset) = offset {
                self.next_offset = Some(offset.saturating_add(1));
            }
        }
        let acked = delivery.ack().await;
        match (flow, acked) {
            (ControlFlow::Break(()), _) => Ok(ControlFlow::Break(())),
            (flow, Ok(())) => Ok(flow),
            (_, Err(error)) => Err(error),
        }
    }
}

async fn read_log<F, S>(
    deps: &OrchestratorDeps,
    bus: &Bus,
    filter: &WatchFilter,
    on_decision: &mut F,
    state: &mut WatchState,
    mut shutdown: Pin<&mut S>,
) -> Result<WatchStop, Interrupted>
where
    F: FnMut(Watched) -> ControlFlow<()>,
    S: Future<Output = ()>,
{
    let log = &deps.bus_settings().topology.decisions_log;
    let mut consumer = bus
        .consume_stream(log, deps.settings().prefetch, state.position)
        .await?;
    let closed = bus.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            () = shutdown.as_mut() => {
                return drain(deps, consumer, filter, on_decision, state).await;
            }
            item = consumer.next() => match item {
                Some(Ok(delivery)) => {
                    if state.take(delivery, filter, on_decision).await?.is_break() {
                        return Ok(WatchStop::Handler);
                    }
                }
                Some(Err(error)) => return Err(error.into()),
                None => return Err(Interrupted::Lost("the log consumer ended")),
            },
            () = &mut closed => return Err(Interrupted::Lost("the connection closed")),
        }
    }
}

/// The second phase of shutdown: no new entries, hand over those already
/// received until the drain deadline.
async fn drain<F>(
    deps: &OrchestratorDeps,
    mut consumer: Consumer,
    filter: &WatchFilter,
    on_decision: &mut F,
    state: &mut WatchState,
) -> Result<WatchStop, Interrupted>
where
    F: FnMut(Watched) -> ControlFlow<()>,
{
    if let Err(error) = consumer.cancel().await {
        warn!(%error, "could not cancel the log consumer; stopping without draining");
        return Ok(WatchStop::Shutdown);
    }
    let deadline =
        Instant::now() + std::time::Duration::from_millis(deps.settings().watch_drain_ms);
    loop {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(Ok(delivery))) => match state.take(delivery, filter, on_decision).await {
                Ok(ControlFlow::Break(())) => return Ok(WatchStop::Handler),
                Ok(ControlFlow::Continue(())) => {}
                Err(_) => return Ok(WatchStop::Shutdown),
            },
            Ok(Some(Err(_)) | None) | Err(_) => return Ok(WatchStop::Shutdown),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_positions_map_to_stream_offsets() {
        assert_eq!(WatchFrom::Now.stream_offset(), StreamOffset::Next);
        assert_eq!(WatchFrom::Beginning.stream_offset(), StreamOffset::First);
        assert_eq!(
            WatchFrom::Offset(7).stream_offset(),
            StreamOffset::Offset(7)
        );
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid time");
        assert_eq!(
            WatchFrom::Timestamp(at).stream_offset(),
            StreamOffset::Since(1_700_000_000)
        );
    }

    #[test]
    fn a_watch_resumes_after_the_last_entry_it_read() {
        let mut state = WatchState {
            position: StreamOffset::Next,
            from_now: true,
            started_at: 1_000,
            next_offset: None,
            n_decisions: 0,
            n_skipped: 0,
        };
        state.prepare_resume();
        assert_eq!(state.position, StreamOffset::Since(1_000));
        state.next_offset = Some(42);
        state.prepare_resume();
        assert_eq!(state.position, StreamOffset::Offset(42));
    }
}
