//! One Fetch request to one leader, and decoding what comes back.
//!
//! A fetch returns whole stored batches starting with the one that *contains* the requested
//! offset, possibly cut short at the end by the byte limits. Decoding therefore skips records
//! below the requested offset, stops silently at a partial trailing batch, and skips control
//! batches (transaction markers), moving the position past them.
//!
//! With `isolation.level=read_committed` the broker stops at the last stable offset and lists
//! the aborted transactions in the range (producer id, first offset); records of those
//! transactions are dropped here, as Java's `CompletedFetch` does: a producer's transactional
//! batches are skipped from its aborted transaction's first offset until its ABORT marker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use strom_protocol::batch::{
    BatchError, BatchHeader, Batches, CONTROL_TYPE_ABORT, TimestampType as BatchTimestampType,
};
use strom_protocol::kafka_protocol::records::RecordBatchDecoder;
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::{FetchRequest, TopicName};
use strom_protocol::{ErrorCode, StrBytes};
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::error::{ClientError, Result};
use crate::record::{ConsumerRecord, Header, TimestampType, TopicPartition};

/// Highest Fetch version that addresses topics by name; v13+ use topic ids.
const LAST_FETCH_VERSION_BY_NAME: i16 = 12;

/// Records decoded from one partition's fetched bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) records: Vec<ConsumerRecord>,
    /// The offset after the last complete batch, when there was one: the next fetch position
    /// once these records are consumed (it may be past the last record: control batches,
    /// compacted-away offsets).
    pub(crate) next_offset: Option<i64>,
}

