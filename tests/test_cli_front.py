"""The CLI front end's answers to user mistakes, through the installed console script.

Each case comes from an outside audit: what a new user typed, and the one line
(and exit status) they should get back, with nothing started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    PYTHON,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    kill_pidfile_holder,
    kill_quietly,
    pids_with,
    read_pid,
    require_tool,
    wait_gone,
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory holding the programs; commands run from there; its daemons die with it."""
    install_program("cli_app", tmp_path, "app.py")
    install_program("cli_noguard", tmp_path, "noguard.py")
    yield tmp_path
    for pid in pids_with(str(tmp_path)):
        kill_quietly(pid)
    for name in ("app.pid", "ng.pid"):
        kill_pidfile_holder(tmp_path / name)


def cli(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``aiodaemon ARGS`` from ``cwd`` to completion."""
    return aiodaemon_cli(*args, cwd=cwd)


def one_line(text: str) -> str:
    """The only line of ``text``; fails if there are more (a traceback, say)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# --- a TARGET that calls aiodaemon.run() when imported ------------------------------


@pytest.mark.parametrize("command", ["start", "run", "restart"])
def test_target_calling_run_at_import_is_refused(app_dir: Path, command: str) -> None:
    """TARGET calling aiodaemon.run() at import: one line naming the fix, exit 2, nothing runs."""
    pidfile = app_dir / "app.pid"
    result = cli(command, "noguard:main", "--pidfile", pidfile, cwd=app_dir)
    line = one_line(result.stderr)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert line.startswith("aiodaemon: TARGET noguard calls aiodaemon.run() when imported")
    assert f"{app_dir / 'noguard.py'}:" in line
    assert line.endswith('put that call under `if __name__ == "__main__":`')
    # Neither the command line's daemon nor the module's own one started.
    assert not pidfile.exists()
    assert not (app_dir / "ng.pid").exists()
    assert not (app_dir / "started").exists()
    assert not [pid for pid in pids_with(str(app_dir)) if pid != os.getpid()]


def test_unguarded_program_still_runs_as_a_script(app_dir: Path) -> None:
    """The same program run as `python noguard.py` starts its daemon as written."""
    started = subprocess.run(
        [PYTHON, str(app_dir / "noguard.py")],
        cwd=app_dir,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=45,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    pid = read_pid(app_dir / "ng.pid")
    assert is_alive(pid)
    assert (app_dir / "started").read_text() == str(pid)
    assert cli("stop", "--pidfile", app_dir / "ng.pid", cwd=app_dir).returncode == 0
    wait_gone(pid)


# --- TARGET given as a file, contradictory flags, a lone option -----------------------


@pytest.mark.parametrize(
    ("target", "suggestion"),
    [
        ("app.py", "did you mean app:main?"),
        ("./app.py:main", "did you mean app:main?"),
        ("src/app.py", "did you mean app:main, run from src/?"),
        ("./app", "did you mean app:main?"),
    ],
)
def test_target_given_as_a_file_suggests_module_attr(
    app_dir: Path, target: str, suggestion: str
) -> None:
    """TARGET written as a file path: one line saying MODULE:ATTR and what to write, exit 2."""
    pidfile = app_dir / "app.pid"
    result = cli("start", target, "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("aiodaemon: TARGET is MODULE:ATTR, not a file path")
    assert line.endswith(suggestion)
    assert not pidfile.exists()
    assert not (app_dir / "started").exists()


@pytest.mark.parametrize(
    ("target", "suggestion"),
    [
        ("pkg/mod.py", "did you mean pkg.mod:main?"),
        ("pkg/sub/mod.py:serve", "did you mean pkg.sub.mod:serve?"),
        ("pkg/__init__.py", "did you mean pkg:main?"),
        ("src/pkg/mod.py", "did you mean pkg.mod:main, run from src/?"),
    ],
)
def test_target_given_as_a_file_of_a_package_suggests_its_dotted_name(
    app_dir: Path, target: str, suggestion: str
) -> None:
    """A module inside a package: its dotted name from above the package, not ``mod`` from inside.

    Run as ``mod`` from within ``pkg/``, its relative imports would fail.
    """
    for package in ("pkg", "pkg/sub", "src/pkg"):
        (app_dir / package).mkdir(parents=True)
        (app_dir / package / "__init__.py").write_text("")
    result = cli("start", target, "--pidfile", app_dir / "app.pid", cwd=app_dir)
    assert result.returncode == 2
    assert one_line(result.stderr).endswith(suggestion)


@pytest.mark.parametrize("order", ["control-first", "no-control-first"])
def test_control_and_no_control_together_is_a_usage_error(app_dir: Path, order: str) -> None:
    """--control PATH with --no-control: one line naming both, exit 2, nothing started."""
    pidfile = app_dir / "app.pid"
    flags = ["--control", str(app_dir / "c.ctl"), "--no-control"]
    if order == "no-control-first":
        flags = flags[2:] + flags[:2]
    result = cli("start", "app:main", "--pidfile", pidfile, *flags, cwd=app_dir)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "--control" in line
    assert "--no-control" in line
    assert "not allowed with" in line
    assert not pidfile.exists()
    assert not (app_dir / "c.ctl").exists()


def test_lone_unknown_option_says_what_to_give(app_dir: Path) -> None:
    """`aiodaemon -v`: one line naming the option, the commands and --version, exit 2."""
    result = cli("-v", cwd=app_dir)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("aiodaemon: unknown option '-v'")
    assert "--version" in line
    assert "start" in line
    assert "required" not in line


def test_option_before_the_command_says_where_it_goes(app_dir: Path) -> None:
    """An option written before the command: one line showing it after the command, exit 2."""
    result = cli("--pidfile", app_dir / "app.pid", "status", cwd=app_dir)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        "aiodaemon: --pidfile goes after the command: aiodaemon status --pidfile"
    )


# --- acquire-phase errors name the flag, not the keyword ------------------------------


def _acquire_failures(d: Path) -> dict[str, tuple[list[str], str, int]]:
    """Case -> (options, the expected line after "aiodaemon: ", exit status); files set up in d."""
    (d / "elsewhere").write_text("")
    (d / "log.jsonl").symlink_to(d / "elsewhere")
    (d / "link.pid").symlink_to(d / "elsewhere")
    os.mkfifo(d / "fifo")
    unresolvable = "no-such-host.invalid:8080"
    return {
        "log file symlink": (
            ["--log-file", str(d / "log.jsonl")],
            f"--log-file: {d / 'log.jsonl'} is a symlink; refusing to follow it",
            2,  # seen by the options' check (lstat), as for the pidfile
        ),
        "pidfile symlink": (
            ["--pidfile", str(d / "link.pid")],
            f"--pidfile: {d / 'link.pid'} is a symlink; refusing to follow it",
            2,  # seen by the options' check already (lstat), as a directory is
        ),
        "stdout fifo": (
            ["--stdout", str(d / "fifo")],
            f"--stdout: {d / 'fifo'} is a FIFO, not a regular file",
            2,
        ),
        "stderr fifo": (
            ["--stderr", str(d / "fifo")],
            f"--stderr: {d / 'fifo'} is a FIFO, not a regular file",
            2,
        ),
        "stdout /dev/null": (
            ["--stdout", os.devnull],
            f"--stdout: {os.devnull} is a character device, not a regular file;"
            f" not given, it is {os.devnull} already when detached",
            2,
        ),
        "syslog socket missing": (
            ["--syslog", str(d / "no.sock")],
            f"--syslog: cannot connect to {d / 'no.sock'}: No such file or directory",
            1,
        ),
        "health host unresolvable": (
            ["--health", unresolvable],
            f"--health: cannot resolve {unresolvable}: ",
            1,
        ),
        "uid without a passwd entry": (
            ["--user", "54321"],
            "--user: uid 54321 has no passwd entry; give --group too",
            2,
        ),
    }


ACQUIRE_CASES = [
    "log file symlink",
    "pidfile symlink",
    "stdout fifo",
    "stderr fifo",
    "stdout /dev/null",
    "syslog socket missing",
    "health host unresolvable",
    "uid without a passwd entry",
]


@pytest.mark.parametrize("command", ["start", "run"])
@pytest.mark.parametrize("case", ACQUIRE_CASES)
def test_acquire_errors_name_the_flag(app_dir: Path, command: str, case: str) -> None:
    """A resource not acquired: one line naming the flag typed (--log-file), not the keyword."""
    options, expected, status = _acquire_failures(app_dir)[case]
    if "--pidfile" not in options:
        options += ["--pidfile", str(app_dir / "app.pid")]
    result = cli(command, "app:main", *options, cwd=app_dir)
    line = one_line(result.stderr)
    assert result.returncode == status, line
    assert line.startswith(f"aiodaemon: {expected}")
    for keyword in ("log_file", "pidfile ", "stdout ", "stderr ", "syslog ", "group="):
        assert keyword not in line
    assert result.stdout == ""
    assert not (app_dir / "app.pid").exists()
    assert not (app_dir / "started").exists()


@pytest.mark.parametrize("command", ["start", "run"])
def test_a_control_socket_given_and_not_bound_names_the_flag(app_dir: Path, command: str) -> None:
    """``--control PATH`` that cannot be bound: ``--control: cannot bind PATH: ...``.

    As ``--listen`` and ``--health`` refusals name their flag; the pidfile's
    own ``.ctl`` beside it, which the user never typed, keeps its wording.
    """
    path, pidfile = app_dir / "app.ctl", app_dir / "app.pid"
    with socket.socket(socket.AF_UNIX) as live:
        # A live socket there: refused at the bind, after every check of the path.
        live.bind(str(path))
        live.listen()
        given = cli(command, "app:main", "--pidfile", pidfile, "--control", path, cwd=app_dir)
        os.rename(path, f"{pidfile}.ctl")
        implicit = cli(command, "app:main", "--pidfile", pidfile, cwd=app_dir)
    assert given.returncode == 1
    assert one_line(given.stderr).startswith(f"aiodaemon: --control: cannot bind {path}: ")
    assert implicit.returncode == 1
    assert one_line(implicit.stderr).startswith(f"aiodaemon: control socket {pidfile}.ctl: ")
    assert not pidfile.exists()


# --- start by another user while root's daemon runs --------------------------------

#: nobody: a real other user, who may neither write root's pidfile nor signal its daemon.
OTHER_UID = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A root-owned directory every user can read (pytest's tmp_path is closed to others)."""
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-cli-"))
    path.chmod(0o755)
    install_program("cli_app", path, "app.py")
    yield path
    for pid in pids_with(str(path)):
        kill_quietly(pid)
    shutil.rmtree(path, ignore_errors=True)


def cli_as_other_user(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``aiodaemon ARGS`` as uid and gid 65534, with no supplementary groups."""
    setpriv = require_tool("setpriv")
    # The test interpreter may live under /root (0700): the other user keeps
    # only the right to read and search files (CAP_DAC_READ_SEARCH), never to
    # write them nor to signal root's processes.
    return subprocess.run(
        [
            setpriv,
            f"--reuid={OTHER_UID}",
            f"--regid={OTHER_UID}",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            str(AIODAEMON),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=45,
        check=False,
    )


@pytest.mark.root
@pytest.mark.parametrize(
    ("command", "status", "tail"),
    [
        ("start", 0, ")"),
        ("run", 3, ")"),
        ("restart", 4, "); not restarted: --pidfile: directory is not writable: {dir}"),
    ],
    ids=["start", "run", "restart"],
)
def test_other_user_is_told_already_running(
    shared_dir: Path, command: str, status: int, tail: str
) -> None:
    """Another user starting root's running daemon: "already running (pid N)", daemon untouched."""
    pidfile = shared_dir / "app.pid"
    started = cli("start", "app:main", "--pidfile", pidfile, cwd=shared_dir)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    try:
        result = cli_as_other_user(command, "app:main", "--pidfile", pidfile, cwd=shared_dir)
        line = one_line(result.stderr)
        assert result.returncode == status, line
        assert line == (
            f"aiodaemon: already running (pid {pid}, pidfile {pidfile}"
            + tail.format(dir=shared_dir)
        )
        assert result.stdout == ""
        assert is_alive(pid)
        assert read_pid(pidfile) == pid
    finally:
        assert cli("stop", "--pidfile", pidfile, cwd=shared_dir).returncode == 0
    wait_gone(pid)


@pytest.mark.root
@pytest.mark.parametrize(("command", "status"), [("start", 4), ("restart", 4), ("run", 2)], ids=str)
def test_other_user_with_no_daemon_running_gets_the_option_error(
    shared_dir: Path, command: str, status: int
) -> None:
    """Another user, root's directory, no daemon: the --pidfile error; start, restart: 4 (LSB)."""
    pidfile = shared_dir / "app.pid"
    result = cli_as_other_user(command, "app:main", "--pidfile", pidfile, cwd=shared_dir)
    assert result.returncode == status
    assert one_line(result.stderr) == (
        f"aiodaemon: --pidfile: directory is not writable: {shared_dir}"
    )
    assert not pidfile.exists()


@pytest.mark.root
@pytest.mark.parametrize(("command", "status"), [("start", 0), ("run", 3)], ids=["start", "run"])
def test_other_user_in_a_sticky_directory_is_told_already_running(
    shared_dir: Path, command: str, status: int
) -> None:
    """Root's daemon, pidfile in a sticky /tmp-like directory: others hear "already running"."""
    sticky = shared_dir / "run"
    sticky.mkdir()
    sticky.chmod(0o1777)
    pidfile = sticky / "app.pid"
    started = cli("start", "app:main", "--pidfile", pidfile, cwd=shared_dir)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    try:
        result = cli_as_other_user(command, "app:main", "--pidfile", pidfile, cwd=shared_dir)
        assert result.returncode == status, result.stderr
        assert (
            one_line(result.stderr) == f"aiodaemon: already running (pid {pid}, pidfile {pidfile})"
        )
        assert is_alive(pid)
        assert read_pid(pidfile) == pid
    finally:
        assert cli("stop", "--pidfile", pidfile, cwd=shared_dir).returncode == 0
    wait_gone(pid)
