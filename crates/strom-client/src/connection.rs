//! One TCP connection to one broker, with pipelined requests.
//!
//! ```text
//!  caller: encode, register correlation id ──► writer task ──► socket
//!  caller ◄── oneshot (response frame) ◄────── reader task ◄── socket
//! ```
//!
//! Any number of requests may be in flight; each caller waits on its own correlation id, and
//! decodes the response with the version it sent. Right after connecting, an ApiVersions
//! handshake (v3, naming this client; v0 if the broker refuses it, as KIP-511 prescribes) learns
//! which versions the broker serves, and every later request is sent at the highest version
//! both sides support.
//!
//! A connection that fails — I/O error, EOF, or a request that timed out (like the Java client,
//! which then disconnects, because responses come back in order and a lost one means the
//! connection is unusable) — fails every request in flight with a retriable error and is
//! never used again; the cluster layer opens a new one on the next request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use strom_protocol::envelope::{decode_response, encode_request, response_correlation_id};
use strom_protocol::kafka_protocol::protocol::{Request, VersionRange};
use strom_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use strom_protocol::{ErrorCode, StrBytes, frame};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace};

use crate::error::{ClientError, Result};

/// The name this client gives itself in ApiVersions v3+ (KIP-511).
const SOFTWARE_NAME: &str = "strom-client";
const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The ApiVersions version tried first; the broker answers a higher one than it serves with
/// UNSUPPORTED_VERSION and its own table.
const API_VERSIONS_VERSION: i16 = 3;
/// Largest response frame accepted. Fetch responses may exceed `fetch.max.bytes` by one batch
/// (KIP-74), so this is generous; it only guards against a garbage length prefix.
const MIN_MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// Settings a connection needs, taken from the client configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    pub(crate) client_id: Option<String>,
    pub(crate) setup_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_response_bytes: usize,
}

impl ConnectOptions {
    pub(crate) fn from_config(config: &crate::ClientConfig) -> Self {
        let client_id = Some(config.client_id().to_string());
        Self {
            client_id,
            setup_timeout: config.socket_connection_setup_timeout(),
            request_timeout: config.request_timeout(),
            max_response_bytes: MIN_MAX_RESPONSE_BYTES
                .max(usize::try_from(config.fetch_max_bytes()).unwrap_or(0) * 2),
        }
    }
}

type Responder = oneshot::Sender<Result<Bytes>>;

#[derive(Debug, Default)]
struct State {
    pending: HashMap<i32, Responder>,
    /// Set once: the reason this connection is unusable.
    closed: Option<ClientError>,
}

#[derive(Debug)]
struct Shared {
    addr: String,
    state: Mutex<State>,
    cancel: CancellationToken,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map half-updated in a way that
        // matters (every operation is a single insert/remove), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection dead and fails everything waiting on it.
    fn close(&self, reason: ClientError) {
        let pending = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            debug!(addr = %self.addr, %reason, "closing connection");
            state.closed = Some(reason.clone());
            std::mem::take(&mut state.pending)
        };
        for (_, responder) in pending {
            let _ = responder.send(Err(reason.clone()));
        }
        self.cancel.cancel();
    }
}

struct Outgoing {
    frame: Bytes,
    /// For requests without a response (acks=0 produce): told once the frame is written.
    written: Option<oneshot::Sender<Result<()>>>,
}

/// A live connection to one broker. Cheap to share (`Arc`); dropped connections close.
#[derive(Debug)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
    writer: mpsc::UnboundedSender<Outgoing>,
    client_id: Option<String>,
    request_timeout: Duration,
    next_correlation_id: AtomicI32,
    /// API key -> versions the broker serves, from the handshake.
    versions: HashMap<i16, VersionRange>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close(ClientError::Closed);
    }
}

