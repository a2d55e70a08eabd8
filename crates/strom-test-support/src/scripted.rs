//! A scripted broker for client tests that need answers a real broker does not give on
//! demand (NOT_COORDINATOR, STALE_MEMBER_EPOCH at a chosen moment, ...). It answers
//! ApiVersions from the given API list itself and every other request with the test's
//! function; responses go out as they are ready, so a held Fetch does not delay the rest.

use std::sync::Arc;
use std::time::Duration;

use strom_protocol::envelope::{Decoded, decode_request, encode_response};
use strom_protocol::messages::api_versions_response::ApiVersion;
use strom_protocol::messages::find_coordinator_response::Coordinator;
use strom_protocol::messages::metadata_response::MetadataResponseBroker;
use strom_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FindCoordinatorResponse, MetadataResponse, RequestKind,
    ResponseKind,
};
use strom_protocol::{StrBytes, VersionRange};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long an empty Fetch is held, as a broker holds it for `fetch.max.wait.ms`.
const FETCH_HOLD: Duration = Duration::from_millis(100);

/// What the test answers: `(the broker's port, request) -> response`. Panicking on a request
/// the script does not expect fails the test that sent it.
pub type Answer = dyn Fn(u16, RequestKind) -> ResponseKind + Send + Sync;

/// Starts a scripted broker on a free local port; returns its `host:port`. `apis` are the
/// APIs and highest versions it advertises (and decodes).
pub async fn start(
    apis: &'static [(ApiKey, i16)],
    answer: impl Fn(u16, RequestKind) -> ResponseKind + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("a bound address");
    let answer: Arc<Answer> = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, addr.port(), apis, answer.clone()));
        }
    });
    addr.to_string()
}

/// A Metadata response naming this broker (node 1) as the only broker and the controller.
pub fn metadata_here(port: u16) -> MetadataResponse {
    MetadataResponse::default()
        .with_controller_id(BrokerId(1))
        .with_cluster_id(Some(StrBytes::from_static_str("scripted")))
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(i32::from(port)),
        ])
}

/// A FindCoordinator (v4+) response naming this broker the coordinator of every key.
pub fn coordinators_here(port: u16, keys: Vec<StrBytes>) -> ResponseKind {
    ResponseKind::FindCoordinator(
        FindCoordinatorResponse::default().with_coordinators(
            keys.into_iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(k)
                        .with_node_id(BrokerId(1))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(port))
                })
                .collect(),
        ),
    )
}

fn api_versions(apis: &[(ApiKey, i16)]) -> ResponseKind {
    ResponseKind::ApiVersions(
        ApiVersionsResponse::default().with_api_keys(
            apis.iter()
                .map(|(k, max)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(0)
                        .with_max_version(*max)
                })
                .collect(),
        ),
    )
}

async fn serve(stream: TcpStream, port: u16, apis: &'static [(ApiKey, i16)], answer: Arc<Answer>) {
    let (mut read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<bytes::Bytes>();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    loop {
        let Ok(len) = read.read_i32().await else {
            return;
        };
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let mut frame = vec![0u8; len];
        if read.read_exact(&mut frame).await.is_err() {
            return;
        }
        let decoded = decode_request(bytes::Bytes::from(frame), |k| {
            apis.iter()
                .find(|(a, _)| *a == k)
                .map(|(_, max)| VersionRange { min: 0, max: *max })
        })
        .expect("a request the script knows");
        let Decoded::Request(req) = decoded else {
            panic!("unexpected ApiVersions version");
        };
        let (api, version, correlation) = (req.api_key, req.version(), req.header.correlation_id);
        let hold = matches!(req.body, RequestKind::Fetch(_));
        let body = match req.body {
            RequestKind::ApiVersions(_) => api_versions(apis),
            other => answer(port, other),
        };
        let bytes = encode_response(api, version, correlation, &body).expect("encodable response");
        let tx = tx.clone();
        tokio::spawn(async move {
            if hold {
                tokio::time::sleep(FETCH_HOLD).await;
            }
            let _ = tx.send(bytes);
        });
    }
}
