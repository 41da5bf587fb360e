"""What the master does when a worker exits: log it, run child_exit, and, for a worker that died before it
was ready, decide between retrying (with a growing backoff), rolling back a reload, and stopping, as gunicorn
does for workers that cannot boot.
"""

from __future__ import annotations

import logging
import signal
import time

from .. import exitcodes
from ..config import Config
from ..hooks import run_hook_logged
from .health import WorkerInfo, describe_exit

log = logging.getLogger("monoceros.error")

MAX_BACKOFF = 10.0  # longest wait before forking again after workers died while booting
BOOT_ATTEMPTS = 5  # deaths in a row, before any worker was ready, that stop the master (about 3 s of backoff)


class Exits:
    """Part of the master (:class:`~monoceros.supervisor.arbiter.Arbiter`): its answer to a worker's exit."""

    config: Config
    workers: dict[int, WorkerInfo]
    generation: int
    exit_code: int
    _stopping_since: float | None
    _boot_deaths: int
    _failures: int
    _next_spawn: float
    _reload_started: float | None
    _paused: bool

    def _signal(self, info: WorkerInfo, sig: signal.Signals) -> None:
        raise NotImplementedError

    def stop(self, graceful: bool = True) -> None:
        raise NotImplementedError

    def _on_exit(self, info: WorkerInfo, status: int, last_load: str = "") -> None:
        """``last_load``: what it was serving at its last heartbeat (health.last_load), said for an exit that
        was not a clean one."""
        text, code = describe_exit(status)
        if info.abandoned:
            log.info("Worker %d (pid %d) of the generation that could not boot is stopped", info.age, info.pid)
        elif (info.retiring or self._stopping_since is not None) and code == exitcodes.OK:
            log.info("Worker %d (pid %d) %s", info.age, info.pid, text)
        else:
            log.error("Worker %d (pid %d) %s%s", info.age, info.pid, text, "" if code == exitcodes.OK else last_load)
        run_hook_logged(self.config, "child_exit", self, info)
        if info.ready or info.abandoned or self._stopping_since is not None:
            return  # a ready worker is replaced at once by _maintain
        if code == exitcodes.APP_LOAD_ERROR:
            self._boot_failed(info, code, "load the app")
        elif code == exitcodes.BOOT_ERROR:
            self._boot_failed(info, code, "boot")
        else:
            self._boot_deaths += 1
            if self._boot_deaths >= BOOT_ATTEMPTS:
                what = f"stay up: {self._boot_deaths} in a row died before they were ready (the last {text})"
                self._boot_failed(info, exitcodes.BOOT_CRASH_LOOP, what)
            else:
                log.warning("Worker died while booting; next attempt in %.1f s", self._backoff())

    def _boot_failed(self, info: WorkerInfo, code: int, what: str) -> None:
        """Workers could not load the app or boot. Forking the same code at once will not fix it."""
        self._boot_deaths = 0
        serving = [w for w in self.workers.values() if w.ready and w.stop_sent is None]
        if not serving and not self.config.reload:
            log.error("A worker could not %s (exit code %d): stopping", what, code)
            self.exit_code = code
            self.stop(graceful=False)
            return
        # Roll back: the generation that cannot boot goes, the workers that serve stay and become current
        # (left in an older generation, _maintain would retire them and fork the broken code again).
        for w in self.workers.values():
            if not w.ready:
                w.abandoned = True
                self._signal(w, signal.SIGKILL)
        self.generation += 1
        for w in serving:
            w.generation, w.retiring = self.generation, ""
        self._reload_started = None
        if self.config.reload:
            self._paused = True  # fork again when a file changes
            log.error("Reload failed: a worker could not %s (exit code %d); watching for the next change", what, code)
        else:
            # Too few workers may be left (one died meanwhile): retry, but slower and slower, in case the cause
            # is outside the code (a database down during lifespan startup); HUP retries at once.
            delay = self._backoff()
            log.error(
                "Reload failed: a worker could not %s (exit code %d); %d worker(s) keep serving the previous "
                "version; retrying in %.1f s or on HUP",
                what, code, len(serving), delay,
            )  # fmt: skip

    def _backoff(self) -> float:
        """Delay the next fork after a failure: 0.2 s, doubling up to MAX_BACKOFF."""
        self._failures += 1
        delay: float = min(MAX_BACKOFF, 0.1 * 2.0**self._failures)
        self._next_spawn = time.monotonic() + delay
        return delay