impl Connection {
    /// Opens a connection and performs the ApiVersions handshake.
    pub(crate) async fn connect(addr: &str, options: &ConnectOptions) -> Result<Connection> {
        let connect_err = |cause: std::io::Error| ClientError::Connect {
            addr: addr.to_string(),
            cause: Arc::new(cause),
        };
        let stream =
            match tokio::time::timeout(options.setup_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(connect_err(e)),
                Err(_) => {
                    return Err(connect_err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "connection setup timed out after {} ms",
                            options.setup_timeout.as_millis()
                        ),
                    )));
                }
            };
        // Kafka requests are small and latency-bound; Nagle would only delay them.
        stream.set_nodelay(true).map_err(connect_err)?;
        let (read, write) = stream.into_split();
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            state: Mutex::new(State::default()),
            cancel: CancellationToken::new(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(shared.clone(), write, rx));
        tokio::spawn(read_loop(shared.clone(), read, options.max_response_bytes));
        let mut conn = Connection {
            shared,
            writer: tx,
            client_id: options.client_id.clone(),
            request_timeout: options.request_timeout,
            next_correlation_id: AtomicI32::new(0),
            versions: HashMap::new(),
        };
        conn.versions = conn.handshake().await?;
        debug!(addr, apis = conn.versions.len(), "connected");
        Ok(conn)
    }

    pub(crate) fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// False once the connection failed or was closed; it will never recover.
    pub(crate) fn is_alive(&self) -> bool {
        self.shared.lock().closed.is_none()
    }

    /// `request.timeout.ms` as the connection was opened with.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The versions of `api` the broker advertised, if any.
    pub(crate) fn broker_versions(&self, api: ApiKey) -> Option<VersionRange> {
        self.versions.get(&(api as i16)).copied()
    }

    /// The highest version of `R` both sides support, optionally capped at `max` (for callers
    /// whose request needs data only some versions carry, such as topic ids).
    pub(crate) fn version<R: Request>(&self, max: Option<i16>) -> Result<i16> {
        let api = api_key::<R>()?;
        let client = R::VERSIONS;
        let client_max = max.map_or(client.max, |m| m.min(client.max));
        let unsupported = |reason: String| ClientError::UnsupportedVersion {
            addr: self.addr().to_string(),
            api,
            reason,
        };
        let Some(broker) = self.broker_versions(api) else {
            return Err(unsupported("the broker does not offer this API".into()));
        };
        let version = client_max.min(broker.max);
        if version < client.min.max(broker.min) {
            return Err(unsupported(format!(
                "broker serves v{}-v{}, client speaks v{}-v{}",
                broker.min, broker.max, client.min, client_max
            )));
        }
        Ok(version)
    }

    /// Sends a request at the best common version and waits for its response.
    pub(crate) async fn call<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version::<R>(None)?;
        self.call_at(request, version, self.request_timeout).await
    }

    /// Sends a request at `version` and waits up to `timeout` for its response.
    pub(crate) async fn call_at<R: Request>(
        &self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let api = api_key::<R>()?;
        let frame = self.round_trip(api, version, request, timeout).await?;
        let (_, body) = decode_response::<R::Response>(api, version, frame)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(body)
    }

    /// Sends a request that gets no response (Produce with acks=0); done once written.
    pub(crate) async fn send_only<R: Request>(&self, request: &R, version: i16) -> Result<()> {
        let api = api_key::<R>()?;
        let (correlation_id, frame) = self.encode(api, version, request)?;
        trace!(
            addr = self.addr(),
            ?api,
            version,
            correlation_id,
            "send (no response)"
        );
        let (tx, rx) = oneshot::channel();
        self.enqueue(Outgoing {
            frame,
            written: Some(tx),
        })?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.closed_reason()),
            Err(_) => {
                let e = ClientError::timeout(
                    format!("writing {api:?} to {}", self.addr()),
                    self.request_timeout,
                );
                self.shared.close(e.clone());
                Err(e)
            }
        }
    }

    fn encode<R: Request>(&self, api: ApiKey, version: i16, request: &R) -> Result<(i32, Bytes)> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(
            api,
            version,
            correlation_id,
            self.client_id.as_deref(),
            request,
        )
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((correlation_id, frame))
    }

    fn enqueue(&self, outgoing: Outgoing) -> Result<()> {
        self.writer.send(outgoing).map_err(|_| self.closed_reason())
    }

    fn closed_reason(&self) -> ClientError {
        self.shared
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| ClientError::Disconnected {
                addr: self.addr().to_string(),
            })
    }

    /// Sends one request and returns its response frame (correlation id first).
    async fn round_trip<R: Request>(
        &self,
        api: ApiKey,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<Bytes> {
        let (correlation_id, rx) = self.write_request(api, version, request)?;
        self.await_response(api, correlation_id, rx, timeout).await
    }

    /// Encodes a request and queues it for writing, now: requests started one after the
    /// other leave in that order, whoever awaits their responses.
    fn write_request<R: Request>(
        &self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<(i32, oneshot::Receiver<Result<Bytes>>)> {
        let (correlation_id, frame) = self.encode(api, version, request)?;
        trace!(addr = self.addr(), ?api, version, correlation_id, "send");
        let (tx, rx) = oneshot::channel();
        {
            // Registered under the same lock `close` drains, so a response can never be
            // waited for on a connection that already failed.
            let mut state = self.shared.lock();
            if let Some(reason) = &state.closed {
                return Err(reason.clone());
            }
            state.pending.insert(correlation_id, tx);
        }
        if let Err(e) = self.enqueue(Outgoing {
            frame,
            written: None,
        }) {
            self.shared.lock().pending.remove(&correlation_id);
            return Err(e);
        }
        Ok((correlation_id, rx))
    }

    async fn await_response(
        &self,
        api: ApiKey,
        correlation_id: i32,
        rx: oneshot::Receiver<Result<Bytes>>,
        timeout: Duration,
    ) -> Result<Bytes> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.closed_reason()),
            Err(_) => {
                self.shared.lock().pending.remove(&correlation_id);
                let e = ClientError::timeout(
                    format!("waiting for {api:?} response from {}", self.addr()),
                    timeout,
                );
                self.shared.close(e.clone());
                Err(e)
            }
        }
    }

    /// Writes a request at `version` at once (see [`Connection::write_request`]) and returns
    /// the future of its response, which may be awaited elsewhere: how the producer keeps
    /// pipelined Produce requests in the order it drained their batches.
    pub(crate) fn start_call<R: Request>(
        self: &Arc<Self>,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<impl Future<Output = Result<R::Response>> + Send + 'static>
    where
        R::Response: Send + 'static,
    {
        let api = api_key::<R>()?;
        let (correlation_id, rx) = self.write_request(api, version, request)?;
        let conn = self.clone();
        Ok(async move {
            let frame = conn
                .await_response(api, correlation_id, rx, timeout)
                .await?;
            let (_, body) = decode_response::<R::Response>(api, version, frame)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            Ok(body)
        })
    }

    /// ApiVersions: learn what the broker serves.
    async fn handshake(&self) -> Result<HashMap<i16, VersionRange>> {
        let mut version = API_VERSIONS_VERSION;
        loop {
            let mut request = ApiVersionsRequest::default();
            if version >= 3 {
                request = request
                    .with_client_software_name(StrBytes::from_static_str(SOFTWARE_NAME))
                    .with_client_software_version(StrBytes::from_static_str(SOFTWARE_VERSION));
            }
            let frame = self
                .round_trip(ApiKey::ApiVersions, version, &request, self.request_timeout)
                .await?;
            let response = decode_api_versions(frame, version)?;
            match ErrorCode::try_from_code(response.error_code) {
                None => {
                    return Ok(response
                        .api_keys
                        .iter()
                        .map(|k| {
                            (
                                k.api_key,
                                VersionRange {
                                    min: k.min_version,
                                    max: k.max_version,
                                },
                            )
                        })
                        .collect());
                }
                Some(ErrorCode::UnsupportedVersion) if version > 0 => {
                    // The broker lists what it serves even in this error; use its highest
                    // ApiVersions version below ours, else v0 which every broker serves.
                    let theirs = response
                        .api_keys
                        .iter()
                        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                        .map(|k| k.max_version)
                        .filter(|&v| v < version && v >= 0);
                    version = theirs.unwrap_or(0);
                    debug!(addr = self.addr(), version, "retrying ApiVersions");
                }
                Some(code) => {
                    return Err(ClientError::kafka(
                        code,
                        Some(format!("ApiVersions handshake with {}", self.addr())),
                    ));
                }
            }
        }
    }
}

