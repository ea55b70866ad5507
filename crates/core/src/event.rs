//! Merge events: the unit of work that enters the fleet.

use serde::{Deserialize, Serialize};

use crate::DeployContext;

/// The MergeEvent schema version this build reads and writes.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// A merge to a deploy branch that needs a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeEvent {
    /// Always [`EVENT_SCHEMA_VERSION`] for events this build produces.
    pub schema_version: u32,
    /// Idempotency key: one decision per event id.
    pub event_id: String,
    /// Repository name.
    pub repo: String,
    /// Base commit of the range.
    pub base: String,
    /// Head commit of the range.
    pub head: String,
    /// The branch or ref the merge landed on, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// When the producer built the event (RFC 3339).
    pub produced_at: String,
    /// Who produced it: `cli`, `webhook`, or a bus's own name.
    pub source: String,
    /// The change itself, already redacted and packed.
    pub context: DeployContext,
}

/// A payload that is not a MergeEvent this build can handle.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed merge event: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A schema version this build does not know.
    #[error(
        "unknown merge event schema_version {found} (this build reads {EVENT_SCHEMA_VERSION})"
    )]
    UnknownVersion {
        /// The version in the payload.
        found: u64,
    },
    /// A required field is empty.
    #[error("merge event field `{0}` is empty")]
    EmptyField(&'static str),
}

impl MergeEvent {
    /// Parses and checks an event payload. The version is checked before the shape,
    /// so a future event says "unknown version", not "unknown field". The payload
    /// is parsed once when it is good; only a payload that does not parse is read
    /// again, for its version alone.
    pub fn from_json(payload: &[u8]) -> Result<MergeEvent, EventError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: u64,
        }
        let unknown = |found: u64| EventError::UnknownVersion { found };
        let event: MergeEvent = match serde_json::from_slice(payload) {
            Ok(event) => event,
            Err(error) => {
                return Err(match serde_json::from_slice::<VersionOnly>(payload) {
                    Ok(version) if version.schema_version != u64::from(EVENT_SCHEMA_VERSION) => {
                        unknown(version.schema_version)
                    }
                    _ => error.into(),
                })
            }
        };
        event.check()?;
        Ok(event)
    }

    /// The checks [`MergeEvent::from_json`] makes after parsing: this build's
    /// schema version, and an event id, repository and head that are not blank. A
    /// producer runs them before publishing, so a worker never has to refuse its
    /// event.
    pub fn check(&self) -> Result<(), EventError> {
        if self.schema_version != EVENT_SCHEMA_VERSION {
            return Err(EventError::UnknownVersion {
                found: u64::from(self.schema_version),
            });
        }
        for (name, value) in [
            ("event_id", &self.event_id),
            ("repo", &self.repo),
            ("head", &self.head),
        ] {
            if value.trim().is_empty() {
                return Err(EventError::EmptyField(name));
            }
        }
        Ok(())
    }
}
