//! `strom verifiable-producer` and `strom verifiable-consumer`: Kafka's `VerifiableProducer`
//! and `VerifiableConsumer`, the tools test harnesses (Kafka's system tests, ducktape)
//! drive. They print one JSON event per line on stdout, with Kafka's event names and fields
//! (`timestamp` and `name` first), so a harness written for Kafka reads them unchanged.
//!
//! Both run until `--max-messages` or until SIGINT/SIGTERM, and then print what Kafka's
//! shutdown hooks print. With `--group-id` the consumer is a group member: it prints
//! `partitions_revoked` / `partitions_assigned` from its rebalance listener and, unless
//! `--enable-autocommit`, commits after every poll and prints `offsets_committed`. Without a
//! group it reads every partition by assignment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::FutureExt;
use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::{Value, json};
use strom_client::{
    AutoOffsetReset, ClientError, Consumer, ConsumerRebalanceListener, Offset, OffsetAndMetadata,
    Producer, ProducerRecord, TopicPartition,
};

use crate::client_args::{ConnectArgs, outln, run_async};
use crate::perf_test::Throttler;

#[derive(Debug, clap::Args)]
pub(crate) struct VerifiableProducerArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to produce to.
    #[arg(long)]
    topic: String,
    /// Messages to produce; -1 to produce until stopped.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true, value_name = "N")]
    max_messages: i64,
    /// Messages per second at most; -1 for no limit.
    #[arg(long, default_value_t = -1.0, allow_hyphen_values = true, value_name = "N")]
    throughput: f64,
    /// `acks` of the producer.
    #[arg(long, default_value = "-1", allow_hyphen_values = true)]
    acks: String,
    /// A producer properties file.
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<PathBuf>,
    /// Create time of the first message (ms); later ones move on with the clock, as Kafka's.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true, value_name = "MS")]
    message_create_time: i64,
    /// Values become `PREFIX.N` instead of `N`.
    #[arg(long, value_name = "PREFIX")]
    value_prefix: Option<i64>,
    /// Keys cycle through `0` .. `N-1` (no keys without it).
    #[arg(long, value_name = "N")]
    repeating_keys: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifiableConsumerArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to consume (every partition).
    #[arg(long)]
    topic: String,
    /// The consumer group to join; without it every partition is assigned directly.
    #[arg(long = "group-id")]
    group_id: Option<String>,
    /// Static membership: the `group.instance.id`.
    #[arg(long = "group-instance-id", requires = "group_id")]
    group_instance_id: Option<String>,
    /// Let the consumer auto-commit instead of committing after every poll.
    #[arg(long = "enable-autocommit")]
    enable_autocommit: bool,
    /// `partition.assignment.strategy` (a name or Java class name).
    #[arg(long = "assignment-strategy")]
    assignment_strategy: Option<String>,
    /// `session.timeout.ms`.
    #[arg(long = "session-timeout", value_name = "MS")]
    session_timeout: Option<u64>,
    /// Messages to consume; -1 to consume until stopped.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true, value_name = "N")]
    max_messages: i64,
    /// Where to start: `earliest` or `latest`.
    #[arg(long, default_value = "earliest")]
    reset_policy: String,
    /// Also print one `record_data` event per record.
    #[arg(long)]
    verbose: bool,
    /// A consumer properties file.
    #[arg(long = "consumer.config", value_name = "FILE")]
    consumer_config: Option<PathBuf>,
}

fn partitions_json(tps: &[TopicPartition]) -> Value {
    json!(
        tps.iter()
            .map(|tp| json!({"topic": tp.topic, "partition": tp.partition}))
            .collect::<Vec<_>>()
    )
}

/// Prints the rebalance events of Kafka's `VerifiableConsumer`.
struct EventListener;

impl ConsumerRebalanceListener for EventListener {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = outln!(
            "{}",
            event(
                "partitions_revoked",
                &[("partitions", partitions_json(partitions))]
            )
        );
    }

    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = outln!(
            "{}",
            event(
                "partitions_assigned",
                &[("partitions", partitions_json(partitions))]
            )
        );
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One event line: `timestamp` and `name`, then `fields` in the given order (serde_json's
/// maps would sort them).
fn event(name: &str, fields: &[(&str, Value)]) -> String {
    let mut line = format!("{{\"timestamp\":{},\"name\":{}", now_ms(), json!(name));
    for (key, value) in fields {
        line.push_str(&format!(",{}:{value}", json!(key)));
    }
    line.push('}');
    line
}

fn properties_file(path: Option<&PathBuf>) -> anyhow::Result<Vec<(String, String)>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let read: BTreeMap<String, String> = java_properties::read(std::io::BufReader::new(f))
        .with_context(|| format!("cannot read {}", path.display()))?
        .into_iter()
        .collect();
    Ok(read.into_iter().collect())
}

/// Resolves on SIGINT or SIGTERM (how harnesses stop these tools).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) fn run_producer(args: VerifiableProducerArgs) -> anyhow::Result<()> {
    run_async(producer(args))
}

