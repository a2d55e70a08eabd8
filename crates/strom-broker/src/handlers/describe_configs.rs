//! DescribeConfigs for topics and brokers: every config with its value, source and (on
//! request) synonyms and documentation, resolved by `strom_metadata::config`.

use strom_metadata::config::{self, DescribedConfig};
use strom_metadata::records::ConfigResourceType;
use strom_metadata::topic_name;
use strom_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use strom_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use strom_protocol::{ApiError, ErrorCode};

use super::{ApiSpec, Ctx, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DescribeConfigs, 1, 4);

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let shared = ctx.shared;
    let image = shared.controller.image();
    let node = shared.node_id.to_string();
    let broker_view = shared.broker_view_of(&image);
    let results = req
        .resources
        .into_iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let described: Result<Vec<DescribedConfig>, ApiError> = match resource.resource_type {
                TOPIC => {
                    if let Err(message) = topic_name::validate(&name) {
                        Err(ApiError::new(ErrorCode::InvalidTopicException, message))
                    } else if image.topic_by_name(&name).is_none() {
                        Err(ApiError::new(
                            ErrorCode::UnknownTopicOrPartition,
                            format!("Topic {name} does not exist"),
                        ))
                    } else {
                        let overrides = image
                            .configs(ConfigResourceType::Topic, &name)
                            .cloned()
                            .unwrap_or_default();
                        Ok(config::describe_topic(
                            &overrides,
                            &broker_view,
                            req.include_synonyms,
                        ))
                    }
                }
                // The cluster-wide default resource lists only what is set at that level.
                BROKER if name.is_empty() => Ok(config::describe_broker_defaults(
                    &broker_view,
                    req.include_synonyms,
                )),
                BROKER if name == node => {
                    Ok(config::describe_broker(&broker_view, req.include_synonyms))
                }
                BROKER => Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {node} or empty string, but received {name}"
                    ),
                )),
                other => Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match described {
                Err(e) => result
                    .with_error_code(e.code.code())
                    .with_error_message(e.message.map(str_bytes)),
                Ok(configs) => {
                    // Null or empty both mean every config, as in Kafka's ConfigHelper.
                    let wanted = resource.configuration_keys.filter(|keys| !keys.is_empty());
                    let configs = configs
                        .into_iter()
                        .filter(|c| {
                            wanted
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == c.name))
                        })
                        .map(|c| entry(c, ctx.version, req.include_documentation))
                        .collect();
                    result.with_configs(configs)
                }
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn entry(
    c: DescribedConfig,
    version: i16,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = c
        .synonyms
        .into_iter()
        .map(|s| {
            DescribeConfigsSynonym::default()
                .with_name(str_bytes(s.name))
                .with_value(s.value.map(str_bytes))
                .with_source(s.source as i8)
        })
        .collect();
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(c.name))
        .with_value(c.value.map(str_bytes))
        .with_read_only(c.read_only)
        .with_config_source(c.source as i8)
        .with_is_sensitive(c.sensitive)
        .with_synonyms(synonyms);
    if version >= 3 {
        e = e
            .with_config_type(c.ty as i8)
            .with_documentation(include_documentation.then(|| str_bytes(c.doc)));
    }
    e
}
