//! One client connection: read a frame, decode, dispatch, write the response, repeat.
//!
//! Requests on a connection are handled one at a time, so responses leave in request order
//! (Kafka mutes a connection while a request is in flight for the same reason). A frame that
//! cannot be served — oversize, unknown API, unsupported version, malformed — closes this
//! connection only, with one log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use strom_protocol::envelope::{self, Decoded};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::handlers::{self, Reply};
use crate::server::Shared;

/// What the broker knows about the peer of one connection.
#[derive(Debug)]
pub(crate) struct ConnectionState {
    pub(crate) peer: SocketAddr,
    /// KIP-511 client software name and version, from ApiVersions.
    pub(crate) client_software: Option<(String, String)>,
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    token: CancellationToken,
) {
    let (reader, mut writer) = stream.into_split();
    let mut frames = FramedRead::with_capacity(
        reader,
        strom_protocol::frame::codec(shared.config.socket_request_max_bytes),
        64 * 1024,
    );
    let idle = Duration::from_millis(shared.config.connections_max_idle_ms.max(1));
    let mut state = ConnectionState {
        peer,
        client_software: None,
    };
    debug!(%peer, "connection opened");
    loop {
        let frame = tokio::select! {
            _ = token.cancelled() => break,
            next = tokio::time::timeout(idle, frames.next()) => match next {
                Err(_) => {
                    debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) if peer_went_away(&e) => {
                    debug!(%peer, error = %e, "connection reset by the client");
                    break;
                }
                Ok(Some(Err(e))) => {
                    warn!(%peer, error = %e, "closing connection: unreadable frame");
                    break;
                }
                Ok(Some(Ok(frame))) => frame.freeze(),
            },
        };
        let out = match handle_frame(&shared, &mut state, frame).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(reason) => {
                warn!(%peer, client = ?state.client_software, "closing connection: {reason}");
                break;
            }
        };
        if let Err(e) = writer.write_all(&out).await {
            debug!(%peer, error = %e, "closing connection: write failed");
            break;
        }
    }
    let _ = writer.shutdown().await;
    debug!(%peer, "connection closed");
}

/// A read error that only says the client is gone (it reset or aborted the connection, as
/// clients do when they close a socket with unread responses), not that it sent anything
/// wrong: like Kafka, log it at debug level, not as a bad frame.
fn peer_went_away(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// Serves one frame; `Ok(None)` when no response is due (acks=0), `Err` to close the
/// connection.
async fn handle_frame(
    shared: &Shared,
    state: &mut ConnectionState,
    frame: Bytes,
) -> Result<Option<Bytes>, String> {
    let decoded =
        envelope::decode_request(frame, handlers::version_range).map_err(|e| e.to_string())?;
    let request = match decoded {
        Decoded::UnsupportedApiVersions { correlation_id } => {
            let body = handlers::api_versions::unsupported_version_response();
            return encode(
                strom_protocol::messages::ApiKey::ApiVersions,
                0,
                correlation_id,
                &body,
            )
            .map(Some);
        }
        Decoded::Request(request) => request,
    };
    let api_key = request.api_key;
    let version = request.version();
    let correlation_id = request.header.correlation_id;
    match handlers::dispatch(shared, state, *request).await {
        Reply::Response(body) => encode(api_key, version, correlation_id, &body).map(Some),
        Reply::None => Ok(None),
        Reply::Close(reason) => Err(reason),
    }
}

fn encode(
    api_key: strom_protocol::messages::ApiKey,
    version: i16,
    correlation_id: i32,
    body: &strom_protocol::messages::ResponseKind,
) -> Result<Bytes, String> {
    envelope::encode_response(api_key, version, correlation_id, body).map_err(|e| {
        // A handler filled a field the version cannot carry: our bug, not the client's.
        error!(error = %e, "cannot encode response");
        e.to_string()
    })
}
