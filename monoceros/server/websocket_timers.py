"""A WebSocket's timers beside the close handshake's: the keepalive ping, and the deadline of a fragmented
message (a client that starts one and never finishes it holds its fragments, up to --ws-max-size, forever)."""

from __future__ import annotations

import asyncio

from ..protocols.websocket import WebSocketProtocol


class WebSocketTimers:
    """Mixed into server/websocket.py's connection, which sets these fields."""

    loop: asyncio.AbstractEventLoop
    lost: bool
    ws: WebSocketProtocol
    _ping_interval: float
    _ping_timeout: float
    _ping_timer: asyncio.TimerHandle | None
    _message_timeout: float
    _message_timer: asyncio.TimerHandle | None

    def _flush(self) -> None:
        raise NotImplementedError

    def _fail(self, code: int, reason: str) -> None:
        raise NotImplementedError

    # -- keepalive ---------------------------------------------------------------------------------------

    def _ping(self) -> None:
        self._ping_timer = None
        if self.lost or not self.ws.open:
            return
        self.ws.send_ping()
        self._flush()
        self._ping_timer = self.loop.call_later(self._ping_timeout, self._on_ping_timeout)

    def _on_pong(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._ping_timer = self.loop.call_later(self._ping_interval, self._ping)

    def _on_ping_timeout(self) -> None:
        self._ping_timer = None
        if self.lost or not self.ws.open:
            return
        self._fail(1011, "keepalive ping timeout")

    # -- a fragmented message's deadline -----------------------------------------------------------------

    def _watch_fragments(self) -> None:
        """After each read: a fragmented message in progress has --ws-message-timeout to end, from its first
        fragment; a whole one ends the watch."""
        timer = self._message_timer
        if self.ws.message_in_progress:
            if timer is None and self._message_timeout > 0:
                self._message_timer = self.loop.call_later(self._message_timeout, self._on_message_timeout)
        elif timer is not None:
            timer.cancel()
            self._message_timer = None

    def _on_message_timeout(self) -> None:
        self._message_timer = None
        if self.lost or not self.ws.open:
            return
        self._fail(1008, "a fragmented message did not end in time")
