//! A zero-copy view over Kafka v2 record batches (magic 2), the only format strom stores.
//!
//! ```text
//!  offset  field                    covered by CRC-32C
//!  0       base_offset        i64   no   <- patched by the broker when it assigns offsets
//!  8       batch_length       i32   no   (bytes after this field)
//!  12      partition_leader_epoch i32 no <- patched by the broker
//!  16      magic              i8    no
//!  17      crc                u32   no
//!  21      attributes         i16   yes  (compression 0-2, timestamp type 3, txn 4, control 5)
//!  23      last_offset_delta  i32   yes
//!  27      base_timestamp     i64   yes
//!  35      max_timestamp      i64   yes
//!  43      producer_id        i64   yes
//!  51      producer_epoch     i16   yes
//!  53      base_sequence      i32   yes
//!  57      records_count      i32   yes
//!  61      records...               yes
//! ```
//!
//! The broker reads only this header: it validates it, checks the CRC, patches the base offset
//! (and for `LogAppendTime` topics the max timestamp, re-computing the CRC) and stores the bytes
//! as the client sent them. Records are never decoded on the produce or fetch path; the one walk
//! over records ([`count_uncompressed_records`]) reads only their length prefixes.

use crate::ErrorCode;

/// Bytes in front of `batch_length` that it does not count: `base_offset` + `batch_length`.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, up to and including `records_count`.
pub const HEADER_LEN: usize = 61;
/// Position of the magic byte; the same in every message format version.
pub const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;

/// The only record format strom accepts and stores.
pub const CURRENT_MAGIC: i8 = 2;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;
const DELETE_HORIZON_MASK: i16 = 0x40;

/// Compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn from_attributes(attributes: i16) -> Option<Self> {
        Some(match attributes & COMPRESSION_MASK {
            0 => Self::None,
            1 => Self::Gzip,
            2 => Self::Snappy,
            3 => Self::Lz4,
            4 => Self::Zstd,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

/// Which clock a batch's timestamps come from (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Why bytes are not a valid batch. Small and allocation-free: it is built on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated: needs {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    #[error("record batch magic {0} is not supported; only magic 2 is")]
    UnsupportedMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unknown compression codec id {0}")]
    InvalidCompression(i16),
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    InconsistentCount { count: i32, last_offset_delta: i32 },
    #[error("records section holds {found} records, header says {expected}")]
    RecordCountMismatch { expected: i32, found: i64 },
    #[error("malformed record inside the batch")]
    MalformedRecord,
    #[error("produce requests must carry exactly one record batch, found {0}")]
    NotOneBatch(usize),
    #[error("base offset of a produced batch must be 0, it is {0}")]
    NonZeroBaseOffset(i64),
    #[error("clients may not write control batches")]
    ControlBatchFromClient,
    #[error("producer id {producer_id} with invalid base sequence {base_sequence}")]
    InvalidSequence {
        producer_id: i64,
        base_sequence: i32,
    },
    #[error("batch of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("timestamp {timestamp} is out of the accepted range around {now}")]
    TimestampOutOfRange { timestamp: i64, now: i64 },
    #[error("compressed records cannot be decompressed")]
    CorruptCompressed,
    #[error("records decompress to more than {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("a record without a key cannot be written to a compacted topic")]
    NullKeyInCompactedTopic,
}

impl BatchError {
    /// The Kafka error code a producer gets for this problem (what `LogValidator` returns).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Truncated { .. }
            | Self::InvalidLength(_)
            | Self::CrcMismatch { .. }
            | Self::InvalidCompression(_)
            | Self::MalformedRecord
            | Self::CorruptCompressed => ErrorCode::CorruptMessage,
            Self::UnsupportedMagic(_)
            | Self::InconsistentCount { .. }
            | Self::RecordCountMismatch { .. }
            | Self::NotOneBatch(_)
            | Self::NonZeroBaseOffset(_)
            | Self::ControlBatchFromClient
            | Self::InvalidSequence { .. }
            | Self::NullKeyInCompactedTopic => ErrorCode::InvalidRecord,
            Self::TooLarge { .. } | Self::DecompressedTooLarge { .. } => ErrorCode::MessageTooLarge,
            Self::TimestampOutOfRange { .. } => ErrorCode::InvalidTimestamp,
        }
    }
}

