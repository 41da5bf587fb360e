"""Process-level operations: daemonizing, dropping privileges, process titles, dying with the parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import os
import pwd
import signal
import sys

from ..errors import ConfigError


def daemonize() -> None:
    """Detach from the terminal (the classic double fork), keeping the working directory.

    Standard input, output and error go to /dev/null; use log files with --daemon.
    """
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def resolve_user(user: str | None, group: str | None) -> tuple[int | None, int | None]:
    """Numeric (uid, gid) for the --user and --group settings; the user's own group by default."""
    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise ConfigError(f"setting 'user': no such user {user!r}") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"setting 'group': no such group {group!r}") from None
    return uid, gid


def drop_privileges(uid: int | None, gid: int | None) -> None:
    """Become ``uid``/``gid`` (group first: after setuid we could no longer change it)."""
    if gid is not None and gid != os.getegid():
        os.setgroups([gid])
        os.setgid(gid)
    if uid is not None and uid != os.geteuid():
        user = pwd.getpwuid(uid).pw_name
        os.initgroups(user, gid if gid is not None else pwd.getpwuid(uid).pw_gid)
        os.setuid(uid)


def set_title(title: str) -> None:
    """Set the process title when setproctitle is installed (it is optional)."""
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(title)


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send ``sig`` when the master dies, even by SIGKILL. Elsewhere a no-op;
    the worker's own check of its parent PID then covers it."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass
