"""The PEP 3333 environ of a request, built on the event loop whatever protocol carried it.

Strings are bytes-as-latin-1, as the PEP asks. Request headers whose names contain ``_`` are dropped, as
gunicorn does: ``X_Forwarded_For`` would otherwise turn into the same ``HTTP_X_FORWARDED_FOR`` as
``X-Forwarded-For`` and let a client spoof a header a proxy vouches for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from .._version import __version__
from ..config import Config
from ..protocols.headers import Memo
from .exchange import Exchange
from .wsgi_input import ErrorStream, FileWrapper, WSGIInput

Environ = dict[str, Any]

_SPECIAL = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2", "3": "HTTP/3"}  # SERVER_PROTOCOL, made once


class EnvironBuilder:
    """Builds environs from a template made once per worker; header names map to keys through a memo."""

    def __init__(self, config: Config) -> None:
        self._script_name = config.root_path.rstrip("/").encode("utf-8").decode("latin-1")
        self._names: Memo[bytes, str] = Memo("environ keys by request header name", 512)
        self._template: Environ = {
            "SCRIPT_NAME": self._script_name,
            "SERVER_SOFTWARE": f"monoceros/{__version__}",
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": config.workers > 1,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    def build(
        self,
        exchange: Exchange,
        errors: ErrorStream,
        prefix: bytes = b"",
        receive: Callable[[], tuple[bytes, bool]] | None = None,
    ) -> Environ:
        """The environ of ``exchange``'s request. ``prefix``: body bytes already read; ``receive``: how
        ``wsgi.input`` gets the rest (None when ``prefix`` is all of it)."""
        request = exchange.request
        env = self._template.copy()
        raw_path = request.path
        path = (unquote_to_bytes(raw_path) if 0x25 in raw_path else raw_path).decode("latin-1")
        script_name = self._script_name
        if script_name and path.startswith(script_name):
            rest = path[len(script_name) :]
            if not rest or rest[0] == "/":  # "/app" is under "/app" and so is "/app/x"; "/apple" is not
                path = rest
        target = request.target.decode("latin-1")
        env["REQUEST_METHOD"] = request.method
        env["PATH_INFO"] = path
        env["QUERY_STRING"] = request.query.decode("latin-1")
        env["RAW_URI"] = env["REQUEST_URI"] = target
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(request.http_version) or "HTTP/" + request.http_version
        env["wsgi.url_scheme"] = exchange.scheme
        client = exchange.client
        if client is not None:
            env["REMOTE_ADDR"] = client[0]
            env["REMOTE_PORT"] = str(client[1])
        else:
            env["REMOTE_ADDR"] = ""
        names = self._names.data
        for name, value in request.headers:
            key = names.get(name)
            if key is None:
                if 0x5F in name:  # "_", as an int: see protocols/headers.py UNDERSCORE
                    continue  # see the module docstring: it could impersonate a dashed header
                key = _SPECIAL.get(name) or "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
                self._names.remember(name, key)
            text = value.decode("latin-1")
            old = env.get(key)
            if old is None:
                env[key] = text
            elif key == "HTTP_COOKIE":
                env[key] = old + "; " + text  # RFC 6265: cookie pairs are separated by "; "
            elif key != "CONTENT_LENGTH":
                env[key] = old + "," + text
        server = exchange.server
        if server is not None and server[1] is not None:
            env["SERVER_NAME"], env["SERVER_PORT"] = server[0], str(server[1])
        else:  # a unix socket: the best name is the one the client used
            env["SERVER_NAME"], env["SERVER_PORT"] = _split_host(env.get("HTTP_HOST"), exchange.scheme)
        env["wsgi.input"] = WSGIInput(receive if request.has_body else None, prefix)
        env["wsgi.errors"] = errors
        return env


def _split_host(host: str | None, scheme: str) -> tuple[str, str]:
    """SERVER_NAME and SERVER_PORT from a Host header ('localhost' and '0' without one)."""
    if not host:
        return "localhost", "0"
    default = "443" if scheme == "https" else "80"
    if host.startswith("["):  # an IPv6 literal
        end = host.find("]") + 1
        name, rest = (host[:end], host[end:]) if end else (host, "")
        return name, rest[1:] if rest.startswith(":") and rest[1:] else default
    name, sep, port = host.partition(":")
    return name, port if sep and port else default
