"""Find the user's app from the APP string and tell WSGI from ASGI.

The three ways an import fails get three errors, because each asks the user for a
different fix: the module is missing (a typo or --app-dir), the attribute is
missing (a typo after the colon), or the user's own module raised (their bug,
shown with its traceback).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any

from ..config import Config
from ..errors import AppLoadError, AttributeNotFound, ModuleNotFound, ModuleRaised

DEFAULT_ATTRS = ("app", "application")


def import_from_string(spec: str, app_dir: str = ".") -> Any:
    """Import ``module:attr`` or ``path/to/file.py:attr`` (``attr`` defaults to app, then application)."""
    module_name, sep, attr = spec.partition(":")
    if not module_name:
        raise AppLoadError(f"APP {spec!r} names no module; expected 'module:attr'")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    if module_name.endswith(".py") or os.sep in module_name:
        module = _import_file(module_name, directory)
    else:
        module = _import_module(module_name)
    names = [attr] if sep and attr else list(DEFAULT_ATTRS)
    for name in names:
        value: Any = module
        try:
            for part in name.split("."):
                value = getattr(value, part)
        except AttributeError:
            continue
        return value
    wanted = names[0] if len(names) == 1 else " or ".join(repr(n) for n in names)
    raise AttributeNotFound(f"module {module.__name__!r} has no attribute {wanted}")


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == name or name.startswith(missing + "."):
            raise ModuleNotFound(f"could not import module {name!r}: no such module on sys.path") from None
        raise ModuleRaised(f"importing module {name!r} raised {type(exc).__name__}: {exc}") from exc
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ModuleRaised(f"importing module {name!r} raised {type(exc).__name__}: {exc}") from exc


def _import_file(path: str, app_dir: str) -> Any:
    full = os.path.abspath(os.path.join(app_dir, path))
    if not os.path.isfile(full):
        raise ModuleNotFound(f"could not import {path!r}: no such file {full}")
    name = os.path.splitext(os.path.basename(full))[0]
    folder = os.path.dirname(full)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise ModuleNotFound(f"could not import {path!r}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ModuleRaised(f"importing {full} raised {type(exc).__name__}: {exc}") from exc
    return module


def detect_interface(app: Any) -> str:
    """'asgi3', 'asgi2' or 'wsgi', from the shape of the callable."""
    if inspect.isclass(app):
        # Calling the class makes the instance: ASGI 2 when the instance's __call__ is a coroutine
        # function (receive, send); otherwise a WSGI app class whose instances are the response iterable.
        if inspect.iscoroutinefunction(getattr(app, "__call__", None)):  # noqa: B004
            return "asgi2"
        return "wsgi"
    if _is_coroutine_callable(app):
        return "asgi3"
    try:
        params = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return "wsgi"
    if len(params) == 3:
        return "asgi3"
    if len(params) == 1:
        return "asgi2"
    return "wsgi"


def _is_coroutine_callable(obj: Any) -> bool:
    if obj is None:
        return False
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004
    return call is not None and not inspect.isfunction(obj) and inspect.iscoroutinefunction(call)


def load_app(config: Config, app: Any = None) -> tuple[Any, str]:
    """The app callable and its interface, from ``app`` or the APP setting (the demo when neither)."""
    if app is None:
        if config.app is None:
            from ..demo import app as demo

            return demo.app, "asgi3"
        app = import_from_string(config.app, config.app_dir)
        if config.factory:
            try:
                app = app()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise ModuleRaised(f"app factory {config.app!r} raised {type(exc).__name__}: {exc}") from exc
    elif config.factory and callable(app):
        app = app()
    if not callable(app):
        raise AppLoadError(f"{config.app or app!r} is not callable, so it is neither a WSGI nor an ASGI app")
    interface = config.interface if config.interface != "auto" else detect_interface(app)
    return app, interface
