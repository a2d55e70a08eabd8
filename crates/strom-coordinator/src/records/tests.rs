//! Golden bytes written by hand from Kafka's JSON schemas (never taken from our own encoder),
//! and round-trip properties.

use super::*;
use proptest::prelude::*;

/// Bytes from hex with spaces for readability.
fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const UUID_HEX: &str = "000102030405060708090a0b0c0d0e0f";

fn uuid() -> Uuid {
    Uuid::from_bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
}

fn golden(record: CoordinatorRecord, key: &str, value: Option<&str>) {
    let (k, v) = record.encode();
    assert_eq!(k.to_vec(), hex(key), "key of {record:?}");
    assert_eq!(v.map(|v| v.to_vec()), value.map(hex), "value of {record:?}");
    let back = CoordinatorRecord::decode(&hex(key), value.map(hex).as_deref())
        .unwrap()
        .unwrap();
    assert_eq!(back, record);
}

fn decode(key: &str, value: Option<&str>) -> CoordinatorRecord {
    CoordinatorRecord::decode(&hex(key), value.map(hex).as_deref())
        .unwrap()
        .unwrap()
}

const OFFSET_KEY: &str = "0001 0002 6731 0001 74 00000005";

fn offset_key() -> RecordKey {
    RecordKey::OffsetCommit {
        group: "g1".into(),
        topic: "t".into(),
        partition: 5,
    }
}

#[test]
fn offset_commit_v3_golden() {
    golden(
        CoordinatorRecord::new(
            offset_key(),
            RecordValue::OffsetCommit(OffsetCommitValue {
                offset: 100,
                leader_epoch: 7,
                metadata: "md".into(),
                commit_timestamp: 1000,
                expire_timestamp: None,
            }),
        ),
        OFFSET_KEY,
        // version 3: offset, leaderEpoch, metadata, commitTimestamp
        Some("0003 0000000000000064 00000007 0002 6d64 00000000000003e8"),
    );
}

#[test]
fn offset_commit_v1_with_expire_timestamp_golden() {
    golden(
        CoordinatorRecord::new(
            offset_key(),
            RecordValue::OffsetCommit(OffsetCommitValue {
                offset: 100,
                leader_epoch: -1,
                metadata: "".into(),
                commit_timestamp: 1000,
                expire_timestamp: Some(2000),
            }),
        ),
        OFFSET_KEY,
        // version 1: offset, metadata, commitTimestamp, expireTimestamp
        Some("0001 0000000000000064 0000 00000000000003e8 00000000000007d0"),
    );
}

#[test]
fn offset_commit_tombstone_golden() {
    golden(CoordinatorRecord::tombstone(offset_key()), OFFSET_KEY, None);
}

#[test]
fn offset_commit_old_versions_and_legacy_key_decode() {
    let expected = OffsetCommitValue {
        offset: 100,
        leader_epoch: -1,
        metadata: "md".into(),
        commit_timestamp: 1000,
        expire_timestamp: None,
    };
    // Key version 0 (legacy) has the same layout as 1.
    let r = decode(
        "0000 0002 6731 0001 74 00000005",
        Some("0000 0000000000000064 0002 6d64 00000000000003e8"),
    );
    assert_eq!(r.key, offset_key());
    assert_eq!(r.value, Some(RecordValue::OffsetCommit(expected.clone())));
    // Version 2 is version 0's layout.
    let r = decode(
        OFFSET_KEY,
        Some("0002 0000000000000064 0002 6d64 00000000000003e8"),
    );
    assert_eq!(r.value, Some(RecordValue::OffsetCommit(expected.clone())));
    // Version 4 is flexible: compact metadata and a tagged-field section (here with one
    // unknown tag that must be skipped).
    let r = decode(
        OFFSET_KEY,
        Some("0004 0000000000000064 00000009 03 6d64 00000000000003e8 01 05 02 abcd"),
    );
    assert_eq!(
        r.value,
        Some(RecordValue::OffsetCommit(OffsetCommitValue {
            leader_epoch: 9,
            ..expected
        }))
    );
}

fn group_key() -> RecordKey {
    RecordKey::GroupMetadata { group: "g1".into() }
}

