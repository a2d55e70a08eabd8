//! The transaction coordinator driven like the broker does: records go through the codec into
//! a log, responses are checked, marker requests are carried out (or not) by the test.

use std::collections::BTreeMap;

use bytes::BytesMut;
use strom_protocol::ErrorCode;
use strom_protocol::kafka_protocol::protocol::Encodable;
use strom_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use strom_protocol::messages::*;

use super::*;
use crate::shard::RequestToken;

fn sb(v: &str) -> strom_protocol::StrBytes {
    strom_protocol::StrBytes::from_string(v.to_string())
}

const T0: i64 = 1_000_000;

struct H {
    shard: TransactionCoordinatorShard,
    now: i64,
    next_pid: i64,
    next_token: u64,
    log: Vec<TxnRecord>,
    /// Marker requests not carried out yet.
    markers: Vec<MarkerRequest>,
}

impl H {
    fn new() -> Self {
        let config = TxnConfig {
            transaction_state_log_num_partitions: 1,
            ..TxnConfig::default()
        };
        let mut shard = TransactionCoordinatorShard::new(config, 0, 7);
        let _ = shard.on_loaded(T0);
        Self {
            shard,
            now: T0,
            next_pid: 1000,
            next_token: 0,
            log: Vec::new(),
            markers: Vec::new(),
        }
    }

    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    /// Writes the records through the codec and keeps the marker requests.
    fn apply(&mut self, out: TxnOutcome) -> Vec<TxnResponse> {
        for r in &out.records {
            let (k, v) = r.encode();
            assert_eq!(
                TxnRecord::decode(&k, v.as_deref()).unwrap().as_ref(),
                Some(r)
            );
            self.log.push(r.clone());
        }
        self.markers.extend(out.markers);
        out.responses.into_iter().map(|(_, r)| r).collect()
    }

