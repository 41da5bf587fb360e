"""End to end, the process settings a gunicorn or uvicorn user brings, in both process models.

Found when monoceros was tried as a new user would: with one worker (no master) --user, --group, --chdir,
--pid, --umask and every hook were ignored, so an app run as root with --user nobody ran as root; a worker
whose post_fork hook raised was restarted forever; --max-requests overshot by 2-5 times; SIGINT under a
supervisor cut requests that one process would have let finish; a forgotten --factory served 500s.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import stat
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, in_background
from supervisor_support import status_field, supervise, wait_for

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="switching user needs root")
MODELS = {"one process": (), "supervisor": ("-w", "2")}


def start(
    serve: ServerFactory, model: str, *args: str, app: str = "dropin_apps:whoami", **options: Any
) -> ServerProcess:
    if MODELS[model]:
        return supervise(serve, *MODELS[model], *args, app=app, **options)
    return serve(app, *args, **options)


def whoami(server: ServerProcess, env: str = "") -> dict[str, Any]:
    response = httpx.get(server.url + (f"/?env={env}" if env else "/"), timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- privileges ------------------------------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("model", MODELS)
def test_user_drops_privileges_in_every_process_model(serve: ServerFactory, model: str) -> None:
    nobody = pwd.getpwnam("nobody")
    server = start(serve, model, "--user", "nobody")
    seen = whoami(server)
    assert (seen["uid"], seen["euid"], seen["gid"]) == (nobody.pw_uid, nobody.pw_uid, nobody.pw_gid)
    assert seen["groups"] == [nobody.pw_gid]  # root's groups are gone, and no others joined (no --initgroups)
    if model == "one process":
        assert seen["pid"] == server.pid  # the one process itself, after binding as root
        assert status_field(server.pid, "Uid").split() == [str(nobody.pw_uid)] * 4
    else:
        assert status_field(server.pid, "Uid").split()[0] == "0"  # the master keeps root to bind on reload
    assert server.stop() == 0


@needs_root
@pytest.mark.parametrize("model", MODELS)
def test_log_files_go_to_the_user_so_usr1_can_reopen_them(serve: ServerFactory, model: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mono-logs-"))
    folder.chmod(0o755)  # the files' directory stays root's, as /var/log/app would be
    access, errors = folder / "access.log", folder / "error.log"
    nobody = pwd.getpwnam("nobody")
    try:
        server = start(
            serve, model, "--user", "nobody", "--access-logfile", str(access), "--error-logfile", str(errors),
            ready_text="",
        )  # fmt: skip
        wait_for(lambda: errors.exists() and "Serving" in errors.read_text(), 10, "the error log", server)
        assert os.stat(access).st_uid == os.stat(errors).st_uid == nobody.pw_uid
        # logrotate's "create 0640 nobody nogroup": the old file moves away, a new one is made for the user.
        access.rename(folder / "access.log.1")
        access.touch(0o640)
        os.chown(access, nobody.pw_uid, nobody.pw_gid)
        server.send_signal(signal.SIGUSR1)
        wait_for(lambda: "Received SIGUSR1: reopening log files" in errors.read_text(), 5, "the reopen", server)
        assert httpx.get(server.url + "/", timeout=5).status_code == 200
        wait_for(lambda: "GET / " in access.read_text(), 5, "the access line in the new file", server)
        assert "Reopening" not in errors.read_text()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("model", MODELS)
def test_unknown_user_or_group_refuses_to_start(serve: ServerFactory, model: str) -> None:
    for flag, name in (("--user", "nosuchuser-e2e"), ("--group", "nosuchgroup-e2e")):
        server = start(serve, model, flag, name, wait=False)
        assert server.wait(10) == 2
        setting = flag[2:]
        assert f"setting '{setting}': no such {setting} '{name}'" in server.output()
        assert "Serving" not in server.output()


@needs_root
def test_unix_socket_belongs_to_the_user_and_anyone_may_connect(serve: ServerFactory) -> None:
    nobody = pwd.getpwnam("nobody")
    server = serve("dropin_apps:whoami", "--user", "nobody", listen="uds")
    assert server.uds is not None
    info = os.stat(server.uds)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (nobody.pw_uid, 0o666)  # a proxy's own user connects
    assert server.stop() == 0


@pytest.mark.parametrize("model", MODELS)
def test_chdir_pid_and_umask_take_effect(serve: ServerFactory, model: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    pidfile = tmp_path / "run" / "app.pid"
    pidfile.parent.mkdir()
    server = start(serve, model, "--chdir", str(home), "--pid", str(pidfile), "--umask", "027")
    seen = whoami(server)
    assert (seen["cwd"], seen["umask"]) == (str(home), 0o027)
    assert pidfile.read_text().strip() == str(server.pid)
    assert status_field(server.pid, "Umask") == "0027"
    assert server.stop() == 0
    assert not pidfile.exists()


def test_env_and_env_file_reach_the_app(serve: ServerFactory, tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text('FROM_FILE=file\nBOTH=file\nPRESET=file\n# a comment\nQUOTED="a b"\n')
    server = serve(
        "dropin_apps:whoami", "--env-file", str(env_file), "-e", "BOTH=flag", "--env", "ONLY_FLAG=x=y",
        env={"PRESET": "environment"},
    )  # fmt: skip
    seen = whoami(server, "FROM_FILE,BOTH,PRESET,QUOTED,ONLY_FLAG")["env"]
    # As with uvicorn the file does not replace what is set; as with gunicorn -e does.
    assert seen == {"FROM_FILE": "file", "BOTH": "flag", "PRESET": "environment", "QUOTED": "a b", "ONLY_FLAG": "x=y"}


def test_name_sets_the_process_titles(serve: ServerFactory) -> None:
    pytest.importorskip("setproctitle")
    server = supervise(serve, "--supervisor", "-n", "shop-e2e", app="dropin_apps:whoami")
    assert "worker [shop-e2e]" in whoami(server)["title"]
    with open(f"/proc/{server.pid}/cmdline", "rb") as f:
        assert b"master [shop-e2e]" in f.read()
    alone = serve("dropin_apps:whoami", "--name", "solo-e2e")
    assert "monoceros [solo-e2e]" in whoami(alone)["title"]


def test_capture_output_sends_prints_to_the_error_log(serve: ServerFactory, tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    server = serve("asgi_apps:app", "--capture-output", "--error-logfile", str(log), ready_text="")
    wait_for(lambda: log.exists() and "Serving" in log.read_text(), 10, "the error log", server)
    assert httpx.get(server.url + "/print?text=printed-by-the-app", timeout=5).status_code == 200
    wait_for(lambda: "printed-by-the-app" in log.read_text(), 5, "the app's print in the error log", server)
    assert "printed-by-the-app" not in server.output()


# -- hooks -----------------------------------------------------------------------------------------------------

HOOKS = """\
import os

