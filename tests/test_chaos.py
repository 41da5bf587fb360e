"""scripts/chaos for ten seconds: four workers under keep-alive load while HUP, TTIN, TTOU, USR1 and a SIGKILL of
a random worker each happen once (its first five events are the five kinds), then SIGTERM under the load. The
script checks everything itself (its exit status says whether every check held); the test also reads its JSON
report for a few figures, so that a script that checked nothing could not pass.

And the supervisor bug the chaos led to: a USR1 (logrotate) that reached a worker while it was booting killed
it, as the signal's default action, before its event loop had a handler (in one process too).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from server_process import ServerFactory
from supervisor_support import children, wait_for, worker_pid

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "chaos"
KINDS = {"HUP", "TTIN", "TTOU", "USR1", "KILL"}


def test_chaos_for_ten_seconds(tmp_path: Path) -> None:
    report_file = tmp_path / "chaos.json"
    command = [
        sys.executable, str(SCRIPT), "--seconds", "10", "--every", "2", "--workers", "4", "--connections", "16",
        "--seed", "1", "--python", sys.executable, "--logs", str(tmp_path / "logs"), "--json", str(report_file),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    print(f"\n{done.stdout}{done.stderr}(in {time.monotonic() - started:.1f} s)")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    report = json.loads(report_file.read_text())
    assert report["ok"], done.stdout

    assert len(report["checks"]) >= 10
    assert [e["kind"] for e in report["events"]].count("KILL") == 1
    assert set(report["signals"]) == KINDS, report["signals"]  # each kind once
    assert len(report["events"]) == 5  # at 1, 3, 5, 7 and 9 s
    assert report["requests"] > 1000, report["requests"]
    kill = report["kills"][0]
    assert kill["logged"] and "in_flight" in kill, kill  # the master logged what the killed worker was serving
    assert kill["failed"] <= kill["bound"] <= 16
    assert report["workers"]["seen"] == report["workers"]["expected"]
    term = report["term"]
    assert term["in_flight"] > 0 and term["outcomes"] == {"answered": term["in_flight"]}, term
    assert term["exit_code"] == 0
    assert "at its last heartbeat" in "".join(p.read_text() for p in (tmp_path / "logs").glob("error.log*"))
    assert report["five_xx"] == 0 and report["other_status"] == 0
    assert report["failures"]["before_term"] == kill["failed"]


@pytest.mark.parametrize("model", ["one process", "supervisor"])
def test_usr1_while_booting_reopens_the_logs_later_instead_of_killing(serve: ServerFactory, model: str) -> None:
    """logrotate's USR1 reaches a server whose workers are still importing the app (before their event loop
    has a handler for it): they must come up and reopen the logs then, not die of the signal's default action.
    Under a master the USR1 goes to the master, which passes it on to the booting workers."""
    args = ("-w", "2", "--supervisor") if model == "supervisor" else ()
    server = serve("slow_boot_app:app", *args, new_session=True, wait=False)
    count = 2 if args else 1
    # Every booting process is inside the import's second of sleep.
    wait_for(lambda: len(list(server.record_dir.glob("importing-*"))) >= count, 10, "the import", server)
    booting = {int(path.name.rsplit("-", 1)[1]) for path in server.record_dir.glob("importing-*")}
    server.send_signal(signal.SIGUSR1)
    server.wait_output("Ready: " if args else "Serving ", 10)
    wait_for(lambda: server.output().count("reopening log files (it came while") == count, 5, "the reopen")
    out = server.output()
    assert "killed by SIGUSR1" not in out and "died while booting" not in out, out
    if args:
        assert children(server.pid) == booting  # the workers that were booting are the ones serving
    else:
        assert booting == {server.pid}
    assert worker_pid(server) in booting
    assert server.stop() == 0
