"""Find the user's app from the APP string and tell WSGI from ASGI.

The three ways an import fails get three errors, because each asks the user for a
different fix: the module is missing (a typo or --app-dir), the attribute is
missing (a typo after the colon), or the user's own module raised (their bug,
shown with its traceback).

An app factory is called as uvicorn and gunicorn users expect: with ``--factory``,
when APP is a plain function that takes no arguments (a forgotten ``--factory``:
served as a WSGI app, it would answer 500 to everything), or written as a call with
literal arguments, ``'module:create_app("prod", debug=False)'``, as gunicorn parses it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import logging
import os
import sys
from typing import Any, NamedTuple

from ..config import Config
from ..errors import AppLoadError, AttributeNotFound, ModuleNotFound, ModuleRaised

DEFAULT_ATTRS = ("app", "application")

log = logging.getLogger("monoceros.error")


class LoadedApp(NamedTuple):
    """The app callable and its calling convention ('asgi3', 'asgi2' or 'wsgi')."""

    app: Any
    interface: str


def import_from_string(spec: str, app_dir: str = ".", pythonpath: list[str] | None = None) -> Any:
    """Import ``module:attr`` or ``path/to/file.py:attr`` (``attr`` defaults to app, then application).

    ``module:factory(args)`` imports ``factory`` and returns what the call returns.
    """
    module_name, sep, attr = spec.partition(":")
    if not module_name:
        raise AppLoadError(f"APP {spec!r} names no module; expected 'module:attr'")
    call = _parse_call(spec, attr) if "(" in attr else None
    if call is not None:
        attr = call[0]
    extend_sys_path(app_dir, pythonpath or [])
    directory = os.path.abspath(app_dir)
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
        if call is not None:
            return _call_factory(spec, value, call[1], call[2])
        return value
    wanted = names[0] if len(names) == 1 else " or ".join(repr(n) for n in names)
    raise AttributeNotFound(f"module {module.__name__!r} has no attribute {wanted}")


def extend_sys_path(app_dir: str, pythonpath: list[str]) -> None:
    """Put --app-dir first on sys.path, then the --pythonpath directories, before the app is imported."""
    for entry in reversed([app_dir, *pythonpath]):
        directory = os.path.abspath(entry)
        if directory not in sys.path:
            sys.path.insert(0, directory)


def _parse_call(spec: str, text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``create_app("a", debug=True)`` as (name, args, kwargs). Only literals, as gunicorn allows: the APP
    string comes from a command line or a config file, and is never evaluated as code."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"APP {spec!r}: {text!r} is not a valid call") from None
    if not isinstance(node, ast.Call):
        raise AppLoadError(f"APP {spec!r}: expected 'module:function(arguments)'")
    parts: list[str] = []
    func = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        raise AppLoadError(f"APP {spec!r}: the called name must be a plain (dotted) name")
    parts.append(func.id)
    try:
        args = [ast.literal_eval(arg) for arg in node.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
    except ValueError:
        raise AppLoadError(
            f"APP {spec!r}: a factory's arguments must be literals (strings, numbers, True, None, lists, dicts)"
        ) from None
    if len(kwargs) != len(node.keywords):
        raise AppLoadError(f"APP {spec!r}: **kwargs cannot be used in the APP string")
    return ".".join(reversed(parts)), args, kwargs


def _call_factory(spec: str, factory: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if not callable(factory):
        raise AppLoadError(f"APP {spec!r}: {type(factory).__name__} object is not callable, so it is not a factory")
    try:
        return factory(*args, **kwargs)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ModuleRaised(f"app factory {spec!r} raised {type(exc).__name__}: {exc}") from exc


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
    """'asgi3', 'asgi2' or 'wsgi', from the shape of the callable. AppLoadError for a callable that takes
    a number of arguments no interface passes (a factory that wants its own, say)."""
    if inspect.isclass(app):
        # Calling the class makes the instance: ASGI 2 when the instance's __call__ is a coroutine
        # function (receive, send); otherwise a WSGI app class whose instances are the response iterable.
        if inspect.iscoroutinefunction(getattr(app, "__call__", None)):  # noqa: B004
            return "asgi2"
        return "wsgi"
    if _is_coroutine_callable(app):
        return "asgi3"
    required = _required_positional(app)
    if required == 3:
        return "asgi3"
    if required == 1:
        return "asgi2"
    if required in (2, None):
        return "wsgi"
    raise AppLoadError(
        f"{_describe(app)} takes {required} argument(s) without defaults, so it is neither a WSGI app "
        "(environ, start_response) nor an ASGI app (scope, receive, send)"
    )


def _required_positional(func: Any) -> int | None:
    """How many positional arguments ``func`` needs; None when it cannot be told (a C callable, *args)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def looks_like_factory(obj: Any) -> bool:
    """A plain function that needs no arguments: no app is called that way, but a factory is."""
    if not (inspect.isfunction(obj) or inspect.ismethod(obj)) or inspect.iscoroutinefunction(obj):
        return False
    return _required_positional(obj) == 0