pub(crate) fn run_consumer(args: VerifiableConsumerArgs) -> anyhow::Result<()> {
    run_async(consumer(args))
}

/// Kafka's class name for an error, for `producer_send_error`'s `exception` field.
fn exception_name(e: &ClientError) -> String {
    match e {
        ClientError::Kafka { code, .. } => {
            let name = strom_client::error_code_name(*code);
            let camel: String = name
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next().map_or(String::new(), |f| {
                        f.to_string() + &c.as_str().to_ascii_lowercase()
                    })
                })
                .collect();
            format!("org.apache.kafka.common.errors.{camel}Exception")
        }
        ClientError::Timeout { .. } | ClientError::BufferExhausted { .. } => {
            "org.apache.kafka.common.errors.TimeoutException".into()
        }
        ClientError::RecordTooLarge { .. } => {
            "org.apache.kafka.common.errors.RecordTooLargeException".into()
        }
        _ => "org.apache.kafka.common.KafkaException".into(),
    }
}

type Outcome = (
    Option<String>,
    String,
    Result<strom_client::RecordMetadata, ClientError>,
);

async fn producer(args: VerifiableProducerArgs) -> anyhow::Result<()> {
    let mut props = properties_file(args.producer_config.as_ref())?;
    props.push(("acks".into(), args.acks.clone()));
    let overrides: Vec<(&str, String)> =
        props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let config = args.connect.config(&overrides)?;
    let producer = Producer::connect(config).await?;
    outln!("{}", event("startup_complete", &[]))?;

    let start = Instant::now();
    let throttler = Throttler::new(args.throughput);
    let mut create_time = (args.message_create_time >= 0).then_some(args.message_create_time);
    let mut pending = FuturesOrdered::new();
    let (mut sent, mut acked) = (0u64, 0u64);
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut stopped = false;
    let max = u64::try_from(args.max_messages).unwrap_or(u64::MAX);

    let print = |outcome: Outcome, acked: &mut u64, topic: &str| -> anyhow::Result<()> {
        let (key, value, result) = outcome;
        let line = match result {
            Ok(m) => {
                *acked += 1;
                event(
                    "producer_send_success",
                    &[
                        ("key", json!(key)),
                        ("value", json!(value)),
                        ("topic", json!(m.topic)),
                        ("partition", json!(m.partition)),
                        ("offset", json!(m.offset)),
                    ],
                )
            }
            Err(e) => event(
                "producer_send_error",
                &[
                    ("exception", json!(exception_name(&e))),
                    ("message", json!(e.to_string())),
                    ("topic", json!(topic)),
                    ("key", json!(key)),
                    ("value", json!(value)),
                ],
            ),
        };
        outln!("{line}")
    };

    let mut i = 0u64;
    while i < max && !stopped {
        let value = match args.value_prefix {
            Some(prefix) => format!("{prefix}.{i}"),
            None => i.to_string(),
        };
        let key = args
            .repeating_keys
            .filter(|&n| n > 0)
            .map(|n| (i % n).to_string());
        let mut record = ProducerRecord::new(&args.topic, value.clone());
        if let Some(k) = &key {
            record = record.with_key(k.clone());
        }
        if let Some(t) = create_time {
            record = record.with_timestamp(t);
            create_time = Some(t + start.elapsed().as_millis() as i64);
        }
        let delivery = producer.queue(record).await;
        sent += 1;
        pending.push_back(delivery.map(move |r| (key, value, r)));
        i += 1;
        // Print what is acknowledged so far, without waiting.
        while let Some(Some(outcome)) = pending.next().now_or_never() {
            print(outcome, &mut acked, &args.topic)?;
        }
        tokio::select! {
            biased;
            _ = &mut stop => stopped = true,
            _ = throttler.throttle(i) => {}
        }
    }
    // Kafka's shutdown: close the producer (delivering what is queued), then report.
    let flushing = producer.flush();
    tokio::pin!(flushing);
    loop {
        tokio::select! {
            outcome = pending.next(), if !pending.is_empty() => {
                if let Some(outcome) = outcome {
                    print(outcome, &mut acked, &args.topic)?;
                }
            }
            _ = &mut flushing, if pending.is_empty() => break,
        }
    }
    producer.close().await?;
    outln!("{}", event("shutdown_complete", &[]))?;
    let elapsed_ms = start.elapsed().as_millis().max(1) as f64;
    outln!(
        "{}",
        event(
            "tool_data",
            &[
                ("sent", json!(sent)),
                ("acked", json!(acked)),
                ("target_throughput", json!(args.throughput)),
                ("avg_throughput", json!(1000.0 * acked as f64 / elapsed_ms)),
            ],
        )
    )?;
    Ok(())
}

