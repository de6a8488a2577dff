"""aiodaemon.pep3143 on its own: light imports, pidfile rules, errors where the caller sees them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from aiodaemon import pep3143
from aiodaemon.exceptions import AlreadyRunningError

from .support import (
    PYTHON,
    REPO,
    clean_env,
    kill_quietly,
    program,
    python,
    read_pid,
    wait_for,
    wait_gone,
    without_nproc_note,
)

CASES = REPO / "tests" / "programs" / "pep3143_cases.py"


def run_case(case: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """Run one case of tests/programs/pep3143_cases.py to completion."""
    return python([CASES, case, directory])


def test_defaults_follow_the_pep_except_umask() -> None:
    """A fresh context has the PEP's defaults, with umask 0o022 instead of 0."""
    context = pep3143.DaemonContext(detach_process=True)
    assert context.umask == 0o022
    assert context.working_directory == "/"
    assert (context.uid, context.gid) == (os.getuid(), os.getgid())
    assert context.prevent_core is True
    assert context.initgroups is False
    assert context.chroot_directory is None
    assert context.pidfile is None
    assert context.files_preserve is None
    assert (context.stdin, context.stdout, context.stderr) == (None, None, None)
    assert context.signal_map == {
        signal.SIGTSTP: None,
        signal.SIGTTIN: None,
        signal.SIGTTOU: None,
        signal.SIGTERM: "terminate",
    }
    assert context.is_open is False


@pytest.mark.parametrize(
    ("signal_map", "message"),
    [
        ("{signal.SIGUSR1: 42}", "signal_map: 42 for 10 is not a handler"),
        ("{signal.SIGKILL: None}", "signal_map: SIGKILL cannot be handled"),
        ("{0: None}", "signal_map: 0 is not a signal number"),
        # Below SIGRTMIN, reserved by glibc for its threads: signal.signal() says EINVAL.
        ("{32: None}", "signal_map: signal 32 cannot be handled"),
    ],
)
def test_unusable_signal_map_is_refused_before_anything_changes(
    tmp_path: Path, signal_map: str, message: str
) -> None:
    """A signal_map entry that signal.signal would refuse fails open() before any change."""
    # In a child: were the check to let it through, open() would daemonize the caller.
    code = (
        "import os, signal\n"
        "from aiodaemon import pep3143\n"
        f"context = pep3143.DaemonContext(detach_process=False, signal_map={signal_map})\n"
        "try:\n"
        "    context.open()\n"
        "except pep3143.DaemonError as exc:\n"
        "    print(exc, os.getcwd(), context.is_open)\n"
    )
    result = python(["-c", code], cwd=tmp_path)
    assert result.stdout == f"{message} {tmp_path} False\n", result.stderr


def test_terminate_raises_system_exit() -> None:
    """terminate() ends the program with SystemExit naming the signal."""
    with pytest.raises(SystemExit, match="Terminating on signal 15"):
        pep3143.DaemonContext().terminate(int(signal.SIGTERM), None)


