//! The first step of opening a log (Kafka's `LogLoader.load`, its file passes): clean up what an
//! interrupted deletion or compaction left, finish an interrupted swap, and list the segments.
//!
//! ```text
//!  *.deleted                    removed (a deletion was only waiting for file.delete.delay.ms)
//!  *.cleaned                    removed (the cleaner had not finished: the old segments stand)
//!  *.swap at or past the lowest .cleaned offset
//!                               removed (a swap that never completed its renames to .swap)
//!  other *.swap                 the swap was decided: segment files in [swap base, swap end)
//!                               that are not .swap are removed, then .swap is renamed away
//!  index files without a .log   removed
//! ```

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::StorageError;
use crate::segment::{
    BatchScanner, CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SEARCH_CHUNK,
    SWAP_SUFFIX, ScanError, TIME_INDEX_SUFFIX,
};
use crate::txn_index::TXN_INDEX_SUFFIX;

/// The leading 20-digit offset of a file name, if it has one.
fn offset_prefix(name: &str) -> Option<i64> {
    let digits = name.get(..20)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || name.as_bytes().get(20) != Some(&b'.') {
        return None;
    }
    digits.parse().ok()
}

fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok()
}

fn remove(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

fn file_names(dir: &Path) -> Result<Vec<(String, PathBuf)>, StorageError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let path = entry.path();
        if !entry
            .file_type()
            .map_err(|e| StorageError::io(&path, e))?
            .is_file()
        {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_string(), path));
        }
    }
    Ok(out)
}

/// The offset after the last whole batch of a (swap) segment file.
fn next_offset_of(path: &Path, base: i64) -> Result<i64, StorageError> {
    let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    let mut scanner = BatchScanner::new(&file, 0, len, SEARCH_CHUNK);
    let mut next = base;
    loop {
        match scanner.next_header() {
            Ok(Some((_, header))) => next = next.max(header.next_offset()),
            Ok(None) | Err(ScanError::Invalid { .. }) => return Ok(next),
            Err(ScanError::Io(e)) => return Err(StorageError::io(path, e)),
        }
    }
}

/// Runs Kafka's recovery passes over `dir` and returns the segment base offsets, sorted.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    // Pass 1: leftovers of deletions and unfinished cleaning.
    let mut cleaned = Vec::new();
    let mut swaps = Vec::new();
    for (name, path) in file_names(dir)? {
        if name.ends_with(DELETED_SUFFIX) {
            tracing::debug!(file = %path.display(), "removing a file that was waiting for deletion");
            remove(&path)?;
        } else if name.ends_with(CLEANED_SUFFIX) {
            cleaned.push((offset_prefix(&name), path));
        } else if name.ends_with(SWAP_SUFFIX) {
            swaps.push((name, path));
        }
    }
    let min_cleaned = cleaned
        .iter()
        .filter_map(|(o, _)| *o)
        .min()
        .unwrap_or(i64::MAX);
    let mut valid_swaps = Vec::new();
    for (name, path) in swaps {
        match offset_prefix(&name) {
            Some(offset) if offset < min_cleaned => valid_swaps.push((name, path, offset)),
            _ => {
                tracing::info!(file = %path.display(), "removing the .swap file of an unfinished swap");
                remove(&path)?;
            }
        }
    }
    for (_, path) in &cleaned {
        tracing::info!(file = %path.display(), "removing the output of an unfinished cleaning");
        remove(path)?;
    }
    // Pass 2: a decided swap replaces every segment file in the offset range it covers.
    let mut min_swap = i64::MAX;
    let mut max_swap = i64::MIN;
    for (name, path, offset) in &valid_swaps {
        if name
            .strip_suffix(SWAP_SUFFIX)
            .is_some_and(|n| n.ends_with(LOG_SUFFIX))
        {
            min_swap = min_swap.min(*offset);
            max_swap = max_swap.max(next_offset_of(path, *offset)?);
        }
    }
    if min_swap <= max_swap {
        for (name, path) in file_names(dir)? {
            if name.ends_with(SWAP_SUFFIX) {
                continue;
            }
            if let Some(offset) = offset_prefix(&name)
                && offset >= min_swap
                && offset < max_swap
            {
                tracing::info!(file = %path.display(), "removing a file replaced by a compacted segment");
                remove(&path)?;
            }
        }
    }
    // Pass 3: complete the swap.
    for (name, path, _) in &valid_swaps {
        let Some(final_name) = name.strip_suffix(SWAP_SUFFIX) else {
            continue;
        };
        tracing::info!(file = %path.display(), "completing an interrupted swap of compacted segments");
        let target = dir.join(final_name);
        fs::rename(path, &target).map_err(|e| StorageError::io(path, e))?;
    }
    if !valid_swaps.is_empty() {
        crate::checkpoint::sync_dir(dir)?;
    }
    // Pass 4: the segments, and index files whose `.log` is gone.
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for (name, path) in file_names(dir)? {
        if let Some(base) = parse_base(&name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = parse_base(&name, INDEX_SUFFIX)
            .or_else(|| parse_base(&name, TIME_INDEX_SUFFIX))
            .or_else(|| parse_base(&name, TXN_INDEX_SUFFIX))
        {
            index_files.push((base, path));
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            tracing::info!(file = %path.display(), "removing an index file without its segment");
            remove(&path)?;
        }
    }
    Ok(bases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_prefixes() {
        assert_eq!(offset_prefix("00000000000000000042.log.swap"), Some(42));
        assert_eq!(offset_prefix("00000000000000000042.snapshot"), Some(42));
        assert_eq!(offset_prefix("0000000000000000004.log"), None);
        assert_eq!(offset_prefix("leader-epoch-checkpoint"), None);
        assert_eq!(offset_prefix("0000000000000000004x.log"), None);
    }
}
