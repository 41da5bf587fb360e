"""The HTTP/1.1 state machine's decisions, without sockets: pipelining, 100-continue, when the connection
closes, error responses, and the transition table.

A small player here does the asyncio driver's part (answer requests in order, read a body or answer
first), so that every cut of the same bytes can be tried against the protocol alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_http11_protocol import split_at

from monoceros.config import Config
from monoceros.protocols.events import Body, EndBody, Event, ProtocolError
from monoceros.protocols.http11 import TRANSITIONS, HTTP11Connection, HTTP11Request, Limits, State

_DEFAULTS = Config()
LIMITS = Limits(
    _DEFAULTS.limit_request_line,
    _DEFAULTS.limit_request_field_size,
    _DEFAULTS.limit_request_fields,
    _DEFAULTS.limit_request_headers_size,
    0,
)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
SEEN: set[tuple[str, State, State]] = set()  # every transition any test here made


class Recording(HTTP11Connection):
    """The protocol, recording each state change, so that the tests hold the code to TRANSITIONS."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("request_state", "response_state"):
            old = getattr(self, name, None)
            if old is not None and old is not value:
                SEEN.add((name.partition("_")[0], old, value))
                assert (old, value) in TRANSITIONS[name.partition("_")[0]], f"{name}: {old!r} -> {value!r}"
        super().__setattr__(name, value)


