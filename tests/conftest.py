"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Rsyslog


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    """A running private rsyslogd."""
    directory = tmp_path / "rsyslog"
    directory.mkdir()
    server = Rsyslog(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
