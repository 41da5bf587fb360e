"""scripts/idle_flood, shortened: 2,000 idle connections (half a request head each) on one worker, with a 3 s
header timeout, while another client keeps making requests.

Correctness is asserted: the worker raised its open-file limit and logged it, held every idle connection, served
every other request with 200, answered each idle one 408 and closed it at its header deadline (not before, and
within a few seconds after), and grew by a bounded number of bytes per connection; at the default connection
limit, reclaims are counted and nothing is refused 503. Speed is only printed (run with -s to see it): the repo
never asserts speed in a timed test, and scripts/idle_flood checks the p99 at full size.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "idle_flood"
CONNECTIONS = 2000
HEADER_TIMEOUT = 3.0
FD_MARGIN = 300  # descriptors besides the idle connections: the other client's, the server's own, pytest's
RSS_PER_CONNECTION = 16 * 1024  # bytes; measured about 5 KiB, and scripts/idle_flood holds 10,000 to 6.7 KB each


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("idle_flood", str(SCRIPT))
    spec = importlib.util.spec_from_loader("idle_flood", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["idle_flood"] = module  # its dataclass looks itself up there
    loader.exec_module(module)
    return module


idle_flood = load_script()


@pytest.fixture
def connections() -> Iterator[int]:
    """How many idle connections this machine's hard open-file limit allows, up to 2,000 (the test's own soft
    limit is raised for the test and put back after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    room = CONNECTIONS if hard == resource.RLIM_INFINITY else min(CONNECTIONS, hard - FD_MARGIN)
    if room < 500:
        pytest.skip(f"the open-file hard limit ({hard}) leaves room for only {room} idle connections")
    try:
        yield room
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def run(mode: str, n: int, workdir: Path) -> Any:
    server = idle_flood.Server(mode, n, HEADER_TIMEOUT, workdir)
    try:
        report = idle_flood.flood(
            mode=mode,
            address=server.address,
            worker_pid=server.worker_pid,
            output=server.output,
            n=n,
            header_timeout=HEADER_TIMEOUT,
            limit_concurrency=server.limit_concurrency,
            rate=200.0,
            close_slack=3.0,
            admin_url=server.admin_url,
            rss_budget=RSS_PER_CONNECTION * n,
            p99_budget=None,  # printed, not asserted
        )
    finally:
        server.stop()
    print(report.text())
    return report


def test_idle_connections_are_held_the_others_served_and_each_closed_at_its_header_deadline(
    connections: int, tmp_path: Path
) -> None:
    report = run("hold", connections, tmp_path)
    assert not report.failures, report.text()
    assert report.figures["answered_408"] == connections
    assert report.figures["probe_failed"] == 0 and report.figures["probe_requests"] > 500


def test_at_the_connection_limit_idle_ones_are_reclaimed_and_counted_never_refused(
    connections: int, tmp_path: Path
) -> None:
    if connections < 1500:
        pytest.skip(f"{connections} idle connections are too few to pass the default limit (1,000) by much")
    report = run("reclaim", connections, tmp_path)
    assert not report.failures, report.text()
    assert report.figures["held_after_open"] <= 1000
    assert report.figures["refused_503"] == 0
    assert report.figures["reclaimed"] >= connections - 1000
    assert report.figures["probe_failed"] == 0
