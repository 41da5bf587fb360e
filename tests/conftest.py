"""Shared fixtures."""

from __future__ import annotations

import pytest
from tls_certs import TLSFiles, make_tls_files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """One set of test certificates per session (see tests/tls_certs.py); treat the files as read-only."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
