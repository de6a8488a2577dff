"""A launcher holding over 1,024 descriptors: its readiness pipe lies above select's reach."""

from __future__ import annotations

import json
from pathlib import Path

from .support import is_alive, pids_with, program, python, read_json_lines, wait_for

#: Descriptors the program holds when it calls run(): the readiness pipe and the
#: pidfds the launcher waits on get numbers above 1,024 (select's FD_SETSIZE).
_LIMIT, _LEFT = 2048, 800


def _start(tmp_path: Path, **extra: object) -> tuple[int, str]:
    """Start a detached daemon from a program holding ~1,250 descriptors; its launcher's verdict."""
    options = {
        "detach": True,
        "pidfile": str(tmp_path / "d.pid"),
        "log_file": str(tmp_path / "log"),
        **extra,
    }
    result = python([program("fds_exhausted"), json.dumps(options), str(_LEFT), str(_LIMIT)])
    return result.returncode, result.stderr


def test_a_launcher_with_many_descriptors_waits_for_ready(tmp_path: Path) -> None:
    """The launcher exits 0 once the daemon is ready, not 1 without a word while it starts."""
    code, stderr = _start(tmp_path)
    assert (code, stderr) == (0, "")
    log = tmp_path / "log"
    wait_for(lambda: "ready" in [r["event"] for r in read_json_lines(log)], what="ready")


def test_a_launcher_with_many_descriptors_reports_a_failed_start(tmp_path: Path) -> None:
    """A start that times out is stopped and named on stderr, exit 1, no daemon left."""
    code, stderr = _start(tmp_path, start_timeout=1e-6)
    assert (code, stderr) == (1, "aiodaemon: not ready after 0.000001 s\n")
    assert [pid for pid in pids_with(str(tmp_path / "d.pid")) if is_alive(pid)] == []
    assert not (tmp_path / "d.pid").exists()
