//! The partitions this node hosts and the produce/fetch operations on them.
//!
//! The set of local partitions follows the metadata image ([`ReplicaManager::apply_image`]):
//! a partition with this node among its replicas gets a log; a topic gone from the image loses
//! its logs. Lookups on the request path go through an immutable snapshot ([`LocalTopics`]) that
//! is swapped as a whole, so produce and fetch never wait for metadata changes.
//!
//! Each partition publishes its high watermark on a `watch` channel: a fetch with nothing to
//! return waits on the channels of the partitions it asked for, and is woken by the append that
//! moves one of them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use strom_metadata::MetadataImage;
use strom_metadata::config::{self as defs, BrokerConfigView};
use strom_metadata::records::ConfigResourceType;
use strom_protocol::batch::{self, Compression, ProduceLimits, TimestampType};
use strom_protocol::messages::ProducerId;
use strom_protocol::messages::fetch_response::AbortedTransaction;
use strom_protocol::{ApiError, ErrorCode};
use strom_storage::{
    AppendOrigin, Log, LogAppendInfo, LogConfig, LogManager, LogReadResult, StorageError,
    TopicPartition,
};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

/// Settings of one partition resolved from its topic's configs, cached so the produce path does
/// not resolve config strings per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartitionSettings {
    pub(crate) limits: ProduceLimits,
    pub(crate) log_config: LogConfig,
    pub(crate) min_insync_replicas: i32,
    /// `compression.type`: `None` keeps the producer's codec (`producer`).
    pub(crate) compression: Option<Compression>,
    /// `cleanup.policy` contains `compact`: records need keys.
    pub(crate) compacted: bool,
}

impl PartitionSettings {
    pub(crate) fn resolve(overrides: &BTreeMap<String, String>, broker: &BrokerConfigView) -> Self {
        let effective = defs::effective_topic_configs(overrides, broker);
        let num = |key: &str, default: i64| -> i64 {
            effective
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        // Topic configs, plus the broker-level one each log applies.
        let mut log_settings = effective.clone();
        if let Some(v) = broker.value("producer.id.expiration.ms") {
            log_settings.insert("producer.id.expiration.ms".to_string(), v);
        }
        let timestamp_type = match effective.get("message.timestamp.type").map(String::as_str) {
            Some("LogAppendTime") => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        };
        Self {
            limits: ProduceLimits {
                max_batch_bytes: num("max.message.bytes", 1_048_588).max(0) as usize,
                timestamp_type,
                timestamp_before_max_ms: num("message.timestamp.before.max.ms", i64::MAX),
                timestamp_after_max_ms: num("message.timestamp.after.max.ms", i64::MAX),
            },
            log_config: LogConfig::from_configs(|key| log_settings.get(key).map(String::as_str)),
            min_insync_replicas: num("min.insync.replicas", 1) as i32,
            compression: match effective.get("compression.type").map(String::as_str) {
                Some("uncompressed") => Some(Compression::None),
                Some("gzip") => Some(Compression::Gzip),
                Some("snappy") => Some(Compression::Snappy),
                Some("lz4") => Some(Compression::Lz4),
                Some("zstd") => Some(Compression::Zstd),
                _ => None,
            },
            compacted: effective
                .get("cleanup.policy")
                .is_some_and(|p| p.split(',').any(|p| p.trim() == "compact")),
        }
    }
}

/// One hosted partition.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) tp: TopicPartition,
    pub(crate) log: Arc<Log>,
    pub(crate) leader_epoch: i32,
    pub(crate) isr_len: usize,
    settings: RwLock<Arc<PartitionSettings>>,
    /// Single node: every appended record is replicated to the whole ISR (itself), so the high
    /// watermark is the log end offset once the append returns.
    high_watermark: watch::Sender<i64>,
}

impl Partition {
    pub(crate) fn settings(&self) -> Arc<PartitionSettings> {
        self.settings.read().expect("settings lock").clone()
    }

