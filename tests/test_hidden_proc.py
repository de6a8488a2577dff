"""A /proc that does not show the daemon (``hidepid=2``, or none mounted): the CLI still works.

The daemon holds its pidfile's lock; whether its pid is the holder is checked
in ``/proc/PID/fd``. Where /proc shows no such entry the process was taken for
gone: ``status`` said ``unknown (pid N does not hold P's lock)`` (exit 4) and
``reload`` and ``stop`` refused to act on a daemon that was running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .security_support import NOBODY
from .support import (
    REPO,
    clean_env,
    is_alive,
    kill_quietly,
    proc_state,
    program,
    read_json_lines,
    require_tool,
    shared_python,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.root


def _env() -> dict[str, str]:
    """For a Python any account may run: this checkout and the test's site-packages."""
    site = sysconfig.get_paths()["purelib"]
    return clean_env({"PYTHONPATH": os.pathsep.join([str(REPO), site])})


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A directory the daemon's user (nobody) owns, on a path every account may enter."""
    if os.geteuid() != 0:
        pytest.fail("the daemon drops to nobody and /proc is mounted anew: run as root")
    base = Path(tempfile.mkdtemp(prefix="aiodaemon-hidden-proc-"))
    try:
        base.chmod(0o755)
        run = base / "run"
        run.mkdir(mode=0o755)
        os.chown(run, NOBODY.uid, NOBODY.gid)
        yield run
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``argv`` to completion, its output captured, in the tests' environment."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=_env(),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def _cli_under(proc: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` in a mount namespace of its own whose /proc is ``proc``.

    ``hidepid``: a /proc mounted with ``hidepid=2``, the command run as nobody
    (the daemon's user; the daemon, which dropped to it, is not dumpable, so
    hidden). ``unmounted``: an empty file system over /proc, the command run as root.
    """
    if proc == "hidepid":
        mount = "mount -t proc -o hidepid=2 proc /proc"
        user = [require_tool("setpriv"), f"--reuid={NOBODY.uid}", f"--regid={NOBODY.gid}"]
        user.append("--clear-groups")
    else:
        mount, user = "mount -t tmpfs -o size=4k none /proc", []
    unshare = [require_tool("unshare"), "--mount", "--propagation", "private", "--"]
    command = [*user, shared_python(), "-m", "aiodaemon", *args]
    return _run([*unshare, "sh", "-c", f'{mount} && exec "$@"', "sh", *command])


def _start_as_nobody(run_dir: Path) -> tuple[Path, Path, int]:
    """A detached daemon dropped to nobody: (its pidfile, its log file, its pid)."""
    pidfile, log = run_dir / "d.pid", run_dir / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log), "user": "nobody"}
    started = _run([shared_python(), str(program("idle")), json.dumps(options)], timeout=30)
    assert started.returncode == 0, started.stderr
    return pidfile, log, int(pidfile.read_text())


@pytest.mark.parametrize("proc", ["hidepid", "unmounted"])
def test_status_reload_and_stop_find_a_daemon_proc_does_not_show(run_dir: Path, proc: str) -> None:
    """Each finds the daemon through its control socket and acts: 0, as with /proc."""
    pidfile, log, pid = _start_as_nobody(run_dir)
    try:
        status = _cli_under(proc, "status", "--pidfile", str(pidfile))
        assert (status.returncode, status.stderr) == (0, ""), status
        assert status.stdout.startswith(f"running (pid {pid}, pidfile {pidfile})\n")
        reload = _cli_under(proc, "reload", "--pidfile", str(pidfile))
        assert (reload.returncode, reload.stderr) == (
            0,
            f"aiodaemon: reloaded (pid {pid}; no reload hooks; log files reopened)\n",
        )
        stop = _cli_under(proc, "stop", "--pidfile", str(pidfile))
        assert (stop.returncode, stop.stderr) == (0, f"aiodaemon: stopped (pid {pid})\n"), stop
        assert not is_alive(pid)
    finally:
        kill_quietly(pid)
        wait_gone(pid)
    wait_for(lambda: not pidfile.exists(), what="the daemon to remove its pidfile")
    assert [r["event"] for r in read_json_lines(log)][-1] == "exit"


@pytest.mark.parametrize("proc", ["hidepid", "unmounted"])
def test_stop_continues_a_suspended_daemon_proc_does_not_show(run_dir: Path, proc: str) -> None:
    """SIGSTOPped and hidden: ``stop`` continues it, and it stops gracefully (exit 0).

    Whether it was suspended was read from /proc only: hidden, it was taken
    for running, left stopped with the SIGTERM pending, and SIGKILLed at the
    deadline, its shutdown and last records lost.
    """
    pidfile, log, pid = _start_as_nobody(run_dir)
    try:
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(pid) == "T", what="the daemon to be stopped")
        stop = _cli_under(proc, "stop", "--pidfile", str(pidfile), "--timeout", "2")
        assert stop.returncode == 0, stop
        assert stop.stderr == (
            f"aiodaemon: no answer from pid {pid} within 2 s; sending SIGTERM\n"
            f"aiodaemon: stopped (pid {pid})\n"
        )
    finally:
        kill_quietly(pid)
        wait_gone(pid)
    [end] = [r for r in read_json_lines(log) if r["event"] == "exit"]
    assert end["status"] == 0


def test_upgrade_of_a_daemon_without_proc_is_refused_for_that_reason(tmp_path: Path) -> None:
    """The new process cannot verify the pidfile's lock: it says /proc, not "does not hold"."""
    if os.geteuid() != 0:
        pytest.fail("the daemon runs where /proc is mounted anew: run as root")
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    unshare = [require_tool("unshare"), "--mount", "--propagation", "private", "--"]
    mount = "mount -t tmpfs -o size=4k none /proc"
    daemon = [shared_python(), str(program("idle")), json.dumps(options)]
    started = _run([*unshare, "sh", "-c", f'{mount} && exec "$@"', "sh", *daemon], timeout=30)
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        upgrade = _run([shared_python(), "-m", "aiodaemon", "upgrade", "--pidfile", str(pidfile)])
        assert upgrade.returncode == 1, upgrade
        assert upgrade.stderr.startswith(
            "aiodaemon: upgrade failed: cannot check that inherited pidfile fd "
        ), upgrade.stderr
        assert "(an upgrade needs /proc; use restart)" in upgrade.stderr
        assert int(pidfile.read_text()) == pid
        assert is_alive(pid)
    finally:
        kill_quietly(pid, signal.SIGTERM)
        wait_gone(pid)
