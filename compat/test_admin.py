"""Topic administration and cluster description through the clients' admin APIs:
CreateTopics, Metadata (describe), DescribeConfigs, DeleteTopics, DescribeCluster, and topic
auto-creation through a producer's Metadata request."""


import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

import kafka.errors as kp_errors
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpConfigResourceType
from kafka.admin import KafkaAdminClient

from support import ck_producer, kp_producer, produce, wait_until

# What a Kafka broker with no authorizer reports as authorized (kafka-python's names).
KP_TOPIC_OPS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS",
                "ALTER_CONFIGS"}
KP_CLUSTER_OPS = {"CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS",
                  "ALTER_CONFIGS", "IDEMPOTENT_WRITE"}
INVALID_NAMES = ["bad name", "semi;colon", "a" * 250, ".", "..", ""]


def ck_admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def ck_error(future, timeout=30):
    """The KafkaError a future failed with (the test fails if it succeeded)."""
    with pytest.raises(KafkaException) as info:
        future.result(timeout)
    return info.value.args[0]


def ck_topic_names(admin):
    return set(admin.list_topics(timeout=10).topics)


# --- confluent-kafka ----------------------------------------------------------------------

def test_confluent_create_describe_delete(bootstrap, topic_name):
    admin = ck_admin(bootstrap)
    configs = {"retention.ms": "54321", "cleanup.policy": "compact"}
    fs = admin.create_topics(
        [NewTopic(topic_name, num_partitions=3, replication_factor=1, config=configs)],
        operation_timeout=10,
    )
    assert fs[topic_name].result(30) is None

    # Describe: partitions, leaders, replication factor (Metadata).
    desc = admin.describe_topics(TopicCollection([topic_name]))[topic_name].result(30)
    assert desc.name == topic_name
    assert not desc.is_internal
    assert desc.topic_id is not None
    assert [p.id for p in desc.partitions] == [0, 1, 2]
    for p in desc.partitions:
        assert p.leader is not None and p.leader.id == 1
        assert [r.id for r in p.replicas] == [1]  # replication factor 1
        assert [r.id for r in p.isr] == [1]
    md = admin.list_topics(topic_name, timeout=10)
    assert sorted(md.topics[topic_name].partitions) == [0, 1, 2]
    assert md.topics[topic_name].error is None

    # DescribeConfigs: overrides are dynamic topic configs, the rest are defaults.
    res = ConfigResource(ResourceType.TOPIC, topic_name)
    entries = admin.describe_configs([res])[res].result(30)
    assert entries["retention.ms"].value == "54321"
    assert entries["cleanup.policy"].value == "compact"
    assert entries["retention.ms"].source == 1  # DYNAMIC_TOPIC_CONFIG
    assert entries["max.message.bytes"].value == "1048588"
    assert entries["max.message.bytes"].source == 5  # DEFAULT_CONFIG
    assert entries["retention.ms"].is_default is False
    assert entries["segment.bytes"].is_default is True

    # Creating it again: TOPIC_ALREADY_EXISTS, and the topic is unchanged.
    err = ck_error(admin.create_topics([NewTopic(topic_name, 5)])[topic_name])
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS, err
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 3

    # Delete; then it is gone, and deleting again is UNKNOWN_TOPIC_OR_PART.
    assert admin.delete_topics([topic_name], operation_timeout=10)[topic_name].result(30) is None
    wait_until(lambda: topic_name not in ck_topic_names(admin), 10, "the topic to disappear")
    err = ck_error(admin.delete_topics([topic_name], operation_timeout=10)[topic_name])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART, err


def test_confluent_invalid_topic_names_are_rejected(bootstrap):
    admin = ck_admin(bootstrap)
    names = [n for n in INVALID_NAMES if n]  # librdkafka itself refuses an empty name
    fs = admin.create_topics([NewTopic(n, 1) for n in names], operation_timeout=10)
    for name in names:
        err = ck_error(fs[name])
        assert err.code() == KafkaError.TOPIC_EXCEPTION, (name, err)  # INVALID_TOPIC_EXCEPTION
    assert not (set(names) & ck_topic_names(admin))


def test_confluent_invalid_partition_count_and_configs(bootstrap, topic_name):
    admin = ck_admin(bootstrap)
    bad_config = admin.create_topics(
        [NewTopic(topic_name, 1, config={"cleanup.policy": "sometimes"})]
    )[topic_name]
    assert ck_error(bad_config).code() == KafkaError.INVALID_CONFIG
    unknown_config = admin.create_topics(
        [NewTopic(topic_name, 1, config={"no.such.config": "1"})]
    )[topic_name]
    assert ck_error(unknown_config).code() == KafkaError.INVALID_CONFIG
    too_many_replicas = admin.create_topics([NewTopic(topic_name, 1, replication_factor=3)])[
        topic_name
    ]
    assert ck_error(too_many_replicas).code() == KafkaError.INVALID_REPLICATION_FACTOR
    assert topic_name not in ck_topic_names(admin)


