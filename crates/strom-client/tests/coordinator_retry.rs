//! Group requests follow their coordinator: against a scripted broker that first answers
//! NOT_COORDINATOR, then COORDINATOR_LOAD_IN_PROGRESS, the admin client looks the coordinator
//! up again after the first (it may have moved) but not after the second (it is loading), and
//! gives up with the last error once `default.api.timeout.ms` is spent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strom_client::{Admin, ClientConfig, ErrorCode};
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::{ApiKey, DeleteGroupsResponse, RequestKind, ResponseKind};
use strom_test_support::scripted::{self, coordinators_here, metadata_here};

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

fn answer(script: &Script, port: u16, body: RequestKind) -> ResponseKind {
    match body {
        RequestKind::Metadata(_) => ResponseKind::Metadata(metadata_here(port)),
        RequestKind::FindCoordinator(r) => {
            script.find_coordinator.fetch_add(1, Ordering::SeqCst);
            coordinators_here(port, r.coordinator_keys)
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
    }
}

async fn scripted(answers: Vec<ErrorCode>) -> (String, Arc<Script>) {
    let script = Arc::new(Script {
        answers,
        ..Script::default()
    });
    let shared = script.clone();
    let addr = scripted::start(APIS, move |port, body| answer(&shared, port, body)).await;
    (addr, script)
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
