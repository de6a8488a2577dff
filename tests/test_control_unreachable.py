"""A --control path nothing can be at, given for a running daemon: no control socket there.

As for a missing file, the commands go by the pidfile's lock holder and fall
back to signals (a file for a directory, a symlink loop, a name too long: lstat
fails with ENOTDIR, ELOOP, ENAMETOOLONG rather than ENOENT).
"""

from __future__ import annotations

from pathlib import Path

from .support import aiodaemon_cli, install_program, kill_quietly, wait_gone
from .test_fuzz_commands import unreachable_paths


def test_a_control_path_nothing_can_be_at_is_absent_for_a_running_daemon(tmp_path: Path) -> None:
    """status: running (0); reload: SIGHUP, result unknown (0); as for a path with no file."""
    install_program("forever", tmp_path)
    pidfile = tmp_path / "app.pid"
    started = aiodaemon_cli("start", "app:main", "--pidfile", pidfile, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    try:
        for control in [str(tmp_path / "missing.ctl"), *unreachable_paths(tmp_path)]:
            status = aiodaemon_cli("status", "--pidfile", pidfile, "--control", control)
            assert status.returncode == 0, (control[:80], status.stdout, status.stderr)
            assert status.stdout.startswith(f"running (pid {pid}"), status.stdout
            reload = aiodaemon_cli("reload", "--pidfile", pidfile, "--control", control)
            assert reload.returncode == 0, (control[:80], reload.stderr)
            assert reload.stderr.startswith(f"aiodaemon: reload requested (pid {pid}, SIGHUP)")
    finally:
        stop = aiodaemon_cli("stop", "--pidfile", pidfile)
        kill_quietly(pid)
    assert stop.returncode == 0, stop.stderr
    wait_gone(pid)
