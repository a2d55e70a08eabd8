//! `strom dump-log`: prints segment, index and producer snapshot files the way Kafka's
//! `kafka-dump-log.sh` (`DumpLogSegments`) does, and verifies indexes against their log.
//!
//! ```text
//!  <base>.log        batch headers; with deep iteration each record; with print-data-log keys
//!                    and payloads (UTF-8, or __consumer_offsets records with offsets-decoder)
//!  <base>.index      entries; verify-index-only checks each names the last offset of the batch
//!                    at its position; index-sanity-check runs the load-time checks
//!  <base>.timeindex  entries; checks each against the batch it names and the order
//!  <base>.snapshot   producer state entries
//!  <base>.txnindex   aborted transactions
//! ```
//!
//! Lines go to `out`, problems to `err` in Kafka's wording; the report counts the problems so
//! the command can exit non-zero. Files are only read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use strom_protocol::batch::{BatchHeader, HEADER_LEN, TimestampType};

use crate::producer_state::{self, NO_SEQUENCE, increment_sequence};
use crate::records::{self, ControlType, RecordView, RecordsSection};
use crate::segment::{BatchScanner, ScanError};

/// The options of `kafka-dump-log.sh` that strom supports.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    pub files: Vec<PathBuf>,
    /// `--print-data-log`: print keys and payloads (implies deep iteration).
    pub print_data_log: bool,
    /// `--deep-iteration`: print every record, not only batch headers.
    pub deep_iteration: bool,
    /// `--verify-index-only`: check index entries against the log without printing them.
    pub verify_index_only: bool,
    /// `--index-sanity-check`: only the checks run when a segment is loaded.
    pub index_sanity_check: bool,
    /// `--offsets-decoder`: decode `__consumer_offsets` keys and values.
    pub offsets_decoder: bool,
    /// `--skip-record-metadata`: with deep iteration, print only keys and payloads.
    pub skip_record_metadata: bool,
    /// `--max-bytes`: stop reading a `.log` after this many bytes.
    pub max_bytes: u64,
}

impl Default for DumpOptions {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            print_data_log: false,
            deep_iteration: false,
            verify_index_only: false,
            index_sanity_check: false,
            offsets_decoder: false,
            skip_record_metadata: false,
            max_bytes: i32::MAX as u64,
        }
    }
}

/// What the dump found wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpReport {
    /// Index entries that do not match the log, invalid batches, unreadable snapshots...
    pub errors: usize,
}

/// Dumps every file of `options`. I/O errors writing `out`/`err` end the dump; a file that
/// cannot be read is reported on `err` and counted.
pub fn dump(
    options: &DumpOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<DumpReport> {
    let mut report = DumpReport::default();
    let mut problems = Problems::default();
    for path in &options.files {
        writeln!(out, "Dumping {}", path.display())?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let suffix = name.rfind('.').map_or("", |i| &name[i..]);
        let result = match suffix {
            ".log" => dump_log(path, options, out, &mut problems),
            ".index" => dump_index(path, options, out, &mut problems),
            ".timeindex" => dump_time_index(path, options, out, &mut problems),
            ".snapshot" => dump_snapshot(path, out, &mut problems),
            ".txnindex" => dump_txn_index(path, out, &mut problems),
            _ => {
                writeln!(err, "Ignoring unknown file {}", path.display())?;
                Ok(())
            }
        };
        if let Err(e) = result {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Err(e);
            }
            writeln!(err, "Cannot read {}: {e}", path.display())?;
            report.errors += 1;
        }
    }
    report.errors += problems.print(err)?;
    Ok(report)
}

/// Problems found, printed after all files as Kafka does.
#[derive(Debug, Default)]
struct Problems {
    index_mismatches: BTreeMap<String, Vec<(i64, i64)>>,
    time_mismatches: BTreeMap<String, Vec<(i64, i64)>>,
    out_of_order: BTreeMap<String, Vec<(i64, i64)>>,
    offset_not_found: BTreeMap<String, Vec<(i64, i64)>>,
    non_consecutive: BTreeMap<String, Vec<(i64, i64)>>,
    /// Messages already in their final form.
    other: Vec<String>,
}

