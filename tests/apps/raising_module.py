"""An app module whose import fails in the user's own code; the server must show this traceback."""

from __future__ import annotations


def connect_to_database() -> None:
    raise RuntimeError("e2e import-time failure: no database configured")


connect_to_database()


async def app(scope: object, receive: object, send: object) -> None:  # never reached
    pass
