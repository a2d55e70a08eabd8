//! `strom groups describe`: the three views of `kafka-consumer-groups.sh --describe`.
//!
//! - offsets (default): one row per partition the group has assigned or committed, with the
//!   committed offset, the log end offset and the lag between them;
//! - `--members`: one row per member, with `--verbose` its assigned partitions;
//! - `--state`: the coordinator, assignor, state and member count.
//!
//! Layouts are Kafka's (`printf` widths included, and the blank line each table starts with);
//! the state notes Kafka writes to stderr ("has no active members", "is rebalancing") go to
//! stderr here too. A group that does not exist is an `error:` line and exit status 1, after
//! the other groups were described.

use std::collections::{BTreeMap, BTreeSet};

use strom_client::{
    Admin, GroupDescription, GroupState, MemberDescription, OffsetSpec, TopicPartition,
};

use super::{consumer_group_ids, existing};
use crate::client_args::{ConnectArgs, Output, Reported, out, outln, report};

/// Kafka's placeholder for an empty column.
const MISSING: &str = "-";

#[derive(Debug, clap::Args)]
pub(super) struct DescribeArgs {
    /// The groups to describe.
    #[arg(required_unless_present = "all_groups", conflicts_with = "all_groups")]
    groups: Vec<String>,
    /// Every consumer group.
    #[arg(long)]
    all_groups: bool,
    /// One row per member instead of per partition.
    #[arg(long, conflicts_with_all = ["state", "offsets"])]
    members: bool,
    /// With --members: each member's assigned partitions.
    #[arg(long, requires = "members")]
    verbose: bool,
    /// The group's coordinator, assignor, state and member count.
    #[arg(long, conflicts_with = "offsets")]
    state: bool,
    /// Committed offsets, log end offsets and lag per partition (the default view).
    #[arg(long)]
    offsets: bool,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// One row of the offsets view (Kafka's `PartitionAssignmentState`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OffsetRow {
    tp: TopicPartition,
    committed: Option<i64>,
    log_end: Option<i64>,
    consumer_id: String,
    host: String,
    client_id: String,
}

impl OffsetRow {
    /// Log end minus committed; unknown when either is.
    fn lag(&self) -> Option<i64> {
        Some(self.log_end? - self.committed?)
    }
}

fn or_missing(v: Option<impl ToString>) -> String {
    v.map_or_else(|| MISSING.to_string(), |v| v.to_string())
}

