"""The ``Forwarded`` header of RFC 7239: a list of elements, one per proxy, each a set of ``name=value``
pairs (``for``, ``by``, ``proto``, ``host``) whose values are tokens or quoted strings.

:func:`parse` returns the elements in order (the client's side first); a header that does not follow the
grammar returns None, and the caller then believes none of it: a value half understood is not believed.
"""

from __future__ import annotations

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
MAX_ELEMENTS = 64  # a longer chain is not a real one


def parse(value: str) -> list[dict[str, str]] | None:
    """The elements of one or more comma-joined Forwarded values; parameter names lowercased."""
    elements: list[dict[str, str]] = []
    pairs: dict[str, str] = {}
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] == ",":  # an empty element (a list may have them): skip it
            i += 1
            continue
        if i >= n:
            break
        start = i
        while i < n and value[i] in _TCHAR:
            i += 1
        name = value[start:i].lower()
        if not name or i >= n or value[i] != "=":
            return None
        i += 1
        if i < n and value[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(value[i])
                i += 1
            if i >= n:
                return None  # no closing quote
            i += 1
            text = "".join(chars)
        else:
            start = i
            while i < n and value[i] in _TCHAR:
                i += 1
            text = value[start:i]
            if not text:
                return None
        if name in pairs:
            return None  # RFC 7239 §4: a parameter at most once per element
        pairs[name] = text
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] == ";":
            i += 1
            continue
        if i < n and value[i] != ",":
            return None
        elements.append(pairs)
        pairs = {}
        if len(elements) > MAX_ELEMENTS:
            return None
        if i < n:
            i += 1
    if pairs:
        elements.append(pairs)
    return elements


def node(text: str) -> tuple[str, int]:
    """A ``for`` node as (host, port): '192.0.2.1', '"[2001:db8::1]:4711"' (unquoted here), 'unknown', or an
    obfuscated '_name'; the port is 0 when absent or not a number."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port.isdigit() and len(port) <= 5 and int(port) <= 65535 else 0