@dataclass
class Player:
    """Plays the server's side as the driver and an app do: one request at a time, in order. ``read_first``:
    the app reads the body before it answers (else it answers as soon as the head is in)."""

    conn: HTTP11Connection
    read_first: bool = True
    out: bytearray = field(default_factory=bytearray)
    pending: deque[Event] = field(default_factory=deque)
    current: HTTP11Request | None = None
    body_done: bool = False
    answered: bool = False
    bodies: list[bytes] = field(default_factory=list)
    closed: bool = False

    def receive(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self.pending.extend(self.conn.events)
        self.conn.events.clear()
        self.run()

    def run(self) -> None:
        while not self.closed:
            if self.current is not None and self.answered and self.body_done:
                self.current = None
                if self.conn.response_state is not State.DONE:
                    self.closed = True  # the driver closes here
                    return
            if not self.pending:
                return
            event = self.pending[0]
            if isinstance(event, HTTP11Request):
                if self.current is not None:
                    return  # answers go in order: this one waits
                self.pending.popleft()
                self.current, self.body_done, self.answered = event, False, False
                self.bodies.append(b"")
                if self.read_first:
                    self.out += self.conn.continue_response(event)  # the app asks for the body
                else:
                    self.answer()
            elif isinstance(event, Body):
                self.pending.popleft()
                self.bodies[-1] += event.data
            else:
                assert isinstance(event, EndBody)
                self.pending.popleft()
                self.body_done = True
                if not self.answered:
                    self.answer()
                elif self.conn.response_state is not State.DONE:
                    self.closed = True

    def answer(self) -> None:
        assert self.current is not None
        body = b"%d:%s" % (len(self.bodies), self.current.target)
        conn = self.conn
        self.out += conn.response_head(self.current, 200, [(b"content-length", b"%d" % len(body))])
        self.out += conn.response_body(body) + conn.response_end()
        self.answered = True
        if conn.response_state is not State.DONE and not self.body_done:
            self.closed = True  # the body is never read: the driver closes now


REQUESTS = [
    b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: x\r\n\r\n",
    b"GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
]


@settings(max_examples=200, deadline=None)
@given(
    order=st.lists(st.integers(0, len(REQUESTS) - 1), min_size=1, max_size=5),
    cuts=st.lists(st.integers(0, 1000), max_size=8),
    read_first=st.booleans(),
)
def test_pipelined_requests_are_answered_in_order_whatever_the_cuts(
    order: list[int], cuts: list[int], read_first: bool
) -> None:
    # An app that answers an Expect request before its body is in closes the connection (tested below).
    assume(read_first or 4 not in order)
    raw = b"".join(REQUESTS[i] for i in order)
    player = Player(Recording(LIMITS), read_first=read_first)
    for piece in split_at(raw, cuts):
        player.receive(piece)
    targets = [REQUESTS[i].split(b" ")[1] for i in order]
    # Every request is answered once, in order, and a request's 100 Continue (if any) comes just before its
    # own answer: a client that sent its body anyway may or may not get one, never two.
    answers = player.out.replace(CONTINUE, b"")
    expected = b"".join(
        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%d:%s"
        % (len(b"%d:%s" % (n, t)), b"connection: keep-alive\r\n" if b"1.0" in REQUESTS[i] else b"", n, t)
        for n, (i, t) in enumerate(zip(order, targets, strict=True), 1)
    )
    assert answers == expected
    assert player.out.count(CONTINUE) <= order.count(4)
    assert not player.closed and player.current is None
    assert player.conn.response_state is State.DONE and player.conn.request_state is State.DONE
    assert player.bodies == [{1: b"hello", 2: b"abc", 4: b"ok"}.get(i, b"") for i in order]


EXPECT_HEAD = b"PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, 10), max_size=4))
def test_100_continue_goes_once_when_the_app_reads_first(cuts: list[int]) -> None:
    player = Player(Recording(LIMITS), read_first=True)
    player.receive(EXPECT_HEAD)
    assert player.out == CONTINUE  # the app asked for the body, which the client holds back
    assert player.current is not None and player.conn.continue_response(player.current) == b""  # only once
    for piece in split_at(b"0123456789", cuts):
        player.receive(piece)
    assert player.bodies == [b"0123456789"]
    assert b"connection: close" not in player.out and player.conn.response_state is State.DONE


@pytest.mark.parametrize("body_part", [b"", b"0123"])
def test_a_final_answer_before_100_continue_closes_the_connection(body_part: bytes) -> None:
    """The client waits for 100 Continue (or is still sending what it did not wait to send): a final answer
    first means the body is never read, so the head says close and the connection ends after it."""
    player = Player(Recording(LIMITS), read_first=False)
    player.receive(EXPECT_HEAD + body_part)
    assert player.out.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close\r\n" in player.out
    assert player.closed and player.conn.response_state is State.MUST_CLOSE
    request = player.current
    assert request is not None and player.conn.continue_response(request) == b""  # too late to invite the body


def test_a_client_that_does_not_wait_gets_no_100_continue() -> None:
    player = Player(Recording(LIMITS), read_first=True)
    player.receive(EXPECT_HEAD + b"0123456789")  # the body came at once, so nothing is held back
    assert CONTINUE not in player.out
    assert player.conn.response_state is State.DONE and b"connection: close" not in player.out


def respond(
    conn: HTTP11Connection, request: HTTP11Request, *, close: bool = False, length: bytes = b"2", body: bytes = b"ok"
) -> bytes:
    head = conn.response_head(request, 200, [(b"content-length", length)], close=close)
    return head + conn.response_body(body) + conn.response_end()


def first_request(conn: HTTP11Connection, raw: bytes) -> HTTP11Request:
    conn.receive_data(raw)
    request = conn.events[0]
    assert isinstance(request, HTTP11Request)
    conn.events.clear()
    return request


GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "persistent", "close", "length", "body", "closes"),
    [
        (GET, True, False, b"2", b"ok", False),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", True, False, b"2", b"ok", True),
        (b"GET / HTTP/1.0\r\n\r\n", True, False, b"2", b"ok", True),  # 1.0 without keep-alive
        (GET, True, True, b"2", b"ok", True),  # the app (or the WSGI adapter) says close
        (GET, False, False, b"2", b"ok", True),  # keep-alive is off (--keep-alive 0)
        (GET, True, False, b"5", b"ok", True),  # shorter than its Content-Length
    ],
)
def test_close_decisions(raw: bytes, persistent: bool, close: bool, length: bytes, body: bytes, closes: bool) -> None:
    conn = Recording(LIMITS, persistent=persistent)
    out = respond(conn, first_request(conn, raw), close=close, length=length, body=body)
    assert conn.response_state is (State.MUST_CLOSE if closes else State.DONE)
    if length == b"2":  # a short body's head was written before anyone knew
        assert (b"connection: close\r\n" in out) is closes


def test_close_after_response_ends_the_response_in_progress_or_the_next() -> None:
    conn = Recording(LIMITS)
    request = first_request(conn, GET)
    head = conn.response_head(request, 200, [(b"content-length", b"2")])
    assert b"connection: close" not in head
    conn.close_after_response()  # the server stops while this response is under way
    conn.response_body(b"ok")
    conn.response_end()
    assert conn.response_state is State.MUST_CLOSE
    conn = Recording(LIMITS)
    request = first_request(conn, GET)
    conn.close_after_response()  # before the head: the head says so
    assert b"connection: close\r\n" in respond(conn, request)
    assert conn.response_state is State.MUST_CLOSE


