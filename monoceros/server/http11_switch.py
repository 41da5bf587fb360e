"""Where an HTTP/1.1 connection stops being one: HTTP/2's preface as its first bytes, an ``Upgrade: h2c`` or
WebSocket request the protocol agreed to. The driver (http11.py) hands its transport, and what it read past
the switch, to the other protocol's driver (handover.py)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from ..protocols.events import Event
from ..protocols.headers import NO_SLOTS
from ..protocols.http2 import is_preface
from ..protocols.http11 import HTTP11Connection, HTTP11Request
from ..protocols.http11_response import SWITCHING_TO_H2C
from .deadline import NONE
from .handover import Handover, Taker, hand_over
from .state import ServerState

log = logging.getLogger("monoceros.error")


class Switching:
    """Mixed into the HTTP/1.1 driver, which holds these fields."""

    __slots__ = NO_SLOTS

    state: ServerState
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    h11: HTTP11Connection
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    scheme: str
    extensions: dict[str, Any]
    write_paused: bool
    _pending: deque[Event]
    _deadline_kind: int

    @property
    def read_paused(self) -> bool:
        raise NotImplementedError

    def _send_error(self, status: int, detail: str) -> None:
        raise NotImplementedError

    def _stop_deadline(self) -> None:
        raise NotImplementedError

    def _first_bytes(self, data: bytes) -> bool:
        """The connection's first bytes: HTTP/2's preface (prior knowledge) switches it. True when handled."""
        state = self.state
        if state.http2 is not None and is_preface(data):
            self._switch(None, data, state.http2.driver)  # cleartext HTTP/2 with prior knowledge
            return True
        if not state.http1:
            self._send_error(505, "this server speaks HTTP/2 only (--http 2)")
            return True
        return False

    def _upgrade(self, request: HTTP11Request) -> None:
        """An upgrade request the protocol agreed to, the last this connection parses: a WebSocket, or h2c."""
        state = self.state
        if request.upgrade == b"h2c" and state.http2 is not None:
            self.transport.write(SWITCHING_TO_H2C)
            self._switch(request, self.h11.upgrade_tail, state.http2.driver)
            return
        if state.ws_handler is None:
            self._deadline_kind = NONE
            self._pending.clear()
            if not state.ws_refusal_logged:
                state.ws_refusal_logged = True  # once per worker: a client may retry in a loop
                log.warning("Refusing WebSocket upgrade requests with 400: %s", state.ws_unavailable)
            self._send_error(400, state.ws_unavailable)
            return
        from .websocket import WebSocketConnection

        self._switch(request, self.h11.upgrade_tail, WebSocketConnection)

    def _switch(self, request: HTTP11Request | None, tail: bytes, make: Callable[[Handover], Taker]) -> None:
        """Hand the connection over to another protocol's driver, with what HTTP/1.1 read past the switch."""
        self._pending.clear()
        handover = Handover(
            self.state, self.loop, self.transport, request, tail, self.client, self.server,
            self.scheme, self.extensions, self.read_paused, self.write_paused, self.h11,
        )  # fmt: skip
        self.h11.release()
        self.state.connections.discard(self)
        self._stop_deadline()
        hand_over(handover, make)
