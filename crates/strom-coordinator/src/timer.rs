//! Deadlines of the shard. The shard has no clock: every operation is given `now_ms`, timers are
//! plain deadlines keyed by what they are for, and the broker calls `on_timer(now)` once
//! `next_deadline()` has passed. Scheduling a key again replaces its deadline, as Kafka's
//! coordinator timer does; what a timer does when it fires is decided from the state at that
//! moment, so a stale timer (member already gone) is harmless.

use std::collections::{BTreeMap, BTreeSet};

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKey {
    /// A classic member's session (or a new/pending member's join timeout).
    ClassicHeartbeat { group: String, member: String },
    /// The end of a classic group's join phase (initial delay or rebalance timeout).
    ClassicJoin { group: String },
    /// Members of a classic group that have not sent SyncGroup within the rebalance timeout.
    ClassicSync { group: String },
    /// A KIP-848 member's session.
    ConsumerSession { group: String, member: String },
    /// A KIP-848 member that must revoke partitions within its rebalance timeout.
    ConsumerRevocation { group: String, member: String },
    /// The periodic offsets/group expiration pass.
    OffsetExpiration,
}

/// Deadlines ordered by time, then by key (so two timers due at the same instant always fire
/// in the same order: handling stays deterministic). The group shard keys them by [`TimerKey`];
/// the transaction shard has keys of its own.
#[derive(Debug, Clone)]
pub(crate) struct Timers<K = TimerKey> {
    by_key: BTreeMap<K, i64>,
    queue: BTreeSet<(i64, K)>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Self {
            by_key: BTreeMap::new(),
            queue: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> Timers<K> {
    pub(crate) fn schedule(&mut self, key: K, deadline: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), deadline) {
            self.queue.remove(&(old, key.clone()));
        }
        self.queue.insert((deadline, key));
    }

    pub(crate) fn cancel(&mut self, key: &K) {
        if let Some(old) = self.by_key.remove(key) {
            self.queue.remove(&(old, key.clone()));
        }
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.queue.first().map(|(d, _)| *d)
    }

    /// Removes and returns the earliest timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: i64) -> Option<K> {
        let (deadline, _) = self.queue.first()?;
        if *deadline > now {
            return None;
        }
        let (_, key) = self.queue.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.queue.clear();
    }
}
