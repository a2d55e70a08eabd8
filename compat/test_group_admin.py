"""Consumer groups through the admin clients: ListGroups, DescribeGroups (and KIP-848
ConsumerGroupDescribe), DeleteGroups (NON_EMPTY_GROUP while members are in, success once it is
empty), OffsetFetch and OffsetCommit from an admin client (list / alter group offsets) and
OffsetDelete, with confluent-kafka's AdminClient and kafka-python's KafkaAdminClient."""

import pytest
from confluent_kafka import (ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType,
                             KafkaError, KafkaException, TopicPartition)
from confluent_kafka.admin import AdminClient

from group_support import Member, close_all, wait_balanced, wait_records
from support import create_topic, produce_spread, wait_until

PARTITIONS = 4
PER_PARTITION = 10


def setup_group(bootstrap, topic, group, variant):
    """A topic with PER_PARTITION records in each of its partitions, and two members of `group`
    that read everything and committed (offset PER_PARTITION everywhere)."""
    create_topic(bootstrap, topic, partitions=PARTITIONS)
    produce_spread(bootstrap, topic, [(p, None, b"%d-%d" % (p, i)) for i in range(PER_PARTITION)
                                      for p in range(PARTITIONS)])
    members = [Member(variant, bootstrap, group, [topic], name=f"{variant}#{i}")
               for i in range(2)]
    try:
        wait_balanced(members, {(topic, p) for p in range(PARTITIONS)})
        wait_records(members, PARTITIONS * PER_PARTITION)
        for m in members:
            m.commit()
    except BaseException:
        close_all(members)
        raise
    return members


@pytest.mark.parametrize("variant", ["confluent-range", "confluent-consumer"])
def test_confluent_group_admin(bootstrap, topic_name, variant):
    group = f"g-{topic_name}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    members = setup_group(bootstrap, topic_name, group, variant)
    try:
        kip848 = variant == "confluent-consumer"
        listed = admin.list_consumer_groups().result(30)
        assert listed.errors == []
        mine = [g for g in listed.valid if g.group_id == group]
        assert len(mine) == 1
        assert mine[0].state == ConsumerGroupState.STABLE
        assert mine[0].type == (ConsumerGroupType.CONSUMER if kip848
                                else ConsumerGroupType.CLASSIC)
        assert not mine[0].is_simple_consumer_group
        stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(30)
        assert group in {g.group_id for g in stable.valid}
        empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(30)
        assert group not in {g.group_id for g in empty.valid}

        desc = admin.describe_consumer_groups([group])[group].result(30)
        assert desc.group_id == group
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == ("uniform" if kip848 else "range")
        assert desc.coordinator.id == 1
        assert len(desc.members) == 2
        described = sorted(
            sorted((tp.topic, tp.partition) for tp in d.assignment.topic_partitions)
            for d in desc.members)
        assert described == sorted(sorted(m.assignment()) for m in members)
        for d in desc.members:
            assert d.member_id and d.client_id == "rdkafka" and d.host == "/127.0.0.1"
            if kip848:  # ConsumerGroupDescribe also reports the target assignment
                assert sorted(tp.partition for tp in d.target_assignment.topic_partitions) == \
                    sorted(tp.partition for tp in d.assignment.topic_partitions)

        # A group with members cannot be deleted.
        with pytest.raises(KafkaException) as info:
            admin.delete_consumer_groups([group])[group].result(30)
        assert info.value.args[0].code() == KafkaError.NON_EMPTY_GROUP

        offsets = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)])[group].result(30)
        assert sorted((tp.topic, tp.partition, tp.offset, tp.error)
                      for tp in offsets.topic_partitions) == \
            [(topic_name, p, PER_PARTITION, None) for p in range(PARTITIONS)]
        # Only some partitions.
        some = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic_name, 1), TopicPartition(topic_name, 3)])])[group]
        assert sorted((tp.partition, tp.offset) for tp in some.result(30).topic_partitions) == \
            [(1, PER_PARTITION), (3, PER_PARTITION)]
    finally:
        close_all(members)

    desc = admin.describe_consumer_groups([group])[group].result(30)
    assert (desc.state, desc.members) == (ConsumerGroupState.EMPTY, [])

    # Offsets of an empty group can be set by an admin; a new member starts there.
    altered = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic_name, p, 3 + p) for p in range(PARTITIONS)])])[group]
    assert sorted((tp.partition, tp.offset, tp.error)
                  for tp in altered.result(30).topic_partitions) == \
        [(p, 3 + p, None) for p in range(PARTITIONS)]
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    assert sorted((tp.partition, tp.offset) for tp in offsets.result(30).topic_partitions) == \
        [(p, 3 + p) for p in range(PARTITIONS)]
    m = Member(variant, bootstrap, group, [topic_name])
    try:
        recs = wait_records([m], sum(PER_PARTITION - 3 - p for p in range(PARTITIONS)))
    finally:
        m.close()
    assert {(p, min(o for _, q, o, _, _ in recs if q == p)) for p in range(PARTITIONS)} == \
        {(p, 3 + p) for p in range(PARTITIONS)}

    # Empty again: deleting works, and the group and its offsets are gone.
    assert admin.delete_consumer_groups([group])[group].result(30) is None
    listed = admin.list_consumer_groups().result(30)
    assert group not in {g.group_id for g in listed.valid}
    desc = admin.describe_consumer_groups([group])[group].result(30)
    assert desc.state == ConsumerGroupState.DEAD and desc.members == []
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    assert offsets.result(30).topic_partitions == []
    # Deleting it again: GROUP_ID_NOT_FOUND.
    with pytest.raises(KafkaException) as info:
        admin.delete_consumer_groups([group])[group].result(30)
    assert info.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND


