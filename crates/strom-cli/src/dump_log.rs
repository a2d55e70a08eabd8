//! `strom dump-log`: print log segments, indexes and producer snapshots, like
//! `kafka-dump-log.sh` (same options and output layout). The work is `strom_storage::dump`; this
//! only parses the arguments and prints.
//!
//! Exits non-zero when the files hold errors: index entries that do not match the log
//! (`--verify-index-only`), a failed `--index-sanity-check`, batches failing their CRC,
//! unreadable files.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use strom_storage::dump::{DumpOptions, dump};

#[derive(Debug, clap::Args)]
pub(crate) struct DumpLogArgs {
    /// Comma-separated data, index and snapshot files to dump (.log, .index, .timeindex,
    /// .snapshot).
    #[arg(long, value_delimiter = ',', required = true)]
    files: Vec<PathBuf>,
    /// Print the records' keys and payloads (implies --deep-iteration).
    #[arg(long)]
    print_data_log: bool,
    /// Print every record, not only batch headers.
    #[arg(long)]
    deep_iteration: bool,
    /// Check index entries against the log without printing them.
    #[arg(long, conflicts_with = "index_sanity_check")]
    verify_index_only: bool,
    /// Only run the checks a broker runs on an index at start-up.
    #[arg(long)]
    index_sanity_check: bool,
    /// Decode the records as __consumer_offsets keys and values (implies --print-data-log).
    #[arg(long)]
    offsets_decoder: bool,
    /// With --deep-iteration, print only keys and payloads.
    #[arg(long)]
    skip_record_metadata: bool,
    /// Read at most this many bytes of each .log file.
    #[arg(long, default_value_t = i32::MAX as u64)]
    max_bytes: u64,
}

pub(crate) fn run(args: DumpLogArgs) -> anyhow::Result<()> {
    let options = DumpOptions {
        files: args.files,
        print_data_log: args.print_data_log || args.offsets_decoder,
        deep_iteration: args.deep_iteration,
        verify_index_only: args.verify_index_only,
        index_sanity_check: args.index_sanity_check,
        offsets_decoder: args.offsets_decoder,
        skip_record_metadata: args.skip_record_metadata,
        max_bytes: args.max_bytes,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = stderr.lock();
    let report = match dump(&options, &mut out, &mut err) {
        Ok(report) => report,
        // `strom dump-log ... | head`: stop quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if report.errors > 0 {
        bail!("found {} problem(s) in the files", report.errors);
    }
    Ok(())
}
