"""End to end, the supervisor: a real master forking real workers, driven by real signals on loopback.

A worker killed under load is replaced at once and only its in-flight requests fail; HUP replaces every
worker without failing a request (and re-imports a preloaded app); TTIN/TTOU scale; TERM waits for
in-flight requests, as INT does (a second one, or QUIT, does not); a worker whose event loop is blocked is
aborted with its traceback; workers are recycled after N requests, a lifetime or a memory size; workers do
not outlive their master; WEB_CONCURRENCY; SO_REUSEPORT spreads connections over the workers.

Every server runs in its own process group, killed whole after the test (see ServerProcess.kill).
"""

from __future__ import annotations

import os
import re
import signal
import time

import httpx
import pytest
from server_process import ServerFactory, free_port, in_background
from supervisor_support import Load, alive, children, ready_pids, supervise, wait_for, wait_workers, worker_pid

# -- a worker dies -----------------------------------------------------------------------------------------


def test_worker_killed_under_load_is_replaced_and_only_its_requests_fail(serve: ServerFactory) -> None:
    server = supervise(serve, "-w", "2")
    workers = wait_workers(server, 2)
    victim = min(workers)
    with Load(server.url, threads=4, seconds=15) as load:
        load.wait_answers(200)
        booted = len(ready_pids(server.output()))
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        forked = wait_for(lambda: children(server.pid) - workers, 5, "a new worker process", server)
        forked_after = time.monotonic() - killed_at
        new = wait_for(lambda: ready_pids(server.output())[booted:], 5, "a replacement ready", server)
        ready_after = time.monotonic() - killed_at
        load.wait_answers(200, since=time.monotonic())
    print(f"\nkill -9: new worker forked after {forked_after * 1000:.0f} ms, ready after {ready_after * 1000:.0f} ms")
    print(f"kill -9 under load: {len(load.failures)} failed of {load.requests} requests: {load.failures}")

    assert new == list(forked)
    assert ready_after < 1.0
    assert children(server.pid) == workers - {victim} | forked
    # Only what was in flight on the killed worker can fail: at most one request per client thread.
    assert len(load.failures) <= load.threads, load.failures
    assert load.pids(since=killed_at + ready_after) <= workers - {victim} | forked
    out = server.output()
    assert f"(pid {victim}) was killed by SIGKILL" in out
    assert server.stop() == 0


# -- HUP -----------------------------------------------------------------------------------------------------


def test_hup_under_load_replaces_every_worker_without_a_failed_request(serve: ServerFactory) -> None:
    server = supervise(serve, "-w", "2")
    old = wait_workers(server, 2)
    with Load(server.url, threads=4, seconds=3.0) as load:
        load.wait_answers(100)
        hup_at = time.monotonic()
        server.send_signal(signal.SIGHUP)
        server.wait_output("Reloaded in", 5)
        wait_for(lambda: not any(alive(pid) for pid in old), 10, "the old workers to exit", server)
        switched_at = time.monotonic()
        new = wait_workers(server, 2)
        load.join()  # the whole 3 s
    print(f"\nHUP under load: {len(load.failures)} failed of {load.requests} requests")

    assert load.failures == []
    assert new.isdisjoint(old)
    assert load.pids(until=hup_at) <= old
    assert load.pids(since=switched_at) <= new
    assert load.pids(since=switched_at)
    out = server.output()
    assert re.search(r"Reloaded in \d+ ms: 2 worker\(s\) serving", out)
    assert "Traceback" not in out
    assert server.stop() == 0


