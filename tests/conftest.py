"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_process import ServerFactory
from tls_certs import TLSFiles, make_tls_files


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run a test in an empty directory with no MONOCEROS_* variables, as the command line reads both."""
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith("MONOCEROS_"):
            monkeypatch.delenv(var)
    return tmp_path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """One set of test certificates per session (see tests/tls_certs.py); treat the files as read-only."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


# -- end-to-end servers (see tests/server_process.py) -----------------------------------------------------


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start monoceros subprocesses for one test: ``serve("module:app", "--flag", ...)``; all are killed after."""
    factory = ServerFactory(tmp_path / "servers")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Like ``serve``, for module-scoped server fixtures shared by many tests."""
    factory = ServerFactory(tmp_path_factory.mktemp("servers"))
    try:
        yield factory
    finally:
        factory.close()
