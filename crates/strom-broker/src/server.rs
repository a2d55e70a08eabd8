//! Broker lifecycle: start-up, the accept loops, background tasks and graceful shutdown.
//!
//! ```text
//! start:  meta.properties (format on first start) -> controller (replay metadata log)
//!         -> log manager (open/recover logs) -> bind listeners -> register broker
//!         -> apply image (create hosted partitions)
//! run:    accept loop per listener (bounded by max.connections) -> one task per connection
//!         metadata watcher, flush scheduler, checkpoint scheduler
//! stop:   stop accepting -> connections finish their in-flight request -> flush logs,
//!         write checkpoints and the clean-shutdown marker
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::config::BrokerConfigView;
use strom_metadata::records::{Endpoint, RegisterBrokerRecord};
use strom_metadata::{Controller, ControllerConfig, MetadataImage};
use strom_storage::meta_properties::{self, MetaProperties};
use strom_storage::{CleanerConfig, LogCleaner, LogManager, LogManagerConfig};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::config::{Listener, ServerConfig};
use crate::connection;
use crate::replica_manager::{PartitionSettings, ReplicaManager};

/// How long shutdown waits for connections to finish their in-flight requests.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] strom_storage::StorageError),
    #[error("metadata: {0}")]
    Metadata(#[from] strom_metadata::MetadataError),
    #[error("cannot bind listener {listener}: {source}")]
    Bind {
        listener: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Startup(String),
}

/// State shared by every connection and background task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) cluster_id: String,
    pub(crate) node_id: i32,
    pub(crate) controller: Controller,
    pub(crate) replicas: ReplicaManager,
    /// Broker-level config values from `server.properties` (and strom's defaults); the dynamic
    /// ones live in the metadata image, see [`Shared::broker_view`].
    pub(crate) static_view: BrokerConfigView,
    pub(crate) groups: crate::groups::GroupCoordinator,
    pub(crate) txns: crate::txn::TxnCoordinator,
    pub(crate) producer_ids: crate::producer_ids::ProducerIds,
    /// Advertised listeners with the ports actually bound (port 0 resolved).
    pub(crate) advertised: Vec<Listener>,
}

impl Shared {
    /// Applies the controller's current image to the hosted partitions. Handlers call this after
    /// a metadata change so that a client sees its own change on its next request.
    pub(crate) fn sync_metadata(&self) {
        self.apply(&self.controller.image());
    }

    /// Brings hosted partitions and coordinator shards in line with `image`.
    pub(crate) fn apply(&self, image: &MetadataImage) {
        self.replicas
            .apply_image(image, &self.broker_view_of(image));
        self.groups.sync(image, &self.replicas);
        self.txns.sync(&self.replicas);
    }

    /// Static and dynamic broker config values, for config resolution and DescribeConfigs.
    pub(crate) fn broker_view_of(&self, image: &MetadataImage) -> BrokerConfigView {
        strom_metadata::config::broker_config_view(
            image,
            self.node_id,
            self.static_view.static_props.clone(),
        )
    }

    pub(crate) fn broker_view(&self) -> BrokerConfigView {
        self.broker_view_of(&self.controller.image())
    }
}

/// A started broker: storage and metadata open, listeners bound, not yet accepting.
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
    listeners: Vec<(Listener, TcpListener)>,
    /// Compacts `compact` topics in the background; stopped before the logs are closed.
    cleaner: Option<LogCleaner>,
}

