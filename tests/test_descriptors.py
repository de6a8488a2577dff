"""Too few file descriptors: one line on the terminal and nothing left behind, never an abort."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, clean_env, program, python, require_tool, wait_gone


def _run(tmp_path: Path, left: int, limit: int) -> tuple[int, str, list[str]]:
    """Run a foreground daemon with ``left`` descriptors free under ``limit``."""
    options = {
        "detach": False,
        "pidfile": str(tmp_path / "d.pid"),
        "log_file": str(tmp_path / "log"),
    }
    result = python([program("fds_exhausted"), json.dumps(options), str(left), str(limit)])
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("d.pid"))
    return result.returncode, result.stderr, leftovers


def test_a_descriptor_limit_no_daemon_can_live_with_is_refused_on_the_terminal(
    tmp_path: Path,
) -> None:
    """A hard RLIMIT_NOFILE of 16 is refused before anything is acquired, naming the fix."""
    code, stderr, leftovers = _run(tmp_path, 8, 16)
    assert code == 1
    assert stderr == (
        "aiodaemon: RLIMIT_NOFILE is 16: a daemon needs at least 32 open files;"
        " raise it (ulimit -Hn and -n, or LimitNOFILE= in a unit)\n"
    )
    assert leftovers == []


def test_descriptors_used_up_by_the_program_fail_the_start_without_an_abort(
    tmp_path: Path,
) -> None:
    """With too few left for the event loop, the start fails in one line, files removed."""
    code, stderr, leftovers = _run(tmp_path, 6, 64)
    assert code == 1
    assert stderr.startswith("aiodaemon: cannot create the event loop: ")
    assert stderr.endswith(" file descriptors left, it needs 16 (RLIMIT_NOFILE 64)\n")
    assert stderr.count("\n") == 1
    assert leftovers == []


def test_enough_descriptors_left_run_the_program(tmp_path: Path) -> None:
    """The check costs a daemon with room nothing: main runs."""
    options = {"detach": False, "log_file": str(tmp_path / "log")}
    result = python([program("fds_exhausted"), json.dumps(options), "24", "64"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "main ran\n"


def test_a_daemon_raises_its_soft_descriptor_limit_to_the_hard_one(tmp_path: Path) -> None:
    """Started with the usual soft 1024 under a hard 4096, the daemon may use all 4096."""
    pidfile = tmp_path / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile)}
    prlimit = require_tool("prlimit")
    started = subprocess.run(
        [prlimit, "--nofile=1024:4096", PYTHON, program("idle"), json.dumps(options)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    try:
        limits = Path(f"/proc/{pid}/limits").read_text()
        (line,) = [x for x in limits.splitlines() if x.startswith("Max open files")]
        assert line.split()[3:5] == ["4096", "4096"]
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)


def _start_under(tmp_path: Path, limit: int, control: bool) -> subprocess.CompletedProcess[str]:
    """Start a detached daemon with many listeners under ``RLIMIT_NOFILE`` ``limit``."""
    options = {
        "detach": True,
        "pidfile": str(tmp_path / "d.pid"),
        "log_file": str(tmp_path / "log"),
        # Enough that the first limit tried (32) runs out among them.
        "listen": {f"s{i}": "127.0.0.1:0" for i in range(28)},
        "health": "127.0.0.1:0",
        "control": None if control else False,
    }

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return subprocess.run(
        [PYTHON, str(program("idle")), json.dumps(options)],
        env=clean_env(),
        preexec_fn=lower,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("control", [True, False], ids=["control", "no-control"])
def test_each_step_of_a_start_out_of_descriptors_fails_in_one_line(
    tmp_path: Path, control: bool
) -> None:
    """Limits that run out at each step from the listeners to the loop: one line, nothing left.

    A module imported after the sockets were bound (the control socket's, the
    detach's) failed to open at EMFILE, with a traceback instead of a line.
    """
    errors = []
    for limit in range(32, 64):
        started = _start_under(tmp_path, limit, control)
        assert started.returncode == 1, (limit, started.stderr)
        assert started.stderr.startswith("aiodaemon: "), (limit, started.stderr)
        assert started.stderr.count("\n") == 1, (limit, started.stderr)
        # Refused before the fork (binding, the control socket, the readiness
        # pipe): the log file it created goes too; refused by the daemon after
        # the fork (its event loop), it stays, holding the daemon's last records.
        forked = "cannot create the event loop" in started.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == (["log"] if forked else []), limit
        errors.append(started.stderr)
        if "cannot create the event loop" in started.stderr:
            break  # the last step before the fork (see the tests above)
    assert "cannot bind" in errors[0], errors
    assert "cannot create the event loop" in errors[-1], errors