def test_confluent_create_partitions(bootstrap, topic_name):
    from confluent_kafka.admin import NewPartitions

    admin = ck_admin(bootstrap)
    admin.create_topics([NewTopic(topic_name, 2)])[topic_name].result(30)
    admin.create_partitions([NewPartitions(topic_name, 5)])[topic_name].result(30)
    wait_until(
        lambda: len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 5,
        10,
        "5 partitions",
    )
    err = ck_error(admin.create_partitions([NewPartitions(topic_name, 3)])[topic_name])
    assert err.code() == KafkaError.INVALID_PARTITIONS


def test_confluent_describe_cluster_and_broker_configs(broker):
    admin = ck_admin(broker.bootstrap)
    cluster = admin.describe_cluster().result(30)
    assert cluster.cluster_id
    assert cluster.controller is not None and cluster.controller.id == 1
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, "127.0.0.1", broker.port)]
    md = admin.list_topics(timeout=10)
    assert md.cluster_id == cluster.cluster_id
    assert md.controller_id == 1
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {1: ("127.0.0.1", broker.port)}

    res = ConfigResource(ResourceType.BROKER, "1")
    entries = admin.describe_configs([res])[res].result(30)
    assert entries["num.partitions"].value == "1"
    assert entries["message.max.bytes"].value == "1048588"
    assert entries["auto.create.topics.enable"].value == "true"


def test_confluent_authorized_operations(broker, topic_name):
    """With no authorizer a Kafka broker reports every operation a resource supports."""
    from confluent_kafka.admin import AclOperation

    admin = ck_admin(broker.bootstrap)
    admin.create_topics([NewTopic(topic_name, 1)])[topic_name].result(30)
    desc = admin.describe_topics(TopicCollection([topic_name]),
                                 include_authorized_operations=True)[topic_name].result(30)
    assert set(desc.authorized_operations or []) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
        AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
    }
    cluster = admin.describe_cluster(include_authorized_operations=True).result(30)
    assert set(cluster.authorized_operations or []) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE,
        AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
        AclOperation.IDEMPOTENT_WRITE,
    }
    # Not asked for: not reported.
    assert admin.describe_cluster().result(30).authorized_operations is None


# --- kafka-python -------------------------------------------------------------------------

