//! What the group and the transaction coordinator hosts share: a state machine hosted per
//! partition of its internal topic ([`Host`]: the lock, the waiting requests, the timer task),
//! following the hosted partitions ([`sync_hosts`]), reading a coordinator partition back
//! record by record (to rebuild a state machine) and encoding emitted records as one batch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::{Bytes, BytesMut};
use strom_coordinator::RequestToken;
use strom_protocol::ErrorCode;
use strom_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::replica_manager::{Partition, ReplicaManager};

/// The producer a batch of coordinator records is written for: TxnOffsetCommit writes its
/// offsets in a transactional batch of the producer, so that its markers settle them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchProducer {
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
}

/// Calls `f` with every record of `partition`, from its log start to its end, in order.
/// Control records (transaction markers) are included: the group coordinator needs them.
pub(crate) fn for_each_record(
    partition: &Partition,
    mut f: impl FnMut(&Record),
) -> Result<(), String> {
    let log = &partition.log;
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let read = log
            .read(offset, 1 << 20, end, true)
            .map_err(|e| e.to_string())?;
        if read.records.is_empty() {
            break;
        }
        let mut buf: Bytes = read.records;
        let mut last = offset;
        for set in RecordBatchDecoder::decode_all(&mut buf).map_err(|e| e.to_string())? {
            for record in &set.records {
                last = last.max(record.offset);
                // The first batch may start before `offset`.
                if record.offset >= offset {
                    f(record);
                }
            }
        }
        offset = last + 1;
    }
    Ok(())
}

/// Encodes `(key, value)` pairs as one uncompressed v2 batch stamped `now_ms`: a plain one,
/// or a transactional one of `producer`.
pub(crate) fn encode_batch(
    records: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    producer: Option<BatchProducer>,
    now_ms: i64,
) -> Result<BytesMut, String> {
    let (producer_id, producer_epoch) =
        producer.map_or((-1, -1), |p| (p.producer_id, p.producer_epoch));
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps one batch while offset - sequence is constant; this also
            // gives the batch no base sequence (coordinator writes are not sequenced).
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(batch)
}

/// The control type of a transaction marker record (0 ABORT, 1 COMMIT), from its key.
pub(crate) fn marker_is_commit(record: &Record) -> Option<bool> {
    let key = record.key.as_deref()?;
    let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    match kind {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// A hosted state machine with deadlines.
pub(crate) trait Timed: Send + Sync + 'static {
    fn next_deadline(&self) -> Option<i64>;
    /// Runs the state machine's timers at `now_ms` and commits what they did.
    fn fire(&self, now_ms: i64);
    /// Notified when a request may have moved the next deadline.
    fn wake(&self) -> &Notify;
    fn stopped(&self) -> &CancellationToken;
}

/// Sleeps until the next deadline (or a wake-up) and fires it, until stopped.
pub(crate) async fn timer_loop<S: Timed>(shard: Arc<S>) {
    loop {
        let deadline = shard.next_deadline();
        let sleep = async {
            match deadline {
                Some(at) => {
                    let wait = (at - crate::now_ms()).max(0) as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shard.stopped().cancelled() => return,
            _ = shard.wake().notified() => continue,
            _ = sleep => shard.fire(crate::now_ms()),
        }
    }
}

/// Starts the timer task of a freshly loaded shard.
pub(crate) fn spawn_timer<S: Timed>(shard: &Arc<S>, what: &str) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(timer_loop(shard.clone()));
        }
        Err(_) => tracing::error!("no runtime for the {what} timer"),
    }
}

/// What differs between the hosted coordinators: their state machine, what an outcome is, and
/// how one is written and answered.
pub(crate) trait Hosted: Send + Sync + Sized + 'static {
    type Machine: Send + 'static;
    type Outcome;
    type Response: Send + 'static;

    fn next_deadline(machine: &Self::Machine) -> Option<i64>;
    fn on_timer(machine: &mut Self::Machine, now_ms: i64) -> Self::Outcome;
    /// Appends the outcome's records to `partition`, then answers its responses with
    /// [`HostState::answer`]. A failed append clears `waiting` (those requests get an error)
    /// and rebuilds the machine from the log: it already applied what was not written.
    fn commit(
        &self,
        partition: &Partition,
        state: &mut HostState<Self::Machine, Self::Response>,
        outcome: Self::Outcome,
    );
}

/// A hosted state machine and the requests waiting for its answers.
#[derive(Debug)]
pub(crate) struct HostState<M, R> {
    pub(crate) machine: M,
    /// Requests waiting for their response, which may come from a later request or a timer.
    pub(crate) waiting: HashMap<RequestToken, oneshot::Sender<R>>,
}

impl<M, R> HostState<M, R> {
    pub(crate) fn answer(&mut self, responses: impl IntoIterator<Item = (RequestToken, R)>) {
        for (token, response) in responses {
            if let Some(waiter) = self.waiting.remove(&token) {
                // The requester may have gone away (connection closed); nothing to do then.
                let _ = waiter.send(response);
            }
        }
    }
}