pub(super) async fn run(args: DescribeArgs) -> anyhow::Result<()> {
    let admin = Admin::connect(args.connect.config(&[])?).await?;
    let mut ids = if args.all_groups {
        consumer_group_ids(&admin).await?
    } else {
        args.groups.clone()
    };
    // Kafka describes groups in id order.
    ids.sort();
    ids.dedup();
    let table = args.output == Output::Table;
    let mut failed = false;
    let mut json = Vec::new();
    for r in admin.describe_groups(&ids).await? {
        let g = match existing(r.result) {
            Ok(Some(g)) => g,
            Ok(None) => {
                report(format!("Consumer group '{}' does not exist.", r.group_id));
                failed = true;
                continue;
            }
            Err(e) => {
                report(format!("cannot describe group '{}': {e}", r.group_id));
                failed = true;
                continue;
            }
        };
        if table {
            state_note(&g);
        }
        if args.members {
            if table {
                out(&members_table(&g, args.verbose))?;
            } else {
                json.push(group_json(&g, None));
            }
        } else if args.state {
            if table {
                out(&state_table(&g))?;
            } else {
                json.push(group_json(&g, None));
            }
        } else {
            let rows = match offset_rows(&admin, &g).await {
                Ok(rows) => rows,
                Err(e) => {
                    report(format!(
                        "cannot read the offsets of group '{}': {e:#}",
                        g.group_id
                    ));
                    failed = true;
                    continue;
                }
            };
            if table {
                if !rows.is_empty() {
                    out(&offsets_table(&g.group_id, &rows))?;
                }
            } else {
                json.push(group_json(&g, Some(&rows)));
            }
        }
    }
    if !table {
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// What Kafka says on stderr about a group that is not Stable.
fn state_note(g: &GroupDescription) {
    match g.state {
        GroupState::Empty => {
            eprintln!("\nConsumer group '{}' has no active members.", g.group_id);
        }
        GroupState::PreparingRebalance
        | GroupState::CompletingRebalance
        | GroupState::Assigning
        | GroupState::Reconciling => {
            eprintln!("\nWarning: Consumer group '{}' is rebalancing.", g.group_id);
        }
        _ => {}
    }
}

/// Kafka's row order: members with partitions, the most partitions first, each member's
/// partitions by partition number; then committed partitions no member has.
async fn offset_rows(admin: &Admin, g: &GroupDescription) -> anyhow::Result<Vec<OffsetRow>> {
    let committed: BTreeMap<TopicPartition, i64> = admin
        .list_consumer_group_offsets(&g.group_id, None)
        .await?
        .into_iter()
        .filter_map(|(tp, o)| o.map(|o| (tp, o.offset)))
        .collect();
    let mut members: Vec<&MemberDescription> = g
        .members
        .iter()
        .filter(|m| !m.assignment.partitions().is_empty())
        .collect();
    members.sort_by_key(|m| std::cmp::Reverse(m.assignment.partitions().len()));
    let by_partition = |a: &TopicPartition, b: &TopicPartition| {
        (a.partition, &a.topic).cmp(&(b.partition, &b.topic))
    };
    let mut rows = Vec::new();
    let mut assigned = BTreeSet::new();
    for m in members {
        let mut tps = m.assignment.partitions().to_vec();
        tps.sort_by(by_partition);
        for tp in tps {
            assigned.insert(tp.clone());
            rows.push(OffsetRow {
                committed: committed.get(&tp).copied(),
                tp,
                log_end: None,
                consumer_id: m.member_id.clone(),
                host: m.host.clone(),
                client_id: m.client_id.clone(),
            });
        }
    }
    let mut unassigned: Vec<TopicPartition> = committed
        .keys()
        .filter(|tp| !assigned.contains(*tp))
        .cloned()
        .collect();
    unassigned.sort_by(by_partition);
    for tp in unassigned {
        rows.push(OffsetRow {
            committed: committed.get(&tp).copied(),
            tp,
            log_end: None,
            consumer_id: MISSING.into(),
            host: MISSING.into(),
            client_id: MISSING.into(),
        });
    }
    let partitions: Vec<TopicPartition> = rows
        .iter()
        .map(|r| r.tp.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !partitions.is_empty() {
        // A partition whose end cannot be read shows `-`, as in Kafka.
        let ends: BTreeMap<TopicPartition, i64> = admin
            .list_offsets(&partitions, OffsetSpec::Latest)
            .await?
            .into_iter()
            .filter_map(|r| r.result.ok().map(|i| (r.partition, i.offset)))
            .collect();
        for row in &mut rows {
            row.log_end = ends.get(&row.tp).copied();
        }
    }
    Ok(rows)
}

/// The offsets table: columns padded to the widest value (at least 15), every line led by a
/// newline as Kafka's `printf("\n...")` does, and one final newline.
fn offsets_table(group: &str, rows: &[OffsetRow]) -> String {
    let g = rows.iter().map(|_| group.len()).fold(15, usize::max);
    let t = rows.iter().map(|r| r.tp.topic.len()).fold(15, usize::max);
    let c = rows
        .iter()
        .map(|r| r.consumer_id.len())
        .fold(15, usize::max);
    let h = rows.iter().map(|r| r.host.len()).fold(15, usize::max);
    let line = |cols: [&str; 9]| {
        format!(
            "\n{:<g$} {:<t$} {:<10} {:<15} {:<15} {:<15} {:<c$} {:<h$} {}",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]
        )
    };
    let mut out = line([
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for r in rows {
        out.push_str(&line([
            group,
            &r.tp.topic,
            &r.tp.partition.to_string(),
            &or_missing(r.committed),
            &or_missing(r.log_end),
            &or_missing(r.lag()),
            &r.consumer_id,
            &r.host,
            &r.client_id,
        ]));
    }
    out.push('\n');
    out
}

/// `topic(0,1), other(2)`: a member's partitions grouped by topic.
fn assignment_text(partitions: &[TopicPartition]) -> String {
    if partitions.is_empty() {
        return MISSING.to_string();
    }
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
        .into_iter()
        .map(|(topic, mut ps)| {
            ps.sort_unstable();
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{topic}({})", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The members table; GROUP-INSTANCE-ID only when some member is static, as in Kafka.
fn members_table(g: &GroupDescription, verbose: bool) -> String {
    let group = g.group_id.as_str();
    let instance = |m: &MemberDescription| m.group_instance_id.clone().unwrap_or_default();
    let with_instance = g.members.iter().any(|m| !instance(m).is_empty());
    let gw = g.members.iter().map(|_| group.len()).fold(15, usize::max);
    let cw = g
        .members
        .iter()
        .map(|m| m.member_id.len())
        .fold(15, usize::max);
    let iw = g
        .members
        .iter()
        .map(|m| instance(m).len())
        .fold(17, usize::max);
    let hw = g.members.iter().map(|m| m.host.len()).fold(15, usize::max);
    let lw = g
        .members
        .iter()
        .map(|m| m.client_id.len())
        .fold(15, usize::max);
    let line = |cols: [&str; 6]| {
        if with_instance {
            format!(
                "{:<gw$} {:<cw$} {:<iw$} {:<hw$} {:<lw$} {:<15} ",
                cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
            )
        } else {
            format!(
                "{:<gw$} {:<cw$} {:<hw$} {:<lw$} {:<15} ",
                cols[0], cols[1], cols[3], cols[4], cols[5]
            )
        }
    };
    let mut out = format!(
        "\n{}",
        line([
            "GROUP",
            "CONSUMER-ID",
            "GROUP-INSTANCE-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
        ])
    );
    if verbose {
        out.push_str("ASSIGNMENT");
    }
    out.push('\n');
    for m in &g.members {
        let partitions = m.assignment.partitions();
        out.push_str(&line([
            group,
            &m.member_id,
            &instance(m),
            &m.host,
            &m.client_id,
            &partitions.len().to_string(),
        ]));
        if verbose {
            out.push_str(&assignment_text(partitions));
        }
        out.push('\n');
    }
    out
}

/// `host:port  (id)`, as Kafka prints a coordinator.
fn coordinator_text(g: &GroupDescription) -> String {
    format!(
        "{}:{}  ({})",
        g.coordinator.host, g.coordinator.port, g.coordinator.id
    )
}

/// The state table. (Kafka pads the GROUP column to the coordinator's width and the
/// coordinator to 25; kept as is.)
fn state_table(g: &GroupDescription) -> String {
    let coordinator = coordinator_text(g);
    let w = coordinator.len().max(25);
    let line = |cols: [&str; 5]| {
        format!(
            "\n{:<w$} {:<25} {:<20} {:<15} {}",
            cols[0], cols[1], cols[2], cols[3], cols[4]
        )
    };
    let mut out = line([
        "GROUP",
        "COORDINATOR (ID)",
        "ASSIGNMENT-STRATEGY",
        "STATE",
        "#MEMBERS",
    ]);
    out.push_str(&line([
        &g.group_id,
        &coordinator,
        &g.partition_assignor,
        g.state.as_str(),
        &g.members.len().to_string(),
    ]));
    out.push('\n');
    out
}

fn group_json(g: &GroupDescription, rows: Option<&[OffsetRow]>) -> serde_json::Value {
    let tps = |ps: &[TopicPartition]| -> Vec<serde_json::Value> {
        ps.iter()
            .map(|tp| serde_json::json!({"topic": tp.topic, "partition": tp.partition}))
            .collect()
    };
    let mut v = serde_json::json!({
        "group": g.group_id,
        "type": g.group_type.to_string(),
        "state": g.state.as_str(),
        "protocol_type": g.protocol_type,
        "assignment_strategy": g.partition_assignor,
        "coordinator": {
            "id": g.coordinator.id,
            "host": g.coordinator.host,
            "port": g.coordinator.port,
        },
        "members": g.members.iter().map(|m| serde_json::json!({
            "consumer_id": m.member_id,
            "group_instance_id": m.group_instance_id,
            "host": m.host,
            "client_id": m.client_id,
            "assignment": tps(m.assignment.partitions()),
        })).collect::<Vec<_>>(),
    });
    if let (Some(rows), Some(obj)) = (rows, v.as_object_mut()) {
        obj.insert(
            "offsets".into(),
            rows.iter()
                .map(|r| {
                    serde_json::json!({
                        "topic": r.tp.topic,
                        "partition": r.tp.partition,
                        "current_offset": r.committed,
                        "log_end_offset": r.log_end,
                        "lag": r.lag(),
                        "consumer_id": r.consumer_id,
                        "host": r.host,
                        "client_id": r.client_id,
                    })
                })
                .collect(),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_client::{ConsumerAssignment, GroupType, MemberAssignment, MemberSubscription};

    fn member(id: &str, partitions: &[(&str, i32)]) -> MemberDescription {
        MemberDescription {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "app".into(),
            host: "/127.0.0.1".into(),
            assignment: MemberAssignment::Consumer(ConsumerAssignment::new(
                partitions.iter().map(|(t, p)| TopicPartition::new(*t, *p)),
            )),
            subscription: MemberSubscription::Raw(Default::default()),
            subscribed_topic_regex: None,
            member_epoch: None,
            target_assignment: None,
            rack_id: None,
        }
    }

    fn group(members: Vec<MemberDescription>) -> GroupDescription {
        GroupDescription {
            group_id: "g".into(),
            group_type: GroupType::Classic,
            state: GroupState::Stable,
            protocol_type: "consumer".into(),
            partition_assignor: "range".into(),
            members,
            coordinator: strom_client::Node {
                id: 1,
                host: "localhost".into(),
                port: 9092,
                rack: None,
            },
            group_epoch: None,
            assignment_epoch: None,
        }
    }

    #[test]
    fn offsets_table_layout_and_lag() {
        let rows = vec![
            OffsetRow {
                tp: TopicPartition::new("orders", 0),
                committed: Some(4),
                log_end: Some(10),
                consumer_id: "c-1".into(),
                host: "/127.0.0.1".into(),
                client_id: "app".into(),
            },
            OffsetRow {
                tp: TopicPartition::new("orders", 1),
                committed: None,
                log_end: Some(3),
                consumer_id: "-".into(),
                host: "-".into(),
                client_id: "-".into(),
            },
        ];
        assert_eq!(
            offsets_table("g", &rows),
            "\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID\
             \ng               orders          0          4               10              6               c-1             /127.0.0.1      app\
             \ng               orders          1          -               3               -               -               -               -\n"
        );
    }

    #[test]
    fn members_table_layout() {
        let g = group(vec![member("c-1", &[("b", 0), ("a", 1), ("a", 0)])]);
        assert_eq!(
            members_table(&g, true),
            "\nGROUP           CONSUMER-ID     HOST            CLIENT-ID       #PARTITIONS     ASSIGNMENT\n\
             g               c-1             /127.0.0.1      app             3               a(0,1), b(0)\n"
        );
        let mut static_member = member("c-2", &[]);
        static_member.group_instance_id = Some("i-1".into());
        let g = group(vec![static_member]);
        assert_eq!(
            members_table(&g, false),
            "\nGROUP           CONSUMER-ID     GROUP-INSTANCE-ID HOST            CLIENT-ID       #PARTITIONS     \n\
             g               c-2             i-1               /127.0.0.1      app             0               \n"
        );
    }

    #[test]
    fn state_table_layout() {
        let g = group(vec![member("c-1", &[])]);
        assert_eq!(
            state_table(&g),
            "\nGROUP                     COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE           #MEMBERS\
             \ng                         localhost:9092  (1)       range                Stable          1\n"
        );
    }
}
