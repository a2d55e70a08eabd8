//! `strom groups`: list, describe and delete consumer groups and reset their offsets, like
//! `kafka-consumer-groups.sh` (`--list`, `--describe`, `--delete`, `--reset-offsets`), with
//! the same table layouts and messages.

mod describe;
mod reset;

use strom_client::{
    Admin, ClientError, ErrorCode, GroupDescription, GroupListing, GroupState, GroupType,
};

use crate::client_args::{ConnectArgs, Output, Reported, out, outln, report, run_async};

#[derive(Debug, clap::Args)]
pub(crate) struct GroupsArgs {
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GroupsCommand {
    /// List consumer groups; with --state or --type, as a table with those columns.
    List {
        /// Show each group's state; with values (repeatable or comma-separated), only groups
        /// in those states: Stable, Empty, PreparingRebalance, CompletingRebalance, Dead,
        /// Assigning, Reconciling.
        #[arg(long, value_name = "STATE", num_args = 0..=1, value_delimiter = ',')]
        state: Option<Vec<GroupState>>,
        /// Show each group's type; with values, only groups of those types: classic,
        /// consumer.
        #[arg(long = "type", value_name = "TYPE", num_args = 0..=1, value_delimiter = ',')]
        types: Option<Vec<GroupType>>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Describe groups: committed offsets and lag per partition (default), members, or state.
    Describe(describe::DescribeArgs),
    /// Delete groups that have no active members, with their committed offsets.
    Delete {
        /// The groups to delete.
        #[arg(required_unless_present = "all_groups", conflicts_with = "all_groups")]
        groups: Vec<String>,
        /// Every consumer group.
        #[arg(long)]
        all_groups: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Plan or execute new committed offsets for inactive groups.
    ResetOffsets(reset::ResetArgs),
}

pub(crate) fn run(args: GroupsArgs) -> anyhow::Result<()> {
    run_async(async move {
        match args.command {
            GroupsCommand::List {
                state,
                types,
                output,
                connect,
            } => {
                let admin = Admin::connect(connect.config(&[])?).await?;
                list(&admin, state, types, output).await
            }
            GroupsCommand::Describe(args) => describe::run(args).await,
            GroupsCommand::Delete {
                groups,
                all_groups,
                connect,
            } => {
                let admin = Admin::connect(connect.config(&[])?).await?;
                let groups = if all_groups {
                    consumer_group_ids(&admin).await?
                } else {
                    groups
                };
                delete(&admin, &groups).await
            }
            GroupsCommand::ResetOffsets(args) => reset::run(args).await,
        }
    })
}

/// Kafka's consumer-group tools see groups of the consumer protocol and groups that only hold
/// offsets (no protocol type), not Connect workers and the like.
fn is_consumer_group(g: &GroupListing) -> bool {
    g.protocol_type.is_empty()
        || g.protocol_type == strom_client::group_protocol::CONSUMER_PROTOCOL_TYPE
}

/// Ids of every consumer group, sorted.
pub(super) async fn consumer_group_ids(admin: &Admin) -> anyhow::Result<Vec<String>> {
    Ok(admin
        .list_groups(&[], &[])
        .await?
        .into_iter()
        .filter(is_consumer_group)
        .map(|g| g.group_id)
        .collect())
}

async fn list(
    admin: &Admin,
    state: Option<Vec<GroupState>>,
    types: Option<Vec<GroupType>>,
    output: Output,
) -> anyhow::Result<()> {
    let states = state.clone().unwrap_or_default();
    let type_filter = types.clone().unwrap_or_default();
    let groups: Vec<GroupListing> = admin
        .list_groups(&states, &type_filter)
        .await?
        .into_iter()
        .filter(is_consumer_group)
        .collect();
    match output {
        Output::Json => {
            let list: Vec<serde_json::Value> = groups
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "group": g.group_id,
                        "protocol_type": g.protocol_type,
                        "state": g.state.map(|s| s.to_string()),
                        "type": g.group_type.map(|t| t.to_string()),
                    })
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&list)?)?;
        }
        Output::Table if state.is_none() && types.is_none() => {
            for g in &groups {
                outln!("{}", g.group_id)?;
            }
        }
        Output::Table => out(&list_table(&groups, types.is_some(), state.is_some()))?,
    }
    Ok(())
}

/// `kafka-consumer-groups.sh --list --state/--type`: GROUP padded to the longest id (at least
/// 15) plus 10, then TYPE and STATE padded to 20.
fn list_table(groups: &[GroupListing], with_type: bool, with_state: bool) -> String {
    let width = groups
        .iter()
        .map(|g| g.group_id.len().max(15))
        .max()
        .unwrap_or(15)
        + 10;
    let line = |id: &str, group_type: &str, state: &str| {
        let mut l = format!("{id:<width$}");
        if with_type {
            l.push_str(&format!(" {group_type:<20}"));
        }
        if with_state {
            l.push_str(&format!(" {state:<20}"));
        }
        l.push('\n');
        l
    };
    let mut out = line("GROUP", "TYPE", "STATE");
    for g in groups {
        out.push_str(&line(
            &g.group_id,
            &g.group_type.unwrap_or(GroupType::Unknown).to_string(),
            &g.state.unwrap_or(GroupState::Unknown).to_string(),
        ));
    }
    out
}

/// Deletes groups; prints Kafka's summary, and for failures one bullet per group.
async fn delete(admin: &Admin, groups: &[String]) -> anyhow::Result<()> {
    let results = admin.delete_groups(groups).await?;
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.result.is_ok());
    let ok: Vec<String> = ok.into_iter().map(|r| r.group_id).collect();
    if failed.is_empty() {
        outln!(
            "Deletion of requested consumer groups ('{}') was successful.",
            ok.join(", ")
        )?;
        return Ok(());
    }
    report("Deletion of some consumer groups failed:");
    for r in &failed {
        if let Err(e) = &r.result {
            outln!("* Group '{}' could not be deleted due to: {e}", r.group_id)?;
        }
    }
    if !ok.is_empty() {
        let quoted: Vec<String> = ok.iter().map(|g| format!("'{g}'")).collect();
        outln!(
            "\nThese consumer groups were deleted successfully: {}",
            quoted.join(", ")
        )?;
    }
    Err(Reported.into())
}

/// A described group, or `None` when it does not exist (unknown to the coordinator, or Dead
/// as older brokers say).
pub(super) fn existing(
    result: Result<GroupDescription, ClientError>,
) -> Result<Option<GroupDescription>, ClientError> {
    match result {
        Err(e) if e.code() == Some(ErrorCode::GroupIdNotFound) => Ok(None),
        Ok(d) if d.state == GroupState::Dead => Ok(None),
        other => other.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_table_matches_kafka_layout() {
        let groups = vec![GroupListing {
            group_id: "orders-app".into(),
            protocol_type: "consumer".into(),
            state: Some(GroupState::Stable),
            group_type: Some(GroupType::Classic),
        }];
        assert_eq!(
            list_table(&groups, true, true),
            format!(
                "{:<25} {:<20} {:<20}\n{:<25} {:<20} {:<20}\n",
                "GROUP", "TYPE", "STATE", "orders-app", "Classic", "Stable"
            )
        );
        assert_eq!(
            list_table(&groups, false, true),
            "GROUP                     STATE               \n\
             orders-app                Stable              \n"
        );
    }
}
