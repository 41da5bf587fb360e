"""Header rules every HTTP version shares, and a bounded memo for the work done on the same few values again.

HTTP/1.1, HTTP/2 and HTTP/3 carry the same fields (RFC 9110 §5): a name is a token, and no value may hold a
CR, LF or NUL, or a response could be split in two. The adapters check what an app sends with
:func:`check_header` whatever protocol carries it. HTTP/2 and HTTP/3 also forbid the connection-specific
fields that HTTP/1.1 uses (RFC 9113 §8.2.2, RFC 9114 §4.2): :data:`CONNECTION_SPECIFIC` lists them.
"""

from __future__ import annotations

from typing import Generic, TypeVar

# RFC 9110 §5.6.2: field-name is a token.
TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# CR, LF, NUL as ints: ``b"_" in name`` first tries the operand as an integer, and the TypeError it formats and
# discards costs more than the search (docs/performance.md has what it cost), so bytes are tested as ints.
BAD_VALUE = (0x0D, 0x0A, 0x00)
UNDERSCORE, HASH = 0x5F, 0x23

# RFC 9113 §8.2.2: fields that only mean something on one HTTP/1.1 connection. An HTTP/2 (or HTTP/3) message
# that has them is malformed, and a server must not send them there; "te" is allowed with "trailers" only.
CONNECTION_SPECIFIC = frozenset((b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"))


def check_header(name: bytes, value: bytes) -> None:
    """Refuse a response header that would corrupt the framing (RFC 9110 §5.1, §5.5)."""
    if not name or not TCHAR.issuperset(name):
        raise ValueError(f"invalid response header name {name!r}")
    for bad in BAD_VALUE:
        if bad in value:
            raise ValueError(f"invalid response header value {value!r} for {name!r}")


# The __slots__ of a base class whose fields its one subclass declares (two bases with fields of their own
# could not be combined). Named, not a literal, so that mypy does not take the base for the whole layout.
NO_SLOTS: tuple[str, ...] = ()

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """A named, bounded memo. Look up in :attr:`data`, a plain dict (a dict subclass's ``get`` costs 20 ns more,
    which a request pays a few times); fill it with :meth:`remember`. Cleared when full: varying keys churn it,
    and a bounded miss is cheaper than an unbounded cache. Apps send the same few headers, lengths and statuses
    again and again; a client choosing values cannot grow it."""

    __slots__ = ("data", "limit", "name")

    def __init__(self, name: str, limit: int = 2048) -> None:
        self.name = name
        self.limit = limit
        self.data: dict[K, V] = {}

    def remember(self, key: K, value: V) -> V:
        """Memoise ``value`` under ``key`` and return it."""
        data = self.data
        if len(data) >= self.limit:
            data.clear()
        data[key] = value
        return value

    def __repr__(self) -> str:
        return f"<Memo {self.name}: {len(self.data)} of {self.limit}>"
