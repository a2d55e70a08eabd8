//! AlterConfigs (legacy: replaces a resource's whole set of dynamic configs) and
//! IncrementalAlterConfigs (SET / DELETE / APPEND / SUBTRACT per key). Validation and the
//! commit are the controller's; this maps requests and answers per resource.

use std::collections::{BTreeMap, HashSet};

use strom_metadata::records::ConfigResourceType;
use strom_metadata::{AlterConfigOp, ConfigChange, OpType};
use strom_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use strom_protocol::{ApiError, ErrorCode, StrBytes};

use super::{ApiSpec, Ctx, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::AlterConfigs, 0, 2);
pub(crate) const INCREMENTAL_API: ApiSpec = ApiSpec::new(ApiKey::IncrementalAlterConfigs, 0, 1);

fn resource_type(wire: i8) -> Result<ConfigResourceType, ApiError> {
    ConfigResourceType::from_wire(wire).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("Unexpected resource type {wire}"),
        )
    })
}

/// The answer for one resource: (error code, message).
fn outcome(result: &Result<(), ApiError>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err(e) => (e.code.code(), e.message.clone().map(str_bytes)),
    }
}

/// Runs the controller calls for the resources that passed the request-shape checks and puts
/// every outcome back in request order.
async fn settle<T>(
    checked: Vec<Result<T, ApiError>>,
    run: impl AsyncFnOnce(Vec<T>) -> Vec<Result<(), ApiError>>,
) -> Vec<Result<(), ApiError>> {
    let mut ready = Vec::new();
    let mut slots = Vec::with_capacity(checked.len());
    for c in checked {
        match c {
            Ok(change) => {
                slots.push(None);
                ready.push(change);
            }
            Err(e) => slots.push(Some(Err(e))),
        }
    }
    let mut outcomes = run(ready).await.into_iter();
    slots
        .into_iter()
        .map(|slot| slot.unwrap_or_else(|| outcomes.next().unwrap_or(Ok(()))))
        .collect()
}

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    use strom_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let checked: Vec<Result<_, ApiError>> = req
        .resources
        .iter()
        .map(|r| {
            let kind = resource_type(r.resource_type)?;
            let mut names = HashSet::new();
            let mut configs = BTreeMap::new();
            for c in &r.configs {
                if !names.insert(c.name.as_str()) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        "Error due to duplicate config keys",
                    ));
                }
                configs.insert(c.name.to_string(), c.value.as_ref().map(|v| v.to_string()));
            }
            Ok((kind, r.resource_name.to_string(), configs))
        })
        .collect();
    let controller = &ctx.shared.controller;
    let validate_only = req.validate_only;
    let outcomes = settle(checked, async |changes| {
        controller.alter_configs(changes, validate_only).await
    })
    .await;
    if !validate_only {
        ctx.shared.sync_metadata();
    }
    let responses = req
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(r, result)| {
            let (code, message) = outcome(&result);
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

pub(crate) async fn handle_incremental(
    ctx: &mut Ctx<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use strom_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let checked: Vec<Result<_, ApiError>> = req
        .resources
        .iter()
        .map(|r| {
            let resource_type = resource_type(r.resource_type)?;
            let ops = r
                .configs
                .iter()
                .map(|c| {
                    let op = OpType::from_wire(c.config_operation).ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidRequest,
                            format!("Unknown operations type {}", c.config_operation),
                        )
                    })?;
                    Ok(AlterConfigOp {
                        name: c.name.to_string(),
                        op,
                        value: c.value.as_ref().map(|v| v.to_string()),
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(ConfigChange {
                resource_type,
                resource_name: r.resource_name.to_string(),
                ops,
            })
        })
        .collect();
    let controller = &ctx.shared.controller;
    let validate_only = req.validate_only;
    let outcomes = settle(checked, async |changes| {
        controller
            .incremental_alter_configs(changes, validate_only)
            .await
    })
    .await;
    if !validate_only {
        ctx.shared.sync_metadata();
    }
    let responses = req
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(r, result)| {
            let (code, message) = outcome(&result);
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
