"""What the admin endpoints show, gathered by the master at one moment: every worker's published metrics
added up, each worker's process figures, and the master's own counts of worker starts and exits.

Counters must never go backwards in Prometheus's eyes, yet workers come and go: :class:`Census` keeps the
counters of workers that exited (their last published values) and adds them to the living workers'.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from ..server.metrics import LAYOUT

GAUGES = frozenset(
    [LAYOUT.in_flight, LAYOUT.ws_open, *range(LAYOUT.connections, LAYOUT.connections + 3)]
)  # the rest of the vector are counters
EXIT_REASONS = ("crash", "timeout", "recycle", "reload", "scale", "shutdown", "boot_failure")
RECENT_RESTARTS = 20
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TCP_INFO = struct.Struct("=8B6I")  # tcp_info's first fields, to tcpi_sacked (Linux)


@dataclass
class WorkerStatus:
    """One worker, as the status page and /metrics show it."""

    age: int  # the master's number for it (1, 2, ...): the label that survives a pid being reused
    pid: int
    state: str  # booting, ready, retiring, stopping
    uptime: float
    requests: int
    in_flight: int
    heartbeat_age: float
    rss: int  # bytes
    cpu: float  # seconds, user and system


@dataclass
class Restart:
    """A worker that exited, for the status page's list."""

    when: float  # time.time()
    age: int
    pid: int
    reason: str
    detail: str


@dataclass
class Backlog:
    """A listening TCP socket's accept queue, as the kernel reports it (TCP_INFO)."""

    address: str
    queued: int
    limit: int


@dataclass
class Snapshot:
    totals: list[int]
    workers: list[WorkerStatus]
    starts: int
    exits: dict[str, int]
    restarts: list[Restart]
    backlogs: list[Backlog]
    ready: bool
    state: str  # starting, serving, draining, stopping
    uptime: float
    taken: float = field(default_factory=time.time)


class Census:
    """The master's running counts: worker starts, exits by reason, the counters of exited workers."""

    def __init__(self) -> None:
        self.retired = [0] * LAYOUT.size
        self.starts = 0
        self.exits: Counter[str] = Counter()
        self.restarts: deque[Restart] = deque(maxlen=RECENT_RESTARTS)

    def started(self) -> None:
        self.starts += 1

    def exited(self, age: int, pid: int, reason: str, detail: str, last: tuple[int, ...] | None) -> None:
        """A worker is gone: count why, and keep its counters (gauges go with it)."""
        self.exits[reason] += 1
        self.restarts.appendleft(Restart(time.time(), age, pid, reason, detail))
        if last is not None:
            retired = self.retired
            for i, value in enumerate(last):
                if i not in GAUGES:
                    retired[i] += value

    def totals(self, live: list[tuple[int, ...]]) -> list[int]:
        """The exited workers' counters plus every living worker's vector (counters and gauges)."""
        totals = list(self.retired)
        for values in live:
            for i, value in enumerate(values):
                totals[i] += value
        return totals


def process_figures(pid: int) -> tuple[int, float]:
    """A process's resident memory (bytes) and CPU time (seconds), from /proc; zeros where it cannot be read."""
    rss, cpu = 0, 0.0
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            rss = int(f.read().split()[1]) * _PAGE
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The command may hold spaces and parentheses: the fields that follow start after the last ')'.
            fields = f.read().rpartition(b")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime and stime, fields 14 and 15 of stat(5)
    except (OSError, ValueError, IndexError):
        pass
    return rss, cpu


def backlog(sock: socket.socket) -> Backlog | None:
    """The accept queue of a listening TCP socket: for a listener, Linux reports its length in tcpi_unacked
    and its limit in tcpi_sacked. None for other sockets and platforms."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO.size)
        host, port = sock.getsockname()[:2]
    except OSError:
        return None
    if len(raw) < _TCP_INFO.size:
        return None
    fields = _TCP_INFO.unpack(raw)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Backlog(address, fields[12], fields[13])
