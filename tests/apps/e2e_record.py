"""How test apps tell the test what they saw: small files in ``$E2E_RECORD_DIR``.

The server runs in another process, so an app cannot hand a value back to the test directly. It writes a
record instead; the test polls for it (``ServerProcess.wait_record``). Writes are atomic (write, then
rename), so a test never reads half a record.
"""

from __future__ import annotations

import os
from typing import Any


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


def jsonable(value: Any) -> Any:
    """What the apps put in a scope, as JSON can carry it (bytes as latin-1)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
