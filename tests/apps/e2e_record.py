"""How test apps tell the test what they saw: small files in ``$E2E_RECORD_DIR``.

The server runs in another process, so an app cannot hand a value back to the test directly. It writes a
record instead; the test polls for it (``ServerProcess.wait_record``). Writes are atomic (write, then
rename), so a test never reads half a record.
"""

from __future__ import annotations

import os


def record_path(name: str) -> str:
    return os.path.join(os.environ["E2E_RECORD_DIR"], name)


def record(name: str, text: str = "") -> None:
    """Write ``text`` as the record ``name``, replacing any previous one."""
    path = record_path(name)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def exists(name: str) -> bool:
    return os.path.exists(record_path(name))