impl Problems {
    fn print(&self, err: &mut dyn Write) -> io::Result<usize> {
        let mut count = self.other.len();
        for (file, list) in &self.index_mismatches {
            writeln!(err, "Mismatches in :{file}")?;
            for (index, log) in list {
                writeln!(err, "  Index offset: {index}, log offset: {log}")?;
            }
            count += list.len();
        }
        for (file, list) in &self.time_mismatches {
            writeln!(err, "Found timestamp mismatch in :{file}")?;
            for (index, log) in list {
                writeln!(err, "  Index timestamp: {index}, log timestamp: {log}")?;
            }
            count += list.len();
        }
        for (file, list) in &self.out_of_order {
            writeln!(err, "Found out of order timestamp in :{file}")?;
            for (index, prev) in list {
                writeln!(
                    err,
                    "  Index timestamp: {index}, Previously indexed timestamp: {prev}"
                )?;
            }
            count += list.len();
        }
        for list in self.offset_not_found.values() {
            writeln!(
                err,
                "The following indexed offsets are not found in the log."
            )?;
            for (index, log) in list {
                writeln!(err, "Indexed offset: {index}, found log offset: {log}")?;
            }
            count += list.len();
        }
        // Gaps are normal in compacted logs: reported, not counted.
        for (file, list) in &self.non_consecutive {
            writeln!(err, "Non-consecutive offsets in {file}")?;
            for (a, b) in list {
                writeln!(err, "  {a} is followed by {b}")?;
            }
        }
        for message in &self.other {
            writeln!(err, "{message}")?;
        }
        Ok(count)
    }
}

fn base_offset_of(path: &Path) -> io::Result<i64> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file name has no base offset"))
}

fn sibling(path: &Path, suffix: &str) -> io::Result<PathBuf> {
    let base = base_offset_of(path)?;
    Ok(path.with_file_name(format!("{base:020}{suffix}")))
}

/// Java's `OptionalLong.toString`.
fn optional_long(v: Option<i64>) -> String {
    match v {
        Some(v) => format!("OptionalLong[{v}]"),
        None => "OptionalLong.empty".to_string(),
    }
}

fn timestamp_type_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

fn last_sequence(h: &BatchHeader) -> i32 {
    producer_state::last_sequence(h)
}

fn batch_line(h: &BatchHeader, position: u64, valid: bool) -> String {
    format!(
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} \
         producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} \
         deleteHorizonMs: {} position: {position} {}: {} size: {} magic: {} compresscodec: {} \
         crc: {} isvalid: {valid}",
        h.base_offset,
        h.last_offset(),
        h.records_count,
        h.base_sequence,
        last_sequence(h),
        h.producer_id,
        h.producer_epoch,
        h.partition_leader_epoch,
        h.is_transactional(),
        h.is_control(),
        optional_long(records::delete_horizon(h)),
        timestamp_type_name(h.timestamp_type()),
        h.max_timestamp,
        h.size(),
        h.magic,
        h.compression().map_or("unknown", |c| c.name()),
        h.crc,
    )
}

/// A record's timestamp as a reader sees it: the batch's for `LogAppendTime`.
fn record_timestamp(h: &BatchHeader, r: &RecordView<'_>) -> i64 {
    match h.timestamp_type() {
        TimestampType::LogAppendTime => h.max_timestamp,
        TimestampType::CreateTime => r.timestamp,
    }
}

