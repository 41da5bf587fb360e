"""One process, no master: the process settings around a single Worker, in gunicorn's order.

Every process setting takes effect here as it does under the supervisor, so that dropping ``-w 4`` never
quietly drops ``--user`` with it: the umask and ``--chdir`` first, the pid file, ``on_starting``, the app
when ``--preload`` asks for it (as root, as gunicorn's master does), the listeners (so a port below 1024 can
be bound), then the switch to ``--user``/``--group``, and the hooks a worker would run. This process is both
the ``server`` and the ``worker`` the hooks are given.

Settings that need a master (``--timeout``, recycling, ``--reload``, ``--daemon``) start one instead: see
runner.needs_supervisor.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from typing import Any

from .. import exitcodes
from ..config import Config
from ..hooks import run_hook, run_hook_logged
from ..logs import give_log_files_to
from ..server.app_loader import load_app
from ..server.listeners import bind_all, inherited_sockets
from ..server.worker import Worker
from .health import WorkerInfo
from .pidfile import Pidfile
from .process import (
    defer_reopen_signal,
    drop_privileges,
    ignore_reopen_signal,
    on_abort,
    reopen_if_asked,
    resolve_user,
    set_title,
)

log = logging.getLogger("monoceros.error")


class SingleProcess:
    """The whole server in this process. As a hook's ``server`` it offers what gunicorn's arbiter does."""

    def __init__(self, config: Config, app: Any = None) -> None:
        self.config = config
        self.app_arg = app
        self.pid = os.getpid()
        self.log = log
        self.num_workers = 1
        self.worker = WorkerInfo.new(config, 1, -1, 0, time.monotonic())
        self.worker.pid, self.worker.ppid = self.pid, os.getppid()

    @property
    def cfg(self) -> Config:
        return self.config

    @property
    def WORKERS(self) -> dict[int, WorkerInfo]:  # gunicorn's name, which hooks use
        return {self.pid: self.worker}

    def run(self) -> int:
        config = self.config
        os.umask(config.umask)
        if config.chdir:
            os.chdir(config.chdir)
        pidfile = None
        if config.pid:
            pidfile = Pidfile(config.pid)
            pidfile.create(self.pid)
        sockets: list[socket.socket] = []
        usr1 = defer_reopen_signal()  # a logrotate before the loop answers USR1 must not kill the server
        try:
            titled = set_title(f"monoceros [{config.name or config.app or 'demo'}]")
            if config.name and not titled:
                log.warning("Setting 'name' has no effect: process titles need setproctitle (pip install setproctitle)")
            run_hook(config, "on_starting", self)
            uid, gid = resolve_user(config.user, config.group)
            give_log_files_to(uid, gid)
            app = load_app(config, self.app_arg) if config.preload else self.app_arg
            sockets = inherited_sockets() or bind_all(config, reuse_port=config.reuse_port, owner=(uid, gid))
            drop_privileges(uid, gid, config.initgroups)
            run_hook(config, "pre_fork", self, self.worker)
            run_hook(config, "post_fork", self, self.worker)
            if config.worker_abort is not None:
                on_abort(lambda: run_hook_logged(config, "worker_abort", self.worker))
            try:
                Worker(config, app, sockets, link=_SelfLink(self)).run()
            finally:
                ignore_reopen_signal()
                run_hook_logged(config, "worker_exit", self, self.worker)
        finally:
            for sock in sockets:
                sock.close()
            run_hook_logged(config, "on_exit", self)
            if pidfile is not None:
                pidfile.unlink(self.pid)
            signal.signal(signal.SIGUSR1, usr1)  # as it was (monoceros.run() returns to its caller)
        return exitcodes.OK


class _SelfLink:
    """The worker's link when it is the whole server: readiness runs the hooks a master would."""

    tick_interval = 1.0
    supervised = False
    request_limit = 0  # --max-requests starts a supervisor

    def __init__(self, server: SingleProcess) -> None:
        self.server = server

    def ready(self, worker: Worker) -> None:
        config = self.server.config
        reopen_if_asked("while starting")
        run_hook(config, "post_worker_init", self.server.worker)
        run_hook(config, "when_ready", self.server)

    def tick(self, worker: Worker) -> None:
        pass

    def interrupted(self, worker: Worker, sig: signal.Signals) -> None:
        run_hook_logged(self.server.config, "worker_int", self.server.worker)

    def retiring(self, worker: Worker) -> None:
        pass

    def stopping(self, worker: Worker) -> None:
        pass
