//! `strom consume`: print records, like `kafka-console-consumer.sh` with its default
//! formatter (`print.key`, `print.partition`, ... properties, same layout).
//!
//! Without `--from-beginning` it starts at the end of each partition. With `--group` it joins
//! that consumer group instead of reading every partition: the group shares the partitions
//! among its members, a member starts at the group's committed offsets (`--from-beginning`
//! only matters where there are none), and offsets are auto-committed and committed on exit,
//! as `kafka-console-consumer.sh --group` does. It stops after
//! `--max-messages`, after `--timeout-ms` without a new record, or on Ctrl-C / SIGTERM, then
//! reports `Processed a total of N messages` on stderr as Kafka's tool does.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, bail};
use strom_client::{Consumer, ConsumerRecord, Offset, TopicPartition};
use tokio::time::Instant;

use crate::client_args::{ConnectArgs, is_broken_pipe, parse_key_value, run_async};

#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    topic: String,
    /// Start at the earliest record instead of the end.
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Consume only this partition.
    #[arg(long, conflicts_with = "group")]
    partition: Option<i32>,
    /// Join this consumer group and commit offsets (instead of reading every partition).
    #[arg(long)]
    group: Option<String>,
    /// Where to start in --partition: an offset, `earliest` or `latest`.
    #[arg(long, requires = "partition", value_parser = parse_offset)]
    offset: Option<Offset>,
    /// Exit after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Exit when no record arrived for this long.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// `read_committed` to skip aborted transactions and stop at the last stable offset,
    /// or `read_uncommitted` (the default).
    #[arg(long, value_name = "LEVEL")]
    isolation_level: Option<String>,
    /// Formatter setting, repeatable: print.key, print.value, print.partition, print.offset,
    /// print.timestamp, print.headers (true|false), key.separator, line.separator,
    /// headers.separator, headers.key.separator, null.literal.
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    properties: Vec<(String, String)>,
    /// A consumer property (Kafka name), repeatable; wins over --command-config, e.g.
    /// `group.protocol=consumer` for a KIP-848 group member.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    consumer_properties: Vec<(String, String)>,
    #[command(flatten)]
    connect: ConnectArgs,
}

fn parse_offset(s: &str) -> Result<Offset, String> {
    match s {
        "earliest" => Ok(Offset::Earliest),
        "latest" => Ok(Offset::Latest),
        n => match n.parse::<i64>() {
            Ok(o) if o >= 0 => Ok(Offset::At(o)),
            _ => Err(format!(
                "`{s}` is not a non-negative offset, `earliest` or `latest`"
            )),
        },
    }
}

/// Kafka's `DefaultMessageFormatter`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Formatter {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    print_key: bool,
    print_value: bool,
    key_separator: Vec<u8>,
    line_separator: Vec<u8>,
    headers_separator: Vec<u8>,
    headers_key_separator: Vec<u8>,
    null_literal: Vec<u8>,
}

impl Default for Formatter {
    fn default() -> Self {
        Self {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: b"\t".to_vec(),
            line_separator: b"\n".to_vec(),
            headers_separator: b",".to_vec(),
            headers_key_separator: b":".to_vec(),
            null_literal: b"null".to_vec(),
        }
    }
}

