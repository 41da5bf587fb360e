"""Other servers' command lines and config files, as their users bring them.

Each flag of gunicorn, uvicorn, daphne, waitress and hypercorn either means exactly what it means there, or
fails with a message that names the monoceros way; none silently means something else (daphne's ``-p 8001``
used to become a pid file, with the server on port 8000). A real gunicorn.conf.py runs unchanged where its
names can be honoured, and every name that cannot is listed at once.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_cli import resolved

from monoceros import exitcodes
from monoceros.cli import main
from monoceros.config.foreign import FOREIGN, NOT_NEEDED
from monoceros.config.sources import load_config
from monoceros.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("isolated")  # an empty directory, no MONOCEROS_* (tests/conftest.py)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["--print-config", *argv]) == exitcodes.USAGE
    return capsys.readouterr().err


# -- the command lines of other servers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # uvicorn
        (["--host", "0.0.0.0", "--port", "8080", "--limit-max-requests", "500", "main:app"],
         {"host": "0.0.0.0", "port": 8080, "max_requests": 500, "app": "main:app"}),
        (["--timeout-graceful-shutdown", "10", "--timeout-keep-alive", "65"],
         {"graceful_timeout": 10.0, "keep_alive": 65.0}),
        (["--ws-per-message-deflate", "false", "--log-level", "trace"],
         {"ws_per_message_deflate": False, "log_level": "trace"}),
        (["--log-level", "DEBUG", "--lifespan", "On"], {"log_level": "debug", "lifespan": "on"}),
        (["--ssl-certfile", "c.pem", "--ssl-cert-reqs", "2", "--ssl-ca-certs", "ca.pem"],
         {"certfile": "c.pem", "cert_reqs": "required", "ca_certs": "ca.pem"}),
        (["--reload", "--reload-delay", "0.5", "--ws", "wsproto"], {"reload_delay": 0.5, "ws": "auto"}),
        (["--env-file", ".env", "--header", "X-A: 1", "--header", "server: edge"],
         {"env_file": ".env", "headers": ["X-A: 1", "server: edge"]}),
        # gunicorn
        (["-w", "4", "-b", "0.0.0.0:8000", "--limit-request-field_size", "4096", "-e", "A=1", "--chdir", "/srv"],
         {"workers": 4, "bind": ["0.0.0.0:8000"], "limit_request_field_size": 4096, "env": ["A=1"]}),
        (["--max-requests", "1000", "--max-requests-jitter", "50", "-t", "60", "--graceful-timeout", "20"],
         {"max_requests": 1000, "max_requests_jitter": 50, "timeout": 60.0, "graceful_timeout": 20.0}),
        (["--access-logfile", "-", "--error-logfile", "-", "--log-level", "debug", "--capture-output", "--log-file",
          "err.log"], {"access_logfile": "-", "error_logfile": "err.log", "capture_output": True}),
        (["--paste", "development.ini#main", "--pythonpath", "src,lib", "--no-sendfile"],
         {"paste": "development.ini#main", "pythonpath": ["src", "lib"], "sendfile": False}),
        # waitress
        (["--listen=127.0.0.1:8080", "--listen=[::1]:8080", "--threads=6", "--url-prefix=/app", "--call", "m:make"],
         {"bind": ["127.0.0.1:8080", "[::1]:8080"], "threads": 6, "root_path": "/app", "factory": True}),
        (["--unix-socket=/run/app.sock", "--unix-socket-perms=660", "--connection-limit=50"],
         {"uds": "/run/app.sock", "uds_perms": 0o660, "limit_concurrency": 50}),
        (["--max-request-body-size=1000", "--max-request-header-size=2000"],
         {"limit_request_body": 1000, "limit_request_headers_size": 2000}),
        # daphne
        (["--ping-interval", "10", "--ping-timeout", "5", "--websocket-max-message-size", "9", "--no-server-name"],
         {"ws_ping_interval": 10.0, "ws_ping_timeout": 5.0, "ws_max_size": 9, "server_header": False}),
        (["--access-log", "access.log", "m:app"], {"access_logfile": "access.log", "app": "m:app"}),
        (["-u", "www-data", "-p", "run/app.pid"], {"user": "www-data", "pid": "run/app.pid"}),
        # hypercorn
        (["--websocket-ping-interval", "3", "-m", "007", "--keyfile-password", "pw", "--certfile", "c.pem"],
         {"ws_ping_interval": 3.0, "umask": 0o007, "keyfile_password": "pw"}),
    ],
)  # fmt: skip
def test_other_servers_flags_mean_the_same(
    argv: list[str], expected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = resolved(argv, capsys)
    for name, value in expected.items():
        assert out[name] == value, name


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["-p", "8001", "myproject.asgi:application"], "-p is the PID file here (as in gunicorn); to listen on port "
         "8001 (daphne's -p), use --port 8001 or -b HOST:8001"),
        (["-u", "/tmp/daphne.sock", "m:app"], "-u is the user to run as here (as in gunicorn); to listen on a unix "
         "socket (daphne's -u), use --uds /tmp/daphne.sock"),
        (["-e", "tcp:port=8000:interface=127.0.0.1", "m:app"], "-e sets an environment variable here (NAME=VALUE, "
         "as in gunicorn); to listen on an address (daphne's --endpoint)"),
        (["--workrs", "2", "ops:app"], "unknown option --workrs; did you mean --workers?"),
        (["--max-request", "9"], "unknown option --max-request; did you mean --max-requests?"),
        (["--statsd-host", "localhost:8125"], "--statsd-host is not supported: monoceros has no statsd client"),
        (["--log-syslog"], "--log-syslog is not supported: use --log-config with a logging.handlers.SysLogHandler"),
        (["--http-protocols", "h1,h2"], "--http-protocols is not supported: use --http: 'auto' serves HTTP/1.1 and"),
        (["-v", "2"], "-v is not supported: use --log-level"),
        (["-s", "myserver"], "daphne's -s NAME is --header 'server: NAME' here"),
        (["--no-ipv6"], "--no-ipv6 is not supported: list the addresses to listen on with -b"),
        (["a:app", "b:app"], "one APP is served, but 2 were given: 'a:app', 'b:app'"),
        (["--reload=maybe"], "--reload takes no value, or one of true/false (got 'maybe')"),
    ],
)  # fmt: skip
def test_flags_that_would_mean_something_else_are_refused(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(argv, capsys)
    assert says in err, err
    assert err.startswith("usage: monoceros")


def test_every_unknown_flag_is_named_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(["--workrs", "2", "--statsd-host", "x", "--bnd", "0.0.0.0:1", "app:app"], capsys)
    assert "--workrs; did you mean --workers?" in err
    assert "--statsd-host is not supported" in err
    assert "--bnd; did you mean --bind?" in err
    assert "one APP is served" not in err  # '2' was --workrs's value, not a second app


@pytest.mark.parametrize(
    ("argv", "note"),
    [
        (["-k", "uvicorn.workers.UvicornWorker"], "-k is not needed: monoceros tells WSGI from ASGI by itself"),
        (["--worker-tmp-dir", "/dev/shm"], "--worker-tmp-dir is not needed: workers send their heartbeats through"),
        (
            ["--http", "httptools", "--no-use-colors"],
            "--http httptools is not needed: monoceros always parses HTTP/1.1",
        ),
        (["--http2"], "--http2 is not needed: HTTP/2 is served by default"),
        (["-R", "--reload-engine", "poll"], "-R is not needed: workers always inherit standard output and error"),
    ],
)
def test_options_that_are_not_needed_are_accepted_with_a_note(
    argv: list[str], note: str, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resolved(argv, capsys)  # accepted: nothing else to read in their place
    result = _run(
        "--check-config", *argv, "--app-dir", str(ROOT / "tests" / "apps"), "dropin_apps:whoami", cwd=isolated
    )
    assert result.returncode == exitcodes.OK, result.stderr
    assert note in result.stderr  # said, not silent


def test_not_needed_options_consume_their_values(capsys: pytest.CaptureFixture[str]) -> None:
    out = resolved(["--worker-class", "gthread", "--worker-tmp-dir", "/dev/shm", "main:app"], capsys)
    assert out["app"] == "main:app"


def test_every_foreign_option_has_a_reason() -> None:
    for entry in FOREIGN:
        assert entry.says and entry.kind in (NOT_NEEDED, "refused"), entry
        assert entry.name.isidentifier(), entry


# -- a real gunicorn.conf.py -----------------------------------------------------------------------------------

GUNICORN_CONF = """\
# gunicorn.conf.py, as the gunicorn docs and a typical deployment write it
import multiprocessing

