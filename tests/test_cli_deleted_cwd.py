"""``aiodaemon start`` from a directory that no longer exists (a deploy removed it).

A shell left in an old release directory has a working directory that is
gone: TARGET cannot be imported from there, but an installed one (or one on
``PYTHONPATH``) still can, and a missing one is one line, exit 2.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .support import AIODAEMON, REPO, clean_env, install_program, read_pid, wait_gone


def _from_deleted_directory(
    tmp_path: Path, *args: str | Path, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` started in a directory removed before it runs."""
    gone = tmp_path / "release-1"
    gone.mkdir()
    path = [str(REPO)] if pythonpath is None else [str(pythonpath), str(REPO)]
    return subprocess.run(
        ["sh", "-c", 'cd "$1" && rmdir "$1" && shift && exec "$@"', "sh", gone, AIODAEMON, *args],
        env=clean_env({"PYTHONPATH": os.pathsep.join(path)}),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_an_importable_target_starts_from_a_deleted_directory(tmp_path: Path) -> None:
    """TARGET on PYTHONPATH starts (no traceback from getcwd); stop works as ever."""
    program = tmp_path / "program"
    program.mkdir()
    install_program("cli_app", program)
    pidfile = tmp_path / "app.pid"
    started = _from_deleted_directory(
        tmp_path, "start", "app:main", "--pidfile", pidfile, "--log-file", tmp_path / "log",
        pythonpath=program,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    assert read_pid(pidfile) == pid
    assert (program / "started").read_text(encoding="utf-8") == str(pid)
    stopped = subprocess.run(
        [AIODAEMON, "stop", "--pidfile", pidfile],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(pid)


def test_a_target_missing_from_a_deleted_directory_is_one_line(tmp_path: Path) -> None:
    """A TARGET found nowhere: one line saying the directory is gone, exit 2, nothing started."""
    pidfile = tmp_path / "app.pid"
    started = _from_deleted_directory(tmp_path, "start", "app:main", "--pidfile", pidfile)
    assert started.returncode == 2
    assert started.stderr.splitlines() == [
        "aiodaemon: no module named 'app' (in sys.path; the current directory no longer exists)"
    ]
    assert not pidfile.exists()