HOT_APP = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": {body!r}}})
"""


def test_hup_with_preload_imports_the_app_again(serve: ServerFactory) -> None:
    server = supervise(
        serve, "-w", "2", "--preload", app="hot_app:app", sources={"hot_app.py": HOT_APP.format(body=b"first")}
    )
    old = wait_workers(server, 2)
    assert httpx.get(server.url).text == "first"
    # A different length as well as different text: Python's bytecode cache checks size and mtime (seconds).
    (server.workdir / "app" / "hot_app.py").write_text(HOT_APP.format(body=b"second version"))
    server.send_signal(signal.SIGHUP)
    server.wait_output("Reloaded in", 5)
    wait_for(lambda: not any(alive(pid) for pid in old), 10, "the old workers to exit", server)
    assert {httpx.get(server.url).text for _ in range(10)} == {"second version"}
    assert server.stop() == 0


# -- TTIN, TTOU ------------------------------------------------------------------------------------------------


def test_ttin_adds_a_worker_and_ttou_removes_one_but_never_the_last(serve: ServerFactory) -> None:
    server = supervise(serve, "-w", "2")
    wait_workers(server, 2)
    server.send_signal(signal.SIGTTIN)
    three = wait_workers(server, 3)
    server.wait_output("Scaling to 3 worker(s)")
    wait_for(lambda: len(ready_pids(server.output())) == 3, 5, "the third worker ready", server)
    server.send_signal(signal.SIGTTOU)
    two = wait_workers(server, 2)
    assert two < three
    server.send_signal(signal.SIGTTOU)
    one = wait_workers(server, 1)
    server.send_signal(signal.SIGTTOU)  # already at one: stays at one
    wait_for(lambda: server.output().count("Scaling to 1 worker(s)") == 2, 5, "the second TTOU", server)
    time.sleep(0.3)
    assert children(server.pid) == one
    assert worker_pid(server) in one
    assert server.stop() == 0


# -- stopping --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_term_and_int_let_the_in_flight_request_finish(serve: ServerFactory, sig: signal.Signals) -> None:
    """Under a master as in one process: TERM and INT are graceful. INT goes to the whole process group, as
    a terminal's Ctrl+C does: the workers leave it to the master, which sends them TERM."""
    server = supervise(serve, "-w", "2")
    thread, result = in_background(server.url + "/slow?s=1&id=term")
    server.wait_record("slow-started-term")
    if sig == signal.SIGINT:
        os.killpg(server.pid, sig)
    else:
        server.send_signal(sig)
    thread.join(10)
    response = result["response"]
    assert (response.status_code, response.text) == (200, "slept")
    assert server.wait(10) == 0
    out = server.output()
    assert "Stopping gracefully" in out
    assert "Graceful timeout" not in out and "cutting" not in out


@pytest.mark.parametrize("signals", [[signal.SIGQUIT], [signal.SIGINT, signal.SIGINT], [signal.SIGTERM, signal.SIGINT]])
def test_quit_or_a_second_stop_signal_stops_at_once(serve: ServerFactory, signals: list[signal.Signals]) -> None:
    server = supervise(serve, "-w", "2")
    thread, result = in_background(server.url + "/slow?s=5&id=fast")
    server.wait_record("slow-started-fast")
    sent = time.monotonic()
    for sig in signals:
        os.killpg(server.pid, sig)  # the whole group, as Ctrl+C and a terminal's Ctrl+\\ do
        time.sleep(0.2)
    assert server.wait(10) == 0
    thread.join(10)
    assert time.monotonic() - sent < 4  # well before the 5 s request could have finished
    assert isinstance(result.get("error"), (httpx.RemoteProtocolError, httpx.ReadError)), result  # cut
    out = server.output()
    assert "Stopping now" in out
    assert "Graceful timeout" not in out


# -- --timeout: a blocked event loop ---------------------------------------------------------------------------


def test_blocked_worker_is_aborted_with_its_traceback_and_replaced(serve: ServerFactory) -> None:
    server = supervise(serve, "--supervisor", "--timeout", "1")
    first = worker_pid(server)
    thread, result = in_background(server.url + "/block?s=30")
    server.wait_output(f"(pid {first}) timed out: no heartbeat", 10)
    server.wait_output(f"(pid {first}) was killed by SIGABRT", 10)
    thread.join(10)
    assert "error" in result, result  # the blocked request went down with its worker
    wait_for(lambda: [p for p in ready_pids(server.output()) if p != first], 10, "a replacement", server)
    second = worker_pid(server)
    assert second != first
    out = server.output()
    assert "Fatal Python error: Aborted" in out
    traceback = out[out.index("Fatal Python error: Aborted") :]
    assert re.search(r'File ".*supervisor_apps\.py", line \d+ in blocking_sleep', traceback), traceback
    assert server.stop() == 0


