"""A program's own exit status 3 under the CLI: its end, never a lost race to start again.

``launch()`` used to return ``ALREADY_RUNNING`` (3) for a start that lost the
pidfile's lock to another, and the CLI tried again on a 3: also on the
program's own ``sys.exit(3)``, returned by ``launch()`` in the daemon (a new
detached daemon once the old one stopped) or in the foreground after the
program ran (the program run 5 times in one process).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from .support import aiodaemon_cli, read_json_lines, wait_gone

TARGET = "tests.programs.cli_exits_three:main"


def starts(log: Path) -> int:
    """How many times the log says the daemon started."""
    return [record["event"] for record in read_json_lines(log)].count("starting")


@pytest.mark.parametrize("where", ["main", "startup", "request"])
def test_run_ends_with_the_programs_status_3_once(tmp_path: Path, where: str) -> None:
    """``aiodaemon run``: a program ending with status 3 runs once, and the command exits 3."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "log.jsonl"
    result = aiodaemon_cli(
        "run", TARGET, "--pidfile", pidfile, "--log-file", log, env={"EXIT_WHERE": where}
    )
    assert result.returncode == 3, result.stderr
    assert "already running" not in result.stderr
    assert starts(log) == 1
    assert [record["status"] for record in read_json_lines(log) if record["event"] == "exit"] == [3]
    assert not pidfile.exists()


@pytest.mark.parametrize(
    ("command", "where"),
    [("start", "main"), ("start", "reload"), ("start", "shutdown"), ("restart", "main")],
)
def test_a_detached_daemon_ending_with_status_3_is_not_started_again(
    tmp_path: Path, command: str, where: str
) -> None:
    """``start``/``restart``: once the daemon ended with status 3, nothing runs any more."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "log.jsonl"
    env = {"EXIT_WHERE": where}
    started = aiodaemon_cli(command, TARGET, "--pidfile", pidfile, "--log-file", log, env=env)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    if where == "reload":
        os.kill(pid, signal.SIGHUP)
    elif where == "shutdown":
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stderr.endswith("; it exited with status 3\n")
    wait_gone(pid)
    assert not pidfile.exists()
    status = aiodaemon_cli("status", "--pidfile", pidfile)
    assert status.returncode == 3, status.stdout
    assert starts(log) == 1
    assert [record["status"] for record in read_json_lines(log) if record["event"] == "exit"] == [3]


def test_a_start_whose_startup_hook_exits_3_fails_once(tmp_path: Path) -> None:
    """``start``: a startup hook's ``sys.exit(3)`` fails the start with 3, said once, tried once."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "log.jsonl"
    env = {"EXIT_WHERE": "startup"}
    started = aiodaemon_cli("start", TARGET, "--pidfile", pidfile, "--log-file", log, env=env)
    assert started.returncode == 3, started.stderr
    assert started.stderr.count("sys.exit(3) in startup hook") == 1, started.stderr
    (daemon,) = [record["pid"] for record in read_json_lines(log) if record["event"] == "starting"]
    assert isinstance(daemon, int)
    wait_gone(daemon)
    assert starts(log) == 1
    assert not pidfile.exists()
