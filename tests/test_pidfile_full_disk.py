"""A pidfile on a full file system: the start fails in one line naming the option and the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import program, python
from .test_logging_faults import fill, tiny_disk

__all__ = ["tiny_disk"]  # the fixture, used by name below


@pytest.mark.root
def test_a_pidfile_that_cannot_be_written_names_itself(tmp_path: Path, tiny_disk: Path) -> None:
    """ENOSPC writing the pid: `pidfile: cannot write pidfile PATH: No space left on device`."""
    fill(tiny_disk / "filler")
    pidfile = tiny_disk / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "log")}
    result = python([program("idle"), json.dumps(options)])
    assert result.returncode == 1
    assert result.stderr == (
        f"aiodaemon: cannot write pidfile {pidfile}: No space left on device\n"
    )
    assert not pidfile.exists()