async fn consumer(args: VerifiableConsumerArgs) -> anyhow::Result<()> {
    let reset: AutoOffsetReset = args
        .reset_policy
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--reset-policy: {e}"))?;
    let props = properties_file(args.consumer_config.as_ref())?;
    let overrides: Vec<(&str, String)> =
        props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let mut overrides = overrides;
    if let Some(group) = &args.group_id {
        overrides.push(("group.id", group.clone()));
        overrides.push(("enable.auto.commit", args.enable_autocommit.to_string()));
        if let Some(id) = &args.group_instance_id {
            overrides.push(("group.instance.id", id.clone()));
        }
        if let Some(s) = &args.assignment_strategy {
            overrides.push(("partition.assignment.strategy", s.clone()));
        }
        if let Some(ms) = args.session_timeout {
            overrides.push(("session.timeout.ms", ms.to_string()));
        }
    }
    let config = args
        .connect
        .config(&overrides)?
        .with_auto_offset_reset(reset);
    let mut consumer = Consumer::connect(config).await?;
    let grouped = args.group_id.is_some();
    if grouped {
        consumer.subscribe_with_listener([args.topic.clone()], Box::new(EventListener))?;
        outln!("{}", event("startup_complete", &[]))?;
    } else {
        let partitions = consumer.partitions_for(&args.topic).await?;
        let start_at = match reset {
            AutoOffsetReset::Latest => Offset::Latest,
            _ => Offset::Earliest,
        };
        let tps: Vec<TopicPartition> = partitions
            .iter()
            .map(|p| TopicPartition::new(&args.topic, p.partition))
            .collect();
        consumer.assign(tps.iter().map(|tp| (tp.clone(), start_at)));
        outln!("{}", event("startup_complete", &[]))?;
        outln!(
            "{}",
            event(
                "partitions_assigned",
                &[("partitions", partitions_json(&tps))]
            )
        )?;
    }

    let max = u64::try_from(args.max_messages).unwrap_or(u64::MAX);
    let mut consumed = 0u64;
    let stop = stop_signal();
    tokio::pin!(stop);
    while consumed < max {
        let records = tokio::select! {
            biased;
            _ = &mut stop => break,
            records = consumer.poll(Duration::from_millis(500)) => records?,
        };
        if records.is_empty() {
            continue;
        }
        // Kafka counts a whole poll even past --max-messages; so do we.
        let mut per_partition: BTreeMap<(String, i32), (u64, i64, i64)> = BTreeMap::new();
        for r in &records {
            let e = per_partition
                .entry((r.topic.clone(), r.partition))
                .or_insert((0, r.offset, r.offset));
            e.0 += 1;
            e.1 = e.1.min(r.offset);
            e.2 = e.2.max(r.offset);
            if args.verbose {
                let text = |b: &Option<bytes::Bytes>| {
                    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
                };
                outln!(
                    "{}",
                    event(
                        "record_data",
                        &[
                            ("key", json!(text(&r.key))),
                            ("value", json!(text(&r.value))),
                            ("topic", json!(r.topic)),
                            ("partition", json!(r.partition)),
                            ("offset", json!(r.offset)),
                        ],
                    )
                )?;
            }
        }
        consumed += records.len() as u64;
        let partitions: Vec<Value> = per_partition
            .into_iter()
            .map(|((topic, partition), (count, min, max))| {
                json!({"topic": topic, "partition": partition, "count": count, "minOffset": min, "maxOffset": max})
            })
            .collect();
        outln!(
            "{}",
            event(
                "records_consumed",
                &[
                    ("count", json!(records.len())),
                    ("partitions", json!(partitions)),
                ],
            )
        )?;
        if grouped && !args.enable_autocommit {
            // As Kafka's tool: commit what this poll returned, then report it.
            let mut offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
            for r in &records {
                let next = OffsetAndMetadata::new(r.offset + 1);
                offsets.insert(TopicPartition::new(&r.topic, r.partition), next);
            }
            let result = consumer.commit_sync_offsets(offsets.clone()).await;
            let list: Vec<Value> = offsets
                .iter()
                .map(|(tp, o)| json!({"topic": tp.topic, "partition": tp.partition, "offset": o.offset}))
                .collect();
            let mut fields = vec![("offsets", json!(list)), ("success", json!(result.is_ok()))];
            if let Err(e) = &result {
                fields.push(("error", json!(e.to_string())));
            }
            outln!("{}", event("offsets_committed", &fields))?;
        }
    }
    if grouped && let Err(e) = consumer.close().await {
        eprintln!("error: closing the consumer: {e}");
    }
    outln!("{}", event("shutdown_complete", &[]))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_kafkas_field_order() {
        let line = event("x", &[("b", json!(1)), ("a", json!(null))]);
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["name"], "x");
        assert!(line.starts_with("{\"timestamp\":"));
        assert!(line.ends_with(",\"name\":\"x\",\"b\":1,\"a\":null}"));
    }

    #[test]
    fn exceptions_are_named_like_java() {
        let e = ClientError::Kafka {
            code: strom_client::ErrorCode::NotLeaderOrFollower,
            message: None,
        };
        assert_eq!(
            exception_name(&e),
            "org.apache.kafka.common.errors.NotLeaderOrFollowerException"
        );
    }
}
