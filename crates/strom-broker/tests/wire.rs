//! Broker behaviour over the wire, with exact requests, against an in-process broker.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::kafka_protocol::records::Compression;
use strom_protocol::messages::*;
use strom_test_support::records::{batch, now_ms, str_bytes as s, values_of};
use strom_test_support::{RawConnection, TestBroker};

async fn create_topic(
    conn: &mut RawConnection,
    name: &str,
    partitions: i32,
) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(-1),
    ]);
    conn.call(ApiKey::CreateTopics, 7, &req).await.unwrap()
}

async fn produce(
    conn: &mut RawConnection,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ]);
    let resp: ProduceResponse = conn.call(ApiKey::Produce, 11, &req).await.unwrap();
    resp.responses[0].partition_responses[0].clone()
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_current_leader_epoch(-1)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

async fn fetch(
    conn: &mut RawConnection,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> fetch_response::PartitionData {
    let resp: FetchResponse = conn
        .call(
            ApiKey::Fetch,
            12,
            &fetch_request(topic, partition, offset, max_wait_ms),
        )
        .await
        .unwrap();
    assert_eq!(resp.error_code, 0);
    resp.responses[0].partitions[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_lists_served_apis_and_answers_unknown_versions_with_v0() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let req = ApiVersionsRequest::default()
        .with_client_software_name(s("strom-test"))
        .with_client_software_version(s("1.0"));
    let resp: ApiVersionsResponse = conn.call(ApiKey::ApiVersions, 3, &req).await.unwrap();
    assert_eq!(resp.error_code, 0);
    let produce = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 13));
    assert!(
        resp.api_keys
            .iter()
            .all(|k| k.api_key != ApiKey::SaslHandshake as i16),
        "unimplemented APIs are not advertised"
    );

    // A future ApiVersions version: v0 answer with UNSUPPORTED_VERSION and the table.
    let mut raw = BytesMut::new();
    raw.extend_from_slice(&0i32.to_be_bytes());
    raw.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    raw.extend_from_slice(&99i16.to_be_bytes());
    raw.extend_from_slice(&7i32.to_be_bytes());
    raw.extend_from_slice(&(-1i16).to_be_bytes());
    raw.extend_from_slice(&[0]);
    let len = (raw.len() - 4) as i32;
    raw[..4].copy_from_slice(&len.to_be_bytes());
    conn.write_raw(&raw).await.unwrap();
    let frame = conn.read_frame().await.unwrap();
    let (header, body) = strom_protocol::envelope::decode_response::<ApiVersionsResponse>(
        ApiKey::ApiVersions,
        0,
        frame,
    )
    .unwrap();
    assert_eq!(header.correlation_id, 7);
    assert_eq!(body.error_code, ErrorCode::UnsupportedVersion.code());
    assert!(!body.api_keys.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_fetch_returns_the_same_bytes_with_contiguous_offsets() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let created = create_topic(&mut conn, "orders", 3).await;
    assert_eq!(
        created.topics[0].error_code, 0,
        "{:?}",
        created.topics[0].error_message
    );
    assert_eq!(created.topics[0].num_partitions, 3);

    let first = produce(
        &mut conn,
        "orders",
        1,
        batch(&[b"a", b"b", b"c"], Compression::None),
        1,
    )
    .await;
    assert_eq!(first.error_code, 0, "{:?}", first.error_message);
    assert_eq!(first.base_offset, 0);
    assert_eq!(first.log_append_time_ms, -1);
    let second = produce(&mut conn, "orders", 1, batch(&[b"d"], Compression::Lz4), -1).await;
    assert_eq!(second.base_offset, 3);

    let data = fetch(&mut conn, "orders", 1, 0, 0).await;
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 4);
    let got = values_of(data.records.as_ref().unwrap());
    assert_eq!(
        got,
        vec![
            (0, Bytes::from_static(b"a")),
            (1, Bytes::from_static(b"b")),
            (2, Bytes::from_static(b"c")),
            (3, Bytes::from_static(b"d"))
        ]
    );

    // At the end: empty, no error.
    let data = fetch(&mut conn, "orders", 1, 4, 0).await;
    assert_eq!(data.error_code, 0);
    assert!(data.records.unwrap().is_empty());
    // Past the end: OFFSET_OUT_OF_RANGE with the bounds.
    let data = fetch(&mut conn, "orders", 1, 10, 0).await;
    assert_eq!(data.error_code, ErrorCode::OffsetOutOfRange.code());
    assert_eq!(data.high_watermark, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_per_partition() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut conn, "t", 1).await;

    let unknown = produce(&mut conn, "nope", 0, batch(&[b"x"], Compression::None), 1).await;
    assert_eq!(
        unknown.error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let bad_partition = produce(&mut conn, "t", 5, batch(&[b"x"], Compression::None), 1).await;
    assert_eq!(
        bad_partition.error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    let mut corrupt = BytesMut::from(&batch(&[b"x"], Compression::None)[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let r = produce(&mut conn, "t", 0, corrupt.freeze(), 1).await;
    assert_eq!(r.error_code, ErrorCode::CorruptMessage.code());

    let big = vec![7u8; 2 * 1024 * 1024];
    let r = produce(&mut conn, "t", 0, batch(&[&big], Compression::None), 1).await;
    assert_eq!(r.error_code, ErrorCode::MessageTooLarge.code());
    assert!(r.error_message.is_some());

    let r = produce(&mut conn, "t", 0, batch(&[b"x"], Compression::None), 2).await;
    assert_eq!(r.error_code, ErrorCode::InvalidRequiredAcks.code());

    // And the partition still works, starting at offset 0: nothing refused was written.
    let ok = produce(&mut conn, "t", 0, batch(&[b"ok"], Compression::None), 1).await;
    assert_eq!((ok.error_code, ok.base_offset), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_fetch_is_woken_by_an_append() {
    let broker = TestBroker::start().await;
    let mut producer = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let mut consumer = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut producer, "poll", 1).await;

    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        (
            fetch(&mut consumer, "poll", 0, 0, 10_000).await,
            started.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    produce(
        &mut producer,
        "poll",
        0,
        batch(&[b"late"], Compression::None),
        1,
    )
    .await;
    let (data, waited) = waiting.await.unwrap();
    assert_eq!(
        values_of(data.records.as_ref().unwrap()),
        vec![(0, Bytes::from_static(b"late"))]
    );
    assert!(
        waited >= Duration::from_millis(300),
        "the fetch waited for data"
    );
    assert!(
        waited < Duration::from_secs(9),
        "woken by the append, not by max_wait_ms"
    );

    // With nothing to read and a short max_wait_ms, the fetch returns empty when it expires.
    let mut consumer = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let data = fetch(&mut consumer, "poll", 0, 1, 200).await;
    assert!(data.records.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_a_crash() {
    let mut broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut conn, "durable", 1).await;
    for i in 0..50 {
        let v = format!("v{i}");
        let r = produce(
            &mut conn,
            "durable",
            0,
            batch(&[v.as_bytes()], Compression::None),
            1,
        )
        .await;
        assert_eq!(r.base_offset, i);
    }
    drop(conn);
    broker.crash_and_restart().await;

    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let data = fetch(&mut conn, "durable", 0, 0, 0).await;
    let got = values_of(data.records.as_ref().unwrap());
    assert_eq!(got.len(), 50);
    for (i, (offset, value)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, &Bytes::from(format!("v{i}")));
    }
    let r = produce(
        &mut conn,
        "durable",
        0,
        batch(&[b"next"], Compression::None),
        1,
    )
    .await;
    assert_eq!(r.base_offset, 50, "producing continues at the next offset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_truncated_on_restart() {
    let mut broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut conn, "torn", 1).await;
    for _ in 0..3 {
        produce(
            &mut conn,
            "torn",
            0,
            batch(&[b"whole"], Compression::None),
            1,
        )
        .await;
    }
    drop(conn);
    broker.shutdown().await;
    // A crash in the middle of a write: half a batch at the end, no clean-shutdown marker.
    let segment = broker
        .partition_dir("torn", 0)
        .join("00000000000000000000.log");
    let half = batch(&[b"half"], Compression::None);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&half[..half.len() / 2]);
    std::fs::write(&segment, bytes).unwrap();
    std::fs::remove_file(broker.data_dir().join(".kafka_cleanshutdown")).unwrap();
    broker.crash_and_restart().await;

    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let data = fetch(&mut conn, "torn", 0, 0, 0).await;
    assert_eq!(data.high_watermark, 3);
    assert_eq!(values_of(data.records.as_ref().unwrap()).len(), 3);
    let r = produce(
        &mut conn,
        "torn",
        0,
        batch(&[b"after"], Compression::None),
        1,
    )
    .await;
    assert_eq!(r.base_offset, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    let broker = TestBroker::start_with(&[("socket.request.max.bytes", "1048576")]).await;
    let mut healthy = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut healthy, "alive", 1).await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("2 GiB declared length", i32::MAX.to_be_bytes().to_vec()),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        ("garbage", b"\x00\x00\x00\x10GARBAGEGARBAGE!!".to_vec()),
        ("unknown api key", {
            let mut v = 10i32.to_be_bytes().to_vec();
            v.extend_from_slice(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
            v
        }),
        ("unsupported produce version", {
            let mut v = 10i32.to_be_bytes().to_vec();
            v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff]);
            v
        }),
        // A Metadata v0 body declaring 54 million topics in 5 bytes: must not allocate for them.
        ("huge array count", {
            let mut v = 15i32.to_be_bytes().to_vec();
            v.extend_from_slice(&[
                0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x03, 0x3c, 0x0c, 0x00, 0xb6,
            ]);
            v
        }),
        ("truncated body", {
            let mut v = 100i32.to_be_bytes().to_vec();
            v.extend_from_slice(&[0, 18, 0, 3]);
            v
        }),
    ];
    for (what, bytes) in cases {
        let mut conn = RawConnection::connect(broker.bootstrap_servers())
            .await
            .unwrap();
        conn.write_raw(&bytes).await.unwrap();
        if what == "truncated body" {
            // The broker waits for the rest; the peer gives up and goes away.
            drop(conn);
            continue;
        }
        assert!(
            conn.is_closed_by_peer(Duration::from_secs(5)).await,
            "{what}: connection closed"
        );
    }
    // The broker and the other connection are unaffected.
    let r = produce(
        &mut healthy,
        "alive",
        0,
        batch(&[b"still here"], Compression::None),
        1,
    )
    .await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
}

/// Records the broker's log events (all tests of this binary share the one global subscriber;
/// a test finds its own events by the peer address they carry).
mod log_capture {
    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex, OnceLock};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    pub(super) type Events = Arc<Mutex<Vec<(Level, String)>>>;

    struct Capture(Events);

    struct Fields(String);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, "{}={:?} ", field.name(), value);
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.target().starts_with("strom_broker")
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), fields.0));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// Installs the capture (once per test binary) and returns the shared event list.
    pub(super) fn install() -> Events {
        static EVENTS: OnceLock<Events> = OnceLock::new();
        EVENTS
            .get_or_init(|| {
                let events = Events::default();
                tracing::subscriber::set_global_default(Capture(events.clone()))
                    .expect("no other global subscriber in this test binary");
                events
            })
            .clone()
    }

    /// The events whose fields mention `needle`.
    pub(super) fn matching(events: &Events, needle: &str) -> Vec<(Level, String)> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text)| text.contains(needle))
            .cloned()
            .collect()
    }
}

