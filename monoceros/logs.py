"""Setting up the error log and the access log, and reopening their files.

Named ``logs`` so it never shadows the standard library's ``logging``. Both logs are plain stdlib loggers,
``monoceros.error`` and ``monoceros.access``, so a ``log_config`` file can route them anywhere. The access
log's lines are made by access_format.py and written by access_log.py.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
from typing import TYPE_CHECKING, Any

from .config.registry import Config
from .errors import ConfigError

if TYPE_CHECKING:
    pass

ERROR_LOGGER = "monoceros.error"
ACCESS_LOGGER = "monoceros.access"

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
ERROR_DATEFMT = "%Y-%m-%d %H:%M:%S %z"

TRACE = 5  # uvicorn's level below DEBUG; --log-level trace lets everything through
logging.addLevelName(TRACE, "TRACE")

_installed: list[logging.Handler] = []
"""Handlers configure_logging added, so a second call replaces them instead of doubling every line."""
_access_handler: logging.StreamHandler[Any] | None = None
"""The access log's handler when configure_logging made it: lines for it may skip the logging machinery."""


def configure_logging(cfg: Config) -> None:
    """Set up the error and access loggers from the settings, or from ``cfg.log_config`` when given.

    With ``log_config`` the file is in charge: the two loggers get no handlers of ours and propagate, so a
    file that only configures the root logger still receives them. Unless the file says otherwise,
    loggers that already exist are left enabled (the stdlib default would silently disable ours).
    """
    error_log = logging.getLogger(ERROR_LOGGER)
    access_log = logging.getLogger(ACCESS_LOGGER)
    _remove_installed()
    error_log.setLevel(TRACE if cfg.log_level == "trace" else cfg.log_level.upper())
    access_log.setLevel(logging.INFO)
    error_log.disabled = access_log.disabled = False

    if cfg.log_config is not None:
        error_log.propagate = access_log.propagate = True
        _apply_log_config(cfg.log_config)
        return
    if cfg.paste is not None:
        from .config.paste import has_loggers, split

        if has_loggers(cfg.paste):
            # gunicorn's --paste applies the file's [loggers]; ours then only add handlers to its loggers.
            _apply_log_config(split(cfg.paste)[0], "paste")

    error_handler = _handler("error_logfile", cfg.error_logfile, sys.stderr)
    try:
        access_handler = _handler("access_logfile", cfg.access_logfile, sys.stdout)
    except ConfigError:
        error_handler.close()
        raise
    error_handler.setFormatter(logging.Formatter(ERROR_FORMAT, ERROR_DATEFMT))
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    for logger, handler in ((error_log, error_handler), (access_log, access_handler)):
        logger.addHandler(handler)
        logger.propagate = False
        _installed.append(handler)
    global _captured
    _captured = cfg.error_logfile if cfg.capture_output and cfg.error_logfile != "-" else None
    _capture_output()
    global _access_handler
    _access_handler = access_handler


def _remove_installed() -> None:
    global _access_handler
    _access_handler = None
    for handler in _installed:
        for name in (ERROR_LOGGER, ACCESS_LOGGER):
            logging.getLogger(name).removeHandler(handler)
        handler.close()
    _installed.clear()


def _handler(setting: str, target: str, stream: Any) -> logging.StreamHandler[Any]:
    if target == "-":
        return logging.StreamHandler(stream)
    try:
        return logging.FileHandler(target, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{setting} {target!r}: cannot open: {exc.strerror or exc}") from exc


_captured: str | None = None
"""--capture-output's file: standard output and error point at it (again after each reopen)."""


def _capture_output() -> None:
    """Point file descriptors 1 and 2 at --error-logfile, so what the app prints lands in the error log."""
    if _captured is None:
        return
    try:
        fd = os.open(_captured, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"capture_output: cannot open {_captured!r}: {exc.strerror or exc}") from exc
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _apply_log_config(path: str, setting: str = "log_config") -> None:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".json", ".toml", ".yaml", ".yml", ".ini", ".conf", ".cfg"):
        raise ConfigError(f"{setting} {path!r}: expected a .json, .toml, .yaml, .ini or .conf file")
    if suffix in (".ini", ".conf", ".cfg"):
        if not os.path.isfile(path):
            raise ConfigError(f"{setting} {path!r}: file not found")
        try:
            logging.config.fileConfig(path, disable_existing_loggers=False)
        except Exception as exc:
            raise ConfigError(f"{setting} {path!r}: not a usable logging fileConfig file: {exc!r}") from exc
        return
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{setting} {path!r}: cannot read: {exc.strerror or exc}") from exc
    try:
        if suffix == ".json":
            config = json.loads(data)
        elif suffix == ".toml":
            config = _load_toml(data.decode("utf-8"))
        else:
            config = _load_yaml(path, data, setting)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{setting} {path!r}: not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{setting} {path!r}: expected a dictConfig mapping at the top level")
    config.setdefault("disable_existing_loggers", False)
    try:
        logging.config.dictConfig(config)
    except Exception as exc:
        raise ConfigError(f"{setting} {path!r}: logging.config.dictConfig rejected it: {exc}") from exc


def _load_toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    import tomli  # type: ignore[import-not-found, unused-ignore]

    result: dict[str, Any] = tomli.loads(text)
    return result


def _load_yaml(path: str, data: bytes, setting: str) -> Any:
    """YAML as uvicorn reads it, through PyYAML (optional: installed with monoceros[standard])."""
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"{setting} {path!r}: a YAML file needs PyYAML: pip install PyYAML") from None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def _file_handlers() -> list[logging.FileHandler]:
    """Every file handler of every logger, once each."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    found: dict[int, logging.FileHandler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                found.setdefault(id(handler), handler)
    return list(found.values())


def reopen_log_files() -> None:
    """Reopen every file handler, so logrotate can move the files away (sent on SIGUSR1). A file that cannot be
    opened again keeps its old stream, and the error log says why."""
    for handler in _file_handlers():
        handler.acquire()
        try:
            try:
                stream = handler._open()
            except OSError as exc:
                logging.getLogger(ERROR_LOGGER).error("Reopening %s: %s", handler.baseFilename, exc)
                continue
            if handler.stream is not None:
                handler.stream.close()
            handler.stream = stream
        finally:
            handler.release()
    try:
        _capture_output()
    except ConfigError as exc:
        logging.getLogger(ERROR_LOGGER).error("Reopening the log files: %s", exc)


def give_log_files_to(uid: int | None, gid: int | None) -> None:
    """Hand the log files to the user the server will run as (gunicorn does the same), so that after the switch
    it can still reopen them on SIGUSR1. Only root may; for anyone else this does nothing."""
    if (uid is None and gid is None) or os.geteuid() != 0:
        return
    paths = {handler.baseFilename for handler in _file_handlers()}
    if _captured is not None:
        paths.add(os.path.abspath(_captured))
    for path in paths:
        try:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        except OSError as exc:
            logging.getLogger(ERROR_LOGGER).warning("Cannot hand %s to the server's user: %s", path, exc)


def access_handler() -> logging.StreamHandler[Any] | None:
    """The access log's handler when configure_logging made it (lines for it may skip logging's machinery)."""
    return _access_handler