def _note(name, *more):
    with open(os.path.join(os.environ["E2E_RECORD_DIR"], "hooks.log"), "a") as f:
        f.write(" ".join([name, str(os.getpid()), *map(str, more)]) + "\\n")

def on_starting(server):
    server.log.info("on_starting in %s", server.pid)
    _note("on_starting", server.pid, server.cfg.workers)

def when_ready(server):
    server.log.info("Server is ready. Spawning workers")
    _note("when_ready", server.num_workers, len(server.WORKERS))

def pre_fork(server, worker):
    _note("pre_fork")

def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s)", worker.pid)
    _note("post_fork", worker.pid, worker.age, worker.ppid)

def post_worker_init(worker):
    worker.log.info("post_worker_init %s", worker.age)
    _note("post_worker_init", worker.pid)

def worker_int(worker):
    worker.log.info("worker received INT or QUIT signal")
    _note("worker_int", worker.pid)

def worker_exit(server, worker):
    _note("worker_exit", worker.pid)

def on_exit(server):
    _note("on_exit")
"""


def test_every_hook_runs_in_one_process(serve: ServerFactory, tmp_path: Path) -> None:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(HOOKS)
    server = serve("dropin_apps:whoami", "-c", str(config))
    server.wait_record("hooks.log")
    wait_for(lambda: "when_ready" in server.record("hooks.log").read_text(), 5, "when_ready", server)
    server.send_signal(signal.SIGINT)
    assert server.wait(10) == 0
    lines = [line.split() for line in server.record("hooks.log").read_text().splitlines()]
    names = [line[0] for line in lines]
    assert names == [
        "on_starting", "pre_fork", "post_fork", "post_worker_init", "when_ready", "worker_int", "worker_exit",
        "on_exit",
    ]  # fmt: skip
    assert {int(line[1]) for line in lines} == {server.pid}  # one process: it is server and worker
    assert lines[0][2:] == [str(server.pid), "1"]
    assert lines[2][2:4] == [str(server.pid), "1"]  # worker.pid, worker.age
    assert lines[4][2:] == ["1", "1"]
    out = server.output()
    assert f"Worker spawned (pid: {server.pid})" in out and "worker received INT or QUIT signal" in out


@pytest.mark.parametrize("model", MODELS)
def test_a_hook_that_raises_stops_the_start_and_says_what_it_got(
    serve: ServerFactory, model: str, tmp_path: Path
) -> None:
    config = tmp_path / "conf.py"
    config.write_text("def post_fork(server, worker):\n    server.app.wsgi()  # gunicorn's Application\n")
    server = start(serve, model, "-c", str(config), wait=False)
    assert server.wait(15) == 3
    out = server.output()
    assert "server hook post_fork raised AttributeError" in out
    assert "It was called as post_fork(server, worker) with server (a " in out
    assert "log, pid, cfg, num_workers, WORKERS" in out and "pid, ppid, age, log, cfg" in out
    assert "server.app.wsgi()" in out  # the user's line, in the traceback
    if model == "supervisor":
        assert "A worker could not boot (exit code 3): stopping" in out
        assert out.count("Booting worker") == 2  # no boot loop


def test_workers_that_keep_dying_before_ready_stop_the_master(serve: ServerFactory) -> None:
    started = time.monotonic()
    server = supervise(serve, "--supervisor", app="crashing_module:app", wait=False)
    assert server.wait(30) == 5  # exitcodes.BOOT_CRASH_LOOP
    out = server.output()
    assert out.count("Booting worker") == 5
    assert len(re.findall(r"Worker \d \(pid \d+\) was killed by SIGKILL", out)) == 5
    assert "could not stay up: 5 in a row died before they were ready (the last was killed by SIGKILL" in out
    assert time.monotonic() - started < 20


# -- --max-requests --------------------------------------------------------------------------------------------


def test_max_requests_is_exact_for_one_client(serve: ServerFactory) -> None:
    server = supervise(serve, "--max-requests", "10", app="supervisor_apps:app")
    answers: list[tuple[int, str | None]] = []
    with httpx.Client(timeout=5) as client:
        for _ in range(35):
            response = client.get(server.url)  # any failure raises
            answers.append((int(response.text), response.headers.get("connection")))
    counts = Counter(pid for pid, _ in answers)
    workers = list(dict.fromkeys(pid for pid, _ in answers))
    assert [counts[pid] for pid in workers[:3]] == [10, 10, 10], counts
    # The last answer of each worker says so: the client opens its next connection to the replacement.
    assert [answers[i][1] for i in (9, 19, 29)] == ["close"] * 3
    assert all(header is None for i, (_, header) in enumerate(answers) if i % 10 != 9)
    out = server.output()
    assert out.count("Took 10 requests (max 10): stopping for a replacement") >= 3
    assert out.count("it served 10 requests (max 10)") >= 3


def test_max_requests_under_concurrent_load_overshoots_by_at_most_the_connections(serve: ServerFactory) -> None:
    from supervisor_support import Load

    server = supervise(
        serve, "-w", "2", "--max-requests", "40", "--max-requests-jitter", "10", app="supervisor_apps:app"
    )
    with Load(server.url, threads=4, seconds=20, limit=100) as load:
        load.join()
    assert not load.failures, load.failures
    counts = Counter(pid for _, pid in load.answers)
    finished = [count for pid, count in counts.items() if f"(pid {pid}): it served" in server.output()]
    assert finished, counts
    assert all(40 <= count <= 50 + load.threads for count in finished), counts
    assert server.stop() == 0


# -- stopping --------------------------------------------------------------------------------------------------


def test_ctrl_c_under_reload_lets_the_request_finish(serve: ServerFactory, tmp_path: Path) -> None:
    server = supervise(serve, "--reload", "--reload-dir", str(tmp_path), app="supervisor_apps:app")
    thread, result = in_background(server.url + "/slow?s=1&id=ctrl-c")
    server.wait_record("slow-started-ctrl-c")
    os.killpg(server.pid, signal.SIGINT)  # a terminal's Ctrl+C reaches the whole group
    thread.join(10)
    assert (result["response"].status_code, result["response"].text) == (200, "slept")
    assert server.wait(10) == 0
    assert "Graceful timeout" not in server.output()


# -- app factories ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_forgotten_factory_is_detected(serve: ServerFactory, model: str) -> None:
    server = start(serve, model, app="dropin_apps:create_app")
    assert "uid" in whoami(server)
    out = server.output()
    assert (
        "APP 'dropin_apps:create_app' is a function that takes no arguments, so it is taken for an app factory" in out
    )


def test_factory_called_with_literal_arguments(serve: ServerFactory) -> None:
    server = serve('dropin_apps:make_app("shop", debug=True)')
    assert httpx.get(server.url, timeout=5).text == "shop debug=True"


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("dropin_apps:make_app(os.getcwd())", "a factory's arguments must be literals"),
        ("dropin_apps:returns_none", "it returned NoneType, not an app"),
        ("dropin_apps:four_arguments", "takes 4 argument(s) without defaults, so it is neither a WSGI app"),
        ("dropin_apps:make_app(", "is not a valid call"),
    ],
)
def test_apps_that_cannot_be_served_exit_4(serve: ServerFactory, app: str, message: str) -> None:
    server = serve(app, wait=False)
    assert server.wait(10) == 4
    assert message in server.output()
