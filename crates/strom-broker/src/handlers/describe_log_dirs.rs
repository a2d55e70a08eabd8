//! DescribeLogDirs: each log directory with its state, space, and partition sizes.

use std::collections::BTreeMap;

use strom_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use strom_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};

use super::{ApiSpec, Ctx, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DescribeLogDirs, 1, 4);

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // None: every partition; otherwise only the ones asked for.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let results = ctx
        .shared
        .replicas
        .log_manager()
        .describe_log_dirs()
        .into_iter()
        .map(|dir| {
            let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
            for p in &dir.partitions {
                let tp = &p.topic_partition;
                let asked = wanted.as_ref().is_none_or(|w| {
                    w.get(&tp.topic)
                        .is_some_and(|ps| ps.contains(&tp.partition))
                });
                if asked {
                    topics.entry(tp.topic.clone()).or_default().push(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(tp.partition)
                            .with_partition_size(p.size_bytes as i64)
                            .with_offset_lag(p.offset_lag)
                            .with_is_future_key(p.is_future),
                    );
                }
            }
            // Kafka reports absolute paths.
            let path = std::path::absolute(&dir.path).unwrap_or(dir.path.clone());
            let mut result = DescribeLogDirsResult::default()
                .with_error_code(dir.error.as_ref().map_or(0, |e| e.error_code().code()))
                .with_log_dir(str_bytes(path.display().to_string()))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(str_bytes(name)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                );
            if ctx.version >= 4 {
                result = result
                    .with_total_bytes(dir.total_bytes)
                    .with_usable_bytes(dir.usable_bytes);
            }
            result
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