    fn init_v(
        &mut self,
        version: i16,
        id: &str,
        expected: Option<(i64, i16)>,
    ) -> InitProducerIdResponse {
        let (pid, epoch) = expected.unwrap_or((-1, -1));
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(id))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch);
        let t = self.token();
        let next = &mut self.next_pid;
        let mut alloc = || {
            *next += 1;
            Ok(*next)
        };
        let out = self
            .shard
            .init_producer_id(self.now, t, version, &req, &mut alloc);
        match self.apply(out).pop() {
            Some(TxnResponse::InitProducerId(r)) => {
                let mut buf = BytesMut::new();
                r.encode(&mut buf, version).unwrap();
                r
            }
            other => panic!("{other:?}"),
        }
    }

    fn init(&mut self, id: &str) -> (i64, i16) {
        let r = self.init_v(4, id, None);
        assert_eq!(r.error_code, 0, "{r:?}");
        (r.producer_id.0, r.producer_epoch)
    }

    fn txn(id: &str, pid: i64, epoch: i16, parts: &[(&str, i32)]) -> AddPartitionsToTxnTransaction {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (t, p) in parts {
            match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
                Some(x) => x.partitions.push(*p),
                None => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(vec![*p]),
                ),
            }
        }
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(sb(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_topics(topics)
    }

    /// AddPartitionsToTxn; every partition's code.
    fn add_v(&mut self, version: i16, txn: AddPartitionsToTxnTransaction) -> Vec<i16> {
        let t = self.token();
        let out = self
            .shard
            .add_partitions_to_txn(self.now, t, version, &txn, &|_, _| None);
        match self.apply(out).pop() {
            Some(TxnResponse::AddPartitionsToTxn(r)) => {
                let resp = add_partitions_response(version, vec![r.clone()]);
                resp.encode(&mut BytesMut::new(), version).unwrap();
                r.topic_results
                    .iter()
                    .flat_map(|t| {
                        t.results_by_partition
                            .iter()
                            .map(|p| p.partition_error_code)
                    })
                    .collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn add(&mut self, id: &str, pe: (i64, i16), parts: &[(&str, i32)]) -> i16 {
        let codes = self.add_v(3, Self::txn(id, pe.0, pe.1, parts));
        assert!(codes.windows(2).all(|w| w[0] == w[1]), "{codes:?}");
        codes[0]
    }

    fn end_v(&mut self, version: i16, id: &str, pe: (i64, i16), commit: bool) -> EndTxnResponse {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb(id)))
            .with_producer_id(ProducerId(pe.0))
            .with_producer_epoch(pe.1)
            .with_committed(commit);
        let t = self.token();
        let out = self.shard.end_txn(self.now, t, version, &req);
        match self.apply(out).pop() {
            Some(TxnResponse::EndTxn(r)) => {
                r.encode(&mut BytesMut::new(), version).unwrap();
                r
            }
            other => panic!("{other:?}"),
        }
    }

    fn end(&mut self, id: &str, pe: (i64, i16), commit: bool) -> i16 {
        self.end_v(3, id, pe, commit).error_code
    }

    /// Reports every pending marker request as written.
    fn write_markers(&mut self) {
        for m in std::mem::take(&mut self.markers) {
            let results: Vec<_> = m.partitions.iter().map(|tp| (tp.clone(), None)).collect();
            let out = self.shard.on_markers_written(self.now, &m, &results);
            self.apply(out);
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let out = self.shard.on_timer(self.now);
        self.apply(out);
    }

    fn state(&self, id: &str) -> Option<TxnState> {
        self.shard.state_of(id)
    }

    fn last_value(&self) -> &TxnLogValue {
        self.log.last().unwrap().value.as_ref().unwrap()
    }

    /// A fresh shard loaded from the log.
    fn reloaded(&self) -> (TransactionCoordinatorShard, TxnOutcome) {
        let mut s = TransactionCoordinatorShard::new(self.shard.config().clone(), 0, 8);
        for r in &self.log {
            let (k, v) = r.encode();
            s.replay(&TxnRecord::decode(&k, v.as_deref()).unwrap().unwrap());
        }
        let out = s.on_loaded(self.now);
        (s, out)
    }
}

fn code(c: ErrorCode) -> i16 {
    c.code()
}

#[test]
fn new_id_gets_a_producer_id_at_epoch_0() {
    let mut h = H::new();
    let (pid, epoch) = h.init("tx");
    assert_eq!((pid, epoch), (1001, 0));
    assert_eq!(h.state("tx"), Some(TxnState::Empty));
    let v = h.last_value();
    assert_eq!(
        (v.producer_id, v.producer_epoch, v.state),
        (1001, 0, TxnState::Empty)
    );
    assert_eq!(v.transaction_timeout_ms, 60_000);
    assert_eq!(v.start_timestamp_ms, -1);
    // Again: same producer id, epoch bumped.
    assert_eq!(h.init("tx"), (1001, 1));
}

#[test]
fn commit_goes_through_prepare_markers_and_complete() {
    let mut h = H::new();
    let pe = h.init("tx");
    assert_eq!(h.add("tx", pe, &[("a", 0), ("b", 1)]), 0);
    assert_eq!(h.state("tx"), Some(TxnState::Ongoing));
    assert_eq!(h.last_value().start_timestamp_ms, h.now);
    let records = h.log.len();
    // Already in the transaction: nothing written.
    assert_eq!(h.add("tx", pe, &[("a", 0)]), 0);
    assert_eq!(h.log.len(), records);
    h.now += 5;
    let r = h.end_v(5, "tx", pe, true);
    assert_eq!(r.error_code, 0);
    assert_eq!((r.producer_id.0, r.producer_epoch), pe);
    assert_eq!(h.state("tx"), Some(TxnState::PrepareCommit));
    assert_eq!(h.last_value().state, TxnState::PrepareCommit);
    assert_eq!(h.markers.len(), 1);
    let m = &h.markers[0];
    assert_eq!(
        (
            m.producer_id,
            m.producer_epoch,
            m.coordinator_epoch,
            m.result
        ),
        (pe.0, pe.1, 7, TxnResult::Commit)
    );
    assert_eq!(
        m.partitions,
        vec![("a".to_string(), 0), ("b".to_string(), 1)]
    );
    h.write_markers();
    assert_eq!(h.state("tx"), Some(TxnState::CompleteCommit));
    let v = h.last_value();
    assert!(v.partitions.is_empty());
    assert_eq!(v.start_timestamp_ms, T0);
    // The next transaction starts from CompleteCommit.
    h.now += 10;
    assert_eq!(h.add("tx", pe, &[("c", 0)]), 0);
    assert_eq!(h.state("tx"), Some(TxnState::Ongoing));
    assert_eq!(h.last_value().start_timestamp_ms, h.now);
    assert_eq!(h.last_value().partitions.len(), 1);
}

#[test]
fn abort_goes_to_complete_abort_and_retries_are_idempotent() {
    let mut h = H::new();
    let pe = h.init("tx");
    h.add("tx", pe, &[("a", 0)]);
    assert_eq!(h.end("tx", pe, false), 0);
    assert_eq!(h.state("tx"), Some(TxnState::PrepareAbort));
    assert_eq!(h.markers[0].result, TxnResult::Abort);
    // While markers are pending.
    assert_eq!(
        h.end("tx", pe, false),
        code(ErrorCode::ConcurrentTransactions)
    );
    assert_eq!(h.end("tx", pe, true), code(ErrorCode::InvalidTxnState));
    h.write_markers();
    assert_eq!(h.state("tx"), Some(TxnState::CompleteAbort));
    assert_eq!(h.end("tx", pe, false), 0);
    assert_eq!(h.end("tx", pe, true), code(ErrorCode::InvalidTxnState));
    // InitProducerId from CompleteAbort goes back to Empty; EndTxn there is invalid.
    let pe = h.init("tx");
    assert_eq!(h.state("tx"), Some(TxnState::Empty));
    assert_eq!(h.end("tx", pe, true), code(ErrorCode::InvalidTxnState));
}

#[test]
fn concurrent_transactions_while_markers_are_pending() {
    let mut h = H::new();
    let pe = h.init("tx");
    h.add("tx", pe, &[("a", 0)]);
    h.end("tx", pe, true);
    assert_eq!(
        h.add("tx", pe, &[("b", 0)]),
        code(ErrorCode::ConcurrentTransactions)
    );
    assert_eq!(
        h.end("tx", pe, true),
        code(ErrorCode::ConcurrentTransactions)
    );
    assert_eq!(h.end("tx", pe, false), code(ErrorCode::InvalidTxnState));
    let r = h.init_v(4, "tx", None);
    assert_eq!(r.error_code, code(ErrorCode::ConcurrentTransactions));
    assert_eq!((r.producer_id.0, r.producer_epoch), (-1, -1));
    // Verification refuses too.
    assert_eq!(
        h.shard.verify_partition("tx", pe.0, pe.1, "a", 0),
        Err(ErrorCode::ConcurrentTransactions)
    );
    h.write_markers();
    assert_eq!(h.end("tx", pe, true), 0);
}

#[test]
fn a_new_instance_fences_the_old_one_and_aborts_its_transaction() {
    let mut h = H::new();
    let old = h.init("tx");
    h.add("tx", old, &[("a", 0), ("a", 1)]);
    let records = h.log.len();
    let r = h.init_v(4, "tx", None);
    assert_eq!(r.error_code, code(ErrorCode::ConcurrentTransactions));
    // PrepareEpochFence is not written: PrepareAbort with the bumped epoch is.
    assert_eq!(h.log.len(), records + 1);
    let v = h.last_value();
    assert_eq!(
        (v.state, v.producer_epoch),
        (TxnState::PrepareAbort, old.1 + 1)
    );
    assert_eq!(h.markers[0].producer_epoch, old.1 + 1);
    assert_eq!(h.markers[0].result, TxnResult::Abort);
    // The old instance is fenced (INVALID_PRODUCER_EPOCH before v2).
    assert_eq!(
        h.add("tx", old, &[("b", 0)]),
        code(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        h.add_v(1, H::txn("tx", old.0, old.1, &[("b", 0)])),
        vec![code(ErrorCode::InvalidProducerEpoch)]
    );
    assert_eq!(
        h.end_v(1, "tx", old, true).error_code,
        code(ErrorCode::InvalidProducerEpoch)
    );
    assert_eq!(
        h.end_v(2, "tx", old, true).error_code,
        code(ErrorCode::ProducerFenced)
    );
    // The new instance retries until the abort completes.
    assert_eq!(
        h.init_v(4, "tx", None).error_code,
        code(ErrorCode::ConcurrentTransactions)
    );
    h.write_markers();
    assert_eq!(h.state("tx"), Some(TxnState::CompleteAbort));
    assert_eq!(h.init("tx"), (old.0, old.1 + 2));
}

#[test]
fn timed_out_transactions_are_aborted_with_an_epoch_bump() {
    let mut h = H::new();
    let pe = h.init("tx");
    h.add("tx", pe, &[("a", 0)]);
    // Not yet: the timeout is 60 s, the check runs every 10 s.
    h.advance(50_000);
    assert_eq!(h.state("tx"), Some(TxnState::Ongoing));
    h.advance(20_000);
    assert_eq!(h.state("tx"), Some(TxnState::PrepareAbort));
    assert_eq!(h.last_value().producer_epoch, pe.1 + 1);
    assert_eq!(h.markers.len(), 1);
    assert_eq!(h.markers[0].producer_epoch, pe.1 + 1);
    h.write_markers();
    assert_eq!(h.state("tx"), Some(TxnState::CompleteAbort));
    // The producer finds itself fenced.
    assert_eq!(h.end("tx", pe, true), code(ErrorCode::ProducerFenced));
    assert_eq!(
        h.add("tx", pe, &[("a", 0)]),
        code(ErrorCode::ProducerFenced)
    );
}

#[test]
fn idle_transactional_ids_expire_with_a_tombstone() {
    let mut h = H::new();
    h.init("idle");
    let pe = h.init("busy");
    h.now += 1;
    h.add("busy", pe, &[("a", 0)]);
    // Keep "busy" Ongoing past expiration: a huge timeout so it is not aborted.
    h.shard.txns.get_mut("busy").unwrap().timeout_ms = i32::MAX;
    let week = 604_800_000;
    h.advance(week - 3_600_000);
    assert!(h.state("idle").is_some());
    h.advance(3_600_000);
    assert_eq!(h.state("idle"), None);
    assert_eq!(h.log.last().unwrap(), &TxnRecord::tombstone("idle"));
    assert_eq!(h.state("busy"), Some(TxnState::Ongoing));
    let (reloaded, _) = h.reloaded();
    assert_eq!(reloaded.state_of("idle"), None);
    // A new InitProducerId starts over with a new producer id.
    let (pid, epoch) = h.init("idle");
    assert_eq!(epoch, 0);
    assert!(pid > pe.0);
}

#[test]
fn recovery_mid_commit_reissues_markers_and_completes() {
    let mut h = H::new();
    let pe = h.init("tx");
    h.add("tx", pe, &[("a", 0), ("b", 2)]);
    h.end("tx", pe, true);
    // The coordinator dies before the markers are reported.
    h.markers.clear();
    let (mut s, out) = h.reloaded();
    assert_eq!(s.state_of("tx"), Some(TxnState::PrepareCommit));
    assert!(out.records.is_empty());
    assert_eq!(out.markers.len(), 1);
    let m = &out.markers[0];
    assert_eq!(m.coordinator_epoch, 8, "the new coordinator's epoch");
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.result),
        (pe.0, pe.1, TxnResult::Commit)
    );
    assert_eq!(m.partitions.len(), 2);
    // EndTxn retried against the new coordinator waits for the markers.
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(sb("tx")))
        .with_producer_id(ProducerId(pe.0))
        .with_producer_epoch(pe.1)
        .with_committed(true);
    let o = s.end_txn(h.now, RequestToken(99), 3, &req);
    assert!(
        matches!(&o.responses[0].1, TxnResponse::EndTxn(r) if r.error_code == code(ErrorCode::ConcurrentTransactions))
    );
    let results: Vec<_> = m.partitions.iter().map(|tp| (tp.clone(), None)).collect();
    let done = s.on_markers_written(h.now, m, &results);
    assert_eq!(done.records.len(), 1);
    assert_eq!(s.state_of("tx"), Some(TxnState::CompleteCommit));
    // A report meant for the old coordinator is ignored.
    let mut stale = m.clone();
    stale.coordinator_epoch = 7;
    assert!(s.on_markers_written(h.now, &stale, &results).is_empty());
}

