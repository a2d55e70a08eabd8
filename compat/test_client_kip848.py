"""strom's group consumer with `group.protocol=consumer` (KIP-848, ConsumerGroupHeartbeat) in
one group with a confluent-kafka consumer speaking the same protocol: the broker's assignor
splits the partitions between them without overlap, every record is read once, and when strom
leaves (epoch -1) confluent takes its partitions over at the offsets strom committed. Also
`strom consume --group G --consumer-property group.protocol=consumer`."""

import subprocess

from group_support import Member, StromMember, close_all, share_then_take_over
from support import create_topic, produce_spread, wait_until


def test_strom_and_confluent_share_a_kip848_group(broker, bootstrap, topic_name, strom_bin,
                                                  tmp_path):
    create_topic(bootstrap, topic_name, partitions=4)
    group = f"kip848-{topic_name}"
    ck = Member("confluent-consumer", bootstrap, group, [topic_name])
    strom = StromMember(strom_bin, bootstrap, group, topic_name, tmp_path, protocol="consumer")
    share_then_take_over(bootstrap, topic_name, ck, strom,
                         "the uniform assignor splits 4 partitions 2 + 2")


def test_strom_consume_joins_a_kip848_group(broker, bootstrap, topic_name, strom_bin):
    create_topic(bootstrap, topic_name, partitions=4)
    group = f"kip848-cli-{topic_name}"
    all_partitions = {(topic_name, p) for p in range(4)}
    ck = Member("confluent-consumer", bootstrap, group, [topic_name])
    members = [ck]
    proc = None
    try:
        wait_until(lambda: ck.assignment() == all_partitions, 60, "confluent owning all")
        proc = subprocess.Popen(
            [strom_bin, "consume", topic_name, "--group", group, "--from-beginning",
             "--consumer-property", "group.protocol=consumer",
             "--property", "print.partition=true", "--max-messages", "50",
             "--timeout-ms", "60000", "--bootstrap-server", bootstrap],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: len(ck.assignment()) == 2, 60, "strom taking two partitions")
        mine = ck.assignment()
        produce_spread(bootstrap, topic_name,
                       [(i % 4, b"k", f"v{i}".encode()) for i in range(100)])
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Processed a total of 50 messages" in err, err
        lines = out.splitlines()
        assert len(lines) == 50, lines
        strom_partitions = {int(line.split("\t")[0].removeprefix("Partition:")) for line in lines}
        assert strom_partitions == {p for (_, p) in all_partitions - mine}
        wait_until(lambda: len(ck.records()) >= 50, 60, "confluent's 50 records")
        assert {p for (_, p, _, _, _) in ck.records()} == {p for (_, p) in mine}
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        close_all(members)
