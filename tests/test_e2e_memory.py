"""End to end, a worker's memory set-up: --heap-retain (glibc's trim threshold) and --gc-freeze.

Page faults are counted from /proc, so this needs Linux; the heap test needs glibc as well.
"""

from __future__ import annotations

import os
import sys
import time

import httpx
import pytest
from server_process import MASTER_READY_TEXT, ServerFactory, ServerProcess, Wire, request

from monoceros.server.memory import glibc

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

BODY = b"x" * 65536
CONNECTIONS = 24
ROUNDS = 10


def minor_faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2 :].split()[7])  # field 10, minflt


def faults_per_request(server: ServerProcess) -> float:
    """POST 64 KiB on 24 connections at once, for rounds; the server's page faults per request. Sent
    all before any answer is read, so the server holds several bodies at a time, as under load."""
    wires = [Wire(server.connect()) for _ in range(CONNECTIONS)]
    raw = request("POST", "/echo", [("Content-Length", str(len(BODY)))], body=BODY)

    def one_round() -> None:
        for w in wires:
            w.send(raw)
        time.sleep(0.05)  # all of them wait in the socket buffers, so one loop iteration reads them all
        for w in wires:
            response = w.read_response()
            assert response.status == 200 and len(response.body) == len(BODY)

    try:
        for _ in range(3):  # warm up: the heap grows to its working size
            one_round()
        before = minor_faults(server.pid)
        for _ in range(ROUNDS):
            one_round()
        return (minor_faults(server.pid) - before) / (ROUNDS * CONNECTIONS)
    finally:
        for w in wires:
            w.close()


@pytest.mark.skipif(not glibc(), reason="--heap-retain tunes glibc's malloc")
@pytest.mark.skipif(any(k.startswith("MALLOC_") for k in os.environ), reason="malloc is tuned in this environment")
def test_large_bodies_do_not_fault_pages_in_for_every_request(serve: ServerFactory) -> None:
    """With the default --heap-retain the freed bodies' memory is reused. With 0 (glibc's own 128 KiB
    threshold) it goes back to the kernel after each batch and comes back as fresh zeroed pages; and so
    it does when the operator set MALLOC_TRIM_THRESHOLD_ themselves, which the server leaves alone."""
    retained = faults_per_request(serve("asgi_apps:app"))
    assert retained < 1.0
    released = faults_per_request(serve("asgi_apps:app", "--heap-retain", "0"))
    assert released > retained + 1.0  # a 64 KiB body is 16 pages
    operator = faults_per_request(serve("asgi_apps:app", env={"MALLOC_TRIM_THRESHOLD_": "131072"}))
    assert operator > retained + 1.0


def test_startup_objects_are_frozen_unless_turned_off(serve: ServerFactory) -> None:
    """--gc-freeze (the default): what startup left alive is out of the collector's generations."""
    frozen = serve("asgi_apps:app")
    assert httpx.get(frozen.url + "/garbage?op=frozen").json() > 1000  # the interpreter, monoceros, the app
    plain = serve("asgi_apps:app", "--no-gc-freeze")
    assert httpx.get(plain.url + "/garbage?op=frozen").json() == 0


BALLAST_APP = """
import gc, os

BALLAST = [[i] for i in range(200_000)]  # about 14 MiB of objects the cyclic collector tracks


def private_dirty_kib():
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    return -1


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    gc.collect()  # a full collection, as a worker runs sooner or later
    body = str(private_dirty_kib()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs /proc/PID/smaps_rollup")
def test_preloaded_app_stays_shared_after_a_full_collection(serve: ServerFactory) -> None:
    """--preload: the master freezes the app before forking, so a worker's full collection does not write
    to the inherited objects (their GC headers) and their pages stay shared with the master. Without the
    freeze the same collection copies them into the worker."""

    def private_after_collection(*args: str) -> int:
        server = serve(
            "ballast_app:app",
            "-w",
            "1",
            "--supervisor",
            "--preload",
            *args,
            sources={"ballast_app.py": BALLAST_APP},
            ready_text=MASTER_READY_TEXT,
            new_session=True,
        )
        return int(httpx.get(server.url + "/").text)

    frozen = private_after_collection()
    unfrozen = private_after_collection("--no-gc-freeze")
    assert frozen < unfrozen - 8 * 1024, (frozen, unfrozen)  # KiB: most of the ballast's pages
