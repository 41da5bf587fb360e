"""The machinery of the settings registry: how one setting is declared, and the shared validators.

A setting is a field of a frozen dataclass, declared with :func:`setting`; its type is the
annotation and everything else rides in the field's metadata. See registry.py for the whole.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Validator = Callable[[Any], Any]


@dataclass(frozen=True)
class Setting:
    """One entry of the registry, derived from a :class:`Config` field."""

    name: str
    type: str  # "str", "int", "float", "bool", "list", "optional_str", "optional_int", "hook"
    default: Any
    help: str
    section: str
    flags: tuple[str, ...]
    choices: tuple[str, ...] | None
    validator: Validator | None
    metavar: str | None
    # Other servers' names for it (gunicorn's ``loglevel``, uvicorn's ``limit_max_requests``), accepted in
    # config files and by monoceros.run(); their command-line spellings are in ``flags``.
    aliases: tuple[str, ...] = ()
    # Other spellings of a choice that mean exactly the same (uvicorn's ``--ssl-cert-reqs 2``).
    synonyms: tuple[tuple[str, str], ...] = ()

    @property
    def env(self) -> str:
        """The environment variable that sets it: ``MONOCEROS_<NAME>``."""
        return "MONOCEROS_" + self.name.upper()


def setting(
    default: Any,
    *,
    help: str,
    section: str,
    flag: str | None = None,
    flags: Sequence[str] = (),
    choices: Sequence[str] | None = None,
    validator: Validator | None = None,
    metavar: str | None = None,
    aliases: Sequence[str] = (),
    synonyms: dict[str, str] | None = None,
) -> Any:
    """Declare a setting as a dataclass field; see :class:`Setting`.

    Its command-line flag is derived from its name (``keep_alive``: ``--keep-alive``); ``flag`` replaces it
    (``--header`` for ``headers``; "" for none: the positional APP), and ``flags`` adds other spellings (short
    ones, other servers')."""
    meta = {
        "help": help,
        "section": section,
        "flag": flag,
        "flags": tuple(flags),
        "choices": tuple(choices) if choices is not None else None,
        "validator": validator,
        "metavar": metavar,
        "aliases": tuple(aliases),
        "synonyms": tuple((synonyms or {}).items()),
    }
    if isinstance(default, list):
        frozen = tuple(default)
        return field(default_factory=lambda: list(frozen), metadata=meta)
    return field(default=default, metadata=meta)


# -- validators -----------------------------------------------------------------------------------------------


def _non_negative(value: Any) -> Any:
    if value < 0:
        raise ValueError("must be zero or more")
    return value


def _positive(value: Any) -> Any:
    if value <= 0:
        raise ValueError("must be more than zero")
    return value


def _port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port, 0 to 65535")
    return value


def _octal_mode(value: Any) -> int:
    if isinstance(value, str):
        value = int(value, 8)
    if not 0 <= value <= 0o777:
        raise ValueError("must be a permission mode such as 0o660")
    return int(value)


def _networks(value: list[str]) -> list[str]:
    for item in value:
        if item == "*" or item.startswith("unix:"):
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address, a CIDR network, or '*'") from None
    return value


def _env_pairs(value: list[str]) -> list[str]:
    for item in value:
        name, sep, _ = item.partition("=")
        if not sep or not name or "\0" in item:
            raise ValueError(f"{item!r} is not NAME=VALUE")
    return value


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2


def _header_lines(value: list[str]) -> list[str]:
    for item in value:
        name, sep, text = item.partition(":")
        if not sep or not _TOKEN.fullmatch(name.strip()) or any(c in text for c in "\r\n\0"):
            raise ValueError(f"{item!r} is not NAME:VALUE (a header name, a colon, a value on one line)")
        try:
            item.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{item!r} holds characters HTTP headers cannot carry (latin-1 only)") from None
    return value


def _hook(value: Any) -> Any:
    if not callable(value):
        raise ValueError("must be a callable")
    return value
