"""The worker's side of the fork: from ``os.fork()`` returning 0 to ``os._exit``.

A worker process never returns into the master's code. Whatever happens, it ends
in ``os._exit`` with an exit code the master understands: 0, or
``exitcodes.APP_LOAD_ERROR`` / ``exitcodes.BOOT_ERROR`` for the failures that
restarting cannot fix. As in gunicorn, anything that goes wrong before the worker
was ready (a ``post_fork`` hook that raises, say) is a boot error.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import socket
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .. import exitcodes
from ..config import Config
from ..errors import MonocerosError
from ..failures import report_error
from ..hooks import run_hook, run_hook_logged
from ..server.listeners import bind_all
from ..server.worker import Worker
from .board import READY, RESTART, RETIRING, STOPPING, Board
from .health import WorkerInfo
from .process import (
    defer_reopen_signal,
    die_with_parent,
    drop_privileges,
    ignore_reopen_signal,
    on_abort,
    reopen_if_asked,
    set_title,
)

log = logging.getLogger("monoceros.error")

# The master's signals that mean nothing to a worker; a signal sent to the whole process group (a
# terminal's, say) must not kill it. INT is the master's too: a Ctrl+C reaches every process of the group, and
# the master answers it by sending the workers TERM. TERM, QUIT and USR1 get handlers on the worker's loop (a USR1
# before that is kept for later: its default action would kill a booting worker, a death the master backs off
# from and, five in a row, stops for; see process.defer_reopen_signal).
PUBLISH_INTERVAL = 0.25  # seconds; a snapshot costs the worker about 20 us, so 4 a second is nothing

IGNORED = (signal.SIGHUP, signal.SIGINT, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH, signal.SIGUSR2)


@dataclass
class ServerView:
    """What a hook in a worker gets as ``server``: the master as it stood at the fork, with the attributes
    gunicorn's hooks use."""

    pid: int
    cfg: Config
    num_workers: int
    WORKERS: dict[int, WorkerInfo] = field(repr=False)  # gunicorn's name
    log = log


@dataclass
class Launch:
    """Everything a forked worker takes from its master, and nothing more: the master object stays behind."""

    config: Config
    sockets: list[socket.socket]
    board: Board
    uid: int | None
    gid: int | None
    master_pid: int
    server: ServerView
    master_fds: tuple[int, ...]  # the master's own descriptors (its wake-up pipe): closed in the worker


class BoardLink:
    """Reports to the master through the shared board (see board.py)."""

    supervised = True

    def __init__(self, board: Board, info: WorkerInfo, master_pid: int, config: Config) -> None:
        self.board = board
        self.info = info
        self.slot = info.slot
        self.master_pid = master_pid
        self.config = config
        self.request_limit = info.max_requests
        # Several beats per timeout, so one late tick is never mistaken for a blocked loop.
        self.tick_interval = min(1.0, config.timeout / 4) if config.timeout > 0 else 1.0
        if config.admin_bind is not None:  # the metrics are published with each beat: a scrape is this fresh
            self.tick_interval = min(self.tick_interval, PUBLISH_INTERVAL)
        self.booted = False
        self._state = 0

    def ready(self, worker: Worker) -> None:
        # The hook runs before the master can see READY, so that when_ready comes after every worker's
        # post_worker_init (the master polls the board, so the other order was a race), and a worker
        # whose hook raises is never counted as ready.
        reopen_if_asked("while booting")
        run_hook(self.config, "post_worker_init", self.info)
        self.booted = True
        self._state = READY
        self.tick(worker)

    def tick(self, worker: Worker) -> None:
        state = worker.state
        served = state.requests_served if state is not None else 0
        self.board.write(self.slot, self._state, served)
        if state is not None and state.tally is not None:
            self.board.publish(self.slot, state.tally.snapshot())
        if os.getppid() != self.master_pid:
            log.warning("The master (pid %d) is gone: stopping", self.master_pid)
            self.master_pid = os.getppid()  # say it once
            worker.stop(graceful=True)

    def interrupted(self, worker: Worker, sig: signal.Signals) -> None:
        run_hook_logged(self.config, "worker_int", self.info)

    def retiring(self, worker: Worker) -> None:
        self._state = RETIRING  # the master replaces it at once, and sends no TERM of its own
        self.tick(worker)

    def stopping(self, worker: Worker) -> None:
        if self.board.ordered(self.slot) == RESTART:
            worker.restarting()
        if self._state != RETIRING:
            self._state = STOPPING
        self.tick(worker)


def run_worker(launch: Launch, info: WorkerInfo, app: Any) -> NoReturn:
    """Become worker ``info``: reset what the master set up, serve, and exit with a meaningful code."""
    code = exitcodes.OK
    config = launch.config
    link: BoardLink | None = None
    try:
        info.pid = os.getpid()
        signal.set_wakeup_fd(-1)
        for fd in launch.master_fds:
            os.close(fd)
        for sig in IGNORED:
            signal.signal(sig, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        defer_reopen_signal()
        die_with_parent(signal.SIGTERM)
        set_title(f"monoceros: worker [{config.name or config.app or 'demo'}]")
        # A worker killed for a blocked loop leaves the tracebacks of all its threads in the error log.
        faulthandler.enable(file=sys.stderr, all_threads=True)
        sockets = list(launch.sockets)
        if config.reuse_port:
            # Each worker binds its own TCP sockets, and the kernel spreads connections between them.
            sockets += bind_all(config, kinds=("tcp",), reuse_port=True)
        drop_privileges(launch.uid, launch.gid, config.initgroups)
        run_hook(config, "post_fork", launch.server, info)
        if config.worker_abort is not None:
            on_abort(lambda: run_hook_logged(config, "worker_abort", info))
        link = BoardLink(launch.board, info, launch.master_pid, config)
        Worker(config, app, sockets, link=link).run()
    except MonocerosError as exc:
        code = report_error(exc)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1 if link is not None and link.booted else exitcodes.BOOT_ERROR
    finally:
        ignore_reopen_signal()
        run_hook_logged(config, "worker_exit", launch.server, info)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
