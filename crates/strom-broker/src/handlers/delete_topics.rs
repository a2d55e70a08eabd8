//! DeleteTopics, by name (v1-5) or by name or id (v6+). The logs go when the new metadata
//! image is applied.

use strom_metadata::TopicRef;
use strom_protocol::messages::delete_topics_response::DeletableTopicResult;
use strom_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use strom_protocol::{ApiError, ErrorCode};
use uuid::Uuid;

use super::{ApiSpec, Ctx, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DeleteTopics, 1, 6);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let refs: Vec<TopicRef> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(name) if t.topic_id.is_nil() => TopicRef::Name(name.to_string()),
                _ => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| TopicRef::Name(n.to_string()))
            .collect()
    };
    let outcomes: Vec<Result<_, ApiError>> = if ctx.shared.config.delete_topic_enable {
        let outcomes = ctx.shared.controller.delete_topics(refs.clone()).await;
        ctx.shared.sync_metadata();
        outcomes
    } else {
        refs.iter()
            .map(|_| {
                Err(ApiError::new(
                    ErrorCode::TopicDeletionDisabled,
                    "Topic deletion is disabled (delete.topic.enable=false)",
                ))
            })
            .collect()
    };
    let responses = refs
        .into_iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let (name, id) = match r {
                TopicRef::Name(n) => (Some(n), Uuid::nil()),
                TopicRef::Id(id) => (None, id),
            };
            let result = DeletableTopicResult::default();
            match outcome {
                Ok(deleted) => result
                    .with_name(Some(TopicName(str_bytes(deleted.name))))
                    .with_topic_id(deleted.topic_id),
                Err(e) => result
                    .with_name(name.map(|n| TopicName(str_bytes(n))))
                    .with_topic_id(id)
                    .with_error_code(e.code.code())
                    .with_error_message(e.message.map(str_bytes)),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