impl Formatter {
    fn from_properties(props: &[(String, String)]) -> anyhow::Result<Self> {
        let mut f = Self::default();
        let flag = |key: &str, value: &str| -> anyhow::Result<bool> {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => bail!("property {key}: `{value}` is not true or false"),
            }
        };
        for (key, value) in props {
            match key.as_str() {
                "print.timestamp" => f.print_timestamp = flag(key, value)?,
                "print.partition" => f.print_partition = flag(key, value)?,
                "print.offset" => f.print_offset = flag(key, value)?,
                "print.headers" => f.print_headers = flag(key, value)?,
                "print.key" => f.print_key = flag(key, value)?,
                "print.value" => f.print_value = flag(key, value)?,
                "key.separator" => f.key_separator = value.as_bytes().to_vec(),
                "line.separator" => f.line_separator = value.as_bytes().to_vec(),
                "headers.separator" => f.headers_separator = value.as_bytes().to_vec(),
                "headers.key.separator" => f.headers_key_separator = value.as_bytes().to_vec(),
                "null.literal" => f.null_literal = value.as_bytes().to_vec(),
                other => bail!(
                    "unknown --property `{other}`; supported: print.timestamp, print.partition, \
                     print.offset, print.headers, print.key, print.value, key.separator, \
                     line.separator, headers.separator, headers.key.separator, null.literal"
                ),
            }
        }
        Ok(f)
    }

    fn nullable(&self, out: &mut Vec<u8>, bytes: Option<&[u8]>) {
        out.extend_from_slice(bytes.unwrap_or(&self.null_literal));
    }

    /// Appends one record, fields in Kafka's order, each followed by `key.separator` when
    /// another field follows.
    fn write(&self, out: &mut Vec<u8>, r: &ConsumerRecord) {
        let fields = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_headers,
            self.print_key,
            self.print_value,
        ];
        let more_after = |i: usize| fields[i + 1..].iter().any(|&f| f);
        let sep = |out: &mut Vec<u8>, i: usize| {
            if more_after(i) {
                out.extend_from_slice(&self.key_separator);
            }
        };
        if self.print_timestamp {
            out.extend_from_slice(format!("{}:{}", r.timestamp_type, r.timestamp).as_bytes());
            sep(out, 0);
        }
        if self.print_partition {
            out.extend_from_slice(format!("Partition:{}", r.partition).as_bytes());
            sep(out, 1);
        }
        if self.print_offset {
            out.extend_from_slice(format!("Offset:{}", r.offset).as_bytes());
            sep(out, 2);
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.extend_from_slice(b"NO_HEADERS");
            }
            for (i, h) in r.headers.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(&self.headers_separator);
                }
                out.extend_from_slice(h.key.as_bytes());
                out.extend_from_slice(&self.headers_key_separator);
                self.nullable(out, h.value.as_deref());
            }
            sep(out, 3);
        }
        if self.print_key {
            self.nullable(out, r.key.as_deref());
            sep(out, 4);
        }
        if self.print_value {
            self.nullable(out, r.value.as_deref());
        }
        out.extend_from_slice(&self.line_separator);
    }
}

pub(crate) fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let formatter = Formatter::from_properties(&args.properties)?;
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let mut overrides = vec![("auto.offset.reset", reset.to_string())];
    if let Some(group) = &args.group {
        overrides.push(("group.id", group.clone()));
    }
    if let Some(level) = &args.isolation_level {
        overrides.push(("isolation.level", level.clone()));
    }
    for (k, v) in &args.consumer_properties {
        overrides.push((k.as_str(), v.clone()));
    }
    let config = args.connect.config(&overrides)?;
    if args.group.is_some() {
        return run_async(async move {
            let mut consumer = Consumer::connect(config).await?;
            consumer.subscribe([args.topic.clone()])?;
            let processed = consume_loop(&mut consumer, &args, &formatter).await;
            // Commits (auto-commit is on unless the properties turned it off) and leaves.
            let closed = consumer.close().await;
            eprintln!(
                "Processed a total of {} messages",
                processed.as_ref().map_or(0, |n| *n)
            );
            processed?;
            closed?;
            Ok(())
        });
    }
    run_async(async move {
        let mut consumer = Consumer::connect(config).await?;
        let partitions = consumer.partitions_for(&args.topic).await?;
        let start = match (args.offset, args.from_beginning) {
            (Some(offset), _) => offset,
            (None, true) => Offset::Earliest,
            (None, false) => Offset::Latest,
        };
        let assignment: Vec<(TopicPartition, Offset)> = match args.partition {
            Some(p) => {
                if !partitions.iter().any(|d| d.partition == p) {
                    bail!(
                        "partition {p} does not exist in topic '{}' ({} partitions)",
                        args.topic,
                        partitions.len()
                    );
                }
                vec![(TopicPartition::new(&args.topic, p), start)]
            }
            None => partitions
                .iter()
                .map(|d| (TopicPartition::new(&args.topic, d.partition), start))
                .collect(),
        };
        consumer.assign(assignment);
        let processed = consume_loop(&mut consumer, &args, &formatter).await;
        eprintln!(
            "Processed a total of {} messages",
            processed.as_ref().map_or(0, |n| *n)
        );
        processed.map(|_| ())
    })
}

