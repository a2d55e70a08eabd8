//! Admin client against an in-process broker.

use std::collections::BTreeMap;

use strom_client::{Admin, ClientConfig, ConfigResource, CreateTopicsOptions, ErrorCode, NewTopic};
use strom_test_support::TestBroker;

async fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .expect("admin connects")
}

fn code<T: std::fmt::Debug>(result: &strom_client::Result<T>) -> Option<ErrorCode> {
    result.as_ref().err().and_then(|e| e.code())
}

#[tokio::test]
async fn create_list_describe_delete() {
    let broker = TestBroker::start().await;
    let admin = admin(&broker).await;

    let created = admin
        .create_topics(
            &[
                NewTopic::new("orders")
                    .with_partitions(3)
                    .with_replication_factor(1)
                    .with_config("retention.ms", "3600000"),
                NewTopic::new("defaults"),
            ],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].name, "orders");
    let orders = created[0].result.as_ref().expect("orders created");
    assert_eq!(orders.num_partitions, 3);
    assert_eq!(orders.replication_factor, 1);
    assert!(orders.topic_id.is_some());
    let defaults = created[1].result.as_ref().expect("defaults created");
    assert_eq!(defaults.num_partitions, 1, "broker default num.partitions");

    let listed = admin.list_topics(false).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["defaults", "orders"]);
    assert!(listed.iter().all(|t| !t.internal && t.topic_id.is_some()));
    assert_eq!(listed[1].topic_id, orders.topic_id);

    let described = admin
        .describe_topics(&["orders".to_string(), "missing".to_string()])
        .await
        .unwrap();
    let d = described[0].result.as_ref().unwrap();
    assert_eq!(d.topic_id, orders.topic_id);
    assert_eq!(d.partitions.len(), 3);
    for (i, p) in d.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as i32);
        assert!(p.leader.is_some());
        assert_eq!(p.replicas.len(), 1);
        assert_eq!(p.isr, p.replicas);
    }
    assert_eq!(
        code(&described[1].result),
        Some(ErrorCode::UnknownTopicOrPartition)
    );

    let configs = admin
        .describe_configs(&[ConfigResource::topic("orders")])
        .await
        .unwrap();
    let entries = configs[0].result.as_ref().unwrap();
    let retention = entries
        .iter()
        .find(|e| e.name == "retention.ms")
        .expect("retention.ms described");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(!retention.is_default());
    assert!(entries.iter().any(|e| e.is_default()));

    let deleted = admin
        .delete_topics(&["orders".to_string(), "missing".to_string()])
        .await
        .unwrap();
    assert!(deleted[0].result.is_ok(), "{:?}", deleted[0].result);
    assert_eq!(
        code(&deleted[1].result),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    let names: Vec<String> = admin
        .list_topics(true)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["defaults".to_string()]);
}

#[tokio::test]
async fn create_errors_are_per_topic() {
    let broker = TestBroker::start().await;
    let admin = admin(&broker).await;
    let first = admin
        .create_topics(&[NewTopic::new("t").with_partitions(1)], Default::default())
        .await
        .unwrap();
    assert!(first[0].result.is_ok());

    let results = admin
        .create_topics(
            &[
                NewTopic::new("t").with_partitions(1),
                NewTopic::new("zero").with_partitions(0),
                NewTopic::new("bad/name").with_partitions(1),
                NewTopic::new("ok").with_partitions(2),
            ],
            Default::default(),
        )
        .await
        .unwrap();
    let codes: BTreeMap<&str, Option<ErrorCode>> = results
        .iter()
        .map(|r| (r.name.as_str(), code(&r.result)))
        .collect();
    assert_eq!(codes["t"], Some(ErrorCode::TopicAlreadyExists));
    assert_eq!(codes["zero"], Some(ErrorCode::InvalidPartitions));
    assert_eq!(codes["bad/name"], Some(ErrorCode::InvalidTopicException));
    assert_eq!(codes["ok"], None);
    // The broker's message travels with the code.
    let exists = results[0].result.as_ref().unwrap_err().to_string();
    assert!(exists.starts_with("TOPIC_ALREADY_EXISTS"), "{exists}");

    // validate_only creates nothing.
    let validated = admin
        .create_topics(
            &[NewTopic::new("dry").with_partitions(2)],
            CreateTopicsOptions {
                validate_only: true,
                timeout: None,
            },
        )
        .await
        .unwrap();
    assert!(validated[0].result.is_ok());
    let described = admin.describe_topics(&["dry".to_string()]).await.unwrap();
    assert_eq!(
        code(&described[0].result),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
}

#[tokio::test]
async fn create_partitions_grows_and_refuses_shrinking() {
    let broker = TestBroker::start().await;
    let admin = admin(&broker).await;
    admin
        .create_topics(
            &[NewTopic::new("grow").with_partitions(2)],
            Default::default(),
        )
        .await
        .unwrap()[0]
        .result
        .as_ref()
        .unwrap();

    let grown = admin
        .create_partitions(&[("grow".to_string(), 5)], false)
        .await
        .unwrap();
    assert!(grown[0].result.is_ok(), "{:?}", grown[0].result);
    let d = admin.describe_topics(&["grow".to_string()]).await.unwrap();
    assert_eq!(d[0].result.as_ref().unwrap().partitions.len(), 5);

    let results = admin
        .create_partitions(
            &[("grow".to_string(), 3), ("grow-missing".to_string(), 4)],
            false,
        )
        .await
        .unwrap();
    assert_eq!(code(&results[0].result), Some(ErrorCode::InvalidPartitions));
    assert_eq!(
        code(&results[1].result),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
}

#[tokio::test]
async fn describe_cluster_names_the_broker() {
    let broker = TestBroker::start().await;
    let admin = admin(&broker).await;
    let cluster = admin.describe_cluster().await.unwrap();
    assert!(cluster.cluster_id.is_some());
    assert_eq!(cluster.nodes.len(), 1);
    assert_eq!(cluster.nodes[0].addr(), broker.bootstrap_servers());
    assert_eq!(cluster.controller_id, Some(cluster.nodes[0].id));
    let configs = admin
        .describe_configs(&[ConfigResource::broker(cluster.nodes[0].id)])
        .await
        .unwrap();
    let entries = configs[0].result.as_ref().unwrap();
    assert!(
        entries.iter().any(|e| e.name == "num.partitions"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn unreachable_bootstrap_fails_fast_with_the_address() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let started = std::time::Instant::now();
    let err = Admin::connect(ClientConfig::new(&addr)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cannot connect to {addr}: Connection refused")
    );
    assert!(err.is_retriable());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
