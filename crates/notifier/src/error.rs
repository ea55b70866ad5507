//! The notifier's errors: only what stops it. Everything that goes wrong with one
//! notification (a target down, a bad payload) ends in a retry or a dead letter
//! with the reason, never in an error of [`run`](crate::run).

use gate_bus::{BusError, StoreError};

/// What the caller of [`run`](crate::run) should do about a [`NotifierError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// A setting, an environment variable or the broker's topology is wrong:
    /// restarting with the same configuration fails the same way. Exit with the
    /// configuration-error code and let a person look.
    FixConfiguration,
    /// Something failed that a restart may fix (a supervisor should restart the
    /// process with backoff).
    Restart,
}

/// Why the notifier stopped (or could not start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifierError {
    /// Settings that cannot work (no channels, zero attempts, a bad header name).
    #[error("invalid notifier settings: {0}")]
    InvalidSettings(String),
    /// A channel's URL or secret header is not in the environment.
    #[error("notify.channels.{channel}: environment variable {var} is not set")]
    MissingEnv {
        /// The channel.
        channel: String,
        /// The variable that should hold the secret.
        var: String,
    },
    /// A channel's URL is not an absolute http(s) URL. The URL itself is a secret
    /// and is not included.
    #[error("notify.channels.{channel}: the value of {var} is not an absolute http(s) URL")]
    InvalidUrl {
        /// The channel.
        channel: String,
        /// The variable holding the URL.
        var: String,
    },
    /// A secret header's value has characters HTTP does not allow.
    #[error("notify.channels.{channel}: the value of {var} is not a valid HTTP header value")]
    InvalidHeader {
        /// The channel.
        channel: String,
        /// The variable holding the value.
        var: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
    /// The broker refused something retrying cannot fix (access refused, a queue
    /// declared with other arguments, bad topology settings).
    #[error("the broker refused the notifier: {0}")]
    Bus(#[source] BusError),
    /// The Redis URL cannot be used.
    #[error("redis: {0}")]
    Redis(#[source] StoreError),
}

impl NotifierError {
    /// What to do about it.
    pub fn remedy(&self) -> Remedy {
        match self {
            NotifierError::InvalidSettings(_)
            | NotifierError::MissingEnv { .. }
            | NotifierError::InvalidUrl { .. }
            | NotifierError::InvalidHeader { .. }
            | NotifierError::Bus(_)
            | NotifierError::Redis(_) => Remedy::FixConfiguration,
            NotifierError::HttpClient(_) => Remedy::Restart,
        }
    }
}