/// The fixed-size header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks the magic byte and that the length field
    /// is at least a header's worth; it does not check that `buf` holds the whole batch.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < MAGIC_OFFSET + 1 {
            return Err(BatchError::Truncated {
                needed: MAGIC_OFFSET + 1,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != CURRENT_MAGIC {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let batch_length = i32_at(buf, 8);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::InvalidLength(batch_length));
        }
        Ok(Self {
            base_offset: i64_at(buf, 0),
            batch_length,
            partition_leader_epoch: i32_at(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: u32::from_be_bytes(buf[CRC_OFFSET..CRC_OFFSET + 4].try_into().expect("4 bytes")),
            attributes: i16_at(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: i32_at(buf, 23),
            base_timestamp: i64_at(buf, 27),
            max_timestamp: i64_at(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: i64_at(buf, 43),
            producer_epoch: i16_at(buf, 51),
            base_sequence: i32_at(buf, 53),
            records_count: i32_at(buf, 57),
        })
    }

    /// Total size of the batch on the wire and on disk.
    pub fn size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// `None` for codec ids 5-7, which no Kafka version defines.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & DELETE_HORIZON_MASK != 0
    }

    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// CRC-32C of a whole batch as stored in its header (from `attributes` to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Checks the stored CRC of one whole batch.
pub fn verify_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), BatchError> {
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Sets the base offset in place; it is outside the CRC, so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets the partition leader epoch in place; outside the CRC too.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Marks a batch as `LogAppendTime` with `now` as its max timestamp and re-computes the CRC,
/// as Kafka does for topics with `message.timestamp.type=LogAppendTime`.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16_at(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_MASK;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A copy of a batch's header with the fields the broker sets on append: base offset,
/// partition leader epoch and, for `LogAppendTime` topics, the timestamp type and max timestamp
/// (with the CRC re-computed over the new header and the untouched records).
///
/// Writing this header followed by `batch[HEADER_LEN..]` stores the patched batch without
/// copying its records, which is what the produce path does.
pub fn patched_header(
    batch: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) -> [u8; HEADER_LEN] {
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&batch[..HEADER_LEN]);
    set_base_offset(&mut head, base_offset);
    set_partition_leader_epoch(&mut head, leader_epoch);
    if let Some(now_ms) = log_append_time {
        let attributes = i16_at(&head, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_MASK;
        head[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        head[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&head[ATTRIBUTES_OFFSET..]),
            &batch[HEADER_LEN..],
        );
        head[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    head
}

/// Control record type of an ABORT transaction marker (Kafka's `ControlRecordType.ABORT`).
pub const CONTROL_TYPE_ABORT: i16 = 0;
/// Control record type of a COMMIT transaction marker (Kafka's `ControlRecordType.COMMIT`).
pub const CONTROL_TYPE_COMMIT: i16 = 1;
/// Size of a transaction marker batch: the header and its one 17-byte control record.
pub const END_TXN_MARKER_BATCH_LEN: usize = HEADER_LEN + 17;

/// A transaction marker (Kafka's `EndTransactionMarker`), which the transaction coordinator has
/// the partition leaders write (WriteTxnMarkers) to end a producer's transaction on each
/// partition: read_committed consumers and the last stable offset move on only when they see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Epoch of the coordinator that decided the outcome: a partition refuses markers from an
    /// older coordinator epoch than the last one it saw for the producer (a zombie coordinator).
    pub coordinator_epoch: i32,
    /// COMMIT (control type 1) when true, ABORT (0) when false.
    pub commit: bool,
    /// The batch's base and max timestamp (CreateTime).
    pub timestamp: i64,
}

impl EndTxnMarker {
    /// The control type the marker's record key carries.
    pub fn control_type(&self) -> i16 {
        if self.commit {
            CONTROL_TYPE_COMMIT
        } else {
            CONTROL_TYPE_ABORT
        }
    }

    /// The v2 batch Kafka's `MemoryRecords.withEndTransactionMarker` builds: base offset 0,
    /// partition leader epoch -1 (both set on append), attributes transactional | control,
    /// CreateTime, uncompressed, base sequence -1, and one record whose key is
    /// `(version i16 = 0, type i16)` and whose value is `(version i16 = 0, coordinator_epoch
    /// i32)`, with a valid CRC-32C. Byte for byte what Kafka writes, so every client and tool
    /// recognises it.
    pub fn to_batch(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(END_TXN_MARKER_BATCH_LEN);
        out.extend_from_slice(&0i64.to_be_bytes()); // base offset
        out.extend_from_slice(&((END_TXN_MARKER_BATCH_LEN - LOG_OVERHEAD) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.push(CURRENT_MAGIC as u8);
        out.extend_from_slice(&[0; 4]); // CRC, below
        out.extend_from_slice(&(TRANSACTIONAL_MASK | CONTROL_MASK).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        out.extend_from_slice(&1i32.to_be_bytes()); // records count
        // The record: length 16, attributes 0, timestamp delta 0, offset delta 0 (zig-zag
        // varints), key of 4 bytes, value of 6 bytes, no headers.
        out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00, 0x08]);
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&self.control_type().to_be_bytes());
        out.push(0x0c);
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        out.push(0x00);
        debug_assert_eq!(out.len(), END_TXN_MARKER_BATCH_LEN);
        let crc = compute_crc(&out);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Iterates over the batches laid end to end in `buf` (a log segment or a fetch response),
/// yielding each header with its whole batch. Checks framing only, not CRCs. A trailing partial
/// batch (a fetch cut at `max_bytes`, or a torn write) yields one `Truncated` error and ends.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    position: usize,
    done: bool,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            position: 0,
            done: false,
        }
    }

    /// Byte position of the next batch, i.e. the end of the last one yielded.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        let result = BatchHeader::parse(rest).and_then(|header| {
            let size = header.size();
            if rest.len() < size {
                Err(BatchError::Truncated {
                    needed: size,
                    available: rest.len(),
                })
            } else {
                Ok((header, &rest[..size]))
            }
        });
        match &result {
            Ok((header, _)) => self.position += header.size(),
            Err(_) => self.done = true,
        }
        Some(result)
    }
}

