"""An app module that kills its own process while it is imported, as a segfaulting C extension or the OOM
killer would: the worker dies by a signal before it is ever ready, with no exit code to explain it."""

from __future__ import annotations

import os
import signal

os.kill(os.getpid(), signal.SIGKILL)


async def app(scope: object, receive: object, send: object) -> None:  # never reached
    pass
