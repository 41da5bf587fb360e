"""Running the server hooks, gunicorn's way, in every process model.

A hook written for gunicorn reaches for ``server.log``, ``server.pid``, ``server.cfg``, ``worker.pid``,
``worker.age`` and ``worker.log``. monoceros hands every hook objects that have those (the master, or the one
process serving alone, as ``server``; a worker record as ``worker``), so such hooks run unchanged. Their
``log`` is the error logger itself: a ``logging.Logger`` has every method gunicorn's Logger is called with in
hooks (``info``, ``warning``, ``error``, ``exception``, ``debug``, ``critical``).

A hook that raises is the user's bug, and the error says what the hook was given, so that one reaching for
something monoceros lacks (``server.app.wsgi()``) is fixed at once. Whether it stops the server depends on
the hook: one that runs while starting (``on_starting``, ``post_fork``, ``when_ready``...) fails the start;
one that runs later (``child_exit``, ``worker_exit``, ``on_reload``...) is logged and the server goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from .config import Config
from .errors import HookError

log = logging.getLogger("monoceros.error")

SERVER_OFFERS = "log, pid, cfg, num_workers, WORKERS"
WORKER_OFFERS = "pid, ppid, age, log, cfg"
_OFFERS = {"server": SERVER_OFFERS, "worker": WORKER_OFFERS}

# Each hook's parameters, by the names gunicorn's documentation uses.
PARAMETERS: dict[str, tuple[str, ...]] = {
    "on_starting": ("server",),
    "when_ready": ("server",),
    "pre_fork": ("server", "worker"),
    "post_fork": ("server", "worker"),
    "post_worker_init": ("worker",),
    "worker_exit": ("server", "worker"),
    "on_reload": ("server",),
    "on_exit": ("server",),
    "worker_int": ("worker",),
    "worker_abort": ("worker",),
    "pre_exec": ("server",),
    "child_exit": ("server", "worker"),
    "nworkers_changed": ("server", "new_value", "old_value"),
    "ssl_context": ("config", "default_ssl_context_factory"),
}


def run_hook(config: Config, name: str, *args: Any) -> Any:
    """Call hook ``name`` if it is set; :class:`HookError` if it raises. Returns what the hook returns."""
    hook = getattr(config, name)
    if hook is None:
        return None
    try:
        return hook(*args)
    except Exception as exc:
        raise HookError(_explain(name, args, exc)) from exc


def run_hook_logged(config: Config, name: str, *args: Any) -> None:
    """Call hook ``name``; if it raises, log why with its traceback and carry on."""
    try:
        run_hook(config, name, *args)
    except HookError as exc:
        log.error("%s; the server carries on", exc, exc_info=exc.__cause__)


def _describe(param: str, arg: Any) -> str:
    if param in _OFFERS:
        return f"{param} (a {type(arg).__name__}: {_OFFERS[param]})"
    if isinstance(arg, (int, str)):
        return f"{param}={arg!r}"
    return f"{param} (a {type(arg).__name__})"  # the settings, a factory: their repr would fill the screen


def _explain(name: str, args: tuple[Any, ...], exc: Exception) -> str:
    params = PARAMETERS.get(name, ())
    given = ", ".join(_describe(param, arg) for param, arg in zip(params, args, strict=False))
    return (
        f"server hook {name} raised {type(exc).__name__}: {exc}. It was called as {name}({', '.join(params)}) "
        f"with {given or 'nothing'}; see 'Server hooks' in docs/deployment.md"
    )
