"""chaos_apps' ASGI app behind an import that takes a second: a process importing it is booting for that long,
and says so (the record ``importing-PID``), so that a test can send a signal to a server while it boots."""

from __future__ import annotations

import os
import time

from chaos_apps import app
from e2e_record import record

__all__ = ["app"]

record(f"importing-{os.getpid()}")
time.sleep(1.0)
