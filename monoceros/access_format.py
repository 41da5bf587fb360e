"""The access log's lines: gunicorn's format atoms (``%(h)s %(r)s %(s)s %({header}i)s ...``) and JSON lines.

A format is parsed once (:class:`AccessFormat`), and each request computes only the atoms it uses; the
writer that batches the lines is access_log.py.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii as _json_str  # C: how json.dumps writes a str
from typing import Any, NamedTuple

from .errors import ConfigError


class AccessRecord(NamedTuple):
    """What one line is made from."""

    client: tuple[str, int] | None
    method: str
    target: str
    version: str
    status: int
    size: int
    duration: float
    started: float
    req: dict[bytes, str]
    resp: dict[bytes, str]


_Atom = Callable[[AccessRecord], Any]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_clf_cache: tuple[int, str] = (-1, "")


def _clf_time(when: float) -> str:
    """'[21/Nov/2026:08:00:00 +0000]' in local time with fixed English month names; cached per second."""
    global _clf_cache
    second = int(when)
    if _clf_cache[0] == second:
        return _clf_cache[1]
    t = time.localtime(second)
    offset = t.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    hh, mm = divmod(abs(offset), 60)
    text = (
        f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hh:02d}{mm:02d}]"
    )
    _clf_cache = (second, text)
    return text


def _basic_user(r: AccessRecord) -> str:
    auth = r.req.get(b"authorization")
    if not auth or auth[:6].lower() != "basic ":
        return "-"
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return "-"
    user = decoded.partition(":")[0]
    return _safe(user) if user else "-"


def _version(r: AccessRecord) -> str:
    return "HTTP/" + r.version


_ATOMS: dict[str, _Atom] = {
    "h": lambda r: r.client[0] if r.client is not None else "-",
    "l": lambda r: "-",
    "u": _basic_user,
    "t": lambda r: _clf_time(r.started),
    "r": lambda r: f"{r.method} {_safe(r.target)} HTTP/{r.version}",
    "m": lambda r: r.method,
    "U": lambda r: _safe(r.target.partition("?")[0]),
    "q": lambda r: _safe(r.target.partition("?")[2]),
    "H": _version,
    "s": lambda r: r.status,
    "B": lambda r: r.size,
    "b": lambda r: str(r.size) if r.size else "-",
    "f": lambda r: r.req.get(b"referer", "-"),
    "a": lambda r: r.req.get(b"user-agent", "-"),
    "T": lambda r: int(r.duration),
    "M": lambda r: int(r.duration * 1_000),
    "D": lambda r: int(r.duration * 1_000_000),
    "L": lambda r: f"{r.duration:.6f}",
    "p": lambda r: f"<{os.getpid()}>",
}
_ATOM_HEADERS = {"u": b"authorization", "f": b"referer", "a": b"user-agent"}
_KEY = re.compile(r"%(%|\(([^)]*)\))?")
_HEADER_ATOM = re.compile(r"\{([^{}]+)\}([io])")
_SAMPLE = AccessRecord(("192.0.2.1", 0), "GET", "/?", "1.1", 200, 0, 0.0, 0.0, {}, {})


def _header_atom(name: bytes, table: str) -> _Atom:
    if table == "i":
        return lambda r: r.req.get(name, "-")
    return lambda r: r.resp.get(name, "-")


def _safe(value: str) -> str:
    """Escape what could forge or garble a log line: quotes, backslashes and non-printables, as \\xHH."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return "".join(c if c.isprintable() and c not in '"\\' else f"\\x{ord(c):02x}" for c in value)


def _collect(headers: Sequence[tuple[bytes, bytes]], wanted: frozenset[bytes], escape: bool) -> dict[bytes, str]:
    """One pass over ``headers`` for the names the format uses; repeated fields are joined with ', '."""
    found: dict[bytes, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in wanted:
            text = value.decode("latin-1")
            if escape:
                text = _safe(text)
            found[key] = found[key] + ", " + text if key in found else text
    return found


class AccessFormat:
    """A gunicorn-style format (or JSON lines), parsed once: the atoms it uses, in order, and the request and
    response header names it reads."""

    __slots__ = ("atom_list", "atoms", "format", "json", "positional", "req_names", "resp_names")

    def __init__(self, text: str, json: bool) -> None:
        self.json = json
        self.format = text
        self.atoms: list[tuple[str, _Atom]] = []
        req_names: set[bytes] = set()
        resp_names: set[bytes] = set()
        for match in _KEY.finditer(text):
            if match.group(1) is None:
                raise ConfigError(
                    f"access_logformat {text!r}: '%' must start an atom such as %(h)s; write %% for a literal '%'"
                )
            key = match.group(2)
            if key is None or key in dict(self.atoms):
                continue
            header = _HEADER_ATOM.fullmatch(key)
            if header is not None:
                name = header.group(1).strip().lower().encode("latin-1", "replace")
                (req_names if header.group(2) == "i" else resp_names).add(name)
                self.atoms.append((key, _header_atom(name, header.group(2))))
            elif key in _ATOMS:
                if key in _ATOM_HEADERS:
                    req_names.add(_ATOM_HEADERS[key])
                self.atoms.append((key, _ATOMS[key]))
            else:
                raise ConfigError(f"access_logformat {text!r}: unknown atom %({key})s")
        self.req_names = frozenset(req_names)
        self.resp_names = frozenset(resp_names)
        try:
            text % {key: atom(_SAMPLE) for key, atom in self.atoms}
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"access_logformat {text!r}: not a valid format: {exc}") from None
        if json:
            self.req_names = frozenset((b"referer", b"user-agent"))
            self.resp_names = frozenset()
        # A format that names each atom once is applied positionally: a tuple is cheaper to build than a dict.
        self.positional: str | None = None
        keys = [m.group(2) for m in _KEY.finditer(text) if m.group(2) is not None]
        if len(keys) == len(set(keys)):
            self.positional = _KEY.sub(lambda m: "%%" if m.group(1) == "%" else "%", text)
        self.atom_list = [atom for _, atom in self.atoms]


def json_line(r: AccessRecord) -> str:
    """The line ``json.dumps(record, separators=(",", ":"))`` writes, from a template: the strings through
    json's own C escaper, the numbers through repr as json does (less than half the time; docs/performance.md)."""
    path, _, query = r.target.partition("?")
    return _JSON_LINE % (
        _iso_time(r.started),
        _json_text(r.client[0] if r.client is not None else None),
        _json_str(r.method),
        _json_str(path),
        _json_str(query),
        _json_str(r.version),
        r.status,
        r.size,
        round(r.duration * 1000, 3),
        _json_text(r.req.get(b"referer")),
        _json_text(r.req.get(b"user-agent")),
    )


_JSON_LINE = (
    '{"time":"%s","client":%s,"method":%s,"path":%s,"query":%s,"http_version":%s,"status":%d,"bytes":%d,'
    '"duration_ms":%r,"referer":%s,"user_agent":%s}'
)


def _json_text(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


_iso_cache: tuple[int, str] = (-1, "")


def _iso_time(when: float) -> str:
    """``datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="milliseconds")``, with the part down
    to the second cached: the same rounding (microseconds half-even, then truncated to milliseconds)."""
    global _iso_cache
    frac, whole = math.modf(when)
    second, micro = int(whole), round(frac * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    elif micro < 0:
        second, micro = second - 1, micro + 1_000_000
    if _iso_cache[0] != second:
        _iso_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_iso_cache[1]}.{micro // 1000:03d}+00:00"
