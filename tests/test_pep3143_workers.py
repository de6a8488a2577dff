"""Workers a pep3143 daemon forks do not hold or touch its PidFile.

As ``run()``'s daemon (tests/test_forked_child.py): a forked child closes its
copy of the pidfile's locked descriptor, so a worker that outlives a killed
daemon (the OOM killer took only the master) never blocks the next start with
"already running" for a dead pid; and a worker that exits leaves the file alone.
"""

from __future__ import annotations

import signal
from pathlib import Path

from aiodaemon import pep3143

from .support import REPO, kill_quietly, python, read_pid, wait_gone

PROGRAM = REPO / "tests" / "programs" / "pep3143_workers.py"


def test_a_lingering_worker_does_not_keep_the_pidfile_locked(tmp_path: Path) -> None:
    """Killing the daemon frees its PidFile although a worker it forked still runs."""
    launcher = python([PROGRAM, tmp_path])
    assert launcher.returncode == 0, launcher.stderr
    pid = read_pid(tmp_path / "ready")
    worker = read_pid(tmp_path / "worker")
    try:
        # The worker that exited through sys.exit (and atexit) left it alone.
        assert read_pid(tmp_path / "app.pid") == pid
        kill_quietly(pid)
        wait_gone(pid)
        assert Path(f"/proc/{worker}").exists()
        again = pep3143.PidFile(tmp_path / "app.pid")
        assert not again.is_locked()
        again.acquire()  # raised AlreadyRunningError naming the dead daemon
        again.release()
    finally:
        kill_quietly(pid)
        kill_quietly(worker, signal.SIGKILL)
    wait_gone(worker)
