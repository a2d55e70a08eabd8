//! The records of `__transaction_state`, in Kafka's binary schemas
//! (`transaction-coordinator/src/main/resources/common/message/TransactionLogKey.json` and
//! `TransactionLogValue.json`), so that the partition's bytes mean the same to strom and to
//! Kafka's tools (`kafka-dump-log --transaction-log-decoder`).
//!
//! | part | schema | versions read | version written |
//! |------|--------|---------------|-----------------|
//! | key | `TransactionLogKey` { transactional_id } | 0 | 0 |
//! | value | `TransactionLogValue` | 0, 1 (flexible, tagged fields 0-2) | 0 |
//!
//! Version 0 is what Kafka writes while the `transaction.version` feature is below 1, which is
//! all strom advertises. A key starts with its i16 version; a key of another version is not a
//! transaction record (`Ok(None)`: the loader skips it, as Kafka does). A missing value is a
//! tombstone: the transactional id expired and is forgotten.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::error::CodecError;
use crate::records::wire::{Reader, Writer};
use crate::txn::state::TxnState;

/// One record of `__transaction_state`: the state of one transactional id, `None` being a
/// tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnLogValue>,
}

/// `TransactionLogValue`: everything the coordinator persists about a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the transaction. Written as a null array in state Empty (Kafka's
    /// `valueToBytes`), and empty in the Complete states.
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_timestamp_ms: i64,
    /// -1 when no transaction ever started.
    pub start_timestamp_ms: i64,
    /// Version 1 only (tagged field 0, default -1): the producer id before the last rotation.
    pub previous_producer_id: i64,
    /// Version 1 only (tagged field 1, default -1): a producer id allocated by a TV2 epoch
    /// overflow. strom never sets it; it is kept when read.
    pub next_producer_id: i64,
    /// Version 1 only (tagged field 2, default 0): the client's transaction version.
    pub client_transaction_version: i16,
}

const KEY_VERSION: i16 = 0;

impl TxnRecord {
    /// A record with a value.
    pub fn new(transactional_id: impl Into<String>, value: TxnLogValue) -> Self {
        Self {
            transactional_id: transactional_id.into(),
            value: Some(value),
        }
    }

    /// The tombstone of an expired transactional id.
    pub fn tombstone(transactional_id: impl Into<String>) -> Self {
        Self {
            transactional_id: transactional_id.into(),
            value: None,
        }
    }

    /// The key and value bytes to append to `__transaction_state`.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut w = Writer::new();
        w.i16(KEY_VERSION);
        w.string(&self.transactional_id);
        (w.finish(), self.value.as_ref().map(encode_value))
    }

    /// Decodes a record read from `__transaction_state`. `Ok(None)` means a key version strom
    /// does not know: the caller skips the record.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, CodecError> {
        let mut r = Reader::new(key);
        if r.i16()? != KEY_VERSION {
            return Ok(None);
        }
        let transactional_id = r.string()?;
        r.finish()?;
        let value = value.map(decode_value).transpose()?;
        Ok(Some(Self {
            transactional_id,
            value,
        }))
    }
}

/// The partitions grouped by topic, topics in order (the `PartitionsSchema` array).
fn by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, p) in partitions {
        match out.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*p),
            _ => out.push((topic, vec![*p])),
        }
    }
    out
}

fn encode_value(v: &TxnLogValue) -> Bytes {
    let mut w = Writer::new();
    w.i16(0);
    w.i64(v.producer_id);
    w.i16(v.producer_epoch);
    w.i32(v.transaction_timeout_ms);
    w.i8(v.state.id());
    if v.state == TxnState::Empty {
        w.i32(-1);
    } else {
        let topics = by_topic(&v.partitions);
        w.array_len(topics.len());
        for (topic, partitions) in topics {
            w.string(topic);
            w.array_len(partitions.len());
            for p in partitions {
                w.i32(p);
            }
        }
    }
    w.i64(v.last_update_timestamp_ms);
    w.i64(v.start_timestamp_ms);
    w.finish()
}

