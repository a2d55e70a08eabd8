//! The idempotent producer (on by default): retries are written once, in order, across lost
//! responses and broker crashes; `buffer.memory` back-pressure; interceptors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, ClientError, Consumer, ConsumerInterceptor, ConsumerRecord, NewTopic,
    Offset, Producer, ProducerInterceptor, ProducerRecord, RecordMetadata, TopicPartition,
};
use strom_test_support::TestBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PRODUCE: i16 = 0;
const INIT_PRODUCER_ID: i16 = 22;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(name).with_partitions(partitions)],
            Default::default(),
        )
        .await
        .unwrap();
    results[0].result.as_ref().expect("topic created");
}

/// Reads partition 0 of `topic` from the start to its end offset.
async fn read_all(bootstrap: &str, topic: &str) -> Vec<ConsumerRecord> {
    let tp = TopicPartition::new(topic, 0);
    let mut consumer = Consumer::connect(ClientConfig::new(bootstrap))
        .await
        .unwrap();
    consumer.assign([(tp.clone(), Offset::Earliest)]);
    let end = consumer
        .end_offsets(std::slice::from_ref(&tp))
        .await
        .unwrap()[&tp];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while (out.len() as i64) < end {
        assert!(
            tokio::time::Instant::now() < deadline,
            "read {} of {end}",
            out.len()
        );
        out.extend(consumer.poll(Duration::from_millis(500)).await.unwrap());
    }
    out
}

fn values(records: &[ConsumerRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// A TCP proxy in front of the broker that, once per listed API key, forwards a request and
/// then cuts the connection instead of returning the broker's response: the broker did the
/// work, the client never hears of it.
struct LossyProxy {
    drop_next: Mutex<Vec<i16>>,
    dropped: AtomicUsize,
    /// Signalled after each lost response.
    lost: tokio::sync::Notify,
}

impl LossyProxy {
    async fn start(listener: TcpListener, broker: String, drop_next: Vec<i16>) -> Arc<Self> {
        let proxy = Arc::new(LossyProxy {
            drop_next: Mutex::new(drop_next),
            dropped: AtomicUsize::new(0),
            lost: tokio::sync::Notify::new(),
        });
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(&broker).await else {
                    continue;
                };
                tokio::spawn(p.clone().serve(client, upstream));
            }
        });
        proxy
    }

    async fn serve(self: Arc<Self>, client: TcpStream, upstream: TcpStream) {
        let (mut client_r, mut client_w) = client.into_split();
        let (mut up_r, mut up_w) = upstream.into_split();
        let doomed: Arc<Mutex<Option<i32>>> = Arc::default();
        let d = doomed.clone();
        let proxy = self.clone();
        let requests = tokio::spawn(async move {
            while let Some(frame) = read_frame(&mut client_r).await {
                let api = i16::from_be_bytes([frame[4], frame[5]]);
                let cid = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                {
                    let mut list = proxy.drop_next.lock().unwrap();
                    if let Some(at) = list.iter().position(|&k| k == api) {
                        list.remove(at);
                        *d.lock().unwrap() = Some(cid);
                    }
                }
                if up_w.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        while let Some(frame) = read_frame(&mut up_r).await {
            let cid = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            if *doomed.lock().unwrap() == Some(cid) {
                self.dropped.fetch_add(1, Ordering::SeqCst);
                self.lost.notify_one();
                break;
            }
            if client_w.write_all(&frame).await.is_err() {
                break;
            }
        }
        requests.abort();
    }
}

/// One length-prefixed frame, prefix included.
async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.ok()?;
    let n = usize::try_from(i32::from_be_bytes(len)).ok()?;
    let mut frame = vec![0u8; 4 + n];
    frame[..4].copy_from_slice(&len);
    r.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame)
}

/// A broker that clients reach only through a [`LossyProxy`].
async fn broker_behind_proxy(drop_next: Vec<i16>) -> (TestBroker, Arc<LossyProxy>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap().to_string();
    let broker_port = free_port();
    let listeners = format!("PLAINTEXT://127.0.0.1:{broker_port}");
    let advertised = format!("PLAINTEXT://{proxy_addr}");
    let broker = TestBroker::start_with(&[
        ("listeners", listeners.as_str()),
        ("advertised.listeners", advertised.as_str()),
    ])
    .await;
    let proxy = LossyProxy::start(listener, format!("127.0.0.1:{broker_port}"), drop_next).await;
    (broker, proxy, proxy_addr)
}

