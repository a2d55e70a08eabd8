//! In-process broker fixtures: a [`TestBroker`] on 127.0.0.1 port 0 with its data in a temp
//! directory, removed when the fixture is dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strom_broker::{Broker, ServerConfig};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A single-node broker running inside the test's tokio runtime.
#[derive(Debug)]
pub struct TestBroker {
    dir: TempDir,
    overrides: BTreeMap<String, String>,
    bootstrap: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), strom_broker::BrokerError>>>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(&[]).await
    }

    /// Starts with extra `server.properties` entries.
    pub async fn start_with(overrides: &[(&str, &str)]) -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut broker = TestBroker {
            dir,
            overrides,
            bootstrap: String::new(),
            stop: None,
            task: None,
        };
        broker.launch().await;
        broker
    }

    fn config(&self) -> ServerConfig {
        let mut props = BTreeMap::new();
        props.insert(
            "listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0".to_string(),
        );
        props.insert(
            "log.dirs".to_string(),
            self.data_dir().display().to_string(),
        );
        props.extend(self.overrides.clone());
        ServerConfig::from_props(props).expect("valid test config")
    }

    async fn launch(&mut self) {
        let broker = Broker::start(self.config()).await.expect("broker starts");
        self.bootstrap = broker.bootstrap_servers();
        let (tx, rx) = oneshot::channel();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(broker.run(async {
            let _ = rx.await;
        })));
    }

    /// `host:port` to give clients.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The directory of one partition's log.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    /// Clean shutdown (flush, checkpoints, clean-shutdown marker), then start again on the same
    /// data directory. The port changes.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        self.launch().await;
    }

    /// Stops the broker without any shutdown work, like a crash of the process: in-flight
    /// tasks are aborted, nothing is flushed and no clean-shutdown marker is written. (Data
    /// already written reached the OS page cache, as with `kill -9`.)
    pub async fn crash_and_restart(&mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        // Give aborted connection tasks a moment to drop their handles.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        self.launch().await;
    }

    /// Clean shutdown; the data directory stays until the fixture is dropped.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("broker task").expect("clean shutdown");
        }
    }
}

/// A bare protocol connection for tests that need exact requests (or exact garbage).
#[derive(Debug)]
pub struct RawConnection {
    stream: tokio::net::TcpStream,
    correlation_id: i32,
}

impl RawConnection {
    pub async fn connect(bootstrap: &str) -> std::io::Result<RawConnection> {
        let stream = tokio::net::TcpStream::connect(bootstrap).await?;
        stream.set_nodelay(true)?;
        Ok(RawConnection {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends one request and reads its response.
    pub async fn call<Req, Resp>(
        &mut self,
        api_key: strom_protocol::messages::ApiKey,
        version: i16,
        request: &Req,
    ) -> std::io::Result<Resp>
    where
        Req: strom_protocol::kafka_protocol::protocol::Encodable,
        Resp: strom_protocol::kafka_protocol::protocol::Decodable,
    {
        self.send(api_key, version, request).await?;
        let frame = self.read_frame().await?;
        let (_, body) = strom_protocol::envelope::decode_response::<Resp>(api_key, version, frame)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(body)
    }

    /// Sends one request without waiting for a response.
    pub async fn send<Req>(
        &mut self,
        api_key: strom_protocol::messages::ApiKey,
        version: i16,
        request: &Req,
    ) -> std::io::Result<()>
    where
        Req: strom_protocol::kafka_protocol::protocol::Encodable,
    {
        use tokio::io::AsyncWriteExt;
        self.correlation_id += 1;
        let bytes = strom_protocol::envelope::encode_request(
            api_key,
            version,
            self.correlation_id,
            Some("strom-test"),
            request,
        )
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        self.stream.write_all(&bytes).await
    }

    /// Writes raw bytes.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await
    }

    /// Reads one response frame (without its length prefix).
    pub async fn read_frame(&mut self) -> std::io::Result<bytes::Bytes> {
        use tokio::io::AsyncReadExt;
        let len = self.stream.read_i32().await?;
        let mut buf =
            vec![0u8; usize::try_from(len).map_err(|_| std::io::Error::other("negative length"))?];
        self.stream.read_exact(&mut buf).await?;
        Ok(bytes::Bytes::from(buf))
    }

    /// True once the broker has closed the connection (reads EOF or a reset within the timeout).
    pub async fn is_closed_by_peer(&mut self, within: std::time::Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        match tokio::time::timeout(within, self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }
}

/// Record batches and small values for tests that speak the protocol directly.
pub mod scripted;

pub mod records {
    use bytes::{Bytes, BytesMut};
    use strom_protocol::StrBytes;
    use strom_protocol::kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    /// Milliseconds since the Unix epoch.
    pub fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    pub fn str_bytes(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_string())
    }

    /// One v2 batch as a non-idempotent producer sends it: keys `k0, k1, ...`, the given values,
    /// every record stamped `timestamp` (CreateTime).
    pub fn batch_at(values: &[&[u8]], compression: Compression, timestamp: i64) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset - sequence is constant;
                // this also makes the base sequence -1 (no producer id).
                sequence: i as i32 - 1,
                timestamp,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::copy_from_slice(v)),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encodable test batch");
        buf.freeze()
    }

    /// A batch of an idempotent producer: `producer_id`, `epoch`, and sequences from
    /// `base_sequence`.
    pub fn idempotent_batch(
        values: &[&[u8]],
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
    ) -> Bytes {
        producer_batch(values, producer_id, epoch, base_sequence, false)
    }

    /// A batch of a transactional producer (the transactional attribute set).
    pub fn transactional_batch(
        values: &[&[u8]],
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
    ) -> Bytes {
        producer_batch(values, producer_id, epoch, base_sequence, true)
    }

    fn producer_batch(
        values: &[&[u8]],
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        transactional: bool,
    ) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: base_sequence.wrapping_add(i as i32),
                timestamp: now_ms(),
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::copy_from_slice(v)),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encodable test batch");
        buf.freeze()
    }

    /// [`batch_at`] stamped now.
    pub fn batch(values: &[&[u8]], compression: Compression) -> Bytes {
        batch_at(values, compression, now_ms())
    }

    /// `(offset, value)` of every record in fetched batches.
    pub fn values_of(records: &Bytes) -> Vec<(i64, Bytes)> {
        let mut buf = records.clone();
        RecordBatchDecoder::decode_all(&mut buf)
            .expect("decodable batches")
            .into_iter()
            .flat_map(|set| set.records)
            .map(|r| (r.offset, r.value.unwrap_or_default()))
            .collect()
    }
}
