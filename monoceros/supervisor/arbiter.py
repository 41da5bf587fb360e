"""The master process: binds once, forks the workers, watches them and replaces them.

Theory of operation
-------------------
Signal handlers only queue the signal, and a pipe wakes the loop (signals.py). The loop in :meth:`Arbiter.run` then,
every tick: dispatches queued signals from :data:`SIGNAL_TABLE` (their actions are operations.py's), reaps children
with ``waitpid(-1, WNOHANG)``, reads every worker's heartbeat slot, and brings the set of workers back to what it
should be.

The one rule behind reloads, recycling and scaling: the master keeps ``num_workers`` *active* workers (not
retiring). A worker to be replaced is marked retiring, which makes the count short, so a replacement is forked at
once; the retiring worker gets SIGTERM only once enough active workers are ready. So a HUP or a lifetime or memory
recycle never leaves fewer ready workers than before, and a replacement that cannot boot leaves the old worker
serving. A worker at its ``--max-requests`` is the one exception: it stops taking requests by itself, at once, so
that the limit holds, and the master only learns of it from the board (RETIRING) and forks its replacement.

Workers that keep dying before they are ready stop the master, as in gunicorn: at once for the two exit codes that
say a restart cannot help (the app does not load, the worker cannot boot), and after ``BOOT_ATTEMPTS`` deaths in a
row for any other cause (a crash, a signal), with ``exitcodes.BOOT_CRASH_LOOP``.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from .. import exitcodes
from ..config import Config
from ..errors import HookError
from ..hooks import run_hook, run_hook_logged
from ..logs import give_log_files_to
from ..server.app_loader import LoadedApp, load_app
from ..server.listeners import bind_all, inherited_sockets
from ..server.memory import freeze_startup_objects
from ..server.metrics import LAYOUT
from .admin import AdminService, bind_admin
from .board import RESTART, RETIRING, Board
from .child import Launch, ServerView, run_worker
from .exits import Exits
from .health import (
    WorkerInfo,
    became_ready,
    describe_exit,
    escalation,
    exit_reason,
    heartbeat_overdue,
    last_load,
    recycle_reason,
)  # fmt: skip
from .modules import ModuleSnapshot
from .operations import Operations
from .pidfile import Pidfile
from .process import daemonize, resolve_user, set_title
from .signals import FILES_CHANGED, SignalQueue
from .systemd import Notifier

log = logging.getLogger("monoceros.error")

TICK = 0.1  # seconds between checks when no signal wakes the loop


class Arbiter(Operations, Exits):
    """The supervisor. ``run()`` returns the exit code. Hooks get it as ``server``: it has the ``log``,
    ``pid``, ``cfg``, ``num_workers`` and ``WORKERS`` that gunicorn's hooks use."""

    log = log

    def __init__(self, config: Config, app: Any = None, reload_config: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.app_arg = app
        self.reload_config = reload_config
        self.num_workers = config.workers
        self.workers: dict[int, WorkerInfo] = {}
        self.sockets: list[socket.socket] = []
        self.board = Board(tally_size=LAYOUT.size if config.admin_bind is not None else 0)
        self.pid = os.getpid()
        self.uid: int | None = None
        self.gid: int | None = None
        self.generation = 0
        self.exit_code = exitcodes.OK
        self._app: LoadedApp | None = None
        self._ages = 0
        self._signals = SignalQueue()
        self._stopping_since: float | None = None
        self._announced = False
        self._reload_started: float | None = None
        self._failures = 0
        self._boot_deaths = 0  # workers in a row that died before they were ready
        self._next_spawn = 0.0
        self._reexec_pid = 0
        self._start_cwd = os.getcwd()
        self._pidfile: Pidfile | None = None
        self._notifier = Notifier()
        self._modules = ModuleSnapshot()
        self._reloader: Any = None
        self._paused = False  # --reload after a failed first boot: fork nothing until a file changes
        self._changed = ""
        self.admin: AdminService | None = None
        self._draining_until: float | None = None  # --drain-delay: a TERM arrived; the stop begins then

    @property
    def cfg(self) -> Config:
        return self.config

    @property
    def WORKERS(self) -> dict[int, WorkerInfo]:  # gunicorn's name, which hooks use
        return self.workers

    @property
    def stopping(self) -> bool:
        return self._stopping_since is not None

    @property
    def draining(self) -> bool:
        return self._draining_until is not None

    @property
    def announced(self) -> bool:
        return self._announced

    # -- lifecycle -----------------------------------------------------------------------------------------

    def run(self) -> int:
        config = self.config
        if config.daemon:
            daemonize()
            self.pid = os.getpid()
        os.umask(config.umask)
        if config.chdir:
            os.chdir(config.chdir)
        try:
            self._setup()
            self._loop()
        finally:
            self._teardown()
        return self.exit_code

    def _setup(self) -> None:
        config = self.config
        titled = set_title(f"monoceros: master [{config.name or config.app or 'demo'}]")
        if config.name and not titled:
            log.warning("Setting 'name' has no effect: process titles need setproctitle (pip install setproctitle)")
        if config.pid:
            self._pidfile = Pidfile(config.pid)
            self._pidfile.create(self.pid)
        run_hook(config, "on_starting", self)
        self.uid, self.gid = resolve_user(config.user, config.group)
        give_log_files_to(self.uid, self.gid)
        self.sockets = inherited_sockets() or self._bind()
        if config.admin_bind is not None:
            self.admin = AdminService(self, bind_admin(config))
        if config.preload:
            self._app = self._load_app(config)
        self._signals.install()
        if config.reload:
            from .reloader import Reloader

            self._reloader = Reloader(config, self._on_files_changed)
            self._reloader.start()
        log.info("Master %d: starting %d worker(s)", self.pid, self.num_workers)

    def _bind(self) -> list[socket.socket]:
        # With --reuse-port each worker binds its own TCP sockets; one in the master would steal a share.
        kinds: tuple[Any, ...] = ("unix", "fd") if self.config.reuse_port else ("tcp", "unix", "fd")
        return bind_all(self.config, kinds=kinds, owner=(self.uid, self.gid))

    def _load_app(self, config: Config) -> LoadedApp:
        """--preload: the app loads here, once, and the workers inherit it. With --gc-freeze it is frozen
        here too, before any fork: a worker's own collection then never writes to the inherited objects'
        headers, so their pages stay shared (Django, 2 workers: 10 MiB less private memory each). Before a
        reload loads the app again, the old one's objects become collectable again."""
        if config.gc_freeze:
            gc.unfreeze()
        try:
            return load_app(config, self.app_arg)
        finally:
            if config.gc_freeze:
                freeze_startup_objects()

    def _teardown(self) -> None:
        if self._reloader is not None:
            self._reloader.stop()
        self._notifier.stopping()
        for sock in self.sockets:
            sock.close()
        if self.admin is not None:
            self.admin.close()
        run_hook_logged(self.config, "on_exit", self)
        if self._pidfile is not None:
            self._pidfile.unlink(self.pid)
        self._signals.uninstall()
        log.info("Master %d: exiting (code %d)", self.pid, self.exit_code)

    # -- the loop ------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        pending = self._signals.pending
        admin = self.admin
        while True:
            self._signals.wait(TICK, admin.listener if admin is not None else None)
            while pending:
                sig = pending.popleft()
                handler = SIGNAL_TABLE.get(sig)
                if handler is not None:
                    handler(self)
            self._reap()
            now = time.monotonic()
            if admin is not None:
                admin.listener.sweep(now)
            if self._draining_until is not None and now >= self._draining_until and self._stopping_since is None:
                self.stop(graceful=True)
            if self._stopping_since is not None:
                if not self.workers:
                    return
                self._escalate(now)
                continue
            self._check(now)
            self._maintain(now)

    # -- workers -------------------------------------------------------------------------------------------

    def _spawn(self, now: float) -> None:
        self._ages += 1
        info = WorkerInfo.new(self.config, self._ages, self.board.allocate(), self.generation, now)
        try:
            run_hook(self.config, "pre_fork", self, info)
        except HookError as exc:
            self.board.release(info.slot)
            log.error("%s", exc, exc_info=exc.__cause__)
            self._boot_failed(info, exitcodes.BOOT_ERROR, "start a worker: its pre_fork hook raised")
            return
        app = self._app if self._app is not None else self.app_arg
        server = ServerView(self.pid, self.config, self.num_workers, dict(self.workers))
        fds = self._signals.fds + (self.admin.fds if self.admin is not None else ())
        launch = Launch(self.config, self.sockets, self.board, self.uid, self.gid, self.pid, server, fds)
        pid = os.fork()
        if pid == 0:
            run_worker(launch, info, app)  # never returns
        info.pid = pid
        self.workers[pid] = info
        if self.admin is not None:
            self.admin.census.started()
        log.info("Booting worker %d (pid %d)%s", info.age, pid, info.limits())

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self._reexec_pid:
                self._reexec_pid = 0
                text, _ = describe_exit(status)
                log.warning("The re-executed master (pid %d) %s", pid, text)
                if self._pidfile is not None and self.config.pid:
                    self._pidfile.rename(self.config.pid)
                continue
            info = self.workers.pop(pid, None)
            if info is None:
                continue
            # A last look at its slot: a worker may reach its request limit and exit between two ticks.
            now = time.monotonic()
            self._observe(info, now)
            if self.admin is not None:
                reason = exit_reason(info, self._stopping_since is not None)
                self.admin.worker_exited(info, self.board, reason, describe_exit(status)[0])
            load = last_load(self.board.tally(info.slot), self.board.read(info.slot), now)
            self.board.release(info.slot)
            self._on_exit(info, status, load)

    def _check(self, now: float) -> None:
        for info in list(self.workers.values()):
            self._observe(info, now)
        self._escalate(now)
        self._announce()

    def _observe(self, info: WorkerInfo, now: float) -> None:
        """Read a worker's slot: it became ready, went silent, or is due (or on its way) to be replaced."""
        slot = self.board.read(info.slot)
        if became_ready(info, slot):
            info.ready = True
            self._failures = self._boot_deaths = 0
            log.info("Worker %d (pid %d) is ready", info.age, info.pid)
        if not info.kill_sent:
            silent = heartbeat_overdue(info, slot, self.config, now)
            if silent is not None:
                log.error(
                    "Worker %d (pid %d) timed out: no heartbeat for %.1f s; sending SIGABRT (its traceback "
                    "follows), then SIGKILL",
                    info.age, info.pid, silent,
                )  # fmt: skip
                info.abort_sent = now
                self._signal(info, signal.SIGABRT)
        reason = recycle_reason(info, slot, now)
        if reason:
            log.info("Recycling worker %d (pid %d): it %s", info.age, info.pid, reason)
            info.retiring = reason
            if slot.state == RETIRING and info.stop_sent is None:
                info.stop_sent = now  # it stops by itself; a TERM from here would be a second stop signal

    def _escalate(self, now: float) -> None:
        for info in self.workers.values():
            sig = escalation(info, self.config, now)
            if sig is not None:
                log.error("Worker %d (pid %d) did not stop: sending %s", info.age, info.pid, sig.name)
                self._signal(info, sig)
                info.kill_sent = True

    def _maintain(self, now: float) -> None:
        active = [w for w in self.workers.values() if not w.retiring and w.generation == self.generation]
        for stale in (w for w in self.workers.values() if w.generation != self.generation and not w.retiring):
            stale.retiring = "reloaded"
        if len(active) > self.num_workers:  # TTOU, WINCH: retire the oldest
            for info in sorted(active, key=lambda w: w.age)[: len(active) - self.num_workers]:
                info.retiring = "scaled down"
            active = [w for w in active if not w.retiring]
        if len(active) < self.num_workers and now >= self._next_spawn and not self._paused:
            for _ in range(self.num_workers - len(active)):
                self._spawn(now)
        ready = sum(1 for w in active if w.ready)
        for info in self.workers.values():
            replaced = ready >= self.num_workers or info.retiring == "scaled down"
            if info.retiring and info.stop_sent is None and replaced:
                info.stop_sent = now
                if info.retiring != "scaled down" and self._stopping_since is None:
                    self.board.order(info.slot, RESTART)
                self._signal(info, signal.SIGTERM)

    def _announce(self) -> None:
        """Say "ready" once every worker of the current generation is up: first boot, then each reload."""
        current = [w for w in self.workers.values() if w.generation == self.generation and not w.retiring]
        if len(current) < self.num_workers or not all(w.ready for w in current):
            return
        if not self._announced:
            self._announced = True
            log.info("Ready: %d worker(s) serving", len(current))
            try:
                run_hook(self.config, "when_ready", self)
            except HookError as exc:
                log.error("%s: stopping", exc, exc_info=exc.__cause__)
                self.exit_code = exitcodes.BOOT_ERROR
                self.stop(graceful=True)
                return
            self._notifier.ready(f"{len(current)} workers serving")
        elif self._reload_started is not None:
            elapsed = (time.monotonic() - self._reload_started) * 1000
            self._reload_started = None
            log.info("Reloaded in %.0f ms: %d worker(s) serving", elapsed, len(current))
            self._notifier.ready(f"reloaded; {len(current)} workers serving")

    def _signal(self, info: WorkerInfo, sig: signal.Signals) -> None:
        try:
            os.kill(info.pid, sig)
        except ProcessLookupError:
            pass


SIGNAL_TABLE: dict[int, Callable[[Arbiter], None]] = {
    signal.SIGHUP: lambda a: a.reload(),
    signal.SIGTERM: lambda a: a.stop_signal(signal.SIGTERM),
    signal.SIGINT: lambda a: a.stop_signal(signal.SIGINT),
    signal.SIGQUIT: lambda a: a.stop_signal(signal.SIGQUIT),
    signal.SIGTTIN: lambda a: a.scale(+1),
    signal.SIGTTOU: lambda a: a.scale(-1),
    signal.SIGUSR1: Arbiter.reopen_logs,
    signal.SIGUSR2: Arbiter.reexec,
    signal.SIGWINCH: Arbiter.winch,
    signal.SIGCHLD: lambda a: None,  # reaping happens on every tick
    FILES_CHANGED: Arbiter._dev_reload,
}
