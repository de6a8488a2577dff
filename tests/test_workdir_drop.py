"""Directories closed to the user the daemon drops to: its workdir, its pidfile's."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import aiodaemon_cli, install_program, python, wait_gone

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory nobody can traverse, with a run directory nobody owns."""
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-workdir-"))
    path.chmod(0o755)
    (path / "run").mkdir()
    os.chown(path / "run", NOBODY.pw_uid, NOBODY.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_as_nobody(
    base: Path, pidfile: Path, workdir: Path, *, detach: bool = True
) -> subprocess.CompletedProcess[str]:
    """Start ``priv_daemon`` as root dropping to nobody, with ``pidfile`` and ``workdir``."""
    options = {
        "pidfile": str(pidfile),
        "user": "nobody",
        "workdir": str(workdir),
        "detach": detach,
    }
    script = install_program("priv_daemon", base, "daemon_app.py")
    return python([script, json.dumps(options), str(base / "run" / "report.json")], cwd=base)


@pytest.mark.root
@pytest.mark.parametrize("detach", [True, False], ids=["detached", "foreground"])
def test_a_workdir_closed_to_the_user_fails_the_start(base: Path, detach: bool) -> None:
    """Entered as root, closed to nobody: one line naming the option, the user and the directory."""
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    pidfile = base / "run" / "d.pid"
    result = start_as_nobody(base, pidfile, closed, detach=detach)
    assert result.returncode == 1
    assert result.stderr == f"aiodaemon: workdir {closed}: nobody cannot enter it\n"
    assert not pidfile.exists()
    assert not (base / "run" / "report.json").exists()


@pytest.mark.root
def test_a_foreground_start_from_a_directory_closed_to_the_user_fails(base: Path) -> None:
    """No workdir in the foreground: the current directory is kept, so it is the one checked."""
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    pidfile = base / "run" / "d.pid"
    options = {"pidfile": str(pidfile), "user": "nobody", "detach": False}
    script = install_program("priv_daemon", base, "daemon_app.py")
    result = python([script, json.dumps(options), str(base / "run" / "report.json")], cwd=closed)
    assert result.returncode == 1
    assert result.stderr == (
        f"aiodaemon: workdir {closed} (the current directory: in the foreground the daemon"
        " stays there): nobody cannot enter it\n"
    )
    assert not pidfile.exists()
    assert not (base / "run" / "report.json").exists()


@pytest.mark.root
@pytest.mark.parametrize("command", ["start", "run"])
def test_the_cli_names_the_flag_of_a_workdir_closed_to_the_user(base: Path, command: str) -> None:
    """Found by the daemon after the fork, yet worded as the CLI's errors: `--workdir: DIR: ...`."""
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    install_program("cli_app", base)
    pidfile = base / "run" / "d.pid"
    result = aiodaemon_cli(
        command, "app:main", "--pidfile", pidfile, "--user", "nobody", "--workdir", closed,
        cwd=base,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"aiodaemon: --workdir: {closed}: nobody cannot enter it\n"
    assert not pidfile.exists()
    assert not (base / "started").exists()


@pytest.mark.root
def test_a_pidfile_in_a_directory_closed_to_the_dropped_user_is_emptied_at_exit(
    base: Path,
) -> None:
    """The daemon cannot reach it by path, so it empties it through its lock: "not running" (3)."""
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    pidfile = closed / "d.pid"
    started = start_as_nobody(base, pidfile, base / "run")
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert pidfile.read_text() == ""
    status = aiodaemon_cli("status", "--pidfile", pidfile)
    assert status.returncode == 3, status.stdout


@pytest.mark.root
def test_stop_removes_what_a_dropped_daemon_could_not(base: Path) -> None:
    """Root-owned directory, daemon as nobody: after `stop`, neither pidfile nor socket is left."""
    root_only = base / "root-only"
    root_only.mkdir(mode=0o755)
    pidfile = root_only / "d.pid"
    started = start_as_nobody(base, pidfile, base / "run")
    assert started.returncode == 0, started.stderr
    pid = int(pidfile.read_text())
    assert (root_only / "d.pid.ctl").exists()
    stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr == (
        f"aiodaemon: stopped (pid {pid}); removed pidfile {pidfile}"
        f" and control socket {pidfile}.ctl, which the daemon could not remove\n"
    )
    assert sorted(root_only.iterdir()) == []
    assert aiodaemon_cli("status", "--pidfile", pidfile).returncode == 3