#[test]
fn retriable_marker_failures_are_retried_after_a_backoff() {
    let mut h = H::new();
    let pe = h.init("tx");
    h.add("tx", pe, &[("a", 0), ("b", 0)]);
    h.end("tx", pe, true);
    let m = h.markers.pop().unwrap();
    let a = ("a".to_string(), 0);
    let b = ("b".to_string(), 0);
    let out = h.shard.on_markers_written(
        h.now,
        &m,
        &[
            (a.clone(), None),
            (b.clone(), Some(ErrorCode::NotLeaderOrFollower)),
        ],
    );
    assert!(h.apply(out).is_empty());
    assert_eq!(h.state("tx"), Some(TxnState::PrepareCommit));
    // Only the failed partition is retried.
    h.advance(100);
    assert_eq!(h.markers.len(), 1);
    assert_eq!(h.markers[0].partitions, vec![b.clone()]);
    // A partition of a deleted topic is reported as written.
    h.write_markers();
    assert_eq!(h.state("tx"), Some(TxnState::CompleteCommit));
}

#[test]
fn fenced_markers_stop_being_sent() {
    let mut h = H::new();
    let pe = h.init("tx");
    h.add("tx", pe, &[("a", 0)]);
    h.end("tx", pe, true);
    let m = h.markers.pop().unwrap();
    let out = h.shard.on_markers_written(
        h.now,
        &m,
        &[(
            ("a".to_string(), 0),
            Some(ErrorCode::TransactionCoordinatorFenced),
        )],
    );
    assert!(out.is_empty());
    h.advance(10_000);
    assert!(h.markers.is_empty());
    assert_eq!(h.state("tx"), Some(TxnState::PrepareCommit));
}

