//! `strom delete-records`: move partitions' log start offsets forward, deleting the records
//! below, like `kafka-delete-records.sh`. Takes Kafka's offset JSON file
//! (`{"partitions":[{"topic":"t","partition":0,"offset":5}],"version":1}`; offset -1 means the
//! high watermark) or one partition on the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use strom_client::{Admin, TopicPartition};

use crate::client_args::{ConnectArgs, Reported, outln, report, run_async};

#[derive(Debug, clap::Args)]
pub(crate) struct DeleteRecordsArgs {
    /// Kafka's offset JSON file: which partitions, and the offset to delete up to.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "topic",
        conflicts_with = "topic"
    )]
    offset_json_file: Option<PathBuf>,
    /// One partition's topic (with --partition and --offset) instead of a file.
    #[arg(long, requires_all = ["partition", "offset"])]
    topic: Option<String>,
    #[arg(long, requires = "topic")]
    partition: Option<i32>,
    /// Delete the records below this offset (-1: up to the high watermark).
    #[arg(long, requires = "topic", allow_negative_numbers = true)]
    offset: Option<i64>,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(crate) fn run(args: DeleteRecordsArgs) -> anyhow::Result<()> {
    let before = match (
        &args.offset_json_file,
        &args.topic,
        args.partition,
        args.offset,
    ) {
        (Some(path), _, _, _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            parse_offset_json(&text)?
        }
        (None, Some(topic), Some(partition), Some(offset)) => {
            BTreeMap::from([(TopicPartition::new(topic, partition), offset)])
        }
        _ => bail!("give --offset-json-file, or --topic with --partition and --offset"),
    };
    run_async(async move {
        let admin = Admin::connect(args.connect.config(&[])?).await?;
        outln!("Executing records delete operation")?;
        let results = admin.delete_records(&before).await?;
        outln!("Records delete operation completed:")?;
        let mut failed = 0;
        for r in results {
            match r.result {
                Ok(low_watermark) => {
                    outln!("partition: {}\tlow_watermark: {low_watermark}", r.partition)?;
                }
                Err(e) => {
                    outln!("partition: {}\terror: {e}", r.partition)?;
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            report(format!(
                "the records of {failed} partition(s) could not be deleted"
            ));
            return Err(Reported.into());
        }
        Ok(())
    })
}

/// Parses Kafka's offset JSON (version 1, the only one), refusing a partition named twice.
fn parse_offset_json(text: &str) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| anyhow::anyhow!("The input string is not a valid JSON"))?;
    let version = match json.get("version") {
        None => 1,
        Some(v) => v
            .as_i64()
            .with_context(|| format!("the version field must be an integer, found {v}"))?,
    };
    if version != 1 {
        bail!("Not supported version field value {version}");
    }
    let partitions = json
        .get("partitions")
        .context("Missing partitions field")?
        .as_array()
        .context("the partitions field must be an array")?;
    let mut out = BTreeMap::new();
    let mut duplicates = Vec::new();
    for p in partitions {
        let field = |name: &str| {
            p.get(name)
                .with_context(|| format!("a partition entry has no `{name}` field: {p}"))
        };
        let topic = field("topic")?
            .as_str()
            .with_context(|| format!("`topic` must be a string: {p}"))?;
        let partition = field("partition")?
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .with_context(|| format!("`partition` must be an integer: {p}"))?;
        let offset = field("offset")?
            .as_i64()
            .with_context(|| format!("`offset` must be an integer: {p}"))?;
        let tp = TopicPartition::new(topic, partition);
        if out.insert(tp.clone(), offset).is_some() {
            duplicates.push(tp.to_string());
        }
    }
    if !duplicates.is_empty() {
        duplicates.dedup();
        bail!(
            "Offset json file contains duplicate topic partitions: {}",
            duplicates.join(",")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_json_like_kafka() {
        let parsed = parse_offset_json(
            r#"{"partitions":[{"topic":"t","partition":1,"offset":5},
                {"topic":"t","partition":0,"offset":-1}],"version":1}"#,
        )
        .unwrap();
        assert_eq!(
            parsed.into_iter().collect::<Vec<_>>(),
            vec![
                (TopicPartition::new("t", 0), -1),
                (TopicPartition::new("t", 1), 5)
            ]
        );
        // The version defaults to 1.
        assert!(
            parse_offset_json(r#"{"partitions":[]}"#)
                .unwrap()
                .is_empty()
        );
        let err = |s: &str| parse_offset_json(s).unwrap_err().to_string();
        assert_eq!(err("{"), "The input string is not a valid JSON");
        assert_eq!(
            err(r#"{"version":2}"#),
            "Not supported version field value 2"
        );
        assert_eq!(err(r#"{"version":1}"#), "Missing partitions field");
        assert_eq!(
            err(r#"{"partitions":[{"topic":"t","partition":0,"offset":1},
                   {"topic":"t","partition":0,"offset":2}]}"#),
            "Offset json file contains duplicate topic partitions: t-0"
        );
    }
}
