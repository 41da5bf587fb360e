"""Apps for the drop-in tests: what a user porting from gunicorn or uvicorn brings.

``whoami`` answers, as JSON, what the serving process is: its ids, groups, working directory, umask, process
title and the environment variables the test asks about (``/?env=NAME,NAME``). ``create_app`` is a factory
served without ``--factory`` (it must be detected), ``make_app(name, debug=...)`` one called from the APP string
as gunicorn allows. ``headers_app`` sets its own Date and names its headers in mixed case.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import parse_qs

from e2e_record import record


def _umask() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return -1


def whoami(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    with open("/proc/self/cmdline", "rb") as f:
        title = f.read().replace(b"\0", b" ").strip().decode("utf-8", "replace")
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "?"
    body = json.dumps(
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "uid": os.getuid(),
            "euid": os.geteuid(),
            "gid": os.getgid(),
            "groups": sorted(os.getgroups()),
            "cwd": cwd,
            "umask": _umask(),
            "title": title,
            "env": {name: os.environ.get(name) for name in query.get("env", "").split(",") if name},
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def create_app() -> Any:
    """A Flask-style factory: no arguments, returns the WSGI app."""
    record("factory-called")
    return whoami


def make_app(name: str, debug: bool = False) -> Any:
    """A factory gunicorn users call from the APP string: 'dropin_apps:make_app("x", debug=True)'."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = f"{name} debug={debug}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def four_arguments(a: Any, b: Any, c: Any, d: Any) -> None:
    """Neither WSGI nor ASGI: check-config must say so."""


def returns_none() -> None:
    """A zero-argument function that is no factory either."""


def headers_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Sets its own Date and Server, and writes header names in its own case."""
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Date", "Tue, 01 Jan 2030 00:00:00 GMT"),
            ("X-Custom-Header", "Kept"),
            ("Content-Length", "2"),
        ],
    )
    return [b"ok"]


async def asgi_date(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that sets its own Date header."""
    if scope["type"] != "http":
        return
    headers = [(b"date", b"Tue, 01 Jan 2030 00:00:00 GMT"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})
