"""Choose the process model and run it: one process, or a master supervising forked workers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .config import Config
from .logs import configure_logging
from .supervisor.process import apply_environment

# Hooks that only a master ever calls: one given means the user expects a master (as gunicorn always has).
MASTER_HOOKS = ("on_reload", "pre_exec", "child_exit", "nworkers_changed")


def needs_supervisor(config: Config) -> bool:
    """A master runs when asked for, or when a setting needs one to act on the workers: several of them,
    restarting them (reload, recycling, the hooks of a reload, a re-exec or a scaling), watching their
    heartbeat (--timeout other than the default, which applies under a supervisor only), detaching, or serving
    the admin listener (which must answer while workers restart)."""
    return (
        config.supervisor
        or any(getattr(config, hook) is not None for hook in MASTER_HOOKS)
        or config.workers > 1
        or config.reload
        or config.daemon
        or config.chose("timeout")
        or config.max_requests > 0
        or config.max_worker_lifetime > 0
        or config.max_worker_memory > 0
        or config.admin_bind is not None
    )


def serve(config: Config, app: Any = None, reload_config: Callable[[], Config] | None = None) -> int:
    """Serve until stopped; return the process exit code.

    ``reload_config`` re-reads every settings source; the supervisor calls it on SIGHUP.
    """
    configure_logging(config)
    log_notes(config)
    apply_environment(config)
    if needs_supervisor(config):
        from .supervisor.arbiter import Arbiter

        return Arbiter(config, app, reload_config).run()
    from .supervisor.single import SingleProcess

    return SingleProcess(config, app).run()


def log_notes(config: Config) -> None:
    """Another server's options that monoceros does not need were accepted; say so once logging is up."""
    for note in config.notes:
        logging.getLogger("monoceros.error").warning("%s", note)
