"""Instructions per request, counted by valgrind: python bench/icount.py [KIND ...] (see micro.py).

bench/micro.py times monoceros's own code per request, but on a shared machine a 2 % change drowns in
noise. callgrind counts instructions instead, which repeat to 0.1 % whatever else the machine is doing.
Each kind runs micro.py's loop twice under callgrind, with N and 3N requests; the difference divided by 2N
is the cost of one request, without the interpreter's start-up and imports. Needs valgrind (apt-get
install -y valgrind). It asserts nothing; it prints.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

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


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    kinds = sys.argv[1:] or ["asgi", "wsgi-inline"]
    for kind in kinds:
        n = N // 5 if kind in ("wsgi", "wsgi-close") else N
        per_request = (instructions(kind, 3 * n) - instructions(kind, n)) / (2 * n)
        print(f"{kind:12s} {per_request:10,.0f} instructions/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
