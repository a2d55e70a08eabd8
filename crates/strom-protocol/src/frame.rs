//! Length-prefixed framing: every Kafka request and response is a big-endian `i32` size followed
//! by that many bytes.
//!
//! The size is checked against `socket.request.max.bytes` *before* any buffer is reserved, so a
//! peer that declares a 2 GiB frame costs us nothing but the connection.

use tokio_util::codec::LengthDelimitedCodec;

/// Size of the length prefix in front of every frame.
pub const LENGTH_PREFIX: usize = 4;

/// A codec that yields one frame body (without the prefix) at a time and refuses frames longer
/// than `max_frame_len` with an `InvalidData` I/O error before allocating for them.
pub fn codec(max_frame_len: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(LENGTH_PREFIX)
        .big_endian()
        .max_frame_length(max_frame_len)
        .new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use tokio_util::codec::Decoder;

    #[test]
    fn oversize_frame_is_refused_before_reading_body() {
        let mut c = codec(1024);
        let mut buf = BytesMut::new();
        buf.put_i32(i32::MAX);
        buf.put_slice(b"abc");
        let err = c.decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            buf.capacity() < 1 << 20,
            "no buffer was reserved for the body"
        );
    }

    #[test]
    fn frames_split_across_reads() {
        let mut c = codec(1024);
        let mut buf = BytesMut::new();
        buf.put_i32(5);
        buf.put_slice(b"he");
        assert!(c.decode(&mut buf).unwrap().is_none());
        buf.put_slice(b"llo");
        buf.put_i32(1);
        buf.put_slice(b"x");
        assert_eq!(&c.decode(&mut buf).unwrap().unwrap()[..], b"hello");
        assert_eq!(&c.decode(&mut buf).unwrap().unwrap()[..], b"x");
        assert!(c.decode(&mut buf).unwrap().is_none());
    }
}