# -- recycling -------------------------------------------------------------------------------------------------

RECYCLED = re.compile(r"Recycling worker \d+ \(pid (\d+)\): it served (\d+) requests \(max (\d+)\)")


@pytest.mark.parametrize("jitter", [0, 5])
def test_max_requests_recycles_without_a_failed_request(serve: ServerFactory, jitter: int) -> None:
    server = supervise(serve, "--max-requests", "5", "--max-requests-jitter", str(jitter))
    served: list[int] = []
    deadline = time.monotonic() + 15
    with httpx.Client(timeout=5) as client:
        while len(set(served)) < 2 or not RECYCLED.search(server.output()):
            assert time.monotonic() < deadline, f"no recycling after {len(served)} requests:\n{server.output()}"
            response = client.get(server.url)  # any failure raises
            assert response.status_code == 200
            served.append(int(response.text))
            time.sleep(0.02)
    pid, count, limit = (int(n) for n in RECYCLED.findall(server.output())[0])
    assert pid == served[0]
    assert 5 <= limit <= 5 + jitter
    assert count >= limit
    assert served.count(pid) >= limit  # never recycled early
    assert served[-1] != pid
    assert server.stop() == 0


def test_max_worker_lifetime_recycles(serve: ServerFactory) -> None:
    server = supervise(serve, "--max-worker-lifetime", "1")
    first = worker_pid(server)
    started = time.monotonic()
    with httpx.Client(timeout=5) as client:
        while int(client.get(server.url).text) == first:
            assert time.monotonic() - started < 10, server.output()
            time.sleep(0.02)
    assert f"Recycling worker 1 (pid {first}): it ran 1 s (max 1 s)" in server.output()
    assert server.stop() == 0


def test_max_worker_memory_recycles(serve: ServerFactory) -> None:
    server = supervise(serve, "--max-worker-memory", "64")  # a worker starts near 25 MiB
    first = worker_pid(server)
    assert httpx.get(server.url + "/alloc?mb=96", timeout=10).status_code == 200
    server.wait_output(f"Recycling worker 1 (pid {first}): it uses", 10)
    assert re.search(rf"\(pid {first}\): it uses \d+ MiB \(max 64 MiB\)", server.output())
    wait_for(lambda: not alive(first), 10, "the recycled worker to exit", server)
    assert worker_pid(server) != first
    assert server.stop() == 0


# -- the master --------------------------------------------------------------------------------------------


def test_workers_exit_when_the_master_is_killed(serve: ServerFactory) -> None:
    server = supervise(serve, "-w", "2")
    workers = wait_workers(server, 2)
    server.send_signal(signal.SIGKILL)
    server.proc.wait(5)
    wait_for(lambda: not any(alive(pid) for pid in workers), 5, "the orphaned workers to exit")


@pytest.mark.parametrize(("args", "count"), [((), 3), (("-w", "2"), 2)], ids=["env", "flag-wins"])
def test_web_concurrency(serve: ServerFactory, args: tuple[str, ...], count: int) -> None:
    server = supervise(serve, *args, env={"WEB_CONCURRENCY": "3"})
    assert f"Ready: {count} worker(s) serving" in server.output()
    assert len(wait_workers(server, count)) == count


def test_reuse_port_spreads_connections_over_the_workers(serve: ServerFactory) -> None:
    port = free_port()
    server = supervise(serve, "-w", "2", "--reuse-port", "-b", f"127.0.0.1:{port}", listen=None)
    server.port = port
    workers = wait_workers(server, 2)
    seen = {worker_pid(server) for _ in range(60)}  # a fresh connection (a new source port) each time
    assert seen == workers
    assert server.stop() == 0
