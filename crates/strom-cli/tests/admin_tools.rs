//! `strom configs`, `strom delete-records` and `strom log-dirs` against an in-process broker.

use strom_client::{ClientConfig, Producer, ProducerRecord};
use strom_test_support::TestBroker;

mod common;
use common::{failed, ok, stderr, stdout, tool};

async fn produce(b: &str, topic: &str, partition: i32, n: usize) {
    let producer = Producer::connect(ClientConfig::new(b)).await.unwrap();
    for i in 0..n {
        producer
            .send(ProducerRecord::new(topic, format!("value-{i}")).with_partition(partition))
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_describe_and_alter_round_trip() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    ok(&tool(b, &["topics", "create", "conf", "--partitions", "1"]).await);

    assert_eq!(
        ok(&tool(b, &["configs", "describe", "--topic", "conf"]).await),
        "Dynamic configs for topic conf are:\n"
    );
    let o = tool(
        b,
        &[
            "configs",
            "alter",
            "--topic",
            "conf",
            "--add-config",
            "retention.ms=3600000,cleanup.policy=[delete,compact]",
        ],
    )
    .await;
    assert_eq!(ok(&o), "Completed updating config for topic conf.\n");
    assert_eq!(
        ok(&tool(b, &["configs", "describe", "--topic", "conf"]).await),
        "Dynamic configs for topic conf are:\n\
         \x20 cleanup.policy=delete,compact sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=delete,compact, DEFAULT_CONFIG:log.cleanup.policy=delete}\n\
         \x20 retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000, DEFAULT_CONFIG:log.retention.hours=168}\n"
    );
    let all = ok(&tool(b, &["configs", "describe", "--topic", "conf", "--all"]).await);
    assert!(
        all.starts_with("All configs for topic conf are:\n"),
        "{all}"
    );
    assert!(all.contains("\n  segment.bytes=1073741824 sensitive=false synonyms={DEFAULT_CONFIG:log.segment.bytes=1073741824}\n"), "{all}");
    let json: serde_json::Value = serde_json::from_str(&ok(&tool(
        b,
        &["configs", "describe", "--topic", "conf", "--output", "json"],
    )
    .await))
    .unwrap();
    assert_eq!(json[1]["name"], "retention.ms");
    assert_eq!(json[1]["source"], "DYNAMIC_TOPIC_CONFIG");

    // Deleting: back to the default; a key that is not set is refused as Kafka does.
    let o = tool(
        b,
        &[
            "configs",
            "alter",
            "--topic",
            "conf",
            "--delete-config",
            "retention.ms,cleanup.policy",
        ],
    )
    .await;
    assert_eq!(ok(&o), "Completed updating config for topic conf.\n");
    assert_eq!(
        ok(&tool(b, &["configs", "describe", "--topic", "conf"]).await),
        "Dynamic configs for topic conf are:\n"
    );
    let o = tool(
        b,
        &[
            "configs",
            "alter",
            "--topic",
            "conf",
            "--delete-config",
            "segment.ms",
        ],
    )
    .await;
    assert_eq!(failed(&o), "error: Invalid config(s): segment.ms\n");
    let o = tool(
        b,
        &[
            "configs",
            "alter",
            "--topic",
            "conf",
            "--add-config",
            "retention.ms=soon",
        ],
    )
    .await;
    assert!(
        failed(&o).starts_with("error: INVALID_CONFIG"),
        "{}",
        stderr(&o)
    );
    let o = tool(b, &["configs", "alter", "--topic", "conf"]).await;
    assert!(failed(&o).contains("At least one of --add-config or --delete-config"));
    let o = tool(b, &["configs", "describe", "--topic", "absent"]).await;
    assert!(
        failed(&o).starts_with("error: UNKNOWN_TOPIC_OR_PARTITION"),
        "{}",
        stderr(&o)
    );

    // Broker-wide defaults, then one broker.
    let o = tool(
        b,
        &[
            "configs",
            "alter",
            "--broker-defaults",
            "--add-config",
            "log.segment.bytes=3145728",
        ],
    )
    .await;
    assert_eq!(
        ok(&o),
        "Completed updating default config for brokers in the cluster.\n"
    );
    assert_eq!(
        ok(&tool(b, &["configs", "describe", "--broker-defaults"]).await),
        "Default configs for brokers in the cluster are:\n\
         \x20 log.segment.bytes=3145728 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.segment.bytes=3145728}\n"
    );
    let o = tool(
        b,
        &[
            "configs",
            "alter",
            "--broker",
            "1",
            "--add-config",
            "log.segment.bytes=2097152",
        ],
    )
    .await;
    assert_eq!(ok(&o), "Completed updating config for broker 1.\n");
    assert_eq!(
        ok(&tool(b, &["configs", "describe", "--broker", "1"]).await),
        "Dynamic configs for broker 1 are:\n\
         \x20 log.segment.bytes=2097152 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.segment.bytes=2097152, DYNAMIC_DEFAULT_BROKER_CONFIG:log.segment.bytes=3145728, DEFAULT_CONFIG:log.segment.bytes=1073741824}\n"
    );
    // The topic now inherits the per-broker value.
    let all = ok(&tool(b, &["configs", "describe", "--topic", "conf", "--all"]).await);
    assert!(all.contains("\n  segment.bytes=2097152 "), "{all}");
    let o = tool(
        b,
        &[
            "configs",
            "alter",
            "--broker",
            "1",
            "--delete-config",
            "log.segment.bytes",
        ],
    )
    .await;
    ok(&o);
    let o = tool(
        b,
        &["configs", "describe", "--topic", "conf", "--broker", "1"],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "one entity at a time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_from_flags_and_from_kafkas_json_file() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    ok(&tool(b, &["topics", "create", "d", "--partitions", "2"]).await);
    produce(b, "d", 0, 10).await;
    produce(b, "d", 1, 4).await;

    let o = tool(
        b,
        &[
            "delete-records",
            "--topic",
            "d",
            "--partition",
            "0",
            "--offset",
            "3",
        ],
    )
    .await;
    assert_eq!(
        ok(&o),
        "Executing records delete operation\nRecords delete operation completed:\n\
         partition: d-0\tlow_watermark: 3\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("offsets.json");
    std::fs::write(
        &file,
        r#"{"partitions":[{"topic":"d","partition":1,"offset":-1},
                          {"topic":"d","partition":0,"offset":99}],"version":1}"#,
    )
    .unwrap();
    let path = file.display().to_string();
    let o = tool(b, &["delete-records", "--offset-json-file", &path]).await;
    assert_eq!(
        failed(&o),
        "error: the records of 1 partition(s) could not be deleted\n"
    );
    assert_eq!(
        stdout(&o),
        "Executing records delete operation\nRecords delete operation completed:\n\
         partition: d-0\terror: OFFSET_OUT_OF_RANGE: The requested offset is not within the \
         range of offsets maintained by the server.\n\
         partition: d-1\tlow_watermark: 4\n"
    );

    // The consumer view agrees: d-0 starts at 3 now.
    let o = tool(
        b,
        &[
            "consume",
            "d",
            "--partition",
            "0",
            "--from-beginning",
            "--max-messages",
            "1",
        ],
    )
    .await;
    assert_eq!(ok(&o), "value-3\n");

    std::fs::write(
        &file,
        r#"{"partitions":[{"topic":"d","partition":0,"offset":1}],"version":3}"#,
    )
    .unwrap();
    let o = tool(b, &["delete-records", "--offset-json-file", &path]).await;
    assert_eq!(failed(&o), "error: Not supported version field value 3\n");
    let o = tool(b, &["delete-records", "--topic", "d", "--partition", "0"]).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "--offset is required with --topic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_dirs_describe_as_kafka_json() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    ok(&tool(b, &["topics", "create", "sized", "--partitions", "1"]).await);
    ok(&tool(b, &["topics", "create", "other", "--partitions", "1"]).await);
    produce(b, "sized", 0, 5).await;

    let o = tool(b, &["log-dirs", "--describe", "--topic-list", "sized"]).await;
    let text = ok(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "Querying brokers for log directories information");
    assert_eq!(
        lines[1],
        "Received log directory information from brokers 1"
    );
    let json: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(json["version"], 1);
    let broker_json = &json["brokers"][0];
    assert_eq!(broker_json["broker"], 1);
    let dir = &broker_json["logDirs"][0];
    assert_eq!(dir["error"], serde_json::Value::Null);
    assert_eq!(
        dir["logDir"].as_str().unwrap(),
        std::path::absolute(broker.data_dir())
            .unwrap()
            .display()
            .to_string()
    );
    let partitions = dir["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 1, "only the listed topic: {partitions:?}");
    assert_eq!(partitions[0]["partition"], "sized-0");
    assert!(partitions[0]["size"].as_i64().unwrap() > 0);
    assert_eq!(partitions[0]["offsetLag"], 0);
    assert_eq!(partitions[0]["isFuture"], false);

    let everything = ok(&tool(b, &["log-dirs"]).await);
    assert!(
        everything.contains("\"partition\":\"other-0\""),
        "{everything}"
    );

    let o = tool(b, &["log-dirs", "--broker-list", "1,7"]).await;
    assert_eq!(
        failed(&o),
        "error: The given brokers do not exist from --broker-list: 7. Current existent brokers: 1\n"
    );
}
