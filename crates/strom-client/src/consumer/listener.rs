//! The rebalance listener (Java's `ConsumerRebalanceListener`): user code told when a group
//! rebalance takes partitions away or hands new ones out, so it can flush state, commit, or
//! load state for the new partitions.
//!
//! The hooks run inside `poll` (and `close`), on the caller's task, in Java's order: revoked
//! (or lost) before the consumer rejoins, assigned once the new assignment is known and the
//! positions of the new partitions are set. With the cooperative protocol only the partitions
//! that move are revoked, and `on_partitions_assigned` gets only the newly added ones.

use crate::record::TopicPartition;

/// Callbacks around group rebalances. All default to doing nothing.
pub trait ConsumerRebalanceListener: Send {
    /// Partitions this member gives up in an orderly rebalance (after offsets were
    /// auto-committed, when `enable.auto.commit` is on). Called also on `close`.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions newly assigned to this member (all of them with the eager protocol; the
    /// added ones with the cooperative one, possibly none).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// Partitions that may already belong to another member: the member fell out of the
    /// group (session timeout, `max.poll.interval.ms` passed, fenced), so committing their
    /// offsets would fail. Defaults to [`on_partitions_revoked`](Self::on_partitions_revoked),
    /// as in Java.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
}

/// The listener of a subscription without one.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NoopListener;

impl ConsumerRebalanceListener for NoopListener {}