/// One coordinator state machine hosted for one partition of its internal topic.
///
/// The lock is a `std` mutex held only around the state machine and the (page-cache) append,
/// never across an `.await`.
#[derive(Debug)]
pub(crate) struct Host<H: Hosted> {
    pub(crate) partition: Arc<Partition>,
    pub(crate) kind: H,
    state: Mutex<HostState<H::Machine, H::Response>>,
    /// Wakes the timer task: a request may have moved the next deadline.
    wake: Notify,
    stopped: CancellationToken,
}

impl<H: Hosted> Host<H> {
    pub(crate) fn new(partition: Arc<Partition>, kind: H, machine: H::Machine) -> Self {
        Self {
            partition,
            kind,
            state: Mutex::new(HostState {
                machine,
                waiting: HashMap::new(),
            }),
            wake: Notify::new(),
            stopped: CancellationToken::new(),
        }
    }

    /// Runs a request through the state machine and waits for its response (which may come
    /// from a later request or a timer).
    pub(crate) async fn call(
        &self,
        token: RequestToken,
        f: impl FnOnce(&mut H::Machine) -> H::Outcome,
    ) -> Result<H::Response, ErrorCode> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            state.waiting.insert(token, tx);
            let outcome = f(&mut state.machine);
            self.kind.commit(&self.partition, &mut state, outcome);
        }
        self.wake.notify_one();
        // A dropped sender means the write of this request's records failed.
        rx.await.map_err(|_| ErrorCode::CoordinatorNotAvailable)
    }

    /// Runs something with no waiting request (timers, metadata changes, marker reports).
    pub(crate) fn run(&self, f: impl FnOnce(&mut H::Machine) -> H::Outcome) {
        let mut state = self.lock();
        let outcome = f(&mut state.machine);
        self.kind.commit(&self.partition, &mut state, outcome);
        drop(state);
        self.wake.notify_one();
    }

    /// Read-only access.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&H::Machine) -> T) -> T {
        f(&self.lock().machine)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HostState<H::Machine, H::Response>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn stop(&self) {
        self.stopped.cancel();
    }
}

impl<H: Hosted> Timed for Host<H> {
    fn next_deadline(&self) -> Option<i64> {
        self.read(H::next_deadline)
    }

    fn fire(&self, now_ms: i64) {
        self.run(|m| H::on_timer(m, now_ms));
    }

    fn wake(&self) -> &Notify {
        &self.wake
    }

    fn stopped(&self) -> &CancellationToken {
        &self.stopped
    }
}

/// The hosts of one coordinator kind, by partition of its internal topic.
pub(crate) type Hosts<H> = RwLock<HashMap<i32, Arc<Host<H>>>>;

/// Follows the hosted partitions of `topic`: stops the hosts of partitions no longer here (or
/// re-created), loads hosts for new ones with `load` and starts their timers. Returns the
/// partitions loaded.
pub(crate) fn sync_hosts<H: Hosted>(
    hosts: &Hosts<H>,
    replicas: &ReplicaManager,
    topic: &str,
    mut load: impl FnMut(i32, Arc<Partition>) -> Result<Host<H>, String>,
) -> Vec<i32> {
    let hosted: HashMap<i32, Arc<Partition>> = replicas
        .topics()
        .by_name(topic)
        .map(|t| {
            t.partitions
                .iter()
                .map(|(p, part)| (*p, part.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut hosts = hosts.write().expect("hosts lock");
    hosts.retain(|p, host| {
        let keep = hosted
            .get(p)
            .is_some_and(|part| Arc::ptr_eq(part, &host.partition));
        if !keep {
            host.stop();
        }
        keep
    });
    let mut loaded = Vec::new();
    for (p, partition) in hosted {
        if hosts.contains_key(&p) {
            continue;
        }
        match load(p, partition) {
            Ok(host) => {
                let host = Arc::new(host);
                spawn_timer(&host, topic);
                hosts.insert(p, host);
                loaded.push(p);
            }
            Err(e) => {
                tracing::error!(topic, partition = p, error = %e, "cannot load coordinator state")
            }
        }
    }
    loaded
}

/// The host of partition `partition`, if loaded here.
pub(crate) fn host_at<H: Hosted>(hosts: &Hosts<H>, partition: i32) -> Option<Arc<Host<H>>> {
    hosts.read().expect("hosts lock").get(&partition).cloned()
}

/// Every loaded host, by partition.
pub(crate) fn all_hosts<H: Hosted>(hosts: &Hosts<H>) -> Vec<Arc<Host<H>>> {
    let hosts = hosts.read().expect("hosts lock");
    let mut all: Vec<(i32, Arc<Host<H>>)> = hosts.iter().map(|(p, h)| (*p, h.clone())).collect();
    all.sort_by_key(|(p, _)| *p);
    all.into_iter().map(|(_, h)| h).collect()
}

/// Stops every host's timer (broker shutdown).
pub(crate) fn stop_all<H: Hosted>(hosts: &Hosts<H>) {
    for host in hosts.read().expect("hosts lock").values() {
        host.stop();
    }
}
