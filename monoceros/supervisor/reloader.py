"""Development reload: watch the source tree with watchfiles (inotify, no polling) and tell the master.

It runs in a thread of the master. Changes are debounced by watchfiles; the master
then reloads like on SIGHUP, so the previous workers keep serving until the new
ones are ready, and a change that breaks the app (a syntax error) leaves them
serving while the error is shown and the watch goes on.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Callable
from pathlib import PurePath

from ..config import Config
from ..errors import ConfigError

log = logging.getLogger("monoceros.error")


class Reloader:
    """A watchfiles watch over ``reload_dirs`` (default: the working directory and --app-dir)."""

    def __init__(self, config: Config, on_change: Callable[[list[str]], None]) -> None:
        try:
            import watchfiles
        except ImportError:
            raise ConfigError("setting 'reload' needs the watchfiles package: pip install watchfiles") from None
        self._watchfiles = watchfiles
        dirs = config.reload_dirs or sorted({os.getcwd(), os.path.abspath(config.app_dir)})
        self.dirs = [os.path.abspath(d) for d in dirs]
        for directory in self.dirs:
            if not os.path.isdir(directory):
                raise ConfigError(f"setting 'reload_dirs': {directory} is not a directory")
        self.extra_files = {os.path.abspath(path) for path in config.reload_extra_files}
        for path in self.extra_files:
            if not os.path.isfile(path):
                raise ConfigError(f"setting 'reload_extra_files': {path} is not a file")
        self.includes = list(config.reload_includes)
        self.excludes = list(config.reload_excludes)
        self.delay_ms = int(config.reload_delay * 1000)
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monoceros-reloader", daemon=True)

    def wanted(self, path: str) -> bool:
        """True for a file matching an include pattern, with no path component matching an exclude."""
        parts = PurePath(path).parts
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in self.excludes):
            return False
        name = parts[-1] if parts else path
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.includes)

    def start(self) -> None:
        extra = f" and {len(self.extra_files)} more file(s)" if self.extra_files else ""
        log.info("Watching for changes in %s (%s)%s", ", ".join(self.dirs), ", ".join(self.includes), extra)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        def accept(change: object, path: str) -> bool:
            if path in self.extra_files:
                return True  # named one by one (--reload-extra-file): whatever the patterns say
            if not any(path.startswith(directory + os.sep) for directory in self.dirs):
                return False  # beside an extra file, outside every watched directory
            return self.wanted(os.path.relpath(path, os.getcwd()) if path.startswith(os.getcwd()) else path)

        # A file outside the watched directories is watched through its own directory, filtered to itself.
        roots = sorted({*self.dirs, *(os.path.dirname(path) for path in self.extra_files)})
        for changes in self._watchfiles.watch(
            *roots,
            watch_filter=accept,
            stop_event=self._stop,
            raise_interrupt=False,
            # Changes are grouped until the files have been quiet for --reload-delay (at most ten times that).
            step=max(self.delay_ms, 1),
            debounce=max(10 * self.delay_ms, 1),
        ):
            paths = sorted({os.path.relpath(path) for _, path in changes})
            log.info("Detected changes in %s", ", ".join(paths[:5]))
            self.on_change(paths)
