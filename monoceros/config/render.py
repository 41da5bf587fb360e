"""Settings written back out: ``--print-config``'s TOML (which ``-c FILE`` reads back to an equal Config),
a dict for the docs and the tests.
"""

from __future__ import annotations

import copy
from typing import Any

from .registry import Config, Setting, registry
from .values import is_octal


def config_as_dict(cfg: Config) -> dict[str, Any]:
    """Every setting by name, with lists copied, in registry order."""
    return {setting.name: copy.copy(getattr(cfg, setting.name)) for setting in registry()}


def render_toml(cfg: Config) -> str:
    """The resolved config as a TOML document that ``-c FILE`` reads back to an equal :class:`Config`."""
    lines = ["# monoceros settings, resolved from every source (see docs/settings.md)."]
    section = None
    for setting in registry():
        if setting.section != section:
            section = setting.section
            lines += ["", f"# {section}"]
        value = getattr(cfg, setting.name)
        if value is None:
            lines.append(f"# {setting.name} = (unset)")
        elif setting.type == "hook":
            lines.append(_hook_line(setting.name, value))
        else:
            lines.append(f"{setting.name} = {toml_value(setting, value)}")
    return "\n".join(lines) + "\n"


def _hook_line(name: str, hook: Any) -> str:
    """A hook as 'module:function' when it can be imported by that name; otherwise a comment."""
    module, qualname = getattr(hook, "__module__", None), getattr(hook, "__qualname__", "")
    if module and module != "__monoceros_config__" and "<" not in qualname:
        return f"{name} = {_toml_string(f'{module}:{qualname}')}"
    return f"# {name} = (a callable set in a Python config file)"


def toml_value(setting: Setting, value: Any) -> str:
    """One value as a TOML literal; permission modes are written in octal (``0o660``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"0o{value:o}" if is_octal(setting) else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_string(str(item)) for item in value) + "]"
    raise TypeError(f"setting {setting.name!r} has a value TOML cannot hold: {value!r}")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