#[test]
fn epoch_exhaustion_rotates_the_producer_id() {
    let mut h = H::new();
    h.shard.replay(&TxnRecord::new(
        "tx",
        TxnLogValue {
            producer_id: 500,
            producer_epoch: i16::MAX - 1,
            transaction_timeout_ms: 60_000,
            state: TxnState::CompleteCommit,
            partitions: Default::default(),
            last_update_timestamp_ms: T0,
            start_timestamp_ms: T0,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
        },
    ));
    let r = h.init_v(4, "tx", Some((500, i16::MAX - 1)));
    assert_eq!(r.error_code, 0);
    assert_eq!((r.producer_id.0, r.producer_epoch), (1001, 0));
    // KIP-360: the previous producer id with its exhausted epoch is still recognised as a
    // retry of that rotation and not fenced.
    let retry = h.init_v(4, "tx", Some((500, i16::MAX - 1)));
    assert_eq!(retry.error_code, 0);
    assert_eq!((retry.producer_id.0, retry.producer_epoch), (1001, 0));
}

#[test]
fn kip_360_producer_id_and_epoch_in_init_producer_id() {
    let mut h = H::new();
    let pe = h.init("tx");
    // Resuming with the current epoch bumps it.
    let r = h.init_v(4, "tx", Some(pe));
    assert_eq!((r.error_code, r.producer_epoch), (0, pe.1 + 1));
    // A retry of that call (its answer lost) gets the same answer.
    let again = h.init_v(4, "tx", Some(pe));
    assert_eq!((again.error_code, again.producer_epoch), (0, pe.1 + 1));
    // Another epoch is fenced; INVALID_PRODUCER_EPOCH before v4.
    let fenced = h.init_v(4, "tx", Some((pe.0, 77)));
    assert_eq!(fenced.error_code, code(ErrorCode::ProducerFenced));
    let old = h.init_v(3, "tx", Some((pe.0, 77)));
    assert_eq!(old.error_code, code(ErrorCode::InvalidProducerEpoch));
    // Another producer id is fenced.
    let other = h.init_v(4, "tx", Some((9, 0)));
    assert_eq!(other.error_code, code(ErrorCode::ProducerFenced));
    // Only one of the two given: invalid.
    let half = h.init_v(4, "tx", Some((pe.0, -1)));
    assert_eq!(half.error_code, code(ErrorCode::InvalidRequest));
}

