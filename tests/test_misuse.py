"""Common mistakes get one clear line and a usage exit status, without noise."""

from __future__ import annotations

from tests.support import REPO, python

PROGRAMS = REPO / "tests" / "programs"


def test_run_inside_a_running_loop_says_to_call_it_at_the_top_level() -> None:
    """run() under asyncio.run(): one line, exit 2, no traceback or never-awaited warning."""
    result = python([PROGRAMS / "run_in_loop.py"], env={"PYTHONWARNINGS": "always"})
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: ")
    assert "running event loop" in line
    assert "top level" in line
