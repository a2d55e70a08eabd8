//! Kafka's default partitioning, bit for bit: a keyed record goes to
//! `toPositive(murmur2(key)) % partitions` (Java's `Utils.murmur2`, so a key lands on the same
//! partition whichever client wrote it), a record without a key sticks to one partition until
//! that partition's batch is sent or full (KIP-480), which keeps batches large when records
//! have no keys. A [`Partitioner`] set in the config (`partitioner.class`,
//! `ClientConfig::with_partitioner`) replaces it: [`RoundRobinPartitioner`] or your own.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::Rng;

/// Java's `Utils.murmur2`: MurmurHash2, 32 bit, seed `0x9747b28c`, little-endian blocks.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a non-null key.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    if num_partitions <= 0 {
        return 0;
    }
    to_positive(murmur2(key)) % num_partitions
}

/// Picks the partition of every record sent without one (Java's `Partitioner`).
///
/// It is called inside `send` while the producer's lock is held: it must be quick and must
/// not call back into the producer.
pub trait Partitioner: Send + Sync + std::fmt::Debug {
    /// A partition in `0..num_partitions`; `available` are those with a leader (possibly
    /// none). A result out of range fails the record.
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        num_partitions: i32,
        available: &[i32],
    ) -> i32;
}

/// Java's `RoundRobinPartitioner`: each topic's records go to its available partitions in
/// turn (all partitions when none is available), keys ignored.
#[derive(Debug, Default)]
pub struct RoundRobinPartitioner {
    next: Mutex<HashMap<String, i32>>,
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(
        &self,
        topic: &str,
        _key: Option<&[u8]>,
        _value: Option<&[u8]>,
        num_partitions: i32,
        available: &[i32],
    ) -> i32 {
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let counter = next.entry(topic.to_string()).or_insert(0);
            let turn = *counter;
            *counter = counter.wrapping_add(1);
            to_positive(turn)
        };
        if available.is_empty() {
            turn % num_partitions.max(1)
        } else {
            available[turn as usize % available.len()]
        }
    }
}

/// The partitioner `partitioner.class` names: Java's class names (or their short form).
/// `None` for the default partitioning.
pub(crate) fn by_class_name(name: &str) -> Result<Option<std::sync::Arc<dyn Partitioner>>, String> {
    match name.trim().rsplit('.').next().unwrap_or("") {
        "" | "DefaultPartitioner" | "UniformStickyPartitioner" => Ok(None),
        "RoundRobinPartitioner" => Ok(Some(std::sync::Arc::new(RoundRobinPartitioner::default()))),
        _ => Err(format!(
            "unknown partitioner class '{name}' (known: org.apache.kafka.clients.producer.RoundRobinPartitioner; custom partitioners are set with ClientConfig::with_partitioner)"
        )),
    }
}

/// KIP-480 for records without a key: the partition to stick to next, one of `available`
/// (those with a leader; any partition when none has one), different from `previous` when
/// there is a choice. Called when the sticky partition's batch was sent or filled up.
pub(crate) fn next_sticky(num_partitions: i32, available: &[i32], previous: Option<i32>) -> i32 {
    let all: Vec<i32>;
    let candidates = if available.is_empty() {
        all = (0..num_partitions.max(1)).collect();
        &all[..]
    } else {
        available
    };
    match previous {
        Some(prev) if candidates.len() > 1 => {
            let others: Vec<i32> = candidates.iter().copied().filter(|&p| p != prev).collect();
            others[rand::rng().random_range(0..others.len())]
        }
        _ => candidates[rand::rng().random_range(0..candidates.len())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_takes_available_partitions_in_turn_per_topic() {
        let p = RoundRobinPartitioner::default();
        let picks: Vec<i32> = (0..5)
            .map(|_| p.partition("a", Some(b"k"), None, 4, &[0, 2, 3]))
            .collect();
        assert_eq!(picks, [0, 2, 3, 0, 2]);
        // Another topic has its own turn; with nothing available, all partitions take turns.
        assert_eq!(p.partition("b", None, None, 3, &[]), 0);
        assert_eq!(p.partition("b", None, None, 3, &[]), 1);
        assert!(
            by_class_name("org.apache.kafka.clients.producer.RoundRobinPartitioner")
                .unwrap()
                .is_some()
        );
        assert!(by_class_name("").unwrap().is_none());
        assert!(by_class_name("com.example.Mine").is_err());
    }

    /// Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_java_utils_test() {
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    /// librdkafka's `unittest_murmur2` (its `java_murmur2_results`), which covers every tail
    /// length and the empty key.
    #[test]
    fn murmur2_matches_librdkafka_java_vectors() {
        let cases: &[(&[u8], u32)] = &[
            (b"kafka", 0xd067_cf64),
            (b"giberish123456789", 0x8f55_2b0c),
            (b"1234", 0x9fc9_7b14),
            (b"234", 0xe7c0_09ca),
            (b"34", 0x8739_30da),
            (b"4", 0x5a4b_5ca1),
            (b"PreAmbleWillBeRemoved,ThePrePartThatIs", 0x7842_4f1c),
            (b"reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62_b377),
            (b"eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4_e09e),
            (b"AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8_b43f),
            (b"", 0x106e_08d9),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key) as u32, *expected, "key {key:?}");
        }
    }

    /// `Utils.toPositive(Utils.murmur2(key)) % n`, values computed with an independent
    /// implementation of Java's algorithm.
    #[test]
    fn keyed_partition_matches_java_default_partitioner() {
        let cases: &[(&[u8], [i32; 6])] = &[
            // partitions:  3  7  10 12  50  100
            (b"21", [0, 3, 0, 0, 40, 40]),
            (b"foobar", [0, 0, 6, 6, 16, 66]),
            (b"kafka", [1, 3, 0, 4, 30, 80]),
            (b"giberish123456789", [2, 5, 0, 8, 20, 20]),
            (b"", [0, 2, 1, 9, 31, 81]),
            (b"key", [1, 4, 1, 1, 31, 81]),
            (b"user-1", [2, 3, 8, 8, 28, 28]),
        ];
        for (key, expected) in cases {
            for (n, want) in [3, 7, 10, 12, 50, 100].into_iter().zip(expected) {
                assert_eq!(
                    partition_for_key(key, n),
                    *want,
                    "key {key:?} partitions {n}"
                );
            }
        }
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
    }

    #[test]
    fn sticky_partition_moves_elsewhere_among_available() {
        for _ in 0..20 {
            let first = next_sticky(4, &[0, 1, 2, 3], None);
            assert!((0..4).contains(&first));
            assert_ne!(next_sticky(4, &[0, 1, 2, 3], Some(first)), first);
        }
        // Only partitions with a leader are chosen.
        for _ in 0..20 {
            assert_eq!(next_sticky(4, &[2], Some(2)), 2);
        }
        // Single partition topics always stay; with no leader known any partition will do.
        assert_eq!(next_sticky(1, &[], Some(0)), 0);
        assert!((0..3).contains(&next_sticky(3, &[], None)));
    }
}
