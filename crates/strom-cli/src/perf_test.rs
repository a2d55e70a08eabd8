//! `strom perf-test producer|consumer`: Kafka's `kafka-producer-perf-test.sh` and
//! `kafka-consumer-perf-test.sh` on strom-client, with their options and output lines, so
//! numbers can be compared with Kafka's tools line by line.
//!
//! The producer measures each record's latency from `send` to acknowledgement in a producer
//! interceptor, which runs on the client's sender task the moment the response is handled
//! (Java's tool measures in the send callback, on the I/O thread): measuring where the loop
//! awaits the futures would add the time the loop spends sending. `--output json` replaces
//! the final line with one JSON object and sends progress lines to stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use strom_client::{
    ClientError, Consumer, Offset, Producer, ProducerInterceptor, ProducerRecord, RecordMetadata,
    TopicPartition,
};

use crate::client_args::{ConnectArgs, Output, outln, parse_key_value, run_async};

/// Progress lines every this often, as Kafka's tools.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Latencies kept for percentiles at most (Kafka's `ProducerPerformance` samples as many).
const MAX_LATENCY_SAMPLES: u64 = 500_000;

#[derive(Debug, clap::Args)]
pub(crate) struct PerfTestArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PerfCommand {
    /// Produce records as fast as allowed and report throughput and latency (like
    /// kafka-producer-perf-test.sh).
    Producer(ProducerPerfArgs),
    /// Consume records and report throughput (like kafka-consumer-perf-test.sh).
    Consumer(ConsumerPerfArgs),
}

#[derive(Debug, clap::Args)]
struct ProducerPerfArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to produce to.
    #[arg(long)]
    topic: String,
    /// Number of records to produce.
    #[arg(long, value_name = "N")]
    num_records: u64,
    /// Size of each record's value in bytes (random uppercase letters, as Kafka's tool).
    #[arg(long, value_name = "BYTES", conflicts_with = "payload_file")]
    record_size: Option<usize>,
    /// File of payloads, split at --payload-delimiter; each record takes one at random.
    #[arg(long, value_name = "FILE")]
    payload_file: Option<PathBuf>,
    /// Delimiter of payloads in --payload-file.
    #[arg(long, default_value = "\\n")]
    payload_delimiter: String,
    /// Records per second at most; -1 for no limit.
    #[arg(long, allow_hyphen_values = true, value_name = "RECORDS/S")]
    throughput: f64,
    /// Producer properties, KEY=VALUE (several after one flag, as Kafka's tool takes them).
    #[arg(long, num_args = 1.., value_parser = parse_key_value, value_name = "KEY=VALUE")]
    producer_props: Vec<(String, String)>,
    /// A producer properties file (applied before --producer-props).
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<PathBuf>,
    /// Produce in transactions with this `transactional.id` (default
    /// `performance-producer-default-transactional-id` when --transaction-duration-ms is set).
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// Commit each transaction after this long (transactions are on when it is positive, or
    /// when a transactional id is given, then 3000 by default).
    #[arg(long, value_name = "MS")]
    transaction_duration_ms: Option<u64>,
    /// `table`: Kafka's lines; `json`: one JSON object at the end (progress on stderr).
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

/// Kafka's default transactional id of `kafka-producer-perf-test.sh`.
const DEFAULT_TRANSACTIONAL_ID: &str = "performance-producer-default-transactional-id";
/// Transaction length when transactions are on without --transaction-duration-ms.
const DEFAULT_TRANSACTION_DURATION: Duration = Duration::from_millis(3000);

#[derive(Debug, clap::Args)]
struct ConsumerPerfArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to consume (every partition, from the beginning unless --from-latest).
    #[arg(long)]
    topic: String,
    /// Number of messages to consume.
    #[arg(long, value_name = "N")]
    messages: u64,
    /// Consume as a member of this group (subscribe, commit); without it every partition
    /// is assigned directly and nothing is committed.
    #[arg(long)]
    group: Option<String>,
    /// Start at the end of each partition instead of the beginning.
    #[arg(long)]
    from_latest: bool,
    /// Stop when no record arrived for this long (ms).
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    timeout: u64,
    /// `max.partition.fetch.bytes` for the run.
    #[arg(long, value_name = "BYTES")]
    fetch_size: Option<i32>,
    /// Consumer properties, KEY=VALUE.
    #[arg(long, num_args = 1.., value_parser = parse_key_value, value_name = "KEY=VALUE")]
    consumer_props: Vec<(String, String)>,
    /// A consumer properties file.
    #[arg(long = "consumer.config", value_name = "FILE")]
    consumer_config: Option<PathBuf>,
    /// Do not print the header line.
    #[arg(long)]
    hide_header: bool,
    /// `table`: Kafka's header and CSV line; `json`: one JSON object.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