wsgi_app = "myproject.wsgi:application"
bind = "unix:/run/myproject/gunicorn.sock"
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "uvicorn.workers.UvicornWorker"
threads = 4
worker_connections = 500
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 1000
max_requests_jitter = 100
preload_app = True
accesslog = "/var/log/myproject/access.log"
errorlog = "/var/log/myproject/error.log"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
proc_name = "myproject"
loglevel = "WARNING"
pidfile = "/run/myproject/gunicorn.pid"
umask = 0o007
user = 33
group = 33
forwarded_allow_ips = "10.0.0.0/8,127.0.0.1"
raw_env = ["DJANGO_SETTINGS_MODULE=myproject.settings"]
worker_tmp_dir = "/dev/shm"
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s)", worker.pid)

def worker_int(worker):
    worker.log.info("worker received INT or QUIT signal")
"""


def test_a_real_gunicorn_conf_py_runs_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text(GUNICORN_CONF)
    config = load_config(config_file=str(path), env={}, cwd=str(tmp_path))
    assert config.app == "myproject.wsgi:application"
    assert config.bind == ["unix:/run/myproject/gunicorn.sock"]
    assert config.workers == os.cpu_count() * 2 + 1  # type: ignore[operator]
    assert (config.threads, config.limit_concurrency, config.timeout, config.keep_alive) == (4, 500, 60.0, 5.0)
    assert (config.max_requests, config.max_requests_jitter, config.preload) == (1000, 100, True)
    assert (config.log_level, config.access_logfile, config.error_logfile) == (
        "warning", "/var/log/myproject/access.log", "/var/log/myproject/error.log",
    )  # fmt: skip
    assert (config.name, config.pid, config.umask, config.user, config.group) == (
        "myproject", "/run/myproject/gunicorn.pid", 0o007, "33", "33",
    )  # fmt: skip
    assert config.forwarded_allow_ips == ["10.0.0.0/8", "127.0.0.1"]
    assert config.env == ["DJANGO_SETTINGS_MODULE=myproject.settings"]
    assert config.post_fork is not None and config.worker_int is not None
    assert any("'worker_class' is not needed" in note for note in config.notes)
    assert any("'worker_tmp_dir' is not needed" in note for note in config.notes)


def test_a_gunicorn_conf_py_nearby_is_mentioned_not_read(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text("workers = 3\n")
    config = load_config(env={}, cwd=str(tmp_path))
    assert config.workers == 1
    assert "./gunicorn.conf.py is here but not read: pass -c gunicorn.conf.py to use it" in config.notes
    assert load_config(config_file="gunicorn.conf.py", env={}, cwd=str(tmp_path)).workers == 3


def test_every_unknown_name_in_a_config_file_is_listed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text("workers = 2\nstatsd_host = 'x'\nwrokers = 3\nspew = True\nlogleve = 'info'\nbind = 'x:1'\n")
    with pytest.raises(ConfigError) as info:
        load_config(config_file=str(path), env={}, cwd=str(tmp_path))
    text = str(info.value)
    assert text.startswith("4 problems:")
    assert "'statsd_host' is not supported: monoceros has no statsd client" in text
    assert "unknown setting 'wrokers'" in text and "did you mean 'workers'?" in text
    assert "'spew' is not supported" in text
    assert "unknown setting 'logleve'" in text and "did you mean 'loglevel' (log_level)?" in text


def test_an_alias_and_its_setting_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.py"
    path.write_text("loglevel = 'info'\nlog_level = 'debug'\n")
    with pytest.raises(ConfigError, match=r"setting 'log_level' is given twice in config file .* \(as 'loglevel' and"):
        load_config(config_file=str(path), env={}, cwd=str(tmp_path))


def test_uvicorn_run_keywords_work_with_monoceros_run(tmp_path: Path) -> None:
    config = load_config(
        overrides={
            "ssl_keyfile": "k.pem", "ssl_certfile": "c.pem", "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            "timeout_keep_alive": 9, "limit_max_requests": 7, "headers": [("x-a", "1"), ("x-b", "2")],
            "log_level": "trace",
        },
        env={}, cwd=str(tmp_path),
    )  # fmt: skip
    assert (config.keyfile, config.certfile, config.cert_reqs) == ("k.pem", "c.pem", "optional")
    assert (config.keep_alive, config.max_requests, config.headers) == (9.0, 7, ["x-a:1", "x-b:2"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["no-colon"], "'no-colon' is not NAME:VALUE"),
        (["bad name: 1"], "'bad name: 1' is not NAME:VALUE"),
        (["x-a: caf\u20ac"], "holds characters HTTP headers cannot carry"),
    ],
)
def test_bad_headers_are_refused(tmp_path: Path, value: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"headers": value}, env={}, cwd=str(tmp_path))


def test_env_entries_must_be_name_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'JUSTNAME' is not NAME=VALUE"):
        load_config(overrides={"env": ["JUSTNAME"]}, env={}, cwd=str(tmp_path))


# -- --check-config --------------------------------------------------------------------------------------------


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONOCEROS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["E2E_RECORD_DIR"] = str(cwd)
    return subprocess.run(
        [sys.executable, "-m", "monoceros", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )


def test_check_config_reports_every_problem_that_would_stop_a_start(isolated: Path) -> None:
    (isolated / "bad.yaml").write_text("version: [1")
    result = _run(
        "--check-config", "-b", "256.0.0.1:80", "--certfile", "missing.pem", "--user", "nosuchuser-e2e",
        "--group", "nosuchgroup-e2e", "--chdir", "/no/such/dir", "--log-config", "bad.yaml",
        "--pid", "/no/such/dir/app.pid", "--app-dir", str(ROOT / "tests" / "apps"), "dropin_apps:whoami",
        cwd=isolated,
    )  # fmt: skip
    assert result.returncode == exitcodes.USAGE
    err = result.stderr
    assert "check-config found 7 problem(s)" in err, err
    for text in (
        "setting 'chdir': cannot change to '/no/such/dir'",
        "log_config 'bad.yaml': not valid YAML",
        "setting 'pid': cannot write /no/such/dir/app.pid",
        "setting 'user': no such user 'nosuchuser-e2e'",
        "setting 'group': no such group 'nosuchgroup-e2e'",
        "cannot listen on 256.0.0.1:80: cannot resolve '256.0.0.1'",
        "certfile 'missing.pem': file not found",
    ):
        assert text in err, text


def test_check_config_finds_an_unwritable_log_and_a_missing_app(isolated: Path) -> None:
    result = _run(
        "--check-config",
        "--error-logfile",
        "/no/such/dir/error.log",
        "--app-dir",
        str(isolated),
        "nomodule:app",
        cwd=isolated,
    )
    assert result.returncode == exitcodes.USAGE
    assert "setting 'error_logfile': cannot write /no/such/dir/error.log" in result.stderr
    assert "the app does not load: could not import module 'nomodule'" in result.stderr


@pytest.mark.parametrize(
    ("app", "code", "says"),
    [
        ("dropin_apps:create_app", exitcodes.OK, "taken for an app factory"),  # the forgotten --factory: works
        ("dropin_apps:four_arguments", exitcodes.APP_LOAD_ERROR, "takes 4 argument(s) without defaults"),
        ("dropin_apps:returns_none", exitcodes.APP_LOAD_ERROR, "returned NoneType, not an app"),
    ],
)
def test_check_config_loads_the_app_as_startup_would(isolated: Path, app: str, code: int, says: str) -> None:
    result = _run("--check-config", "--app-dir", str(ROOT / "tests" / "apps"), app, cwd=isolated)
    assert result.returncode == code, result.stderr
    assert says in result.stderr


def test_check_config_notes_a_port_in_use_without_failing(isolated: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run(
            "--check-config", "-b", f"127.0.0.1:{port}", "--app-dir", str(ROOT / "tests" / "apps"),
            "dropin_apps:whoami", cwd=isolated,
        )  # fmt: skip
    assert result.returncode == exitcodes.OK, result.stderr
    assert (
        "address already in use" in result.stderr and "fine if it is the server this config replaces" in result.stderr
    )
