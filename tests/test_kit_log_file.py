"""aiodaemon.testing with ``log_file=`` a file of the user's: records() are this launch's."""

from __future__ import annotations

import os
from pathlib import Path

from aiodaemon.testing import launch

from .support import REPO

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"


async def test_a_log_file_shared_by_two_launches_gives_each_its_own_records(
    tmp_path: Path,
) -> None:
    """The second launch's wait_for_record("ready") is its own daemon's, not the first one's.

    The daemon appends to a log file it is given: records() once read it all,
    and the second launch found the first daemon's "ready" record at once.
    """
    log = tmp_path / "app.jsonl"
    log.write_text('{"event": "ready", "pid": 1}\nnot JSON: an older run in console format\n')
    pids = []
    for _ in range(2):
        async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}, log_file=log) as daemon:
            ready = await daemon.wait_for_record("ready")
            assert ready["pid"] == daemon.pid
            pids.append(daemon.pid)
        events = [(record["event"], record["pid"]) for record in daemon.records()]
        assert ("shutdown finished", daemon.pid) in events
        assert {pid for _, pid in events} == {daemon.pid}
    assert pids[0] != pids[1]


async def test_a_rotated_log_file_is_read_from_its_start(tmp_path: Path) -> None:
    """After the test rotates the log (rename, reload), records() reads the new file whole."""
    log = tmp_path / "app.jsonl"
    log.write_text('{"event": "ready", "pid": 1}\n' * 200)  # longer than the new file
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}, log_file=log) as daemon:
        await daemon.wait_for_record("ready")
        os.rename(log, tmp_path / "app.jsonl.1")
        await daemon.reload()  # reopens the log file, then logs "reloaded" there
        reloaded = await daemon.wait_for_record("reloaded")
        assert reloaded["pid"] == daemon.pid
        assert all(record["pid"] == daemon.pid for record in daemon.records())


async def test_a_rotated_stderr_file_is_read_from_its_start(tmp_path: Path) -> None:
    """After the test rotates a ``stderr=`` file (rename, reload), ``stderr`` has the new file.

    It once read the new file from the old one's size at the launch: past its
    end, so what the daemon wrote there was missing.
    """
    errors = tmp_path / "errors.txt"
    errors.write_text("an earlier run\n" * 300)
    async with launch(
        PROGRAM,
        listen={"echo": "127.0.0.1:0"},
        stderr=errors,
        env={"KIT_RELOAD_STDERR": "written after the rotation"},
    ) as daemon:
        await daemon.wait_for_record("ready")
        os.rename(errors, tmp_path / "errors.txt.1")
        await daemon.reload()  # reopens the stderr file, then the hook writes there
        await daemon.wait_for_record("reloaded")
        assert "written after the rotation" in daemon.stderr
    assert "written after the rotation" in daemon.stderr
    assert "an earlier run" not in daemon.stderr
