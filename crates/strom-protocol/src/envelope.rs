//! Request and response envelopes: header + body, with the version rules Kafka applies.
//!
//! Broker side: [`decode_request`] turns one frame into a header and a typed body, or says why
//! the connection must be closed (Kafka closes it for an unknown API key, a version it does not
//! serve, or a body it cannot parse). The one exception is ApiVersions at a version we do not
//! know: Kafka answers it with a v0 response carrying UNSUPPORTED_VERSION and its version table
//! (KIP-511), so [`Decoded::UnsupportedApiVersions`] exists for that case.
//!
//! Client side: [`encode_request`] and [`decode_response`].

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, VersionRange};

use crate::frame::LENGTH_PREFIX;

/// A decoded request: its header and typed body.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// What one request frame turned out to be.
#[derive(Debug)]
pub enum Decoded {
    Request(Box<Request>),
    /// An ApiVersions request at a version above what we serve: answer with a v0 response that
    /// carries UNSUPPORTED_VERSION and the supported versions, as Kafka does.
    UnsupportedApiVersions {
        correlation_id: i32,
    },
}

/// Why a request frame could not be served; every case closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("API {api_key:?} version {version} is not supported")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    #[error("malformed request header for {api_key:?} v{version}: {reason}")]
    Header {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("malformed {api_key:?} v{version} request body: {reason}")]
    Body {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes one request frame (without its length prefix).
///
/// `versions` tells which versions of an API this server serves; `None` means the API is not
/// served at all (it is also not advertised in ApiVersions).
pub fn decode_request(
    mut frame: Bytes,
    versions: impl Fn(ApiKey) -> Option<VersionRange>,
) -> Result<Decoded, RequestError> {
    // api_key(2) + api_version(2) + correlation_id(4) + client_id length(2)
    if frame.len() < 10 {
        return Err(RequestError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| RequestError::UnknownApiKey(raw_key))?;
    let Some(range) = versions(api_key) else {
        return Err(RequestError::UnknownApiKey(raw_key));
    };
    if version < range.min || version > range.max {
        if api_key == ApiKey::ApiVersions && version > range.max {
            return Ok(Decoded::UnsupportedApiVersions { correlation_id });
        }
        return Err(RequestError::UnsupportedVersion { api_key, version });
    }
    let header_version = api_key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| RequestError::Header {
            api_key,
            version,
            reason: e.to_string(),
        })?;
    let body =
        RequestKind::decode(api_key, &mut frame, version).map_err(|e| RequestError::Body {
            api_key,
            version,
            reason: format!("{e:#}"),
        })?;
    Ok(Decoded::Request(Box::new(Request {
        api_key,
        header,
        body,
    })))
}

/// Encoding a message failed: a field does not fit the version being written. This is a bug on
/// our side (a handler filled a field the version cannot carry), never the peer's fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version}: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Encodes a response, length prefix included, ready to be written to the socket.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let err = |e: anyhow::Error| EncodeError {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    Ok(finish_frame(buf))
}

/// Encodes a request, length prefix included.
pub fn encode_request<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    body: &R,
) -> Result<Bytes, EncodeError> {
    let err = |e: anyhow::Error| EncodeError {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    let mut buf = BytesMut::with_capacity(64 + body.compute_size(version).map_err(err)?);
    buf.put_i32(0);
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| c.to_string().into()));
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    Ok(finish_frame(buf))
}

/// A response frame that could not be decoded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("malformed {api_key:?} v{version} response: {reason}")]
pub struct ResponseDecodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Reads the correlation id at the start of a response frame (without the length prefix).
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    frame
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Decodes a response body of a known type from a frame (without the length prefix).
pub fn decode_response<R: Decodable>(
    api_key: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(ResponseHeader, R), ResponseDecodeError> {
    let err = |e: anyhow::Error| ResponseDecodeError {
        api_key,
        version,
        reason: format!("{e:#}"),
    };
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
        .map_err(err)?;
    let body = R::decode(&mut frame, version).map_err(err)?;
    Ok((header, body))
}

fn finish_frame(mut buf: BytesMut) -> Bytes {
    let len = (buf.len() - LENGTH_PREFIX) as i32;
    buf[..LENGTH_PREFIX].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}
