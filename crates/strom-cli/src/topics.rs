//! `strom topics`: create, list, describe and delete topics, like `kafka-topics.sh`.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use strom_client::{
    Admin, ClientError, ConfigResource, CreateTopicsOptions, ErrorCode, NewTopic, TopicDescription,
};

use crate::client_args::{ConnectArgs, Output, kafka_uuid, parse_key_value, run_async};

#[derive(Debug, clap::Args)]
pub(crate) struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopicsCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions [default: the broker's num.partitions]
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Replicas per partition [default: the broker's default.replication.factor]
        #[arg(long, value_parser = clap::value_parser!(i16).range(1..))]
        replication_factor: Option<i16>,
        /// A topic config, repeatable: `--config retention.ms=3600000`.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Succeed without doing anything if the topic exists.
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List topic names.
    List {
        /// Leave out internal topics (__consumer_offsets, ...).
        #[arg(long)]
        exclude_internal: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe one topic, or all: id, partition count, replication factor, non-default
    /// configs, and each partition's leader, replicas and in-sync replicas.
    Describe {
        name: Option<String>,
        /// Leave out internal topics when describing all.
        #[arg(long)]
        exclude_internal: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Delete a topic.
    Delete {
        name: String,
        /// Succeed without doing anything if the topic does not exist.
        #[arg(long)]
        if_exists: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

pub(crate) fn run(args: TopicsArgs) -> anyhow::Result<()> {
    run_async(async move {
        match args.command {
            TopicsCommand::Create {
                name,
                partitions,
                replication_factor,
                configs,
                if_not_exists,
                connect,
            } => {
                if name.contains('.') || name.contains('_') {
                    // kafka-topics.sh prints the same warning: metric names replace '.' by '_'.
                    println!(
                        "WARNING: Due to limitations in metric names, topics with a period ('.') or \
                         underscore ('_') could collide. To avoid issues it is best to use either, \
                         but not both."
                    );
                }
                let admin = Admin::connect(connect.config(&[])?).await?;
                let topic = NewTopic {
                    name: name.clone(),
                    num_partitions: partitions,
                    replication_factor,
                    configs: configs.into_iter().collect(),
                };
                let result = admin
                    .create_topics(&[topic], CreateTopicsOptions::default())
                    .await?
                    .into_iter()
                    .next()
                    .context("the broker did not answer for the topic")?;
                match result.result {
                    Ok(_) => println!("Created topic {name}."),
                    Err(e) if if_not_exists && e.code() == Some(ErrorCode::TopicAlreadyExists) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(())
            }
            TopicsCommand::List {
                exclude_internal,
                output,
                connect,
            } => {
                let admin = Admin::connect(connect.config(&[])?).await?;
                let topics = admin.list_topics(!exclude_internal).await?;
                match output {
                    Output::Table => {
                        for t in topics {
                            println!("{}", t.name);
                        }
                    }
                    Output::Json => {
                        let list: Vec<serde_json::Value> = topics
                            .iter()
                            .map(|t| {
                                serde_json::json!({
                                    "name": t.name,
                                    "topic_id": t.topic_id.as_ref().map(kafka_uuid),
                                    "internal": t.internal,
                                })
                            })
                            .collect();
                        println!("{}", serde_json::to_string_pretty(&list)?);
                    }
                }
                Ok(())
            }
            TopicsCommand::Describe {
                name,
                exclude_internal,
                output,
                connect,
            } => {
                let admin = Admin::connect(connect.config(&[])?).await?;
                describe(&admin, name, exclude_internal, output).await
            }
            TopicsCommand::Delete {
                name,
                if_exists,
                connect,
            } => {
                let admin = Admin::connect(connect.config(&[])?).await?;
                let result = admin
                    .delete_topics(std::slice::from_ref(&name))
                    .await?
                    .into_iter()
                    .next()
                    .context("the broker did not answer for the topic")?;
                match result.result {
                    Ok(()) => Ok(()),
                    Err(e) if is_unknown_topic(&e) => {
                        if if_exists {
                            Ok(())
                        } else {
                            bail!("topic '{name}' does not exist")
                        }
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    })
}

fn is_unknown_topic(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::UnknownTopicOrPartition | ErrorCode::UnknownTopicId)
    )
}

async fn describe(
    admin: &Admin,
    name: Option<String>,
    exclude_internal: bool,
    output: Output,
) -> anyhow::Result<()> {
    let topics: Vec<TopicDescription> = match name {
        Some(name) => {
            let result = admin
                .describe_topics(std::slice::from_ref(&name))
                .await?
                .into_iter()
                .next()
                .context("the broker did not answer for the topic")?;
            match result.result {
                Ok(t) => vec![t],
                Err(e) if is_unknown_topic(&e) => bail!("topic '{name}' does not exist"),
                Err(e) => return Err(e.into()),
            }
        }
        None => admin.describe_all_topics(!exclude_internal).await?,
    };
    // Kafka shows the configs that differ from the defaults.
    let resources: Vec<ConfigResource> = topics
        .iter()
        .map(|t| ConfigResource::topic(&t.name))
        .collect();
    let mut configs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    if !resources.is_empty() {
        for result in admin.describe_configs(&resources).await? {
            let entries = result.result?;
            configs.insert(
                result.resource.name,
                entries
                    .into_iter()
                    .filter(|e| !e.is_default())
                    .map(|e| (e.name, e.value.unwrap_or_else(|| "null".into())))
                    .collect(),
            );
        }
    }
    match output {
        Output::Table => {
            for t in &topics {
                print!(
                    "{}",
                    describe_table(t, configs.get(&t.name).map_or(&[][..], Vec::as_slice))
                );
            }
        }
        Output::Json => {
            let list: Vec<serde_json::Value> = topics
                .iter()
                .map(|t| {
                    let topic_configs: serde_json::Map<String, serde_json::Value> = configs
                        .get(&t.name)
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect();
                    serde_json::json!({
                        "name": t.name,
                        "topic_id": t.topic_id.as_ref().map(kafka_uuid),
                        "internal": t.internal,
                        "partition_count": t.partitions.len(),
                        "replication_factor": replication_factor(t),
                        "configs": topic_configs,
                        "partitions": t.partitions.iter().map(|p| serde_json::json!({
                            "partition": p.partition,
                            "leader": p.leader,
                            "replicas": p.replicas,
                            "isr": p.isr,
                            "offline_replicas": p.offline_replicas,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
    }
    Ok(())
}

/// Kafka's TopicCommand takes the replication factor from the first partition.
fn replication_factor(t: &TopicDescription) -> usize {
    t.partitions.first().map_or(0, |p| p.replicas.len())
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// The `kafka-topics.sh --describe` layout: a topic line, then one line per partition.
fn describe_table(t: &TopicDescription, configs: &[(String, String)]) -> String {
    let mut out = format!("Topic: {}", t.name);
    if let Some(id) = &t.topic_id {
        out.push_str(&format!("\tTopicId: {}", kafka_uuid(id)));
    }
    let configs: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&format!(
        "\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
        t.partitions.len(),
        replication_factor(t),
        configs.join(",")
    ));
    for p in &t.partitions {
        out.push_str(&format!(
            "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            t.name,
            p.partition,
            p.leader
                .map_or_else(|| "none".to_string(), |l| l.to_string()),
            join(&p.replicas),
            join(&p.isr),
        ));
        if !p.offline_replicas.is_empty() {
            out.push_str(&format!("\tOffline: {}", join(&p.offline_replicas)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_client::PartitionDescription;

    #[test]
    fn describe_layout_matches_kafka_topics() {
        let t = TopicDescription {
            name: "orders".into(),
            topic_id: Some(uuid::Uuid::from_bytes([
                0x2e, 0xd4, 0xdb, 0x48, 0xd1, 0x5e, 0x41, 0x9c, 0x87, 0x9f, 0xc9, 0xd7, 0x2b, 0xfa,
                0xc1, 0x6f,
            ])),
            internal: false,
            partitions: vec![
                PartitionDescription {
                    partition: 0,
                    leader: Some(1),
                    leader_epoch: 0,
                    replicas: vec![1, 2],
                    isr: vec![1, 2],
                    offline_replicas: vec![],
                    error: None,
                },
                PartitionDescription {
                    partition: 1,
                    leader: None,
                    leader_epoch: 0,
                    replicas: vec![2, 1],
                    isr: vec![],
                    offline_replicas: vec![2],
                    error: None,
                },
            ],
        };
        let text = describe_table(&t, &[("retention.ms".into(), "1000".into())]);
        assert_eq!(
            text,
            "Topic: orders\tTopicId: LtTbSNFeQZyHn8nXK_rBbw\tPartitionCount: 2\tReplicationFactor: 2\tConfigs: retention.ms=1000\n\
             \tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1,2\n\
             \tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 2,1\tIsr: \tOffline: 2\n"
        );
    }
}
