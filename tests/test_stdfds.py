"""Started with fd 0, 1 or 2 closed by the caller (cron, some supervisors, ``cmd <&-``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    install_program,
    kill_quietly,
    open_fds,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)


def events(log: Path) -> list[object]:
    """The ``event`` of every record in ``log`` so far."""
    return [r["event"] for r in read_json_lines(log)] if log.exists() else []


@pytest.mark.parametrize("closed", ["<&-", ">&-", "2>&-"], ids=["stdin", "stdout", "stderr"])
def test_start_with_a_standard_stream_closed(tmp_path: Path, closed: str) -> None:
    """The daemon starts, keeps its pidfile and log file, and logs its whole life into the file."""
    install_program("cli_app", tmp_path, "app.py")
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.jsonl"
    command = [
        str(AIODAEMON),
        "start",
        "app:main",
        "--pidfile",
        str(pidfile),
        "--log-file",
        str(log),
    ]
    result = subprocess.run(
        ["sh", "-c", f'exec "$@" {closed}', "sh", *command],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    pid = read_pid(pidfile)
    try:
        assert (tmp_path / "started").read_text() == str(pid)
        wait_for(lambda: "ready" in events(log), what="the ready record in the log file")
        fds = open_fds(pid)
        assert [fds[0], fds[1], fds[2]] == ["/dev/null"] * 3
        assert str(pidfile) in fds.values()
        assert str(log) in fds.values()
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert status.returncode == 0, status.stdout
        stop = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stop.returncode == 0, stop.stderr
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    assert events(log)[0] == "starting"
    assert events(log)[-1] == "exit"
    assert not pidfile.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["start", "app:main", "--umask", "8"],
        ["stop", "--pidfile", "missing.pid"],
    ],
    ids=["usage-error", "stop"],
)
def test_a_message_for_a_closed_stderr_never_lands_on_stdout(
    tmp_path: Path, args: list[str]
) -> None:
    """With stderr closed, what the command would say there is dropped, not printed on stdout."""
    install_program("cli_app", tmp_path, "app.py")
    result = subprocess.run(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", str(AIODAEMON), *args],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    expected = {"start": 2, "stop": 0}[args[0]]
    assert (result.returncode, result.stdout, result.stderr) == (expected, "", "")