/// Decodes the batches fetched for `topic`/`partition` at `fetch_offset`. `aborted` is the
/// response's aborted transactions (`None` for read_uncommitted fetches).
pub(crate) fn decode_records(
    topic: &str,
    partition: i32,
    data: &Bytes,
    fetch_offset: i64,
    aborted: Option<&[(i64, i64)]>,
) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut aborts = aborted.map(Aborts::new);
    for item in Batches::new(data) {
        let (header, bytes) = match item {
            Ok(batch) => batch,
            // The byte limit cut the last batch; it is fetched whole next time.
            Err(BatchError::Truncated { .. }) => break,
            Err(e) => {
                return Err(ClientError::Protocol(format!(
                    "bad record batch in {topic}-{partition} near offset {fetch_offset}: {e}"
                )));
            }
        };
        let next = header.next_offset();
        let skip_aborted = match &mut aborts {
            Some(aborts) => aborts.skip(&header, || is_abort_marker(data.slice_ref(bytes))),
            None => false,
        };
        if next <= fetch_offset {
            continue;
        }
        out.next_offset = Some(next);
        if header.is_control() || skip_aborted {
            continue;
        }
        let mut batch = data.slice_ref(bytes);
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
            ClientError::Protocol(format!(
                "cannot decode the batch at offset {} of {topic}-{partition}: {e:#}",
                header.base_offset
            ))
        })?;
        let log_append = header.timestamp_type() == BatchTimestampType::LogAppendTime;
        for record in set.records {
            if record.offset < fetch_offset {
                continue;
            }
            out.records.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset: record.offset,
                // With LogAppendTime the broker stamps the batch, not each record.
                timestamp: if log_append {
                    header.max_timestamp
                } else {
                    record.timestamp
                },
                timestamp_type: if log_append {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|(key, value)| Header {
                        key: key.to_string(),
                        value,
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// The aborted transactions of a read_committed fetch, consumed in offset order.
struct Aborts {
    /// (first offset, producer id), by first offset.
    pending: Vec<(i64, i64)>,
    next: usize,
    /// Producers whose aborted transaction has begun and whose ABORT marker is still ahead.
    producers: HashSet<i64>,
}

impl Aborts {
    fn new(list: &[(i64, i64)]) -> Self {
        let mut pending: Vec<(i64, i64)> = list.iter().map(|&(pid, first)| (first, pid)).collect();
        pending.sort_unstable();
        Self {
            pending,
            next: 0,
            producers: HashSet::new(),
        }
    }

    /// Whether `header`'s batch belongs to an aborted transaction (then its records are
    /// dropped). `abort_marker` tells whether a control batch is an ABORT marker.
    fn skip(&mut self, header: &BatchHeader, abort_marker: impl FnOnce() -> bool) -> bool {
        if !header.has_producer_id() {
            return false;
        }
        while let Some(&(first, pid)) = self.pending.get(self.next) {
            if first > header.last_offset() {
                break;
            }
            self.producers.insert(pid);
            self.next += 1;
        }
        if header.is_control() {
            if abort_marker() {
                self.producers.remove(&header.producer_id);
            }
            return false;
        }
        header.is_transactional() && self.producers.contains(&header.producer_id)
    }
}

/// Whether a control batch is an ABORT marker: its record's key is (version i16, type i16).
fn is_abort_marker(mut batch: Bytes) -> bool {
    RecordBatchDecoder::decode(&mut batch).is_ok_and(|set| {
        set.records.first().is_some_and(|r| {
            r.key
                .as_deref()
                .and_then(|k| k.get(2..4))
                .is_some_and(|t| i16::from_be_bytes([t[0], t[1]]) == CONTROL_TYPE_ABORT)
        })
    })
}

/// What a fetch brought for one partition.
#[derive(Debug)]
pub(crate) struct PartitionFetch {
    pub(crate) tp: TopicPartition,
    pub(crate) fetch_offset: i64,
    pub(crate) result: Result<Decoded>,
    pub(crate) high_watermark: i64,
}

/// Fetches `partitions` (each at its offset) from broker `node`.
pub(crate) async fn fetch(
    cluster: &Cluster,
    node: i32,
    partitions: &[(TopicPartition, i64)],
) -> Result<Vec<PartitionFetch>> {
    let config = cluster.config();
    let conn = cluster.connection(node).await?;
    let metadata = cluster.snapshot();
    let all_ids = partitions
        .iter()
        .all(|(tp, _)| metadata.topic_id(&tp.topic).is_some());
    let cap = (!all_ids).then_some(LAST_FETCH_VERSION_BY_NAME);
    let version = conn.version::<FetchRequest>(cap)?;
    let by_id = version > LAST_FETCH_VERSION_BY_NAME;

    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    let mut offsets: HashMap<TopicPartition, i64> = HashMap::with_capacity(partitions.len());
    for (tp, offset) in partitions {
        offsets.insert(tp.clone(), *offset);
        topics.entry(&tp.topic).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(config.max_partition_fetch_bytes()),
        );
    }
    let mut names_by_id: HashMap<Uuid, String> = HashMap::new();
    let fetch_topics = topics
        .into_iter()
        .map(|(name, parts)| {
            let t = FetchTopic::default().with_partitions(parts);
            if by_id {
                let id = metadata.topic_id(name).unwrap_or_default();
                names_by_id.insert(id, name.to_string());
                t.with_topic_id(id)
            } else {
                t.with_topic(TopicName(StrBytes::from_string(name.to_string())))
            }
        })
        .collect();
    let max_wait = config.fetch_max_wait();
    let mut request = FetchRequest::default()
        .with_max_wait_ms(i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX))
        .with_min_bytes(config.fetch_min_bytes())
        .with_max_bytes(config.fetch_max_bytes())
        .with_isolation_level(config.isolation_level().wire_value())
        .with_topics(fetch_topics);
    if version >= 11 {
        request = request.with_rack_id(StrBytes::from_string(config.client_rack().to_string()));
    }
    // The broker may hold the request for max.wait before answering.
    let timeout = config.request_timeout() + max_wait + Duration::from_millis(500);
    let response = conn.call_at(&request, version, timeout).await?;
    ClientError::check(response.error_code, None)?;

    let mut out = Vec::with_capacity(partitions.len());
    for topic in response.responses {
        let name = if by_id {
            match names_by_id.get(&topic.topic_id) {
                Some(n) => n.clone(),
                None => continue,
            }
        } else {
            topic.topic.0.to_string()
        };
        for p in topic.partitions {
            let tp = TopicPartition::new(name.clone(), p.partition_index);
            let Some(&fetch_offset) = offsets.get(&tp) else {
                continue;
            };
            let result = match ErrorCode::try_from_code(p.error_code) {
                Some(code) => Err(ClientError::kafka(code, None)),
                None => match &p.records {
                    Some(data) => {
                        let aborted: Option<Vec<(i64, i64)>> =
                            p.aborted_transactions.as_ref().map(|list| {
                                list.iter()
                                    .map(|a| (a.producer_id.0, a.first_offset))
                                    .collect()
                            });
                        decode_records(
                            &name,
                            p.partition_index,
                            data,
                            fetch_offset,
                            aborted.as_deref(),
                        )
                    }
                    None => Ok(Decoded::default()),
                },
            };
            out.push(PartitionFetch {
                tp,
                fetch_offset,
                result,
                high_watermark: p.high_watermark,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use strom_protocol::kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as RecTs,
    };

    /// A batch of `count` records with base offset `base`, as a broker stores it.
    fn batch(base: i64, count: i64, compression: Compression) -> Vec<u8> {
        producer_batch(base, count, compression, None)
    }

    /// A batch written by producer `transactional` in a transaction (or by no producer).
    fn producer_batch(
        base: i64,
        count: i64,
        compression: Compression,
        transactional: Option<i64>,
    ) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: transactional.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: transactional.unwrap_or(-1),
                producer_epoch: if transactional.is_some() { 0 } else { -1 },
                timestamp_type: RecTs::Creation,
                offset: i,
                sequence: i as i32 - 1,
                timestamp: 1_000 + i,
                key: Some(Bytes::from(format!("k{}", base + i))),
                value: Some(Bytes::from(format!("v{}", base + i))),
                headers: [(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"x")),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        let mut bytes = buf.to_vec();
        strom_protocol::batch::set_base_offset(&mut bytes, base);
        bytes
    }

    fn offsets(d: &Decoded) -> Vec<i64> {
        d.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn skips_records_below_the_fetch_offset() {
        let mut data = batch(0, 5, Compression::None);
        data.extend(batch(5, 5, Compression::Lz4));
        let data = Bytes::from(data);
        let d = decode_records("t", 0, &data, 3, None).unwrap();
        assert_eq!(offsets(&d), vec![3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(d.next_offset, Some(10));
        assert_eq!(d.records[0].key.as_deref(), Some(&b"k3"[..]));
        assert_eq!(d.records[0].value.as_deref(), Some(&b"v3"[..]));
        assert_eq!(d.records[0].timestamp, 1_003);
        assert_eq!(d.records[0].timestamp_type, TimestampType::CreateTime);
        assert_eq!(d.records[0].headers, vec![Header::new("h", Some("x"))]);
        // A whole batch below the offset is skipped without decoding.
        let d = decode_records("t", 0, &data, 7, None).unwrap();
        assert_eq!(offsets(&d), vec![7, 8, 9]);
    }

    #[test]
    fn ignores_a_partial_trailing_batch() {
        let mut data = batch(0, 3, Compression::Gzip);
        let second = batch(3, 3, Compression::None);
        for cut in [1, 20, 61, second.len() - 1] {
            let mut bytes = data.clone();
            bytes.extend_from_slice(&second[..cut]);
            let d = decode_records("t", 0, &Bytes::from(bytes), 0, None).unwrap();
            assert_eq!(offsets(&d), vec![0, 1, 2], "cut at {cut}");
            assert_eq!(d.next_offset, Some(3));
        }
        // Only a partial batch: nothing, and no position change.
        let d = decode_records("t", 0, &Bytes::from(second[..30].to_vec()), 3, None).unwrap();
        assert_eq!(d, Decoded::default());
        data.extend(second);
        assert_eq!(
            offsets(&decode_records("t", 0, &Bytes::from(data), 0, None).unwrap()).len(),
            6
        );
    }

    #[test]
    fn skips_control_batches_but_moves_past_them() {
        let mut control = batch(3, 1, Compression::None);
        // Set the control attribute bit and fix the CRC, as a broker-written marker has.
        let attributes = i16::from_be_bytes([control[21], control[22]]) | 0x20;
        control[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = strom_protocol::batch::compute_crc(&control);
        control[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut data = batch(0, 3, Compression::None);
        data.extend(control);
        let d = decode_records("t", 0, &Bytes::from(data), 0, None).unwrap();
        assert_eq!(offsets(&d), vec![0, 1, 2]);
        assert_eq!(d.next_offset, Some(4));
    }

    #[test]
    fn log_append_time_comes_from_the_batch() {
        let mut data = batch(0, 2, Compression::Snappy);
        strom_protocol::batch::set_log_append_time(&mut data, 42_000);
        let d = decode_records("t", 0, &Bytes::from(data), 0, None).unwrap();
        assert!(
            d.records
                .iter()
                .all(|r| r.timestamp == 42_000 && r.timestamp_type == TimestampType::LogAppendTime)
        );
    }

    #[test]
    fn corrupt_batches_are_errors() {
        let mut data = batch(0, 2, Compression::Zstd);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let err = decode_records("t", 0, &Bytes::from(data), 0, None).unwrap_err();
        assert!(err.to_string().contains("cannot decode"), "{err}");
    }

    fn marker(offset: i64, producer_id: i64, commit: bool) -> Vec<u8> {
        let mut bytes = strom_protocol::batch::EndTxnMarker {
            producer_id,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit,
            timestamp: 1_000,
        }
        .to_batch();
        strom_protocol::batch::set_base_offset(&mut bytes, offset);
        bytes
    }

    #[test]
    fn read_committed_drops_aborted_transactions_until_their_marker() {
        let mut data = producer_batch(0, 2, Compression::None, Some(1)); // aborted
        data.extend(producer_batch(2, 2, Compression::Lz4, Some(2))); // committed
        data.extend(marker(4, 1, false));
        data.extend(producer_batch(5, 1, Compression::None, Some(1))); // committed later
        data.extend(marker(6, 2, true));
        data.extend(marker(7, 1, true));
        data.extend(batch(8, 2, Compression::None));
        let data = Bytes::from(data);
        let aborted = [(1, 0)];
        let d = decode_records("t", 0, &data, 0, Some(&aborted)).unwrap();
        assert_eq!(offsets(&d), vec![2, 3, 5, 8, 9]);
        assert_eq!(d.next_offset, Some(10));
        let d = decode_records("t", 0, &data, 1, Some(&aborted)).unwrap();
        assert_eq!(offsets(&d), vec![2, 3, 5, 8, 9]);
        // Without aborted transactions in range everything but the markers is read.
        let d = decode_records("t", 0, &data, 0, Some(&[])).unwrap();
        assert_eq!(offsets(&d), vec![0, 1, 2, 3, 5, 8, 9]);
        let d = decode_records("t", 0, &data, 0, None).unwrap();
        assert_eq!(offsets(&d), vec![0, 1, 2, 3, 5, 8, 9]);
    }
}
