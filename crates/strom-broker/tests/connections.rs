//! Connection-level behaviour: limits, idle timeout, arbitrary frames.

use std::time::Duration;

use proptest::prelude::*;
use strom_protocol::envelope;
use strom_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use strom_test_support::{RawConnection, TestBroker};

async fn api_versions(conn: &mut RawConnection) -> std::io::Result<ApiVersionsResponse> {
    conn.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_new_connections_until_one_closes() {
    let broker = TestBroker::start_with(&[("max.connections", "2")]).await;
    let mut a = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let mut b = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    api_versions(&mut a).await.unwrap();
    api_versions(&mut b).await.unwrap();

    // The third connection is accepted by the kernel backlog but not served...
    let mut c = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let waiting = tokio::spawn(async move {
        let r = api_versions(&mut c).await;
        (r, c)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection is not served at max.connections=2"
    );
    // ...until a slot frees up.
    drop(a);
    let (r, _c) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.unwrap().error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let broker = TestBroker::start_with(&[("connections.max.idle.ms", "300")]).await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    api_versions(&mut conn).await.unwrap();
    assert!(conn.is_closed_by_peer(Duration::from_secs(5)).await);

    // Activity keeps a connection open past the idle limit.
    let mut busy = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        api_versions(&mut busy).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    for _ in 0..20 {
        conn.send(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name("t".into())
                .with_client_software_version("1".into()),
        )
        .await
        .unwrap();
    }
    for expected in 1..=20 {
        let frame = conn.read_frame().await.unwrap();
        assert_eq!(envelope::response_correlation_id(&frame), Some(expected));
    }
}

/// Every API key the broker serves, at every version it serves.
fn served() -> Vec<(ApiKey, i16)> {
    use strom_protocol::kafka_protocol::protocol::Message;
    use strom_protocol::messages::*;
    let mut out = Vec::new();
    let mut add = |key: ApiKey, range: strom_protocol::VersionRange| {
        for v in range.min..=range.max {
            out.push((key, v));
        }
    };
    add(ApiKey::Produce, ProduceRequest::VERSIONS);
    add(ApiKey::Fetch, FetchRequest::VERSIONS);
    add(ApiKey::ListOffsets, ListOffsetsRequest::VERSIONS);
    add(ApiKey::Metadata, MetadataRequest::VERSIONS);
    add(ApiKey::ApiVersions, ApiVersionsRequest::VERSIONS);
    add(ApiKey::CreateTopics, CreateTopicsRequest::VERSIONS);
    add(ApiKey::DeleteTopics, DeleteTopicsRequest::VERSIONS);
    add(ApiKey::CreatePartitions, CreatePartitionsRequest::VERSIONS);
    add(ApiKey::DescribeConfigs, DescribeConfigsRequest::VERSIONS);
    add(ApiKey::DescribeCluster, DescribeClusterRequest::VERSIONS);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bodies behind a valid header never panic or abort the decoder (the allocator
    /// guard of this binary absorbs lying array counts), whatever API and version.
    #[test]
    fn arbitrary_request_bodies_never_panic(which in any::<prop::sample::Index>(), body in prop::collection::vec(any::<u8>(), 0..64)) {
        let all = served();
        let (key, version) = all[which.index(all.len())];
        let mut frame = Vec::new();
        frame.extend_from_slice(&(key as i16).to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&1i32.to_be_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes());
        if key.request_header_version(version) >= 2 {
            frame.push(0);
        }
        frame.extend_from_slice(&body);
        let _ = envelope::decode_request(bytes::Bytes::from(frame), |_| Some(strom_protocol::VersionRange { min: 0, max: i16::MAX }));
    }
}
