"""Apps that tell the settings walk (tests/test_settings_effects.py) what a setting changed.

``GET /facts`` answers, as JSON, what the serving process and request look like from inside the app: ids,
groups, working directory, umask, event loop, thread, the cyclic collector's frozen count, glibc's count of
mmapped blocks after a 4 MiB allocation, the scope or environ values a setting shapes, selected environment
variables. Importing the module leaves a record naming the importing process, so ``--preload`` shows.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
import os
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from e2e_record import record

try:
    record(f"imported-{os.getpid()}", str(os.getuid()))
except OSError:
    pass  # imported after --user took effect: the record directory is root's

_FILE = os.path.join(os.environ.get("E2E_RECORD_DIR", "/tmp"), "probe-file.bin")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]  # fmt: skip


def _mmapped_blocks() -> int:
    """How many blocks glibc's malloc holds in their own mmap (allocations over its mmap threshold)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        return int(libc.mallinfo2().hblks)
    except (OSError, AttributeError):
        return -1


def _heap_probe() -> int:
    """1 if a 4 MiB allocation got its own mmap (glibc's default threshold), 0 if it came from the heap."""
    before = _mmapped_blocks()
    block = bytearray(4 << 20)
    during = _mmapped_blocks()
    del block
    return during - before


def _umask() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return -1


def _common(query: dict[str, str]) -> dict[str, Any]:
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "?"
    with open("/proc/self/cmdline", "rb") as f:
        title = f.read().replace(b"\0", b" ").strip().decode("utf-8", "replace")
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "cwd": cwd,
        "umask": _umask(),
        "title": title,
        "thread": threading.current_thread().name,
        "main_thread": threading.current_thread() is threading.main_thread(),
        "threads": sorted(t.name for t in threading.enumerate()),
        "frozen": gc.get_freeze_count(),
        "heap_mmapped": _heap_probe(),
        "env": {name: os.environ.get(name) for name in query.get("env", "").split(",") if name},
        "sys_path": sys.path[:6],
    }


def _query(raw: bytes | str) -> dict[str, str]:
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    return {k: v[-1] for k, v in parse_qs(text).items()}


def _write_file(size: int) -> str:
    if not os.path.exists(_FILE) or os.path.getsize(_FILE) != size:
        with open(_FILE + ".tmp", "wb") as f:
            f.write(os.urandom(size))
        os.replace(_FILE + ".tmp", _FILE)
    return _FILE


# -- ASGI ------------------------------------------------------------------------------------------------------


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    query = _query(scope["query_string"])
    path = scope["path"][len(scope["root_path"]) :] if scope["root_path"] else scope["path"]
    if path == "/slow":
        record(f"slow-started-{query.get('id', '')}")
        await asyncio.sleep(float(query.get("s", "1")))
    elif path == "/block":
        time.sleep(float(query.get("s", "5")))
    elif path == "/print":
        print(query.get("text", ""), flush=True)
    elif path == "/file":
        name = _write_file(int(query.get("size", str(1 << 20))))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x/y")]})
        await send({"type": "http.response.pathsend", "path": name})
        return
    facts = _common(query)
    facts.update(
        probe="asgi",
        loop=type(asyncio.get_running_loop()).__name__,
        root_path=scope["root_path"],
        state=dict(scope.get("state", {})),
        client=scope["client"],
        scheme=scope["scheme"],
        host=dict(scope["headers"]).get(b"host", b"").decode("latin-1"),
        extensions=sorted(scope["extensions"]),
        tls=scope["extensions"].get("tls"),
    )
    body = json.dumps(facts, default=str).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- WSGI ------------------------------------------------------------------------------------------------------


def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    query = _query(environ.get("QUERY_STRING", ""))
    if environ["PATH_INFO"] == "/slow":
        time.sleep(float(query.get("s", "1")))
    facts = _common(query)
    facts.update(
        probe="wsgi",
        script_name=environ["SCRIPT_NAME"],
        path_info=environ["PATH_INFO"],
        remote_addr=environ.get("REMOTE_ADDR"),
        remote_port=environ.get("REMOTE_PORT"),
        url_scheme=environ["wsgi.url_scheme"],
        host=environ.get("HTTP_HOST"),
    )
    body = json.dumps(facts).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def make_wsgi() -> Any:
    """A factory for --factory."""
    record("factory-called")
    return wsgi


def paste_factory(global_config: dict[str, Any], **local: Any) -> Any:
    """PasteDeploy's app_factory entry point for --paste; the .ini's options arrive in ``local``."""
    record("paste-factory", json.dumps(local))
    logging.getLogger("probe_apps").info("the factory ran")
    return wsgi