pub(crate) fn run(args: PerfTestArgs) -> anyhow::Result<()> {
    match args.command {
        PerfCommand::Producer(args) => run_async(producer(args)),
        PerfCommand::Consumer(args) => run_async(consumer(args)),
    }
}

/// Properties from a tool's own properties file, then its KEY=VALUE flags.
fn tool_props(
    file: Option<&PathBuf>,
    props: &[(String, String)],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(path) = file {
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let read: BTreeMap<String, String> = java_properties::read(std::io::BufReader::new(f))
            .with_context(|| format!("cannot read {}", path.display()))?
            .into_iter()
            .collect();
        out.extend(read);
    }
    out.extend(props.iter().cloned());
    Ok(out)
}

fn as_overrides(props: &[(String, String)]) -> Vec<(&str, String)> {
    props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

/// Kafka's `ThroughputThrottler`: sleeps whenever the rate so far is above the target.
#[derive(Debug)]
pub(crate) struct Throttler {
    target: f64,
    start: Instant,
}

impl Throttler {
    pub(crate) fn new(target: f64) -> Self {
        Self {
            target,
            start: Instant::now(),
        }
    }

    pub(crate) async fn throttle(&self, sent: u64) {
        if self.target <= 0.0 {
            return;
        }
        let due = Duration::from_secs_f64(sent as f64 / self.target);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Latency and byte counts, for the whole run and for the current progress window.
#[derive(Debug, Default)]
struct Stats {
    count: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    latency_sum: u64,
    latency_max: u64,
    samples: Vec<u32>,
    sampling: u64,
    window_count: u64,
    window_bytes: u64,
    window_latency_sum: u64,
    window_latency_max: u64,
    window_start: Option<Instant>,
}

/// Records each acknowledgement into [`Stats`]: latency is now minus the record's create
/// timestamp, which the producer set at `send`.
struct Recorder {
    stats: Mutex<Stats>,
    bytes_per_record: u64,
}

impl ProducerInterceptor for Recorder {
    fn on_acknowledgement(&self, metadata: &RecordMetadata, error: Option<&ClientError>) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = error {
            s.errors += 1;
            if s.first_error.is_none() {
                s.first_error = Some(e.to_string());
            }
            return;
        }
        let latency = u64::try_from(now_ms().saturating_sub(metadata.timestamp)).unwrap_or(0);
        let index = s.count;
        s.count += 1;
        s.bytes += self.bytes_per_record;
        s.latency_sum += latency;
        s.latency_max = s.latency_max.max(latency);
        if index.is_multiple_of(s.sampling.max(1)) {
            s.samples.push(u32::try_from(latency).unwrap_or(u32::MAX));
        }
        s.window_count += 1;
        s.window_bytes += self.bytes_per_record;
        s.window_latency_sum += latency;
        s.window_latency_max = s.window_latency_max.max(latency);
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Kafka's `percentiles`: the sample at `p * n` of the sorted samples.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[at]
}

/// A small xorshift generator: payload letters and payload choice need no more (and the
/// tool then needs no random-number crate).
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn seeded() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Random uppercase letters, as Kafka's tool fills its payload.
fn random_payload(size: usize) -> Bytes {
    let mut rng = XorShift::seeded();
    (0..size)
        .map(|_| b'A' + rng.below(26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn load_payloads(path: &PathBuf, delimiter: &str) -> anyhow::Result<Vec<Bytes>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Kafka's default delimiter is the two characters `\n`, meaning a newline.
    let delimiter = delimiter.replace("\\n", "\n");
    let payloads: Vec<Bytes> = text
        .split(delimiter.as_str())
        .filter(|p| !p.is_empty())
        .map(|p| Bytes::copy_from_slice(p.as_bytes()))
        .collect();
    if payloads.is_empty() {
        bail!("File does not contain any payloads: {}", path.display());
    }
    Ok(payloads)
}

async fn producer(args: ProducerPerfArgs) -> anyhow::Result<()> {
    let payloads = match (&args.payload_file, args.record_size) {
        (Some(path), _) => load_payloads(path, &args.payload_delimiter)?,
        (None, Some(size)) => vec![random_payload(size)],
        (None, None) => bail!("either --record-size or --payload-file must be specified"),
    };
    let mut props = tool_props(args.producer_config.as_ref(), &args.producer_props)?;
    // As Kafka's tool: transactions when a duration or a transactional id is given.
    let id_prop = props
        .iter()
        .rev()
        .find(|(k, _)| k == "transactional.id")
        .map(|(_, v)| v.clone());
    let transaction_duration = match (
        args.transaction_duration_ms,
        &args.transactional_id,
        &id_prop,
    ) {
        (Some(0), ..) => None,
        (Some(ms), ..) => Some(Duration::from_millis(ms)),
        (None, Some(_), _) | (None, _, Some(_)) => Some(DEFAULT_TRANSACTION_DURATION),
        (None, None, None) => None,
    };
    if transaction_duration.is_some() && id_prop.is_none() {
        let id = args
            .transactional_id
            .clone()
            .unwrap_or_else(|| DEFAULT_TRANSACTIONAL_ID.to_string());
        props.push(("transactional.id".into(), id));
    }
    let config = args.connect.config(&as_overrides(&props))?;
    let bytes_per_record =
        payloads.iter().map(|p| p.len() as u64).sum::<u64>() / payloads.len() as u64;
    let recorder = Arc::new(Recorder {
        stats: Mutex::new(Stats {
            sampling: (args.num_records / MAX_LATENCY_SAMPLES).max(1),
            window_start: Some(Instant::now()),
            ..Stats::default()
        }),
        bytes_per_record,
    });
    let producer = Producer::connect_with_interceptors(config, vec![recorder.clone()]).await?;
    let json = args.output == Output::Json;

    let done = Arc::new(AtomicBool::new(false));
    let reporter = {
        let recorder = recorder.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REPORT_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                if done.load(Ordering::SeqCst) {
                    return;
                }
                let line = {
                    let mut s = recorder.stats.lock().unwrap_or_else(|e| e.into_inner());
                    let elapsed = s
                        .window_start
                        .map_or(REPORT_INTERVAL, |t| t.elapsed())
                        .as_secs_f64();
                    let line = format!(
                        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
                        s.window_count,
                        s.window_count as f64 / elapsed,
                        mb(s.window_bytes) / elapsed,
                        s.window_latency_sum as f64 / s.window_count.max(1) as f64,
                        s.window_latency_max as f64,
                    );
                    s.window_count = 0;
                    s.window_bytes = 0;
                    s.window_latency_sum = 0;
                    s.window_latency_max = 0;
                    s.window_start = Some(Instant::now());
                    line
                };
                if json {
                    eprintln!("{line}");
                } else if outln!("{line}").is_err() {
                    return;
                }
            }
        })
    };

    if transaction_duration.is_some() {
        producer.init_transactions().await?;
        producer.begin_transaction().await?;
    }
    let mut transaction_start = Instant::now();
    let start = Instant::now();
    let throttler = Throttler::new(args.throughput);
    let mut rng = XorShift::seeded();
    for i in 0..args.num_records {
        if let Some(duration) = transaction_duration
            && transaction_start.elapsed() >= duration
        {
            producer.commit_transaction().await?;
            producer.begin_transaction().await?;
            transaction_start = Instant::now();
        }
        let value = if payloads.len() == 1 {
            payloads[0].clone()
        } else {
            payloads[rng.below(payloads.len())].clone()
        };
        // Outcomes reach the recorder; the futures need not be awaited.
        drop(
            producer
                .queue(ProducerRecord::new(&args.topic, value))
                .await,
        );
        throttler.throttle(i + 1).await;
    }
    if transaction_duration.is_some() {
        producer.commit_transaction().await?;
    }
    producer.flush().await?;
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    reporter.abort();
    producer.close().await?;

    let mut s = recorder.stats.lock().unwrap_or_else(|e| e.into_inner());
    s.samples.sort_unstable();
    let (p50, p95, p99, p999) = (
        percentile(&s.samples, 0.5),
        percentile(&s.samples, 0.95),
        percentile(&s.samples, 0.99),
        percentile(&s.samples, 0.999),
    );
    let records_per_sec = s.count as f64 / elapsed;
    let mb_per_sec = mb(s.bytes) / elapsed;
    let avg = s.latency_sum as f64 / s.count.max(1) as f64;
    if json {
        let line = serde_json::json!({
            "records": s.count,
            "errors": s.errors,
            "elapsed_ms": (elapsed * 1000.0).round() as u64,
            "records_per_sec": records_per_sec,
            "mb_per_sec": mb_per_sec,
            "avg_latency_ms": avg,
            "max_latency_ms": s.latency_max,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "p999_ms": p999,
        });
        outln!("{line}")?;
    } else {
        outln!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {p50} ms 50th, {p95} ms 95th, {p99} ms 99th, {p999} ms 99.9th.",
            s.count,
            records_per_sec,
            mb_per_sec,
            avg,
            s.latency_max as f64,
        )?;
    }
    if let Some(first) = &s.first_error {
        bail!("{} records failed; the first: {first}", s.errors);
    }
    Ok(())
}

/// Kafka's consumer perf tool date format, `yyyy-MM-dd HH:mm:ss:SSS`, in UTC.
fn format_time(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}:{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Notes when the group first assigned partitions.
struct JoinTimer(Arc<Mutex<Option<Instant>>>);

impl strom_client::ConsumerRebalanceListener for JoinTimer {
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
    }
}

async fn consumer(args: ConsumerPerfArgs) -> anyhow::Result<()> {
    let mut props = tool_props(args.consumer_config.as_ref(), &args.consumer_props)?;
    if let Some(size) = args.fetch_size {
        props.push(("max.partition.fetch.bytes".into(), size.to_string()));
    }
    let reset = if args.from_latest {
        "latest"
    } else {
        "earliest"
    };
    if let Some(group) = &args.group {
        props.push(("group.id".into(), group.clone()));
        props.push(("auto.offset.reset".into(), reset.into()));
    }
    let config = args.connect.config(&as_overrides(&props))?;
    let mut consumer = Consumer::connect(config).await?;
    let partitions = consumer.partitions_for(&args.topic).await?;
    if partitions.is_empty() {
        bail!("topic {} has no partitions", args.topic);
    }
    // When the first assignment arrived: the time before it is rebalance time, as Kafka's
    // tool counts it.
    let joined: Arc<Mutex<Option<Instant>>> = Arc::default();
    let start_time = SystemTime::now();
    let start = Instant::now();
    if args.group.is_some() {
        consumer
            .subscribe_with_listener([args.topic.clone()], Box::new(JoinTimer(joined.clone())))?;
    } else {
        let start_at = if args.from_latest {
            Offset::Latest
        } else {
            Offset::Earliest
        };
        consumer.assign(
            partitions
                .iter()
                .map(|p| (TopicPartition::new(&args.topic, p.partition), start_at)),
        );
        *joined.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);
    }
    let timeout = Duration::from_millis(args.timeout);
    let mut last_record = Instant::now();
    let mut messages = 0u64;
    let mut bytes = 0u64;
    while messages < args.messages {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        if records.is_empty() {
            if last_record.elapsed() >= timeout {
                eprintln!(
                    "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.",
                    args.timeout
                );
                break;
            }
            continue;
        }
        last_record = Instant::now();
        for r in &records {
            messages += 1;
            bytes += r.key.as_ref().map_or(0, |k| k.len() as u64)
                + r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
    }
    let elapsed = start.elapsed();
    if args.group.is_some()
        && let Err(e) = consumer.close().await
    {
        eprintln!("warning: closing the consumer: {e}");
    }
    let end_time = start_time + elapsed;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let total_mb = mb(bytes);
    let rebalance_ms = joined
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map_or(elapsed, |t| t.duration_since(start))
        .as_millis() as u64;
    let fetch_ms = (elapsed.as_millis() as u64).saturating_sub(rebalance_ms);
    let fetch_secs = (fetch_ms as f64 / 1000.0).max(1e-9);
    if args.output == Output::Json {
        let line = serde_json::json!({
            "start_time": format_time(start_time),
            "end_time": format_time(end_time),
            "data_consumed_mb": total_mb,
            "mb_per_sec": total_mb / secs,
            "messages": messages,
            "messages_per_sec": messages as f64 / secs,
            "rebalance_time_ms": rebalance_ms,
            "fetch_time_ms": fetch_ms,
        });
        outln!("{line}")?;
        return Ok(());
    }
    if !args.hide_header {
        outln!(
            "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
        )?;
    }
    outln!(
        "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
        format_time(start_time),
        format_time(end_time),
        total_mb,
        total_mb / secs,
        messages,
        messages as f64 / secs,
        rebalance_ms,
        fetch_ms,
        total_mb / fetch_secs,
        messages as f64 / fetch_secs,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_like_kafka() {
        let sorted: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&sorted, 0.5), 501);
        assert_eq!(percentile(&sorted, 0.999), 1000);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn dates_print_in_kafkas_format() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(format_time(t), "2023-11-14 22:13:20:123");
    }

    #[test]
    fn payloads_are_uppercase_letters() {
        let p = random_payload(100);
        assert_eq!(p.len(), 100);
        assert!(p.iter().all(u8::is_ascii_uppercase));
    }
}
