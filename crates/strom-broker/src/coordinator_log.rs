//! What the group and the transaction coordinator hosts share: reading a coordinator
//! partition back record by record (to rebuild a state machine), encoding emitted records as
//! one batch, and the timer task that fires a state machine's deadlines.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use strom_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::replica_manager::Partition;

/// The producer a batch of coordinator records is written for: TxnOffsetCommit writes its
/// offsets in a transactional batch of the producer, so that its markers settle them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchProducer {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
}

/// Calls `f` with every record of `partition`, from its log start to its end, in order.
/// Control records (transaction markers) are included: the group coordinator needs them.
pub(crate) fn for_each_record(
    partition: &Partition,
    mut f: impl FnMut(&Record),
) -> Result<(), String> {
    let log = &partition.log;
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let read = log
            .read(offset, 1 << 20, end, true)
            .map_err(|e| e.to_string())?;
        if read.records.is_empty() {
            break;
        }
        let mut buf: Bytes = read.records;
        let mut last = offset;
        for set in RecordBatchDecoder::decode_all(&mut buf).map_err(|e| e.to_string())? {
            for record in &set.records {
                last = last.max(record.offset);
                // The first batch may start before `offset`.
                if record.offset >= offset {
                    f(record);
                }
            }
        }
        offset = last + 1;
    }
    Ok(())
}

/// Encodes `(key, value)` pairs as one uncompressed v2 batch stamped `now_ms`: a plain one,
/// or a transactional one of `producer`.
pub(crate) fn encode_batch(
    records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    producer: Option<BatchProducer>,
    now_ms: i64,
) -> Result<BytesMut, String> {
    let (producer_id, producer_epoch) =
        producer.map_or((-1, -1), |p| (p.producer_id, p.producer_epoch));
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps one batch while offset - sequence is constant; this also
            // gives the batch no base sequence (coordinator writes are not sequenced).
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(batch)
}

/// The control type of a transaction marker record (0 ABORT, 1 COMMIT), from its key.
pub(crate) fn marker_is_commit(record: &Record) -> Option<bool> {
    let key = record.key.as_deref()?;
    let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    match kind {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// A hosted state machine with deadlines.
pub(crate) trait Timed: Send + Sync + 'static {
    fn next_deadline(&self) -> Option<i64>;
    /// Runs the state machine's timers at `now_ms` and commits what they did.
    fn fire(&self, now_ms: i64);
    /// Notified when a request may have moved the next deadline.
    fn wake(&self) -> &Notify;
    fn stopped(&self) -> &CancellationToken;
}

/// Sleeps until the next deadline (or a wake-up) and fires it, until stopped.
pub(crate) async fn timer_loop<S: Timed>(shard: Arc<S>) {
    loop {
        let deadline = shard.next_deadline();
        let sleep = async {
            match deadline {
                Some(at) => {
                    let wait = (at - crate::now_ms()).max(0) as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shard.stopped().cancelled() => return,
            _ = shard.wake().notified() => continue,
            _ = sleep => shard.fire(crate::now_ms()),
        }
    }
}

/// Starts the timer task of a freshly loaded shard.
pub(crate) fn spawn_timer<S: Timed>(shard: &Arc<S>, what: &str) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(timer_loop(shard.clone()));
        }
        Err(_) => tracing::error!("no runtime for the {what} timer"),
    }
}
