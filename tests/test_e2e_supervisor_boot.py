"""End to end, the supervisor when the code changes or breaks: a broken app stops the master with exit
code 4 and a worker that cannot boot with 3, without crash-looping; --reload follows the files, shows a
syntax error while the previous version keeps serving, and ignores excluded directories.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from server_process import ServerFactory, free_port
from supervisor_support import alive, children, supervise, wait_for, wait_workers

# -- the app cannot load, a worker cannot boot ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "message"),
    [
        (
            "raising_module:app",
            "importing module 'raising_module' raised RuntimeError: e2e import-time failure: no database configured",
        ),
        ("no_such_module_e2e:app", "could not import module 'no_such_module_e2e': no such module on sys.path"),
    ],
    ids=["raises", "missing"],
)
def test_broken_app_stops_the_master_with_exit_code_4(serve: ServerFactory, app: str, message: str) -> None:
    server = supervise(serve, "-w", "2", app=app, wait=False)
    assert server.wait(15) == 4
    out = server.output()
    assert f"monoceros: cannot load the app: {message}" in out
    assert "A worker could not load the app (exit code 4): stopping" in out
    assert out.count("Booting worker") == 2  # no second round: it does not crash-loop


def test_broken_app_with_preload_exits_4_before_forking(serve: ServerFactory) -> None:
    server = supervise(serve, "-w", "2", "--preload", app="raising_module:app", wait=False)
    assert server.wait(15) == 4
    out = server.output()
    assert "monoceros: cannot load the app: importing module 'raising_module' raised RuntimeError" in out
    assert "Booting worker" not in out


def test_lifespan_startup_failure_stops_the_master_with_exit_code_3(serve: ServerFactory) -> None:
    server = supervise(serve, "-w", "2", "--lifespan", "on", app="asgi_apps:startup_failed", wait=False)
    assert server.wait(15) == 3
    out = server.output()
    assert "monoceros: lifespan failed" in out
    assert "database e2e-db is unreachable" in out
    assert "A worker could not boot (exit code 3): stopping" in out
    assert out.count("Booting worker") == 2


def test_worker_that_cannot_bind_its_reuse_port_socket_exits_3(serve: ServerFactory) -> None:
    with socket.socket() as squatter:  # bound without SO_REUSEPORT: nobody else may bind the port
        port = free_port()
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        server = supervise(serve, "-w", "2", "--reuse-port", "-b", f"127.0.0.1:{port}", listen=None, wait=False)
        assert server.wait(15) == 3
    out = server.output()
    assert f"monoceros: cannot listen: cannot listen on 127.0.0.1:{port}" in out
    assert "A worker could not boot (exit code 3): stopping" in out
    assert out.count("Booting worker") == 2


# -- --reload ------------------------------------------------------------------------------------------------

DEV_APP = """\
VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": VERSION.encode()}})
"""


def test_reload_follows_the_files_and_survives_a_syntax_error(serve: ServerFactory, tmp_path: Path) -> None:
    pytest.importorskip("watchfiles")
    src = tmp_path / "src"
    src.mkdir()
    module = src / "dev_app.py"
    module.write_text(DEV_APP.format(version="one"))
    server = supervise(serve, "--reload", "--reload-dir", str(src), app="dev_app:app", app_dir=src)
    first = wait_workers(server, 1)

    def answers(text: str) -> bool:
        return httpx.get(server.url, timeout=5).text == text

    # Different lengths each time: Python's bytecode cache checks size and mtime (whole seconds).
    module.write_text(DEV_APP.format(version="version two"))
    wait_for(lambda: answers("version two"), 10, "the new version", server)
    server.wait_output("Reloaded in")
    assert re.search(r"Detected changes in .*dev_app\.py", server.output())
    assert re.search(r"Reloaded in \d+ ms: 1 worker\(s\) serving", server.output())
    wait_for(lambda: not any(alive(pid) for pid in first), 10, "the previous worker to exit", server)
    serving = wait_workers(server, 1)

    # Excluded directories (the worker just wrote its bytecode into __pycache__): nothing is reloaded.
    detected = server.output().count("Detected changes")
    for excluded in ("__pycache__", ".git"):
        (src / excluded).mkdir(exist_ok=True)
        (src / excluded / "ignored.py").write_text("x = 1\n")
    time.sleep(1.0)  # well past the watcher's 200 ms debounce
    assert server.output().count("Detected changes") == detected
    assert children(server.pid) == serving

    module.write_text(DEV_APP.format(version="broken") + "\ndef oops(:\n")
    server.wait_output("Reload failed", 10)
    broken_line = DEV_APP.count("\n") + 2
    out = server.output()
    assert re.search(rf'File ".*dev_app\.py", line {broken_line}', out), out
    assert "SyntaxError: invalid syntax" in out
    assert "watching for the next change" in out
    time.sleep(0.5)  # no crash loop meanwhile: the previous worker serves, nothing else is forked
    assert server.output().count("Booting worker") == 3
    assert children(server.pid) == serving
    assert {httpx.get(server.url, timeout=5).text for _ in range(5)} == {"version two"}

    module.write_text(DEV_APP.format(version="the third version"))
    wait_for(lambda: answers("the third version"), 10, "the fixed version", server)
    wait_for(lambda: server.output().count("Reloaded in") == 2, 5, "the second reload", server)
    assert server.stop() == 0


@pytest.mark.parametrize("preload", [False, True], ids=["fork-imports", "preload"])
def test_hup_with_a_broken_app_keeps_the_previous_workers(serve: ServerFactory, preload: bool) -> None:
    args = ["-w", "2", "--preload"] if preload else ["-w", "2"]
    source = {"dev_app.py": DEV_APP.format(version="good")}
    server = supervise(serve, *args, app="dev_app:app", sources=source)
    workers = wait_workers(server, 2)
    (server.workdir / "app" / "dev_app.py").write_text(DEV_APP.format(version="bad") + "\nraise ImportError('e2e')\n")
    server.send_signal(signal.SIGHUP)
    if preload:  # the master imports it first, and gives up before forking anything
        server.wait_output("Reload aborted: the app does not load", 10)
    else:
        server.wait_output("Reload failed: a worker could not load the app (exit code 4)", 10)
    time.sleep(0.5)  # no crash loop meanwhile
    assert server.output().count("Booting worker") == (2 if preload else 4)
    assert children(server.pid) == workers
    assert {httpx.get(server.url, timeout=5).text for _ in range(5)} == {"good"}
    assert server.stop() == 0
