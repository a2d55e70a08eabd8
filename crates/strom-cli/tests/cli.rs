//! The `strom` binary's client tools against an in-process broker.

use std::process::Output;
use std::time::Duration;

use strom_test_support::TestBroker;

mod common;
use common::{ok, stderr, stdout};

async fn strom(args: &[&str], stdin: &str) -> Output {
    common::run(args, Some(stdin)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_names_with_period_or_underscore_warn_and_collisions_are_refused() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    let o = strom(
        &[
            "topics",
            "create",
            "metrics.in_use",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert!(
        stdout(&o).starts_with("WARNING: Due to limitations in metric names"),
        "{}",
        stdout(&o)
    );
    let o = strom(
        &[
            "topics",
            "create",
            "metrics_in.use",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("collides with existing topic"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_create_list_describe_delete() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();

    let o = strom(
        &[
            "topics",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert_eq!(stdout(&o), "Created topic orders.\n");

    let o = strom(&["topics", "create", "orders", "--bootstrap-server", b], "").await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: TOPIC_ALREADY_EXISTS"),
        "{}",
        stderr(&o)
    );
    let o = strom(
        &[
            "topics",
            "create",
            "orders",
            "--if-not-exists",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert_eq!(stdout(&o), "");

    let o = strom(&["topics", "list", "--bootstrap-server", b], "").await;
    ok(&o);
    assert_eq!(stdout(&o), "orders\n");
    let o = strom(
        &[
            "topics",
            "list",
            "--output",
            "json",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(json[0]["name"], "orders");
    assert_eq!(json[0]["internal"], false);
    assert!(json[0]["topic_id"].is_string());

    let o = strom(
        &["topics", "describe", "orders", "--bootstrap-server", b],
        "",
    )
    .await;
    ok(&o);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("Topic: orders\tTopicId: "), "{text}");
    assert!(
        lines[0]
            .ends_with("\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=3600000"),
        "{text}"
    );
    for (i, line) in lines[1..].iter().enumerate() {
        assert!(
            line.starts_with(&format!("\tTopic: orders\tPartition: {i}\tLeader: ")),
            "{line}"
        );
        assert!(
            line.contains("\tReplicas: ") && line.contains("\tIsr: "),
            "{line}"
        );
    }
    let o = strom(
        &[
            "topics",
            "describe",
            "--output",
            "json",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(json[0]["partition_count"], 3);
    assert_eq!(json[0]["configs"]["retention.ms"], "3600000");

    let o = strom(&["topics", "delete", "orders", "--bootstrap-server", b], "").await;
    ok(&o);
    let o = strom(&["topics", "list", "--bootstrap-server", b], "").await;
    assert_eq!(stdout(&o), "");
    let o = strom(&["topics", "delete", "orders", "--bootstrap-server", b], "").await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "error: topic 'orders' does not exist\n");
    let o = strom(
        &[
            "topics",
            "delete",
            "orders",
            "--if-exists",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    let o = strom(
        &["topics", "describe", "orders", "--bootstrap-server", b],
        "",
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "error: topic 'orders' does not exist\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_lines_come_back_from_the_beginning() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    ok(&strom(
        &[
            "topics",
            "create",
            "lines",
            "--partitions",
            "1",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await);

    let input = "first line\nsecond line\n\nlast line without newline";
    let o = strom(
        &[
            "produce",
            "lines",
            "--compression",
            "lz4",
            "--bootstrap-server",
            b,
        ],
        input,
    )
    .await;
    ok(&o);
    assert_eq!(stdout(&o), "");

    let o = strom(
        &[
            "consume",
            "lines",
            "--from-beginning",
            "--max-messages",
            "4",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert_eq!(
        stdout(&o),
        "first line\nsecond line\n\nlast line without newline\n"
    );
    assert_eq!(stderr(&o), "Processed a total of 4 messages\n");

    // Without --from-beginning the consumer starts at the end: nothing within the timeout.
    let o = strom(
        &[
            "consume",
            "lines",
            "--timeout-ms",
            "1500",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert_eq!(stdout(&o), "");

    // One partition from an offset.
    let o = strom(
        &[
            "consume",
            "lines",
            "--partition",
            "0",
            "--offset",
            "1",
            "--max-messages",
            "1",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert_eq!(stdout(&o), "second line\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_round_trip_through_separators() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    ok(&strom(
        &[
            "topics",
            "create",
            "keyed",
            "--partitions",
            "1",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await);

    let o = strom(
        &[
            "produce",
            "keyed",
            "--key-separator",
            ":",
            "--acks",
            "1",
            "--bootstrap-server",
            b,
        ],
        "user1:logged in\nuser2:bought: a hat\n:empty key\n",
    )
    .await;
    ok(&o);
    let o = strom(
        &[
            "consume",
            "keyed",
            "--from-beginning",
            "--max-messages",
            "3",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=:",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert_eq!(
        stdout(&o),
        "user1:logged in\nuser2:bought: a hat\n:empty key\n"
    );

    // A line without the separator: Kafka's error naming the line; earlier lines still land.
    let o = strom(
        &[
            "produce",
            "keyed",
            "--key-separator",
            ":",
            "--bootstrap-server",
            b,
        ],
        "user3:ok\nno separator here\nuser4:never sent\n",
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: No key separator found on line number 2: 'no separator here'\n"
    );
    let o = strom(
        &[
            "consume",
            "keyed",
            "--partition",
            "0",
            "--offset",
            "3",
            "--max-messages",
            "1",
            "--property",
            "print.key=true",
            "--property",
            "print.offset=true",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert_eq!(stdout(&o), "Offset:3\tuser3\tok\n");
    let o = strom(
        &[
            "consume",
            "keyed",
            "--from-beginning",
            "--timeout-ms",
            "1500",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    ok(&o);
    assert_eq!(stdout(&o).lines().count(), 4, "user4 was never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_broker_is_one_error_line_and_exit_1() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    for args in [
        vec!["topics", "list"],
        vec!["produce", "t"],
        vec!["consume", "t"],
    ] {
        let mut args = args;
        args.extend(["--bootstrap-server", addr.as_str()]);
        let started = std::time::Instant::now();
        let o = strom(&args, "a line\n").await;
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&o),
            format!("error: cannot connect to {addr}: Connection refused\n"),
            "{args:?}"
        );
        assert_eq!(stdout(&o), "");
        assert!(started.elapsed() < Duration::from_secs(30), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_clear_errors() {
    // Usage errors come from clap: exit 2, an `error:` line naming the problem.
    for (args, needle) in [
        (vec!["consume", "t", "--offset", "5"], "--partition"),
        (
            vec![
                "consume",
                "t",
                "--from-beginning",
                "--partition",
                "0",
                "--offset",
                "1",
            ],
            "cannot be used with",
        ),
        (vec!["produce", "t", "--acks", "2"], "not one of 0, 1, all"),
        (
            vec!["produce", "t", "--compression", "brotli"],
            "not one of none, gzip",
        ),
        (
            vec!["topics", "create", "t", "--partitions", "0"],
            "--partitions",
        ),
        (
            vec!["topics", "create", "t", "--config", "novalue"],
            "expected KEY=VALUE",
        ),
        (vec!["produce"], "<TOPIC>"),
    ] {
        let o = strom(&args, "").await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // Errors found after parsing: exit 1, one line.
    let o = strom(&["consume", "t", "--property", "print.keys=true"], "").await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: unknown --property `print.keys`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1);
    let o = strom(&["topics", "list", "--bootstrap-server", "nohost"], "").await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: invalid configuration `bootstrap.servers`: `nohost` is not host:port\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("client.properties");
    std::fs::write(&props, "acks=maybe\n").unwrap();
    let o = strom(
        &["produce", "t", "--command-config", props.to_str().unwrap()],
        "",
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: invalid configuration `acks`: `maybe` is not one of 0, 1, all, -1\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_with_a_group_resumes_at_its_committed_offsets() {
    let broker = TestBroker::start_with(&[("group.initial.rebalance.delay.ms", "0")]).await;
    let b = broker.bootstrap_servers();
    let create = [
        "topics",
        "create",
        "grouped",
        "--partitions",
        "2",
        "--bootstrap-server",
        b,
    ];
    ok(&strom(&create, "").await);
    ok(&strom(
        &["produce", "grouped", "--bootstrap-server", b],
        "a\nb\nc\n",
    )
    .await);
    let consume = |max: &'static str| {
        [
            "consume",
            "grouped",
            "--group",
            "cli-group",
            "--from-beginning",
            "--max-messages",
            max,
            "--timeout-ms",
            "20000",
            "--bootstrap-server",
            b,
        ]
    };
    let o = strom(&consume("3"), "").await;
    ok(&o);
    let mut lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["a", "b", "c"]);
    // The first run committed on exit: the second starts after it.
    ok(&strom(&["produce", "grouped", "--bootstrap-server", b], "d\n").await);
    let o = strom(&consume("1"), "").await;
    ok(&o);
    assert_eq!(stdout(&o), "d\n");
    // --group and --partition do not go together.
    let o = strom(
        &[
            "consume",
            "grouped",
            "--group",
            "g",
            "--partition",
            "0",
            "--bootstrap-server",
            b,
        ],
        "",
    )
    .await;
    assert!(!o.status.success());
}
