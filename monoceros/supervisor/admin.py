"""The master's side of the admin listener: it binds it, keeps the census, and builds the snapshots.

The master serves the admin endpoints itself, so that /healthz, /readyz and /metrics answer while workers
restart (and a worker's blocked loop cannot hide from them). Its figures come from the board (each worker's
published metrics and heartbeat) and from /proc; asking for them costs the workers nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
import time
from typing import Protocol

from ..admin.endpoints import Endpoints
from ..admin.listener import AdminListener
from ..admin.snapshot import Census, Snapshot, WorkerStatus, backlog, process_figures
from ..config import Config
from ..errors import ConfigError
from ..server.listeners import ADMIN_FD_NAME, create_socket, describe, inherited_socket, parse_bind
from ..server.metrics import LAYOUT
from .board import BOOTING, READY, RETIRING, STOPPING, Board
from .health import WorkerInfo

log = logging.getLogger("monoceros.error")

_STATES = {BOOTING: "booting", READY: "ready", RETIRING: "retiring", STOPPING: "stopping"}


def bind_admin(config: Config) -> socket.socket:
    """The admin listener's socket: inherited (named ``monoceros-admin`` by a USR2 re-exec or a systemd
    socket unit's FileDescriptorName), else bound; a unix one is 660 (the operator's group may read it)."""
    assert config.admin_bind is not None
    inherited = inherited_socket(ADMIN_FD_NAME)
    if inherited is not None:
        log.info("Admin listener at: %s (inherited)", describe(inherited, False))
        return inherited
    try:
        spec = parse_bind(config.admin_bind)
    except ConfigError as exc:
        raise ConfigError(f"admin_bind {config.admin_bind!r}: {str(exc).partition(': ')[2]}") from None
    if spec.kind == "fd":
        raise ConfigError(f"admin_bind {config.admin_bind!r}: use HOST:PORT or unix:PATH")
    sock = create_socket(spec, dataclasses.replace(config, backlog=64, uds_perms=0o660))
    if spec.kind == "tcp" and not _loopback(spec.host) and not (config.admin_token or config.admin_basic_auth):
        log.warning(
            "The admin listener on %s is reachable from other machines and has no --admin-token or "
            "--admin-basic-auth: anyone who can connect reads the metrics and the status page",
            describe(sock, False),
        )
    log.info("Admin listener at: %s (/metrics, /healthz, /readyz, status page at /)", describe(sock, False))
    return sock


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Master(Protocol):
    """The arbiter, as the admin listener sees it."""

    config: Config
    workers: dict[int, WorkerInfo]
    board: Board
    sockets: list[socket.socket]

    @property
    def stopping(self) -> bool: ...

    @property
    def draining(self) -> bool: ...

    @property
    def announced(self) -> bool:
        """Every worker of the first generation has been ready."""


class AdminService:
    """The admin listener, the census of workers, and the view of the master they answer from."""

    def __init__(self, arbiter: Master, sock: socket.socket) -> None:
        self.arbiter = arbiter
        self.census = Census()
        self.started = time.monotonic()
        config = arbiter.config
        self.listener = AdminListener(sock, Endpoints(self, config.admin_token, config.admin_basic_auth))

    @property
    def fds(self) -> tuple[int, ...]:
        """Every descriptor of the listener and its connections: a forked worker closes them."""
        return (self.listener.sock.fileno(), *self.listener.connections)

    def worker_exited(self, info: WorkerInfo, board: Board, reason: str, detail: str) -> None:
        self.census.exited(info.age, info.pid, reason, detail, board.tally(info.slot))

    # -- endpoints.Source ------------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        a = self.arbiter
        if a.stopping:
            return False, "stopping"
        if a.draining:
            return False, "draining"
        if not a.announced:
            return False, "workers are booting"
        if not any(w.ready and not w.retiring for w in a.workers.values()):
            return False, "no worker is ready"
        return True, ""

    def snapshot(self) -> Snapshot:
        a = self.arbiter
        board = a.board
        now = time.monotonic()
        live: list[tuple[int, ...]] = []
        workers: list[WorkerStatus] = []
        for info in sorted(a.workers.values(), key=lambda w: w.age):
            slot = board.read(info.slot)
            values = board.tally(info.slot)
            if values is not None:
                live.append(values)
            rss, cpu = process_figures(info.pid)
            state = "retiring" if info.retiring and slot.state == READY else _STATES.get(slot.state, "booting")
            workers.append(
                WorkerStatus(
                    age=info.age,
                    pid=info.pid,
                    state=state,
                    uptime=round(now - info.started, 3),
                    requests=slot.requests,
                    in_flight=values[LAYOUT.in_flight] if values is not None else 0,
                    heartbeat_age=round(max(0.0, now - slot.heartbeat), 3),
                    rss=rss,
                    cpu=cpu,
                )
            )
        ready, _ = self.readiness()
        state = "stopping" if a.stopping else "draining" if a.draining else "serving" if a.announced else "starting"
        return Snapshot(
            totals=self.census.totals(live),
            workers=workers,
            starts=self.census.starts,
            exits=dict(self.census.exits),
            restarts=list(self.census.restarts),
            backlogs=[b for b in (backlog(sock) for sock in a.sockets) if b is not None],
            ready=ready,
            state=state,
            uptime=round(now - self.started, 3),
        )

    def close(self) -> None:
        """Close the listener (a unix socket's file stays, as the app's do: a re-executed master may be
        serving it, and the next start removes a stale one)."""
        self.listener.close()
