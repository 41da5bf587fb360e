"""End to end, operating the supervisor: sockets inherited through LISTEN_FDS, the USR2 binary upgrade,
the pid file, --daemon, --chdir, --umask, --user/--group, --name, the server hooks of a Python config
file, and sd_notify.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_process import ServerFactory, ServerProcess, short_socket_path
from supervisor_support import (
    APP,
    Load,
    alive,
    children,
    kill_leftovers,
    status_field,
    supervise,
    wait_for,
    wait_workers,
    worker_pid,
)

# -- LISTEN_FDS ------------------------------------------------------------------------------------------------

# Runs in the server's process, then execs monoceros: the socket moves to fd 3 and LISTEN_PID names the
# process that monoceros will be, as systemd's socket activation does.
SOCKET_ACTIVATION = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_listen_fds_socket_is_served(serve: ServerFactory, workers: int) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        launcher = [sys.executable, "-c", SOCKET_ACTIVATION, str(listener.fileno())]
        options = {"listen": None, "pass_fds": [listener.fileno()], "launcher": launcher}
        if workers == 1:
            server = serve(APP, new_session=True, **options)  # one process, no master
        else:
            server = supervise(serve, "-w", str(workers), **options)
    server.port = port
    assert "Listening at: http://127.0.0.1:" + str(port) in server.output()
    pids = {worker_pid(server) for _ in range(20)}
    assert pids <= ({server.pid} if workers == 1 else wait_workers(server, workers))
    assert server.stop() == 0


# -- USR2 ------------------------------------------------------------------------------------------------------


def test_usr2_starts_a_new_master_on_the_same_sockets_without_a_failed_request(serve: ServerFactory) -> None:
    server = supervise(serve, "-w", "2", "--pid", "master.pid", "--graceful-timeout", "2")
    pidfile = server.workdir / "master.pid"
    oldbin = server.workdir / "master.pid.oldbin"
    old = server.pid
    old_workers = wait_workers(server, 2)
    assert pidfile.read_text() == f"{old}\n"
    new = 0
    try:
        with Load(server.url, threads=3, seconds=20) as load:
            load.wait_answers(100)
            server.send_signal(signal.SIGUSR2)
            wait_for(lambda: server.output().count("Ready: ") == 2, 10, "the new master ready", server)
            new = int(pidfile.read_text())
            assert new != old
            assert f"Re-executing: new master pid {new} inherits 1 listener(s)" in server.output()
            assert oldbin.read_text() == f"{old}\n"
            new_workers = wait_workers(server, 2, master=new)
            assert new_workers.isdisjoint(old_workers)

            server.send_signal(signal.SIGTERM)  # the operator retires the old master
            assert server.proc.wait(10) == 0
            wait_for(lambda: not any(alive(pid) for pid in old_workers), 5, "the old workers to exit", server)
            retired = time.monotonic()
            load.wait_answers(200, since=retired)
        print(f"\nUSR2, then TERM to the old master: {len(load.failures)} failed of {load.requests} requests")
        assert load.failures == []
        assert load.pids(since=retired) <= new_workers
        assert not oldbin.exists()
        assert pidfile.read_text() == f"{new}\n"  # the old master removed only its own file
        assert alive(new)

        os.kill(new, signal.SIGTERM)
        wait_for(lambda: not alive(new), 10, "the new master to exit", server)
        wait_for(lambda: f"Master {new}: exiting (code 0)" in server.output(), 5, "its last line", server)
        assert not pidfile.exists()
    finally:
        if new and alive(new):
            os.kill(new, signal.SIGKILL)  # in the old master's process group too, but be sure


# -- pid file, --chdir, --umask, --daemon ------------------------------------------------------------------


def test_pid_file_chdir_and_umask(serve: ServerFactory, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = supervise(serve, "--supervisor", "--chdir", str(home), "--pid", "m.pid", "--umask", "027")
    (worker,) = wait_workers(server, 1)
    assert httpx.get(server.url + "/cwd").text == str(home)
    pidfile = home / "m.pid"  # relative to the --chdir directory
    assert pidfile.read_text() == f"{server.pid}\n"
    assert status_field(server.pid, "Umask") == "0027"
    assert status_field(worker, "Umask") == "0027"
    assert server.stop() == 0
    assert not pidfile.exists()


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Servers whose processes may have left the test's process group (a daemon): killed by directory."""
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        kill_leftovers(server.workdir)


