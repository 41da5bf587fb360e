"""End to end, the command line: the demo app when no APP is given, and the exit codes and messages of
the ways startup can fail (app not importable: 4; cannot listen: 3)."""

from __future__ import annotations

import socket

import httpx
from server_process import ServerFactory
from websockets.sync.client import connect

from monoceros import __version__


def test_no_app_serves_the_demo(serve: ServerFactory) -> None:
    server = serve(None, app_dir=None)
    assert "Serving ASGI3 app monoceros.demo:app" in server.output()
    page = httpx.get(server.url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<title>monoceros {__version__}</title>" in page.text
    echo = httpx.post(server.url + "/echo?x=1", content=b"hello demo").json()
    assert echo["body"] == "hello demo"
    assert echo["method"] == "POST"
    assert echo["query_string"] == "x=1"
    assert httpx.get(server.url + "/missing").status_code == 404
    assert f"<code>ws://{server.host}:{server.port}/ws</code> echoes every message" in page.text
    with connect(f"ws://{server.host}:{server.port}/ws", proxy=None, open_timeout=5) as ws:
        ws.send("hello demo")
        assert ws.recv(timeout=5) == "hello demo"
        ws.send(b"\x00bytes")
        assert ws.recv(timeout=5) == b"\x00bytes"
    assert server.stop() == 0


def test_missing_module_exits_4(serve: ServerFactory) -> None:
    server = serve("no_such_module_e2e:app", wait=False)
    assert server.wait() == 4
    out = server.output()
    assert "cannot load the app: could not import module 'no_such_module_e2e': no such module on sys.path" in out
    assert "Traceback" not in out


def test_missing_attribute_exits_4(serve: ServerFactory) -> None:
    server = serve("asgi_apps:no_such_attribute", wait=False)
    assert server.wait() == 4
    out = server.output()
    assert "cannot load the app: module 'asgi_apps' has no attribute no_such_attribute" in out
    assert "Traceback" not in out


def test_module_that_raises_exits_4_with_the_users_traceback(serve: ServerFactory) -> None:
    server = serve("raising_module:app", wait=False)
    assert server.wait() == 4
    out = server.output()
    assert (
        "cannot load the app: importing module 'raising_module' raised RuntimeError: "
        "e2e import-time failure: no database configured"
    ) in out
    traceback = out[out.index("Traceback (most recent call last):") :]
    frames = [line.strip() for line in traceback.splitlines() if line.strip().startswith('File "')]
    assert frames, out
    assert all("raising_module.py" in frame for frame in frames)  # the user's frames, not importlib's
    assert "connect_to_database()" in traceback
    assert 'raise RuntimeError("e2e import-time failure: no database configured")' in traceback


def test_import_error_inside_the_module_is_not_a_missing_module(serve: ServerFactory) -> None:
    sources = {"broken_import.py": "import no_such_dependency_e2e  # noqa\n\napp = None\n"}
    server = serve("broken_import:app", wait=False, sources=sources)
    assert server.wait() == 4
    out = server.output()
    assert "importing module 'broken_import' raised ModuleNotFoundError" in out
    assert "no_such_dependency_e2e" in out


def test_port_in_use_exits_3(serve: ServerFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = serve("asgi_apps:app", "--port", str(port), listen=None, wait=False)
        assert server.wait() == 3
    out = server.output()
    assert f"cannot listen: cannot listen on 127.0.0.1:{port}: address already in use" in out
