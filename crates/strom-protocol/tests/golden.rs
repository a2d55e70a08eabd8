//! Golden bytes for the envelopes, written out by hand from the Kafka protocol guide, so that
//! a change in encoding (or in the generated crate) cannot go unnoticed.

use bytes::Bytes;
use strom_protocol::VersionRange;
use strom_protocol::envelope::{self, Decoded};
use strom_protocol::messages::api_versions_response::ApiVersion;
use strom_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};

fn all(_: ApiKey) -> Option<VersionRange> {
    Some(VersionRange { min: 0, max: 4 })
}

/// ApiVersions v3 as librdkafka sends it: request header v2 (nullable client id + empty tagged
/// fields), then compact strings for the software name and version, then empty tagged fields.
#[test]
fn api_versions_request_v3() {
    let frame = Bytes::from_static(&[
        0x00, 0x12, // api key 18
        0x00, 0x03, // version 3
        0x00, 0x00, 0x00, 0x2a, // correlation id 42
        0x00, 0x07, b'r', b'd', b'k', b'a', b'f', b'k', b'a', // client id "rdkafka"
        0x00, // header tagged fields
        0x0b, b'l', b'i', b'b', b'r', b'd', b'k', b'a', b'f', b'k',
        b'a', // compact "librdkafka"
        0x06, b'2', b'.', b'0', b'.', b'2', // compact "2.0.2"
        0x00, // body tagged fields
    ]);
    let Decoded::Request(req) = envelope::decode_request(frame, all).unwrap() else {
        panic!("a served version");
    };
    assert_eq!(req.header.correlation_id, 42);
    assert_eq!(req.header.client_id.as_deref(), Some("rdkafka"));
    let RequestKind::ApiVersions(body) = req.body else {
        panic!("ApiVersions")
    };
    assert_eq!(body.client_software_name.as_str(), "librdkafka");
    assert_eq!(body.client_software_version.as_str(), "2.0.2");
}

/// ApiVersions v3 response: header v0 (no tagged fields, even for flexible versions), and no
/// top-level tagged fields at their default (old librdkafka mis-skips them).
#[test]
fn api_versions_response_v3_omits_default_tagged_fields() {
    let body = ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(
        vec![ApiVersion::default()
        .with_api_key(0)
        .with_min_version(3)
        .with_max_version(13)],
    ));
    let bytes = envelope::encode_response(ApiKey::ApiVersions, 3, 7, &body).unwrap();
    assert_eq!(
        &bytes[..],
        &[
            0x00, 0x00, 0x00, 0x13, // length 19
            0x00, 0x00, 0x00, 0x07, // correlation id
            0x00, 0x00, // error code
            0x02, // compact array of 1
            0x00, 0x00, 0x00, 0x03, 0x00, 0x0d, 0x00, // key 0, 3..13, no tagged fields
            0x00, 0x00, 0x00, 0x00, // throttle time
            0x00, // no tagged fields
        ]
    );
}

#[test]
fn unsupported_api_versions_version_is_answered_not_closed() {
    let frame = Bytes::from_static(&[
        0x00, 0x12, 0x00, 0x63, 0x00, 0x00, 0x00, 0x05, 0xff, 0xff, 0x00,
    ]);
    match envelope::decode_request(frame, all).unwrap() {
        Decoded::UnsupportedApiVersions { correlation_id } => assert_eq!(correlation_id, 5),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_keys_and_versions_are_errors() {
    let unknown = Bytes::from_static(&[0x7f, 0x00, 0x00, 0x00, 0, 0, 0, 1, 0xff, 0xff]);
    assert!(matches!(
        envelope::decode_request(unknown, all),
        Err(envelope::RequestError::UnknownApiKey(0x7f00))
    ));
    let too_new = Bytes::from_static(&[0x00, 0x03, 0x00, 0x63, 0, 0, 0, 1, 0xff, 0xff]);
    assert!(matches!(
        envelope::decode_request(too_new, all),
        Err(envelope::RequestError::UnsupportedVersion { .. })
    ));
}
