//! `strom transactions list|describe|abort`, like `kafka-transactions.sh`: the transactions the
//! coordinators know, one transactional id in detail, and aborting a hanging transaction on a
//! partition (found by its start offset through DescribeProducers, or given by producer id and
//! epochs).

use anyhow::{Context, bail};
use strom_client::{AbortTransactionSpec, Admin, ListTransactionsOptions, TopicPartition};

use crate::client_args::{ConnectArgs, Output, out, outln, run_async};

#[derive(Debug, clap::Args)]
pub(crate) struct TransactionsArgs {
    #[command(subcommand)]
    command: TransactionsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TransactionsCommand {
    /// List the transactions of every coordinator.
    List {
        /// Only transactions in these states (comma-separated): Empty, Ongoing, PrepareCommit,
        /// PrepareAbort, CompleteCommit, CompleteAbort, PrepareEpochFence, Dead.
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        /// Only transactions of these producer ids (comma-separated).
        #[arg(long, value_delimiter = ',')]
        producer_id: Vec<i64>,
        /// Only transactions running longer than this many milliseconds.
        #[arg(long, value_name = "MS")]
        duration_filter: Option<i64>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe one transactional id: state, producer, timeout, start time and partitions.
    Describe {
        #[arg(long, value_name = "ID")]
        transactional_id: String,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Abort a hanging transaction on one partition (writes an ABORT marker there).
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// The first offset of the transaction on the partition (its producer is looked up).
        #[arg(long, value_name = "OFFSET", conflicts_with_all = ["producer_id", "producer_epoch", "coordinator_epoch"])]
        start_offset: Option<i64>,
        #[arg(long, requires_all = ["producer_epoch", "coordinator_epoch"])]
        producer_id: Option<i64>,
        #[arg(long)]
        producer_epoch: Option<i16>,
        #[arg(long)]
        coordinator_epoch: Option<i32>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

impl TransactionsCommand {
    fn connect(&self) -> &ConnectArgs {
        match self {
            TransactionsCommand::List { connect, .. }
            | TransactionsCommand::Describe { connect, .. }
            | TransactionsCommand::Abort { connect, .. } => connect,
        }
    }
}

/// Columns padded to their widest cell, as kafka-transactions.sh prints them.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join(" ").trim_end())
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

pub(crate) fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let config = args.command.connect().config(&[])?;
    run_async(async move {
        let admin = Admin::connect(config).await?;
        match args.command {
            TransactionsCommand::List {
                state,
                producer_id,
                duration_filter,
                output,
                ..
            } => {
                let listed = admin
                    .list_transactions(&ListTransactionsOptions {
                        states: state,
                        producer_ids: producer_id,
                        duration_filter_ms: duration_filter,
                    })
                    .await?;
                match output {
                    Output::Json => {
                        let rows: Vec<serde_json::Value> = listed
                            .iter()
                            .map(|t| {
                                serde_json::json!({
                                    "transactional_id": t.transactional_id,
                                    "coordinator": t.coordinator,
                                    "producer_id": t.producer_id,
                                    "state": t.state,
                                })
                            })
                            .collect();
                        outln!("{}", serde_json::to_string_pretty(&rows)?)?;
                    }
                    Output::Table => {
                        let rows: Vec<Vec<String>> = listed
                            .iter()
                            .map(|t| {
                                vec![
                                    t.transactional_id.clone(),
                                    t.coordinator.to_string(),
                                    t.producer_id.to_string(),
                                    t.state.clone(),
                                ]
                            })
                            .collect();
                        out(&table(
                            &[
                                "TransactionalId",
                                "Coordinator",
                                "ProducerId",
                                "TransactionState",
                            ],
                            &rows,
                        ))?;
                    }
                }
            }
            TransactionsCommand::Describe {
                transactional_id,
                output,
                ..
            } => {
                let (_, described) = admin
                    .describe_transactions(std::slice::from_ref(&transactional_id))
                    .await?
                    .into_iter()
                    .next()
                    .context("no answer for the transactional id")?;
                let d =
                    described.with_context(|| format!("cannot describe '{transactional_id}'"))?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                let started =
                    (d.transaction_start_time_ms >= 0).then_some(d.transaction_start_time_ms);
                let partitions: Vec<String> =
                    d.partitions.iter().map(|tp| tp.to_string()).collect();
                match output {
                    Output::Json => outln!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "coordinator": d.coordinator,
                            "transactional_id": transactional_id,
                            "producer_id": d.producer_id,
                            "producer_epoch": d.producer_epoch,
                            "state": d.state,
                            "transaction_timeout_ms": d.transaction_timeout_ms,
                            "transaction_start_time_ms": started,
                            "transaction_duration_ms": started.map(|s| now - s),
                            "partitions": partitions,
                        }))?
                    )?,
                    Output::Table => out(&table(
                        &[
                            "CoordinatorId",
                            "TransactionalId",
                            "ProducerId",
                            "ProducerEpoch",
                            "TransactionState",
                            "TransactionTimeoutMs",
                            "CurrentTransactionStartTimeMs",
                            "TransactionDurationMs",
                            "TopicPartitions",
                        ],
                        &[vec![
                            d.coordinator.to_string(),
                            transactional_id.clone(),
                            d.producer_id.to_string(),
                            d.producer_epoch.to_string(),
                            d.state.clone(),
                            d.transaction_timeout_ms.to_string(),
                            started.map_or("None".into(), |s| s.to_string()),
                            started.map_or("None".into(), |s| (now - s).to_string()),
                            partitions.join(","),
                        ]],
                    ))?,
                }
            }
            TransactionsCommand::Abort {
                topic,
                partition,
                start_offset,
                producer_id,
                producer_epoch,
                coordinator_epoch,
                ..
            } => {
                let tp = TopicPartition::new(topic, partition);
                let spec = match (start_offset, producer_id, producer_epoch, coordinator_epoch) {
                    (Some(offset), ..) => {
                        let [described] = <[_; 1]>::try_from(
                            admin.describe_producers(std::slice::from_ref(&tp)).await?,
                        )
                        .map_err(|_| anyhow::anyhow!("no answer for {tp}"))?;
                        let producers = described
                            .result
                            .with_context(|| format!("cannot describe the producers of {tp}"))?;
                        let Some(p) = producers
                            .iter()
                            .find(|p| p.current_txn_start_offset == Some(offset))
                        else {
                            bail!(
                                "Could not find any open transactions starting at offset {offset} on partition {tp}"
                            );
                        };
                        AbortTransactionSpec {
                            partition: tp.clone(),
                            producer_id: p.producer_id,
                            producer_epoch: i16::try_from(p.producer_epoch)
                                .context("producer epoch out of range")?,
                            coordinator_epoch: p.coordinator_epoch.max(0),
                        }
                    }
                    (None, Some(id), Some(epoch), Some(coordinator_epoch)) => {
                        AbortTransactionSpec {
                            partition: tp.clone(),
                            producer_id: id,
                            producer_epoch: epoch,
                            coordinator_epoch,
                        }
                    }
                    _ => bail!(
                        "give --start-offset, or --producer-id with --producer-epoch and --coordinator-epoch"
                    ),
                };
                admin
                    .abort_transaction(&spec)
                    .await
                    .with_context(|| format!("cannot abort the transaction on {tp}"))?;
                outln!(
                    "Aborted the transaction of producer {} (epoch {}) on {tp}",
                    spec.producer_id,
                    spec.producer_epoch
                )?;
            }
        }
        Ok(())
    })
}
