//! `strom perf-test` and `strom verifiable-producer|consumer`, run as the built binary
//! against an in-process broker: Kafka's output lines and JSON events, and error paths.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use strom_test_support::TestBroker;

mod common;
use common::{ok, stderr, stdout};

async fn strom(args: &[&str]) -> Output {
    common::run(args, None).await
}

/// Fails with exit status 1 and exactly one `error:` line containing `needle`.
fn fails_with(o: &Output, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(needle), "{err}");
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_perf_tests_print_kafkas_summaries() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    let o = strom(&[
        "perf-test",
        "producer",
        "--topic",
        "perf",
        "--num-records",
        "3000",
        "--record-size",
        "100",
        "--throughput",
        "-1",
        "--producer-props",
        "acks=1",
        "linger.ms=2",
        "--bootstrap-server",
        b,
    ])
    .await;
    ok(&o);
    let out = stdout(&o);
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("3000 records sent, "), "{out}");
    for part in [
        " records/sec (",
        " MB/sec), ",
        " ms avg latency, ",
        " ms max latency, ",
        " ms 50th, ",
        " ms 95th, ",
        " ms 99th, ",
        " ms 99.9th.",
    ] {
        assert!(last.contains(part), "{part} missing in {last}");
    }

    // JSON, the default idempotent producer, and a payload file.
    let dir = tempfile::tempdir().unwrap();
    let payloads = dir.path().join("payloads.txt");
    std::fs::write(&payloads, "alpha\nbeta\ngamma\n").unwrap();
    let o = strom(&[
        "perf-test",
        "producer",
        "--topic",
        "perf",
        "--num-records",
        "1000",
        "--payload-file",
        payloads.to_str().unwrap(),
        "--throughput",
        "-1",
        "--output",
        "json",
        "--bootstrap-server",
        b,
    ])
    .await;
    ok(&o);
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 1, "{}", stdout(&o));
    assert_eq!(lines[0]["records"], 1000);
    assert_eq!(lines[0]["errors"], 0);
    assert!(lines[0]["p99_ms"].is_u64());

    let o = strom(&[
        "perf-test",
        "consumer",
        "--topic",
        "perf",
        "--messages",
        "4000",
        "--bootstrap-server",
        b,
    ])
    .await;
    ok(&o);
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(
            "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
             rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
        )
    );
    let fields: Vec<&str> = lines.next().unwrap_or_default().split(", ").collect();
    assert_eq!(fields.len(), 10, "{out}");
    assert_eq!(fields[4], "4000");
    // 3000 x 100 bytes and 1000 payloads of 4 or 5 bytes.
    let mb: f64 = fields[2].parse().unwrap();
    assert!((0.29..0.30).contains(&mb), "{mb}");

    let o = strom(&[
        "perf-test",
        "consumer",
        "--topic",
        "perf",
        "--messages",
        "10",
        "--output",
        "json",
        "--bootstrap-server",
        b,
    ])
    .await;
    ok(&o);
    let lines = json_lines(&o);
    assert!(lines[0]["messages"].as_u64().unwrap() >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_test_throughput_limit_holds_the_rate() {
    let broker = TestBroker::start().await;
    let started = Instant::now();
    let o = strom(&[
        "perf-test",
        "producer",
        "--topic",
        "slow",
        "--num-records",
        "30",
        "--record-size",
        "10",
        "--throughput",
        "20",
        "--bootstrap-server",
        broker.bootstrap_servers(),
    ])
    .await;
    ok(&o);
    // 30 records at 20/s: the last is sent after 1.5 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert!(stdout(&o).starts_with("30 records sent"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_test_errors_are_one_line() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    let o = strom(&[
        "perf-test",
        "producer",
        "--topic",
        "t",
        "--num-records",
        "1",
        "--throughput",
        "-1",
        "--bootstrap-server",
        b,
    ])
    .await;
    fails_with(&o, "either --record-size or --payload-file");
    let o = strom(&[
        "perf-test",
        "producer",
        "--topic",
        "t",
        "--num-records",
        "1",
        "--record-size",
        "1",
        "--throughput",
        "-1",
        "--producer-props",
        "enable.idempotence=true",
        "acks=1",
        "--bootstrap-server",
        b,
    ])
    .await;
    fails_with(
        &o,
        "Must set acks to all in order to use the idempotent producer",
    );
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let o = strom(&[
        "perf-test",
        "consumer",
        "--topic",
        "t",
        "--messages",
        "1",
        "--bootstrap-server",
        &free,
    ])
    .await;
    fails_with(&o, "cannot connect to");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifiable_producer_and_consumer_print_kafkas_events() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap_servers();
    let o = strom(&[
        "verifiable-producer",
        "--topic",
        "verify",
        "--max-messages",
        "10",
        "--value-prefix",
        "7",
        "--repeating-keys",
        "3",
        "--message-create-time",
        "1600000000000",
        "--bootstrap-server",
        b,
    ])
    .await;
    ok(&o);
    let events = json_lines(&o);
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"startup_complete"));
    assert_eq!(
        &names[names.len() - 2..],
        ["shutdown_complete", "tool_data"]
    );
    let sent: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .collect();
    assert_eq!(sent.len(), 10);
    for (i, e) in sent.iter().enumerate() {
        assert_eq!(e["value"], format!("7.{i}"));
        assert_eq!(e["key"], (i % 3).to_string());
        assert_eq!(e["topic"], "verify");
        assert!(e["offset"].as_i64().unwrap() >= 0);
        assert!(e["timestamp"].is_i64());
    }
    let data = events.last().unwrap();
    assert_eq!(
        (data["sent"].as_u64(), data["acked"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(data["target_throughput"], -1.0);

    let o = strom(&[
        "verifiable-consumer",
        "--topic",
        "verify",
        "--group-id",
        "g",
        "--max-messages",
        "10",
        "--verbose",
        "--bootstrap-server",
        b,
    ])
    .await;
    ok(&o);
    let events = json_lines(&o);
    assert_eq!(events[0]["name"], "startup_complete");
    assert_eq!(events[1]["name"], "partitions_assigned");
    let consumed: u64 = events
        .iter()
        .filter(|e| e["name"] == "records_consumed")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(consumed, 10);
    let values: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "record_data")
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(values.len(), 10);
    assert!(values.contains(&"7.0") && values.contains(&"7.9"));
    assert_eq!(events.last().unwrap()["name"], "shutdown_complete");
    // As a group member it commits after every poll and reports it.
    let mut committed: std::collections::BTreeMap<i64, i64> = Default::default();
    for e in events.iter().filter(|e| e["name"] == "offsets_committed") {
        assert_eq!(e["success"], true);
        for o in e["offsets"].as_array().unwrap() {
            committed.insert(
                o["partition"].as_i64().unwrap(),
                o["offset"].as_i64().unwrap(),
            );
        }
    }
    assert_eq!(committed.values().sum::<i64>(), 10, "{committed:?}");
    // The group's commits hold: a second run finds nothing new.
    let o = strom(&[
        "perf-test",
        "consumer",
        "--topic",
        "verify",
        "--group",
        "g",
        "--messages",
        "1",
        "--timeout",
        "1500",
        "--bootstrap-server",
        b,
    ])
    .await;
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("Exiting before consuming"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifiable_producer_errors_are_one_line() {
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let o = strom(&[
        "verifiable-producer",
        "--topic",
        "t",
        "--max-messages",
        "1",
        "--bootstrap-server",
        &free,
    ])
    .await;
    fails_with(&o, "cannot connect to");
    let broker = TestBroker::start().await;
    let o = strom(&[
        "verifiable-producer",
        "--topic",
        "t",
        "--acks",
        "2",
        "--bootstrap-server",
        broker.bootstrap_servers(),
    ])
    .await;
    fails_with(&o, "invalid configuration `acks`");
}