def test_daemon_detaches_serves_and_stops_by_its_pid_file(
    serve: ServerFactory, tmp_path: Path, leftovers: list[ServerProcess]
) -> None:
    pidfile = tmp_path / "daemon.pid"
    errors = tmp_path / "daemon.log"
    server = serve(APP, "--daemon", "--pid", str(pidfile), "--error-logfile", str(errors), wait=False, new_session=True)
    leftovers.append(server)

    def log() -> str:
        return errors.read_text() if errors.exists() else "(no log)"

    assert server.wait(10) == 0  # the command returned; the daemon runs on
    daemon = wait_for(lambda: pidfile.exists() and int(pidfile.read_text() or 0), 10, "the pid file")
    assert daemon != server.pid
    assert alive(daemon), log()
    wait_for(lambda: "Ready: 1 worker(s) serving" in log(), 10, "the daemon ready")
    (worker,) = children(daemon)
    assert worker_pid(server) == worker  # serving the socket passed with --fd
    assert os.getsid(daemon) != os.getsid(0)  # detached: a session of its own
    assert status_field(daemon, "PPid") != str(os.getpid())

    os.kill(int(pidfile.read_text()), signal.SIGTERM)
    wait_for(lambda: not alive(daemon) and not alive(worker), 10, "the daemon to exit")
    assert not pidfile.exists()
    assert f"Master {daemon}: exiting (code 0)" in log()


# -- --user, --group, --name -----------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
def test_user_and_group_apply_to_the_workers(serve: ServerFactory) -> None:
    user = pwd.getpwnam("nobody")
    group = grp.getgrgid(user.pw_gid).gr_name
    server = supervise(serve, "-w", "2", "--user", "nobody", "--group", group)
    workers = wait_workers(server, 2)
    for pid in workers:
        assert status_field(pid, "Uid").split() == [str(user.pw_uid)] * 4
        assert status_field(pid, "Gid").split() == [str(user.pw_gid)] * 4
    assert status_field(server.pid, "Uid").split()[0] == "0"  # the master keeps its rights
    assert {worker_pid(server) for _ in range(10)} <= workers
    assert server.stop() == 0


def test_name_sets_the_process_titles(serve: ServerFactory) -> None:
    pytest.importorskip("setproctitle")
    server = supervise(serve, "-w", "2", "--name", "e2e-titled")
    workers = wait_workers(server, 2)

    def title(pid: int) -> str:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()

    assert title(server.pid) == "monoceros: master [e2e-titled]"
    assert {title(pid) for pid in workers} == {"monoceros: worker [e2e-titled]"}
    assert server.stop() == 0


# -- hooks -----------------------------------------------------------------------------------------------------

HOOKS_CONFIG = """\
import os


def _note(name, about=None):
    line = f"{name} {os.getpid()}" + (f" {about}" if about is not None else "")
    with open(os.path.join(os.environ["E2E_RECORD_DIR"], "hooks.log"), "a") as f:
        f.write(line + "\\n")


def on_starting(arbiter):
    _note("on_starting")


def when_ready(arbiter):
    _note("when_ready")


def pre_fork(arbiter, worker):
    _note("pre_fork")


def post_fork(server, worker):
    # gunicorn's documented example hook, as it is written for gunicorn
    server.log.info("Worker spawned (pid: %s)", worker.pid)
    _note("post_fork", f"{worker.pid} {worker.age} {server.pid}")


def post_worker_init(worker):
    _note("post_worker_init")


def worker_exit(server, worker):
    worker.log.info("worker_exit of worker %s", worker.age)
    _note("worker_exit", worker.pid)


def child_exit(server, worker):
    _note("child_exit", worker.pid)


def on_reload(arbiter):
    _note("on_reload")


def on_exit(arbiter):
    _note("on_exit")
"""