def test_a_second_head_while_a_response_is_under_way_is_refused() -> None:
    conn = Recording(LIMITS)
    request = first_request(conn, GET)
    assert conn.response_head(request, 103, [(b"link", b"</s.css>")]).startswith(b"HTTP/1.1 103")
    assert conn.response_state is State.IDLE  # an interim response is not the answer
    conn.response_head(request, 200, [])
    with pytest.raises(RuntimeError):
        conn.response_head(request, 200, [])
    with pytest.raises(RuntimeError):
        conn.error_response(500, "late")


def test_the_error_response_goes_through_the_head_writer() -> None:
    conn = Recording(LIMITS)
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert conn.request_state is State.ERROR
    conn.receive_data(GET)  # nothing more is read
    assert conn.events == [] or all(not isinstance(e, HTTP11Request) for e in conn.events)
    out = conn.error_response(info.value.status, str(info.value), b"server: monoceros\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 400 Bad Request",
        b"content-type: text/plain; charset=utf-8",
        b"content-length: %d" % len(body),
        b"server: monoceros",
        b"connection: close",
    ]
    assert body == b"missing or repeated Host header\n"
    assert conn.response_state is State.MUST_CLOSE
    assert Recording(LIMITS).error_response(408, "").endswith(b"\r\n\r\nRequest Timeout\n")


def test_eof_and_release() -> None:
    conn = Recording(LIMITS)
    conn.receive_eof()
    assert conn.request_state is State.MUST_CLOSE
    conn = Recording(LIMITS)
    first_request(conn, GET)
    conn.receive_eof()  # between requests: a clean close
    assert conn.request_state is State.MUST_CLOSE
    conn = Recording(LIMITS)
    first_request(conn, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab")
    assert conn.request_in_progress
    with pytest.raises(ProtocolError):
        conn.receive_eof()
    assert conn.request_state is State.ERROR
    conn = Recording(LIMITS)
    conn.receive_data(b"GET / HT")
    assert conn.request_state is State.RECEIVING_HEAD
    conn.release()
    assert conn.request_state is State.MUST_CLOSE


def test_a_websocket_upgrade_switches_the_request_side() -> None:
    conn = Recording(LIMITS)
    conn.receive_data(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81"
    )
    assert conn.request_state is State.SWITCHED and conn.upgrade_tail == b"\x81"


def test_every_transition_in_the_table_is_reached() -> None:
    """The table holds no transition the code never makes (Recording checks that the code makes none outside
    it): every transition, reached from scenarios of the tests above and a few rarer ones."""
    SEEN.clear()
    player = Player(Recording(LIMITS))
    player.receive(b"".join(REQUESTS) + EXPECT_HEAD)  # pipelined, ending in a client waiting for 100 Continue
    player.receive(b"0123456789")
    test_a_final_answer_before_100_continue_closes_the_connection(b"")
    test_close_decisions(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", True, False, b"2", b"ok", True)
    test_eof_and_release()
    test_a_websocket_upgrade_switches_the_request_side()
    conn = Recording(LIMITS)
    with pytest.raises(ProtocolError):
        conn.receive_data(b"G\x00T / HTTP/1.1\r\n")  # RECEIVING_HEAD -> ERROR
    conn = Recording(LIMITS)
    first_request(conn, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n")
    conn.release()  # RECEIVING_BODY -> ERROR: the connection ended inside a body
    conn = Recording(LIMITS)
    respond(conn, first_request(conn, GET))
    conn.receive_eof()  # DONE -> MUST_CLOSE
    conn.error_response(408, "")  # response side DONE -> MUST_CLOSE
    conn = Recording(LIMITS)
    conn.error_response(503, "")  # response side IDLE -> MUST_CLOSE
    conn = Recording(LIMITS)
    conn.receive_data(b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    assert conn.request_state is State.SWITCHED  # MUST_CLOSE -> SWITCHED: HTTP/1.0 keeps nothing alive
    for side, pairs in TRANSITIONS.items():
        reached = {(old, new) for s, old, new in SEEN if s == side}
        assert reached == pairs, f"{side}: never reached {sorted(pairs - reached)}"