#[test]
fn group_metadata_v3_golden() {
    golden(
        CoordinatorRecord::new(
            group_key(),
            RecordValue::GroupMetadata(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 1,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                current_state_timestamp: 1000,
                members: vec![GroupMemberMetadata {
                    member_id: "m1".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "h".into(),
                    rebalance_timeout: 3000,
                    session_timeout: 10000,
                    subscription: Bytes::from_static(&[1, 2]),
                    assignment: Bytes::from_static(&[3]),
                }],
            }),
        ),
        "0002 0002 6731",
        Some(
            "0003 0008 636f6e73756d6572 00000001 0005 72616e6765 0002 6d31 00000000000003e8
             00000001
               0002 6d31 ffff 0001 63 0001 68 00000bb8 00002710 00000002 0102 00000001 03",
        ),
    );
}

#[test]
fn group_metadata_empty_group_golden() {
    golden(
        CoordinatorRecord::new(
            group_key(),
            RecordValue::GroupMetadata(GroupMetadataValue {
                protocol_type: "".into(),
                generation: 0,
                protocol: None,
                leader: None,
                current_state_timestamp: 5,
                members: vec![],
            }),
        ),
        "0002 0002 6731",
        Some("0003 0000 00000000 ffff ffff 0000000000000005 00000000"),
    );
}

#[test]
fn group_metadata_old_and_flexible_versions_decode() {
    // Version 0: no timestamp, no instance id, no rebalance timeout.
    let r = decode(
        "0002 0002 6731",
        Some(
            "0000 0008 636f6e73756d6572 00000002 0005 72616e6765 0002 6d31 00000001
               0002 6d31 0001 63 0001 68 00002710 00000000 00000000",
        ),
    );
    let Some(RecordValue::GroupMetadata(v)) = r.value else {
        panic!("{r:?}")
    };
    assert_eq!(v.generation, 2);
    assert_eq!(v.current_state_timestamp, -1);
    assert_eq!(v.members[0].rebalance_timeout, 10000);
    assert_eq!(v.members[0].group_instance_id, None);
    // Version 4: compact encoding and tagged fields, with a static member.
    let r = decode(
        "0002 0002 6731",
        Some(
            "0004 09 636f6e73756d6572 00000002 06 72616e6765 03 6d31 0000000000000001
             02
               03 6d31 03 6931 02 63 02 68 00000bb8 00002710 02 01 01 00
             00",
        ),
    );
    let Some(RecordValue::GroupMetadata(v)) = r.value else {
        panic!("{r:?}")
    };
    assert_eq!(v.members[0].group_instance_id.as_deref(), Some("i1"));
    assert_eq!(v.members[0].subscription, Bytes::from_static(&[1]));
    assert_eq!(v.members[0].assignment, Bytes::new());
}

#[test]
fn consumer_group_metadata_golden() {
    golden(
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupMetadata {
                group_id: "g1".into(),
            },
            RecordValue::ConsumerGroupMetadata(ConsumerGroupMetadataValue { epoch: 10 }),
        ),
        "0003 0002 6731",
        Some("0000 0000000a 00"),
    );
    // A tagged field written by a newer Kafka (e.g. a metadata hash) is skipped.
    let r = decode(
        "0003 0002 6731",
        Some("0000 0000000a 01 00 08 0102030405060708"),
    );
    assert_eq!(
        r.value,
        Some(RecordValue::ConsumerGroupMetadata(
            ConsumerGroupMetadataValue { epoch: 10 }
        ))
    );
}

#[test]
fn consumer_group_partition_metadata_golden() {
    golden(
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupPartitionMetadata {
                group_id: "g1".into(),
            },
            RecordValue::ConsumerGroupPartitionMetadata(ConsumerGroupPartitionMetadataValue {
                topics: vec![TopicMetadata {
                    topic_id: uuid(),
                    topic_name: "t".into(),
                    num_partitions: 3,
                    partition_metadata: vec![PartitionRacks {
                        partition: 0,
                        racks: vec!["r".into()],
                    }],
                }],
            }),
        ),
        "0004 0002 6731",
        Some(&format!(
            "0000 02 {UUID_HEX} 02 74 00000003 02 00000000 02 02 72 00 00 00"
        )),
    );
}