fn record_line(h: &BatchHeader, r: &RecordView<'_>, options: &DumpOptions) -> String {
    let mut line = String::from("|");
    let mut sep = " ";
    if !options.skip_record_metadata {
        let sequence = if h.base_sequence == NO_SEQUENCE {
            NO_SEQUENCE
        } else {
            increment_sequence(h.base_sequence, r.offset_delta)
        };
        line.push_str(&format!(
            " offset: {} {}: {} keySize: {} valueSize: {} sequence: {sequence} headerKeys: [{}]",
            r.offset,
            timestamp_type_name(h.timestamp_type()),
            record_timestamp(h, r),
            r.key.map_or(-1, |k| k.len() as i64),
            r.value.map_or(-1, |v| v.len() as i64),
            r.header_keys().join(","),
        ));
        if h.is_control() {
            line.push_str(&control_description(r));
        }
    }
    if options.print_data_log && !h.is_control() {
        let (key, payload) = if options.offsets_decoder {
            offsets::describe(r.key, r.value)
        } else {
            (
                r.key.map(|k| String::from_utf8_lossy(k).into_owned()),
                r.value.map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        };
        if let Some(key) = key {
            line.push_str(&format!("{sep}key: {key}"));
            sep = " ";
        }
        if let Some(payload) = payload {
            line.push_str(&format!("{sep}payload: {payload}"));
        }
    }
    line
}

fn control_description(r: &RecordView<'_>) -> String {
    let Some(key) = r.key.filter(|k| k.len() >= 4) else {
        return " controlType: UNKNOWN(-1)".to_string();
    };
    let kind = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    };
    let coordinator_epoch = r
        .value
        .filter(|v| v.len() >= 6)
        .map_or(-1, |v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]));
    match kind {
        ControlType::Abort => format!(" endTxnMarker: ABORT coordinatorEpoch: {coordinator_epoch}"),
        ControlType::Commit => {
            format!(" endTxnMarker: COMMIT coordinatorEpoch: {coordinator_epoch}")
        }
        ControlType::Other(id) => format!(" controlType: UNKNOWN({id})"),
    }
}

fn dump_log(
    path: &Path,
    options: &DumpOptions,
    out: &mut dyn Write,
    problems: &mut Problems,
) -> io::Result<()> {
    writeln!(out, "Log starting offset: {}", base_offset_of(path)?)?;
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let len = file_len.min(options.max_bytes);
    let deep = options.deep_iteration || options.print_data_log;
    let mut scanner = BatchScanner::new(&file, 0, len, 1 << 20);
    let mut valid_bytes = 0u64;
    let mut last_offset: Option<i64> = None;
    let key = path.display().to_string();
    loop {
        let (pos, header) = match scanner.next_header() {
            Ok(Some(found)) => found,
            Ok(None) => break,
            Err(ScanError::Io(e)) => return Err(e),
            Err(ScanError::Invalid { .. }) => break,
        };
        let bytes = scanner.batch_bytes(pos, &header)?;
        let valid = strom_protocol::batch::verify_crc(&header, bytes).is_ok();
        writeln!(out, "{}", batch_line(&header, valid_bytes, valid))?;
        if !valid {
            problems.other.push(format!(
                "Batch at position {pos} of {key} fails its CRC check"
            ));
        }
        if deep && valid {
            let section = RecordsSection::new(bytes);
            let records = section
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|s| s.records());
            match records {
                Ok(records) => {
                    for r in &records {
                        if let Some(last) = last_offset
                            && r.offset != last + 1
                        {
                            problems
                                .non_consecutive
                                .entry(key.clone())
                                .or_default()
                                .push((last, r.offset));
                        }
                        last_offset = Some(r.offset);
                        writeln!(out, "{}", record_line(&header, r, options))?;
                    }
                }
                Err(reason) => problems.other.push(format!(
                    "Cannot read the records of the batch at {pos} of {key}: {reason}"
                )),
            }
        }
        valid_bytes += header.size() as u64;
    }
    let trailing = len - valid_bytes;
    if trailing > 0 && len == file_len {
        writeln!(
            out,
            "Found {trailing} invalid bytes at the end of {}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        )?;
        problems.other.push(format!(
            "{key} ends with {trailing} bytes that are not a whole batch"
        ));
    }
    Ok(())
}

/// The index file's entries as `(offset, position)`, or why it is not a whole index.
fn read_offset_index(path: &Path, base: i64) -> io::Result<(Vec<(i64, u32)>, bool)> {
    let bytes = std::fs::read(path)?;
    let entries = bytes
        .chunks_exact(8)
        .map(|c| {
            let rel = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let pos = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            (base + i64::from(rel), pos)
        })
        .collect();
    Ok((entries, bytes.len() % 8 == 0))
}

fn read_time_index(path: &Path, base: i64) -> io::Result<(Vec<(i64, i64)>, bool)> {
    let bytes = std::fs::read(path)?;
    let entries = bytes
        .chunks_exact(12)
        .map(|c| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            let rel = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            (i64::from_be_bytes(ts), base + i64::from(rel))
        })
        .collect();
    Ok((entries, bytes.len() % 12 == 0))
}

