//! Building merge events and their ids.

use gate_core::{rfc3339, DeployContext, MergeEvent, EVENT_SCHEMA_VERSION};

/// Wraps a deploy context into the event the fleet decides on.
///
/// `event_id` is the idempotency key: one decision per id, so a step that is retried
/// must pass the same id (`--event-id`, or [`ci_event_id`](crate::ci_event_id)); with
/// `None` the event gets a fresh [`random_event_id`], which makes it a new merge.
/// `git_ref` is the branch the merge landed on (`refs/heads/main`), when known;
/// `source` says which door it came through (`cli`, `webhook`, a bus's own name).
pub fn merge_event(
    context: DeployContext,
    event_id: Option<String>,
    git_ref: Option<String>,
    source: &str,
) -> MergeEvent {
    MergeEvent {
        schema_version: EVENT_SCHEMA_VERSION,
        event_id: event_id.unwrap_or_else(random_event_id),
        repo: context.repo.clone(),
        base: context.base.clone(),
        head: context.head.clone(),
        git_ref,
        produced_at: rfc3339(time::OffsetDateTime::now_utc()),
        source: source.to_owned(),
        context,
    }
}

/// A fresh event id, `evt-` and a random UUID (version 4 layout): for a merge that
/// has no id of its own, so that it is decided as a new event.
pub fn random_event_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (never seen on supported systems): time and a counter
        // still make the id unique within this process and very likely beyond.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&(nanos as u64).to_be_bytes());
        bytes[8..].copy_from_slice(&(count ^ u64::from(std::process::id())).to_be_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "evt-{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_event_ids_look_like_uuids_and_differ() {
        let first = random_event_id();
        let second = random_event_id();
        assert_ne!(first, second);
        assert_eq!(first.len(), 4 + 36, "{first}");
        let uuid = first.strip_prefix("evt-").unwrap();
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&uuid[14..15], "4", "version nibble: {uuid}");
    }
}
