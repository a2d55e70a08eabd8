//! CreateTopics: validation and creation are the controller's; this maps the request and
//! reports each topic's outcome, with its effective configs (v5+).

use std::collections::{BTreeMap, HashMap};

use strom_metadata::CreateTopicSpec;
use strom_metadata::config;
use strom_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use strom_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};
use strom_protocol::{ApiError, ErrorCode};

use super::{ApiSpec, Ctx, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::CreateTopics, 2, 7);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.to_string()).or_default() += 1;
    }
    let duplicates: Vec<&String> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(name, _)| name)
        .collect();

    let mut results: Vec<Option<Result<CreatableTopicResult, ApiError>>> = Vec::new();
    let mut specs = Vec::new();
    let mut positions = Vec::new();
    for (i, t) in req.topics.iter().enumerate() {
        let name = t.name.to_string();
        if counts[&name] > 1 {
            let mut listed: Vec<&str> = duplicates.iter().map(|s| s.as_str()).collect();
            listed.sort_unstable();
            results.push(Some(Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "Create topics request from client `{}` contains multiple entries for the following topics: {}",
                    ctx.client_id.unwrap_or(""),
                    listed.join(", ")
                ),
            ))));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => null_config = Some(c.name.to_string()),
            }
        }
        if let Some(key) = null_config {
            results.push(Some(Err(ApiError::new(
                ErrorCode::InvalidConfig,
                format!("Null value not supported for topic configs: {key}"),
            ))));
            continue;
        }
        results.push(None);
        positions.push(i);
        specs.push(CreateTopicSpec {
            name,
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs,
        });
    }

    let created = ctx
        .shared
        .controller
        .create_topics(specs.clone(), req.validate_only)
        .await;
    if !req.validate_only {
        ctx.shared.sync_metadata();
    }
    let broker_view = ctx.shared.broker_view();
    for ((position, spec), outcome) in positions.into_iter().zip(&specs).zip(created) {
        results[position] = Some(outcome.map(|c| {
            let configs = config::describe_topic(&spec.configs, &broker_view, false)
                .into_iter()
                .map(|d| {
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(d.name))
                        .with_value(d.value.map(str_bytes))
                        .with_read_only(d.read_only)
                        .with_config_source(d.source as i8)
                        .with_is_sensitive(d.sensitive)
                })
                .collect();
            CreatableTopicResult::default()
                .with_topic_id(c.topic_id)
                .with_num_partitions(c.num_partitions)
                .with_replication_factor(c.replication_factor)
                .with_configs(Some(configs))
        }));
    }

    let topics = req
        .topics
        .iter()
        .zip(results)
        .map(|(t, result)| {
            let name = TopicName(t.name.0.clone());
            match result.expect("every topic has an outcome") {
                Ok(r) => r.with_name(name),
                Err(e) => CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_code(e.code.code())
                    .with_error_message(e.message.map(str_bytes))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
