"""What the WSGI adapter hands the app, used in the app's pool thread: the environ's streams
(``wsgi.input``, ``wsgi.errors``, ``wsgi.file_wrapper``) and the checks on ``start_response``'s arguments.

:class:`WSGIInput` never holds the whole body: it asks the event loop for the next
piece (through the ``receive`` callable it is given, which blocks the thread until
the loop answers) only when its buffer cannot satisfy a read.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..protocols.headers import Memo, check_header

log = logging.getLogger("monoceros.error")

Receive = Callable[[], "tuple[bytes, bool]"]


class WSGIInput:
    """``wsgi.input``: the request body, pulled piece by piece as the app reads it.

    ``read()`` without a size reads to the end of the body (``wsgi.input_terminated``).
    A read with a size returns that many bytes, or fewer only at the end. A client that
    leaves mid-body makes the read raise :class:`~monoceros.errors.ClientDisconnected`,
    an ``OSError``.
    """

    __slots__ = ("_buffer", "_more", "_receive")

    def __init__(self, receive: Receive | None, prefix: bytes = b"") -> None:
        self._receive = receive
        self._more = receive is not None  # None: nothing (more) to fetch
        self._buffer = bytearray(prefix)  # body already received (inline mode reads it before the call)

    def _fill(self) -> bytes:
        """Fetch the next piece from the loop; also return it, so callers can skip a copy."""
        assert self._receive is not None
        data, more = self._receive()
        self._more = more
        return data

    def read(self, size: int | None = -1) -> bytes:
        buffer = self._buffer
        if size is None or size < 0:
            if not buffer and self._more:
                data = self._fill()
                if not self._more:
                    return data  # the common case: the whole body came in one piece
                buffer += data
            while self._more:
                buffer += self._fill()
            data = bytes(buffer)
            buffer.clear()
            return data
        while len(buffer) < size and self._more:
            data = self._fill()
            if not buffer and len(data) == size:
                return data
            buffer += data
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        buffer = self._buffer
        limit = -1 if size is None else size
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if 0 <= limit <= len(buffer) or not self._more:
                end = len(buffer)
                break
            start = len(buffer)
            buffer += self._fill()
        if 0 <= limit < end:
            end = limit
        line = bytes(buffer[:end])
        del buffer[:end]
        return line

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class ErrorStream:
    """``wsgi.errors``: text written here goes to the ``monoceros.error`` log, one record per line batch.

    Lines are passed on as soon as they are complete; :meth:`flush` passes on a partial one. The
    server flushes the stream when the request ends.
    """

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        if "\n" in text:
            head, _, tail = (self._partial + text).rpartition("\n")
            self._partial = tail
            log.error("%s", head)
        else:
            self._partial += text
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._partial:
            text, self._partial = self._partial, ""
            log.error("%s", text)


class FileWrapper:
    """``wsgi.file_wrapper``: lets the server send a file its own way (zero-copy where it can).

    Returned by the app as its iterable. Iterating it reads ``blksize`` bytes at a time;
    the server prefers ``sendfile`` when the file is a regular file with a descriptor.
    """

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data: bytes = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def regular_file_size(file: Any) -> int | None:
    """The size of the regular file behind ``file``; None for no descriptor, a pipe or a socket."""
    try:
        info = os.fstat(int(file.fileno()))
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def parse_status(status: Any) -> int:
    """The status code of a ``'200 OK'`` status line; TypeError/ValueError for anything else."""
    if type(status) is str:
        code = _STATUS_CODES.data.get(status)
        if code is not None:
            return code
    return _STATUS_CODES.remember(status, _parse_status(status))


# Status codes by the app's status line: an app sends the same few, each checked once.
_STATUS_CODES: Memo[str, int] = Memo("WSGI status lines, parsed")


def _parse_status(status: Any) -> int:
    if not isinstance(status, str):
        raise TypeError(f"WSGI status must be a str, got {type(status).__name__}")
    code = status[:3]
    if len(status) < 4 or status[3] != " " or not (code.isascii() and code.isdigit()):
        raise ValueError(f"WSGI status must look like '200 OK', got {status!r}")
    if "\r" in status or "\n" in status or "\0" in status:
        raise ValueError(f"WSGI status holds control characters: {status!r}")
    if int(code) < 200:
        raise ValueError(f"a WSGI app cannot send an informational status: {status!r}")
    return int(code)


def encode_headers(headers: Any) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Header pairs as bytes, names in the app's own case (gunicorn keeps it: some clients and proxies care),
    and whether one of them frames the body (Content-Length, Transfer-Encoding). TypeError/ValueError for
    anything HTTP cannot carry."""
    if not isinstance(headers, list):
        raise TypeError(f"WSGI response headers must be a list, got {type(headers).__name__}")
    out = []
    framed = False
    for item in headers:
        try:
            cached = _ENCODED.data.get(item) if type(item) is tuple else None
        except TypeError:  # an unhashable value: the checks below explain it
            cached = None
        if cached is None:
            cached = _encode_header(item)
        out.append(cached[0])
        framed = framed or cached[1]
    return out, framed


def _encode_header(item: Any) -> tuple[tuple[bytes, bytes], bool]:
    if not isinstance(item, tuple) or len(item) != 2:
        raise TypeError(f"a WSGI response header must be a (name, value) tuple, got {item!r}")
    name, value = item
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"WSGI header names and values must be str, got {item!r}")
    try:
        raw = (name.encode("latin-1"), value.encode("latin-1"))
    except UnicodeEncodeError:
        raise ValueError(f"WSGI header {item!r} is not latin-1 encodable") from None
    check_header(*raw)
    return _ENCODED.remember(item, (raw, raw[0].lower() in _FRAMING))


_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
# Checked, encoded headers by the app's (name, value) str pair, and whether each frames the body.
_ENCODED: Memo[tuple[str, str], tuple[tuple[bytes, bytes], bool]] = Memo("WSGI response headers, encoded")