/// The header of the batch at `position` of the log file.
fn batch_at(file: &File, len: u64, position: u64) -> Option<BatchHeader> {
    let mut scanner = BatchScanner::new(file, position, len, HEADER_LEN);
    scanner.next_header().ok().flatten().map(|(_, h)| h)
}

fn dump_index(
    path: &Path,
    options: &DumpOptions,
    out: &mut dyn Write,
    problems: &mut Problems,
) -> io::Result<()> {
    let base = base_offset_of(path)?;
    let log_path = sibling(path, ".log")?;
    let log = File::open(&log_path)?;
    let log_len = log.metadata()?.len();
    let (entries, whole) = read_offset_index(path, base)?;
    if options.index_sanity_check {
        let mut reason = (!whole).then(|| "the file is not a whole number of entries".to_string());
        for pair in entries.windows(2) {
            if reason.is_none() && (pair[1].0 <= pair[0].0 || pair[1].1 <= pair[0].1) {
                reason = Some(format!("entries do not increase at offset {}", pair[1].0));
            }
        }
        if reason.is_none()
            && let Some(&(offset, position)) = entries.last()
            && u64::from(position) >= log_len
        {
            reason = Some(format!(
                "entry for offset {offset} points at position {position} past the end of the log ({log_len} bytes)"
            ));
        }
        match reason {
            None => writeln!(out, "{} passed sanity check.", path.display())?,
            Some(reason) => problems
                .other
                .push(format!("{} failed sanity check: {reason}", path.display())),
        }
        return Ok(());
    }
    if entries.is_empty() {
        writeln!(out, "{} is empty.", path.display())?;
        return Ok(());
    }
    let key = path.display().to_string();
    for (i, &(offset, position)) in entries.iter().enumerate() {
        // A sparse (preallocated) index ends in zero entries.
        if offset == base && i > 0 {
            break;
        }
        let found = batch_at(&log, log_len, u64::from(position)).map_or(-1, |h| h.last_offset());
        if found != offset {
            problems
                .index_mismatches
                .entry(key.clone())
                .or_default()
                .push((offset, found));
        }
        if !options.verify_index_only {
            writeln!(out, "offset: {offset} position: {position}")?;
        }
    }
    Ok(())
}

fn dump_time_index(
    path: &Path,
    options: &DumpOptions,
    out: &mut dyn Write,
    problems: &mut Problems,
) -> io::Result<()> {
    let base = base_offset_of(path)?;
    let log = File::open(sibling(path, ".log")?)?;
    let log_len = log.metadata()?.len();
    let (entries, whole) = read_time_index(path, base)?;
    let (offsets, _) = read_offset_index(&sibling(path, ".index")?, base).unwrap_or_default();
    if options.index_sanity_check {
        let mut reason = (!whole).then(|| "the file is not a whole number of entries".to_string());
        for pair in entries.windows(2) {
            if reason.is_none() && (pair[1].0 <= pair[0].0 || pair[1].1 < pair[0].1) {
                reason = Some(format!(
                    "entries do not increase at timestamp {}",
                    pair[1].0
                ));
            }
        }
        match reason {
            None => writeln!(out, "{} passed sanity check.", path.display())?,
            Some(reason) => problems
                .other
                .push(format!("{} failed sanity check: {reason}", path.display())),
        }
        return Ok(());
    }
    let key = path.display().to_string();
    let mut previous = -1i64;
    for (i, &(timestamp, offset)) in entries.iter().enumerate() {
        if offset == base && i > 0 {
            break;
        }
        // Kafka: find the position through the offset index, then the batch holding the offset.
        let start = offsets
            .iter()
            .take_while(|&&(o, _)| o <= offset)
            .last()
            .map_or(0, |&(_, p)| u64::from(p));
        let mut scanner = BatchScanner::new(&log, start, log_len, 1 << 16);
        let mut found = None;
        while let Ok(Some((pos, h))) = scanner.next_header() {
            if h.last_offset() >= offset {
                found = Some((pos, h));
                break;
            }
        }
        match found {
            None => problems
                .offset_not_found
                .entry(key.clone())
                .or_default()
                .push((offset, -1)),
            Some((_, h)) if h.last_offset() != offset => problems
                .offset_not_found
                .entry(key.clone())
                .or_default()
                .push((offset, h.last_offset())),
            Some((pos, h)) => {
                let bytes = scanner.batch_bytes(pos, &h)?;
                let max = RecordsSection::new(bytes)
                    .and_then(|s| {
                        s.records()
                            .map(|rs| rs.iter().map(|r| record_timestamp(&h, r)).max())
                    })
                    .ok()
                    .flatten()
                    .unwrap_or(-1);
                if max != timestamp {
                    problems
                        .time_mismatches
                        .entry(key.clone())
                        .or_default()
                        .push((timestamp, max));
                }
                if previous >= timestamp {
                    problems
                        .out_of_order
                        .entry(key.clone())
                        .or_default()
                        .push((timestamp, previous));
                }
            }
        }
        if !options.verify_index_only {
            writeln!(out, "timestamp: {timestamp} offset: {offset}")?;
        }
        previous = timestamp;
    }
    Ok(())
}

