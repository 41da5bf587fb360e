"""Instructions per request, counted by valgrind: python bench/icount.py [KIND ...] (see micro.py).

bench/micro.py times monoceros's own code per request, but on a shared machine a 2 % change drowns in
noise. callgrind counts instructions instead, which repeat to 0.1 % whatever else the machine is doing.
Each kind runs micro.py's loop twice under callgrind, with N and 3N requests; the difference divided by 2N
is the cost of one request, without the interpreter's start-up and imports. Needs valgrind (apt-get
install -y valgrind). It asserts nothing; it prints.

``--server [ARGS]`` counts a whole hello-world request instead: the real server (master and worker, under
``--supervisor``) runs under callgrind with ARGS added (``--admin-bind 127.0.0.1:0`` for the metrics), and a
client outside valgrind sends N, then 3N, requests on one keep-alive connection; every process's instructions
are added up. So the sockets, uvloop's transports and the heartbeat ticks are counted too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

N = 1000
_RUN = """
import sys
sys.path.insert(0, {bench!r})
import micro
from monoceros.server.worker import new_event_loop
loop = new_event_loop("auto")
loop.run_until_complete(micro.run({kind!r}, 200))
loop.run_until_complete(micro.run({kind!r}, {n}))
"""


def instructions(kind: str, n: int) -> int:
    """Instructions of a whole run of ``n`` requests (start-up included)."""
    code = _RUN.format(bench=os.path.dirname(os.path.abspath(__file__)), kind=kind, n=n)
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "run.py")
        with open(script, "w") as f:
            f.write(code)
        python = os.path.realpath(sys.executable)  # not a pyenv shim: valgrind would count the shell
        # The real interpreter outside a virtualenv: hand it this checkout and this environment's packages.
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        paths = [repo, *(entry for entry in sys.path if entry.endswith("site-packages"))]
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, script],
            # A fixed hash seed: string hashes decide dict and set layouts, which moved counts by up to 0.7 %.
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONHASHSEED="0"),
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    match = re.search(r"Collected : (\d+)", out.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(match.group(1))


REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: icount\r\nAccept: */*\r\n\r\n"


def server_instructions(extra: list[str], n: int) -> int:
    """Instructions of every process of a real server (start-up included) that answered ``n`` requests."""
    bench = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(bench)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    python = os.path.realpath(sys.executable)
    paths = [repo, os.path.join(bench, "apps"), *(entry for entry in sys.path if entry.endswith("site-packages"))]
    command = [
        "valgrind", "--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=/dev/null",
        python, "-m", "monoceros", "--supervisor", "--no-access-log", "--bind", f"127.0.0.1:{port}",
        "--timeout", "0", *extra, "asgi_app:app",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONHASHSEED="0")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start under valgrind") from None
                time.sleep(0.5)
        with conn:
            for _ in range(n):
                conn.sendall(REQUEST)
                reply = b""
                while not reply.endswith(b"Hello, world!"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        raise RuntimeError("the server closed the connection")
                    reply += chunk
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    counts = [int(c) for c in re.findall(r"Collected : (\d+)", err)]
    if not counts:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{err[-2000:]}")
    return sum(counts)


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    if sys.argv[1:2] == ["--server"]:
        extra = sys.argv[2:]
        n = N // 2
        per_request = (server_instructions(extra, 3 * n) - server_instructions(extra, n)) / (2 * n)
        print(f"server {' '.join(extra) or '(no extra settings)':30s} {per_request:10,.0f} instructions/request")
        return 0
    kinds = sys.argv[1:] or ["asgi", "wsgi-inline"]
    for kind in kinds:
        n = N // 5 if kind in ("wsgi", "wsgi-close") else N
        per_request = (instructions(kind, 3 * n) - instructions(kind, n)) / (2 * n)
        print(f"{kind:12s} {per_request:10,.0f} instructions/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