impl Broker {
    pub async fn start(config: ServerConfig) -> Result<Broker, BrokerError> {
        for key in &config.unknown_keys {
            warn!(key, "unknown configuration key; ignored");
        }
        let cluster_id = format_or_check_dirs(&config)?;
        info!(node_id = config.node_id, %cluster_id, "starting strom broker");

        let controller = Controller::open(ControllerConfig {
            node_id: config.node_id,
            metadata_log_dir: config.metadata_log_dir.clone(),
            num_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
        })
        .await?;

        let broker_view = config.broker_view();
        let image = controller.image();
        let log_dirs = config.log_dirs.clone();
        let view = broker_view.clone();
        let logs = tokio::task::spawn_blocking(move || {
            LogManager::open(LogManagerConfig { log_dirs }, &|tp| {
                let overrides = image
                    .configs(
                        strom_metadata::records::ConfigResourceType::Topic,
                        &tp.topic,
                    )
                    .cloned()
                    .unwrap_or_default();
                PartitionSettings::resolve(&overrides, &view).log_config
            })
        })
        .await
        .map_err(|e| BrokerError::Startup(format!("log recovery task failed: {e}")))??;
        if !logs.had_clean_shutdown() && !logs.logs().is_empty() {
            info!("previous run did not shut down cleanly; logs were recovered");
        }

        let mut listeners = Vec::new();
        let mut advertised = Vec::new();
        for listener in &config.listeners {
            let addr = listener.bind_addr()?;
            let socket = TcpListener::bind(addr)
                .await
                .map_err(|source| BrokerError::Bind {
                    listener: listener.to_string(),
                    source,
                })?;
            let bound = socket.local_addr().map_err(|source| BrokerError::Bind {
                listener: listener.to_string(),
                source,
            })?;
            info!(listener = %listener, %bound, "listening");
            if let Some(adv) = config
                .advertised_listeners
                .iter()
                .find(|a| a.name == listener.name)
            {
                let mut adv = adv.clone();
                if adv.port == 0 {
                    adv.port = bound.port();
                }
                if adv.host.is_empty() {
                    adv.host = advertised_host(&bound);
                }
                advertised.push(adv);
            }
            listeners.push((listener.clone(), socket));
        }

        controller
            .register_broker(RegisterBrokerRecord {
                broker_id: config.node_id,
                incarnation_id: Uuid::new_v4(),
                listeners: advertised
                    .iter()
                    .map(|l| Endpoint {
                        name: l.name.clone(),
                        host: l.host.clone(),
                        port: l.port,
                        security_protocol: l.security_protocol.clone(),
                    })
                    .collect(),
                rack: config.broker_rack.clone(),
                fenced: false,
            })
            .await
            .map_err(|e| BrokerError::Startup(format!("broker registration failed: {e}")))?;

        let groups = crate::groups::GroupCoordinator::new(&config);
        let txns = crate::txn::TxnCoordinator::new(&config).map_err(BrokerError::Startup)?;
        let shared = Arc::new(Shared {
            groups,
            txns,
            node_id: config.node_id,
            replicas: ReplicaManager::new(config.node_id, Arc::new(logs)),
            config,
            cluster_id,
            controller,
            static_view: broker_view,
            producer_ids: Default::default(),
            advertised,
        });
        shared.sync_metadata();
        let cleaner = cleaner_config(&shared.config)
            .map(|config| LogCleaner::start(shared.replicas.log_manager().clone(), config));
        Ok(Broker {
            shared,
            listeners,
            cleaner,
        })
    }