#[test]
fn init_producer_id_refusals() {
    let mut h = H::new();
    assert_eq!(
        h.init_v(4, "", None).error_code,
        code(ErrorCode::InvalidRequest)
    );
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(sb("tx"))))
        .with_transaction_timeout_ms(900_001);
    let t = h.token();
    let out = h.shard.init_producer_id(h.now, t, 4, &req, &mut || Ok(1));
    assert!(
        matches!(&out.responses[0].1, TxnResponse::InitProducerId(r) if r.error_code == code(ErrorCode::InvalidTransactionTimeout))
    );
    assert!(out.records.is_empty());
    // The allocator's error goes back to the client; nothing is created.
    let req = req.with_transaction_timeout_ms(1000);
    let out = h.shard.init_producer_id(h.now, t, 4, &req, &mut || {
        Err(ErrorCode::CoordinatorLoadInProgress)
    });
    assert!(
        matches!(&out.responses[0].1, TxnResponse::InitProducerId(r) if r.error_code == code(ErrorCode::CoordinatorLoadInProgress))
    );
    assert_eq!(h.state("tx"), None);
    // Without a transactional id: an idempotent producer, nothing persisted.
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1);
    let out = h.shard.init_producer_id(h.now, t, 4, &req, &mut || Ok(77));
    assert!(out.records.is_empty());
    assert!(
        matches!(&out.responses[0].1, TxnResponse::InitProducerId(r) if r.producer_id.0 == 77 && r.producer_epoch == 0)
    );
    // Another shard's id.
    let mut other = TransactionCoordinatorShard::new(TxnConfig::default(), 0, 1);
    let id = (0..)
        .map(|i| format!("id-{i}"))
        .find(|id| transaction_partition_for(id, 50) != 0)
        .unwrap();
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(sb(&id))))
        .with_transaction_timeout_ms(1000);
    let out = other.init_producer_id(h.now, t, 4, &req, &mut || Ok(1));
    assert!(
        matches!(&out.responses[0].1, TxnResponse::InitProducerId(r) if r.error_code == code(ErrorCode::NotCoordinator))
    );
}

