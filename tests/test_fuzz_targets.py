"""The fuzz targets (fuzz/targets.py), briefly, in the suite: their seeds and the shared HTTP/1.x corpus, a few
hundred generated inputs each, and the two inputs the WebSocket path must survive by construction: a deflate
bomb (a message that inflates far past --ws-max-size) and a flood of fragments. scripts/fuzz runs them for
minutes, coverage-guided."""

from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.targets import TARGETS, WS_MAX, deflate_bomb, pieces
from monoceros.protocols.http11 import HTTP11Connection
from monoceros.protocols.websocket import WebSocketProtocol

SHARED = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "gunicorn-requests"


def test_pieces_cut_the_input_after_its_first_byte() -> None:
    data = bytes([5]) + bytes(range(50))
    cut = pieces(data)
    assert b"".join(cut) == data[1:] and len(cut) >= 2
    assert pieces(b"") == [] and pieces(b"\x00abc") == [b"abc"]


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=2048))
def test_targets_hold_their_contract_on_generated_inputs(name: str, data: bytes) -> None:
    TARGETS[name](data)


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/conformance beside the repo")
def test_http11_target_on_the_shared_corpus_in_every_cut() -> None:
    for case in sorted(SHARED.rglob("*.http"))[:300]:
        raw = case.read_bytes()
        for seed in (0, 3, 7):
            TARGETS["http11"](bytes([seed]) + raw)


def _opened() -> WebSocketProtocol:
    from fuzz.targets import _HANDSHAKE, LIMITS

    conn = HTTP11Connection(LIMITS)
    conn.receive_data(_HANDSHAKE)
    assert conn.upgrade_request is not None
    ws = WebSocketProtocol(WS_MAX, True, logging.getLogger("test"), date_header=False)
    assert ws.handshake(conn.upgrade_request) is None
    ws.accept(None, [])
    return ws


def test_a_deflate_bomb_closes_with_1009_without_inflating_it() -> None:
    bomb = deflate_bomb(256 << 20)  # 256 MiB of zeros in about 256 KiB on the wire
    assert len(bomb) < 1 << 20
    ws = _opened()
    tracemalloc.start()
    try:
        ws.receive_data(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ws.closed is not None and ws.closed.code == 1009, ws.closed
    assert not ws.messages
    assert peak < 16 << 20, f"{peak / 2**20:.1f} MiB held while refusing it"


def test_a_flood_of_fragments_closes_with_1009() -> None:
    ws = _opened()
    mask = b"\x01\x02\x03\x04"
    chunk = bytes(b ^ mask[i % 4] for i, b in enumerate(b"x" * 1000))
    frames = [b"\x02" + bytes([0x80 | 126]) + (1000).to_bytes(2, "big") + mask + chunk]
    frames += [b"\x00" + bytes([0x80 | 126]) + (1000).to_bytes(2, "big") + mask + chunk] * 200  # continuations
    for frame in frames:
        ws.receive_data(frame)
        if ws.closed is not None:
            break
    assert ws.closed is not None and ws.closed.code == 1009, ws.closed
    assert not ws.messages
