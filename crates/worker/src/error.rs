//! Why a worker stops with an error, and what its supervisor should do about it.

use std::net::SocketAddr;

use gate_bus::{BusError, StoreError};

/// A failure that stops [`run`](crate::run). Everything transient (a broker that
/// goes away, Redis down, a model outage, a bad message) is handled inside the
/// worker; what comes out here needs a person or a restart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// Settings that cannot work (zero concurrency, unordered bands, …).
    #[error("invalid worker settings: {0}")]
    InvalidSettings(String),
    /// The health endpoint could not listen on its address.
    #[error("cannot serve health checks on {addr}: {source}")]
    HealthListen {
        /// The configured `health_listen` address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The Redis settings cannot be used (an invalid URL; never the URL itself).
    #[error("cannot use the redis settings: {0}")]
    Redis(#[source] StoreError),
    /// The broker refused the worker in a way retrying cannot fix: access refused,
    /// or the topology declared with other arguments than the configured ones.
    #[error("the broker refused the worker: {0}")]
    Broker(#[source] BusError),
}

impl WorkerError {
    /// Whether the configuration or the deployment must change before the worker
    /// can run (exit with the configuration error code and do not restart in a
    /// loop). `false` means a plain restart may succeed (the health port was still
    /// held by a previous process).
    pub fn is_configuration(&self) -> bool {
        match self {
            WorkerError::HealthListen { source, .. } => {
                source.kind() != std::io::ErrorKind::AddrInUse
            }
            WorkerError::InvalidSettings(_) | WorkerError::Redis(_) | WorkerError::Broker(_) => {
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_health_port_is_worth_a_restart_and_bad_settings_are_not() {
        let held = WorkerError::HealthListen {
            addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert!(!held.is_configuration());
        assert!(WorkerError::InvalidSettings("concurrency".into()).is_configuration());
    }
}
