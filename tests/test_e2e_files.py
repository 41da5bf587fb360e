"""End to end, what goes out with a response: files, and the headers the server adds.

Files: uvloop has no ``loop.sendfile``, so a Flask ``send_file`` of 200 MB went out as hundreds of writes
through Python. Now a plain socket gets the file from the kernel (``os.sendfile``) on either loop, for WSGI's
``wsgi.file_wrapper`` and ASGI's ``http.response.pathsend`` (Starlette's ``FileResponse`` uses it); TLS and
``--no-sendfile`` read it in pieces. Which way a file went is in the debug log ("Sent N bytes of PATH with
sendfile(2)", "with the head" for a file of 64 KiB or less, or "in pieces (why)").

Headers: an app's own Date was sent beside the server's; WSGI header names were lowercased (gunicorn keeps
the app's case); ``--header`` adds one to every response and an app's own header of that name replaces it.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, Wire, request

FLASK_FILES = """\
import os
from flask import Flask, send_file

app = Flask(__name__)
HERE = os.environ["E2E_FILES"]

@app.route("/<name>")
def download(name):
    return send_file(os.path.join(HERE, name))
"""

STARLETTE_FILES = """\
import os
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

HERE = os.environ["E2E_FILES"]

async def download(request):
    return FileResponse(os.path.join(HERE, request.path_params["name"]))

app = Starlette(routes=[Route("/{name}", download)])
"""

SIZES = {"empty.bin": 0, "small.bin": 16384, "big.bin": 24 << 20}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    for name, size in SIZES.items():
        (folder / name).write_bytes(os.urandom(size))
    return folder


def download(server: ServerProcess, name: str, files: Path) -> None:
    response = httpx.get(f"{server.url}/{name}", timeout=30, verify=False)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(SIZES[name])
    assert hashlib.sha256(response.content).digest() == hashlib.sha256((files / name).read_bytes()).digest()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("framework", ["flask", "starlette"])
def test_files_go_out_with_sendfile_on_either_loop(
    serve: ServerFactory, files: Path, framework: str, loop: str
) -> None:
    source = FLASK_FILES if framework == "flask" else STARLETTE_FILES
    env = {"E2E_FILES": str(files)}
    server = serve("files_app:app", "--loop", loop, "--log-level", "debug", sources={"files_app.py": source}, env=env)
    for name in SIZES:
        download(server, name, files)
    # The log line may trail the last byte the client read: wait for it.
    server.wait_output(f"Sent {16384} bytes of {files / 'small.bin'} with the head, read on the loop")
    out = server.wait_output(f"Sent {24 << 20} bytes of {files / 'big.bin'} with sendfile(2)")
    # Small files leave with the head in one write (read from the page cache); large ones by sendfile(2).
    assert "in pieces" not in out


def test_no_sendfile_reads_the_file_in_pieces(serve: ServerFactory, files: Path) -> None:
    server = serve(
        "files_app:app", "--no-sendfile", "--log-level", "debug",
        sources={"files_app.py": STARLETTE_FILES}, env={"E2E_FILES": str(files)},
    )  # fmt: skip
    download(server, "big.bin", files)
    server.wait_output(f"Sending {24 << 20} bytes of {files / 'big.bin'} in pieces (--no-sendfile)")


def test_files_over_tls_are_read_in_pieces(serve: ServerFactory, files: Path, tls_files: object) -> None:
    server = serve(
        "files_app:app", "--log-level", "debug",
        "--certfile", str(tls_files.server_cert),  # type: ignore[attr-defined]
        "--keyfile", str(tls_files.server_key),  # type: ignore[attr-defined]
        sources={"files_app.py": FLASK_FILES}, env={"E2E_FILES": str(files)}, scheme="https",
    )  # fmt: skip
    for name in SIZES:
        download(server, name, files)
    assert "with sendfile(2)" not in server.wait_output("in pieces (TLS)")


def test_head_of_a_file_sends_no_body(serve: ServerFactory, files: Path) -> None:
    server = serve("files_app:app", sources={"files_app.py": STARLETTE_FILES}, env={"E2E_FILES": str(files)})
    with Wire(server.connect()) as wire:
        wire.send(request("HEAD", "/small.bin") + request("GET", "/small.bin", [("Connection", "close")]))
        head = wire.read_response(head=True)
        assert head.status == 200 and head.header("content-length") == "16384"
        follow = wire.read_response()  # the connection is still in step: the next answer is whole
        assert follow.body == (files / "small.bin").read_bytes()


def test_a_client_that_leaves_mid_file_costs_nothing(serve: ServerFactory, files: Path) -> None:
    server = serve("files_app:app", sources={"files_app.py": STARLETTE_FILES}, env={"E2E_FILES": str(files)})
    for _ in range(5):
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(request("GET", "/big.bin"))
            sock.recv(1000)
        # closed with most of the file unsent
    download(server, "small.bin", files)  # the worker goes on serving
    fds = len(os.listdir(f"/proc/{server.pid}/fd"))
    download(server, "big.bin", files)
    assert len(os.listdir(f"/proc/{server.pid}/fd")) <= fds  # no socket or file left open
    assert "Traceback" not in server.output()


def test_pathsend_from_a_raw_asgi_app(serve: ServerFactory, files: Path) -> None:
    server = serve("probe_apps:asgi")
    response = httpx.get(server.url + "/file?size=100000", timeout=10)
    assert response.status_code == 200 and len(response.content) == 100000
    assert response.headers.get("transfer-encoding") == "chunked"  # no length given: framed by the server
    assert response.content == (server.record_dir / "probe-file.bin").read_bytes()


# -- headers ---------------------------------------------------------------------------------------------------


def raw_head(server: ServerProcess, target: str = "/") -> list[str]:
    with Wire(server.connect()) as wire:
        wire.send(request("GET", target, [("Connection", "close")]))
        return wire.read_response().raw.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]


@pytest.mark.parametrize("app", ["dropin_apps:headers_app", "dropin_apps:asgi_date"])
def test_an_apps_own_date_is_sent_once(serve: ServerFactory, app: str) -> None:
    lines = raw_head(serve(app))
    dates = [line for line in lines if line.lower().startswith("date:")]
    assert len(dates) == 1 and dates[0].endswith("Tue, 01 Jan 2030 00:00:00 GMT"), lines
    assert sum(line.lower().startswith("server:") for line in lines) == 1


def test_wsgi_header_names_keep_the_apps_case(serve: ServerFactory) -> None:
    lines = raw_head(serve("dropin_apps:headers_app"))
    assert "Content-Type: text/plain" in lines and "X-Custom-Header: Kept" in lines and "Content-Length: 2" in lines


def test_header_setting_adds_to_every_response_and_an_apps_own_wins(serve: ServerFactory) -> None:
    server = serve(
        "dropin_apps:headers_app", "--header", "X-Frame-Options: DENY", "--header", "X-Custom-Header: server",
        "--header", "server: edge",
    )  # fmt: skip
    lines = raw_head(server)
    assert "X-Frame-Options: DENY" in lines
    assert [line for line in lines if line.lower().startswith("x-custom-header")] == ["X-Custom-Header: Kept"]
    assert [line for line in lines if line.lower().startswith("server:")] == ["server: edge"]
    error = raw_head(server, "/" + "x" * 9000)  # the server's own answers (414 here) carry them too
    assert "X-Frame-Options: DENY" in error
