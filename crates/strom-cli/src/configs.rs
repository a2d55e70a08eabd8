//! `strom configs`: describe and alter the configs of a topic, a broker, or the cluster-wide
//! broker defaults, like `kafka-configs.sh --describe / --alter` (with `--entity-type topics
//! --entity-name T`, `--entity-type brokers --entity-name ID`, `--entity-default`).
//!
//! Describing shows the dynamic configs (set on that very resource) unless `--all`, each with
//! its synonyms; altering is IncrementalAlterConfigs (SET for `--add-config`, DELETE for
//! `--delete-config`), refusing to delete a key that is not set, as Kafka does.

use anyhow::{Context, bail};
use strom_client::{
    Admin, AlterConfigOp, AlterConfigsOptions, ConfigEntry, ConfigResource, ConfigSource,
    DescribeConfigsOptions,
};

use crate::client_args::{ConnectArgs, Output, outln, run_async};

#[derive(Debug, clap::Args)]
pub(crate) struct ConfigsArgs {
    #[command(subcommand)]
    command: ConfigsCommand,
}

/// Which resource: exactly one of these.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
struct Entity {
    /// A topic.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
    /// One broker, by id.
    #[arg(long, value_name = "ID")]
    broker: Option<i32>,
    /// The defaults of every broker in the cluster.
    #[arg(long)]
    broker_defaults: bool,
}

impl Entity {
    fn resource(&self) -> ConfigResource {
        match (&self.topic, self.broker) {
            (Some(t), _) => ConfigResource::topic(t),
            (None, Some(id)) => ConfigResource::broker(id),
            (None, None) => ConfigResource::broker_defaults(),
        }
    }

