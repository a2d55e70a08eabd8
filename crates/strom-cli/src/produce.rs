//! `strom produce`: one record per input line, like `kafka-console-producer.sh`.
//!
//! With `--key-separator`, the text before the first separator is the key (Kafka's
//! `parse.key=true` with `key.separator`); a line without the separator stops the tool with
//! Kafka's message, `No key separator found on line number N: '...'`. Unlike Kafka's tool,
//! which dies without flushing, the lines before it are still delivered.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use strom_client::{Acks, ClientError, CompressionType, Producer, ProducerRecord};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use crate::client_args::{ConnectArgs, run_async};

/// Records awaiting acknowledgement before reading more input: bounds memory on huge inputs.
const MAX_OUTSTANDING: usize = 10_000;

#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    topic: String,
    /// Split each line into KEY<SEP>VALUE at the first SEP.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Write every record to this partition instead of using the partitioner.
    #[arg(long)]
    partition: Option<i32>,
    /// 0, 1 or all [default: all]
    #[arg(long, value_parser = parse_acks)]
    acks: Option<Acks>,
    /// none, gzip, snappy, lz4 or zstd [default: none]
    #[arg(long, value_parser = parse_compression)]
    compression: Option<CompressionType>,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse()
}

fn parse_compression(s: &str) -> Result<CompressionType, String> {
    s.parse()
}

/// Turns one input line (without its line ending) into key and value.
fn parse_line(
    line: &[u8],
    separator: Option<&[u8]>,
    line_number: u64,
) -> anyhow::Result<(Option<Bytes>, Bytes)> {
    let Some(sep) = separator else {
        return Ok((None, Bytes::copy_from_slice(line)));
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(at) => Ok((
            Some(Bytes::copy_from_slice(&line[..at])),
            Bytes::copy_from_slice(&line[at + sep.len()..]),
        )),
        None => Err(anyhow!(
            "No key separator found on line number {line_number}: '{}'",
            String::from_utf8_lossy(line)
        )),
    }
}

pub(crate) fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let mut overrides = Vec::new();
    if let Some(acks) = args.acks {
        overrides.push(("acks", acks.to_string()));
    }
    if let Some(c) = args.compression {
        overrides.push(("compression.type", c.to_string()));
    }
    let config = args.connect.config(&overrides)?;
    if args.key_separator.as_deref() == Some("") {
        return Err(anyhow!("--key-separator must not be empty"));
    }
    run_async(async move {
        let input: Box<dyn AsyncBufRead + Unpin + Send> = match &args.file {
            Some(path) => Box::new(BufReader::new(
                tokio::fs::File::open(path)
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?,
            )),
            None => Box::new(BufReader::new(tokio::io::stdin())),
        };
        let producer = Producer::connect(config).await?;
        let result = produce_lines(&producer, &args, input).await;
        producer.close().await?;
        result
    })
}

async fn produce_lines(
    producer: &Producer,
    args: &ProduceArgs,
    mut input: Box<dyn AsyncBufRead + Unpin + Send>,
) -> anyhow::Result<()> {
    let separator = args.key_separator.as_deref().map(str::as_bytes);
    let mut pending = FuturesUnordered::new();
    let mut failed = 0u64;
    let mut first_error: Option<ClientError> = None;
    let mut record_outcome = |outcome: Result<_, ClientError>| {
        if let Err(e) = outcome {
            failed += 1;
            first_error.get_or_insert(e);
        }
    };
    let mut line = Vec::new();
    let mut line_number = 0u64;
    let mut input_error = None;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .await
            .context("cannot read input")?;
        if read == 0 {
            break;
        }
        line_number += 1;
        // Like Java's readLine: `\n`, `\r\n` and a final line without an ending.
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = match parse_line(&line, separator, line_number) {
            Ok(kv) => kv,
            Err(e) => {
                input_error = Some(e);
                break;
            }
        };
        let record = ProducerRecord {
            topic: args.topic.clone(),
            partition: args.partition,
            key,
            value: Some(value),
            headers: Vec::new(),
            timestamp: None,
        };
        pending.push(producer.queue(record).await);
        while pending.len() >= MAX_OUTSTANDING {
            if let Some(outcome) = pending.next().await {
                record_outcome(outcome);
            }
        }
    }
    producer.flush().await?;
    while let Some(outcome) = pending.next().await {
        record_outcome(outcome);
    }
    if let Some(e) = input_error {
        return Err(e);
    }
    match first_error {
        None => Ok(()),
        Some(e) if failed == 1 => Err(e.into()),
        Some(e) => Err(anyhow!("{failed} records failed; the first: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let (k, v) = parse_line(b"user:a:b", Some(b":"), 1).unwrap();
        assert_eq!(k.as_deref(), Some(&b"user"[..]));
        assert_eq!(&v[..], b"a:b");
        let (k, v) = parse_line(b"k::v", Some(b"::"), 1).unwrap();
        assert_eq!((k.as_deref(), &v[..]), (Some(&b"k"[..]), &b"v"[..]));
        let (k, v) = parse_line(b":v", Some(b":"), 1).unwrap();
        assert_eq!((k.as_deref(), &v[..]), (Some(&b""[..]), &b"v"[..]));
        let (k, v) = parse_line(b"plain", None, 1).unwrap();
        assert_eq!((k, &v[..]), (None, &b"plain"[..]));
    }

    #[test]
    fn a_line_without_separator_is_kafkas_error() {
        let err = parse_line(b"hhh", Some(b":"), 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "No key separator found on line number 2: 'hhh'"
        );
    }
}