#[test]
fn add_partitions_refusals() {
    let mut h = H::new();
    assert_eq!(
        h.add("unknown", (1, 0), &[("a", 0)]),
        code(ErrorCode::InvalidProducerIdMapping)
    );
    let pe = h.init("tx");
    assert_eq!(
        h.add("tx", (pe.0 + 5, pe.1), &[("a", 0)]),
        code(ErrorCode::InvalidProducerIdMapping)
    );
    assert_eq!(
        h.add("tx", (pe.0, pe.1 + 1), &[("a", 0)]),
        code(ErrorCode::ProducerFenced)
    );
    // One rejected partition: nothing added, the others not attempted.
    let t = h.token();
    let txn = H::txn("tx", pe.0, pe.1, &[("a", 0), ("secret", 1)]);
    let out = h
        .shard
        .add_partitions_to_txn(h.now, t, 3, &txn, &|topic, _| {
            (topic == "secret").then_some(ErrorCode::TopicAuthorizationFailed)
        });
    assert!(out.records.is_empty());
    let TxnResponse::AddPartitionsToTxn(r) = &out.responses[0].1 else {
        panic!()
    };
    let codes: Vec<(String, i16)> = r
        .topic_results
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.results_by_partition[0].partition_error_code,
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("a".to_string(), code(ErrorCode::OperationNotAttempted)),
            (
                "secret".to_string(),
                code(ErrorCode::TopicAuthorizationFailed)
            ),
        ]
    );
    assert_eq!(h.state("tx"), Some(TxnState::Empty));
}

#[test]
fn verify_only_answers_without_adding() {
    let mut h = H::new();
    let pe = h.init("tx");
    h.add("tx", pe, &[("a", 0)]);
    let records = h.log.len();
    let verify = |parts: &[(&str, i32)]| H::txn("tx", pe.0, pe.1, parts).with_verify_only(true);
    assert_eq!(
        h.add_v(5, verify(&[("a", 0), ("b", 0)])),
        vec![0, code(ErrorCode::TransactionAbortable)]
    );
    assert_eq!(
        h.add_v(4, verify(&[("b", 0)])),
        vec![code(ErrorCode::InvalidTxnState)]
    );
    assert_eq!(h.log.len(), records);
    assert_eq!(
        h.shard.verify_partition("tx", pe.0, pe.1, "a", 0),
        Ok(PartitionVerification::InTransaction)
    );
    assert_eq!(
        h.shard.verify_partition("tx", pe.0, pe.1, "b", 0),
        Ok(PartitionVerification::NotInTransaction)
    );
    assert_eq!(
        h.shard.verify_partition("tx", pe.0, pe.1 - 1, "a", 0),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        h.shard.verify_partition("tx", pe.0 + 1, pe.1, "a", 0),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
}

#[test]
fn add_offsets_adds_the_group_partition_of_consumer_offsets() {
    let mut h = H::new();
    let pe = h.init("tx");
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(sb("tx")))
        .with_producer_id(ProducerId(pe.0))
        .with_producer_epoch(pe.1)
        .with_group_id(GroupId(sb("my-group")));
    let t = h.token();
    let out = h.shard.add_offsets_to_txn(h.now, t, 3, &req);
    let r = h.apply(out);
    assert!(matches!(&r[0], TxnResponse::AddOffsetsToTxn(r) if r.error_code == 0));
    assert!(
        h.last_value()
            .partitions
            .contains(&(CONSUMER_OFFSETS_TOPIC.to_string(), 12))
    );
    let stale = req.with_producer_epoch(pe.1 + 3);
    let out = h.shard.add_offsets_to_txn(h.now, t, 1, &stale);
    assert!(
        matches!(&out.responses[0].1, TxnResponse::AddOffsetsToTxn(r) if r.error_code == code(ErrorCode::InvalidProducerEpoch))
    );
}

