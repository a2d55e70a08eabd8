//! `strom log-dirs`: each broker's log directories and the size of every replica in them, as
//! the one-line JSON document of `kafka-log-dirs.sh --describe`:
//!
//! ```text
//! {"brokers":[{"broker":1,"logDirs":[{"error":null,"logDir":"/data",
//!   "partitions":[{"isFuture":false,"offsetLag":0,"partition":"t-0","size":120}]}]}],
//!  "version":1}
//! ```

use anyhow::bail;
use strom_client::{Admin, ClientError, ErrorCode};

use crate::client_args::{ConnectArgs, comma_list, outln, run_async};

#[derive(Debug, clap::Args)]
pub(crate) struct LogDirsArgs {
    /// Accepted for compatibility with kafka-log-dirs.sh; describing is the only action.
    #[arg(long)]
    describe: bool,
    /// Only these topics: `a,b` [default: all]
    #[arg(long, value_name = "TOPIC,...", default_value = "")]
    topic_list: String,
    /// Only these brokers: `1,2` [default: all]
    #[arg(long, value_name = "ID,...", default_value = "")]
    broker_list: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// What Kafka puts in a log directory's `error`: the Java exception class.
fn error_name(e: &ClientError) -> String {
    match e.code() {
        Some(ErrorCode::KafkaStorageError) => {
            "org.apache.kafka.common.errors.KafkaStorageException".into()
        }
        Some(ErrorCode::LogDirNotFound) => {
            "org.apache.kafka.common.errors.LogDirNotFoundException".into()
        }
        Some(ErrorCode::UnknownServerError) => {
            "org.apache.kafka.common.errors.UnknownServerException".into()
        }
        Some(code) => strom_client::error_code_name(code),
        None => e.to_string(),
    }
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) fn run(args: LogDirsArgs) -> anyhow::Result<()> {
    let topics = comma_list(&args.topic_list);
    let wanted = comma_list(&args.broker_list)
        .iter()
        .map(|b| {
            b.parse::<i32>()
                .map_err(|_| anyhow::anyhow!("invalid broker id `{b}` in --broker-list"))
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    run_async(async move {
        let admin = Admin::connect(args.connect.config(&[])?).await?;
        let mut cluster: Vec<i32> = admin
            .describe_cluster()
            .await?
            .nodes
            .iter()
            .map(|n| n.id)
            .collect();
        cluster.sort_unstable();
        let missing: Vec<i32> = wanted
            .iter()
            .copied()
            .filter(|b| !cluster.contains(b))
            .collect();
        if !missing.is_empty() {
            bail!(
                "The given brokers do not exist from --broker-list: {}. Current existent \
                 brokers: {}",
                join(&missing),
                join(&cluster)
            );
        }
        let brokers = if wanted.is_empty() { cluster } else { wanted };
        outln!("Querying brokers for log directories information")?;
        let described = admin.describe_log_dirs(Some(&brokers)).await?;
        let mut json_brokers = Vec::new();
        for (broker, dirs) in described {
            let dirs = dirs.map_err(|e| anyhow::anyhow!("broker {broker}: {e}"))?;
            let log_dirs: Vec<serde_json::Value> = dirs
                .iter()
                .map(|d| {
                    let partitions: Vec<serde_json::Value> = d
                        .replicas
                        .iter()
                        .filter(|(tp, _)| topics.is_empty() || topics.contains(&tp.topic))
                        .map(|(tp, r)| {
                            serde_json::json!({
                                "partition": tp.to_string(),
                                "size": r.size,
                                "offsetLag": r.offset_lag,
                                "isFuture": r.is_future,
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "logDir": d.path,
                        "error": d.error.as_ref().map(error_name),
                        "partitions": partitions,
                    })
                })
                .collect();
            json_brokers.push(serde_json::json!({"broker": broker, "logDirs": log_dirs}));
        }
        let mut sorted = brokers.clone();
        sorted.sort_unstable();
        outln!(
            "Received log directory information from brokers {}",
            join(&sorted)
        )?;
        outln!(
            "{}",
            serde_json::to_string(&serde_json::json!({"version": 1, "brokers": json_brokers}))?
        )?;
        Ok(())
    })
}
