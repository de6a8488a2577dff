"""A socket file bound by a live process that does not listen yet is not a stale file.

A daemon binds its control socket at its start and listens on it only once
detached (so that ``SO_PEERCRED`` names the daemon): in between, a connection
is refused as at a dead daemon's leftover. A second daemon given the same
``--control`` and started at that moment took the file for stale, removed it
and bound its own: both started, and one of them was left with a control
socket nobody could reach (12 of 20 simultaneous pairs).
"""

from __future__ import annotations

import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .support import AIODAEMON, REPO, aiodaemon_cli, clean_env, dead_pid, is_alive, kill_quietly

PROGRAM = "tests.programs.forever:main"


def _start(pidfile: Path, control: Path, log: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIODAEMON), "start", PROGRAM, "--pidfile", str(pidfile),
         "--control", str(control), "--log-file", str(log)],
        cwd=REPO,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def test_a_control_path_bound_by_a_live_process_is_in_use(tmp_path: Path) -> None:
    """`start --control P` where a live process holds P bound, not listening: refused, P kept."""
    control = tmp_path / "shared.ctl"
    pidfile = tmp_path / "a.pid"
    with socket.socket(socket.AF_UNIX) as holder:
        holder.bind(str(control))
        inode = control.stat().st_ino
        result = _start(pidfile, control, tmp_path / "a.log")
        try:
            assert result.returncode == 1, result.stdout
            assert result.stderr == (
                f"aiodaemon: --control: cannot bind {control}: Address already in use\n"
            )
            assert control.stat().st_ino == inode
            assert not pidfile.exists()
        finally:
            if result.returncode == 0:
                kill_quietly(int(result.stdout))


def test_stop_leaves_a_control_socket_a_live_process_holds_bound(tmp_path: Path) -> None:
    """`stop` removing a dead daemon's pidfile keeps the socket beside that is bound anew."""
    pidfile = tmp_path / "d.pid"
    dead = dead_pid()
    pidfile.write_text(f"{dead}\n")
    control = tmp_path / "d.pid.ctl"
    with socket.socket(socket.AF_UNIX) as holder:
        # A daemon starting with this control path, between its bind and its listen.
        holder.bind(str(control))
        result = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert result.returncode == 0, result.stderr
        # Not "... and its stale control socket": it is not stale.
        assert result.stderr == (
            f"aiodaemon: not running; removed stale pidfile {pidfile} (it named pid {dead})\n"
        )
        assert control.exists()


def test_two_daemons_started_together_on_one_control_path_start_one(tmp_path: Path) -> None:
    """Pairs started at once with one --control: one starts, the other is refused, each time."""
    for pair in range(6):
        control = tmp_path / f"c{pair}.ctl"
        pidfiles = [tmp_path / f"p{pair}{side}.pid" for side in "ab"]
        with ThreadPoolExecutor(2) as pool:
            starts = [
                pool.submit(_start, pidfile, control, pidfile.with_suffix(".log"))
                for pidfile in pidfiles
            ]
            results = [start.result() for start in starts]
        started = [p for p, result in zip(pidfiles, results, strict=True) if result.returncode == 0]
        try:
            assert len(started) == 1, [r.stderr for r in results]
            assert [r.stderr for r in results if r.returncode != 0] == [
                f"aiodaemon: --control: cannot bind {control}: Address already in use\n"
            ]
            # The one started is reachable on its control socket.
            status = aiodaemon_cli("status", "--pidfile", started[0], "--control", control)
            assert status.returncode == 0, status.stderr
            assert status.stderr == ""
        finally:
            for pidfile in started:
                pid = int(pidfile.read_text())
                aiodaemon_cli("stop", "--pidfile", pidfile, "--control", control)
                if is_alive(pid):
                    kill_quietly(pid)
