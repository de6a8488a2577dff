"""Detaching as PID 1 of a pid namespace is refused: the daemon would die with its launcher."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .support import PROGRAMS, PYTHON, clean_env, require_tool

pytestmark = pytest.mark.root  # a PID namespace of its own (unshare --pid)


def _as_pid1(*command: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as PID 1 of a pid namespace of its own, from the test programs' directory."""
    namespace = [require_tool("unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"]
    return subprocess.run(
        [*namespace, *map(str, command)],
        cwd=PROGRAMS,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_start_as_pid1_is_refused_with_the_way_to_run_it(tmp_path: Path) -> None:
    """`aiodaemon start` as a container's entrypoint: exit 1, one line naming `aiodaemon run`."""
    pidfile = tmp_path / "d.pid"
    result = _as_pid1(PYTHON, "-m", "aiodaemon", "start", "cli_app:main", "--pidfile", pidfile)
    assert result.returncode == 1
    assert result.stderr == (
        "aiodaemon: cannot detach as PID 1 (a container's entrypoint): the daemon"
        " would be killed when this process exits; run it in the foreground (aiodaemon run)\n"
    )
    assert not pidfile.exists()


def test_pep3143_open_with_detach_as_pid1_raises(tmp_path: Path) -> None:
    """DaemonContext(detach_process=True).open() as PID 1: DaemonProcessDetachError, no fork."""
    result = _as_pid1(PYTHON, PROGRAMS / "pep3143_pid1.py", "true", tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "DaemonProcessDetachError: cannot detach as PID 1 (a container's entrypoint):"
        " the daemon would be killed when this process exits; run it in the foreground"
        " (detach_process=False)\n"
    )
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "d.pid").exists()


def test_pep3143_default_detach_as_pid1_stays_in_the_foreground(tmp_path: Path) -> None:
    """detach_process=None as PID 1: the body runs in PID 1 itself, and exits 0."""
    result = _as_pid1(PYTHON, PROGRAMS / "pep3143_pid1.py", "none", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ran").read_text() == "ran False as pid 1\n"
    assert not (tmp_path / "d.pid").exists()