/// Sends `n` records one at a time to partition 0 and waits for each.
async fn send_each(producer: &Producer, topic: &str, n: usize) -> Vec<RecordMetadata> {
    let mut out = Vec::new();
    for i in 0..n {
        let record = ProducerRecord::new(topic, format!("{i}")).with_partition(0);
        out.push(producer.send(record).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_produce_response_is_retried_without_a_duplicate() {
    // The first InitProducerId and the first Produce response are lost: the producer retries
    // both, and the broker recognises the resent batch by its sequence.
    let (_broker, proxy, addr) = broker_behind_proxy(vec![INIT_PRODUCER_ID, PRODUCE]).await;
    create_topic(&addr, "idem", 1).await;
    let config = ClientConfig::new(&addr)
        .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(100));
    let producer = Producer::connect(config).await.unwrap();
    let acked = send_each(&producer, "idem", 5).await;
    producer.close().await.unwrap();
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 2);
    let offsets: Vec<i64> = acked.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    let got = read_all(&addr, "idem").await;
    assert_eq!(values(&got), ["0", "1", "2", "3", "4"]);

    // The broker knows the producer: five records, last sequence 4.
    let admin = Admin::connect(ClientConfig::new(&addr)).await.unwrap();
    let producers = admin
        .describe_producers(&[TopicPartition::new("idem", 0)])
        .await
        .unwrap();
    let states = producers[0].result.as_ref().unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].last_sequence, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_written_before_a_broker_crash_is_not_written_again_by_its_retry() {
    // The broker writes the first batch, its response is lost, and the broker crashes before
    // the retry: the restarted broker rebuilds the producer's sequences from the log and
    // answers the retry as a duplicate.
    let (mut broker, proxy, addr) = broker_behind_proxy(vec![PRODUCE]).await;
    create_topic(&addr, "restart", 1).await;
    let config = ClientConfig::new(&addr)
        .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(200));
    let producer = Producer::connect(config).await.unwrap();
    let sending = {
        let producer = producer.clone();
        tokio::spawn(async move { send_each(&producer, "restart", 5).await })
    };
    proxy.lost.notified().await;
    broker.crash_and_restart().await;
    let acked = sending.await.unwrap();
    producer.close().await.unwrap();
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(acked[1].offset, 1);
    assert_eq!(
        values(&read_all(&addr, "restart").await),
        ["0", "1", "2", "3", "4"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idempotence_the_same_loss_writes_a_duplicate() {
    // The control for the test above: the proxy really makes the retry write twice.
    let (_broker, proxy, addr) = broker_behind_proxy(vec![PRODUCE]).await;
    create_topic(&addr, "dup", 1).await;
    let config = ClientConfig::new(&addr)
        .with_idempotence(false)
        .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(100));
    let producer = Producer::connect(config).await.unwrap();
    send_each(&producer, "dup", 3).await;
    producer.close().await.unwrap();
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(values(&read_all(&addr, "dup").await), ["0", "0", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sent_across_broker_crashes_arrive_exactly_once_in_order() {
    // A fixed port, so the restarted broker is where the client looks for it.
    let listeners = format!("PLAINTEXT://127.0.0.1:{}", free_port());
    let mut broker = TestBroker::start_with(&[("listeners", listeners.as_str())]).await;
    let bootstrap = broker.bootstrap_servers().to_string();
    create_topic(&bootstrap, "crash", 1).await;
    let config = ClientConfig::new(&bootstrap)
        .with_linger(Duration::ZERO)
        .with_batch_size(200)
        .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(200));
    let producer = Producer::connect(config).await.unwrap();

    const N: usize = 3000;
    let mut futures = Vec::new();
    for i in 0..N {
        futures.push(producer.send(ProducerRecord::new("crash", format!("{i}"))));
        // Crash with batches in flight (written or not, answered or not), twice.
        if i == 1000 || i == 2000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            broker.crash_and_restart().await;
        }
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut offsets = Vec::new();
    for (i, f) in futures.into_iter().enumerate() {
        let m = f.await.unwrap_or_else(|e| panic!("record {i} failed: {e}"));
        offsets.push(m.offset);
    }
    producer.close().await.unwrap();
    let got = read_all(&bootstrap, "crash").await;
    let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    assert_eq!(values(&got), expected, "every record once, in send order");
    // Acknowledged offsets are each record's place in the log (-1 only for a duplicate
    // whose original offset the broker no longer had).
    for (i, offset) in offsets.iter().enumerate() {
        assert!(
            *offset == i as i64 || *offset == -1,
            "record {i} at {offset}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_explicit_idempotence_settings_are_refused() {
    let broker = TestBroker::start().await;
    let config = ClientConfig::new(broker.bootstrap_servers())
        .with_idempotence(true)
        .with_acks(strom_client::Acks::Leader);
    let err = Producer::connect(config).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Config { ref key, .. } if key == "acks"),
        "{err}"
    );
    // Without the explicit setting, acks=1 quietly turns idempotence off (Java's rule).
    let config =
        ClientConfig::new(broker.bootstrap_servers()).with_acks(strom_client::Acks::Leader);
    assert!(!config.idempotence());
    Producer::connect(config).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_makes_send_fail_and_queue_wait() {
    let broker = TestBroker::start().await;
    create_topic(broker.bootstrap_servers(), "full", 1).await;
    // Records stay in their batch (long linger, large batches) until flushed.
    let config = ClientConfig::new(broker.bootstrap_servers())
        .with_linger(Duration::from_secs(30))
        .with_batch_size(1 << 20)
        .with_buffer_memory(10_000)
        .with_max_block(Duration::from_millis(300));
    let producer = Producer::connect(config).await.unwrap();
    let value = Bytes::from(vec![b'x'; 1000]);
    let mut accepted = Vec::new();
    let refused = loop {
        let record = ProducerRecord::new("full", value.clone()).with_partition(0);
        let mut f = producer.send(record);
        // A refused record's future is ready at once.
        match tokio::time::timeout(Duration::from_millis(1), &mut f).await {
            Ok(result) => break result.unwrap_err(),
            Err(_) => accepted.push(f),
        }
    };
    assert_eq!(
        accepted.len(),
        9,
        "10,000 bytes hold nine 1,036-byte records"
    );
    assert!(
        matches!(
            refused,
            ClientError::BufferExhausted {
                requested: 1036,
                total: 10_000,
                ..
            }
        ),
        "{refused}"
    );
    assert!(refused.is_retriable());

    // `queue` waits up to max.block.ms, then fails the same way.
    let started = tokio::time::Instant::now();
    let record = ProducerRecord::new("full", value.clone()).with_partition(0);
    let err = producer.queue(record).await.await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(err, ClientError::BufferExhausted { .. }), "{err}");

    // A waiting `queue` gets in as soon as acknowledgements free memory.
    let (admitted_tx, admitted) = tokio::sync::oneshot::channel();
    let waiting = {
        let producer = producer.clone();
        let value = value.clone();
        tokio::spawn(async move {
            let record = ProducerRecord::new("full", value).with_partition(0);
            let delivery = producer.queue(record).await;
            let _ = admitted_tx.send(());
            delivery.await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    producer.flush().await.unwrap();
    for f in accepted {
        f.await.unwrap();
    }
    admitted.await.unwrap();
    producer.flush().await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap().offset, 9);
    producer.close().await.unwrap();
}

#[derive(Default)]
struct Stamp {
    acked: AtomicUsize,
    errors: Mutex<Vec<(i32, String)>>,
}

impl ProducerInterceptor for Stamp {
    fn on_send(&self, record: ProducerRecord) -> ProducerRecord {
        record.with_header("stamped", Some("yes"))
    }

    fn on_acknowledgement(&self, metadata: &RecordMetadata, error: Option<&ClientError>) {
        match error {
            None => {
                self.acked.fetch_add(1, Ordering::SeqCst);
            }
            Some(e) => self
                .errors
                .lock()
                .unwrap()
                .push((metadata.partition, e.to_string())),
        }
    }
}

struct OddOnly;

impl ConsumerInterceptor for OddOnly {
    fn on_consume(&self, records: Vec<ConsumerRecord>) -> Vec<ConsumerRecord> {
        records.into_iter().filter(|r| r.offset % 2 == 1).collect()
    }

    fn on_commit(&self, _: &BTreeMap<TopicPartition, strom_client::OffsetAndMetadata>) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptors_see_sends_acknowledgements_and_polls() {
    let broker = TestBroker::start().await;
    create_topic(broker.bootstrap_servers(), "seen", 1).await;
    let stamp = Arc::new(Stamp::default());
    let producer = Producer::connect_with_interceptors(
        ClientConfig::new(broker.bootstrap_servers()),
        vec![stamp.clone()],
    )
    .await
    .unwrap();
    for i in 0..6 {
        drop(producer.send(ProducerRecord::new("seen", format!("{i}")).with_partition(0)));
    }
    let bad = producer.send(ProducerRecord::new("seen", "x").with_partition(7));
    assert!(bad.await.is_err());
    producer.close().await.unwrap();
    assert_eq!(stamp.acked.load(Ordering::SeqCst), 6);
    let errors = stamp.errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 7, "the partition the record asked for");

    let tp = TopicPartition::new("seen", 0);
    let mut consumer = Consumer::connect_with_interceptors(
        ClientConfig::new(broker.bootstrap_servers()),
        vec![Arc::new(OddOnly)],
    )
    .await
    .unwrap();
    consumer.assign([(tp, Offset::Earliest)]);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 3 && tokio::time::Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(values(&got), ["1", "3", "5"]);
    assert!(
        got.iter()
            .all(|r| r.headers.iter().any(|h| h.key == "stamped"))
    );
}
