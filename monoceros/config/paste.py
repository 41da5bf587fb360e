"""``--paste``: a WSGI app described by a PasteDeploy .ini file, as gunicorn's ``--paste`` loads it.

PasteDeploy (a small, long-kept library of the Pylons project) reads the file and builds the app with its
filters; monoceros only turns the setting into its call and its failures into AppLoadErrors.
"""

from __future__ import annotations

import configparser
import os
from typing import Any

from ..errors import AppLoadError, ModuleRaised


def split(setting: str) -> tuple[str, str]:
    """``FILE#NAME`` as (absolute path, app section name); the name is 'main' by default."""
    path, _, name = setting.partition("#")
    return os.path.abspath(path), name or "main"


def load_paste_app(setting: str) -> Any:
    """The WSGI app of ``[app:NAME]`` in the file; AppLoadError when it cannot be built."""
    path, name = split(setting)
    if not os.path.isfile(path):
        raise AppLoadError(f"setting 'paste': {path} does not exist")
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise AppLoadError("setting 'paste' needs PasteDeploy: pip install PasteDeploy") from None
    try:
        return loadapp(f"config:{path}", name=name, relative_to=os.path.dirname(path))
    except LookupError as exc:
        raise AppLoadError(f"setting 'paste': {path} has no usable [app:{name}] section: {exc}") from None
    except Exception as exc:
        what = f"loading the PasteDeploy app {name!r} from {path}"
        raise ModuleRaised(f"{what} raised {type(exc).__name__}: {exc}") from exc


def has_loggers(setting: str) -> bool:
    """True when the .ini file configures logging ([loggers]), which gunicorn applies with fileConfig."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(split(setting)[0], encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return False
    return parser.has_section("loggers")
