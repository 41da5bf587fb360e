"""What the master knows about each worker, and the checks that decide a worker's fate.

Every check is a pure function of a :class:`WorkerInfo`, the worker's board slot and
the time, so the policy (when to abort, kill or recycle) is readable in one place and
testable without processes.
"""

from __future__ import annotations

import logging
import os
import random
import signal
from dataclasses import dataclass, field

from ..config import Config
from ..server.metrics import CONNECTIONS, LAYOUT
from .board import READY, RETIRING, Slot

KILL_GRACE = 2.0  # after SIGABRT (traceback dump), how long before SIGKILL
STOP_GRACE = 5.0  # past graceful_timeout, how long a stopping worker gets before SIGKILL
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class WorkerInfo:
    """One worker process, as the master tracks it. Hooks receive it as ``worker``: it has the ``pid``,
    ``ppid``, ``age``, ``log`` and ``cfg`` that gunicorn's hooks use."""

    age: int  # spawn order, unique for the master's life
    slot: int
    generation: int  # bumped by every reload; older generations are retired
    started: float  # time.monotonic() at fork
    cfg: Config = field(repr=False)
    ppid: int = 0  # the master
    pid: int = 0
    ready: bool = False
    retiring: str = ""  # why it is being replaced ("" while it is not)
    stop_sent: float | None = None
    abort_sent: float | None = None
    kill_sent: bool = False
    abandoned: bool = False  # of a generation that could not boot; killed on purpose
    max_requests: int = 0  # this worker's limits, jitter included; 0 means none
    max_lifetime: float = 0.0
    max_memory: int = 0  # bytes
    memory_checked: float = field(default=0.0, repr=False)

    log = logging.getLogger("monoceros.error")  # gunicorn hooks log through worker.log

    @classmethod
    def new(cls, config: Config, age: int, slot: int, generation: int, now: float) -> WorkerInfo:
        """A worker record with its recycling limits drawn, jitter included."""
        info = cls(age=age, slot=slot, generation=generation, started=now, cfg=config, ppid=os.getpid())
        if config.max_requests:
            info.max_requests = config.max_requests + random.randint(0, config.max_requests_jitter)
        if config.max_worker_lifetime:
            info.max_lifetime = config.max_worker_lifetime + random.uniform(0, config.max_worker_lifetime_jitter)
        if config.max_worker_memory:
            mib = config.max_worker_memory + random.randint(0, config.max_worker_memory_jitter)
            info.max_memory = mib * 1024 * 1024
        return info

    def limits(self) -> str:
        """Its recycling limits, jitter included, for the log line that announces it ('' when none)."""
        parts = []
        if self.max_requests:
            parts.append(f"{self.max_requests} requests")
        if self.max_lifetime:
            parts.append(f"{self.max_lifetime:.1f} s")
        if self.max_memory:
            parts.append(f"{self.max_memory // 2**20} MiB")
        return f", recycled at {' or '.join(parts)}" if parts else ""


def became_ready(info: WorkerInfo, slot: Slot) -> bool:
    # A worker with a small request limit may reach it before the master's next look: it was ready too.
    return not info.ready and slot.state in (READY, RETIRING)


def heartbeat_overdue(info: WorkerInfo, slot: Slot, config: Config, now: float) -> float | None:
    """Seconds since the last heartbeat when that exceeds --timeout (and nothing was done yet), else None."""
    if not config.timeout or info.abort_sent is not None or info.kill_sent:
        return None
    silent = now - slot.heartbeat
    return silent if silent > config.timeout else None


def escalation(info: WorkerInfo, config: Config, now: float) -> signal.Signals | None:
    """SIGKILL for a worker that ignored SIGABRT, or outstayed its graceful stop."""
    if info.kill_sent:
        return None
    if info.abort_sent is not None and now - info.abort_sent > KILL_GRACE:
        return signal.SIGKILL
    if info.stop_sent is not None and now - info.stop_sent > config.graceful_timeout + STOP_GRACE:
        return signal.SIGKILL
    return None


def recycle_reason(info: WorkerInfo, slot: Slot, now: float) -> str:
    """Why a ready worker should be replaced now ("" if it should not). A worker counts its own requests and
    stops at its limit (see server/worker.py); the master only learns that it did, to replace it."""
    if not info.ready or info.retiring:
        return ""
    if slot.state == RETIRING:
        return f"served {slot.requests} requests (max {info.max_requests})"
    if info.max_lifetime and now - info.started >= info.max_lifetime:
        return f"ran {now - info.started:.0f} s (max {info.max_lifetime:.0f} s)"
    if info.max_memory and now - info.memory_checked >= 1.0:
        info.memory_checked = now
        rss = resident_memory(info.pid)
        if rss > info.max_memory:
            return f"uses {rss // 2**20} MiB (max {info.max_memory // 2**20} MiB)"
    return ""


def resident_memory(pid: int) -> int:
    """A process's RSS in bytes (Linux /proc), or 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def exit_reason(info: WorkerInfo, stopping: bool) -> str:
    """Why a worker exited, in one word of admin.snapshot.EXIT_REASONS (the metrics' label)."""
    if info.abort_sent is not None:
        return "timeout"
    if stopping:
        return "shutdown"
    if info.abandoned or not info.ready:
        return "boot_failure"
    if info.retiring == "reloaded":
        return "reload"
    if info.retiring == "scaled down":
        return "scale"
    return "recycle" if info.retiring else "crash"


def describe_exit(status: int) -> tuple[str, int | None]:
    """A waitpid status in words, and the exit code when the worker exited by itself."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        text = f"was killed by {name}"
        if sig == signal.SIGKILL:
            text += " (perhaps out of memory?)"
        return text, None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return f"exited with code {code}", code


def last_load(values: tuple[int, ...] | None, slot: Slot, now: float) -> str:
    """What a worker that died was serving, from the metrics it last published with its heartbeat (with
    --admin-bind, every 0.25 s): '' when it published none. A worker killed (-9, out of memory, a crash) takes
    these requests with it, so the log says how many clients saw a connection cut."""
    if values is None:
        return ""
    in_flight = values[LAYOUT.in_flight]
    connections = sum(values[LAYOUT.connections : LAYOUT.connections + len(CONNECTIONS)])
    return (
        f"; at its last heartbeat, {max(0.0, now - slot.heartbeat):.2f} s before, it had {in_flight} request(s) "
        f"in flight on {connections} connection(s)"
    )
