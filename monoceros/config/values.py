"""One setting's value, from whatever a source gave (a string of the command line or the environment, a TOML or
Python value), converted to the setting's type, its synonyms mapped, its choices and validator checked. An
error names the source and the setting.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .registry import Setting, _octal_mode

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class _Mismatch(Exception):
    """A value of the wrong shape; carries what was expected, for the message."""


def convert_value(setting: Setting, value: Any, source: str) -> Any:
    """Coerce ``value`` to the setting's type, check choices, run its validator."""
    try:
        converted = _CONVERTERS[setting.type](setting, value)
    except _Mismatch as exc:
        raise ConfigError(f"{source}: setting {setting.name!r} expects {exc}, got {value!r}") from None
    if setting.choices is not None and isinstance(converted, str):
        converted = converted.strip().lower()  # gunicorn takes loglevel = "DEBUG"
        converted = dict(setting.synonyms).get(converted, converted)
    if setting.choices is not None and converted not in setting.choices:
        allowed = ", ".join(repr(c) for c in setting.choices)
        raise ConfigError(f"{source}: setting {setting.name!r} must be one of {allowed}; got {value!r}")
    if setting.validator is not None and converted is not None:
        try:
            converted = setting.validator(converted)
        except ValueError as exc:
            raise ConfigError(f"{source}: setting {setting.name!r}: {exc}; got {value!r}") from None
    return converted


def is_octal(setting: Setting) -> bool:
    """Permission modes are read and written in octal: ``660`` means ``0o660``, as with chmod."""
    return setting.validator is _octal_mode


def _to_str(setting: Setting, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))  # a user or group id, ssl.CERT_REQUIRED: as the command line would spell it
    if not isinstance(value, str):
        raise _Mismatch("a string")
    return value


def _to_optional_str(setting: Setting, value: Any) -> str | None:
    # Environment variables and TOML cannot spell None, so an empty string means "unset".
    return None if value is None or value == "" else _to_str(setting, value)


def _to_int(setting: Setting, value: Any) -> int:
    if isinstance(value, bool):
        raise _Mismatch("an integer")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise _Mismatch("an integer")
    try:
        return int(value.strip(), 8) if is_octal(setting) else int(value.strip())
    except ValueError:
        raise _Mismatch("an octal mode such as 660 or 0o660" if is_octal(setting) else "an integer") from None


def _to_optional_int(setting: Setting, value: Any) -> int | None:
    return None if value is None or value == "" else _to_int(setting, value)


def _to_float(setting: Setting, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Mismatch("a number")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except ValueError:
        raise _Mismatch("a number") from None
    if not math.isfinite(number):
        raise _Mismatch("a finite number")
    return number


def _to_bool(setting: Setting, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _Mismatch("true or false (or 1/0, yes/no, on/off)")


def _to_list(setting: Setting, value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    if setting.name == "headers" and isinstance(value, (list, tuple)) and all(_is_pair(item) for item in value):
        return [f"{name}:{text}" for name, text in value]  # uvicorn.run(headers=[("name", "value")])
    raise _Mismatch("a list of strings (or one comma-separated string)")


def _is_pair(item: Any) -> bool:
    return isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(part, str) for part in item)


def _to_hook(setting: Setting, value: Any) -> Any:
    """A callable as it is (Python config files, monoceros.run), or 'module:function' imported now."""
    if value is None or value == "":
        return None
    if callable(value):
        return value
    if not isinstance(value, str) or ":" not in value:
        raise _Mismatch("a callable or a 'module:function' string")
    module_name, _, attr = value.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except ImportError as exc:
        raise _Mismatch(f"an importable 'module:function' (importing {module_name!r} failed: {exc})") from None
    except AttributeError:
        raise _Mismatch(f"an importable 'module:function' ({module_name!r} has no {attr!r})") from None
    return target


_CONVERTERS: dict[str, Callable[[Setting, Any], Any]] = {
    "hook": _to_hook,
    "str": _to_str,
    "optional_str": _to_optional_str,
    "int": _to_int,
    "optional_int": _to_optional_int,
    "float": _to_float,
    "bool": _to_bool,
    "list": _to_list,
}