    /// The source of values set on this very resource, which is what Kafka shows without
    /// `--all` and what can be deleted.
    fn dynamic_source(&self) -> ConfigSource {
        match (&self.topic, self.broker) {
            (Some(_), _) => ConfigSource::DynamicTopicConfig,
            (None, Some(_)) => ConfigSource::DynamicBrokerConfig,
            (None, None) => ConfigSource::DynamicDefaultBrokerConfig,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum ConfigsCommand {
    /// Show the configs set on a resource (with --all: every config and its value).
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Every config, not only the ones set on this resource.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Set and remove configs of a resource.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// Configs to set: `k1=v1,k2=[v1,v2],k3=v3` (brackets for values with commas);
        /// repeatable.
        #[arg(long = "add-config", value_name = "K=V,...")]
        add: Vec<String>,
        /// Configs to remove (back to the inherited value): `k1,k2`; repeatable.
        #[arg(long = "delete-config", value_name = "K,...", value_delimiter = ',')]
        delete: Vec<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

pub(crate) fn run(args: ConfigsArgs) -> anyhow::Result<()> {
    run_async(async move {
        match args.command {
            ConfigsCommand::Describe {
                entity,
                all,
                output,
                connect,
            } => {
                let admin = Admin::connect(connect.config(&[])?).await?;
                describe(&admin, &entity, all, output).await
            }
            ConfigsCommand::Alter {
                entity,
                add,
                delete,
                connect,
            } => {
                let mut sets = Vec::new();
                for a in &add {
                    sets.extend(parse_add_config(a)?);
                }
                let deletes: Vec<String> = delete
                    .iter()
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty())
                    .collect();
                if sets.is_empty() && deletes.is_empty() {
                    bail!(
                        "At least one of --add-config or --delete-config must be specified with alter"
                    );
                }
                let admin = Admin::connect(connect.config(&[])?).await?;
                alter(&admin, &entity, sets, deletes).await
            }
        }
    })
}

/// The resource's configs, sorted by name; only the ones set on it unless `all`.
async fn entries(
    admin: &Admin,
    entity: &Entity,
    all: bool,
    include_synonyms: bool,
) -> anyhow::Result<Vec<ConfigEntry>> {
    let resource = entity.resource();
    let result = admin
        .describe_configs_with_options(
            std::slice::from_ref(&resource),
            DescribeConfigsOptions {
                include_synonyms,
                include_documentation: false,
            },
        )
        .await?
        .into_iter()
        .next()
        .context("the broker did not answer for the resource")?;
    let source = entity.dynamic_source();
    let mut entries: Vec<ConfigEntry> = result
        .result?
        .into_iter()
        .filter(|e| all || e.source == source)
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// The header line `kafka-configs.sh --describe` prints before the entries.
fn describe_header(entity: &Entity, all: bool) -> String {
    let which = if all { "All" } else { "Dynamic" };
    match (&entity.topic, entity.broker) {
        (Some(t), _) => format!("{which} configs for topic {t} are:"),
        (None, Some(id)) => format!("{which} configs for broker {id} are:"),
        (None, None) => "Default configs for brokers in the cluster are:".to_string(),
    }
}

/// `  name=value sensitive=false synonyms={SOURCE:name=value, ...}`; unknown values print as
/// `null`, as Java prints them.
fn entry_line(e: &ConfigEntry) -> String {
    let synonyms: Vec<String> = e
        .synonyms
        .iter()
        .map(|s| {
            format!(
                "{}:{}={}",
                s.source,
                s.name,
                s.value.as_deref().unwrap_or("null")
            )
        })
        .collect();
    format!(
        "  {}={} sensitive={} synonyms={{{}}}",
        e.name,
        e.value.as_deref().unwrap_or("null"),
        e.sensitive,
        synonyms.join(", ")
    )
}

async fn describe(admin: &Admin, entity: &Entity, all: bool, output: Output) -> anyhow::Result<()> {
    let entries = entries(admin, entity, all, true).await?;
    match output {
        Output::Table => {
            outln!("{}", describe_header(entity, all))?;
            for e in &entries {
                outln!("{}", entry_line(e))?;
            }
        }
        Output::Json => {
            let list: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "name": e.name,
                        "value": e.value,
                        "source": e.source.to_string(),
                        "sensitive": e.sensitive,
                        "read_only": e.read_only,
                        "synonyms": e.synonyms.iter().map(|s| serde_json::json!({
                            "name": s.name,
                            "value": s.value,
                            "source": s.source.to_string(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&list)?)?;
        }
    }
    Ok(())
}

async fn alter(
    admin: &Admin,
    entity: &Entity,
    sets: Vec<(String, String)>,
    deletes: Vec<String>,
) -> anyhow::Result<()> {
    if !deletes.is_empty() {
        // Kafka refuses to delete what is not set on the resource.
        let set: Vec<String> = entries(admin, entity, false, false)
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect();
        let invalid: Vec<&str> = deletes
            .iter()
            .filter(|d| !set.contains(d))
            .map(String::as_str)
            .collect();
        if !invalid.is_empty() {
            bail!("Invalid config(s): {}", invalid.join(","));
        }
    }
    let ops: Vec<AlterConfigOp> = sets
        .into_iter()
        .map(|(k, v)| AlterConfigOp::set(k, v))
        .chain(deletes.into_iter().map(AlterConfigOp::delete))
        .collect();
    let resource = entity.resource();
    let result = admin
        .incremental_alter_configs(&[(resource, ops)], AlterConfigsOptions::default())
        .await?
        .into_iter()
        .next()
        .context("the broker did not answer for the resource")?;
    result.result?;
    match (&entity.topic, entity.broker) {
        (Some(t), _) => outln!("Completed updating config for topic {t}.")?,
        (None, Some(id)) => outln!("Completed updating config for broker {id}.")?,
        (None, None) => outln!("Completed updating default config for brokers in the cluster.")?,
    }
    Ok(())
}

/// Kafka's `--add-config` syntax: `k=v` pairs split at commas outside `[...]`; brackets are
/// removed from values (they only protect commas); keys are `[a-zA-Z0-9._-]*`.
fn parse_add_config(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut in_brackets = false;
    let mut piece = String::new();
    let mut pieces = Vec::new();
    for c in s.chars() {
        match c {
            '[' => {
                in_brackets = true;
                piece.push(c);
            }
            ']' => {
                in_brackets = false;
                piece.push(c);
            }
            ',' if !in_brackets => pieces.push(std::mem::take(&mut piece)),
            _ => piece.push(c),
        }
    }
    pieces.push(piece);
    for piece in pieces.iter().filter(|p| !p.trim().is_empty()) {
        let mut depth = false;
        let mut split_at = Vec::new();
        for (i, c) in piece.char_indices() {
            match c {
                '[' => depth = true,
                ']' => depth = false,
                '=' if !depth => split_at.push(i),
                _ => {}
            }
        }
        let [at] = split_at.as_slice() else {
            bail!(
                "Invalid entity config: all configs to be added must be in the format \"key=val\"."
            );
        };
        let key = piece[..*at].trim().to_string();
        let value: String = piece[at + 1..]
            .chars()
            .filter(|c| *c != '[' && *c != ']')
            .collect::<String>()
            .trim()
            .to_string();
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            bail!("Invalid character found for config key: {key}");
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_client::ConfigSynonym;

    #[test]
    fn add_config_syntax_matches_kafka() {
        assert_eq!(
            parse_add_config("a=1, b = [x,y] ,c=").unwrap(),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x,y".to_string()),
                ("c".to_string(), String::new()),
            ]
        );
        assert!(parse_add_config("novalue").is_err());
        assert!(parse_add_config("a=b=c").is_err());
        assert_eq!(
            parse_add_config("bad key=1").unwrap_err().to_string(),
            "Invalid character found for config key: bad key"
        );
    }

    #[test]
    fn describe_lines_match_kafka() {
        let e = ConfigEntry {
            name: "retention.ms".into(),
            value: Some("1000".into()),
            source: ConfigSource::DynamicTopicConfig,
            read_only: false,
            sensitive: false,
            synonyms: vec![
                ConfigSynonym {
                    name: "retention.ms".into(),
                    value: Some("1000".into()),
                    source: ConfigSource::DynamicTopicConfig,
                },
                ConfigSynonym {
                    name: "log.retention.hours".into(),
                    value: Some("168".into()),
                    source: ConfigSource::DefaultConfig,
                },
            ],
            documentation: None,
        };
        assert_eq!(
            entry_line(&e),
            "  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, \
             DEFAULT_CONFIG:log.retention.hours=168}"
        );
        let topic = Entity {
            topic: Some("t".into()),
            broker: None,
            broker_defaults: false,
        };
        assert_eq!(
            describe_header(&topic, false),
            "Dynamic configs for topic t are:"
        );
        let broker = Entity {
            topic: None,
            broker: Some(1),
            broker_defaults: false,
        };
        assert_eq!(
            describe_header(&broker, true),
            "All configs for broker 1 are:"
        );
        let defaults = Entity {
            topic: None,
            broker: None,
            broker_defaults: true,
        };
        assert_eq!(
            describe_header(&defaults, false),
            "Default configs for brokers in the cluster are:"
        );
    }
}