#[test]
fn consumer_group_member_metadata_golden() {
    golden(
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupMemberMetadata {
                group_id: "g1".into(),
                member_id: "m1".into(),
            },
            RecordValue::ConsumerGroupMemberMetadata(ConsumerGroupMemberMetadataValue {
                instance_id: None,
                rack_id: Some("r".into()),
                client_id: "c".into(),
                client_host: "h".into(),
                subscribed_topic_names: vec!["t".into()],
                subscribed_topic_regex: None,
                rebalance_timeout_ms: 60000,
                server_assignor: Some("uniform".into()),
            }),
        ),
        "0005 0002 6731 0002 6d31",
        Some("0000 00 02 72 02 63 02 68 02 02 74 00 0000ea60 08 756e69666f726d 00"),
    );
}

#[test]
fn consumer_group_member_metadata_with_classic_tag_decodes() {
    // ClassicMemberMetadata (tag 0) is read past, not understood: strom has no migrated
    // classic members.
    let r = decode(
        "0005 0002 6731 0002 6d31",
        Some("0000 00 00 02 63 02 68 01 00 0000ea60 00 01 00 0a 00002710 02 02 61 01 00 00"),
    );
    let Some(RecordValue::ConsumerGroupMemberMetadata(v)) = r.value else {
        panic!("{r:?}")
    };
    assert_eq!(v.client_id, "c");
    assert!(v.subscribed_topic_names.is_empty());
}

#[test]
fn consumer_group_target_assignment_golden() {
    golden(
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupTargetAssignmentMetadata {
                group_id: "g1".into(),
            },
            RecordValue::ConsumerGroupTargetAssignmentMetadata(
                ConsumerGroupTargetAssignmentMetadataValue {
                    assignment_epoch: 3,
                },
            ),
        ),
        "0006 0002 6731",
        Some("0000 00000003 00"),
    );
    golden(
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupTargetAssignmentMember {
                group_id: "g1".into(),
                member_id: "m1".into(),
            },
            RecordValue::ConsumerGroupTargetAssignmentMember(
                ConsumerGroupTargetAssignmentMemberValue {
                    topic_partitions: vec![TopicPartitions {
                        topic_id: uuid(),
                        partitions: vec![0, 1],
                    }],
                },
            ),
        ),
        "0007 0002 6731 0002 6d31",
        Some(&format!("0000 02 {UUID_HEX} 03 00000000 00000001 00 00")),
    );
}

#[test]
fn consumer_group_current_member_assignment_golden() {
    golden(
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupCurrentMemberAssignment {
                group_id: "g1".into(),
                member_id: "m1".into(),
            },
            RecordValue::ConsumerGroupCurrentMemberAssignment(
                ConsumerGroupCurrentMemberAssignmentValue {
                    member_epoch: 5,
                    previous_member_epoch: 4,
                    state: 1,
                    assigned_partitions: vec![TopicPartitions {
                        topic_id: uuid(),
                        partitions: vec![0],
                    }],
                    partitions_pending_revocation: vec![],
                },
            ),
        ),
        "0008 0002 6731 0002 6d31",
        Some(&format!(
            "0000 00000005 00000004 01 02 {UUID_HEX} 02 00000000 00 01 00"
        )),
    );
    golden(
        CoordinatorRecord::tombstone(RecordKey::ConsumerGroupCurrentMemberAssignment {
            group_id: "g1".into(),
            member_id: "m1".into(),
        }),
        "0008 0002 6731 0002 6d31",
        None,
    );
}

#[test]
fn consumer_group_regular_expression_golden() {
    golden(
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupRegularExpression {
                group_id: "g1".into(),
                regex: "t.*".into(),
            },
            RecordValue::ConsumerGroupRegularExpression(ConsumerGroupRegularExpressionValue {
                topics: vec!["a".into(), "bc".into()],
                version: 7,
                timestamp: 1000,
            }),
        ),
        "0010 0002 6731 0003 742e2a",
        Some("0000 03 02 61 03 6263 0000000000000007 00000000000003e8 00"),
    );
}

