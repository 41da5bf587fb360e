"""Settings of the process model: the supervisor, worker health and recycling, operations, hooks, dev reload.

Defaults follow gunicorn where its users would look for them (``timeout`` 30 s, ``umask``, hook names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fields import _env_pairs, _hook, _non_negative, _octal_mode, _positive, setting

Hook = Callable[..., Any]

PROC = "Processes"
HEALTH = "Worker health and recycling"
OPS = "Operations"
HOOKS = "Server hooks"
RELOAD = "Development reload"


def _hook_setting(signature: str, when: str) -> Any:
    return setting(
        None,
        section=HOOKS,
        validator=_hook,
        metavar="MODULE:FUNC",
        help=f"Called as {signature} {when}. A callable in a Python config file, or 'module:function'. "
        "gunicorn's hooks run unchanged: see docs/deployment.md for what 'server' and 'worker' offer.",
    )


@dataclass(frozen=True)
class ProcessSettings:
    """How many processes run, how they are watched and replaced, and how they are operated."""

    # Processes --------------------------------------------------------------------------------------------
    workers: int = setting(
        1,
        section=PROC,
        flags=["-w"],
        validator=_positive,
        metavar="N",
        help="Number of worker processes. Without -w, the WEB_CONCURRENCY environment variable sets it. "
        "More than one starts a supervising master process.",
    )
    supervisor: bool = setting(
        False,
        section=PROC,
        help="Run a supervising master even for one worker (it is always on with more than one worker, "
        "--reload, recycling settings or --daemon): restarts, heartbeats and the reload signals need it.",
    )
    reuse_port: bool = setting(
        False,
        section=PROC,
        help="Give each worker its own SO_REUSEPORT listening socket (TCP only), so the kernel balances "
        "connections between workers instead of letting them race to accept.",
    )
    preload: bool = setting(
        False,
        section=PROC,
        aliases=["preload_app"],
        help="Import the app in the master before forking (and, as in gunicorn, before dropping privileges): "
        "workers share its memory and start faster. A HUP still re-imports it. In one process without a "
        "supervisor the app is likewise imported before --user takes effect.",
    )

    # Worker health and recycling ------------------------------------------------------------------------
    # gunicorn's timeout is 30 s: long enough for a slow request on a sync worker, short enough to notice.
    timeout: float = setting(
        30.0,
        section=HEALTH,
        flags=["-t", "--timeout-worker-healthcheck"],
        aliases=["timeout_worker_healthcheck"],
        validator=_non_negative,
        metavar="SECONDS",
        help="A worker whose event loop has not sent a heartbeat for this long is killed (SIGABRT, which "
        "logs its traceback, then SIGKILL) and replaced. 0 disables. The supervisor enforces it; set to "
        "another value, it starts one for a single worker too.",
    )
    max_requests: int = setting(
        0,
        section=HEALTH,
        flags=["--limit-max-requests"],
        aliases=["limit_max_requests"],
        validator=_non_negative,
        metavar="N",
        help="Recycle a worker after this many requests; 0 disables. At its limit the worker itself stops "
        "taking requests (the last answer says 'Connection: close'), finishes those in flight and exits, "
        "while the master starts its replacement.",
    )
    max_requests_jitter: int = setting(
        0,
        section=HEALTH,
        flags=["--limit-max-requests-jitter"],
        aliases=["limit_max_requests_jitter"],
        validator=_non_negative,
        metavar="N",
        help="Add a random 0..N to --max-requests per worker, so workers do not all recycle at once.",
    )
    max_worker_lifetime: float = setting(
        0.0,
        section=HEALTH,
        validator=_non_negative,
        metavar="SECONDS",
        help="Recycle a worker after it has run this long; 0 disables.",
    )
    max_worker_lifetime_jitter: float = setting(
        0.0,
        section=HEALTH,
        validator=_non_negative,
        metavar="SECONDS",
        help="Add a random 0..N seconds to --max-worker-lifetime per worker.",
    )
    max_worker_memory: int = setting(
        0,
        section=HEALTH,
        validator=_non_negative,
        metavar="MIB",
        help="Recycle a worker whose resident memory (RSS) exceeds this many MiB; 0 disables.",
    )
    max_worker_memory_jitter: int = setting(
        0,
        section=HEALTH,
        validator=_non_negative,
        metavar="MIB",
        help="Add a random 0..N MiB to --max-worker-memory per worker.",
    )

    # Operations -------------------------------------------------------------------------------------------
    pid: str | None = setting(
        None,
        section=OPS,
        flags=["-p"],
        aliases=["pidfile"],
        metavar="FILE",
        help="Write the master's PID (or the one process's) to this file.",
    )
    daemon: bool = setting(
        False,
        section=OPS,
        flags=["-D"],
        help="Detach from the terminal and run in the background (use --pid and log files with it).",
    )
    user: str | None = setting(
        None,
        section=OPS,
        flags=["-u"],
        metavar="USER",
        help="Run the workers (or the one process) as this user, name or id, once the listeners are bound.",
    )
    group: str | None = setting(
        None,
        section=OPS,
        flags=["-g"],
        metavar="GROUP",
        help="Run the workers (or the one process) as this group; default: the --user's own group.",
    )
    initgroups: bool = setting(
        False,
        section=OPS,
        help="With --user, also join every supplementary group the user belongs to (initgroups(3)), as "
        "gunicorn's --initgroups does; otherwise the process keeps only the one group.",
    )
    # 022 is the usual login umask: files the server creates are not writable by others.
    umask: int = setting(
        0o022,
        section=OPS,
        flags=["-m"],
        validator=_octal_mode,
        metavar="MODE",
        help="File mode creation mask of the server processes (octal, e.g. 022).",
    )
    name: str | None = setting(
        None,
        section=OPS,
        flags=["-n"],
        aliases=["proc_name"],
        metavar="NAME",
        help="Name shown in process titles ('monoceros: master [NAME]'), when setproctitle is installed.",
    )
    chdir: str | None = setting(
        None, section=OPS, flags=["--chdir"], metavar="DIR", help="Change to this directory before loading the app."
    )
    env: list[str] = setting(
        [],
        section=OPS,
        flags=["-e"],
        aliases=["raw_env"],
        validator=_env_pairs,
        metavar="NAME=VALUE",
        help="Set an environment variable for the app; repeat for several.",
    )
    env_file: str | None = setting(
        None,
        section=OPS,
        metavar="FILE",
        help="Load environment variables for the app from this .env file (python-dotenv's format). Variables "
        "already set win, as with uvicorn; --env wins over both.",
    )

    # Server hooks -----------------------------------------------------------------------------------------
    on_starting: Hook | None = _hook_setting("on_starting(server)", "in the master before it binds")
    when_ready: Hook | None = _hook_setting("when_ready(server)", "in the master once every worker is ready")
    pre_fork: Hook | None = _hook_setting("pre_fork(server, worker)", "in the master before forking a worker")
    post_fork: Hook | None = _hook_setting("post_fork(server, worker)", "in a new worker just after the fork")
    post_worker_init: Hook | None = _hook_setting(
        "post_worker_init(worker)", "in a worker once its app is loaded and it is ready"
    )
    worker_exit: Hook | None = _hook_setting(
        "worker_exit(server, worker)", "in a worker as it exits, after it has stopped serving"
    )
    on_reload: Hook | None = _hook_setting("on_reload(server)", "in the master on HUP, before new workers start")
    on_exit: Hook | None = _hook_setting("on_exit(server)", "in the master just before it exits")
    worker_int: Hook | None = _hook_setting("worker_int(worker)", "in a worker that got SIGINT or SIGQUIT")
    worker_abort: Hook | None = _hook_setting(
        "worker_abort(worker)", "in a worker that got SIGABRT (its loop was blocked past --timeout)"
    )
    pre_exec: Hook | None = _hook_setting("pre_exec(server)", "in the new master of a USR2 re-exec, before exec")
    child_exit: Hook | None = _hook_setting(
        "child_exit(server, worker)", "in the master when it has reaped an exited worker"
    )
    nworkers_changed: Hook | None = _hook_setting(
        "nworkers_changed(server, new, old)", "in the master when TTIN, TTOU or a reload changes the worker count"
    )
    ssl_context: Hook | None = _hook_setting(
        "ssl_context(config, default_ssl_context_factory)",
        "in each worker to build the TLS context; it returns an ssl.SSLContext",
    )

    # Development reload -----------------------------------------------------------------------------------
    reload: bool = setting(
        False,
        section=RELOAD,
        help="Restart the workers when a watched file changes (development only). Uses watchfiles.",
    )
    reload_delay: float = setting(
        0.2,
        section=RELOAD,
        validator=_non_negative,
        metavar="SECONDS",
        help="Wait until files have been quiet this long before reloading, so a save of several files reloads once.",
    )
    reload_extra_files: list[str] = setting(
        [],
        section=RELOAD,
        flag="--reload-extra-file",
        metavar="FILE",
        help="A file to watch besides the --reload-include patterns (a template, a .env); repeat for several.",
    )
    reload_dirs: list[str] = setting(
        [],
        section=RELOAD,
        flag="--reload-dir",
        metavar="DIR",
        help="Directory to watch; repeat for several. Default: the current directory and --app-dir.",
    )
    reload_includes: list[str] = setting(
        ["*.py"],
        section=RELOAD,
        flag="--reload-include",
        metavar="GLOB",
        help="File name pattern that triggers a reload; repeat for several.",
    )
    reload_excludes: list[str] = setting(
        [".venv", "node_modules", "__pycache__", ".git", ".*"],
        section=RELOAD,
        flag="--reload-exclude",
        metavar="GLOB",
        help="Pattern of files or directories never watched; it matches any path component.",
    )


__all__ = ["Hook", "ProcessSettings"]
