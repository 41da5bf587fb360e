"""What a bench run is made of, in one place: the servers' start commands, the scenarios,
and which server runs which scenario.

Command placeholders:
  {python}  the interpreter running bench/run.py (monoceros from the repo's install, the ceiling)
  {peers}   the bin/ directory of the peers virtualenv (bench/.venv-peers by default)
  {port}    a free TCP port on 127.0.0.1, new for every server start

Every command runs with its working directory and PYTHONPATH set to bench/apps (the
ceiling: bench/), behind `taskset -c 0` (one core), with exactly one worker process and
no access log (but in the (f) scenarios, see Server.log_on). To rerun one by hand, e.g. monoceros on the ASGI app:

  cd bench/apps && taskset -c 0 python -m monoceros --workers 1 --interface asgi3 \\
      --no-access-log --log-level warning --host 127.0.0.1 --port 8000 asgi_app:app
  taskset -c 1 wrk -t1 -c64 -d5s --latency -s ../wrk/bench.lua http://127.0.0.1:8000/
"""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------
# Servers: name -> interface -> command. "any" means the command serves every interface.
# ---------------------------------------------------------------------------------------

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    name: str
    commands: dict[str, str]
    peer: bool  # True: runs from the peers virtualenv
    note: str
    cwd: str = "apps"  # relative to bench/
    # For the scenarios with the access log on: (text, replacement) in the command, turning the server's own
    # access log on, to standard output. None: the server is left out of those scenarios.
    log_on: tuple[str, str] | None = None


SERVERS: dict[str, Server] = {
    s.name: s
    for s in [
        Server(
            "monoceros",
            {
                "asgi": "{python} -m monoceros --workers 1 --interface asgi3 --no-access-log --log-level warning"
                " --host 127.0.0.1 --port {port} asgi_app:app",
                "wsgi": "{python} -m monoceros --workers 1 --interface wsgi --threads 8 --no-access-log"
                " --log-level warning --host 127.0.0.1 --port {port} wsgi_app:app",
            },
            peer=False,
            note="this repo, current interpreter; uvloop + httptools; WSGI on its default 8-thread pool",
            log_on=("--no-access-log ", ""),
        ),
        Server(
            "monoceros-admin",
            {
                "asgi": "{python} -m monoceros --workers 1 --interface asgi3 --no-access-log --log-level warning"
                " --admin-bind 127.0.0.1:0 --host 127.0.0.1 --port {port} asgi_app:app",
            },
            peer=False,
            note="this repo with --admin-bind: a master, and the worker's metrics (scenario k only)",
        ),
        Server(
            "monoceros-inline",
            {
                "wsgi": "{python} -m monoceros --workers 1 --interface wsgi --wsgi-mode inline --no-access-log"
                " --log-level warning --host 127.0.0.1 --port {port} wsgi_app:app",
            },
            peer=False,
            note="this repo, WSGI with --wsgi-mode inline: the app on the loop thread (the prefork 'sync' model)",
            log_on=("--no-access-log ", ""),
        ),
        Server(
            "uvicorn",
            {
                "asgi": "{peers}/uvicorn --workers 1 --loop uvloop --http httptools --interface asgi3"
                " --no-access-log --log-level warning --host 127.0.0.1 --port {port} asgi_app:app",
                "wsgi": "{peers}/uvicorn --workers 1 --loop uvloop --http httptools --interface wsgi"
                " --no-access-log --log-level warning --host 127.0.0.1 --port {port} wsgi_app:app",
            },
            peer=True,
            note="uvicorn[standard] (uvloop + httptools); WSGI through uvicorn's own, deprecated, WSGIMiddleware",
            log_on=("--no-access-log --log-level warning", "--log-level info"),
        ),
        Server(
            "gunicorn-sync",
            {
                "wsgi": "{peers}/gunicorn --workers 1 --worker-class sync --log-level warning --bind 127.0.0.1:{port}"
                " wsgi_app:app"
            },
            peer=True,
            note="gunicorn sync worker (one request at a time, no keep-alive); access log is off unless asked for",
            log_on=("--log-level warning", "--log-level warning --access-logfile -"),
        ),
        Server(
            "gunicorn-gthread",
            {
                "wsgi": "{peers}/gunicorn --workers 1 --worker-class gthread --threads 8 --log-level warning"
                " --bind 127.0.0.1:{port} wsgi_app:app"
            },
            peer=True,
            note="gunicorn gthread worker, 8 threads (same pool size as monoceros' WSGI default)",
            log_on=("--log-level warning", "--log-level warning --access-logfile -"),
        ),
        Server(
            "gunicorn-asgi",
            {
                "asgi": "{peers}/gunicorn --workers 1 --worker-class asgi --asgi-loop uvloop --log-level warning"
                " --bind 127.0.0.1:{port} asgi_app:app"
            },
            peer=True,
            note="gunicorn's own native ASGI worker (-k asgi, gunicorn >= 24), on uvloop",
            log_on=("--log-level warning", "--log-level warning --access-logfile -"),
        ),
        Server(
            "gunicorn-uvicorn",
            {
                "asgi": "{peers}/gunicorn --workers 1 --worker-class gunicorn_uvicorn_worker.QuietUvicornWorker"
                " --log-level warning --bind 127.0.0.1:{port} asgi_app:app"
            },
            peer=True,
            note="gunicorn + uvicorn.workers.UvicornWorker (subclassed in bench/apps to turn its access log off)",
        ),
        Server(
            "granian",
            {
                "asgi": "{peers}/granian --interface asgi --workers 1 --runtime-threads 1 --loop uvloop --http 1"
                " --no-access-log --log-level warning --host 127.0.0.1 --port {port} asgi_app:app",
                "wsgi": "{peers}/granian --interface wsgi --workers 1 --runtime-threads 1 --blocking-threads 8 --http 1"
                " --no-access-log --log-level warning --host 127.0.0.1 --port {port} wsgi_app:app",
            },
            peer=True,
            note="granian (Rust, hyper); one worker, one runtime thread;"
            " WSGI on 8 blocking threads (same pool size as monoceros and gthread)",
            log_on=("--no-access-log --log-level warning", "--access-log"),
        ),
        Server(
            "hypercorn",
            {
                "asgi": "{peers}/hypercorn --workers 1 --worker-class uvloop --log-level warning"
                " --bind 127.0.0.1:{port} asgi:asgi_app:app",
                "wsgi": "{peers}/hypercorn --workers 1 --worker-class uvloop --log-level warning"
                " --bind 127.0.0.1:{port} wsgi:wsgi_app:app",
            },
            peer=True,
            note="hypercorn on uvloop (h11); access log is off unless asked for; WSGI runs in its thread executor",
            log_on=("--log-level warning", "--access-logfile -"),  # its log level also filters the access log
        ),
        Server(
            "ceiling",
            {"any": "{python} ceiling.py --host 127.0.0.1 --port {port}"},
            peer=False,
            note="bench/ceiling.py: bare uvloop asyncio.Protocol, fixed answer, no HTTP parsing (an upper bound)",
            cwd=".",
        ),
    ]
}

