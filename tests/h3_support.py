"""An HTTP/3 client for the tests: aioquic's QUIC client with its HTTP/3 layer, over loopback UDP, with what a
test wants to look at: each stream's status, headers, body, trailers and reset code.

Tests are synchronous; :class:`H3` runs its own event loop in the calling thread (``H3.run(coro)``), so a test
reads ``with H3.connect(server, tls) as h3: answer = h3.get("/")``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

aioquic = pytest.importorskip("aioquic", reason="HTTP/3 needs aioquic (pip install 'monoceros[http3]')")

from aioquic.asyncio.client import connect  # noqa: E402
from aioquic.asyncio.protocol import QuicConnectionProtocol  # noqa: E402
from aioquic.h3.connection import H3_ALPN, H3Connection  # noqa: E402
from aioquic.h3.events import DataReceived, HeadersReceived  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset  # noqa: E402
from h2_support import Answer  # noqa: E402  # what came back on one stream: the same record as HTTP/2's

T = TypeVar("T")


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.answers: dict[int, Answer] = {}
        self.changed = asyncio.Event()
        self.terminated: ConnectionTerminated | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamReset) and event.stream_id in self.answers:
            self.answers[event.stream_id].reset = event.error_code
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
        for h3_event in self.h3.handle_event(event):
            answer = self.answers.get(getattr(h3_event, "stream_id", -1))
            if answer is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                if answer.status == 0:
                    fields = list(h3_event.headers)
                    answer.status = int(dict(fields)[b":status"])
                    answer.headers = [(n, v) for n, v in fields if not n.startswith(b":")]
                else:
                    answer.trailers = list(h3_event.headers)
                answer.ended = answer.ended or h3_event.stream_ended
            elif isinstance(h3_event, DataReceived):
                answer.body += h3_event.data
                answer.ended = answer.ended or h3_event.stream_ended
        self.changed.set()


class H3:
    """One HTTP/3 connection to the server under test, driven from synchronous test code."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: ClientProtocol, closer: Any) -> None:
        self.loop = loop
        self.protocol = protocol
        self._closer = closer
        self._made: list[Any] = []  # transports of rebind(): connect() closes only its own

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        ca: str,
        *,
        session_ticket_handler: Any = None,
        wait_connected: bool = True,
        **config: Any,
    ) -> H3:
        """``config``: QuicConfiguration's fields (server_name, session_ticket, ...). ``wait_connected=False``:
        return before the handshake completes, so that requests go out as 0-RTT data (with a session ticket)."""
        loop = asyncio.new_event_loop()
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, **config)
        configuration.load_verify_locations(ca)
        manager = connect(
            host, port, configuration=configuration, create_protocol=ClientProtocol,
            session_ticket_handler=session_ticket_handler, wait_connected=wait_connected,
        )  # fmt: skip
        protocol = loop.run_until_complete(asyncio.wait_for(manager.__aenter__(), 10))
        return cls(loop, protocol, manager)

    def __enter__(self) -> H3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.loop.run_until_complete(asyncio.wait_for(self._closer.__aexit__(None, None, None), 5))
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            for transport in self._made:
                transport.close()
            self.loop.run_until_complete(asyncio.sleep(0))  # the transports' closing callbacks
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    # -- requests ------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        *,
        end: bool = True,
        authority: str = "localhost",
    ) -> int:
        """Open a stream; ``end=False`` leaves the body open (:meth:`send` more)."""
        protocol = self.protocol
        sid = protocol._quic.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
                  (b":path", path.encode())]  # fmt: skip
        fields += [(n.lower().encode(), v.encode()) for n, v in headers or []]
        protocol.answers[sid] = Answer()
        protocol.h3.send_headers(sid, fields, end_stream=end and not body)
        if body:
            protocol.h3.send_data(sid, body, end_stream=end)
        protocol.transmit()
        return sid

    def send(self, sid: int, data: bytes, *, end: bool = False) -> None:
        self.protocol.h3.send_data(sid, data, end_stream=end)
        self.protocol.transmit()

    def reset(self, sid: int, code: int = 0x10C) -> None:
        """Cancel a request (H3_REQUEST_CANCELLED)."""
        self.protocol._quic.reset_stream(sid, code)
        self.protocol._quic.stop_stream(sid, code)
        self.protocol.transmit()

    def wait(self, sid: int, timeout: float = 10.0) -> Answer:
        """The stream's whole answer (or its reset)."""
        answer = self.protocol.answers[sid]
        self.until(lambda: answer.ended or answer.reset is not None, timeout)
        return answer

    def until(self, done: Any, timeout: float = 10.0) -> None:
        async def waiting() -> None:
            while not done() and self.protocol.terminated is None:
                self.protocol.changed.clear()
                await self.protocol.changed.wait()

        self.run(waiting(), timeout)

    def get(self, path: str, headers: list[tuple[str, str]] | None = None) -> Answer:
        return self.wait(self.request("GET", path, headers))

    def rebind(self) -> None:
        """Move to a new local port, as a client behind a NAT that rebinds (or a phone changing networks):
        the QUIC connection carries on from the new address (RFC 9000 §9), if the server still finds it."""

        async def moving() -> None:
            old = self.protocol._transport
            host = "::" if ":" in old.get_extra_info("sockname")[0] else "0.0.0.0"  # aioquic binds "::" by default
            made, _ = await self.loop.create_datagram_endpoint(lambda: self.protocol, local_addr=(host, 0))
            self._made.append(made)

        self.run(moving())

    def sleep(self, seconds: float) -> None:
        """Let the connection run (acknowledgements, the server's frames) for a while."""
        self.run(asyncio.sleep(seconds), seconds + 5)
