//! Group requests follow their coordinator: against a scripted broker that first answers
//! NOT_COORDINATOR, then COORDINATOR_LOAD_IN_PROGRESS, the admin client looks the coordinator
//! up again after the first (it may have moved) but not after the second (it is loading), and
//! gives up with the last error once `default.api.timeout.ms` is spent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strom_client::{Admin, ClientConfig, ErrorCode};
use strom_protocol::StrBytes;
use strom_protocol::VersionRange;
use strom_protocol::envelope::{Decoded, decode_request, encode_response};
use strom_protocol::messages::api_versions_response::ApiVersion;
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::metadata_response::MetadataResponseBroker;
use strom_protocol::messages::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
struct Script {
    find_coordinator: AtomicUsize,
    delete_groups: AtomicUsize,
    /// The DeleteGroups answers, in order; the last one repeats.
    answers: Vec<ErrorCode>,
}

const APIS: &[(ApiKey, i16)] = &[
    (ApiKey::ApiVersions, 3),
    (ApiKey::Metadata, 12),
    (ApiKey::FindCoordinator, 4),
    (ApiKey::DeleteGroups, 2),
];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn serve(mut stream: TcpStream, port: u16, script: Arc<Script>) {
    loop {
        let Ok(len) = stream.read_i32().await else {
            return;
        };
        let mut frame = vec![0u8; len as usize];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let decoded = decode_request(bytes::Bytes::from(frame), |k| {
            APIS.iter()
                .find(|(a, _)| *a == k)
                .map(|(_, max)| VersionRange { min: 0, max: *max })
        })
        .expect("a request the script knows");
        let Decoded::Request(req) = decoded else {
            panic!("unexpected ApiVersions version");
        };
        let version = req.version();
        let body = match req.body {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(
                ApiVersionsResponse::default().with_api_keys(
                    APIS.iter()
                        .map(|(k, max)| {
                            ApiVersion::default()
                                .with_api_key(*k as i16)
                                .with_min_version(0)
                                .with_max_version(*max)
                        })
                        .collect(),
                ),
            ),
            RequestKind::Metadata(_) => ResponseKind::Metadata(
                MetadataResponse::default()
                    .with_controller_id(BrokerId(1))
                    .with_cluster_id(Some(s("scripted")))
                    .with_brokers(vec![
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(1))
                            .with_host(s("127.0.0.1"))
                            .with_port(i32::from(port)),
                    ]),
            ),
            RequestKind::FindCoordinator(r) => {
                script.find_coordinator.fetch_add(1, Ordering::SeqCst);
                ResponseKind::FindCoordinator(
                    FindCoordinatorResponse::default().with_coordinators(
                        r.coordinator_keys
                            .into_iter()
                            .map(|k| {
                                Coordinator::default()
                                    .with_key(k)
                                    .with_node_id(BrokerId(1))
                                    .with_host(s("127.0.0.1"))
                                    .with_port(i32::from(port))
                            })
                            .collect(),
                    ),
                )
            }
            RequestKind::DeleteGroups(r) => {
                let n = script.delete_groups.fetch_add(1, Ordering::SeqCst);
                let answer = script
                    .answers
                    .get(n)
                    .or(script.answers.last())
                    .map_or(0, |c| c.code());
                ResponseKind::DeleteGroups(
                    DeleteGroupsResponse::default().with_results(
                        r.groups_names
                            .into_iter()
                            .map(|g| {
                                DeletableGroupResult::default()
                                    .with_group_id(g)
                                    .with_error_code(answer)
                            })
                            .collect(),
                    ),
                )
            }
            other => panic!("unscripted request {other:?}"),
        };
        let bytes = encode_response(req.api_key, version, req.header.correlation_id, &body)
            .expect("encodable response");
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

async fn scripted(answers: Vec<ErrorCode>) -> (String, Arc<Script>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let script = Arc::new(Script {
        answers,
        ..Script::default()
    });
    let shared = script.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, addr.port(), shared.clone()));
        }
    });
    (addr.to_string(), script)
}

#[tokio::test]
async fn not_coordinator_looks_up_again_and_loading_waits() {
    let (addr, script) = scripted(vec![
        ErrorCode::NotCoordinator,
        ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::NonEmptyGroup,
    ])
    .await;
    let config = ClientConfig::new(&addr)
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(50));
    let admin = Admin::connect(config).await.unwrap();
    let result = admin.delete_groups(&["g".to_string()]).await.unwrap();
    assert_eq!(
        result[0].result.as_ref().unwrap_err().code(),
        Some(ErrorCode::NonEmptyGroup),
        "the answer after the retries is the group's own"
    );
    assert_eq!(script.delete_groups.load(Ordering::SeqCst), 3);
    assert_eq!(
        script.find_coordinator.load(Ordering::SeqCst),
        2,
        "looked up once more after NOT_COORDINATOR, not after LOAD_IN_PROGRESS"
    );
}

#[tokio::test]
async fn a_coordinator_that_never_comes_gives_up_at_the_api_timeout() {
    let (addr, script) = scripted(vec![ErrorCode::CoordinatorNotAvailable]).await;
    let config = ClientConfig::new(&addr)
        .with_retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .with_default_api_timeout(Duration::from_millis(500));
    let admin = Admin::connect(config).await.unwrap();
    let started = std::time::Instant::now();
    let result = admin.delete_groups(&["g".to_string()]).await.unwrap();
    assert_eq!(
        result[0].result.as_ref().unwrap_err().code(),
        Some(ErrorCode::CoordinatorNotAvailable)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(script.delete_groups.load(Ordering::SeqCst) > 2);
}