def test_hooks_run_in_order_in_the_right_process(serve: ServerFactory, tmp_path: Path) -> None:
    config = tmp_path / "hooks_conf.py"
    config.write_text(HOOKS_CONFIG)
    server = supervise(serve, "-w", "2", "-c", str(config))
    master = server.pid
    first = wait_workers(server, 2)
    server.send_signal(signal.SIGHUP)
    server.wait_output("Reloaded in")
    wait_for(lambda: not any(alive(pid) for pid in first), 10, "the old workers to exit", server)
    second = wait_workers(server, 2)
    assert server.stop() == 0

    lines = [line.split() for line in server.record("hooks.log").read_text().splitlines()]
    names = [line[0] for line in lines]

    def ran(name: str) -> list[int]:
        """The PIDs of the processes that ran hook ``name``."""
        return sorted(int(line[1]) for line in lines if line[0] == name)

    master_hooks = ("on_starting", "when_ready", "pre_fork", "child_exit", "on_reload", "on_exit")
    assert all(set(ran(name)) == {master} for name in master_hooks), lines
    # As in gunicorn, worker_exit runs in the exiting worker, child_exit in the master that reaped it.
    assert ran("post_fork") == ran("post_worker_init") == ran("worker_exit") == sorted(first | second)
    assert sorted(int(line[2]) for line in lines if line[0] == "child_exit") == sorted(first | second)
    # The hook arguments have what gunicorn's have: worker.pid is the worker's own, server.pid the master's.
    forks = [line for line in lines if line[0] == "post_fork"]
    assert all(line[1] == line[2] and int(line[4]) == master for line in forks), forks
    assert sorted(int(line[3]) for line in forks) == [1, 2, 3, 4]
    out = server.output()
    assert all(f"Worker spawned (pid: {pid})" in out for pid in first | second)
    assert "worker_exit of worker 1" in out

    def position(name: str, pid: int | None = None) -> int:
        """Where hook ``name`` (run by ``pid``) first appears."""
        return next(i for i, line in enumerate(lines) if line[0] == name and pid in (None, int(line[1])))

    assert names[0] == "on_starting"
    assert names[-1] == "on_exit"
    assert names[1] == "pre_fork"
    assert names.count("pre_fork") == 4
    assert max(position("post_worker_init", pid) for pid in first) < position("when_ready")
    assert names.count("when_ready") == 1  # once; a reload logs "Reloaded" instead
    reload = position("on_reload")
    assert position("when_ready") < reload
    assert all(position("post_fork", pid) > reload for pid in second)
    assert all(position("post_fork", pid) < reload for pid in first)
    first_exits = [i for i, line in enumerate(lines) if line[0] == "worker_exit" and int(line[2]) in first]
    assert min(first_exits) > max(position("post_worker_init", pid) for pid in second)  # replaced before stopped


# -- sd_notify ----------------------------------------------------------------------------------------------


def test_sd_notify_ready_reloading_stopping(serve: ServerFactory, tmp_path: Path) -> None:
    address = short_socket_path(tmp_path, "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(10)

        def receive() -> dict[str, str]:
            fields = notify.recv(4096).decode().split("\n")
            return dict(field.split("=", 1) for field in fields)

        server = supervise(serve, "-w", "2", env={"NOTIFY_SOCKET": address})
        ready = receive()  # the first message of all
        assert ready == {"READY": "1", "STATUS": "2 workers serving", "MAINPID": str(server.pid)}
        out = server.output()
        assert out.count("is ready") == 2 and out.index("is ready") < out.index("Ready: 2 worker(s)")

        server.send_signal(signal.SIGHUP)
        reloading = receive()
        assert reloading["RELOADING"] == "1"
        assert abs(int(reloading["MONOTONIC_USEC"]) / 1e6 - time.monotonic()) < 10
        assert receive() == {"READY": "1", "STATUS": "reloaded; 2 workers serving", "MAINPID": str(server.pid)}

        assert server.stop() == 0
        assert receive() == {"STOPPING": "1"}
        notify.settimeout(0.2)
        rest = []
        try:
            while True:
                rest.append(receive())
        except TimeoutError:
            pass
        assert all(message == {"STOPPING": "1"} for message in rest), rest  # nothing from the workers