/// Polls and prints until a stop condition; returns how many records were printed.
async fn consume_loop(
    consumer: &mut Consumer,
    args: &ConsumeArgs,
    formatter: &Formatter,
) -> anyhow::Result<u64> {
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let max = args.max_messages.unwrap_or(u64::MAX);
    let mut processed = 0u64;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    let mut buf = Vec::with_capacity(64 * 1024);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    while processed < max {
        let wait = match idle_limit {
            Some(limit) => {
                let left = (last_record + limit).saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.min(Duration::from_secs(1))
            }
            None => Duration::from_secs(1),
        };
        let records = tokio::select! {
            records = consumer.poll(wait) => records?,
            () = &mut shutdown => break,
        };
        if records.is_empty() {
            continue;
        }
        last_record = Instant::now();
        buf.clear();
        for r in &records {
            if processed >= max {
                break;
            }
            formatter.write(&mut buf, r);
            processed += 1;
        }
        let mut out = stdout.lock();
        if let Err(e) = out.write_all(&buf).and_then(|()| out.flush()) {
            if is_broken_pipe(&e) {
                break;
            }
            return Err(anyhow!(e).context("cannot write to stdout"));
        }
    }
    Ok(processed)
}

/// Completes on SIGINT or SIGTERM; never if the handlers cannot be installed.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use strom_client::{Header, TimestampType};

    fn record() -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1234,
            timestamp_type: TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![Header::new("a", Some("1")), Header::new("b", None::<Bytes>)],
        }
    }

    fn render(props: &[(&str, &str)]) -> String {
        let props: Vec<(String, String)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f = Formatter::from_properties(&props).unwrap();
        let mut out = Vec::new();
        f.write(&mut out, &record());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn default_prints_the_value_or_null() {
        assert_eq!(render(&[]), "null\n");
    }

    #[test]
    fn all_fields_in_kafkas_order() {
        assert_eq!(
            render(&[
                ("print.key", "true"),
                ("print.partition", "true"),
                ("print.offset", "true"),
                ("print.timestamp", "true"),
                ("print.headers", "true"),
            ]),
            "CreateTime:1234\tPartition:2\tOffset:7\ta:1,b:null\tk\tnull\n"
        );
        assert_eq!(
            render(&[
                ("print.key", "true"),
                ("key.separator", " => "),
                ("null.literal", "-")
            ]),
            "k => -\n"
        );
        // The separator goes between printed fields only.
        assert_eq!(
            render(&[("print.key", "true"), ("print.value", "false")]),
            "k\n"
        );
    }

    #[test]
    fn unknown_properties_and_bad_flags_are_refused() {
        let bad = [("print.keys".to_string(), "true".to_string())];
        assert!(
            Formatter::from_properties(&bad)
                .unwrap_err()
                .to_string()
                .contains("unknown --property `print.keys`")
        );
        let bad = [("print.key".to_string(), "yes".to_string())];
        assert!(Formatter::from_properties(&bad).is_err());
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("earliest"), Ok(Offset::Earliest));
        assert_eq!(parse_offset("latest"), Ok(Offset::Latest));
        assert_eq!(parse_offset("42"), Ok(Offset::At(42)));
        assert!(parse_offset("-1").is_err());
        assert!(parse_offset("soon").is_err());
    }
}