fn dump_snapshot(path: &Path, out: &mut dyn Write, problems: &mut Problems) -> io::Result<()> {
    let bytes = std::fs::read(path)?;
    match producer_state::decode_snapshot(&bytes) {
        Ok(entries) => {
            for e in entries {
                let mut line = format!(
                    "producerId: {} producerEpoch: {} coordinatorEpoch: {} currentTxnFirstOffset: {} lastTimestamp: {} ",
                    e.producer_id,
                    e.epoch,
                    e.coordinator_epoch,
                    optional_long(e.current_txn_first_offset),
                    e.last_timestamp
                );
                if let Some(b) = e.batches.front() {
                    line.push_str(&format!(
                        "firstSequence: {} lastSequence: {} lastOffset: {} offsetDelta: {} timestamp: {}",
                        b.first_seq(),
                        b.last_seq,
                        b.last_offset,
                        b.offset_delta,
                        b.timestamp
                    ));
                }
                writeln!(out, "{line}")?;
            }
        }
        Err(reason) => problems.other.push(format!("{}: {reason}", path.display())),
    }
    Ok(())
}

/// Kafka's `dumpTxnIndex`: one line per aborted transaction.
fn dump_txn_index(path: &Path, out: &mut dyn Write, problems: &mut Problems) -> io::Result<()> {
    let bytes = std::fs::read(path)?;
    let (entries, problem) = crate::txn_index::decode_entries(&bytes);
    for e in entries {
        writeln!(
            out,
            "version: 0 producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
            e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
        )?;
    }
    if let Some(reason) = problem {
        problems.other.push(format!("{}: {reason}", path.display()));
    }
    Ok(())
}