/// Reads a zig-zag varint as Kafka encodes record fields; `None` if malformed or truncated.
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// Counts the records in an uncompressed batch by their length prefixes, without decoding them,
/// and checks that they fill the batch exactly.
pub fn count_uncompressed_records(batch: &[u8]) -> Result<i64, BatchError> {
    let mut pos = HEADER_LEN;
    let mut count = 0i64;
    while pos < batch.len() {
        let len = read_varint(batch, &mut pos).ok_or(BatchError::MalformedRecord)?;
        if len <= 0 || len as usize > batch.len() - pos {
            return Err(BatchError::MalformedRecord);
        }
        pos += len as usize;
        count += 1;
    }
    Ok(count)
}

/// The records section of a whole batch, decompressed (at most `limit` bytes).
pub fn records_section(
    batch: &[u8],
    limit: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    let codec = header.compression().ok_or(BatchError::InvalidCompression(
        header.attributes & COMPRESSION_MASK,
    ))?;
    let body = &batch[HEADER_LEN..header.size().min(batch.len())];
    if codec == Compression::None {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    crate::compression::decompress(codec, body, limit)
        .map(std::borrow::Cow::Owned)
        .map_err(|e| match e {
            crate::compression::CodecError::TooLarge { limit, .. } => {
                BatchError::DecompressedTooLarge { limit }
            }
            _ => BatchError::CorruptCompressed,
        })
}

/// Whether any record in an (uncompressed) records section has a null key. Reads each record's
/// length, timestamp delta, offset delta and key length only.
pub fn any_null_key(records: &[u8]) -> Result<bool, BatchError> {
    let mut pos = 0;
    while pos < records.len() {
        let len = read_varint(records, &mut pos).ok_or(BatchError::MalformedRecord)?;
        if len <= 0 || len as usize > records.len() - pos {
            return Err(BatchError::MalformedRecord);
        }
        let end = pos + len as usize;
        let record = &records[..end];
        let mut at = pos + 1; // attributes
        read_varint(record, &mut at).ok_or(BatchError::MalformedRecord)?; // timestamp delta
        read_varint(record, &mut at).ok_or(BatchError::MalformedRecord)?; // offset delta
        let key_len = read_varint(record, &mut at).ok_or(BatchError::MalformedRecord)?;
        if key_len < 0 {
            return Ok(true);
        }
        pos = end;
    }
    Ok(false)
}

/// The same batch with its records compressed by `target` instead (Kafka's broker-side
/// recompression when a topic's `compression.type` differs from the producer's). Header
/// fields are kept; the codec bits, the length and the CRC are new.
pub fn recompress(batch: &[u8], target: Compression, limit: usize) -> Result<Vec<u8>, BatchError> {
    let records = records_section(batch, limit)?;
    let body = crate::compression::compress(target, &records)
        .map_err(|_| BatchError::CorruptCompressed)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::DecompressedTooLarge { limit })?;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let codec_bits: i16 = match target {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    };
    let attributes = (i16_at(&out, ATTRIBUTES_OFFSET) & !COMPRESSION_MASK) | codec_bits;
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Limits a produced batch is checked against; they come from the topic's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceLimits {
    /// `max.message.bytes`: the largest batch accepted.
    pub max_batch_bytes: usize,
    /// `message.timestamp.type`: `LogAppendTime` skips the bounds below.
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
}