/// A client that resets its connection (closing a socket with unread data does that, as
/// librdkafka consumers do on close) has gone away; it sent no bad frame. The broker logged a
/// WARN "unreadable frame ... Connection reset by peer" for it, which the compat suite's
/// no-warnings check caught; Kafka logs such disconnects at debug level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_is_not_logged_as_a_bad_frame() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let events = log_capture::install();
    let broker = TestBroker::start().await;
    let closed = |addr: &str| {
        log_capture::matching(&events, addr)
            .iter()
            .any(|(_, text)| text.contains("connection closed"))
    };
    let wait_closed = |addr: String| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !closed(&addr) {
            assert!(Instant::now() < deadline, "{addr}: no 'connection closed'");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    // A reset (SO_LINGER 0) while the broker waits for the next frame, after one
    // request/response (so the connection is being served).
    let mut stream = TcpStream::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let reset_addr = stream.local_addr().unwrap().to_string();
    let mut request = BytesMut::new();
    request.extend_from_slice(&10i32.to_be_bytes());
    request.extend_from_slice(&(ApiKey::ApiVersions as i16).to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    request.extend_from_slice(&(-1i16).to_be_bytes());
    stream.write_all(&request).await.unwrap();
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.unwrap();
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).await.unwrap();
    stream.set_zero_linger().unwrap();
    drop(stream);
    wait_closed(reset_addr.clone()).await;

    // A truncated frame and a clean close: that one is a bad frame, logged as a WARN (which
    // also shows that the capture sees the broker's warnings).
    let mut truncated = TcpStream::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let truncated_addr = truncated.local_addr().unwrap().to_string();
    truncated.write_all(&100i32.to_be_bytes()).await.unwrap();
    truncated.write_all(&[0, 18, 0, 3]).await.unwrap();
    truncated.shutdown().await.unwrap();
    wait_closed(truncated_addr.clone()).await;

    let warned = |addr: &str| {
        log_capture::matching(&events, addr)
            .into_iter()
            .filter(|(level, _)| *level <= tracing::Level::WARN)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        warned(&truncated_addr).len(),
        1,
        "the truncated frame is a WARN"
    );
    assert_eq!(warned(&reset_addr), vec![], "a reset is not a WARN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_auto_creates_and_reports_topic_ids() {
    let broker = TestBroker::start_with(&[("num.partitions", "4")]).await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("auto")))),
        ]))
        .with_allow_auto_topic_creation(true);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req).await.unwrap();
    let topic = &resp.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.partitions.len(), 4);
    assert!(!topic.topic_id.is_nil());
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(resp.cluster_id.as_deref().map(str::len), Some(22));

    let no_create = MetadataRequest::default()
        .with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s("absent")))),
        ]))
        .with_allow_auto_topic_creation(false);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &no_create).await.unwrap();
    assert_eq!(
        resp.topics[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    let bad = MetadataRequest::default()
        .with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s("bad name!")))),
        ]))
        .with_allow_auto_topic_creation(true);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &bad).await.unwrap();
    assert_eq!(
        resp.topics[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
}

/// With no authorizer Kafka answers `include_*_authorized_operations` with every operation the
/// resource supports (confluent-kafka's `describe_topics`/`describe_cluster` with
/// `include_authorized_operations=True` showed `None` before); not asked, the field keeps its
/// "not provided" default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_operations_are_reported_when_asked() {
    const NOT_PROVIDED: i32 = i32::MIN;
    // READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS
    const TOPIC_OPS: i32 =
        (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
    // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE
    const CLUSTER_OPS: i32 =
        (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut conn, "ops", 1).await;
    let topics = || {
        Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("ops")))),
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s("missing")))),
        ])
    };

    for version in [8, 10, 12, 13] {
        let asked = MetadataRequest::default()
            .with_topics(topics())
            .with_include_topic_authorized_operations(true)
            .with_include_cluster_authorized_operations(version <= 10);
        let resp: MetadataResponse = conn.call(ApiKey::Metadata, version, &asked).await.unwrap();
        assert_eq!(resp.topics[0].error_code, 0);
        assert_eq!(
            resp.topics[0].topic_authorized_operations, TOPIC_OPS,
            "v{version}"
        );
        assert_eq!(
            resp.topics[1].topic_authorized_operations, TOPIC_OPS,
            "v{version}"
        );
        let cluster = if version <= 10 {
            CLUSTER_OPS
        } else {
            NOT_PROVIDED
        };
        assert_eq!(resp.cluster_authorized_operations, cluster, "v{version}");

        let not_asked = MetadataRequest::default().with_topics(topics());
        let resp: MetadataResponse = conn
            .call(ApiKey::Metadata, version, &not_asked)
            .await
            .unwrap();
        assert_eq!(resp.topics[0].topic_authorized_operations, NOT_PROVIDED);
        assert_eq!(resp.cluster_authorized_operations, NOT_PROVIDED);
    }

    for version in 0..=2 {
        let asked =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let resp: DescribeClusterResponse = conn
            .call(ApiKey::DescribeCluster, version, &asked)
            .await
            .unwrap();
        assert_eq!(resp.error_code, 0);
        assert_eq!(
            resp.cluster_authorized_operations, CLUSTER_OPS,
            "v{version}"
        );
        let resp: DescribeClusterResponse = conn
            .call(
                ApiKey::DescribeCluster,
                version,
                &DescribeClusterRequest::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            resp.cluster_authorized_operations, NOT_PROVIDED,
            "v{version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_earliest_latest_and_by_time() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut conn, "lo", 1).await;
    let before = now_ms();
    produce(
        &mut conn,
        "lo",
        0,
        batch(&[b"1", b"2"], Compression::None),
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let middle = now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    produce(&mut conn, "lo", 0, batch(&[b"3"], Compression::None), 1).await;

    let list = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(s("lo")))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(ts),
                    ]),
            ])
    };
    let mut ask = async |ts: i64| -> (i64, i64) {
        let r: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 9, &list(ts)).await.unwrap();
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        (p.offset, p.timestamp)
    };
    assert_eq!(ask(-2).await.0, 0);
    assert_eq!(ask(-1).await.0, 3);
    assert_eq!(ask(before - 1000).await.0, 0);
    assert_eq!(ask(middle).await.0, 2);
    assert_eq!(ask(now_ms() + 60_000).await, (-1, -1));
    assert_eq!(ask(-3).await.0, 2, "max timestamp is the last record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_can_be_deleted_and_recreated_empty() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let first = create_topic(&mut conn, "again", 1).await.topics[0].topic_id;
    produce(
        &mut conn,
        "again",
        0,
        batch(&[b"old"], Compression::None),
        1,
    )
    .await;
    let dup = create_topic(&mut conn, "again", 1).await;
    assert_eq!(
        dup.topics[0].error_code,
        ErrorCode::TopicAlreadyExists.code()
    );

    let del = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("again"))]);
    let resp: DeleteTopicsResponse = conn.call(ApiKey::DeleteTopics, 5, &del).await.unwrap();
    assert_eq!(resp.responses[0].error_code, 0);
    let resp: DeleteTopicsResponse = conn.call(ApiKey::DeleteTopics, 5, &del).await.unwrap();
    assert_eq!(
        resp.responses[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    let second = create_topic(&mut conn, "again", 1).await.topics[0].topic_id;
    assert_ne!(first, second);
    let data = fetch(&mut conn, "again", 0, 0, 0).await;
    assert_eq!(data.high_watermark, 0, "a recreated topic starts empty");
}

/// Every served version of every API gets a decodable answer, including error answers: a field
/// set that a version cannot carry makes the encoder refuse, which would close the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_of_every_api_is_answered() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let created = create_topic(&mut conn, "versions", 2).await;
    let topic_id = created.topics[0].topic_id;
    produce(
        &mut conn,
        "versions",
        0,
        batch(&[b"x"], Compression::None),
        1,
    )
    .await;

    for v in 0..=4 {
        let r: ApiVersionsResponse = conn
            .call(
                ApiKey::ApiVersions,
                v,
                &ApiVersionsRequest::default()
                    .with_client_software_name(if v >= 3 { s("t") } else { StrBytes::default() })
                    .with_client_software_version(if v >= 3 {
                        s("1")
                    } else {
                        StrBytes::default()
                    }),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code, 0, "ApiVersions v{v}");
    }
    for v in 0..=13 {
        let topics = vec![
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s("versions")))),
            metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(s("missing-topic")))),
        ];
        let req = MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(v < 4);
        let r: MetadataResponse = conn.call(ApiKey::Metadata, v, &req).await.unwrap();
        assert_eq!(r.topics[0].error_code, 0, "Metadata v{v}");
    }
    for v in 3..=13 {
        let data = produce_request::TopicProduceData::default()
            .with_name(if v < 13 {
                TopicName(s("versions"))
            } else {
                TopicName::default()
            })
            .with_topic_id(if v >= 13 { topic_id } else { uuid::Uuid::nil() })
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&[b"v"], Compression::None))),
                produce_request::PartitionProduceData::default()
                    .with_index(9)
                    .with_records(Some(batch(&[b"v"], Compression::None))),
            ]);
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![data]);
        let r: ProduceResponse = conn.call(ApiKey::Produce, v, &req).await.unwrap();
        let parts = &r.responses[0].partition_responses;
        assert_eq!(parts[0].error_code, 0, "Produce v{v}");
        assert_ne!(
            parts[1].error_code, 0,
            "Produce v{v} to a missing partition"
        );
    }
    for v in 4..=18 {
        let topic = fetch_request::FetchTopic::default()
            .with_topic(if v < 13 {
                TopicName(s("versions"))
            } else {
                TopicName::default()
            })
            .with_topic_id(if v >= 13 { topic_id } else { uuid::Uuid::nil() })
            .with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(1_000)
                    .with_partition_max_bytes(1 << 20),
            ]);
        let mut req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic]);
        if v < 15 {
            req = req.with_replica_id(BrokerId(-1));
        }
        if v >= 7 {
            req = req.with_session_epoch(-1);
        }
        let r: FetchResponse = conn.call(ApiKey::Fetch, v, &req).await.unwrap();
        let parts = &r.responses[0].partitions;
        assert_eq!(parts[0].error_code, 0, "Fetch v{v}");
        assert_eq!(
            parts[1].error_code,
            ErrorCode::OffsetOutOfRange.code(),
            "Fetch v{v}"
        );
    }
    for v in 1..=10 {
        for ts in [-1, -2, -3, 0, i64::MAX] {
            if ts == -3 && v < 7 {
                continue;
            }
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(TopicName(s("versions")))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(ts),
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(7)
                                .with_timestamp(ts),
                        ]),
                ]);
            let r: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, v, &req).await.unwrap();
            assert_eq!(
                r.topics[0].partitions[0].error_code, 0,
                "ListOffsets v{v} ts {ts}"
            );
            assert_ne!(
                r.topics[0].partitions[1].error_code, 0,
                "ListOffsets v{v} ts {ts}"
            );
        }
    }
    for v in 2..=7 {
        let req = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(&format!("ct-{v}"))))
                .with_num_partitions(1)
                .with_replication_factor(1),
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s("versions")))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
        let r: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, v, &req).await.unwrap();
        assert_eq!(r.topics[0].error_code, 0, "CreateTopics v{v}");
        assert_eq!(
            r.topics[1].error_code,
            ErrorCode::TopicAlreadyExists.code(),
            "CreateTopics v{v}"
        );
    }
    for v in 0..=3 {
        let req = CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(s(&format!("ct-{}", v + 2))))
                .with_count(2),
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(s("nope")))
                .with_count(2),
        ]);
        let r: CreatePartitionsResponse =
            conn.call(ApiKey::CreatePartitions, v, &req).await.unwrap();
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}");
        assert_ne!(r.results[1].error_code, 0, "CreatePartitions v{v}");
    }
    for v in 1..=4 {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_include_documentation(v >= 3)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("versions")),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1")),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("nope")),
            ]);
        let r: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, v, &req).await.unwrap();
        assert_eq!(r.results[0].error_code, 0, "DescribeConfigs v{v}");
        assert_eq!(r.results[1].error_code, 0, "DescribeConfigs v{v}");
        assert_ne!(r.results[2].error_code, 0, "DescribeConfigs v{v}");
    }
    for v in 0..=2 {
        let r: DescribeClusterResponse = conn
            .call(
                ApiKey::DescribeCluster,
                v,
                &DescribeClusterRequest::default(),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code, 0, "DescribeCluster v{v}");
    }
    for v in 0..=2 {
        let req = AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("versions"))
                .with_configs(vec![
                    alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("100000"))),
                ]),
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("nope")),
        ]);
        let r: AlterConfigsResponse = conn.call(ApiKey::AlterConfigs, v, &req).await.unwrap();
        assert_eq!(r.responses[0].error_code, 0, "AlterConfigs v{v}");
        assert_ne!(r.responses[1].error_code, 0, "AlterConfigs v{v}");
    }
    for v in 0..=1 {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("versions"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(1),
                ]),
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("nope")),
        ]);
        let r: IncrementalAlterConfigsResponse = conn
            .call(ApiKey::IncrementalAlterConfigs, v, &req)
            .await
            .unwrap();
        assert_eq!(r.responses[0].error_code, 0, "IncrementalAlterConfigs v{v}");
        assert_ne!(r.responses[1].error_code, 0, "IncrementalAlterConfigs v{v}");
    }
    for v in 1..=6 {
        let name = format!("ct-{}", v + 1);
        let req = if v >= 6 {
            DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(s(&name)))),
                delete_topics_request::DeleteTopicState::default()
                    .with_topic_id(uuid::Uuid::new_v4()),
            ])
        } else {
            DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(s(&name)), TopicName(s("nope"))])
        };
        let r: DeleteTopicsResponse = conn.call(ApiKey::DeleteTopics, v, &req).await.unwrap();
        assert_eq!(r.responses[0].error_code, 0, "DeleteTopics v{v}");
        assert_ne!(r.responses[1].error_code, 0, "DeleteTopics v{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_refuses_controller_endpoint_requests_like_a_broker() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let ask =
        |endpoint_type: i8| DescribeClusterRequest::default().with_endpoint_type(endpoint_type);
    let r: DescribeClusterResponse = conn
        .call(ApiKey::DescribeCluster, 1, &ask(1))
        .await
        .unwrap();
    assert_eq!((r.error_code, r.brokers.len()), (0, 1));
    let r: DescribeClusterResponse = conn
        .call(ApiKey::DescribeCluster, 1, &ask(2))
        .await
        .unwrap();
    assert_eq!(r.error_code, ErrorCode::MismatchedEndpointType.code());
    let r: DescribeClusterResponse = conn
        .call(ApiKey::DescribeCluster, 1, &ask(9))
        .await
        .unwrap();
    assert_eq!(r.error_code, ErrorCode::UnsupportedEndpointType.code());
}