    /// Address of the first listener, as bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners[0]
            .1
            .local_addr()
            .expect("bound listener has an address")
    }

    /// `host:port` of the first advertised listener, for clients.
    pub fn bootstrap_servers(&self) -> String {
        let l = &self.shared.advertised[0];
        format!("{}:{}", l.host, l.port)
    }

    pub fn cluster_id(&self) -> &str {
        &self.shared.cluster_id
    }

    /// Serves until `shutdown` completes, then shuts down cleanly.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
        let token = CancellationToken::new();
        let mut background = JoinSet::new();
        let connections = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let limit = Arc::new(Semaphore::new(self.shared.config.max_connections));

        for (listener, socket) in self.listeners {
            background.spawn(accept_loop(
                listener,
                socket,
                self.shared.clone(),
                limit.clone(),
                connections.clone(),
                token.clone(),
            ));
        }
        background.spawn(watch_metadata(self.shared.clone(), token.clone()));
        background.spawn(flush_scheduler(self.shared.clone(), token.clone()));
        background.spawn(checkpoint_scheduler(self.shared.clone(), token.clone()));
        background.spawn(retention_scheduler(self.shared.clone(), token.clone()));
        background.spawn(producer_expiry_scheduler(
            self.shared.clone(),
            token.clone(),
        ));
        if let Some(queue) = self.shared.txns.take_marker_queue() {
            let (shared, token) = (self.shared.clone(), token.clone());
            background.spawn(async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = crate::txn::run_markers(shared, queue) => {}
                }
            });
        }

        shutdown.await;
        info!("shutting down: no new connections, finishing in-flight requests");
        token.cancel();
        self.shared.groups.shutdown();
        self.shared.txns.shutdown();
        while background.join_next().await.is_some() {}
        let mut connections = std::mem::take(&mut *connections.lock().await);
        let drained = tokio::time::timeout(SHUTDOWN_PATIENCE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("connections did not finish within {SHUTDOWN_PATIENCE:?}; closing them");
            connections.abort_all();
        }

        let logs = self.shared.replicas.log_manager().clone();
        let cleaner = self.cleaner.take();
        tokio::task::spawn_blocking(move || {
            if let Some(mut cleaner) = cleaner {
                cleaner.shutdown();
            }
            logs.shutdown()
        })
        .await
        .map_err(|e| BrokerError::Startup(format!("shutdown task failed: {e}")))??;
        info!("shutdown complete");
        Ok(())
    }
}