/// Validates the records a client produced to one partition, as Kafka's `LogValidator` does for
/// magic 2: exactly one batch, framing, base offset 0, CRC, compression codec, record count, size
/// and timestamp bounds, no control batches. Returns the batch header on success.
pub fn validate_produce(
    records: &[u8],
    limits: &ProduceLimits,
    now_ms: i64,
) -> Result<BatchHeader, BatchError> {
    let mut batches = Batches::new(records);
    let (header, batch) = match batches.next() {
        Some(r) => r?,
        None => return Err(BatchError::NotOneBatch(0)),
    };
    if batches.position() != records.len() {
        let extra = 1 + batches.count();
        return Err(BatchError::NotOneBatch(extra));
    }
    if batch.len() > limits.max_batch_bytes {
        return Err(BatchError::TooLarge {
            size: batch.len(),
            limit: limits.max_batch_bytes,
        });
    }
    if header.base_offset != 0 {
        return Err(BatchError::NonZeroBaseOffset(header.base_offset));
    }
    verify_crc(&header, batch)?;
    let compression = header.compression().ok_or(BatchError::InvalidCompression(
        header.attributes & COMPRESSION_MASK,
    ))?;
    if header.records_count <= 0 || header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::InconsistentCount {
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if compression == Compression::None {
        let found = count_uncompressed_records(batch)?;
        if found != header.records_count as i64 {
            return Err(BatchError::RecordCountMismatch {
                expected: header.records_count,
                found,
            });
        }
    }
    if header.is_control() {
        return Err(BatchError::ControlBatchFromClient);
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(BatchError::InvalidSequence {
            producer_id: header.producer_id,
            base_sequence: header.base_sequence,
        });
    }
    if limits.timestamp_type == TimestampType::CreateTime {
        // The header carries the first and the largest timestamp; records are not decoded to
        // find the smallest (see docs/differences.md).
        for timestamp in [header.base_timestamp, header.max_timestamp] {
            let too_old = now_ms.saturating_sub(timestamp) > limits.timestamp_before_max_ms;
            let too_new = timestamp.saturating_sub(now_ms) > limits.timestamp_after_max_ms;
            if timestamp >= 0 && (too_old || too_new) {
                return Err(BatchError::TimestampOutOfRange {
                    timestamp,
                    now: now_ms,
                });
            }
        }
    }
    Ok(header)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression as KpCompression, Record, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType as KpTimestampType,
    };

    pub(crate) fn record(offset: i64, ts: i64, value: &[u8]) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: KpTimestampType::Creation,
            offset,
            // kafka-protocol groups records into one batch only while offset - sequence is
            // constant; offset - 1 also makes the batch's base sequence -1 (no producer id).
            sequence: offset as i32 - 1,
            timestamp: ts,
            key: Some(bytes::Bytes::from_static(b"k")),
            value: Some(bytes::Bytes::copy_from_slice(value)),
            headers: Default::default(),
        }
    }

    pub(crate) fn encode(records: &[Record], compression: KpCompression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn limits() -> ProduceLimits {
        ProduceLimits {
            max_batch_bytes: 1 << 20,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
        }
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn valid_batch_passes_and_header_matches() {
        let recs: Vec<_> = (0..3).map(|i| record(i, NOW + i, b"value")).collect();
        let bytes = encode(&recs, KpCompression::None);
        let h = validate_produce(&bytes, &limits(), NOW).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, NOW);
        assert_eq!(h.max_timestamp, NOW + 2);
        assert_eq!(h.size(), bytes.len());
        assert_eq!(h.compression(), Some(Compression::None));
    }

    #[test]
    fn compressed_batches_validate_without_decompression() {
        for c in [
            KpCompression::Gzip,
            KpCompression::Snappy,
            KpCompression::Lz4,
            KpCompression::Zstd,
        ] {
            let recs: Vec<_> = (0..10).map(|i| record(i, NOW, b"abcabcabc")).collect();
            let bytes = encode(&recs, c);
            let h = validate_produce(&bytes, &limits(), NOW).unwrap();
            assert_eq!(h.records_count, 10);
        }
    }

    #[test]
    fn corrupt_crc_is_refused() {
        let mut bytes = encode(&[record(0, NOW, b"v")], KpCompression::None);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let err = validate_produce(&bytes, &limits(), NOW).unwrap_err();
        assert!(matches!(err, BatchError::CrcMismatch { .. }));
        assert_eq!(err.error_code(), ErrorCode::CorruptMessage);
    }

    #[test]
    fn old_magic_is_invalid_record() {
        let mut bytes = encode(&[record(0, NOW, b"v")], KpCompression::None);
        bytes[MAGIC_OFFSET] = 1;
        let err = validate_produce(&bytes, &limits(), NOW).unwrap_err();
        assert_eq!(err, BatchError::UnsupportedMagic(1));
        assert_eq!(err.error_code(), ErrorCode::InvalidRecord);
    }

    #[test]
    fn two_batches_are_refused() {
        let mut bytes = encode(&[record(0, NOW, b"v")], KpCompression::None);
        bytes.extend_from_slice(&bytes.clone());
        assert_eq!(
            validate_produce(&bytes, &limits(), NOW).unwrap_err(),
            BatchError::NotOneBatch(2)
        );
        assert_eq!(
            validate_produce(&[], &limits(), NOW).unwrap_err(),
            BatchError::NotOneBatch(0)
        );
    }

    #[test]
    fn truncated_batch_is_corrupt() {
        let bytes = encode(&[record(0, NOW, b"value")], KpCompression::None);
        let err = validate_produce(&bytes[..bytes.len() - 1], &limits(), NOW).unwrap_err();
        assert!(matches!(err, BatchError::Truncated { .. }));
        assert_eq!(err.error_code(), ErrorCode::CorruptMessage);
    }

    #[test]
    fn oversize_batch_is_message_too_large() {
        let bytes = encode(&[record(0, NOW, &[7u8; 2000])], KpCompression::None);
        let l = ProduceLimits {
            max_batch_bytes: 1000,
            ..limits()
        };
        let err = validate_produce(&bytes, &l, NOW).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::MessageTooLarge);
    }

    #[test]
    fn record_count_must_match_records() {
        let mut bytes = encode(
            &[record(0, NOW, b"a"), record(1, NOW, b"b")],
            KpCompression::None,
        );
        // Claim three records (and a matching offset delta), then fix the CRC.
        bytes[57..61].copy_from_slice(&3i32.to_be_bytes());
        bytes[23..27].copy_from_slice(&2i32.to_be_bytes());
        let crc = compute_crc(&bytes);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let err = validate_produce(&bytes, &limits(), NOW).unwrap_err();
        assert_eq!(
            err,
            BatchError::RecordCountMismatch {
                expected: 3,
                found: 2
            }
        );
    }

    #[test]
    fn timestamps_out_of_bounds_are_refused_for_create_time_only() {
        let bytes = encode(&[record(0, NOW - 10_000, b"v")], KpCompression::None);
        let strict = ProduceLimits {
            timestamp_before_max_ms: 1000,
            ..limits()
        };
        let err = validate_produce(&bytes, &strict, NOW).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::InvalidTimestamp);
        let append_time = ProduceLimits {
            timestamp_type: TimestampType::LogAppendTime,
            ..strict
        };
        validate_produce(&bytes, &append_time, NOW).unwrap();
    }

    #[test]
    fn patching_offset_keeps_crc_and_log_append_time_fixes_it() {
        let mut bytes = encode(&[record(0, NOW, b"v")], KpCompression::None);
        set_base_offset(&mut bytes, 42);
        set_partition_leader_epoch(&mut bytes, 3);
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.partition_leader_epoch, 3);
        verify_crc(&h, &bytes).unwrap();
        set_log_append_time(&mut bytes, NOW + 5);
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, NOW + 5);
        verify_crc(&h, &bytes).unwrap();
    }

    #[test]
    fn patched_header_equals_patching_in_place() {
        let original = encode(
            &[record(0, NOW, b"v"), record(1, NOW + 1, b"w")],
            KpCompression::None,
        );
        for append_time in [None, Some(NOW + 99)] {
            let mut in_place = original.clone();
            set_base_offset(&mut in_place, 77);
            set_partition_leader_epoch(&mut in_place, 4);
            if let Some(t) = append_time {
                set_log_append_time(&mut in_place, t);
            }
            let mut patched = patched_header(&original, 77, 4, append_time).to_vec();
            patched.extend_from_slice(&original[HEADER_LEN..]);
            assert_eq!(patched, in_place);
            let h = BatchHeader::parse(&patched).unwrap();
            verify_crc(&h, &patched).unwrap();
        }
    }

    #[test]
    fn recompression_keeps_records_and_header_fields() {
        use kafka_protocol::records::RecordBatchDecoder;
        let recs: Vec<_> = (0..20)
            .map(|i| record(i, NOW + i, b"some value some value"))
            .collect();
        for from in [
            KpCompression::None,
            KpCompression::Gzip,
            KpCompression::Snappy,
        ] {
            let original = encode(&recs, from);
            for to in [
                Compression::None,
                Compression::Lz4,
                Compression::Zstd,
                Compression::Gzip,
            ] {
                let rewritten = recompress(&original, to, 1 << 20).unwrap();
                let h = BatchHeader::parse(&rewritten).unwrap();
                verify_crc(&h, &rewritten).unwrap();
                assert_eq!(h.compression(), Some(to));
                assert_eq!(h.size(), rewritten.len());
                let before = BatchHeader::parse(&original).unwrap();
                assert_eq!(
                    (h.records_count, h.max_timestamp, h.base_sequence),
                    (
                        before.records_count,
                        before.max_timestamp,
                        before.base_sequence
                    )
                );
                let mut a = bytes::Bytes::from(original.clone());
                let mut b = bytes::Bytes::from(rewritten);
                let a = RecordBatchDecoder::decode(&mut a).unwrap().records;
                let b = RecordBatchDecoder::decode(&mut b).unwrap().records;
                let values = |r: &Vec<kafka_protocol::records::Record>| {
                    r.iter()
                        .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(values(&a), values(&b));
            }
        }
    }

    #[test]
    fn null_keys_are_found_in_any_codec() {
        let mut keyless = record(1, NOW, b"v");
        keyless.key = None;
        for c in [KpCompression::None, KpCompression::Zstd] {
            let with = encode(&[record(0, NOW, b"v"), keyless.clone()], c);
            let without = encode(&[record(0, NOW, b"v"), record(1, NOW, b"w")], c);
            assert!(any_null_key(&records_section(&with, 1 << 20).unwrap()).unwrap());
            assert!(!any_null_key(&records_section(&without, 1 << 20).unwrap()).unwrap());
        }
    }

    #[test]
    fn batches_iterator_stops_at_torn_tail() {
        let one = encode(&[record(0, NOW, b"v")], KpCompression::None);
        let mut buf = one.clone();
        buf.extend_from_slice(&one);
        buf.extend_from_slice(&one[..20]);
        let mut it = Batches::new(&buf);
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.position(), 2 * one.len());
        assert!(matches!(
            it.next().unwrap(),
            Err(BatchError::Truncated { .. })
        ));
        assert!(it.next().is_none());
    }
    #[test]
    fn end_txn_marker_is_kafkas_control_batch() {
        let marker = EndTxnMarker {
            producer_id: 4242,
            producer_epoch: 7,
            coordinator_epoch: 3,
            commit: true,
            timestamp: NOW,
        };
        let bytes = marker.to_batch();
        assert_eq!(bytes.len(), END_TXN_MARKER_BATCH_LEN);
        let h = BatchHeader::parse(&bytes).unwrap();
        verify_crc(&h, &bytes).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(h.compression(), Some(Compression::None));
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (4242, 7, -1)
        );
        assert_eq!((h.last_offset_delta, h.records_count), (0, 1));
        assert_eq!((h.base_timestamp, h.max_timestamp), (NOW, NOW));
        // The record as Kafka's `DefaultRecord` writes it.
        assert_eq!(
            &bytes[HEADER_LEN..],
            &[0x20, 0, 0, 0, 0x08, 0, 0, 0, 1, 0x0c, 0, 0, 0, 0, 0, 3, 0]
        );
        // And a generic decoder reads it as a control record with that key and value.
        let mut buf = bytes::Bytes::from(bytes);
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        let record = &set.records[0];
        assert!(record.control && record.transactional);
        assert_eq!(record.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(record.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 3][..]));
        assert_eq!(record.producer_id, 4242);

        let abort = EndTxnMarker {
            commit: false,
            ..marker
        }
        .to_batch();
        assert_eq!(&abort[HEADER_LEN + 5..HEADER_LEN + 9], &[0, 0, 0, 0]);
        verify_crc(&BatchHeader::parse(&abort).unwrap(), &abort).unwrap();
    }
}