    pub(crate) fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Single node: what was appended is replicated. The log learns it first (it releases
    /// transactions whose marker the high watermark passed, moving the last stable offset), then
    /// waiting fetches are woken.
    fn advance_high_watermark(&self, high_watermark: i64) {
        self.log.set_high_watermark(high_watermark);
        self.high_watermark.send_replace(high_watermark);
    }

    /// Validates and appends the records a client produced, straight from the request buffer.
    pub(crate) fn append_produced(
        &self,
        records: &[u8],
        acks: i16,
        now_ms: i64,
    ) -> Result<(LogAppendInfo, Option<i64>), ApiError> {
        let settings = self.settings();
        let header = batch::validate_produce(records, &settings.limits, now_ms)
            .map_err(|e| ApiError::new(e.error_code(), e.to_string()))?;
        if acks == -1 && (self.isr_len as i32) < settings.min_insync_replicas {
            return Err(ApiError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "The size of the current ISR {} is insufficient to satisfy the min.isr requirement of {} for partition {}",
                    self.isr_len, settings.min_insync_replicas, self.tp
                ),
            ));
        }
        let batch = &records[..header.size()];
        // Looking inside a batch means decompressing untrusted bytes: bound what may come out.
        let limit = settings
            .limits
            .max_batch_bytes
            .saturating_mul(64)
            .max(64 << 20);
        let invalid = |e: batch::BatchError| ApiError::new(e.error_code(), e.to_string());
        if settings.compacted {
            let records = batch::records_section(batch, limit).map_err(invalid)?;
            if batch::any_null_key(&records).map_err(invalid)? {
                return Err(ApiError::new(
                    ErrorCode::InvalidRecord,
                    format!(
                        "Compacted topic cannot accept message without key in topic partition {}.",
                        self.tp
                    ),
                ));
            }
        }
        let rewritten = match settings.compression {
            Some(target) if header.compression() != Some(target) => {
                let rewritten = batch::recompress(batch, target, limit).map_err(invalid)?;
                if rewritten.len() > settings.limits.max_batch_bytes {
                    return Err(invalid(batch::BatchError::TooLarge {
                        size: rewritten.len(),
                        limit: settings.limits.max_batch_bytes,
                    }));
                }
                Some(rewritten)
            }
            _ => None,
        };
        let log_append_time =
            (settings.limits.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let info = self
            .log
            .append(
                rewritten.as_deref().unwrap_or(batch),
                self.leader_epoch,
                log_append_time,
            )
            .map_err(storage_error)?;
        // A retried batch the log already has is answered with its original offsets and
        // moves nothing.
        if !info.duplicate {
            self.advance_high_watermark(info.last_offset + 1);
        }
        Ok((info, log_append_time))
    }

    /// Appends a batch the broker built itself (coordinator records): no produce validation.
    pub(crate) fn append_internal(&self, batch: &[u8]) -> Result<LogAppendInfo, ApiError> {
        let info = self
            .log
            .append_as(batch, self.leader_epoch, None, AppendOrigin::Coordinator)
            .map_err(storage_error)?;
        self.advance_high_watermark(info.last_offset + 1);
        Ok(info)
    }

    /// Writes a transaction marker (WriteTxnMarkers, or the local transaction coordinator).
    pub(crate) fn append_marker(
        &self,
        marker: &strom_protocol::batch::EndTxnMarker,
    ) -> Result<LogAppendInfo, ApiError> {
        let info = self
            .log
            .append_control_marker(marker, self.leader_epoch)
            .map_err(storage_error)?;
        // Also wakes read_committed fetches waiting for the last stable offset to move.
        self.advance_high_watermark(info.last_offset + 1);
        Ok(info)
    }

    /// Reads for a read_committed consumer: never past the last stable offset; with the
    /// aborted transactions of what was read, in Fetch's form.
    pub(crate) fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<(LogReadResult, i64, Option<Vec<AbortedTransaction>>), StorageError> {
        let read =
            self.log
                .read_committed(offset, max_bytes, self.high_watermark(), min_one_batch)?;
        let aborted = read
            .aborted
            .iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset)
            })
            .collect();
        Ok((read.read, read.last_stable_offset, Some(aborted)))
    }

    /// Reads for a consumer: never past the high watermark.
    pub(crate) fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<LogReadResult, StorageError> {
        self.log
            .read(offset, max_bytes, self.high_watermark(), min_one_batch)
    }
}

/// Maps a storage failure to what the client sees, logging the ones that are our problem.
pub(crate) fn storage_error(e: StorageError) -> ApiError {
    let code = e.error_code();
    if code == ErrorCode::KafkaStorageError {
        tracing::error!(error = %e, "storage error");
    }
    ApiError::new(code, e.to_string())
}

/// The hosted partitions of one topic.
#[derive(Debug)]
pub(crate) struct LocalTopic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    pub(crate) partitions: BTreeMap<i32, Arc<Partition>>,
}

/// An immutable snapshot of the hosted partitions.
#[derive(Debug, Default)]
pub(crate) struct LocalTopics {
    by_name: HashMap<String, Arc<LocalTopic>>,
    by_id: HashMap<Uuid, Arc<LocalTopic>>,
}

impl LocalTopics {
    pub(crate) fn by_name(&self, name: &str) -> Option<&Arc<LocalTopic>> {
        self.by_name.get(name)
    }

