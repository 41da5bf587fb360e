"""USR2: a new master from the installed code, inheriting the listening sockets.

The old master forks; the child puts the listeners at descriptors 3 and up and execs ``python -m monoceros``
with the same arguments and ``LISTEN_FDS``/``LISTEN_PID`` (systemd's socket-activation convention, which
``server/listeners.py`` reads). Both masters serve until the operator stops the old one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import sys
from collections.abc import Callable

from .. import exitcodes


def fork_new_master(fds: list[int], cwd: str, before_exec: Callable[[], None], names: list[str]) -> int:
    """Fork the new master; return its pid (in the child this execs and never returns). ``names``: each
    descriptor's LISTEN_FDNAMES name (the admin listener's tells it apart from the app's)."""
    pid = os.fork()
    if pid == 0:
        before_exec()  # the pre_exec hook
        _exec_new_master(fds, cwd, names)
    return pid


def _exec_new_master(fds: list[int], cwd: str, names: list[str]) -> None:
    """In the forked child: put the listeners at fd 3.. and exec a fresh monoceros with the same argv."""
    try:
        signal.set_wakeup_fd(-1)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in fds]
        for index, fd in enumerate(high):
            os.dup2(fd, 3 + index, inheritable=True)
            os.close(fd)
        env = dict(os.environ)
        env.update(LISTEN_FDS=str(len(fds)), LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=":".join(names))
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "monoceros", *sys.argv[1:]], env)
    except OSError as exc:
        os.write(2, f"monoceros: re-exec failed: {os.strerror(exc.errno or errno.EIO)}\n".encode())
    finally:
        os._exit(exitcodes.BOOT_ERROR)
