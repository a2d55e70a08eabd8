"""strom's own group consumer (strom-client, through `strom verifiable-consumer --group-id`)
in one classic group with a confluent-kafka consumer (librdkafka, range assignor): the two
share the partitions without overlap, every record is read once, the survivor takes over the
partitions of the one that leaves at the offsets it committed, and offsets committed by
confluent-kafka are where strom's consumer starts."""

import os

from confluent_kafka import TopicPartition as CkTopicPartition

from group_support import Member, StromMember, share_then_take_over
from support import ck_consumer, create_topic, produce_spread


def test_strom_and_confluent_share_a_group_and_honour_each_others_commits(
        broker, bootstrap, topic_name, strom_bin, tmp_path):
    create_topic(bootstrap, topic_name, partitions=4)
    group = f"mixed-{topic_name}"
    ck = Member("confluent-range", bootstrap, group, [topic_name])
    strom = StromMember(strom_bin, bootstrap, group, topic_name, tmp_path)
    share_then_take_over(bootstrap, topic_name, ck, strom, "range splits 4 partitions 2 + 2")


def test_strom_starts_at_offsets_confluent_committed(broker, bootstrap, topic_name, strom_bin,
                                                      tmp_path):
    create_topic(bootstrap, topic_name, partitions=1)
    group = f"resume-{topic_name}"
    produce_spread(bootstrap, topic_name, [(0, None, f"old{i}".encode()) for i in range(10)])
    c = ck_consumer(bootstrap, **{"group.id": group})
    try:
        c.commit(offsets=[CkTopicPartition(topic_name, 0, 7)], asynchronous=False)
    finally:
        c.close()
    strom = StromMember(strom_bin, bootstrap, group, topic_name, tmp_path, max_messages=3)
    try:
        code = strom.proc.wait(60)
        strom.thread.join(10)
        assert code == 0, strom.proc.stderr.read()
        assert [o for _, o, _ in strom.read()] == [7, 8, 9]
        assert strom.committed == {0: 10}
    finally:
        if strom.proc.poll() is None:
            strom.proc.kill()
    # And confluent's next member of the group starts where strom committed.
    c = ck_consumer(bootstrap, **{"group.id": group})
    try:
        committed = c.committed([CkTopicPartition(topic_name, 0)], timeout=10)
        assert committed[0].offset == 10
    finally:
        c.close()
    assert os.path.exists(tmp_path)
