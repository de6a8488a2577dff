"""``aiodaemon start`` and ``run()`` from a directory that no longer exists (a deploy removed it).

A shell left in an old release directory has a working directory that is
gone: TARGET cannot be imported from there, but an installed one (or one on
``PYTHONPATH``) still can, and a missing one is one line, exit 2. A relative
path names nothing there: one line naming the option, exit 2, nothing
created. A daemon in the foreground, which stays in its directory, runs there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    PYTHON,
    REPO,
    clean_env,
    install_program,
    program,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)

#: Enters ``$1``, removes it, and execs the rest of the arguments there.
_IN_REMOVED = 'cd "$1" && rmdir "$1" && shift && exec "$@"'


def _popen_in_deleted_directory(
    tmp_path: Path, *argv: str | Path, pythonpath: Path | None = None, mode: int = 0o755
) -> subprocess.Popen[str]:
    """``ARGV`` started in a directory removed before it runs (the shell execs it: same pid)."""
    gone = tmp_path / "release-1"
    gone.mkdir()
    gone.chmod(mode)
    path = [str(REPO)] if pythonpath is None else [str(pythonpath), str(REPO)]
    return subprocess.Popen(
        ["sh", "-c", _IN_REMOVED, "sh", gone, *argv],
        env=clean_env({"PYTHONPATH": os.pathsep.join(path)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def _run_in_deleted_directory(
    tmp_path: Path, *argv: str | Path, pythonpath: Path | None = None, mode: int = 0o755
) -> subprocess.CompletedProcess[str]:
    """``ARGV`` run to completion in a directory removed before it runs."""
    with _popen_in_deleted_directory(tmp_path, *argv, pythonpath=pythonpath, mode=mode) as proc:
        stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _from_deleted_directory(
    tmp_path: Path, *args: str | Path, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` started in a directory removed before it runs."""
    return _run_in_deleted_directory(tmp_path, AIODAEMON, *args, pythonpath=pythonpath)


def _gone(value: str) -> str:
    """What follows the option's name when its relative ``value`` meets a removed directory."""
    return (
        f"{value} is relative, but the current directory no longer exists (it was removed);"
        " give an absolute path"
    )


def test_an_importable_target_starts_from_a_deleted_directory(tmp_path: Path) -> None:
    """TARGET on PYTHONPATH starts (no traceback from getcwd); stop works as ever."""
    program = tmp_path / "program"
    program.mkdir()
    install_program("cli_app", program)
    pidfile = tmp_path / "app.pid"
    started = _from_deleted_directory(
        tmp_path, "start", "app:main", "--pidfile", pidfile, "--log-file", tmp_path / "log",
        pythonpath=program,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    assert read_pid(pidfile) == pid
    assert (program / "started").read_text(encoding="utf-8") == str(pid)
    stopped = subprocess.run(
        [AIODAEMON, "stop", "--pidfile", pidfile],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(pid)


def test_a_target_missing_from_a_deleted_directory_is_one_line(tmp_path: Path) -> None:
    """A TARGET found nowhere: one line saying the directory is gone, exit 2, nothing started."""
    pidfile = tmp_path / "app.pid"
    started = _from_deleted_directory(tmp_path, "start", "app:main", "--pidfile", pidfile)
    assert started.returncode == 2
    assert started.stderr.splitlines() == [
        "aiodaemon: no module named 'app' (in sys.path; the current directory no longer exists)"
    ]
    assert not pidfile.exists()


def _ready(log: Path) -> bool:
    """Whether the daemon logging to ``log`` said it is ready."""
    try:
        return '"event":"ready"' in log.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("start", "--pidfile"),
        ("run", "--pidfile"),
        ("start", "--log-file"),
        ("start", "--stdout"),
        ("start", "--stderr"),
        ("start", "--control"),
        ("start", "--workdir"),
        ("run", "--workdir"),
    ],
)
def test_a_relative_path_from_a_deleted_directory_is_one_line(
    tmp_path: Path, command: str, flag: str
) -> None:
    """A relative path there: one line naming the flag, exit 2, no traceback, nothing created."""
    program_dir = tmp_path / "program"
    program_dir.mkdir()
    install_program("cli_app", program_dir)
    files = tmp_path / "files"
    files.mkdir()
    given = {"--pidfile": files / "app.pid", "--log-file": files / "app.log", flag: "rel"}
    args = [str(part) for pair in given.items() for part in pair]
    result = _from_deleted_directory(tmp_path, command, "app:main", *args, pythonpath=program_dir)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"aiodaemon: {flag}: {_gone('rel')}"]
    assert sorted(files.iterdir()) == []  # no pidfile, log file or control socket
    assert not (program_dir / "started").exists()