def test_kafka_python_create_describe_delete(broker, topic_name):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = admin.create_topics(
            {topic_name: {"num_partitions": 4, "replication_factor": 1,
                          "configs": {"retention.ms": "12345", "max.message.bytes": "2000000"}}}
        )
        (created,) = result["topics"]
        assert created["error_code"] == 0
        assert created["num_partitions"] == 4
        assert created["replication_factor"] == 1
        assert created["configs"]["retention.ms"]["value"] == "12345"

        (topic,) = admin.describe_topics([topic_name])
        assert topic["error_code"] == 0
        assert topic["name"] == topic_name
        assert topic["is_internal"] is False
        assert set(topic["authorized_operations"] or []) == KP_TOPIC_OPS
        assert sorted(p["partition_index"] for p in topic["partitions"]) == [0, 1, 2, 3]
        for p in topic["partitions"]:
            assert p["error_code"] == 0
            assert p["leader_id"] == 1
            assert p["replica_nodes"] == [1]
            assert p["isr_nodes"] == [1]
        assert topic_name in admin.list_topics()

        configs = admin.describe_configs(
            [KpConfigResource(KpConfigResourceType.TOPIC, topic_name)], config_filter="all"
        )["topic"][topic_name]
        assert configs["retention.ms"]["value"] == "12345"
        assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert configs["max.message.bytes"]["value"] == "2000000"
        assert configs["cleanup.policy"]["value"] == "delete"
        assert configs["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
        # The default filter keeps only the modified ones.
        modified = admin.describe_configs(
            [KpConfigResource(KpConfigResourceType.TOPIC, topic_name)]
        )["topic"][topic_name]
        assert set(modified) == {"retention.ms", "max.message.bytes"}

        with pytest.raises(kp_errors.TopicAlreadyExistsError):
            admin.create_topics({topic_name: {"num_partitions": 1}})

        deleted = admin.delete_topics([topic_name])
        assert [(t["name"], t["error_code"]) for t in deleted["topics"]] == [(topic_name, 0)]
        wait_until(lambda: topic_name not in admin.list_topics(), 10, "the topic to disappear")
        with pytest.raises(kp_errors.UnknownTopicOrPartitionError):
            admin.delete_topics([topic_name])
    finally:
        admin.close()


def test_kafka_python_invalid_topic_names_are_rejected(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        for name in INVALID_NAMES:
            with pytest.raises(kp_errors.InvalidTopicError):
                admin.create_topics({name: {"num_partitions": 1}})
        assert not (set(INVALID_NAMES) & set(admin.list_topics()))
    finally:
        admin.close()


def test_kafka_python_describe_cluster(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        cluster = admin.describe_cluster()
        assert cluster["cluster_id"]
        assert cluster["controller_id"] == 1
        assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [
            (1, "127.0.0.1", broker.port)
        ]
        assert all(b["is_fenced"] is False for b in cluster["brokers"])
        # kafka-python always asks for the authorized operations.
        assert set(cluster["authorized_operations"] or []) == KP_CLUSTER_OPS
        configs = admin.describe_configs(
            [KpConfigResource(KpConfigResourceType.BROKER, "1")], config_filter="all"
        )["broker"]["1"]
        assert configs["num.partitions"]["value"] == "1"
    finally:
        admin.close()


# --- auto-creation through a producer's Metadata request ----------------------------------

def test_producers_auto_create_topics_with_default_partitions(broker_factory, topic_name):
    b = broker_factory(**{"num.partitions": "3"})
    ck_topic, kp_topic = topic_name + "-ck", topic_name + "-kp"

    acks = produce("confluent", b.bootstrap, ck_topic, [{"value": b"hello"}])
    assert [o for o, _ in acks] == [0]

    kp = kp_producer(b.bootstrap)
    try:
        meta = kp.send(kp_topic, value=b"hello", partition=0).get(30)
        assert meta.offset == 0
        assert kp.partitions_for(kp_topic) == {0, 1, 2}
    finally:
        kp.close(10)

    admin = ck_admin(b.bootstrap)
    md = admin.list_topics(timeout=10)
    for t in (ck_topic, kp_topic):
        assert sorted(md.topics[t].partitions) == [0, 1, 2], t
        for part in md.topics[t].partitions.values():
            assert part.leader == 1 and part.replicas == [1]


def test_metadata_does_not_auto_create_when_disabled(broker_factory, topic_name):
    b = broker_factory(**{"auto.create.topics.enable": "false"})
    admin = ck_admin(b.bootstrap)
    md = admin.list_topics(topic_name, timeout=10)
    assert md.topics[topic_name].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    p = ck_producer(b.bootstrap, **{"message.timeout.ms": 2000})
    reports = [None]

    def cb(err, msg):
        reports[0] = err

    p.produce(topic_name, b"x", partition=0, on_delivery=cb)
    assert p.flush(15) == 0
    assert reports[0] is not None
    assert reports[0].code() in (KafkaError._MSG_TIMED_OUT, KafkaError.UNKNOWN_TOPIC_OR_PART,
                                 KafkaError._UNKNOWN_TOPIC), reports[0]
    assert topic_name not in ck_topic_names(admin)


# --- less common CreateTopics / Metadata forms ---------------------------------------------

def test_confluent_validate_only_creates_nothing(bootstrap, topic_name):
    admin = ck_admin(bootstrap)
    fs = admin.create_topics([NewTopic(topic_name, 2)], validate_only=True)
    assert fs[topic_name].result(30) is None
    assert topic_name not in ck_topic_names(admin)
    bad = admin.create_topics([NewTopic(topic_name, 1, config={"cleanup.policy": "x"})],
                              validate_only=True)[topic_name]
    assert ck_error(bad).code() == KafkaError.INVALID_CONFIG
    assert topic_name not in ck_topic_names(admin)


def test_kafka_python_assignments_and_topic_ids(bootstrap, topic_name):
    import uuid

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        # An explicit replica assignment instead of a partition count.
        (created,) = admin.create_topics(
            {topic_name: {"assignments": {0: [1], 1: [1], 2: [1]}}})["topics"]
        assert created["error_code"] == 0 and created["num_partitions"] == 3
        with pytest.raises(kp_errors.InvalidReplicationAssignmentError):
            admin.create_topics({topic_name + "-b": {"assignments": {0: [2]}}})  # no broker 2
        with pytest.raises(kp_errors.InvalidPartitionsError):
            admin.create_topics({topic_name + "-c": {"num_partitions": 0}})

        # Describe by topic id (Metadata v12+), known and unknown.
        (by_name,) = admin.describe_topics([topic_name])
        topic_id = uuid.UUID(by_name["topic_id"])
        (by_id,) = admin.describe_topics([topic_id])
        assert by_id["name"] == topic_name and by_id["error_code"] == 0
        assert len(by_id["partitions"]) == 3
        (unknown,) = admin.describe_topics([uuid.uuid4()])
        assert unknown["error_code"] == kp_errors.UnknownTopicIdError.errno

        # CreatePartitions
        admin.create_partitions({topic_name: {"count": 5, "assignments": [[1], [1]]}})
        (after,) = admin.describe_topics([topic_name])
        assert sorted(p["partition_index"] for p in after["partitions"]) == [0, 1, 2, 3, 4]
    finally:
        admin.close()
