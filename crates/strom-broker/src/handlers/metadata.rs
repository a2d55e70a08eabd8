//! Metadata: brokers, cluster id, controller, and topics with their partitions. Creates unknown
//! topics when `auto.create.topics.enable` and the request allow it.

use std::sync::Arc;

use strom_metadata::{CreateTopicSpec, MetadataImage, TopicImage, topic_name};
use strom_protocol::ErrorCode;
use strom_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use strom_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::{ApiSpec, CLUSTER_AUTHORIZED_OPERATIONS, Ctx, TOPIC_AUTHORIZED_OPERATIONS, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::Metadata, 0, 13);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: MetadataRequest) -> MetadataResponse {
    let shared = ctx.shared;
    let mut image = shared.controller.image();
    // v0 has no null: an empty list means every topic.
    let all_topics = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    let allow_auto_create = (ctx.version < 4 || req.allow_auto_topic_creation)
        && shared.config.auto_create_topics_enable;

    let mut topics = Vec::new();
    if all_topics {
        let local = Local::of(shared);
        for t in image.topics() {
            topics.push(topic_response(t, None, &local));
        }
    } else {
        let requested = req.topics.unwrap_or_default();
        // Create the missing topics first, all in one controller call.
        if allow_auto_create {
            let missing: Vec<CreateTopicSpec> = requested
                .iter()
                .filter_map(|t| t.name.as_ref())
                .map(|n| n.0.to_string())
                .filter(|n| {
                    image.topic_by_name(n).is_none()
                        && topic_name::validate(n).is_ok()
                        && !topic_name::is_internal(n)
                })
                .map(|name| CreateTopicSpec {
                    name,
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: Default::default(),
                    configs: Default::default(),
                })
                .collect();
            if !missing.is_empty() {
                for (result, spec) in shared
                    .controller
                    .create_topics(missing.clone(), false)
                    .await
                    .into_iter()
                    .zip(&missing)
                {
                    if let Err(e) = result {
                        tracing::debug!(topic = %spec.name, error = %e, "auto-creation failed");
                    }
                }
                shared.sync_metadata();
                image = shared.controller.image();
            }
        }
        // Read after the auto-creation above was applied to the hosted partitions.
        let local = Local::of(shared);
        for t in requested {
            topics.push(match &t.name {
                Some(name) => match image.topic_by_name(name) {
                    Some(topic) => topic_response(topic, None, &local),
                    None => {
                        let code = if topic_name::validate(name).is_err() {
                            ErrorCode::InvalidTopicException
                        } else {
                            ErrorCode::UnknownTopicOrPartition
                        };
                        error_topic(Some(name.0.to_string()), Uuid::nil(), code)
                    }
                },
                None => match image.topic_by_id(&t.topic_id) {
                    Some(topic) => topic_response(topic, None, &local),
                    None => error_topic(None, t.topic_id, ErrorCode::UnknownTopicId),
                },
            });
        }
    }

    // Authorized operations (v8+; the cluster's only up to v10): with no authorizer, Kafka
    // reports everything the resource supports. Topics not found by id carry no name and none.
    if ctx.version >= 8 && req.include_topic_authorized_operations {
        for t in topics.iter_mut().filter(|t| t.name.is_some()) {
            t.topic_authorized_operations = TOPIC_AUTHORIZED_OPERATIONS;
        }
    }
    let mut response = MetadataResponse::default()
        .with_brokers(brokers(&image))
        .with_cluster_id(Some(str_bytes(shared.cluster_id.clone())))
        .with_controller_id(BrokerId(shared.node_id))
        .with_topics(topics);
    if (8..=10).contains(&ctx.version) && req.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_AUTHORIZED_OPERATIONS;
    }
    response
}

fn brokers(image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            // The first advertised listener is the one clients use.
            let l = b.listeners.first()?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(str_bytes(l.host.clone()))
                    .with_port(i32::from(l.port))
                    .with_rack(b.rack.clone().map(str_bytes)),
            )
        })
        .collect()
}

/// A topic's partitions as clients should see them. A partition this node leads but cannot
/// serve (its log dir went offline, or its log could not be opened) is reported leaderless with
/// this node offline, as Kafka's controller does once a broker reports the dir (KIP-858); with
/// one node that decision can be made here.
fn topic_response(
    topic: &Arc<TopicImage>,
    error: Option<ErrorCode>,
    local: &Local,
) -> MetadataResponseTopic {
    let hosted = local.topics.by_id(&topic.id);
    let partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            let unservable = p.leader == local.node_id
                && hosted
                    .and_then(|t| t.partitions.get(&index))
                    .is_none_or(|part| part.log.is_offline());
            let leader = if unservable { -1 } else { p.leader };
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                .with_offline_replicas(if unservable {
                    vec![BrokerId(local.node_id)]
                } else {
                    Vec::new()
                })
                .with_error_code(if leader < 0 {
                    ErrorCode::LeaderNotAvailable.code()
                } else {
                    0
                })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic_name::is_internal(&topic.name))
        .with_partitions(partitions)
}

/// What this node serves, for telling which partitions it can actually lead.
struct Local {
    node_id: i32,
    topics: Arc<crate::replica_manager::LocalTopics>,
}

impl Local {
    fn of(shared: &crate::server::Shared) -> Self {
        Self {
            node_id: shared.node_id,
            topics: shared.replicas.topics(),
        }
    }
}

fn error_topic(name: Option<String>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(id)
}