fn decode_value(bytes: &[u8]) -> Result<TxnLogValue, CodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    let flexible = match version {
        0 => false,
        1 => true,
        _ => {
            return Err(CodecError::UnknownValueVersion {
                key_version: KEY_VERSION,
                version,
            });
        }
    };
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let transaction_timeout_ms = r.i32()?;
    let state = TxnState::from_id(r.i8()?).ok_or(CodecError::Malformed(
        "unknown transaction state in TransactionLogValue",
    ))?;
    let mut partitions = BTreeSet::new();
    let topics = array_len(&mut r, flexible)?;
    for _ in 0..topics.unwrap_or(0) {
        let topic = if flexible {
            r.compact_string()?
        } else {
            r.string()?
        };
        let n = array_len(&mut r, flexible)?.ok_or(CodecError::Malformed("null partition ids"))?;
        for _ in 0..n {
            partitions.insert((topic.clone(), r.i32()?));
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
    }
    let last_update_timestamp_ms = r.i64()?;
    let start_timestamp_ms = r.i64()?;
    let mut value = TxnLogValue {
        producer_id,
        producer_epoch,
        transaction_timeout_ms,
        state,
        // Kafka ignores the partitions of an Empty record.
        partitions: if state == TxnState::Empty {
            BTreeSet::new()
        } else {
            partitions
        },
        last_update_timestamp_ms,
        start_timestamp_ms,
        previous_producer_id: -1,
        next_producer_id: -1,
        client_transaction_version: 0,
    };
    if flexible {
        let count = r.uvarint()?;
        for _ in 0..count {
            let tag = r.uvarint()?;
            let size = r.uvarint()? as usize;
            match (tag, size) {
                (0, 8) => value.previous_producer_id = r.i64()?,
                (1, 8) => value.next_producer_id = r.i64()?,
                (2, 2) => value.client_transaction_version = r.i16()?,
                _ => r.skip(size)?,
            }
        }
    }
    r.finish()?;
    Ok(value)
}

