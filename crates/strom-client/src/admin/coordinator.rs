//! Finding a group's or a transactional id's coordinator and sending requests to it.
//!
//! Every group request (describe, delete, offsets) must reach the broker that leads the group's
//! `__consumer_offsets` partition, every transaction request the leader of the id's
//! `__transaction_state` partition. The admin client asks FindCoordinator once, caches the
//! answer, and on the three answers that mean "not here / not yet" —
//! NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE (forget the coordinator, look it up again) and
//! COORDINATOR_LOAD_IN_PROGRESS (same coordinator, later) — retries with backoff within
//! `default.api.timeout.ms`, as Kafka's `CoordinatorStrategy` does.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::FindCoordinatorRequest;
use tokio::time::Instant;
use tracing::debug;

use super::Admin;
use crate::cluster::{Cluster, Node};
use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// What a coordinator is looked up for (FindCoordinator's key type and key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CoordinatorKey<'a> {
    Group(&'a str),
    Transaction(&'a str),
}

impl CoordinatorKey<'_> {
    fn key_type(self) -> i8 {
        match self {
            CoordinatorKey::Group(_) => 0,
            CoordinatorKey::Transaction(_) => 1,
        }
    }

    fn id(&self) -> &str {
        match self {
            CoordinatorKey::Group(id) | CoordinatorKey::Transaction(id) => id,
        }
    }

    fn cache_key(&self) -> (i8, String) {
        (self.key_type(), self.id().to_string())
    }
}

/// (key type, key) -> coordinator.
#[derive(Debug, Default)]
pub(crate) struct CoordinatorCache(Mutex<HashMap<(i8, String), Node>>);

impl CoordinatorCache {
    pub(crate) fn get(&self, key: CoordinatorKey<'_>) -> Option<Node> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key.cache_key())
            .cloned()
    }

    pub(crate) fn put(&self, key: CoordinatorKey<'_>, node: Node) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.cache_key(), node);
    }

    pub(crate) fn forget(&self, key: CoordinatorKey<'_>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key.cache_key());
    }
}

/// True for the group error codes after which a request is tried again (maybe elsewhere).
pub(crate) fn is_coordinator_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress
    )
}

/// `Err` (to retry) for a coordinator error code, `Ok` with the item's own result otherwise:
/// the split every per-group answer goes through.
pub(crate) fn split_group_error(code: i16, message: Option<&str>) -> Result<Result<()>> {
    match ErrorCode::try_from_code(code) {
        None => Ok(Ok(())),
        Some(c) if is_coordinator_error(c) => {
            Err(ClientError::kafka_described(c, message.map(str::to_string)))
        }
        Some(c) => Ok(Err(ClientError::kafka_described(
            c,
            message.map(str::to_string),
        ))),
    }
}

impl Admin {
    /// The coordinator of `group`, asked of the cluster (not the cache), with retries.
    pub async fn find_coordinator(&self, group: &str) -> Result<Node> {
        let key = CoordinatorKey::Group(group);
        let node = self
            .cluster
            .retry(&[], || self.lookup_coordinator(key))
            .await?;
        self.coordinators.put(key, node.clone());
        Ok(node)
    }

    /// One FindCoordinator round trip.
    async fn lookup_coordinator(&self, of: CoordinatorKey<'_>) -> Result<Node> {
        lookup_coordinator(&self.cluster, of).await
    }

    /// The cached coordinator of `key`, or a fresh lookup.
    async fn coordinator(&self, key: CoordinatorKey<'_>) -> Result<Node> {
        if let Some(node) = self.coordinators.get(key) {
            return Ok(node);
        }
        let node = self.lookup_coordinator(key).await?;
        self.coordinators.put(key, node.clone());
        Ok(node)
    }

    /// Runs `op` against `group`'s coordinator until it succeeds or fails for good. `op`
    /// returns a coordinator error code as `Err` to have it retried (see
    /// [`split_group_error`]); any other retriable error is retried too, after forgetting
    /// the coordinator when it may have moved.
    pub(crate) async fn with_coordinator<T, F, Fut>(&self, group: &str, op: F) -> Result<T>
    where
        F: FnMut(Arc<Connection>, Node) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.with_coordinator_of(CoordinatorKey::Group(group), op)
            .await
    }

    /// [`with_coordinator`](Self::with_coordinator) for any kind of coordinator.
    pub(crate) async fn with_coordinator_of<T, F, Fut>(
        &self,
        key: CoordinatorKey<'_>,
        mut op: F,
    ) -> Result<T>
    where
        F: FnMut(Arc<Connection>, Node) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let group = key.id();
        let config = self.cluster.config();
        let deadline = Instant::now() + config.default_api_timeout();
        let mut attempt = 0u32;
        loop {
            let result = async {
                let node = self.coordinator(key).await?;
                let conn = self.cluster.connection_to(&node.addr()).await?;
                op(conn, node).await
            }
            .await;
            match result {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && attempt < config.retries() => {
                    // The coordinator stays only when it said it is loading.
                    if e.code() != Some(ErrorCode::CoordinatorLoadInProgress) {
                        self.coordinators.forget(key);
                    }
                    let wait = self.cluster.backoff(attempt);
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    debug!(key = group, error = %e, attempt, "retrying coordinator request");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One FindCoordinator round trip to any broker (batched keys from v4 on); the producer's
/// transactional calls use it too.
pub(crate) async fn lookup_coordinator(cluster: &Cluster, of: CoordinatorKey<'_>) -> Result<Node> {
    let group = of.id();
    let conn = cluster.any_connection().await?;
    let version = conn.version::<FindCoordinatorRequest>(None)?;
    let key = StrBytes::from_string(group.to_string());
    let request = if version >= 4 {
        FindCoordinatorRequest::default()
            .with_key_type(of.key_type())
            .with_coordinator_keys(vec![key])
    } else {
        FindCoordinatorRequest::default()
            .with_key_type(of.key_type())
            .with_key(key)
    };
    let response = conn
        .call_at(&request, version, cluster.config().request_timeout())
        .await?;
    let (code, message, node_id, host, port) = if version >= 4 {
        let c = response
            .coordinators
            .into_iter()
            .find(|c| c.key.as_str() == group)
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "the FindCoordinator response has no answer for '{group}'"
                ))
            })?;
        (c.error_code, c.error_message, c.node_id, c.host, c.port)
    } else {
        (
            response.error_code,
            response.error_message,
            response.node_id,
            response.host,
            response.port,
        )
    };
    if let Some(code) = ErrorCode::try_from_code(code) {
        return Err(ClientError::kafka_described(
            code,
            message.map(|m| m.to_string()),
        ));
    }
    Ok(Node {
        id: node_id.0,
        host: host.to_string(),
        port,
        rack: None,
    })
}
