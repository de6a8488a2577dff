"""Detaching as PID 1 of a pid namespace is refused: the daemon would die with its launcher."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .support import PROGRAMS, PYTHON, clean_env, require_tool


def test_start_as_pid1_is_refused_with_the_way_to_run_it(tmp_path: Path) -> None:
    """`aiodaemon start` as a container's entrypoint: exit 1, one line naming `aiodaemon run`."""
    pidfile = tmp_path / "d.pid"
    namespace = [require_tool("unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"]
    result = subprocess.run(
        [*namespace, PYTHON, "-m", "aiodaemon", "start", "cli_app:main", "--pidfile", str(pidfile)],
        cwd=PROGRAMS,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "aiodaemon: cannot detach as PID 1 (a container's entrypoint): the daemon"
        " would be killed when this process exits; run it in the foreground (aiodaemon run)\n"
    )
    assert not pidfile.exists()