def test_kafka_python_group_admin(bootstrap, topic_name):
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KpTopicPartition
    from kafka.structs import OffsetAndMetadata

    group = f"g-{topic_name}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    members = setup_group(bootstrap, topic_name, group, "kafka-python-roundrobin")
    try:
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed[group]["protocol_type"] == "consumer"
        assert listed[group]["group_state"] == "Stable"
        assert listed[group]["group_type"] == "classic"

        desc = admin.describe_groups([group])[group]
        assert desc["error"] is None
        assert desc["group_state"] == "Stable"
        assert desc["protocol_type"] == "consumer"
        assert desc["protocol_data"] == "roundrobin"
        assert len(desc["members"]) == 2
        described = sorted(
            sorted((a["topic"], p) for a in d["member_assignment"]["assigned_partitions"]
                   for p in a["partitions"])
            for d in desc["members"])
        assert described == sorted(sorted(m.assignment()) for m in members)
        for d in desc["members"]:
            assert d["member_metadata"]["topics"] == [topic_name]
            assert d["client_host"] == "/127.0.0.1"

        # DeleteGroups answers NON_EMPTY_GROUP (kafka-python reports the error by name).
        assert admin.delete_groups([group]) == {group: "NonEmptyGroupError"}

        offsets = admin.list_group_offsets({group: None})[group]
        assert {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()} == \
            {(topic_name, p): PER_PARTITION for p in range(PARTITIONS)}
        # OffsetDelete of a topic the members are subscribed to: GROUP_SUBSCRIBED_TO_TOPIC.
        tp0 = KpTopicPartition(topic_name, 0)
        result = admin.delete_group_offsets(group, [tp0])
        assert {tp: err.__name__ for tp, err in result.items()} == \
            {tp0: "GroupSubscribedToTopicError"}
    finally:
        close_all(members)

    desc = admin.describe_groups([group])[group]
    assert (desc["group_state"], desc["members"]) == ("Empty", [])

    result = admin.alter_group_offsets(group, {KpTopicPartition(topic_name, p):
                                               OffsetAndMetadata(5, "", -1)
                                               for p in range(PARTITIONS)})
    assert all(err.__name__ == "NoError" for err in result.values()), result
    offsets = admin.list_group_offsets({group: None})[group]
    assert {tp.partition: om.offset for tp, om in offsets.items()} == \
        {p: 5 for p in range(PARTITIONS)}

    # Once nobody is subscribed, OffsetDelete removes the partition's offset.
    result = admin.delete_group_offsets(group, [KpTopicPartition(topic_name, 0)])
    assert {tp.partition: err.__name__ for tp, err in result.items()} == {0: "NoError"}
    offsets = admin.list_group_offsets({group: None})[group]
    assert {tp.partition: om.offset for tp, om in offsets.items()} == \
        {p: 5 for p in range(1, PARTITIONS)}

    assert admin.delete_groups([group]) == {group: "OK"}
    wait_until(lambda: group not in {g["group_id"] for g in admin.list_groups()}, 10,
               "the deleted group to leave ListGroups")
    gone = admin.describe_groups([group])[group]
    assert gone["group_state"] == "Dead"
    assert "GroupIdNotFoundError" in gone["error"]
    assert admin.list_group_offsets({group: None})[group] == {}
    admin.close()
