"""The CLI with a stdout that cannot be written (`> /dev/full`, a hung-up terminal).

Before, `start` ended with status 1 and not a word while its daemon ran on (the
printing of the pid failed in the launcher), and `status` with an OSError
traceback (audit-jobctl).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    kill_quietly,
    read_pid,
)


def into_full_device(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` with stdout on /dev/full (every write fails with ENOSPC)."""
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [str(AIODAEMON), *map(str, args)],
            stdout=full,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=cwd,
            env=clean_env(),
            timeout=45,
            check=False,
        )


def test_start_and_status_into_a_full_device_keep_their_status_and_say_why(
    tmp_path: Path,
) -> None:
    """`start > /dev/full`: exit 0, the daemon runs, one line says the pid was not written."""
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    started = into_full_device(
        "start", "app:main", "--pidfile", pidfile, "--log-file", tmp_path / "log", cwd=tmp_path
    )
    pid = read_pid(pidfile)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stderr == "aiodaemon: cannot write to stdout: No space left on device\n"
        assert is_alive(pid)
        for extra in ((), ("--json",)):
            status = into_full_device("status", "--pidfile", pidfile, *extra, cwd=tmp_path)
            assert status.returncode == 0
            assert status.stderr == "aiodaemon: cannot write to stdout: No space left on device\n"
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile, cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stderr
    finally:
        kill_quietly(pid)
