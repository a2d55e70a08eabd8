"""Fixtures for the compat tests: a real `strom server` process that real clients talk to.

* `broker` (session scope): one broker for the whole run, on a free port, data in a temp dir.
  Tests share it, so each test uses its own topic names (`topic_name` fixture).
* `broker_factory` (function scope): a broker of the test's own, with its own data dir under
  `tmp_path`, for tests that SIGKILL / restart it (`kill()`, `restart()`).

On a failing test the broker's log written while the test ran is attached to the report
(section "strom broker log"). See README.md for how to run one test.
"""

import os
import re
import uuid

import pytest

from group_support import FAST_GROUP_OVERRIDES
from support import StromBroker, repo_root

_ACTIVE = []  # brokers alive right now, for the failure report
_CREATED = []  # every broker ever started in this session, in order


def _strom_bin():
    path = os.environ.get("STROM_BIN") or os.path.join(repo_root(), "target", "release", "strom")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.exit(
            f"strom binary not found at {path}: build it with `cargo build --release --bin strom` "
            "or set STROM_BIN",
            returncode=4,
        )
    return path


def _stop_cleanly(b):
    """SIGTERM; the broker must still be alive then, and exit 0 (clean shutdown)."""
    if b.proc is None:  # killed by the test and not restarted
        return
    died = b.proc.poll()
    code = b.stop()
    if died is not None or code != 0:
        pytest.fail(
            f"strom broker {b.bootstrap} "
            + (f"had died (exit {died})" if died is not None else f"exited {code} on SIGTERM")
            + ":\n" + b.log_text(max_chars=8000),
            pytrace=False,
        )


@pytest.fixture(scope="session")
def strom_bin():
    return _strom_bin()


@pytest.fixture(scope="session")
def broker(strom_bin, tmp_path_factory):
    """The shared broker; yields a started `StromBroker` (`.bootstrap` is "127.0.0.1:PORT")."""
    b = StromBroker(strom_bin, tmp_path_factory.mktemp("strom-shared"),
                    overrides=FAST_GROUP_OVERRIDES)
    _CREATED.append(b)
    b.start()
    _ACTIVE.append(b)
    try:
        yield b
    finally:
        _ACTIVE.remove(b)
        _stop_cleanly(b)


@pytest.fixture(scope="session")
def bootstrap(broker):
    return broker.bootstrap


@pytest.fixture
def broker_factory(strom_bin, tmp_path):
    """Starts brokers of the test's own: `broker_factory(**overrides)` -> started StromBroker.
    Like the shared broker they start with FAST_GROUP_OVERRIDES (overridable)."""
    made = []

    def make(**overrides):
        b = StromBroker(strom_bin, tmp_path / f"strom-{len(made)}",
                        overrides={**FAST_GROUP_OVERRIDES, **overrides})
        made.append(b)
        _CREATED.append(b)
        _ACTIVE.append(b)
        b.start()
        return b

    try:
        yield make
    finally:
        for b in made:
            _ACTIVE.remove(b)
        for b in made:
            _stop_cleanly(b)


@pytest.fixture
def topic_name(request):
    """A topic name unique to this test (and this run), valid for Kafka."""
    base = re.sub(r"[^a-zA-Z0-9._-]", "_", request.node.name)[:120]
    return f"{base}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _broker_log_guard(request):
    """Remembers where each live broker's log was when the test began, and afterwards fails
    the test if any broker logged a WARN/ERROR line meanwhile (a client's request that made it
    close a connection, a storage error, ...), unless the test expects such lines with
    `@pytest.mark.broker_warnings(regex, ...)`."""
    marks = {}
    request.node._strom_log_marks = marks
    watched = list(_ACTIVE)
    for b in watched:
        marks[id(b)] = b.log_size()
    created_before = len(_CREATED)
    yield
    watched += _CREATED[created_before:]
    allowed = []
    for m in request.node.iter_markers("broker_warnings"):
        allowed += [re.compile(a) for a in m.args]
    unexpected = []
    for b in watched:
        for line in b.problems_since(marks.get(id(b), 0)):
            if not any(a.search(line) for a in allowed):
                unexpected.append(line)
    if unexpected:
        pytest.fail(
            "the broker logged unexpected warnings/errors during this test:\n"
            + "\n".join(unexpected[:50]),
            pytrace=False,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or report.when not in ("call", "setup", "teardown"):
        return
    marks = getattr(item, "_strom_log_marks", {})
    for b in list(_ACTIVE):
        text = b.log_text(since=marks.get(id(b), 0))
        if text:
            report.sections.append((f"strom broker log ({b.bootstrap}, {b.data_dir})", text))