def _describe(app: Any) -> str:
    name = getattr(app, "__qualname__", None) or type(app).__name__
    module = getattr(app, "__module__", None)
    return f"{module}:{name}" if module else repr(name)


def _is_coroutine_callable(obj: Any) -> bool:
    if obj is None:
        return False
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004
    return call is not None and not inspect.isfunction(obj) and inspect.iscoroutinefunction(call)


def load_app(config: Config, app: Any = None) -> LoadedApp:
    """The app callable and its interface, from ``app`` or the APP setting (the demo when neither)."""
    if app is None:
        if config.paste is not None:
            from ..config.paste import load_paste_app

            extend_sys_path(config.app_dir, config.pythonpath)
            return LoadedApp(load_paste_app(config.paste), "wsgi")
        if config.app is None:
            from ..demo import app as demo

            return LoadedApp(demo.app, "asgi3")
        app = import_from_string(config.app, config.app_dir, config.pythonpath)
        called = "(" in config.app.partition(":")[2]
        if config.factory and not called:
            app = _call_factory(config.app, app, [], {})
        elif not called and looks_like_factory(app):
            log.warning(
                "APP %r is a function that takes no arguments, so it is taken for an app factory and called; "
                "pass --factory to say so and silence this warning",
                config.app,
            )
            app = _call_factory(config.app, app, [], {})
            if not callable(app):
                raise AppLoadError(
                    f"APP {config.app!r} takes no arguments, so it was called as an app factory, but it returned "
                    f"{type(app).__name__}, not an app"
                )
    elif config.factory and callable(app):
        app = app()
    if not callable(app):
        raise AppLoadError(f"{config.app or app!r} is not callable, so it is neither a WSGI nor an ASGI app")
    interface = config.interface if config.interface != "auto" else detect_interface(app)
    return LoadedApp(app, interface)


# Settings that only one kind of app reads: given for the other kind, they are said to do nothing.
_WSGI_ONLY = ("threads", "wsgi_mode")
_ASGI_ONLY = (
    "lifespan", "ws", "ws_max_size", "ws_max_queue", "ws_ping_interval", "ws_ping_timeout", "ws_close_timeout",
    "ws_per_message_deflate",
)  # fmt: skip


def warn_unused_settings(config: Config, interface: str) -> list[str]:
    """Warn about each setting given for an app that never reads it (``--threads`` for an ASGI app). A
    warning, not an error: one config file often serves several apps. Returns the names warned about."""
    unused = _WSGI_ONLY if interface != "wsgi" else _ASGI_ONLY
    kind = "an ASGI" if interface != "wsgi" else "a WSGI"
    names = [name for name in unused if config.chose(name)]
    for name in names:
        log.warning("Setting %r has no effect: the app is %s app", name, kind)
    return names
