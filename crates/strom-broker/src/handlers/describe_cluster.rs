//! DescribeCluster: cluster id, controller and brokers (the Admin client's view).

use strom_protocol::ErrorCode;
use strom_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use strom_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{ApiSpec, CLUSTER_AUTHORIZED_OPERATIONS, Ctx, str_bytes};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DescribeCluster, 0, 2);

const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let shared = ctx.shared;
    if ctx.version >= 1 && req.endpoint_type != ENDPOINT_BROKERS {
        // As a Kafka broker: a controller-endpoint request reached a broker endpoint; any other
        // value is an endpoint type nobody knows.
        let (code, message) = if req.endpoint_type == ENDPOINT_CONTROLLERS {
            (
                ErrorCode::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            )
        } else {
            (
                ErrorCode::UnsupportedEndpointType,
                "Unsupported endpoint type",
            )
        };
        return DescribeClusterResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)));
    }
    let image = shared.controller.image();
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced || req.include_fenced_brokers)
        .filter_map(|b| {
            let l = b.listeners.first()?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(str_bytes(l.host.clone()))
                    .with_port(i32::from(l.port))
                    .with_rack(b.rack.clone().map(str_bytes))
                    .with_is_fenced(ctx.version >= 2 && b.fenced),
            )
        })
        .collect();
    // With no authorizer, Kafka reports every operation the cluster resource supports.
    let authorized_operations = if req.include_cluster_authorized_operations {
        CLUSTER_AUTHORIZED_OPERATIONS
    } else {
        i32::MIN
    };
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(shared.cluster_id.clone()))
        .with_controller_id(BrokerId(shared.node_id))
        .with_cluster_authorized_operations(authorized_operations)
        .with_brokers(brokers)
}