/// Decodes an ApiVersions response sent for a request at `version`. A broker that does not
/// serve that version answers in v0 with UNSUPPORTED_VERSION, so that error code (the first
/// field of every version, after the always-v0 response header) selects the v0 layout.
fn decode_api_versions(frame: Bytes, version: i16) -> Result<ApiVersionsResponse> {
    let unsupported = frame
        .get(4..6)
        .is_some_and(|b| i16::from_be_bytes([b[0], b[1]]) == ErrorCode::UnsupportedVersion.code());
    let version = if unsupported { 0 } else { version };
    let (_, response) = decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, version, frame)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    Ok(response)
}

pub(crate) fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY)
        .map_err(|()| ClientError::Protocol(format!("unknown API key {}", R::KEY)))
}

async fn write_loop(
    shared: Arc<Shared>,
    write: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, write);
    loop {
        let next = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            next = rx.recv() => next,
        };
        let Some(outgoing) = next else { break };
        let mut result = out.write_all(&outgoing.frame).await;
        // Flush only when nothing else is queued, so pipelined requests share syscalls.
        if result.is_ok() && rx.is_empty() {
            result = out.flush().await;
        }
        match result {
            Ok(()) => {
                if let Some(written) = outgoing.written {
                    // With nothing queued behind it the frame has been flushed; otherwise it
                    // is in the buffer and goes out with the next flush, in order.
                    let _ = written.send(Ok(()));
                }
            }
            Err(e) => {
                let reason = ClientError::Io {
                    addr: shared.addr.clone(),
                    cause: Arc::new(e),
                };
                if let Some(written) = outgoing.written {
                    let _ = written.send(Err(reason.clone()));
                }
                shared.close(reason);
                break;
            }
        }
    }
    // Requests still queued can never be written.
    rx.close();
    while let Ok(outgoing) = rx.try_recv() {
        if let Some(written) = outgoing.written {
            let _ = written.send(Err(ClientError::Disconnected {
                addr: shared.addr.clone(),
            }));
        }
    }
    let _ = out.shutdown().await;
}