def test_run_from_a_deleted_directory_refuses_a_relative_path(tmp_path: Path) -> None:
    """``run()`` with a relative pidfile there: ConfigError's one line, exit 2, nothing created."""
    files = tmp_path / "files"
    files.mkdir()
    options = {"pidfile": "app.pid", "log_file": str(files / "app.log"), "detach": True}
    result = _run_in_deleted_directory(tmp_path, PYTHON, program("idle"), json.dumps(options))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"aiodaemon: pidfile: {_gone('app.pid')}"]
    assert sorted(files.iterdir()) == []


@pytest.mark.parametrize("launcher", ["cli", "script"])
def test_a_foreground_daemon_runs_in_a_deleted_directory(tmp_path: Path, launcher: str) -> None:
    """In the foreground without workdir it stays in the removed directory: runs, stops, exit 0."""
    program_dir = tmp_path / "program"
    program_dir.mkdir()
    install_program("cli_app", program_dir)
    files = tmp_path / "files"
    files.mkdir()
    pidfile, log = files / "app.pid", files / "app.log"
    if launcher == "cli":
        argv: list[str | Path] = [AIODAEMON, "run", "app:main", "--pidfile", pidfile]
        argv += ["--log-file", log]
    else:
        options = {"pidfile": str(pidfile), "log_file": str(log), "detach": False}
        argv = [PYTHON, program("idle"), json.dumps(options)]
    with _popen_in_deleted_directory(tmp_path, *argv, pythonpath=program_dir) as proc:
        try:
            wait_for(lambda: proc.poll() is not None or _ready(log), 30, "ready or an exit")
            assert proc.poll() is None, proc.communicate()[1]
            assert read_pid(pidfile) == proc.pid
            os.kill(proc.pid, signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert (proc.returncode, stderr) == (0, "")
    assert not pidfile.exists()
    assert [record["event"] for record in read_json_lines(log)][-1] == "exit"


def test_a_relative_path_deeper_than_path_max_is_one_line(tmp_path: Path) -> None:
    """A current directory whose path is past PATH_MAX: "too deep", not "does not exist"."""
    files = tmp_path / "files"
    files.mkdir()
    name = "d" * 200
    depth = 4200 // (len(name) + 1)
    deep = tmp_path.joinpath(*[name] * depth)
    # Made one level at a time: mkdir and chdir refuse a path this long.
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    script = f'for _ in $(seq {depth}); do cd {name} || exit 9; done; exec "$@"'
    result = subprocess.run(
        ["sh", "-c", script, "sh", AIODAEMON, "start", "app:main", "--pidfile", "app.pid",
         "--log-file", files / "app.log"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip
    size = len(os.fsencode(str(deep / "app.pid")))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"aiodaemon: --pidfile: app.pid is relative, but the current directory is too deep"
        f" to name it ({size} bytes from /, at most 4095); give a shorter absolute path"
    ]
    assert sorted(files.iterdir()) == []


@pytest.mark.root
def test_a_foreground_drop_in_a_deleted_directory_closed_to_the_user(tmp_path: Path) -> None:
    """Dropping to nobody in a removed 0700 directory: exit 1, one line saying where it is."""
    program_dir = tmp_path / "program"
    program_dir.mkdir()
    install_program("cli_app", program_dir)
    result = _run_in_deleted_directory(
        tmp_path, AIODAEMON, "run", "app:main", "--user", "nobody", pythonpath=program_dir,
        mode=0o700,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "aiodaemon: --workdir: . (the current directory, which was removed: in the foreground"
        " the daemon stays there): nobody cannot enter it"
    ]
    assert not (program_dir / "started").exists()


_PEP3143_RELATIVE_PIDFILE = """
import sys
from aiodaemon import pep3143

home = sys.argv[1]
with pep3143.DaemonContext(
    detach_process=False, working_directory=home, pidfile=pep3143.PidFile("d.pid")
):
    with open("ran", "w") as f:
        f.write(open("d.pid").read())
"""


def test_pep3143_relative_pidfile_under_an_absolute_workdir_from_a_deleted_directory(
    tmp_path: Path,
) -> None:
    """A relative PidFile under an absolute working_directory needs no current directory."""
    home = tmp_path / "home"
    home.mkdir()
    result = _run_in_deleted_directory(tmp_path, PYTHON, "-c", _PEP3143_RELATIVE_PIDFILE, home)
    assert (result.returncode, result.stderr) == (0, "")
    # The pidfile was taken there (the body read its pid) and removed at the end.
    assert (home / "ran").read_text().strip().isdigit()
    assert not (home / "d.pid").exists()
