"""End to end, behind a real nginx: the deployment most gunicorn and uvicorn users run.

nginx proxies to monoceros's unix socket, its workers running as their own user (``nobody`` here, ``www-data``
on Debian), not the user who started monoceros. With the socket mode 660 that gunicorn users met as "502 Bad
Gateway (13: Permission denied)", nginx cannot connect; monoceros's default, 666 as uvicorn's, lets it.
Needs root (nginx drops to its user only when started as root) and nginx, which .ci/run installs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import ServerFactory, free_port
from supervisor_support import wait_for

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="nginx switches its workers to another user only as root"),
]

CONF = """\
daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream app {{ server unix:{socket}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A directory nginx's user may enter (pytest's own temporary directories are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="mono-nginx-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def nginx(root: Path, socket: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(CONF.format(root=root, socket=socket, port=port))
    assert NGINX is not None
    with open(root / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(root)], stderr=stderr)
    wait_for(lambda: _listening(port) or proc.poll() is not None, 10, "nginx to listen")
    assert proc.poll() is None, (root / "stderr.log").read_text()
    return proc, port


def _listening(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.HTTPError:
        return False
    return True


@pytest.mark.parametrize(("perms", "status"), [(None, 200), ("660", 502)], ids=["default-666", "660"])
def test_nginx_reaches_the_unix_socket(serve: ServerFactory, socket_dir: Path, perms: str | None, status: int) -> None:
    path = socket_dir / "app.sock"
    args = ["--uds", str(path), "--forwarded-allow-ips", "unix:"]
    if perms is not None:
        args += ["--uds-perms", perms]
    server = serve("dropin_apps:whoami", *args, listen=None)
    proc, port = nginx(socket_dir, path)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert response.status_code == status, response.text
        if status == 200:
            assert response.json()["pid"] == server.pid
        else:
            time.sleep(0.2)
            assert "Permission denied" in (socket_dir / "error.log").read_text()
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(10)
