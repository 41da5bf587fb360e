"""The master's PID file, written atomically and removed only if it is still ours."""

from __future__ import annotations

import os
import tempfile

from ..errors import ConfigError


class Pidfile:
    """``--pid FILE``: created at start, renamed to FILE.oldbin by a USR2 re-exec, removed at exit."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def create(self, pid: int) -> None:
        """Write ``pid``; refuse when the file names another live process (a second server)."""
        other = self.running_other(pid)
        if other is not None:
            raise ConfigError(f"pid file {self.path} names process {other}, which is still running")
        directory = os.path.dirname(self.path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".monoceros-pid-", dir=directory)
            with os.fdopen(fd, "w") as f:
                f.write(f"{pid}\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ConfigError(f"setting 'pid': cannot write {self.path}: {exc.strerror}") from None

    def running_other(self, pid: int) -> int | None:
        """The live process other than ``pid`` that the file names, if any."""
        other = self.read()
        return other if other is not None and other != pid and _alive(other) else None

    def rename(self, path: str) -> None:
        """Move the file (USR2: the old master keeps FILE.oldbin while the new one writes FILE)."""
        new = os.path.abspath(path)
        os.replace(self.path, new)
        self.path = new

    def read(self) -> int | None:
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def unlink(self, pid: int) -> None:
        """Remove the file, but only while it still holds ``pid`` (a new master may have rewritten it)."""
        if self.read() == pid:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
