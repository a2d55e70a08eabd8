//! A metadata log written before producer-id blocks and dynamic config changes existed must
//! still replay. The fixture is a log file produced by that earlier version (topics, configs, a
//! deleted topic, added partitions, broker configs set and removed), kept byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strom_metadata::log::{LOG_DIR_NAME, LOG_FILE_NAME};
use strom_metadata::records::ConfigResourceType::{Broker, Topic};
use strom_metadata::{AlterConfigOp, ConfigChange, Controller, ControllerConfig, OpType};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/log-before-producer-ids")
        .join(LOG_DIR_NAME)
        .join(LOG_FILE_NAME)
}

fn controller_config(dir: &Path) -> ControllerConfig {
    ControllerConfig {
        node_id: 1,
        metadata_log_dir: dir.to_path_buf(),
        num_partitions: 1,
        default_replication_factor: 1,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn a_log_from_before_producer_ids_replays() {
    let bytes = std::fs::read(fixture()).unwrap();
    // It is the old format indeed: no record type this version added.
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(r#""type":"Config""#));
    assert!(!text.contains("ProducerIds"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(LOG_DIR_NAME)).unwrap();
    let copy = dir.path().join(LOG_DIR_NAME).join(LOG_FILE_NAME);
    std::fs::write(&copy, &bytes).unwrap();

    let controller = Controller::open(controller_config(dir.path()))
        .await
        .unwrap();
    let image = controller.image();
    assert_eq!(image.offset, 14);
    assert_eq!(image.brokers.len(), 1);
    assert_eq!(image.brokers[&1].epoch, 0);
    assert!(!image.brokers[&1].fenced);
    let names: Vec<_> = image.topics().iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, ["orders"]);
    assert_eq!(image.topic_by_name("orders").unwrap().partitions.len(), 3);
    assert_eq!(
        image.configs(Topic, "orders").cloned().unwrap_or_default(),
        map(&[("cleanup.policy", "compact"), ("retention.ms", "1000")])
    );
    assert_eq!(
        image.configs(Broker, "").cloned().unwrap_or_default(),
        map(&[("log.retention.ms", "7200000")])
    );
    assert_eq!(
        image.configs(Broker, "1").cloned().unwrap_or_default(),
        map(&[("num.io.threads", "16")])
    );
    assert_eq!(image.next_producer_id(), 0);

    // New records go after the old ones, and the mixed log replays.
    let block = controller.allocate_producer_ids(1, 0).await.unwrap();
    assert_eq!(block.first_producer_id, 0);
    let results = controller
        .incremental_alter_configs(
            vec![ConfigChange {
                resource_type: Topic,
                resource_name: "orders".to_string(),
                ops: vec![AlterConfigOp {
                    name: "cleanup.policy".to_string(),
                    op: OpType::Append,
                    value: Some("delete".to_string()),
                }],
            }],
            false,
        )
        .await;
    assert_eq!(results, [Ok(())]);
    let before = controller.image();
    assert_eq!(before.offset, 16);
    drop(controller);

    let reopened = Controller::open(controller_config(dir.path()))
        .await
        .unwrap();
    assert_eq!(*reopened.image(), *before);
    assert_eq!(reopened.image().next_producer_id(), 1000);
    assert_eq!(
        reopened.image().configs(Topic, "orders").unwrap()["cleanup.policy"],
        "compact,delete"
    );
    // The old bytes are untouched at the front of the file.
    assert!(std::fs::read(&copy).unwrap().starts_with(&bytes));
}
