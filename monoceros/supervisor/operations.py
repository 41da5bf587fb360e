"""What an operator asks of the master, each the target of a signal: stop, reload, scale, reopen the logs,
re-execute, and WINCH's stop of the workers. The master's loop (arbiter.py) runs them from its signal table.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..errors import AppLoadError, ConfigError
from ..hooks import run_hook_logged
from ..logs import configure_logging, give_log_files_to, reopen_log_files
from ..server.app_loader import LoadedApp
from ..server.listeners import ADMIN_FD_NAME
from .admin import AdminService
from .health import WorkerInfo
from .modules import ModuleSnapshot
from .pidfile import Pidfile
from .process import apply_environment
from .reexec import fork_new_master
from .signals import FILES_CHANGED, SignalQueue
from .systemd import Notifier

log = logging.getLogger("monoceros.error")


class Operations:
    """The operator's actions, as a part of the master (:class:`~monoceros.supervisor.arbiter.Arbiter`)."""

    # The master's state these actions read and change (set by Arbiter.__init__).
    config: Config
    reload_config: Callable[[], Config] | None
    workers: dict[int, WorkerInfo]
    sockets: list[Any]
    num_workers: int
    generation: int
    uid: int | None
    gid: int | None
    _app: LoadedApp | None
    _signals: SignalQueue
    _stopping_since: float | None
    admin: AdminService | None
    _draining_until: float | None
    _notifier: Notifier
    _modules: ModuleSnapshot
    _paused: bool
    _next_spawn: float
    _reload_started: float | None
    _changed: str
    _reexec_pid: int
    _pidfile: Pidfile | None
    _start_cwd: str

    def _signal(self, info: WorkerInfo, sig: signal.Signals) -> None:
        raise NotImplementedError

    def _load_app(self, config: Config) -> LoadedApp:
        raise NotImplementedError

    def stop(self, graceful: bool = True) -> None:
        """Stop every worker, gracefully or at once; the master exits when every worker has."""
        first = self._stopping_since is None
        if first:
            self._stopping_since = time.monotonic()
            self._notifier.stopping()
            for sock in self.sockets:
                sock.close()  # the workers' copies go with them; then new connections are refused
            self.sockets = []
        log.info("Stopping %s", "gracefully" if graceful else "now")
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        now = time.monotonic()
        for info in self.workers.values():
            if info.stop_sent is None or not graceful:
                info.stop_sent = info.stop_sent or now
                self._signal(info, sig)

    def stop_signal(self, sig: signal.Signals) -> None:
        """TERM and INT: a graceful stop, and the second one stops at once (Ctrl+C twice), as one process
        does. QUIT: at once. With --drain-delay the first TERM only turns /readyz to 503, and the stop
        begins after the delay (or at the next TERM or INT)."""
        log.info("Received %s", sig.name)
        if self._stopping_since is None and self.config.drain_delay > 0 and sig != signal.SIGQUIT:
            if self._draining_until is None and sig == signal.SIGTERM:
                self._draining_until = time.monotonic() + self.config.drain_delay
                log.info(
                    "Draining: not ready from now on; serving for %.1f s more, then stopping", self.config.drain_delay
                )
                return
            if self._draining_until is not None:
                self.stop(graceful=True)  # the delay ends early
                return
        graceful = sig != signal.SIGQUIT and self._stopping_since is None
        self.stop(graceful=graceful)

    def reload(self, reason: str = "SIGHUP") -> None:
        """Zero-downtime reload: re-read the config, start a new generation, retire the old once it is up."""
        log.info("Reloading (%s)", reason)
        self._notifier.reloading()
        config = self.config
        if self.reload_config is not None:
            try:
                config = self.reload_config()
            except ConfigError as exc:
                log.error("Reload aborted: %s", exc)
                return
            configure_logging(config)
            give_log_files_to(self.uid, self.gid)
            try:
                apply_environment(config)
            except ConfigError as exc:
                log.error("Reload aborted: %s", exc)
                return
        run_hook_logged(config, "on_reload", self)
        if config.preload:
            self._modules.forget_new()
            try:
                self._app = self._load_app(config)
            except AppLoadError as exc:
                log.error("Reload aborted: the app does not load: %s", exc, exc_info=exc.__cause__)
                return
        self.config = config
        if config.workers != self.num_workers:
            self._set_workers(config.workers)
        self._paused = False
        self._next_spawn = 0.0
        self.generation += 1
        self._reload_started = time.monotonic()

    def _on_files_changed(self, changes: list[str]) -> None:
        """From the reloader thread: queue a reload and wake the loop."""
        shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
        self._changed = shown
        self._signals.wake(FILES_CHANGED)

    def _dev_reload(self) -> None:
        self.reload(f"changed: {self._changed}")

    def scale(self, delta: int) -> None:
        self._set_workers(max(1 if delta < 0 else 0, self.num_workers + delta))
        log.info("Scaling to %d worker(s)", self.num_workers)

    def _set_workers(self, count: int) -> None:
        old, self.num_workers = self.num_workers, count
        if count != old:
            run_hook_logged(self.config, "nworkers_changed", self, count, old)

    def reopen_logs(self) -> None:
        reopen_log_files()
        for info in self.workers.values():
            self._signal(info, signal.SIGUSR1)

    def reexec(self) -> None:
        """USR2: start a new master from the installed code, handing it the listeners (LISTEN_FDS).
        This master keeps running (renaming its pid file to .oldbin) until the operator stops it."""
        if self._reexec_pid:
            log.warning("A re-executed master (pid %d) is already running", self._reexec_pid)
            return
        if self._pidfile is not None:
            self._pidfile.rename(self._pidfile.path + ".oldbin")
        fds = [sock.fileno() for sock in self.sockets]
        names = ["app"] * len(fds)
        if self.admin is not None:  # the admin listener goes along, named, so the new master need not bind it
            fds.append(self.admin.listener.sock.fileno())
            names.append(ADMIN_FD_NAME)

        def pre_exec() -> None:
            run_hook_logged(self.config, "pre_exec", self)

        pid = fork_new_master(fds, self._start_cwd, pre_exec, names)
        self._reexec_pid = pid
        log.info("Re-executing: new master pid %d inherits %d listener(s)", pid, names.count("app"))

    def winch(self) -> None:
        if self.config.daemon:
            log.info("SIGWINCH: stopping the workers gracefully")
            self.num_workers = 0
        # In a terminal, WINCH only means the window was resized.
