"""Signal state a careless starter leaves: a blocked mask, ignored SIGCHLD and SIGQUIT."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    clean_env,
    kill_pidfile_holder,
    program,
    python,
    read_json_lines,
    wait_for,
    wait_gone,
    without_nproc_note,
)


def _mask(hexmask: str) -> set[int]:
    """Signal numbers set in a /proc status mask."""
    bits = int(hexmask, 16)
    return {n for n in range(1, 65) if bits & (1 << (n - 1))}


def test_a_daemon_started_with_signals_blocked_and_sigchld_ignored_works(tmp_path: Path) -> None:
    """The launcher sees ready, subprocesses report their status, and SIGTERM stops the daemon."""
    pidfile, log, report = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "report.json"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    started = python(
        [
            program("careless_starter"),
            program("inherited_signals"),
            json.dumps(options),
            report,
        ]
    )
    assert started.returncode == 0, started.stderr
    wait_for(report.exists, what="main's report")
    seen = json.loads(report.read_text())
    assert seen["child"] == 7
    assert _mask(seen["SigBlk"]) == set()
    assert signal.SIGCHLD not in _mask(seen["SigIgn"])
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert not pidfile.exists()
    assert read_json_lines(log)[-1]["event"] == "exit"


@pytest.mark.root
def test_a_fork_the_system_refuses_is_one_line() -> None:
    """With no process left to fork (RLIMIT_NPROC), start fails with one line, no traceback."""
    options = {"detach": True}
    result = python([program("priv_as_nobody"), program("fork_refused"), json.dumps(options)])
    assert result.returncode == 1
    assert (
        without_nproc_note(result.stderr)
        == "aiodaemon: cannot fork the daemon: Resource temporarily unavailable\n"
    )


@pytest.mark.parametrize("detach", [True, False], ids=["start", "run"])
def test_sigquit_ignored_by_a_background_job_ends_the_daemon(tmp_path: Path, detach: bool) -> None:
    """Started as `... &` by a script (sh ignores SIGQUIT there), SIGQUIT still ends the daemon.

    Neither the daemon nor the programs it starts keep the ignored SIGQUIT.
    """
    pidfile, log, report = tmp_path / "d.pid", tmp_path / "d.jsonl", tmp_path / "report.json"
    options = {"detach": detach, "pidfile": str(pidfile), "log_file": str(log)}
    command = " ".join(
        shlex.quote(str(arg))
        for arg in (PYTHON, program("inherited_signals"), json.dumps(options), report)
    )
    # A non-interactive shell's background job: SIGINT and SIGQUIT ignored.
    script = subprocess.Popen(
        ["sh", "-c", f"{command} </dev/null >/dev/null 2>&1 & wait $!"], env=clean_env()
    )
    try:
        wait_for(report.exists, what="main's report")
        seen = json.loads(report.read_text())
        assert signal.SIGQUIT not in _mask(seen["SigIgn"])
        assert signal.SIGQUIT not in _mask(seen["child_SigIgn"])
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGQUIT)
        wait_gone(pid)
        # sh's `wait` gives the foreground daemon's end: killed by SIGQUIT.
        assert script.wait(timeout=15) == (0 if detach else 128 + signal.SIGQUIT)
    finally:
        kill_pidfile_holder(pidfile)
        script.kill()
        script.wait()
    # Nothing ran: no shutdown, no exit record (docs/lifecycle.md).
    assert "exit" not in [record["event"] for record in read_json_lines(log)]
