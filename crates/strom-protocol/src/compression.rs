//! Compression of a batch's records section, with a bound on what decompression may produce.
//!
//! Kafka compresses the records of a v2 batch as one stream (attribute bits 0-2 name the
//! codec); the 61-byte header stays uncompressed. The broker only needs this when it must look
//! inside a batch (keys of a compacted topic) or rewrite it (a topic whose `compression.type`
//! differs from the producer's). Client bytes are untrusted, so decompression stops with an
//! error once it would exceed a caller-given limit instead of exhausting memory on a
//! decompression bomb. The `kafka-protocol` crate's codecs have no such bound, hence this
//! module; framing follows Kafka's: gzip stream, LZ4 frame, zstd frame, and snappy in
//! snappy-java's (xerial) block framing, with a fall-back to raw snappy on read.

use std::io::{Read, Write};

use crate::batch::Compression;

/// snappy-java's stream header: magic, then format version 1 and minimum compatible version 1.
const SNAPPY_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's default block size.
const SNAPPY_BLOCK: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{codec} data is corrupt: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("decompressed {codec} data exceeds the limit of {limit} bytes")]
    TooLarge { codec: &'static str, limit: usize },
    #[error("cannot compress with {codec}: {reason}")]
    Compress { codec: &'static str, reason: String },
}

fn corrupt(codec: Compression) -> impl Fn(std::io::Error) -> CodecError {
    move |e| CodecError::Corrupt {
        codec: codec.name(),
        reason: e.to_string(),
    }
}

/// Reads all of `reader`, failing once more than `limit` bytes come out.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(corrupt(codec))?;
    if out.len() > limit {
        return Err(CodecError::TooLarge {
            codec: codec.name(),
            limit,
        });
    }
    Ok(out)
}

/// Decompresses a records section; at most `limit` bytes may come out.
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(CodecError::TooLarge {
                    codec: codec.name(),
                    limit,
                });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_bounded(codec, flate2::read::GzDecoder::new(data), limit),
        Compression::Lz4 => read_bounded(
            codec,
            lz4::Decoder::new(data).map_err(corrupt(codec))?,
            limit,
        ),
        Compression::Zstd => read_bounded(
            codec,
            zstd::stream::read::Decoder::new(data).map_err(corrupt(codec))?,
            limit,
        ),
        Compression::Snappy => snappy_decompress(data, limit),
    }
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let codec = Compression::Snappy.name();
    let bad = |reason: String| CodecError::Corrupt { codec, reason };
    let too_large = || CodecError::TooLarge { codec, limit };
    let mut decoder = snap::raw::Decoder::new();
    let mut block = |compressed: &[u8], out: &mut Vec<u8>| -> Result<(), CodecError> {
        let len = snap::raw::decompress_len(compressed).map_err(|e| bad(e.to_string()))?;
        if out.len() + len > limit {
            return Err(too_large());
        }
        let start = out.len();
        out.resize(start + len, 0);
        decoder
            .decompress(compressed, &mut out[start..])
            .map_err(|e| bad(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    // Without snappy-java's header the data is one raw snappy block, as the Java client reads it.
    let Some(mut rest) = data.strip_prefix(SNAPPY_MAGIC.as_slice()) else {
        block(data, &mut out)?;
        return Ok(out);
    };
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("truncated block length".into()))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let compressed = rest
            .get(4..4 + len)
            .ok_or_else(|| bad("truncated block".into()))?;
        block(compressed, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Compresses a records section with Kafka's framing for `codec`.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let failed = |e: std::io::Error| CodecError::Compress {
        codec: codec.name(),
        reason: e.to_string(),
    };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).map_err(failed)?;
            encoder.finish().map_err(failed)
        }
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(failed)?;
            encoder.write_all(data).map_err(failed)?;
            let (out, result) = encoder.finish();
            result.map_err(failed)?;
            Ok(out)
        }
        Compression::Zstd => zstd::stream::encode_all(data, 3).map_err(failed),
        Compression::Snappy => {
            let mut encoder = snap::raw::Encoder::new();
            let mut out = SNAPPY_MAGIC.to_vec();
            for chunk in data.chunks(SNAPPY_BLOCK) {
                let compressed = encoder
                    .compress_vec(chunk)
                    .map_err(|e| CodecError::Compress {
                        codec: codec.name(),
                        reason: e.to_string(),
                    })?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::compression::{Compressor, Decompressor};

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn round_trips_every_codec() {
        let data = sample();
        for codec in ALL {
            let packed = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 50 << 20];
        for codec in ALL {
            let packed = compress(codec, &zeros).unwrap();
            let err = decompress(codec, &packed, 1 << 20).unwrap_err();
            assert!(
                matches!(err, CodecError::TooLarge { .. }),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in ALL {
            let _ = decompress(codec, b"\x82SNAPPY\x00garbage garbage garbage", 1 << 20);
            let _ = decompress(codec, &[0xff; 64], 1 << 20);
        }
    }

    /// Interoperates with the `kafka-protocol` codecs clients in this repository use, in both
    /// directions, so batches we rewrite are readable by them and theirs by us.
    #[test]
    fn interoperates_with_kafka_protocol_codecs() {
        use bytes::{BufMut, Bytes, BytesMut};
        let data = sample();
        fn theirs_compress<C: Compressor<BytesMut>>(data: &[u8]) -> Vec<u8> {
            let mut out = BytesMut::new();
            C::compress(&mut out, |b| {
                b.put_slice(data);
                Ok(())
            })
            .unwrap();
            out.to_vec()
        }
        fn theirs_decompress<C: Decompressor<Bytes, Buf = Bytes>>(data: Vec<u8>) -> Vec<u8> {
            let mut input = Bytes::from(data);
            C::decompress(&mut input, |b| Ok(b.to_vec())).unwrap()
        }
        use kafka_protocol::compression::{Gzip, Lz4, Snappy, Zstd};
        let cases: [(Compression, Vec<u8>); 4] = [
            (Compression::Gzip, theirs_compress::<Gzip>(&data)),
            (Compression::Snappy, theirs_compress::<Snappy>(&data)),
            (Compression::Lz4, theirs_compress::<Lz4>(&data)),
            (Compression::Zstd, theirs_compress::<Zstd>(&data)),
        ];
        for (codec, packed) in cases {
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
        }
        assert_eq!(
            theirs_decompress::<Gzip>(compress(Compression::Gzip, &data).unwrap()),
            data
        );
        assert_eq!(
            theirs_decompress::<Snappy>(compress(Compression::Snappy, &data).unwrap()),
            data
        );
        assert_eq!(
            theirs_decompress::<Lz4>(compress(Compression::Lz4, &data).unwrap()),
            data
        );
        assert_eq!(
            theirs_decompress::<Zstd>(compress(Compression::Zstd, &data).unwrap()),
            data
        );
    }
}
