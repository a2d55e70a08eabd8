//! Producer-id blocks end to end over a real metadata log: blocks are disjoint and increasing,
//! survive a reopen, check the broker epoch as Kafka does, and run out near `i64::MAX` with
//! Kafka's error.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use strom_metadata::log::MetadataLog;
use strom_metadata::records::{Endpoint, MetadataRecord, ProducerIdsRecord, RegisterBrokerRecord};
use strom_metadata::{Controller, ControllerConfig, PRODUCER_ID_BLOCK_SIZE, ProducerIdsBlock};
use strom_protocol::ErrorCode;
use uuid::Uuid;

fn controller_config(dir: &Path) -> ControllerConfig {
    ControllerConfig {
        node_id: 1,
        metadata_log_dir: dir.to_path_buf(),
        num_partitions: 1,
        default_replication_factor: 1,
    }
}

async fn open(dir: &Path) -> Controller {
    Controller::open(controller_config(dir)).await.unwrap()
}

async fn register(controller: &Controller, id: i32) {
    controller
        .register_broker(RegisterBrokerRecord {
            broker_id: id,
            incarnation_id: Uuid::new_v4(),
            listeners: vec![Endpoint {
                name: "PLAINTEXT".to_string(),
                host: "localhost".to_string(),
                port: 9092,
                security_protocol: "PLAINTEXT".to_string(),
            }],
            rack: None,
            fenced: false,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn blocks_are_disjoint_and_increasing_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let controller = open(dir.path()).await;
    register(&controller, 1).await;
    assert_eq!(PRODUCER_ID_BLOCK_SIZE, 1000);

    let mut blocks = Vec::new();
    for _ in 0..3 {
        blocks.push(controller.allocate_producer_ids(1, -1).await.unwrap());
    }
    assert_eq!(
        blocks,
        [0, 1000, 2000].map(|first| ProducerIdsBlock {
            first_producer_id: first,
            size: 1000,
        })
    );
    assert_eq!(blocks[0].last_producer_id(), 999);
    assert_eq!(controller.image().next_producer_id(), 3000);
    drop(controller);

    // The handed-out blocks are durable: a restarted controller continues after them.
    let controller = open(dir.path()).await;
    assert_eq!(controller.image().next_producer_id(), 3000);
    let block = controller.allocate_producer_ids(1, -1).await.unwrap();
    assert_eq!(block.first_producer_id, 3000);
    drop(controller);
    let controller = open(dir.path()).await;
    assert_eq!(
        controller
            .allocate_producer_ids(1, -1)
            .await
            .unwrap()
            .first_producer_id,
        4000
    );
}

#[tokio::test]
async fn concurrent_allocations_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let controller = Arc::new(open(dir.path()).await);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let controller = Arc::clone(&controller);
            tokio::spawn(async move { controller.allocate_producer_ids(1, -1).await })
        })
        .collect();
    let mut firsts = BTreeSet::new();
    for task in tasks {
        let block = task.await.unwrap().unwrap();
        assert!(firsts.insert(block.first_producer_id));
    }
    assert_eq!(
        firsts.into_iter().collect::<Vec<_>>(),
        (0..16).map(|i| i * 1000).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn broker_epochs_are_checked_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let controller = open(dir.path()).await;
    register(&controller, 1).await;
    let epoch = controller.image().brokers[&1].epoch;

    let block = controller.allocate_producer_ids(1, epoch).await.unwrap();
    assert_eq!(block.first_producer_id, 0);

    let stale = controller
        .allocate_producer_ids(1, epoch + 7)
        .await
        .unwrap_err();
    assert_eq!(stale.code, ErrorCode::StaleBrokerEpoch);
    assert_eq!(
        stale.message,
        Some(format!(
            "Expected broker epoch {epoch}, but got broker epoch {}",
            epoch + 7
        ))
    );
    let unknown = controller.allocate_producer_ids(9, 3).await.unwrap_err();
    assert_eq!(unknown.code, ErrorCode::StaleBrokerEpoch);
    assert_eq!(
        unknown.message.as_deref(),
        Some("No broker registration found for broker id 9")
    );
    // A re-registration moves the epoch on; the old one is stale.
    register(&controller, 1).await;
    let new_epoch = controller.image().brokers[&1].epoch;
    assert!(new_epoch > epoch);
    assert_eq!(
        controller
            .allocate_producer_ids(1, epoch)
            .await
            .unwrap_err()
            .code,
        ErrorCode::StaleBrokerEpoch
    );
    assert_eq!(
        controller
            .allocate_producer_ids(1, new_epoch)
            .await
            .unwrap()
            .first_producer_id,
        1000
    );
    // -1: no epoch at hand, no check.
    assert_eq!(
        controller
            .allocate_producer_ids(9, -1)
            .await
            .unwrap()
            .first_producer_id,
        2000
    );
    // Refused requests took no ids.
    assert_eq!(controller.image().next_producer_id(), 3000);
}

#[tokio::test]
async fn ids_run_out_near_the_end_of_i64() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: -1,
            next_producer_id: i64::MAX - 1500,
        })])
        .await
        .unwrap();
    }
    let controller = open(dir.path()).await;
    let last = controller.allocate_producer_ids(1, -1).await.unwrap();
    assert_eq!(last.first_producer_id, i64::MAX - 1500);
    assert_eq!(last.last_producer_id(), i64::MAX - 501);

    let offset = controller.image().offset;
    let exhausted = controller.allocate_producer_ids(1, -1).await.unwrap_err();
    assert_eq!(exhausted.code, ErrorCode::UnknownServerError);
    assert_eq!(
        exhausted.message.as_deref(),
        Some(
            "Exhausted all producerIds as the next block's end producerId is will has exceeded long type limit"
        )
    );
    assert_eq!(controller.image().offset, offset);
    assert_eq!(controller.image().next_producer_id(), i64::MAX - 500);
}