    pub(crate) fn by_id(&self, id: &Uuid) -> Option<&Arc<LocalTopic>> {
        self.by_id.get(id)
    }
}

#[derive(Debug)]
pub(crate) struct ReplicaManager {
    node_id: i32,
    logs: Arc<LogManager>,
    topics: RwLock<Arc<LocalTopics>>,
    /// Offset of the last image applied; also serialises `apply_image` calls.
    applied: Mutex<i64>,
}

impl ReplicaManager {
    pub(crate) fn new(node_id: i32, logs: Arc<LogManager>) -> Self {
        Self {
            node_id,
            logs,
            topics: RwLock::new(Arc::new(LocalTopics::default())),
            applied: Mutex::new(-2),
        }
    }

    pub(crate) fn topics(&self) -> Arc<LocalTopics> {
        self.topics.read().expect("topics lock").clone()
    }

    pub(crate) fn log_manager(&self) -> &Arc<LogManager> {
        &self.logs
    }

    /// Brings the hosted partitions in line with `image`: creates logs for new partitions of
    /// this node, updates settings, and deletes the logs of topics the image no longer has.
    /// Idempotent; images older than the last one applied are ignored.
    pub(crate) fn apply_image(&self, image: &MetadataImage, broker: &BrokerConfigView) {
        let mut applied = self.applied.lock().expect("apply lock");
        if image.offset <= *applied {
            return;
        }
        let current = self.topics();
        let mut next = LocalTopics::default();
        for topic in image.topics() {
            let overrides = image
                .configs(ConfigResourceType::Topic, &topic.name)
                .cloned()
                .unwrap_or_default();
            let settings = Arc::new(PartitionSettings::resolve(&overrides, broker));
            let existing = current.by_id(&topic.id);
            let mut partitions = BTreeMap::new();
            for (&index, p) in &topic.partitions {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                let reuse = existing
                    .and_then(|t| t.partitions.get(&index))
                    .filter(|old| old.leader_epoch == p.leader_epoch && old.isr_len == p.isr.len());
                if let Some(old) = reuse {
                    let mut s = old.settings.write().expect("settings lock");
                    if **s != *settings {
                        if s.log_config != settings.log_config {
                            old.log.update_config(settings.log_config.clone());
                        }
                        *s = settings.clone();
                    }
                    drop(s);
                    partitions.insert(index, old.clone());
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), index);
                let log = match self
                    .logs
                    .get_or_create(&tp, topic.id, settings.log_config.clone())
                {
                    Ok(log) => log,
                    Err(e) => {
                        tracing::error!(%tp, error = %e, "cannot open log; partition stays offline");
                        continue;
                    }
                };
                let hw = existing
                    .and_then(|t| t.partitions.get(&index))
                    .map(|old| old.high_watermark.clone())
                    .unwrap_or_else(|| watch::Sender::new(log.log_end_offset()));
                log.set_high_watermark(log.log_end_offset());
                hw.send_replace(log.log_end_offset());
                partitions.insert(
                    index,
                    Arc::new(Partition {
                        tp,
                        log,
                        leader_epoch: p.leader_epoch,
                        isr_len: p.isr.len(),
                        settings: RwLock::new(settings.clone()),
                        high_watermark: hw,
                    }),
                );
            }
            if partitions.is_empty() {
                continue;
            }
            let local = Arc::new(LocalTopic {
                name: topic.name.clone(),
                id: topic.id,
                partitions,
            });
            next.by_name.insert(local.name.clone(), local.clone());
            next.by_id.insert(local.id, local);
        }
        // Topics that left the image (deleted, or re-created under a new id): drop their logs.
        for old in current.by_id.values() {
            if next.by_id.contains_key(&old.id) {
                continue;
            }
            for p in old.partitions.values() {
                info!(tp = %p.tp, "deleting log of deleted topic");
                if let Err(e) = self.logs.delete(&p.tp) {
                    warn!(tp = %p.tp, error = %e, "cannot delete log");
                }
            }
        }
        // At start-up, logs on disk that the image does not know are left alone and unserved:
        // they are reported, not deleted, in case the metadata log itself was lost.
        if *applied == -2 {
            for log in self.logs.logs() {
                let tp = log.topic_partition();
                let known = next
                    .by_name(&tp.topic)
                    .is_some_and(|t| t.partitions.contains_key(&tp.partition));
                if !known {
                    warn!(%tp, "log directory belongs to no topic in the metadata; not serving it");
                }
            }
        }
        *self.topics.write().expect("topics lock") = Arc::new(next);
        *applied = image.offset;
    }
}
