//! Why the status page stopped.

use gate_bus::BusError;
use gate_orchestrator::WatchError;

/// What ends `deploy-gate dashboard` with an error. A broker that is down is not
/// one of them: the page says so and the feed keeps reconnecting.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A setting cannot work; the message names the key. Fix the configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading the decisions log failed in a way reconnecting cannot fix (access
    /// refused, the log is not a stream).
    #[error("reading the decisions log")]
    Log(#[source] WatchError),
    /// The broker refused the page for a reason reconnecting cannot fix (access
    /// refused, a queue declared with other arguments).
    #[error("the broker refused the status page")]
    Broker(#[source] BusError),
}

impl DashboardError {
    /// Whether the operator must change the configuration (exit 2) rather than
    /// the environment (exit 3).
    pub fn is_configuration(&self) -> bool {
        matches!(self, DashboardError::Config(_))
    }
}