#[test]
fn end_txn_refusals() {
    let mut h = H::new();
    assert_eq!(
        h.end("nope", (1, 0), true),
        code(ErrorCode::InvalidProducerIdMapping)
    );
    let pe = h.init("tx");
    assert_eq!(h.end("tx", pe, true), code(ErrorCode::InvalidTxnState));
    assert_eq!(
        h.end("tx", (pe.0 + 1, pe.1), true),
        code(ErrorCode::InvalidProducerIdMapping)
    );
    assert_eq!(h.end("", pe, true), code(ErrorCode::InvalidRequest));
}

#[test]
fn empty_transaction_completes_without_markers() {
    let mut h = H::new();
    let pe = h.init("tx");
    assert!(h.add_v(3, H::txn("tx", pe.0, pe.1, &[])).is_empty());
    assert_eq!(h.state("tx"), Some(TxnState::Ongoing));
    assert_eq!(h.end("tx", pe, true), 0);
    assert!(h.markers.is_empty());
    assert_eq!(h.state("tx"), Some(TxnState::CompleteCommit));
}

#[test]
fn describe_and_list_transactions() {
    let mut h = H::new();
    let a = h.init("a");
    h.add("a", a, &[("t", 1), ("t", 0), ("u", 3)]);
    let b = h.init("b");
    h.now += 100_000;
    let c = h.init("c");
    h.add("c", c, &[("t", 0)]);

    let d = h.shard.describe_transaction("a");
    assert_eq!(d.error_code, 0);
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!((d.producer_id.0, d.producer_epoch), a);
    assert_eq!(d.transaction_start_time_ms, T0);
    let topics: Vec<(String, Vec<i32>)> = d
        .topics
        .iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
        .collect();
    assert_eq!(
        topics,
        vec![("t".to_string(), vec![0, 1]), ("u".to_string(), vec![3])]
    );
    assert_eq!(
        h.shard.describe_transaction("zzz").error_code,
        code(ErrorCode::TransactionalIdNotFound)
    );
    DescribeTransactionsResponse::default()
        .with_transaction_states(vec![d])
        .encode(&mut BytesMut::new(), 0)
        .unwrap();

    let list = |version: i16, req: ListTransactionsRequest| -> (Vec<String>, Vec<String>, i16) {
        let r = h.shard.list_transactions(h.now, version, &req);
        r.encode(&mut BytesMut::new(), version).unwrap();
        (
            r.transaction_states
                .iter()
                .map(|s| s.transactional_id.0.to_string())
                .collect(),
            r.unknown_state_filters
                .iter()
                .map(|s| s.to_string())
                .collect(),
            r.error_code,
        )
    };
    let all = ListTransactionsRequest::default();
    assert_eq!(list(0, all.clone()).0, vec!["a", "b", "c"]);
    let ongoing = all
        .clone()
        .with_state_filters(vec![sb("Ongoing"), sb("Bogus")]);
    assert_eq!(
        list(0, ongoing),
        (vec!["a".into(), "c".into()], vec!["Bogus".into()], 0)
    );
    let by_pid = all.clone().with_producer_id_filters(vec![ProducerId(b.0)]);
    assert_eq!(list(0, by_pid).0, vec!["b"]);
    // Running for more than 50 s: only "a" (c started just now; b has not started, but its
    // start of -1 counts as long ago, as in Kafka).
    let long = all.clone().with_duration_filter(50_000);
    assert_eq!(list(1, long.clone()).0, vec!["a", "b"]);
    // v0 has no duration filter.
    assert_eq!(list(0, long).0.len(), 3);
    let pattern = all.clone().with_transactional_id_pattern(Some(sb("[ab]")));
    assert_eq!(list(2, pattern).0, vec!["a", "b"]);
    let bad = all.with_transactional_id_pattern(Some(sb("(")));
    assert_eq!(list(2, bad).2, code(ErrorCode::InvalidRegularExpression));
}

