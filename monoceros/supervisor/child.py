"""The worker's side of the fork: from ``os.fork()`` returning 0 to ``os._exit``.

A worker process never returns into the master's code. Whatever happens, it ends
in ``os._exit`` with an exit code the master understands: 0, or
``exitcodes.APP_LOAD_ERROR`` / ``exitcodes.BOOT_ERROR`` for the failures that
restarting cannot fix.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import socket
import sys
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

from .. import exitcodes
from ..errors import MonocerosError
from ..server.listeners import create_socket, specs_from_config
from ..server.worker import Worker
from .board import READY, RESTART, STOPPING, Board
from .process import die_with_parent, drop_privileges, set_title

if TYPE_CHECKING:
    from .arbiter import Arbiter
    from .health import WorkerInfo

log = logging.getLogger("monoceros.error")

# The master's signals that mean nothing to a worker; a signal sent to the whole process group (a
# terminal's, say) must not kill it. TERM, INT, QUIT and USR1 get handlers on the worker's event loop.
IGNORED = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH, signal.SIGUSR2)


class BoardLink:
    """Reports to the master through the shared board (see board.py)."""

    def __init__(self, board: Board, slot: int, master_pid: int, timeout: float) -> None:
        self.board = board
        self.slot = slot
        self.master_pid = master_pid
        # Several beats per timeout, so one late tick is never mistaken for a blocked loop.
        self.tick_interval = min(1.0, timeout / 4) if timeout > 0 else 1.0
        self._state = 0

    def ready(self, worker: Worker) -> None:
        # The hook runs before the master can see READY, so that when_ready comes after every worker's
        # post_worker_init (the master polls the board, so the other order was a race), and a worker
        # whose hook raises is never counted as ready.
        hook = worker.config.post_worker_init
        if hook is not None:
            hook(worker)
        self._state = READY
        self.tick(worker)

    def tick(self, worker: Worker) -> None:
        served = worker.state.requests_served if worker.state is not None else 0
        self.board.write(self.slot, self._state, served)
        if os.getppid() != self.master_pid:
            log.warning("The master (pid %d) is gone: stopping", self.master_pid)
            self.master_pid = os.getppid()  # say it once
            worker.stop(graceful=True)

    def stopping(self, worker: Worker) -> None:
        if self.board.ordered(self.slot) == RESTART:
            worker.restarting()
        self._state = STOPPING
        self.tick(worker)


def run_worker(arbiter: Arbiter, info: WorkerInfo, app: Any) -> NoReturn:
    """Become worker ``info``: reset what the master set up, serve, and exit with a meaningful code."""
    code = exitcodes.OK
    try:
        config = arbiter.config
        arbiter.forget_in_child()
        for sig in IGNORED:
            signal.signal(sig, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        die_with_parent(signal.SIGTERM)
        set_title(f"monoceros: worker [{config.name or config.app or 'demo'}]")
        # A worker killed for a blocked loop leaves the tracebacks of all its threads in the error log.
        faulthandler.enable(file=sys.stderr, all_threads=True)
        sockets = list(arbiter.sockets)
        if config.reuse_port:
            sockets += _reuse_port_sockets(arbiter)
        drop_privileges(arbiter.uid, arbiter.gid)
        if config.post_fork is not None:
            config.post_fork(arbiter, info)
        link = BoardLink(arbiter.board, info.slot, arbiter.pid, config.timeout)
        Worker(config, app, sockets, link=link).run()
    except MonocerosError as exc:
        from ..cli import report_error

        code = report_error(exc)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _reuse_port_sockets(arbiter: Arbiter) -> list[socket.socket]:
    """With --reuse-port each worker binds its own TCP sockets and the kernel spreads connections."""
    config = arbiter.config
    return [create_socket(spec, config, reuse_port=True) for spec in specs_from_config(config) if spec.kind == "tcp"]