async fn accept_loop(
    listener: Listener,
    socket: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    connections: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    token: CancellationToken,
) {
    loop {
        // Wait for a free connection slot before accepting: at max.connections new
        // connections queue in the kernel's backlog, as with Kafka.
        let permit = tokio::select! {
            _ = token.cancelled() => return,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = token.cancelled() => return,
            a = socket.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let token = token.clone();
                let mut set = connections.lock().await;
                // Reap finished connection tasks so the set does not grow without bound.
                while set.try_join_next().is_some() {}
                set.spawn(async move {
                    connection::serve(shared, stream, peer, token).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                warn!(listener = %listener, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Applies every new metadata image to the hosted partitions.
async fn watch_metadata(shared: Arc<Shared>, token: CancellationToken) {
    let mut images = shared.controller.subscribe();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let image = images.borrow_and_update().clone();
        let shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.apply(&image)).await;
    }
}

/// Fsyncs logs whose `flush.ms` has passed (Kafka's `log.flush.scheduler.interval.ms`).
async fn flush_scheduler(shared: Arc<Shared>, token: CancellationToken) {
    let interval = shared.config.log_flush_scheduler_interval_ms;
    if interval <= 0 || interval >= i64::from(u32::MAX) {
        return;
    }
    let logs = shared.replicas.log_manager().clone();
    every(interval, token, move || {
        let now = crate::now_ms();
        for log in logs.logs() {
            let flush_ms = log.config().flush_ms;
            if flush_ms < i64::MAX
                && now - log.last_flush_ms() >= flush_ms
                && let Err(e) = log.flush()
            {
                error!(tp = %log.topic_partition(), error = %e, "flush failed");
            }
        }
    })
    .await;
}

/// Writes the recovery-point and log-start-offset checkpoints periodically.
async fn checkpoint_scheduler(shared: Arc<Shared>, token: CancellationToken) {
    let interval = shared
        .config
        .log_flush_offset_checkpoint_interval_ms
        .max(1000);
    let logs = shared.replicas.log_manager().clone();
    every(interval, token, move || {
        if let Err(e) = logs.checkpoint() {
            error!(error = %e, "writing checkpoints failed");
        }
    })
    .await;
}

/// Runs `work` on a blocking thread every `interval_ms` until shutdown.
async fn every(
    interval_ms: i64,
    token: CancellationToken,
    work: impl Fn() + Send + Sync + Clone + 'static,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(1) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _ = tokio::task::spawn_blocking(work.clone()).await;
    }
}

/// Deletes segments past `retention.ms` / `retention.bytes` / the log start offset every
/// `log.retention.check.interval.ms`, and removes `.deleted` files after `file.delete.delay.ms`.
async fn retention_scheduler(shared: Arc<Shared>, token: CancellationToken) {
    let interval = shared
        .config
        .number("log.retention.check.interval.ms", 300_000);
    let logs = shared.replicas.log_manager().clone();
    every(interval, token, move || {
        let now = crate::now_ms();
        for deleted in logs.enforce_retention(now) {
            info!(?deleted, "retention deleted segments");
        }
        logs.delete_pending_files(now);
    })
    .await;
}

/// Forgets idempotent producers idle for `producer.id.expiration.ms`.
async fn producer_expiry_scheduler(shared: Arc<Shared>, token: CancellationToken) {
    let interval = shared
        .config
        .number("producer.id.expiration.check.interval.ms", 600_000);
    let logs = shared.replicas.log_manager().clone();
    every(interval, token, move || {
        logs.remove_expired_producers(crate::now_ms());
    })
    .await;
}

/// The cleaner settings, `None` when `log.cleaner.enable=false`.
fn cleaner_config(config: &ServerConfig) -> Option<CleanerConfig> {
    let defaults = CleanerConfig::default();
    (config.value("log.cleaner.enable").as_deref() != Some("false")).then(|| CleanerConfig {
        enable: true,
        threads: config
            .number("log.cleaner.threads", defaults.threads as i64)
            .max(1) as usize,
        dedupe_buffer_size: config
            .number(
                "log.cleaner.dedupe.buffer.size",
                defaults.dedupe_buffer_size as i64,
            )
            .max(1) as u64,
        io_buffer_size: config
            .number("log.cleaner.io.buffer.size", defaults.io_buffer_size as i64)
            .max(1) as usize,
        backoff_ms: config
            .number("log.cleaner.backoff.ms", defaults.backoff_ms as i64)
            .max(1) as u64,
    })
}

/// The host to advertise for a listener bound to every interface.
fn advertised_host(bound: &SocketAddr) -> String {
    if !bound.ip().is_unspecified() {
        return bound.ip().to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Kafka cluster ids are 22-character URL-safe base64 encodings of a random UUID.
fn new_cluster_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

/// Reads `meta.properties` of every directory, writing it where missing (single-node mode
/// formats itself on first start, as `kafka-storage format` would). All directories must agree
/// on the cluster id and carry this node's id.
fn format_or_check_dirs(config: &ServerConfig) -> Result<String, BrokerError> {
    let mut dirs: Vec<&Path> = config.log_dirs.iter().map(|p| p.as_path()).collect();
    if !dirs.contains(&config.metadata_log_dir.as_path()) {
        dirs.push(config.metadata_log_dir.as_path());
    }
    let mut cluster_id: Option<String> = None;
    let mut missing = Vec::new();
    for dir in &dirs {
        std::fs::create_dir_all(dir).map_err(|e| {
            BrokerError::Startup(format!("cannot create directory {}: {e}", dir.display()))
        })?;
        match meta_properties::read(dir)? {
            Some(meta) => {
                if meta.node_id != config.node_id {
                    return Err(BrokerError::Startup(format!(
                        "{} belongs to node.id {}, but this node is configured with node.id {}",
                        dir.display(),
                        meta.node_id,
                        config.node_id
                    )));
                }
                match &cluster_id {
                    Some(id) if *id != meta.cluster_id => {
                        return Err(BrokerError::Startup(format!(
                            "{} belongs to cluster {}, other directories to cluster {id}",
                            dir.display(),
                            meta.cluster_id
                        )));
                    }
                    _ => cluster_id = Some(meta.cluster_id),
                }
            }
            None => missing.push(*dir),
        }
    }
    let cluster_id = cluster_id.unwrap_or_else(new_cluster_id);
    for dir in missing {
        info!(dir = %dir.display(), %cluster_id, "formatting directory");
        meta_properties::write(
            dir,
            &MetaProperties {
                version: 1,
                cluster_id: cluster_id.clone(),
                node_id: config.node_id,
                directory_id: Some(new_cluster_id()),
            },
        )?;
    }
    Ok(cluster_id)
}
