"""monoceros: one Python application server for WSGI and ASGI apps."""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .config import Config
from .config.sources import load_config

__all__ = ["Config", "__version__", "run"]


def run(app: object | str | None = None, **settings: Any) -> None:
    """Serve ``app`` from Python code, e.g. ``monoceros.run(app, port=8080, workers=4)``.

    ``app`` is the WSGI/ASGI callable itself, or an APP string such as ``"pkg.web:app"`` (needed when
    workers must import it themselves). Keyword settings win over the config file and the
    ``MONOCEROS_*`` environment, which still apply. Errors are raised (ConfigError, AppLoadError, ...),
    not turned into exit codes; that is the command line's job.
    """
    overrides = dict(settings)
    if isinstance(app, str):
        overrides["app"] = app
        app = None
    config = load_config(overrides=overrides)
    from .runner import serve  # here, so that importing monoceros loads no server code

    serve(config, app=app, reload_config=lambda: load_config(overrides=overrides))
