//! Per-key locks, so that two deliveries about the same thing in one worker (the
//! same event enqueued twice, or two events with the same diff) are handled one
//! after the other: the second finds the first's stored decision or cached
//! verdicts instead of paying for a second analysis.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A lock per key, created on first use and forgotten when nobody holds or waits
/// for it, so the map stays as small as the work in flight.
#[derive(Debug, Default)]
pub(crate) struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Holds one key's lock until dropped.
pub(crate) struct KeyGuard<'a> {
    owner: &'a KeyedLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits until nobody else holds `key` in this process, then holds it.
    pub(crate) async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(key.to_string()).or_default())
        };
        let guard = lock.lock_owned().await;
        KeyGuard {
            owner: self,
            key: key.to_string(),
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self
            .owner
            .locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's Arc and this guard's: nobody waits, the entry can go. A waiter
        // must take the map lock to clone the Arc, so none can appear meanwhile.
        if locks
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 2)
        {
            locks.remove(&self.key);
        }
        drop(locks);
        self.guard.take();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_second_holder_of_the_same_key_waits_and_other_keys_do_not() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("ev-1").await;
        let other = tokio::time::timeout(Duration::from_millis(50), locks.lock("ev-2")).await;
        assert!(other.is_ok(), "another key is free");
        drop(other);
        let second = tokio::time::timeout(Duration::from_millis(50), locks.lock("ev-1")).await;
        assert!(second.is_err(), "the same key waits");
        drop(first);
        let third = tokio::time::timeout(Duration::from_millis(50), locks.lock("ev-1")).await;
        assert!(third.is_ok(), "released");
        drop(third);
        assert_eq!(locks.len(), 0, "unused locks are forgotten");
    }
}
