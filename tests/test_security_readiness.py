"""The launcher's readiness pipe against the account its daemon drops to.

The daemon keeps the pipe's write end until it is ready, through its startup
hooks, which run as the service account: a compromised account can write on
it. Root's launcher must never act, on its word, on a process that is not
the daemon it forked.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .security_support import User, arena, intruder, own_dir, report_in_new_pid_namespace
from .support import PYTHON, REPO, clean_env, is_alive, kill_quietly, wait_gone

pytestmark = pytest.mark.root  # the daemon drops to another user

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest

PROGRAM = REPO / "tests" / "programs" / "forged_readiness.py"
RECYCLED = REPO / "tests" / "programs" / "recycled_pid.py"


@contextlib.contextmanager
def _forging(
    arena: Path, intruder: User, mode: str, start_timeout: float, victim: int = 0
) -> Iterator[tuple[subprocess.CompletedProcess[str], Path]]:
    """Start tests/programs/forged_readiness.py as root, dropping to ``intruder``, whose
    hooks forge ``mode`` on the pipe: the launcher's outcome, and the file the daemon
    writes its pid to (as the account). Whatever daemon is left is ended afterwards."""
    run = own_dir(arena / "run", intruder)
    options = {
        "detach": True,
        "pidfile": str(run / "app.pid"),
        "user": intruder.name,
        "start_timeout": start_timeout,
        "shutdown_timeout": 1.0,
    }
    mark = run / "daemon-pid"  # written by the daemon, as the account
    try:
        yield (
            subprocess.run(
                [PYTHON, str(PROGRAM), json.dumps(options), str(victim), mode, str(mark)],
                capture_output=True,
                text=True,
                timeout=60,
                env=clean_env(),
                stdin=subprocess.DEVNULL,
                check=False,
            ),
            mark,
        )
    finally:
        if mark.exists():
            kill_quietly(int(mark.read_text()))
            wait_gone(int(mark.read_text()))


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_a_pid_forged_on_the_readiness_pipe_is_never_signalled(
    arena: Path, intruder: User, mode: str
) -> None:
    """Root's process named on the pipe by the dropped daemon lives on; the start fails (1)."""
    victim = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
    try:
        with _forging(arena, intruder, mode, 1.0, victim.pid) as (started, mark):
            assert started.returncode == 1, started.stderr
            assert victim.poll() is None, f"root's process was signalled: {victim.returncode}"
            # The daemon itself is the one stopped: gone by the time the launcher exits.
            daemon = int(mark.read_text())
            assert not is_alive(daemon)
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize(
    ("mode", "start_timeout", "said"),
    [
        # Not "not ready after 20 s": the launcher kept up with the flood.
        (
            "flood",
            20.0,
            "startup hook __main__.forge failed: RuntimeError: failing after the forgery",
        ),
        # A line that never ends does not keep the start from timing out.
        ("endless", 1.0, "not ready after 1 s"),
    ],
)
def test_a_flood_on_the_readiness_pipe_is_read_within_bounds(
    arena: Path, intruder: User, mode: str, start_timeout: float, said: str
) -> None:
    """A 64 MiB or endless line from the dropped daemon: the launcher keeps up, and says why."""
    with _forging(arena, intruder, mode, start_timeout) as (started, _):
        assert started.returncode == 1, started.stderr[-300:]
        assert started.stderr == f"aiodaemon: {said}\n", started.stderr[-300:]


def test_the_daemons_pid_taken_by_another_process_is_never_signalled(
    arena: Path, intruder: User
) -> None:
    """A dropped daemon exits with its pipe held open; root's ``sleep`` takes its pid.

    The start fails ('exited with status 0 before it was ready', told by the
    session leader that reaped it, the helper's copy of the pipe notwithstanding)
    and the launcher goes after the daemon: the ``sleep`` that now has its
    number lives on. Run in a new pid namespace, where the test alone gives out pids.
    """
    here = own_dir(arena / "run", intruder)
    report = report_in_new_pid_namespace(RECYCLED, "init", intruder.name, str(here), timeout=120)
    assert report["victim"] == report["daemon"]  # the number was taken again
    assert report["launcher"] == 1, report["stderr"]
    assert (
        report["stderr"]
        == f"aiodaemon: daemon (pid {report['daemon']}) exited with status 0 before it was ready\n"
    )
    assert report["victim_alive"], "root's process with the daemon's old pid was killed"