# The servers the ratios are taken against.
BASELINES = ("uvicorn", "granian")

# ---------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    iface: str  # "asgi" or "wsgi": which app module the servers load
    path: str
    connections: int
    description: str
    headers: tuple[str, ...] = ()
    post_bytes: int = 0  # > 0: POST a body of this many bytes (wrk Lua script)
    expect: str = "hello"  # how the check request's answer is verified, see run.verify()
    servers: tuple[str, ...] = field(default=())
    access_log: bool = False  # each server writes its own access log (Server.log_on) to standard output
    app: str = ""  # a module of bench/apps to serve instead of asgi_app / wsgi_app (the (g) frameworks)
    requires: tuple[str, ...] = ()  # what that module imports: without it the scenario is left out


ASGI_PEERS = ("monoceros", "uvicorn", "gunicorn-asgi", "gunicorn-uvicorn", "granian", "hypercorn")
WSGI_PEERS = ("monoceros", "monoceros-inline", "uvicorn", "gunicorn-sync", "gunicorn-gthread", "granian", "hypercorn")
CLOSE = ("Connection: close",)

SCENARIOS: list[Scenario] = [
    Scenario("a-hello-asgi", "asgi", "/", 64, "hello world, keep-alive", servers=(*ASGI_PEERS, "ceiling")),
    Scenario("a-hello-wsgi", "wsgi", "/", 64, "hello world, keep-alive", servers=(*WSGI_PEERS, "ceiling")),
    Scenario(
        "b-close-asgi",
        "asgi",
        "/",
        64,
        "hello world, Connection: close (new connection per request)",
        headers=CLOSE,
        servers=(*ASGI_PEERS, "ceiling"),
    ),
    Scenario(
        "b-close-wsgi",
        "wsgi",
        "/",
        64,
        "hello world, Connection: close (new connection per request)",
        headers=CLOSE,
        servers=(*WSGI_PEERS, "ceiling"),
    ),
    Scenario(
        "c-post64k-asgi",
        "asgi",
        "/echo",
        64,
        "POST 64 KiB body, answered with its length, keep-alive",
        post_bytes=65536,
        expect="echo",
        servers=ASGI_PEERS,
    ),
    Scenario(
        "c-post64k-wsgi",
        "wsgi",
        "/echo",
        64,
        "POST 64 KiB body, answered with its length, keep-alive",
        post_bytes=65536,
        expect="echo",
        servers=WSGI_PEERS,
    ),
    Scenario(
        "d-json-asgi",
        "asgi",
        "/json",
        64,
        "1 KB JSON built per request (json.dumps of a dict), keep-alive",
        expect="json",
        servers=ASGI_PEERS,
    ),
    Scenario(
        "e-stream-asgi",
        "asgi",
        "/stream",
        8,
        "1 MiB streamed in 16 KiB chunks (chunked), 8 connections",
        expect="stream",
        servers=(*ASGI_PEERS, "ceiling"),
    ),
    Scenario(
        "e-stream-wsgi",
        "wsgi",
        "/stream",
        8,
        "1 MiB streamed in 16 KiB chunks (chunked), 8 connections",
        expect="stream",
        servers=(*WSGI_PEERS, "ceiling"),
    ),
]

