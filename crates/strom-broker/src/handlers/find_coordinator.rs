//! FindCoordinator: the node leading a group's `__consumer_offsets` partition, creating the
//! topic on first use as Kafka does. Batched keys from v4 on. Transaction coordinators come
//! with transactions; until then their key type is answered with COORDINATOR_NOT_AVAILABLE.

use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use strom_protocol::{ApiError, ErrorCode};

use super::{ApiSpec, Ctx, str_bytes};
use crate::groups::GROUP_METADATA_TOPIC;

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
            GROUP => group_coordinator(ctx, &key).await,
            TRANSACTION => Err(ApiError::new(
                ErrorCode::CoordinatorNotAvailable,
                "transactions are not supported by this broker yet",
            )),
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

/// (node id, host, port) of the leader of `group_id`'s partition.
async fn group_coordinator(ctx: &Ctx<'_>, group_id: &str) -> Result<(i32, String, i32), ApiError> {
    let shared = ctx.shared;
    let mut image = shared.controller.image();
    if image.topic_by_name(GROUP_METADATA_TOPIC).is_none() {
        let created = shared
            .controller
            .create_topics(vec![shared.groups.topic_spec()], false)
            .await;
        match created.into_iter().next() {
            Some(Ok(_)) => {}
            Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => {}
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot create {GROUP_METADATA_TOPIC}");
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
    let partition = shared.groups.partition_for(group_id);
    let leader = image
        .topic_by_name(GROUP_METADATA_TOPIC)
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