/// An array length that may be null: i32 in version 0, uvarint + 1 in version 1. Counts the
/// input cannot hold are refused before anything is allocated.
fn array_len(r: &mut Reader<'_>, flexible: bool) -> Result<Option<usize>, CodecError> {
    let n: i64 = if flexible {
        i64::from(r.uvarint()?) - 1
    } else {
        i64::from(r.i32()?)
    };
    if n < 0 {
        return Ok(None);
    }
    let n = n as usize;
    if n > r.remaining() {
        return Err(CodecError::Truncated);
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    //! Golden bytes written by hand from Kafka's JSON schemas, not taken from the encoder.

    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn value(state: TxnState, partitions: &[(&str, i32)]) -> TxnLogValue {
        TxnLogValue {
            producer_id: 1000,
            producer_epoch: 3,
            transaction_timeout_ms: 60_000,
            state,
            partitions: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
            last_update_timestamp_ms: 2000,
            start_timestamp_ms: 1500,
            previous_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
        }
    }

    fn golden(record: TxnRecord, key: &str, value: Option<&str>) {
        let (k, v) = record.encode();
        assert_eq!(k.to_vec(), hex(key));
        assert_eq!(v.map(|v| v.to_vec()), value.map(hex));
        let back = TxnRecord::decode(&hex(key), value.map(hex).as_deref())
            .unwrap()
            .unwrap();
        assert_eq!(back, record);
    }

    // key v0: version, transactional id "tx"
    const KEY: &str = "0000 0002 7478";

    #[test]
    fn ongoing_v0_golden() {
        golden(
            TxnRecord::new(
                "tx",
                value(TxnState::Ongoing, &[("a", 0), ("a", 2), ("b", 1)]),
            ),
            KEY,
            Some(concat!(
                "0000",             // value version 0
                "00000000000003e8", // producer id 1000
                "0003",             // epoch
                "0000ea60",         // timeout 60000
                "01",               // Ongoing
                "00000002",         // two topics
                "0001 61 00000002 00000000 00000002",
                "0001 62 00000001 00000001",
                "00000000000007d0", // last update 2000
                "00000000000005dc", // start 1500
            )),
        );
    }

    #[test]
    fn empty_v0_golden_has_null_partitions() {
        let mut v = value(TxnState::Empty, &[]);
        v.start_timestamp_ms = -1;
        golden(
            TxnRecord::new("tx", v),
            KEY,
            Some(concat!(
                "0000 00000000000003e8 0003 0000ea60 00",
                "ffffffff", // null array
                "00000000000007d0 ffffffffffffffff",
            )),
        );
    }

    #[test]
    fn complete_commit_v0_golden_has_empty_partitions() {
        golden(
            TxnRecord::new("tx", value(TxnState::CompleteCommit, &[])),
            KEY,
            Some(concat!(
                "0000 00000000000003e8 0003 0000ea60 04",
                "00000000", // empty array
                "00000000000007d0 00000000000005dc",
            )),
        );
    }

    #[test]
    fn tombstone_golden() {
        golden(TxnRecord::tombstone("tx"), KEY, None);
    }

    #[test]
    fn reads_flexible_v1_with_tagged_fields() {
        let bytes = hex(concat!(
            "0001 00000000000003e8 0003 0000ea60 02",
            "02",                            // compact array: one topic
            "02 61 03 00000000 00000002 00", // "a", [0, 2], no tags
            "00000000000007d0 00000000000005dc",
            "03",                     // three tagged fields
            "00 08 0000000000000064", // previous producer id 100
            "01 08 00000000000000c8", // next producer id 200
            "02 02 0002",             // client transaction version 2
        ));
        let r = TxnRecord::decode(&hex(KEY), Some(&bytes)).unwrap().unwrap();
        let mut want = value(TxnState::PrepareCommit, &[("a", 0), ("a", 2)]);
        want.previous_producer_id = 100;
        want.next_producer_id = 200;
        want.client_transaction_version = 2;
        assert_eq!(r.value, Some(want));
    }

    #[test]
    fn refuses_unknown_state_and_version() {
        let bad_state = hex(
            "0000 00000000000003e8 0003 0000ea60 09 ffffffff 0000000000000000 0000000000000000",
        );
        assert!(TxnRecord::decode(&hex(KEY), Some(&bad_state)).is_err());
        let bad_version = hex("0002 00");
        assert_eq!(
            TxnRecord::decode(&hex(KEY), Some(&bad_version)),
            Err(CodecError::UnknownValueVersion {
                key_version: 0,
                version: 2
            })
        );
        // Another key version is not a transaction record.
        assert_eq!(TxnRecord::decode(&hex("0001 0002 7478"), None), Ok(None));
    }

    fn any_state() -> impl Strategy<Value = TxnState> {
        prop_oneof![
            Just(TxnState::Empty),
            Just(TxnState::Ongoing),
            Just(TxnState::PrepareCommit),
            Just(TxnState::PrepareAbort),
            Just(TxnState::CompleteCommit),
            Just(TxnState::CompleteAbort),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            id in "[a-z0-9-]{0,20}",
            pid in any::<i64>(),
            epoch in any::<i16>(),
            timeout in any::<i32>(),
            state in any_state(),
            parts in proptest::collection::btree_set(("[a-c]{1,3}", 0..5i32), 0..6),
            ts in any::<i64>(),
            start in any::<i64>(),
        ) {
            let partitions = if state == TxnState::Empty { BTreeSet::new() } else { parts };
            let r = TxnRecord::new(id, TxnLogValue {
                producer_id: pid,
                producer_epoch: epoch,
                transaction_timeout_ms: timeout,
                state,
                partitions,
                last_update_timestamp_ms: ts,
                start_timestamp_ms: start,
                previous_producer_id: -1,
                next_producer_id: -1,
                client_transaction_version: 0,
            });
            let (k, v) = r.encode();
            prop_assert_eq!(TxnRecord::decode(&k, v.as_deref()).unwrap(), Some(r));
        }

        #[test]
        fn garbage_never_panics(key in proptest::collection::vec(any::<u8>(), 0..40),
                                value in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TxnRecord::decode(&key, Some(&value));
        }
    }
}