#[test]
fn unknown_record_types_are_skipped_and_bad_records_refused() {
    // Share group metadata (type 11) is not strom's: skipped.
    assert_eq!(
        CoordinatorRecord::decode(&hex("000b 0002 6731"), Some(&hex("0000"))),
        Ok(None)
    );
    // A known type with an unknown value version is an error the loader reports.
    assert_eq!(
        CoordinatorRecord::decode(&hex("0003 0002 6731"), Some(&hex("0001 00000001 00"))),
        Err(CodecError::UnknownValueVersion {
            key_version: 3,
            version: 1
        })
    );
    assert_eq!(
        CoordinatorRecord::decode(&hex("0003 0002 67"), None),
        Err(CodecError::Truncated)
    );
    assert_eq!(
        CoordinatorRecord::decode(&hex("0003 0002 6731 00"), None),
        Err(CodecError::TrailingBytes(1))
    );
    assert_eq!(
        CoordinatorRecord::decode(&hex("0003 0002 6731"), Some(&hex("0000 0000000a"))),
        Err(CodecError::Truncated)
    );
    // A huge array count in a short value fails before allocating.
    assert_eq!(
        CoordinatorRecord::decode(
            &hex("0002 0002 6731"),
            Some(&hex(
                "0003 0000 00000000 ffff ffff 0000000000000005 7fffffff"
            ))
        ),
        Err(CodecError::Truncated)
    );
}

fn s() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._é-]{0,12}"
}

fn tps() -> impl Strategy<Value = Vec<TopicPartitions>> {
    prop::collection::vec(
        (any::<u128>(), prop::collection::vec(any::<i32>(), 0..4)).prop_map(|(u, partitions)| {
            TopicPartitions {
                topic_id: Uuid::from_u128(u),
                partitions,
            }
        }),
        0..3,
    )
}

