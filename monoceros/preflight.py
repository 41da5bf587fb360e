"""``--check-config``: everything a start would try, short of serving, with every problem reported at once.

A deploy script runs it before a restart, so a config that would fail at 3 a.m. fails here instead. It tries
what startup tries, in the same order: the working directory, the environment file, the log files and the
logging config, the pid file, the user and group, each listener's address, the TLS files, the reload watch,
the event loop, and the app itself (imported, its factory called, its calling convention told). A listener is
bound to check it, then closed; one already in use is only a note, since the server being replaced may be
holding it right now.
"""

from __future__ import annotations

import errno
import os
import sys

from . import exitcodes
from .config import Config
from .errors import AppLoadError, BindError, MonocerosError
from .failures import report_error


def check(config: Config) -> int:
    """Run every check; print "config OK", or each problem on stderr. Returns the exit code."""
    problems: list[str] = []
    notes: list[str] = list(config.notes)
    app_error: AppLoadError | None = None
    for step in (_chdir, _environment, _logging, _pid, _owner, _listeners, _tls, _reload, _loop):
        try:
            found = step(config)
        except MonocerosError as exc:
            found = [str(exc)]
        problems += [text for text in found if not text.startswith("note: ")]
        notes += [text[6:] for text in found if text.startswith("note: ")]
    try:
        from .server.app_loader import load_app, warn_unused_settings

        loaded = load_app(config)
        notes += [f"setting {name!r} has no effect for this app" for name in warn_unused_settings(config, loaded[1])]
    except AppLoadError as exc:
        app_error = exc
    for text in notes:
        print(f"monoceros: note: {text}", file=sys.stderr)
    if not problems:
        if app_error is not None:
            return report_error(app_error)
        print("config OK")
        return exitcodes.OK
    if app_error is not None:
        report_error(app_error)  # its traceback, then the list
        problems.append(f"the app does not load: {app_error}")
    print(f"monoceros: check-config found {len(problems)} problem(s):", file=sys.stderr)
    for text in problems:
        print(f"  - {text}", file=sys.stderr)
    return exitcodes.USAGE


def _chdir(config: Config) -> list[str]:
    if config.chdir is None:
        return []
    try:
        os.chdir(config.chdir)  # as startup does, so that what follows is read from there
    except OSError as exc:
        return [f"setting 'chdir': cannot change to {config.chdir!r}: {exc.strerror}"]
    return []


def _environment(config: Config) -> list[str]:
    from .supervisor.process import apply_environment

    apply_environment(config)
    return []


def _logging(config: Config) -> list[str]:
    from .logs import configure_logging

    problems = []
    for name in ("error_logfile", "access_logfile"):
        target = getattr(config, name)
        if target != "-" and config.log_config is None and not _writable(target):
            problems.append(f"setting {name!r}: cannot write {os.path.abspath(target)}")
    if not problems:
        configure_logging(config)  # reads the log config file too; its errors name it
    return problems


def _pid(config: Config) -> list[str]:
    if config.pid is None:
        return []
    from .supervisor.pidfile import Pidfile

    pidfile = Pidfile(config.pid)
    other = pidfile.running_other(os.getpid())
    if other is not None:
        return [f"note: pid file {pidfile.path} names process {other}, which is running (the server to replace?)"]
    if not _writable(pidfile.path):
        return [f"setting 'pid': cannot write {pidfile.path}"]
    return []


def _owner(config: Config) -> list[str]:
    from .supervisor.process import resolve_user

    problems = []
    uid = gid = None
    try:
        uid, _ = resolve_user(config.user, None)
    except MonocerosError as exc:
        problems.append(str(exc))
    try:
        _, gid = resolve_user(None, config.group)
    except MonocerosError as exc:
        problems.append(str(exc))
    switch = (uid is not None and uid != os.geteuid()) or (gid is not None and gid != os.getegid())
    if switch and os.geteuid() != 0:
        problems.append("settings 'user'/'group': switching to another user or group needs root")
    return problems


def _listeners(config: Config) -> list[str]:
    from .server.listeners import create_socket, inherited_sockets, specs_from_config

    if os.environ.get("LISTEN_FDS"):
        return [f"note: {len(inherited_sockets())} inherited listener(s) replace the bind settings"]
    found = []
    for spec in specs_from_config(config):
        if spec.kind == "unix":
            found += _unix_listener(spec.path)
            continue
        try:
            if spec.kind == "fd":
                create_socket(spec, config).detach()
            else:
                create_socket(spec, config, reuse_port=config.reuse_port).close()
        except BindError as exc:
            in_use = isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.EADDRINUSE
            found.append(f"note: {exc} (fine if it is the server this config replaces)" if in_use else str(exc))
    return found


def _unix_listener(path: str) -> list[str]:
    import stat

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.access(directory, os.W_OK | os.X_OK):
            return [f"cannot listen on unix:{path}: cannot create a socket in {directory}"]
        return []
    if not stat.S_ISSOCK(mode):
        return [f"cannot listen on unix:{path}: the path exists and is not a socket"]
    return []


def _tls(config: Config) -> list[str]:
    from .server.tls import create_ssl_context

    create_ssl_context(config)
    return []


def _reload(config: Config) -> list[str]:
    if not config.reload:
        return []
    from .supervisor.reloader import Reloader

    Reloader(config, lambda changes: None)
    return []


def _loop(config: Config) -> list[str]:
    from .server.worker import new_event_loop

    new_event_loop(config.loop).close()
    if config.name:
        try:
            import setproctitle  # noqa: F401
        except ImportError:
            return ["note: setting 'name' has no effect: process titles need setproctitle"]
    return []


def _writable(path: str) -> bool:
    """Could this process open ``path`` for appending (creating it if need be)?"""
    full = os.path.abspath(path)
    if os.path.exists(full):
        return os.path.isfile(full) and os.access(full, os.W_OK)
    directory = os.path.dirname(full)
    return os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)
