"""A consumer-group member in a process of its own, for tests that SIGKILL a member so that it
cannot leave the group: `python group_member.py VARIANT BOOTSTRAP GROUP TOPIC[,TOPIC...]`.

Prints {"assignment": [[topic, partition], ...]} on stdout whenever its assignment changes,
and polls until killed."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from group_support import Member  # noqa: E402
from support import wait_until  # noqa: E402


def main():
    variant, bootstrap, group, topics = sys.argv[1:5]
    member = Member(variant, bootstrap, group, topics.split(","), name="subprocess-member")
    last = None
    while True:
        # Member polls in its own thread; report what it holds, every 50 ms at most.
        wait_until(lambda: member.assignment() != last, 3600, "an assignment change")
        last = member.assignment()
        print(json.dumps({"assignment": sorted(last)}), flush=True)


if __name__ == "__main__":
    main()