def test_open_loads_neither_asyncio_nor_structlog(tmp_path: Path) -> None:
    """Importing and opening a context (with a PidFile) loads no asyncio, structlog or orjson."""
    result = run_case("modules", tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out.log").read_text()) == []


def test_detach_decision_follows_supervisors() -> None:
    """detach_process=None stays in the foreground under systemd or inetd, else detaches."""
    code = "from aiodaemon import pep3143; print(pep3143.DaemonContext().detach_process)"
    assert python(["-c", code]).stdout == "True\n"
    assert python(["-c", code], env={"INVOCATION_ID": "x"}).stdout == "False\n"
    import socket

    left, right = socket.socketpair()
    with left, right:
        inetd = subprocess.run(
            [PYTHON, "-c", code],
            stdin=left.fileno(),
            capture_output=True,
            text=True,
            env=clean_env(),
            check=False,
        )
    assert inetd.stdout == "False\n"


def test_already_running_is_raised_in_the_caller(tmp_path: Path) -> None:
    """A PidFile held by a live daemon makes open() raise in the calling process; nothing forks."""
    first = run_case("detached", tmp_path)
    assert first.returncode == 0, first.stderr
    pid = read_pid(tmp_path / "ready")
    try:
        assert read_pid(tmp_path / "app.pid") == pid
        (tmp_path / "ready").unlink()
        second = run_case("detached", tmp_path)
        assert second.returncode == 1
        assert f"AlreadyRunningError: already running (pid {pid}, pidfile {tmp_path}/app.pid)" in (
            second.stderr
        )
        assert not (tmp_path / "ready").exists()
        assert read_pid(tmp_path / "app.pid") == pid
    finally:
        kill_quietly(pid, signal.SIGTERM)
    wait_gone(pid)
    assert not (tmp_path / "app.pid").exists()


def test_stale_pidfile_does_not_block(tmp_path: Path) -> None:
    """A pidfile left by a dead daemon (unlocked, old pid) is taken over at once."""
    (tmp_path / "app.pid").write_text("999999\n")
    result = run_case("detached", tmp_path)
    assert result.returncode == 0, result.stderr
    pid = read_pid(tmp_path / "ready")
    try:
        assert read_pid(tmp_path / "app.pid") == pid
    finally:
        kill_quietly(pid, signal.SIGTERM)
    wait_gone(pid)


def test_symlinked_pidfile_is_refused(tmp_path: Path) -> None:
    """A symlink at the PidFile's path is refused before anything forks."""
    (tmp_path / "target").write_text("precious\n")
    (tmp_path / "app.pid").symlink_to(tmp_path / "target")
    result = run_case("detached", tmp_path)
    assert result.returncode == 1
    assert "is a symlink; refusing to follow it" in result.stderr
    assert (tmp_path / "target").read_text() == "precious\n"


def test_failure_after_the_fork_reaches_the_caller(tmp_path: Path) -> None:
    """A pidfile failing in the daemon makes the caller exit 1 with the error (python-daemon: 0)."""
    result = run_case("failing_pidfile", tmp_path)
    assert result.returncode == 1
    assert result.stderr == "aiodaemon: RuntimeError: the lock server is down\n"
    assert not (tmp_path / "ready").exists()


@pytest.mark.root
@pytest.mark.parametrize("fork", ["first", "second"])
def test_a_fork_the_system_refuses_fails_open_and_leaves_no_pidfile(fork: str) -> None:
    """No process left to fork (RLIMIT_NPROC): open() fails plainly and the PidFile is gone.

    The first fork refused raised aiodaemon's StartupError, which a
    python-daemon program's ``except daemon.daemon.DaemonProcessDetachError``
    let through as a traceback; refused either fork, the locked, empty
    pidfile stayed behind.
    """
    base = Path(tempfile.mkdtemp(prefix="aiodaemon-pep3143-"))
    # A uid of its own: RLIMIT_NPROC counts every process of the user.
    uid = 200_000 + os.getpid() % 100_000
    try:
        base.chmod(0o755)
        run_dir = base / "run"
        run_dir.mkdir(mode=0o755)
        os.chown(run_dir, uid, 65534)
        nproc = 1 if fork == "first" else 2
        result = python([program("pep3143_fork_refused"), run_dir, str(uid), str(nproc)])
        refused = "cannot fork the daemon: Resource temporarily unavailable"
        if fork == "first":
            assert (result.returncode, result.stderr) == (0, "")
            assert (
                without_nproc_note(result.stdout)
                == f"DaemonProcessDetachError: [Errno 11] {refused}\n"
            )
        else:
            # In the first child: the caller reports it and exits 1, as run() does.
            assert (result.returncode, without_nproc_note(result.stderr)) == (
                1,
                f"aiodaemon: {refused}\n",
            )
        assert list(run_dir.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bad_signal_map", "refused: signal_map: 'reload' is not a method of DaemonContext\n"),
        ("bad_stream", "has no file descriptor for the daemon's stdout\n"),
    ],
)
def test_bad_settings_are_refused_before_the_fork(tmp_path: Path, case: str, message: str) -> None:
    """An unusable signal_map entry or stream raises DaemonError in the caller, before any fork."""
    result = run_case(case, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: ")
    assert result.stdout.endswith(message)


def test_a_path_given_as_the_pidfile_is_refused_before_anything_changes(tmp_path: Path) -> None:
    """pidfile=Path(...) or a str: DaemonError saying to give a PidFile, not a daemon without."""
    result = run_case("path_pidfile", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "refused: pidfile: PosixPath('DIR/app.pid') is a path, not a lock object:"
        " give pidfile=PidFile(path)\n"
        "refused: pidfile: 'DIR/app.pid' is a path, not a lock object:"
        " give pidfile=PidFile(path)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_acquire_release_protocol(tmp_path: Path) -> None:
    """A pidfile with only acquire()/release() (pep3143daemon): acquired in the daemon, released."""
    result = run_case("acquire_release", tmp_path)
    assert result.returncode == 0, result.stderr
    pid = read_pid(tmp_path / "ready")
    wait_for(lambda: "released" in (tmp_path / "lock").read_text())
    assert (tmp_path / "lock").read_text() == f"acquired by {pid}\nreleased by {pid}\n"


def test_close_removes_and_unlocks_the_pidfile(tmp_path: Path) -> None:
    """close() removes our PidFile and releases its lock; another PidFile then takes it."""
    result = run_case("open_close", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "open True True\nclosed False False\nreacquired True\n"


def test_pidfile_alone(tmp_path: Path) -> None:
    """PidFile outside a context: a context manager writing our pid, refusing a second holder."""
    path = tmp_path / "alone.pid"
    with pep3143.PidFile(path) as held:
        assert path.read_text() == f"{os.getpid()}\n"
        assert held.i_am_locking()
        other = pep3143.PidFile(path)
        assert other.is_locked()
        with pytest.raises(AlreadyRunningError):
            other.acquire()
        # python-daemon's name for it, with a timeout that runs out.
        with pytest.raises(AlreadyRunningError):
            pep3143.pidfile.TimeoutPIDLockFile(path, 0.1).acquire()
    assert not path.exists()


@pytest.mark.root
def test_working_directory_under_the_chroot_given_as_a_host_path(tmp_path: Path) -> None:
    """working_directory=/x/root/data with chroot_directory=/x/root (pep3143daemon) is /data."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (chroot); CI runs it as root")
    (tmp_path / "root" / "data").mkdir(parents=True)
    result = run_case("chroot_host_workdir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report").read_text() == "/data ['data']\n"


#: fd numbers a test child has not opened (subprocess closes what it does not pass).
_CLOSED_FD = 700


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"stdin": _CLOSED_FD}, f"[Errno 9] stdin: {_CLOSED_FD} is not an open file descriptor"),
        ({"stderr": _CLOSED_FD}, f"[Errno 9] stderr: {_CLOSED_FD} is not an open file descriptor"),
        ({"stdout": 2**40}, f"stdout: {2**40} has no file descriptor for the daemon's stdout"),
        ({"working_directory": None}, "working_directory: must be a path, not None"),
        ({"working_directory": ""}, "working_directory: must not be empty"),
        (
            {"working_directory": "/tm\0p"},
            "working_directory: must not contain a NUL byte: '/tm\\x00p'",
        ),
        ({"chroot_directory": 5}, "chroot_directory: must be a path, not int"),
        ({"chroot_directory": ""}, "chroot_directory: must not be empty"),
        (
            {"working_directory": 0, "chroot_directory": "/"},
            "working_directory: a descriptor (0) would lead out of chroot_directory;"
            " give the directory's path inside it",
        ),
    ],
)
def test_unusable_streams_and_directories_are_refused_before_anything_changes(
    tmp_path: Path, settings: dict[str, object], said: str
) -> None:
    """A closed stdin fd, ``working_directory=None``: DaemonOSEnvironmentError, nothing changed.

    They raised a bare OSError (EBADF, after the fork when detached), TypeError
    or ValueError, which python-daemon wraps (``working_directory=None``) or
    a program's ``except daemon.DaemonError`` cannot catch.
    """
    result = python([program("pep3143_settings"), json.dumps(settings), "say"], cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"DaemonError {tmp_path} False\n{said}\n"


@pytest.mark.parametrize(
    ("kind", "warning"),
    [
        (
            "python",
            "aiodaemon: warning: threads run beside the main one (busy); the detach's fork"
            " leaves them behind, and the daemon may hang on a lock they held: start them"
            " after open()\n",
        ),
        (
            # open() from another thread: the main one is what the fork leaves behind.
            "caller",
            "aiodaemon: warning: threads other than the one calling open() (opener) run:"
            " MainThread; the detach's fork leaves them behind, and the daemon may hang on"
            " a lock they held: start them after open()\n",
        ),
        (
            "native",
            "aiodaemon: warning: 1 thread Python does not know of runs (a C library's,"
            " started at its import); the detach's fork leaves it behind, and the daemon"
            " may hang on a lock it held: import that library after open()\n",
        ),
    ],
)
def test_a_detach_while_a_thread_runs_warns_and_goes_on(
    tmp_path: Path, kind: str, warning: str
) -> None:
    """A thread running at a detached open() (python-daemon forks silently): one warning
    line on the caller's terminal, and the daemon starts (refusing would break programs
    that worked)."""
    result = python([program("pep3143_threads"), kind, tmp_path])
    assert result.returncode == 0, result.stderr
    assert result.stderr == warning
    opened = tmp_path / "opened"
    # The whole line: write_text() creates the file before it writes the pid.
    line = wait_for(
        lambda: opened.exists() and opened.read_text().endswith("\n") and opened.read_text(),
        what="the daemon's open()",
    )
    assert int(line) != 0