async fn read_loop(shared: Arc<Shared>, read: OwnedReadHalf, max_frame: usize) {
    let mut frames = FramedRead::new(read, frame::codec(max_frame));
    loop {
        let next = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            next = frames.next() => next,
        };
        match next {
            Some(Ok(frame)) => {
                let frame = frame.freeze();
                let Some(correlation_id) = response_correlation_id(&frame) else {
                    shared.close(ClientError::Protocol(format!(
                        "response from {} shorter than a header",
                        shared.addr
                    )));
                    return;
                };
                let responder = shared.lock().pending.remove(&correlation_id);
                match responder {
                    Some(responder) => {
                        let _ = responder.send(Ok(frame));
                    }
                    // The caller gave up (timeout) before the response arrived.
                    None => debug!(addr = %shared.addr, correlation_id, "unexpected response"),
                }
            }
            Some(Err(e)) => {
                shared.close(ClientError::Io {
                    addr: shared.addr.clone(),
                    cause: Arc::new(e),
                });
                return;
            }
            None => {
                shared.close(ClientError::Disconnected {
                    addr: shared.addr.clone(),
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::messages::api_versions_response::ApiVersion;
    use strom_protocol::messages::{MetadataRequest, MetadataResponse, ResponseKind};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn options() -> ConnectOptions {
        ConnectOptions {
            client_id: Some("test".into()),
            setup_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
        }
    }

    /// Reads one request frame; returns (api key, version, correlation id).
    async fn read_request(s: &mut TcpStream) -> Option<(i16, i16, i32)> {
        let len = s.read_i32().await.ok()?;
        let mut buf = vec![0u8; len as usize];
        s.read_exact(&mut buf).await.ok()?;
        Some((
            i16::from_be_bytes([buf[0], buf[1]]),
            i16::from_be_bytes([buf[2], buf[3]]),
            i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ))
    }

    async fn respond(s: &mut TcpStream, api: ApiKey, version: i16, cid: i32, body: ResponseKind) {
        let bytes = strom_protocol::envelope::encode_response(api, version, cid, &body).unwrap();
        s.write_all(&bytes).await.unwrap();
    }

    fn versions_response(max_api_versions: i16, error: i16) -> ResponseKind {
        ResponseKind::ApiVersions(
            ApiVersionsResponse::default()
                .with_error_code(error)
                .with_api_keys(vec![
                    ApiVersion::default()
                        .with_api_key(ApiKey::ApiVersions as i16)
                        .with_min_version(0)
                        .with_max_version(max_api_versions),
                    ApiVersion::default()
                        .with_api_key(ApiKey::Metadata as i16)
                        .with_min_version(0)
                        .with_max_version(9),
                ]),
        )
    }

    #[tokio::test]
    async fn handshake_falls_back_and_versions_are_negotiated() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // An old broker: refuses ApiVersions v3 in a v0 response.
            let (api, v, cid) = read_request(&mut s).await.unwrap();
            assert_eq!((api, v), (ApiKey::ApiVersions as i16, 3));
            respond(
                &mut s,
                ApiKey::ApiVersions,
                0,
                cid,
                versions_response(2, 35),
            )
            .await;
            let (_, v, cid) = read_request(&mut s).await.unwrap();
            assert_eq!(v, 2);
            respond(&mut s, ApiKey::ApiVersions, 2, cid, versions_response(2, 0)).await;
            // Metadata must come at v9, the broker's maximum.
            let (api, v, cid) = read_request(&mut s).await.unwrap();
            assert_eq!((api, v), (ApiKey::Metadata as i16, 9));
            respond(
                &mut s,
                ApiKey::Metadata,
                9,
                cid,
                ResponseKind::Metadata(MetadataResponse::default()),
            )
            .await;
            // Then go silent until the client hangs up.
            let _ = read_request(&mut s).await;
        });
        let conn = Connection::connect(&addr, &options()).await.unwrap();
        assert_eq!(conn.version::<MetadataRequest>(None).unwrap(), 9);
        assert_eq!(conn.version::<MetadataRequest>(Some(4)).unwrap(), 4);
        let err = conn
            .version::<strom_protocol::messages::ProduceRequest>(None)
            .unwrap_err();
        assert!(
            matches!(err, ClientError::UnsupportedVersion { .. }),
            "{err}"
        );
        conn.call(&MetadataRequest::default()).await.unwrap();
        drop(conn);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn broken_connection_fails_requests_in_flight_retriably() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (_, v, cid) = read_request(&mut s).await.unwrap();
            respond(&mut s, ApiKey::ApiVersions, v, cid, versions_response(3, 0)).await;
            // Read one request, then drop the socket without answering.
            let _ = read_request(&mut s).await;
        });
        let conn = Connection::connect(&addr, &options()).await.unwrap();
        let err = conn.call(&MetadataRequest::default()).await.unwrap_err();
        assert!(err.is_retriable(), "{err}");
        assert!(!conn.is_alive());
        let again = conn.call(&MetadataRequest::default()).await.unwrap_err();
        assert!(again.is_retriable());
    }

    #[tokio::test]
    async fn refused_connection_names_the_address() {
        // Bind then drop to get a port nobody listens on.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let err = Connection::connect(&addr, &options()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot connect to {addr}: Connection refused")
        );
    }
}
