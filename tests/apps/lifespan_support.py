"""The ASGI lifespan protocol as the test apps that need none of it answer it: start, stop, nothing else."""

from __future__ import annotations

from typing import Any


async def lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
