"""Process-level operations: daemonizing, dropping privileges, the environment, process titles, signals
that end a worker, dying with the parent, a USR1 that comes before the event loop can answer it."""

from __future__ import annotations

import ctypes
import ctypes.util
import faulthandler
import grp
import logging
import os
import pwd
import signal
import sys
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..logs import ERROR_LOGGER, reopen_log_files


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


def drop_privileges(uid: int | None, gid: int | None, initgroups: bool = False) -> None:
    """Become ``uid``/``gid`` (groups first: after setuid we could no longer change them). The process keeps
    only ``gid`` as its group, or with ``initgroups`` every group of the user too, as gunicorn does."""
    if uid is None and gid is None:
        return
    if gid is None and uid is not None:
        gid = pwd.getpwuid(uid).pw_gid
    assert gid is not None
    try:
        if initgroups and uid is not None:
            os.initgroups(pwd.getpwuid(uid).pw_name, gid)
        elif os.getgroups() != [gid] and os.geteuid() == 0:
            os.setgroups([gid])
        if gid != os.getegid() or gid != os.getgid():
            os.setgid(gid)
        if uid is not None and (uid != os.geteuid() or uid != os.getuid()):
            os.setuid(uid)
    except PermissionError:
        who = f"user {uid}" if uid is not None else f"group {gid}"
        raise ConfigError(
            f"settings 'user'/'group': cannot switch to {who}: only root can (run as root, or leave them out)"
        ) from None


def apply_environment(config: Config) -> None:
    """``--env-file`` then ``--env`` into this process's environment, which the app and the workers see.

    As with uvicorn, variables the file sets do not replace ones already set; ``--env`` does (gunicorn)."""
    if config.env_file is not None:
        if not os.path.isfile(config.env_file):
            raise ConfigError(f"setting 'env_file': {os.path.abspath(config.env_file)} does not exist")
        try:
            from dotenv import dotenv_values
        except ImportError:
            raise ConfigError("setting 'env_file' needs python-dotenv: pip install python-dotenv") from None
        for name, value in dotenv_values(config.env_file).items():
            if value is not None:
                os.environ.setdefault(name, value)
    for item in config.env:
        name, _, value = item.partition("=")
        os.environ[name] = value


def set_title(title: str) -> bool:
    """Set the process title when setproctitle is installed (it is optional); False when it is not."""
    try:
        import setproctitle
    except ImportError:
        return False
    setproctitle.setproctitle(title)
    return True


def on_abort(callback: Callable[[], Any]) -> None:
    """Run ``callback`` when SIGABRT arrives (the master's --timeout), then die of SIGABRT as before.

    The handler writes every thread's traceback first, which faulthandler would otherwise have written: a
    worker killed for a blocked loop still says where it was blocked. Python runs the handler between two
    bytecodes, so a loop blocked inside C code never gets here; the master's SIGKILL follows anyway."""

    def handler(signum: int, frame: Any) -> None:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        try:
            callback()
        finally:
            signal.signal(signal.SIGABRT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGABRT)

    signal.signal(signal.SIGABRT, handler)


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


class _EarlyReopen:
    """A USR1 (logrotate's "reopen the logs") noted before the worker's event loop has its handler."""

    asked = False

    @staticmethod
    def handler(signum: int, frame: Any) -> None:
        _EarlyReopen.asked = True


def defer_reopen_signal() -> Any:
    """Until the worker's event loop handles USR1, note it rather than die of it (the default action): a
    logrotate run while a worker boots (importing the app, starting its loop) would otherwise kill it. Returns
    the handler it replaces."""
    return signal.signal(signal.SIGUSR1, _EarlyReopen.handler)


def reopen_if_asked(when: str) -> None:
    """Once the loop's handler is installed (it answers any later USR1): reopen the logs for a USR1 noted
    before, saying so as the loop's handler does."""
    if _EarlyReopen.asked:
        _EarlyReopen.asked = False
        logging.getLogger(ERROR_LOGGER).info("Received SIGUSR1: reopening log files (it came %s)", when)
        reopen_log_files()


def ignore_reopen_signal() -> None:
    """The event loop is gone, its handler with it (asyncio restores the default): too late to reopen, and no
    reason to die of a USR1 while exiting."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