/// `--offsets-decoder`: the `__consumer_offsets` record formats (Kafka's `OffsetCommitKey`,
/// `OffsetCommitValue`, `GroupMetadataKey`), printed as Kafka 4's tool prints them (JSON with the
/// record type and version). Group metadata values are summarised.
mod offsets {
    struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let bytes = self.buf.get(self.pos..self.pos + n)?;
            self.pos += n;
            Some(bytes)
        }
        fn i16(&mut self) -> Option<i16> {
            self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            self.take(4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn i64(&mut self) -> Option<i64> {
            self.take(8).map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                i64::from_be_bytes(a)
            })
        }
        fn uvarint(&mut self) -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let b = *self.take(1)?.first()?;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        }
        /// A string, compact (flexible versions) or not.
        fn string(&mut self, compact: bool) -> Option<String> {
            let len = if compact {
                (self.uvarint()? as i64) - 1
            } else {
                i64::from(self.i16()?)
            };
            if len < 0 {
                return Some(String::new());
            }
            Some(String::from_utf8_lossy(self.take(len as usize)?).into_owned())
        }
    }

    fn json_string(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn key(bytes: &[u8]) -> Option<(i16, String)> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.i16()?;
        match version {
            0 | 1 => {
                let group = r.string(false)?;
                let topic = r.string(false)?;
                let partition = r.i32()?;
                Some((
                    version,
                    format!(
                        "{{\"type\":\"1\",\"data\":{{\"group\":{},\"topic\":{},\"partition\":{partition}}}}}",
                        json_string(&group),
                        json_string(&topic)
                    ),
                ))
            }
            2 => {
                let group = r.string(false)?;
                Some((
                    version,
                    format!(
                        "{{\"type\":\"2\",\"data\":{{\"group\":{}}}}}",
                        json_string(&group)
                    ),
                ))
            }
            _ => None,
        }
    }

    fn offset_value(bytes: &[u8]) -> Option<String> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.i16()?;
        let offset = r.i64()?;
        let flexible = version >= 4;
        let leader_epoch = if version >= 3 { Some(r.i32()?) } else { None };
        let metadata = r.string(flexible)?;
        let commit = r.i64()?;
        let expire = if version == 1 { Some(r.i64()?) } else { None };
        let mut data = format!("\"offset\":{offset}");
        if let Some(e) = leader_epoch {
            data.push_str(&format!(",\"leaderEpoch\":{e}"));
        }
        data.push_str(&format!(
            ",\"metadata\":{},\"commitTimestamp\":{commit}",
            json_string(&metadata)
        ));
        if let Some(e) = expire {
            data.push_str(&format!(",\"expireTimestamp\":{e}"));
        }
        Some(format!("{{\"version\":\"{version}\",\"data\":{{{data}}}}}"))
    }

    fn group_value(bytes: &[u8]) -> Option<String> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.i16()?;
        let flexible = version >= 4;
        let protocol_type = r.string(flexible)?;
        let generation = r.i32()?;
        let protocol = r.string(flexible)?;
        let leader = r.string(flexible)?;
        Some(format!(
            "{{\"version\":\"{version}\",\"data\":{{\"protocolType\":{},\"generation\":{generation},\"protocol\":{},\"leader\":{}}}}}",
            json_string(&protocol_type),
            json_string(&protocol),
            json_string(&leader)
        ))
    }

    /// Key and payload text for one `__consumer_offsets` record.
    pub(super) fn describe(
        key_bytes: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> (Option<String>, Option<String>) {
        let Some(key_bytes) = key_bytes else {
            return (
                None,
                value.map(|v| format!("unknown value ({} bytes)", v.len())),
            );
        };
        let Some((version, key_text)) = key(key_bytes) else {
            return (
                Some(format!("unknown key ({} bytes)", key_bytes.len())),
                value.map(|v| format!("unknown value ({} bytes)", v.len())),
            );
        };
        let payload = match value {
            None => "<DELETE>".to_string(),
            Some(v) => {
                let decoded = if version <= 1 {
                    offset_value(v)
                } else {
                    group_value(v)
                };
                decoded.unwrap_or_else(|| format!("unknown value ({} bytes)", v.len()))
            }
        };
        (Some(key_text), Some(payload))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as i16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }

        #[test]
        fn offset_commit_records_decode_as_kafka_prints_them() {
            let mut k = 1i16.to_be_bytes().to_vec();
            string(&mut k, "g");
            string(&mut k, "t\"x");
            k.extend_from_slice(&3i32.to_be_bytes());
            let mut v = 3i16.to_be_bytes().to_vec();
            v.extend_from_slice(&42i64.to_be_bytes());
            v.extend_from_slice(&(-1i32).to_be_bytes());
            string(&mut v, "");
            v.extend_from_slice(&1000i64.to_be_bytes());
            let (key, payload) = describe(Some(&k), Some(&v));
            assert_eq!(
                key.unwrap(),
                r#"{"type":"1","data":{"group":"g","topic":"t\"x","partition":3}}"#
            );
            assert_eq!(
                payload.unwrap(),
                r#"{"version":"3","data":{"offset":42,"leaderEpoch":-1,"metadata":"","commitTimestamp":1000}}"#
            );
            assert_eq!(describe(Some(&k), None).1.unwrap(), "<DELETE>");
            assert!(
                describe(Some(b"\x00"), None)
                    .0
                    .unwrap()
                    .starts_with("unknown key")
            );
        }
    }
}

#[cfg(test)]
#[path = "dump_tests.rs"]
mod tests;
