//! CreatePartitions: grow a topic's partition count.

use strom_metadata::NewPartitionsSpec;
use strom_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use strom_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};

use super::{ApiSpec, Ctx, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::CreatePartitions, 0, 3);

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let specs: Vec<NewPartitionsSpec> = req
        .topics
        .iter()
        .map(|t| NewPartitionsSpec {
            name: t.name.to_string(),
            count: t.count,
            assignments: t
                .assignments
                .iter()
                .flatten()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
        })
        .collect();
    let outcomes = ctx
        .shared
        .controller
        .create_partitions(specs, req.validate_only)
        .await;
    if !req.validate_only {
        ctx.shared.sync_metadata();
    }
    let results = req
        .topics
        .into_iter()
        .zip(outcomes)
        .map(|(t, outcome)| {
            let r = CreatePartitionsTopicResult::default().with_name(t.name);
            match outcome {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.code.code())
                    .with_error_message(e.message.map(str_bytes)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
