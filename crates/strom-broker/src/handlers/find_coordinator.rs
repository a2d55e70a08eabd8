//! FindCoordinator: the node leading a group's `__consumer_offsets` partition or a
//! transactional id's `__transaction_state` partition, creating the topic on first use as Kafka
//! does. Batched keys from v4 on.

use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use strom_protocol::{ApiError, ErrorCode};

use strom_metadata::CreateTopicSpec;

use super::{ApiSpec, Ctx, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::FindCoordinator, 0, 6);

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if ctx.version >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let found = match req.key_type {
            GROUP => {
                let partition = ctx.shared.groups.partition_for(&key);
                coordinator(ctx, ctx.shared.groups.topic_spec(), partition).await
            }
            TRANSACTION if key.is_empty() => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "an empty transactional id has no coordinator",
            )),
            TRANSACTION => {
                let partition = ctx.shared.txns.partition_for(&key);
                coordinator(ctx, ctx.shared.txns.topic_spec(), partition).await
            }
            other => Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Unknown coordinator key type {other}"),
            )),
        };
        let c = Coordinator::default().with_key(str_bytes(key));
        coordinators.push(match found {
            Ok((node, host, port)) => c
                .with_node_id(BrokerId(node))
                .with_host(str_bytes(host))
                .with_port(port),
            Err(e) => c
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(e.code.code())
                .with_error_message(e.message.map(str_bytes)),
        });
    }
    if ctx.version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = coordinators.pop().unwrap_or_default();
    let mut r = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if ctx.version >= 1 {
        r.error_message = c.error_message;
    }
    r
}

/// (node id, host, port) of the leader of partition `partition` of the coordinator topic
/// `spec` describes, which is created on first use as Kafka does.
async fn coordinator(
    ctx: &Ctx<'_>,
    spec: CreateTopicSpec,
    partition: i32,
) -> Result<(i32, String, i32), ApiError> {
    let shared = ctx.shared;
    let topic = spec.name.clone();
    let mut image = shared.controller.image();
    if image.topic_by_name(&topic).is_none() {
        let created = shared.controller.create_topics(vec![spec], false).await;
        match created.into_iter().next() {
            Some(Ok(_)) => {}
            Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => {}
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot create {topic}");
                return Err(ApiError::new(
                    ErrorCode::CoordinatorNotAvailable,
                    e.to_string(),
                ));
            }
            None => return Err(ApiError::bare(ErrorCode::CoordinatorNotAvailable)),
        }
        shared.sync_metadata();
        image = shared.controller.image();
    }
    let leader = image
        .topic_by_name(&topic)
        .and_then(|t| t.partitions.get(&partition))
        .map(|p| p.leader)
        .filter(|l| *l >= 0)
        .ok_or_else(|| ApiError::bare(ErrorCode::CoordinatorNotAvailable))?;
    let endpoint = image
        .brokers
        .get(&leader)
        .filter(|b| !b.fenced)
        .and_then(|b| b.listeners.first())
        .ok_or_else(|| ApiError::bare(ErrorCode::CoordinatorNotAvailable))?;
    Ok((leader, endpoint.host.clone(), i32::from(endpoint.port)))
}
