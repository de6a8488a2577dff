"""``aiodaemon start --user U`` with its files where only root may look, then ``upgrade``.

The successor runs as the daemon's user from the start, and inherits the log
file, the ``--stdout``/``--stderr`` files and the pidfile open: their
directories may be closed to that user (``/var/log``, a root-only ``/run``),
as they are to a daemon started with ``run()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .security_support import User, arena, own_dir, service_account, shared_python_as, stop_daemon
from .support import is_alive, program, read_json_lines, read_pid, wait_for, wait_gone

pytestmark = pytest.mark.root

__all__ = ["arena", "service_account"]  # fixtures, re-exported for pytest


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m aiodaemon ARGS`` as root, with a Python the service account may run too."""
    return shared_python_as(None, "-m", "aiodaemon", *args, cwd=cwd)


@pytest.mark.parametrize("where", ["log_file", "stdout", "stderr", "pidfile"])
def test_a_dropped_cli_daemon_upgrades_with_a_file_in_a_root_only_directory(
    arena: Path, service_account: User, where: str
) -> None:
    """The successor adopts the inherited file, not refused by a path check as that user."""
    app = arena / "app"
    app.mkdir(mode=0o755)
    shutil.copyfile(program("cli_app"), app / "app.py")
    # cli_app records its starts next to itself, as the daemon's user.
    os.chown(app, service_account.uid, service_account.gid)
    closed = arena / "closed"
    closed.mkdir(mode=0o700)
    run = own_dir(arena / "run", service_account)
    files = {
        "log_file": run / "app.jsonl",
        "stdout": run / "app.out",
        "stderr": run / "app.err",
        "pidfile": run / "app.pid",
    }
    files[where] = closed / files[where].name
    pidfile = files["pidfile"]
    flags = [f"--{name.replace('_', '-')}={path}" for name, path in files.items()]
    started = _cli("start", "app:main", *flags, f"--user={service_account.name}", cwd=app)
    assert started.returncode == 0, started.stderr
    old = int(started.stdout)
    try:
        upgraded = _cli("upgrade", "--pidfile", pidfile, cwd=app)
        assert upgraded.returncode == 0, upgraded.stderr
        new = int(upgraded.stdout)
        wait_gone(old, 30)
        assert read_pid(pidfile) == new
        ready = [r["pid"] for r in read_json_lines(files["log_file"]) if r["event"] == "ready"]
        assert ready == [old, new]
    finally:
        stop_daemon(read_pid(pidfile))


def test_a_restart_while_the_upgraded_daemon_drains_starts_the_program(
    arena: Path, service_account: User
) -> None:
    """Its pidfile in a root-only directory: the old daemon, draining, does not keep it locked."""
    app = arena / "app"
    app.mkdir(mode=0o755)
    shutil.copyfile(program("held_drain"), app / "app.py")
    run = arena / "run"
    run.mkdir(mode=0o755)  # root's: the daemon's user empties its pidfile, cannot remove it
    logs = own_dir(arena / "logs", service_account)
    pidfile, log = run / "app.pid", logs / "app.jsonl"
    flags = [f"--pidfile={pidfile}", f"--log-file={log}", f"--user={service_account.name}"]
    started = _cli("start", "app:main", *flags, cwd=app)
    assert started.returncode == 0, started.stderr
    old = int(started.stdout)
    hold = app / f"hold-{old}"
    hold.touch()
    pids = [old]
    try:
        upgraded = _cli("upgrade", "--pidfile", pidfile, cwd=app)
        assert upgraded.returncode == 0, upgraded.stderr
        pids.append(int(upgraded.stdout))

        def draining() -> bool:
            records = read_json_lines(log)
            return any(r["event"] == "shutdown started" and r["pid"] == old for r in records)

        wait_for(draining, 30, "the old daemon to drain")
        restarted = _cli("restart", "app:main", *flags, cwd=app)
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout.strip().isdigit(), restarted.stderr
        pids.append(int(restarted.stdout))
        assert is_alive(old)  # still draining: the restart did not wait for it
        hold.unlink()
        wait_gone(old, 30)
        status = _cli("status", "--pidfile", pidfile, cwd=app)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"running (pid {pids[-1]},")
    finally:
        hold.unlink(missing_ok=True)
        for pid in pids:
            stop_daemon(pid)
