//! ApiVersions: the versions table, computed from the handler registry.
//!
//! A request at a version above ours gets a v0 answer with UNSUPPORTED_VERSION and the table,
//! so the client can retry at a version we know (KIP-511). Client software name and version
//! (v3+) are validated as Kafka does and kept on the connection.

use strom_protocol::ErrorCode;
use strom_protocol::messages::api_versions_response::ApiVersion;
use strom_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use tracing::debug;

use super::{APIS, ApiSpec, Ctx};
use strom_protocol::messages::ApiKey;

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::ApiVersions, 0, 4);

fn table() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.versions.min)
                .with_max_version(a.versions.max)
        })
        .collect()
}

/// Kafka's rule for KIP-511 names and versions: alphanumerics, '.' and '-', starting and ending
/// with an alphanumeric.
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'-')
}

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: ApiVersionsRequest) -> ApiVersionsResponse {
    if ctx.version >= 3 {
        let name = req.client_software_name.as_str();
        let version = req.client_software_version.as_str();
        if !valid_software_field(name) || !valid_software_field(version) {
            return ApiVersionsResponse::default()
                .with_error_code(ErrorCode::InvalidRequest.code());
        }
        debug!(peer = %ctx.conn.peer, client = name, version, "client software");
        ctx.conn.client_software = Some((name.to_string(), version.to_string()));
    }
    ApiVersionsResponse::default().with_api_keys(table())
}

/// The answer to an ApiVersions request at a version we do not serve (encoded as v0).
pub(crate) fn unsupported_version_response() -> strom_protocol::messages::ResponseKind {
    strom_protocol::messages::ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(ErrorCode::UnsupportedVersion.code())
            .with_api_keys(table()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_names_follow_kafka_rules() {
        assert!(valid_software_field("librdkafka"));
        assert!(valid_software_field("confluent-kafka-python"));
        assert!(valid_software_field("2.6.0-RC1"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-lead"));
        assert!(!valid_software_field("trail."));
        assert!(!valid_software_field("has space"));
    }

    #[test]
    fn table_lists_every_registered_api() {
        let t = table();
        assert_eq!(t.len(), APIS.len());
        assert!(
            t.iter()
                .any(|v| v.api_key == ApiKey::ApiVersions as i16 && v.max_version == 4)
        );
    }
}
