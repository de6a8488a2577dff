"""Started with fd 0, 1 or 2 closed by the caller (cron, some supervisors, ``cmd <&-``)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    PYTHON,
    aiodaemon_cli,
    clean_env,
    install_program,
    kill_quietly,
    open_fds,
    pids_with,
    program,
    read_json_lines,
    read_pid,
    require_tool,
    wait_for,
    wait_gone,
)


def run_closed(
    argv: list[str], closed: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion, the shell applying the redirections ``closed`` (``<&-``)."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {closed}', "sh", *argv],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
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
    result = run_closed(command, closed, cwd=tmp_path)
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
    result = run_closed([str(AIODAEMON), *args], "2>&-", cwd=tmp_path)
    expected = {"start": 2, "stop": 0}[args[0]]
    assert (result.returncode, result.stdout, result.stderr) == (expected, "", "")


@pytest.mark.parametrize(
    ("closed", "said"),
    [
        (
            "<&-",
            "aiodaemon: cannot open /dev/null for the closed fd 0: No such file or directory\n",
        ),
        (
            ">&-",
            "aiodaemon: cannot open /dev/null for the closed fd 1: No such file or directory\n",
        ),
        ("2>&-", ""),
    ],
    ids=["stdin", "stdout", "stderr"],
)
def test_a_closed_standard_stream_and_no_dev_null_is_one_line(
    tmp_path: Path, closed: str, said: str
) -> None:
    """A bare /dev and a closed fd: start and run() exit 1, status 4 (unknown), one line each.

    Nothing could be opened onto the closed fd: a FileNotFoundError traceback.
    """
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    bare_dev = f'mount -t tmpfs -o size=64k none /dev && exec "$@" {closed}'
    unshare = [require_tool("unshare"), "--mount", "--propagation", "private", "--"]
    commands = {
        "start": [str(AIODAEMON), "start", "app:main", "--pidfile", str(pidfile)],
        "run()": [PYTHON, str(program("idle")), json.dumps({"pidfile": str(pidfile)})],
        "status": [str(AIODAEMON), "status", "--pidfile", str(pidfile)],
    }
    for name, command in commands.items():
        result = subprocess.run(
            [*unshare, "sh", "-c", bare_dev, "sh", *command],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=45,
            check=False,
        )
        expected = 4 if name == "status" else 1
        assert (result.returncode, result.stdout, result.stderr) == (expected, "", said), name
    assert list(tmp_path.iterdir()) == [tmp_path / "app.py"]
    assert not pids_with(str(pidfile))


@pytest.mark.parametrize("closed", ["<&- >&-", ">&- 2>&-", "<&- >&- 2>&-"])
def test_a_pep3143_pidfile_survives_standard_streams_closed_by_the_caller(
    tmp_path: Path, closed: str
) -> None:
    """DaemonContext with a PidFile, two or three of fds 0-2 closed: the daemon starts and holds it.

    /dev/null and the pidfile took the closed fds; redirecting stdio then
    closed the pidfile under the daemon: "cannot write pidfile: Invalid
    argument", an empty pidfile left behind, or (stderr closed) nothing said.
    """
    pidfile = tmp_path / "d.pid"
    settings = json.dumps({"pidfile": str(pidfile)})
    argv = [PYTHON, str(program("pep3143_pidfile")), settings]
    result = run_closed(argv, closed)
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    try:
        fds = open_fds(pid)
        assert [fds[0], fds[1], fds[2]] == ["/dev/null"] * 3
        assert str(pidfile) in fds.values()
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert status.returncode == 0, status.stdout
    finally:
        kill_quietly(pid, signal.SIGTERM)
        wait_gone(pid)
    assert not pidfile.exists()