fn record() -> impl Strategy<Value = CoordinatorRecord> {
    let offset = (
        s(),
        s(),
        any::<i32>(),
        any::<i64>(),
        any::<i32>(),
        s(),
        any::<i64>(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(
            |(group, topic, partition, offset, epoch, metadata, ts, exp)| {
                CoordinatorRecord::new(
                    RecordKey::OffsetCommit {
                        group,
                        topic,
                        partition,
                    },
                    RecordValue::OffsetCommit(OffsetCommitValue {
                        offset,
                        // Version 1 (written when an expire timestamp is set) has no epoch.
                        leader_epoch: if exp.is_some() { -1 } else { epoch },
                        metadata,
                        commit_timestamp: ts,
                        expire_timestamp: exp,
                    }),
                )
            },
        );
    let member = (
        s(),
        prop::option::of(s()),
        s(),
        s(),
        any::<i32>(),
        any::<i32>(),
        prop::collection::vec(any::<u8>(), 0..8),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(
            |(member_id, iid, client_id, client_host, rt, st, sub, asg)| GroupMemberMetadata {
                member_id,
                group_instance_id: iid,
                client_id,
                client_host,
                rebalance_timeout: rt,
                session_timeout: st,
                subscription: Bytes::from(sub),
                assignment: Bytes::from(asg),
            },
        );
    let group = (
        s(),
        s(),
        any::<i32>(),
        prop::option::of(s()),
        prop::option::of(s()),
        any::<i64>(),
        prop::collection::vec(member, 0..3),
    )
        .prop_map(|(group, pt, generation, protocol, leader, ts, members)| {
            CoordinatorRecord::new(
                RecordKey::GroupMetadata { group },
                RecordValue::GroupMetadata(GroupMetadataValue {
                    protocol_type: pt,
                    generation,
                    protocol,
                    leader,
                    current_state_timestamp: ts,
                    members,
                }),
            )
        });
    let cg_meta = (s(), any::<i32>()).prop_map(|(group_id, epoch)| {
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupMetadata { group_id },
            RecordValue::ConsumerGroupMetadata(ConsumerGroupMetadataValue { epoch }),
        )
    });
    let cg_partitions = (
        s(),
        prop::collection::vec(
            (
                any::<u128>(),
                s(),
                any::<i32>(),
                prop::collection::vec((any::<i32>(), prop::collection::vec(s(), 0..2)), 0..2),
            ),
            0..3,
        ),
    )
        .prop_map(|(group_id, topics)| {
            CoordinatorRecord::new(
                RecordKey::ConsumerGroupPartitionMetadata { group_id },
                RecordValue::ConsumerGroupPartitionMetadata(ConsumerGroupPartitionMetadataValue {
                    topics: topics
                        .into_iter()
                        .map(|(u, name, n, parts)| TopicMetadata {
                            topic_id: Uuid::from_u128(u),
                            topic_name: name,
                            num_partitions: n,
                            partition_metadata: parts
                                .into_iter()
                                .map(|(partition, racks)| PartitionRacks { partition, racks })
                                .collect(),
                        })
                        .collect(),
                }),
            )
        });
    let cg_member = (
        s(),
        s(),
        prop::option::of(s()),
        prop::option::of(s()),
        s(),
        s(),
        prop::collection::vec(s(), 0..3),
        prop::option::of(s()),
        any::<i32>(),
        prop::option::of(s()),
    )
        .prop_map(
            |(group_id, member_id, iid, rack, cid, host, names, regex, rt, assignor)| {
                CoordinatorRecord::new(
                    RecordKey::ConsumerGroupMemberMetadata {
                        group_id,
                        member_id,
                    },
                    RecordValue::ConsumerGroupMemberMetadata(ConsumerGroupMemberMetadataValue {
                        instance_id: iid,
                        rack_id: rack,
                        client_id: cid,
                        client_host: host,
                        subscribed_topic_names: names,
                        subscribed_topic_regex: regex,
                        rebalance_timeout_ms: rt,
                        server_assignor: assignor,
                    }),
                )
            },
        );
    let cg_target = (s(), s(), tps()).prop_map(|(group_id, member_id, topic_partitions)| {
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupTargetAssignmentMember {
                group_id,
                member_id,
            },
            RecordValue::ConsumerGroupTargetAssignmentMember(
                ConsumerGroupTargetAssignmentMemberValue { topic_partitions },
            ),
        )
    });
    let cg_target_meta = (s(), any::<i32>()).prop_map(|(group_id, assignment_epoch)| {
        CoordinatorRecord::new(
            RecordKey::ConsumerGroupTargetAssignmentMetadata { group_id },
            RecordValue::ConsumerGroupTargetAssignmentMetadata(
                ConsumerGroupTargetAssignmentMetadataValue { assignment_epoch },
            ),
        )
    });
    let cg_current = (
        s(),
        s(),
        any::<i32>(),
        any::<i32>(),
        any::<i8>(),
        tps(),
        tps(),
    )
        .prop_map(|(group_id, member_id, e, pe, st, a, r)| {
            CoordinatorRecord::new(
                RecordKey::ConsumerGroupCurrentMemberAssignment {
                    group_id,
                    member_id,
                },
                RecordValue::ConsumerGroupCurrentMemberAssignment(
                    ConsumerGroupCurrentMemberAssignmentValue {
                        member_epoch: e,
                        previous_member_epoch: pe,
                        state: st,
                        assigned_partitions: a,
                        partitions_pending_revocation: r,
                    },
                ),
            )
        });
    let cg_regex = (
        s(),
        s(),
        prop::collection::vec(s(), 0..3),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(|(group_id, regex, topics, version, timestamp)| {
            CoordinatorRecord::new(
                RecordKey::ConsumerGroupRegularExpression { group_id, regex },
                RecordValue::ConsumerGroupRegularExpression(ConsumerGroupRegularExpressionValue {
                    topics,
                    version,
                    timestamp,
                }),
            )
        });
    let with_value = prop_oneof![
        offset,
        group,
        cg_meta,
        cg_partitions,
        cg_member,
        cg_target,
        cg_target_meta,
        cg_current,
        cg_regex
    ];
    (with_value, any::<bool>()).prop_map(|(r, tombstone)| {
        if tombstone {
            CoordinatorRecord::tombstone(r.key)
        } else {
            r
        }
    })
}

proptest! {
    #[test]
    fn records_round_trip(r in record()) {
        let (k, v) = r.encode();
        let back = CoordinatorRecord::decode(&k, v.as_deref()).unwrap().unwrap();
        prop_assert_eq!(back, r);
    }

    #[test]
    fn decoding_garbage_never_panics(
        key in prop::collection::vec(any::<u8>(), 0..40),
        value in prop::option::of(prop::collection::vec(any::<u8>(), 0..80)),
    ) {
        let _ = CoordinatorRecord::decode(&key, value.as_deref());
    }
}
