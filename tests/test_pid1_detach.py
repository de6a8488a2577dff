"""Detaching as PID 1 of a pid namespace, or into a new one, is refused: the daemon would die."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .support import PROGRAMS, PYTHON, clean_env, install_program, pids_with, require_tool

pytestmark = pytest.mark.root  # a PID namespace of its own (unshare --pid)


def _unshared(
    flags: tuple[str, ...], *command: str | Path, cwd: Path = PROGRAMS
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` under ``unshare --pid FLAGS``, from the test programs' directory."""
    return subprocess.run(
        [require_tool("unshare"), "--pid", *flags, *map(str, command)],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _as_pid1(*command: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as PID 1 of a pid namespace of its own."""
    return _unshared(("--fork", "--mount-proc", "--kill-child"), *command)


def test_start_as_pid1_is_refused_with_the_way_to_run_it(tmp_path: Path) -> None:
    """`aiodaemon start` as a container's entrypoint: exit 1, one line naming `aiodaemon run`."""
    pidfile = tmp_path / "d.pid"
    result = _as_pid1(PYTHON, "-m", "aiodaemon", "start", "cli_app:main", "--pidfile", pidfile)
    assert result.returncode == 1
    assert result.stderr == (
        "aiodaemon: cannot detach as PID 1 (a container's entrypoint): the daemon"
        " would be killed when this process exits; run it in the foreground (aiodaemon run)\n"
    )
    assert not pidfile.exists()


def test_pep3143_open_with_detach_as_pid1_raises(tmp_path: Path) -> None:
    """DaemonContext(detach_process=True).open() as PID 1: DaemonProcessDetachError, no fork."""
    result = _as_pid1(PYTHON, PROGRAMS / "pep3143_pid1.py", "true", tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "DaemonProcessDetachError: cannot detach as PID 1 (a container's entrypoint):"
        " the daemon would be killed when this process exits; run it in the foreground"
        " (detach_process=False)\n"
    )
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "d.pid").exists()


def test_pep3143_default_detach_as_pid1_stays_in_the_foreground(tmp_path: Path) -> None:
    """detach_process=None as PID 1: the body runs in PID 1 itself, and exits 0."""
    result = _as_pid1(PYTHON, PROGRAMS / "pep3143_pid1.py", "none", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ran").read_text() == "ran False as pid 1\n"
    assert not (tmp_path / "d.pid").exists()


def _in_new_namespace(
    *command: str | Path, cwd: Path = PROGRAMS
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` under ``unshare --pid`` without ``--fork``: its first child is PID 1."""
    return _unshared((), *command, cwd=cwd)


def _namespace_refusal(foreground: str) -> str:
    """The line a detach into a new pid namespace is refused with."""
    return (
        "cannot detach into a new pid namespace (unshare --pid without --fork?): the"
        " first fork is its PID 1, and the daemon would be killed when that process"
        f" exits; run it in the foreground ({foreground}), under 'unshare --pid --fork'\n"
    )


def test_start_into_a_new_pid_namespace_is_refused_leaving_nothing(tmp_path: Path) -> None:
    """`unshare --pid aiodaemon start`: exit 1, one line, no pidfile, socket, log or daemon left."""
    install_program("cli_app", tmp_path)
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.log"
    result = _in_new_namespace(
        PYTHON, "-m", "aiodaemon", "start", "app:main", "--pidfile", pidfile, "--log-file", log,
        cwd=tmp_path,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == "aiodaemon: " + _namespace_refusal("aiodaemon run")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["app.py"]
    assert pids_with(str(pidfile)) == []


def test_run_detached_into_a_new_pid_namespace_is_refused_leaving_nothing(tmp_path: Path) -> None:
    """`unshare --pid python app.py` whose run(detach=True): exit 1, one line, nothing left."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.log"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    result = _in_new_namespace(PYTHON, PROGRAMS / "idle.py", json.dumps(options))
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == "aiodaemon: " + _namespace_refusal("aiodaemon run")
    assert list(tmp_path.iterdir()) == []
    assert pids_with(str(pidfile)) == []


def test_pep3143_open_into_a_new_pid_namespace_raises(tmp_path: Path) -> None:
    """DaemonContext(detach_process=True).open() under unshare --pid: DaemonProcessDetachError."""
    result = _in_new_namespace(PYTHON, PROGRAMS / "pep3143_pid1.py", "true", tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == "DaemonProcessDetachError: " + _namespace_refusal(
        "detach_process=False"
    )
    assert list(tmp_path.iterdir()) == []
    assert pids_with(f"pep3143_pid1.py\0true\0{tmp_path}") == []