#[test]
fn add_partitions_v3_and_below_layout() {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(sb("tx")))
        .with_v3_and_below_producer_id(ProducerId(5))
        .with_v3_and_below_producer_epoch(2)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(sb("a")))
                .with_partitions(vec![0, 1]),
        ]);
    let txns = add_partitions_transactions(3, &req);
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].producer_id.0, 5);
    assert!(!txns[0].verify_only);
    let mut h = H::new();
    let t = h.token();
    let out = h
        .shard
        .add_partitions_to_txn(h.now, t, 3, &txns[0], &|_, _| None);
    let TxnResponse::AddPartitionsToTxn(r) = &out.responses[0].1 else {
        panic!()
    };
    let resp = add_partitions_response(3, vec![r.clone()]);
    assert_eq!(resp.results_by_topic_v3_and_below.len(), 1);
    resp.encode(&mut BytesMut::new(), 3).unwrap();
}

#[test]
fn every_state_round_trips_through_replay() {
    // Live state and a reload agree on everything persisted, across every reachable state.
    let mut h = H::new();
    let e = h.init("empty");
    let _ = e;
    let o = h.init("ongoing");
    h.add("ongoing", o, &[("a", 0)]);
    let pc = h.init("pc");
    h.add("pc", pc, &[("a", 1)]);
    h.end("pc", pc, true);
    let pa = h.init("pa");
    h.add("pa", pa, &[("a", 2)]);
    h.end("pa", pa, false);
    let pending = std::mem::take(&mut h.markers);
    let cc = h.init("cc");
    h.add("cc", cc, &[("b", 0)]);
    h.end("cc", cc, true);
    let ca = h.init("ca");
    h.add("ca", ca, &[("b", 1)]);
    h.end("ca", ca, false);
    h.write_markers();
    let (reloaded, out) = h.reloaded();
    for id in h.shard.transactional_ids() {
        let mut live = h.shard.describe_transaction(&id);
        let mut back = reloaded.describe_transaction(&id);
        live.topics.sort_by(|x, y| x.topic.cmp(&y.topic));
        back.topics.sort_by(|x, y| x.topic.cmp(&y.topic));
        assert_eq!(live, back, "{id}");
    }
    let states: BTreeMap<String, TxnState> = h
        .shard
        .transactional_ids()
        .into_iter()
        .map(|id| (id.clone(), h.state(&id).unwrap()))
        .collect();
    assert_eq!(states["empty"], TxnState::Empty);
    assert_eq!(states["ongoing"], TxnState::Ongoing);
    assert_eq!(states["pc"], TxnState::PrepareCommit);
    assert_eq!(states["pa"], TxnState::PrepareAbort);
    assert_eq!(states["cc"], TxnState::CompleteCommit);
    assert_eq!(states["ca"], TxnState::CompleteAbort);
    // The reload resumes exactly the two prepared transactions.
    let mut resumed: Vec<_> = out
        .markers
        .iter()
        .map(|m| (m.transactional_id.clone(), m.result))
        .collect();
    resumed.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        resumed,
        vec![
            ("pa".to_string(), TxnResult::Abort),
            ("pc".to_string(), TxnResult::Commit)
        ]
    );
    assert_eq!(pending.len(), 2);
}

#[test]
fn state_table_matches_kafka() {
    use TxnState::*;
    for s in TxnState::ALL {
        assert_eq!(TxnState::from_id(s.id()), Some(s));
        assert_eq!(TxnState::from_name(s.name()), Some(s));
    }
    assert_eq!(TxnState::from_name("ongoing"), None, "names are exact");
    assert!(
        PrepareAbort
            .valid_previous_states()
            .contains(&PrepareEpochFence)
    );
    assert!(!PrepareCommit.valid_previous_states().contains(&Empty));
    assert!(Dead.valid_previous_states().contains(&CompleteCommit));
    let expiring: Vec<_> = TxnState::ALL
        .into_iter()
        .filter(|s| s.is_expiration_allowed())
        .collect();
    assert_eq!(expiring, vec![Empty, CompleteCommit, CompleteAbort]);
}

#[test]
fn config_defaults_are_kafkas() {
    let c = TxnConfig::default();
    assert_eq!(c.max_timeout_ms, 900_000);
    assert_eq!(c.transactional_id_expiration_ms, 604_800_000);
    assert_eq!(c.abort_timed_out_transaction_cleanup_interval_ms, 10_000);
    assert_eq!(c.remove_expired_transaction_cleanup_interval_ms, 3_600_000);
    assert_eq!(c.transaction_state_log_num_partitions, 50);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert!(c.validate().is_ok());
    let bad = TxnConfig {
        max_timeout_ms: 0,
        ..c
    };
    assert_eq!(
        bad.validate().unwrap_err().property,
        "transaction.max.timeout.ms"
    );
}