# (f) is not among the targets: hello-world as servers are run in production, each with its access
# log on (monoceros and uvicorn log by default). The line counts in the logs are checked against the requests.
LOGGED_ASGI = tuple(name for name in ASGI_PEERS if name != "gunicorn-uvicorn")  # its worker class turns logs off
SCENARIOS += [
    Scenario(
        "f-logged-asgi",
        "asgi",
        "/",
        64,
        "hello world, keep-alive, each server's access log on (to a file)",
        servers=LOGGED_ASGI,
        access_log=True,
    ),
    Scenario(
        "f-logged-wsgi",
        "wsgi",
        "/",
        64,
        "hello world, keep-alive, each server's access log on (to a file)",
        servers=WSGI_PEERS,
        access_log=True,
    ),
]

# (g) is not among the targets either: one small view of a real framework, where the framework's
# own work is most of a request and the server's share shows as what is left.
SCENARIOS += [
    Scenario(
        "g-fastapi",
        "asgi",
        "/items/5?q=x",
        64,
        "FastAPI: a path and a query parameter, answered as JSON, keep-alive",
        expect="items",
        servers=ASGI_PEERS,
        app="fastapi_app",
        requires=("fastapi",),
    ),
    Scenario(
        "g-flask",
        "wsgi",
        "/items/5?q=x",
        64,
        "Flask: the same view, jsonify, keep-alive",
        expect="items",
        servers=WSGI_PEERS,
        app="flask_app",
        requires=("flask",),
    ),
]

# --quick runs these servers (those that are available).
QUICK_SERVERS = ("monoceros", "monoceros-inline", "uvicorn", "granian", "ceiling")


def command_for(server: Server, scenario: Scenario) -> str:
    command = server.commands.get(scenario.iface) or server.commands["any"]
    if scenario.access_log and server.log_on is not None:  # check_matrix makes sure the text is there
        command = command.replace(*server.log_on)
    if scenario.app:
        command = command.replace(f"{scenario.iface}_app:app", f"{scenario.app}:app")
    return command


def check_matrix() -> None:
    """Fail loudly if the matrix names a server that cannot serve the scenario."""
    for scenario in SCENARIOS:
        for name in scenario.servers:
            server = SERVERS[name]
            if scenario.iface not in server.commands and "any" not in server.commands:
                raise SystemExit(f"matrix error: {name} has no {scenario.iface} command for {scenario.name}")
            plain = server.commands.get(scenario.iface) or server.commands.get("any", "")
            if scenario.access_log and (server.log_on is None or server.log_on[0] not in plain):
                raise SystemExit(f"matrix error: {name} cannot turn its access log on for {scenario.name}")
            if scenario.app and f"{scenario.iface}_app:app" not in plain:
                raise SystemExit(f"matrix error: {name} cannot serve {scenario.app} for {scenario.name}")

# (k): the metrics' cost under load, --admin-bind against the same server without it, beside two peers.
SCENARIOS += [
    Scenario(
        "k-admin-asgi",
        "asgi",
        "/",
        64,
        "hello world, keep-alive, with and without --admin-bind (the metrics)",
        servers=("monoceros", "monoceros-admin", "uvicorn", "granian"),
    ),
]
