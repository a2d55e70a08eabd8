//! `strom groups reset-offsets`: compute new committed offsets for inactive groups and print
//! the plan (`--dry-run`, the default) or commit it (`--execute`), as
//! `kafka-consumer-groups.sh --reset-offsets` does.
//!
//! Strategies: `--to-earliest` / `--to-latest` (the log start / end), `--to-datetime` (the
//! first offset at or after a time; the log end when there is none), `--to-offset N` and
//! `--shift-by N` (from the committed offset). The last two are clamped into
//! [log start, log end] with a warning, as Kafka's `checkOffsetsRange` does. Only groups that
//! are Empty (or do not exist yet) can be reset: a live member would overwrite the result.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use strom_client::{Admin, GroupState, OffsetAndMetadata, OffsetSpec, TopicPartition};
use tracing::warn;

use super::{consumer_group_ids, existing};
use crate::client_args::{ConnectArgs, Output, Reported, out, outln, report};

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("scope").required(true).args(["topics", "all_topics"])
))]
#[command(group(
    clap::ArgGroup::new("strategy")
        .required(true)
        .args(["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"])
))]
pub(super) struct ResetArgs {
    /// The group to reset (repeatable).
    #[arg(
        long = "group",
        value_name = "GROUP",
        required_unless_present = "all_groups"
    )]
    groups: Vec<String>,
    /// Every consumer group.
    #[arg(long, conflicts_with = "groups")]
    all_groups: bool,
    /// A topic, or some of its partitions (`orders:0,2`); repeatable.
    #[arg(long = "topic", value_name = "TOPIC[:P,P...]")]
    topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    /// The log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    to_latest: bool,
    /// The first offset whose timestamp is at or after this time (UTC unless a zone is given).
    #[arg(long, value_name = "YYYY-MM-DDTHH:mm:SS.sss", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
    /// This offset (clamped to the partition's range).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// The committed offset plus N (N may be negative; clamped to the partition's range).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Only print the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub(super) async fn run(args: ResetArgs) -> anyhow::Result<()> {
    if !args.dry_run && !args.execute {
        eprintln!(
            "WARN: No action will be performed as the --execute option is missing. \
             In a future major release, the default behavior of this command will be to prompt \
             the user before executing the reset rather than doing a dry run. You should add the \
             --dry-run option explicitly if you are scripting this command and want to keep the \
             current default behavior without prompting."
        );
    }
    let admin = Admin::connect(args.connect.config(&[])?).await?;
    let mut groups = if args.all_groups {
        consumer_group_ids(&admin).await?
    } else {
        args.groups.clone()
    };
    groups.sort();
    groups.dedup();
    let mut plans: BTreeMap<String, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
    let mut failed = false;
    for group in &groups {
        match reset_group(&admin, group, &args).await {
            Ok(Some(plan)) => {
                plans.insert(group.clone(), plan);
            }
            Ok(None) => failed = true,
            Err(e) => {
                report(format!("{e:#}"));
                failed = true;
            }
        }
    }
    match args.output {
        Output::Table => {
            if !plans.is_empty() {
                out(&plan_table(&plans))?;
            }
        }
        Output::Json => {
            let rows: Vec<serde_json::Value> = plans
                .iter()
                .flat_map(|(g, plan)| {
                    plan.iter().map(move |(tp, o)| {
                        serde_json::json!({
                            "group": g, "topic": tp.topic, "partition": tp.partition, "new_offset": o,
                        })
                    })
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&rows)?)?;
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// Plans (and with `--execute` commits) one group; `None` when the group was refused (the
/// reason is already reported).
async fn reset_group(
    admin: &Admin,
    group: &str,
    args: &ResetArgs,
) -> anyhow::Result<Option<BTreeMap<TopicPartition, i64>>> {
    let described = admin
        .describe_groups(&[group.to_string()])
        .await?
        .into_iter()
        .next()
        .context("the broker did not answer for the group")?;
    if let Some(g) = existing(described.result)?
        && g.state != GroupState::Empty
    {
        report(format!(
            "Assignments can only be reset if the group '{group}' is inactive, but the \
             current state is {}.",
            g.state
        ));
        return Ok(None);
    }
    let partitions = partitions_to_reset(admin, group, args).await?;
    let plan = plan(admin, group, &partitions, args).await?;
    if args.execute && !plan.is_empty() {
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = plan
            .iter()
            .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
            .collect();
        let mut refused = false;
        for r in admin.alter_consumer_group_offsets(group, &offsets).await? {
            if let Err(e) = r.result {
                report(format!(
                    "cannot reset the offset of {} for group '{group}': {e}",
                    r.partition
                ));
                refused = true;
            }
        }
        if refused {
            return Ok(None);
        }
    }
    Ok(Some(plan))
}

/// `--all-topics`: what the group committed; `--topic t`: every partition of `t`;
/// `--topic t:0,2`: those.
async fn partitions_to_reset(
    admin: &Admin,
    group: &str,
    args: &ResetArgs,
) -> anyhow::Result<Vec<TopicPartition>> {
    if args.all_topics {
        return Ok(admin
            .list_consumer_group_offsets(group, None)
            .await?
            .into_keys()
            .collect());
    }
    let mut out = Vec::new();
    let mut whole = Vec::new();
    for arg in &args.topics {
        match parse_topic_arg(arg)? {
            (topic, Some(partitions)) => {
                out.extend(
                    partitions
                        .into_iter()
                        .map(|p| TopicPartition::new(&topic, p)),
                );
            }
            (topic, None) => whole.push(topic),
        }
    }
    if !whole.is_empty() {
        for t in admin.describe_topics(&whole).await? {
            match t.result {
                Ok(d) => out.extend(
                    d.partitions
                        .iter()
                        .map(|p| TopicPartition::new(&d.name, p.partition)),
                ),
                Err(e) => bail!("cannot read the partitions of topic '{}': {e}", t.name),
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `topic` or `topic:0,1,2`, with Kafka's messages for malformed ones.
fn parse_topic_arg(arg: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    let parts: Vec<&str> = arg.split(':').collect();
    match parts.as_slice() {
        [topic] => Ok((topic.to_string(), None)),
        [topic, partitions] => {
            let ps = partitions
                .split(',')
                .map(|p| {
                    p.trim().parse::<i32>().map_err(|_| {
                        anyhow::anyhow!("Invalid partition '{p}' specified in topic arg '{arg}'")
                    })
                })
                .collect::<anyhow::Result<Vec<i32>>>()?;
            Ok((topic.to_string(), Some(ps)))
        }
        _ => bail!("Invalid topic arg '{arg}', expected topic name and partitions"),
    }
}

/// The log offsets `spec` names, failing on any partition that has none.
async fn log_offsets(
    admin: &Admin,
    partitions: &[TopicPartition],
    spec: OffsetSpec,
    what: &str,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let mut out = BTreeMap::new();
    for r in admin.list_offsets(partitions, spec).await? {
        match r.result {
            Ok(info) => {
                out.insert(r.partition, info.offset);
            }
            Err(e) => bail!(
                "Error getting {what} offset of topic partition: {}: {e}",
                r.partition
            ),
        }
    }
    Ok(out)
}

async fn plan(
    admin: &Admin,
    group: &str,
    partitions: &[TopicPartition],
    args: &ResetArgs,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    if args.to_earliest {
        return log_offsets(admin, partitions, OffsetSpec::Earliest, "starting").await;
    }
    if args.to_latest {
        return log_offsets(admin, partitions, OffsetSpec::Latest, "ending").await;
    }
    if let Some(ts) = args.to_datetime {
        let mut found = BTreeMap::new();
        let mut empty = Vec::new();
        for r in admin
            .list_offsets(partitions, OffsetSpec::ForTimestamp(ts))
            .await?
        {
            match r.result {
                Ok(info) if info.offset >= 0 => {
                    found.insert(r.partition, info.offset);
                }
                Ok(_) => {
                    eprintln!(
                        "\nWarn: Partition {} from topic {} is empty. Falling back to latest \
                         known offset.",
                        r.partition.partition, r.partition.topic
                    );
                    empty.push(r.partition);
                }
                Err(e) => bail!(
                    "Error getting offset by timestamp of topic partition: {}: {e}",
                    r.partition
                ),
            }
        }
        if !empty.is_empty() {
            found.extend(log_offsets(admin, &empty, OffsetSpec::Latest, "ending").await?);
        }
        return Ok(found);
    }
    let requested: BTreeMap<TopicPartition, i64> = if let Some(offset) = args.to_offset {
        partitions.iter().map(|tp| (tp.clone(), offset)).collect()
    } else if let Some(shift) = args.shift_by {
        let committed = admin
            .list_consumer_group_offsets(group, Some(partitions))
            .await?;
        let mut out = BTreeMap::new();
        for tp in partitions {
            match committed.get(tp).cloned().flatten() {
                Some(o) => {
                    out.insert(tp.clone(), o.offset.saturating_add(shift));
                }
                None => bail!(
                    "Cannot shift offset for partition {tp} since there is no current committed \
                     offset"
                ),
            }
        }
        out
    } else {
        bail!(
            "one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by is needed"
        );
    };
    let starts = log_offsets(admin, partitions, OffsetSpec::Earliest, "starting").await?;
    let ends = log_offsets(admin, partitions, OffsetSpec::Latest, "ending").await?;
    Ok(requested
        .into_iter()
        .map(|(tp, offset)| {
            let clamped = clamp(
                &tp,
                offset,
                starts.get(&tp).copied(),
                ends.get(&tp).copied(),
            );
            (tp, clamped)
        })
        .collect())
}

/// Kafka's `checkOffsetsRange`: past the end goes to the end, before the start to the start.
fn clamp(tp: &TopicPartition, offset: i64, start: Option<i64>, end: Option<i64>) -> i64 {
    match (start, end) {
        (_, Some(end)) if offset > end => {
            warn!(
                "New offset ({offset}) is higher than latest offset for topic partition {tp}. \
                 Value will be set to {end}"
            );
            end
        }
        (Some(start), _) if offset < start => {
            warn!(
                "New offset ({offset}) is lower than earliest offset for topic partition {tp}. \
                 Value will be set to {start}"
            );
            start
        }
        _ => offset,
    }
}

/// Kafka's plan table: `%-30s %-30s %-10s %-15s`, every line led by a newline.
fn plan_table(plans: &BTreeMap<String, BTreeMap<TopicPartition, i64>>) -> String {
    let line = |g: &str, t: &str, p: &str, o: &str| format!("\n{g:<30} {t:<30} {p:<10} {o:<15}");
    let mut out = line("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET");
    for (group, plan) in plans {
        for (tp, offset) in plan {
            out.push_str(&line(
                group,
                &tp.topic,
                &tp.partition.to_string(),
                &offset.to_string(),
            ));
        }
    }
    out.push('\n');
    out
}

/// Kafka's `--to-datetime` format: `YYYY-MM-DDTHH:mm:SS.sss`, then optionally `Z`, `±HH`,
/// `±HHmm` or `±HH:mm`; without a zone the time is UTC. Milliseconds since the epoch.
pub(crate) fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "invalid date-time `{s}`: expected YYYY-MM-DDTHH:mm:SS.sss with an optional zone \
             (Z, +HH:mm)"
        )
    };
    // ASCII only, so that the fixed positions below are character boundaries.
    if !s.is_ascii() {
        return Err(bad());
    }
    let (date, rest) = s.split_once('T').ok_or_else(bad)?;
    let num = |t: &str, len: usize| -> Result<i64, String> {
        if t.len() != len || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<i64>().map_err(|_| bad())
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, day] = d.as_slice() else {
        return Err(bad());
    };
    let (year, month, day) = (num(y, 4)?, num(mo, 2)?, num(day, 2)?);
    // HH:mm:SS.sss is 12 characters; the zone follows.
    let (time, zone) = (rest.get(..12).ok_or_else(bad)?, &rest[12..]);
    let b = time.as_bytes();
    if b[2] != b':' || b[5] != b':' || b[8] != b'.' {
        return Err(bad());
    }
    let (hour, minute, second, milli) = (
        num(&time[0..2], 2)?,
        num(&time[3..5], 2)?,
        num(&time[6..8], 2)?,
        num(&time[9..12], 3)?,
    );
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let offset_minutes = match zone {
        "" | "Z" => 0,
        z => {
            let sign = match z.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let z = &z[1..];
            let (h, m) = match z.len() {
                2 => (num(z, 2)?, 0),
                4 => (num(&z[..2], 2)?, num(&z[2..], 2)?),
                5 if z.as_bytes()[2] == b':' => (num(&z[..2], 2)?, num(&z[3..], 2)?),
                _ => return Err(bad()),
            };
            if h > 23 || m > 59 {
                return Err(bad());
            }
            sign * (h * 60 + m)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + milli)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_like_kafka() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000"), Ok(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:01.250Z"), Ok(1_250));
        assert_eq!(
            parse_datetime("2024-02-29T12:30:00.000"),
            Ok(1_709_209_800_000)
        );
        assert_eq!(
            parse_datetime("2024-02-29T14:30:00.000+02:00"),
            Ok(1_709_209_800_000)
        );
        assert_eq!(
            parse_datetime("2024-02-29T10:30:00.000-0200"),
            Ok(1_709_209_800_000)
        );
        assert_eq!(
            parse_datetime("2024-02-29T13:30:00.000+01"),
            Ok(1_709_209_800_000)
        );
        for bad in [
            "2024-02-30T00:00:00.000",
            "2023-02-29T00:00:00.000",
            "2024-01-01 00:00:00.000",
            "2024-01-01T00:00:00",
            "2024-01-01T24:00:00.000",
            "2024-01-01T00:00:00.000+2",
            "2024-1-01T00:00:00.000",
            "2024-01-01T00:00:00.000+é1",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_args_parse_like_kafka() {
        assert_eq!(parse_topic_arg("t").unwrap(), ("t".into(), None));
        assert_eq!(
            parse_topic_arg("t:0,2").unwrap(),
            ("t".into(), Some(vec![0, 2]))
        );
        assert_eq!(
            parse_topic_arg("t:x").unwrap_err().to_string(),
            "Invalid partition 'x' specified in topic arg 't:x'"
        );
        assert_eq!(
            parse_topic_arg("a:b:c").unwrap_err().to_string(),
            "Invalid topic arg 'a:b:c', expected topic name and partitions"
        );
    }

    #[test]
    fn out_of_range_offsets_are_clamped() {
        let tp = TopicPartition::new("t", 0);
        assert_eq!(clamp(&tp, 50, Some(2), Some(10)), 10);
        assert_eq!(clamp(&tp, -5, Some(2), Some(10)), 2);
        assert_eq!(clamp(&tp, 5, Some(2), Some(10)), 5);
    }

    #[test]
    fn plan_table_layout() {
        let plans = BTreeMap::from([(
            "g".to_string(),
            BTreeMap::from([(TopicPartition::new("t", 0), 5)]),
        )]);
        assert_eq!(
            plan_table(&plans),
            format!(
                "\n{:<30} {:<30} {:<10} {:<15}\n{:<30} {:<30} {:<10} {:<15}\n",
                "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET", "g", "t", "0", "5"
            )
        );
    }
}
