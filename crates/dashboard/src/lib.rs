//! deploy-gate's live status page (`deploy-gate dashboard`), for people without
//! Grafana: the last decisions (repository, commit, score, recommendation, top
//! risk, age) and the headline figures (decisions per minute, p95 decision time,
//! cost today, cache hit ratio, the events queue's depth), updating live.
//!
//! - The feed reads the `gate.decisions.log` stream through
//!   [`gate_orchestrator::watch`]: at start it replays the last
//!   [`DashboardSettings::replay`] decisions (and the whole UTC day, for today's
//!   sums), then follows; the events queue's depth comes from a passive declare
//!   ([`gate_bus::Bus::queue_depth`]).
//! - The board keeps what the page shows in bounded memory: a ring of the last
//!   decisions, a capped window of samples, running sums for the day.
//! - The server sends one self-contained page (inline style and script, no
//!   external asset: it works offline) and pushes snapshots to it over
//!   Server-Sent Events (`/events`); `/api/status` is the same snapshot as JSON.
//!
//! Architecture invariant: the page only reads. It consumes the log as a stream
//! reader (nothing is removed from it) and declares nothing on the broker.
//!
//! The latency figure is the decision time, from the merge event's `produced_at`
//! (carried in the Decision) to `decided_at`: queue wait included. Decisions of
//! workers that predate `produced_at` count their analysis time instead.

mod board;
mod error;
mod feed;
mod server;
mod settings;

use std::{future::Future, sync::Arc, time::Duration};

use gate_bus::BusSettings;
use gate_orchestrator::OrchestratorSettings;
use tokio::{net::TcpListener, sync::watch};

pub use error::DashboardError;
pub use settings::DashboardSettings;

/// What the status page reads from, besides its settings.
#[derive(Clone)]
pub struct DashboardDeps {
    /// The broker. A secret: never printed, logged or put in an error.
    pub amqp_url: String,
    /// Topology names (the decisions log, the events queue) and connecting.
    pub bus: BusSettings,
    /// How the log is read: prefetch, reconnection backoff.
    pub orchestrator: OrchestratorSettings,
}

/// Serves the status page on `listener` and feeds it from the broker until
/// `shutdown` resolves; then the live pages are closed and the log reader stops.
///
/// The page is served at once, also while the broker is unreachable (it says
/// so); the feed reconnects by itself. Errors: settings that cannot work, and
/// a broker that refuses the page for good (access refused).
pub async fn serve(
    settings: DashboardSettings,
    deps: DashboardDeps,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DashboardError> {
    settings.validate()?;
    deps.bus
        .topology
        .validate()
        .map_err(|error| DashboardError::Config(error.to_string()))?;
    let capacity = settings.replay.min(settings::MAX_REPLAY);
    let shared = feed::Shared::new(board::Board::new(
        capacity,
        &deps.bus.topology.decisions_log,
        &deps.bus.topology.events_queue,
    ));
    let (stop_tx, stop) = watch::channel(false);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "status page listening");
    }
    let app = Arc::new(server::App {
        shared: Arc::clone(&shared),
        stop: stop.clone(),
    });
    let serving = tokio::spawn(server::serve(
        listener,
        app,
        settings.max_connections,
        Duration::from_millis(settings.header_timeout_ms),
    ));
    let fed = {
        let feeding = feed::follow(&deps, &settings, &shared, stop.clone());
        tokio::pin!(shutdown);
        tokio::pin!(feeding);
        tokio::select! {
            () = &mut shutdown => {
                let _ = stop_tx.send(true);
                feeding.await
            }
            fed = &mut feeding => {
                let _ = stop_tx.send(true);
                fed
            }
        }
    };
    let _ = serving.await;
    fed
}
