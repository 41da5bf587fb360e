"""Choose the process model and run it: one process, or a master supervising forked workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import Config
from .logs import configure_logging


def needs_supervisor(config: Config) -> bool:
    """A master runs when asked for, or when a setting needs one to act on the workers."""
    return (
        config.supervisor
        or config.workers > 1
        or config.reload
        or config.daemon
        or config.max_requests > 0
        or config.max_worker_lifetime > 0
        or config.max_worker_memory > 0
    )


def serve(config: Config, app: Any = None, reload_config: Callable[[], Config] | None = None) -> int:
    """Serve until stopped; return the process exit code.

    ``reload_config`` re-reads every settings source; the supervisor calls it on SIGHUP.
    """
    configure_logging(config)
    if needs_supervisor(config):
        from .supervisor.arbiter import Arbiter

        return Arbiter(config, app, reload_config).run()
    from .server.worker import Worker

    Worker(config, app).run()
    return 0
