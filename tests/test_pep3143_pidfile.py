"""aiodaemon.pep3143's pidfile where the original libraries' habits must hold: path, lockfile API.

The original libraries (python-daemon, pep3143daemon) take the pidfile in the
daemon; aiodaemon locks its ``PidFile`` in the caller. These tests run real
daemons with the original library and with aiodaemon, changing only the
import, and compare where the file is and what is left of it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from aiodaemon import pep3143
from aiodaemon.exceptions import AlreadyRunningError

from .support import PROGRAMS, PYTHON, clean_env, kill_quietly, python, read_pid, wait_gone

NOBODY = 65534


def _jail(directory: Path) -> None:
    """A chroot directory with /data and the /dev/null the original libraries need."""
    (directory / "root" / "dev").mkdir(parents=True)
    (directory / "root" / "data").mkdir()
    null = directory / "root" / "dev" / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    null.chmod(0o666)


def _pidfiles(directory: Path) -> dict[str, str]:
    """Every app.pid under ``directory``, relative path → content."""
    return {str(p.relative_to(directory)): p.read_text() for p in directory.rglob("app.pid")}


def _run_relative(
    directory: Path, library: str, aiodaemon: str, jail: str, *extra: str
) -> dict[str, object]:
    """Start pep3143_relative.py from DIR/caller; what is seen while it runs and after SIGTERM."""
    (directory / "caller").mkdir(parents=True)
    (directory / "wd").mkdir()
    if jail == "yes":
        _jail(directory)
    launcher = subprocess.Popen(
        [PYTHON, PROGRAMS / "pep3143_relative.py", library, aiodaemon, directory, jail, *extra],
        cwd=directory / "caller",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    pid = 0
    try:
        pid = read_pid(directory / "ready.tmp")
        assert launcher.wait(timeout=30) == 0, launcher.communicate()[0]
        running = _pidfiles(directory)
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        if pid > 1:
            kill_quietly(pid)
        if launcher.poll() is None:
            launcher.kill()
        launcher.communicate()
    return {
        "running": {k: v.replace(str(pid), "<pid>") for k, v in running.items()},
        "after exit": _pidfiles(directory),
    }


def _seen_both_ways(tmp_path: Path, library: str, jail: str, *extra: str) -> dict[str, object]:
    """:func:`_run_relative` with ``library`` itself and with aiodaemon's drop-in for it:
    what both saw, checked the same."""
    if importlib.util.find_spec("pep3143daemon") is None:
        pytest.fail("pep3143daemon is missing: run `bash .ci/venv test` (it is in the test extra)")
    if jail == "yes" and os.geteuid() != 0:
        pytest.fail("this test needs root (chroot); CI runs it as root")
    seen = {
        aiodaemon: _run_relative(tmp_path / aiodaemon, library, aiodaemon, jail, *extra)
        for aiodaemon in ("no", "yes")
    }
    assert seen["yes"] == seen["no"]
    return seen["no"]


@pytest.mark.parametrize("jail", ["no", pytest.param("yes", marks=pytest.mark.root)])
@pytest.mark.parametrize("library", ["python-daemon", "pep3143daemon"])
def test_relative_pidfile_is_under_the_working_directory_and_removed(
    tmp_path: Path, library: str, jail: str
) -> None:
    """A relative pidfile path lands where the original library puts it, and goes at exit."""
    where = "root/data/app.pid" if jail == "yes" else "wd/app.pid"
    seen = _seen_both_ways(tmp_path, library, jail)
    assert seen == {"running": {where: "<pid>\n"}, "after exit": {}}


@pytest.mark.parametrize("jail", ["no", pytest.param("yes", marks=pytest.mark.root)])
@pytest.mark.parametrize("library", ["python-daemon", "pep3143daemon"])
def test_bytes_paths_are_taken_as_the_original_libraries_take_them(
    tmp_path: Path, library: str, jail: str
) -> None:
    """Directories and a PidFile path given as bytes: taken as the original libraries take them."""
    where = "root/data/app.pid" if jail == "yes" else "wd/app.pid"
    seen = _seen_both_ways(tmp_path, library, jail, "bytes")
    assert seen == {"running": {where: "<pid>\n"}, "after exit": {}}


@pytest.mark.parametrize("library", ["python-daemon", "pep3143daemon"])
def test_a_working_directory_given_as_a_descriptor_holds_a_relative_pidfile(
    tmp_path: Path, library: str
) -> None:
    """working_directory=<fd>, which os.chdir takes: the relative pidfile is in its directory."""
    seen = _seen_both_ways(tmp_path, library, "no", "fd")
    assert seen == {"running": {"wd/app.pid": "<pid>\n"}, "after exit": {}}


def test_relative_pidfile_with_a_missing_working_directory(tmp_path: Path) -> None:
    """A missing working_directory is a DaemonOSEnvironmentError, as without a pidfile."""
    code = (
        "import os\n"
        "from aiodaemon import pep3143 as daemon\n"
        "context = daemon.DaemonContext(\n"
        "    working_directory='missing', pidfile=daemon.PidFile('app.pid'), detach_process=False\n"
        ")\n"
        "try:\n"
        "    context.open()\n"
        "except daemon.DaemonOSEnvironmentError as exc:\n"
        "    print(exc, os.listdir())\n"
    )
    result = python(["-c", code], cwd=tmp_path)
    assert result.stdout == f"[Errno 2] No such file or directory {tmp_path}/missing []\n", (
        result.stderr
    )


def test_break_lock_removes_only_a_pidfile_nobody_holds(tmp_path: Path) -> None:
    """break_lock() removes a stale pidfile, and leaves a live daemon's (and our own) alone."""
    stale = tmp_path / "stale.pid"
    stale.write_text("999999\n")
    pep3143.pidfile.TimeoutPIDLockFile(stale, 1).break_lock()
    assert not stale.exists()
    pep3143.pidfile.TimeoutPIDLockFile(stale, 1).break_lock()  # nothing there: nothing to do

    started = python([PROGRAMS / "pep3143_cases.py", "detached", tmp_path])
    assert started.returncode == 0, started.stderr
    pid = read_pid(tmp_path / "ready")
    live = tmp_path / "app.pid"
    try:
        pep3143.PidFile(live).break_lock()
        assert read_pid(live) == pid
        assert pep3143.PidFile(live).is_locked()
        (tmp_path / "ready").unlink()
        second = python([PROGRAMS / "pep3143_cases.py", "detached", tmp_path])
        assert f"already running (pid {pid}, pidfile {live})" in second.stderr
    finally:
        kill_quietly(pid, signal.SIGTERM)
    wait_gone(pid)

    own = pep3143.PidFile(tmp_path / "own.pid")
    with own:
        own.break_lock()
        assert (tmp_path / "own.pid").read_text() == f"{os.getpid()}\n"
        assert own.i_am_locking()
    assert not (tmp_path / "own.pid").exists()


def test_timeout_is_lockfiles_and_is_waited_for(tmp_path: Path) -> None:
    """.timeout is lockfile's value, and acquire() waits that long for a holder."""
    import daemon.pidfile

    path = tmp_path / "app.pid"
    for timeout in (None, 0.3):
        theirs = daemon.pidfile.TimeoutPIDLockFile(str(path), 5, timeout=timeout)
        ours = pep3143.pidfile.TimeoutPIDLockFile(path, 5, timeout=timeout)
        assert (ours.timeout, ours.acquire_timeout) == (theirs.timeout, theirs.acquire_timeout)
    with pep3143.PidFile(path):
        waiter = pep3143.PidFile(path, timeout=0.3)
        began = time.monotonic()
        with pytest.raises(AlreadyRunningError):
            waiter.acquire()
        # The lower bound only: the wait is a deadline, never cut short.
        assert time.monotonic() - began >= 0.3


@pytest.mark.root
@pytest.mark.parametrize(
    ("mode", "owner", "emptied"),
    [(0o755, 0, True), (0o1777, 0, False), (0o755, NOBODY, False)],
    ids=["root-only", "sticky", "the-users"],
)
def test_pidfile_after_a_uid_drop_is_removed_or_emptied(
    mode: int, owner: int, emptied: bool
) -> None:
    """After a uid drop, close() removes the pidfile if the user may unlink it, else empties it."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (setuid); CI runs it as root")
    # Not tmp_path: pytest's directories are 0700, closed to the dropped user.
    base = Path(tempfile.mkdtemp(prefix="aiodaemon-pep3143-"))
    pids: list[int] = []
    try:
        base.chmod(0o755)
        run = base / "run"  # /run on Debian: 0755 root
        run.mkdir()
        run.chmod(mode)
        os.chown(run, owner, owner)
        pidfile = run / "d.pid"
        for attempt in ("first", "next"):
            launched = python([PROGRAMS / "pep3143_dropped.py", pidfile, base / attempt])
            assert launched.returncode == 0, launched.stderr
            pids.append(read_pid(base / attempt))
            assert read_pid(pidfile) == pids[-1]
            assert pidfile.stat().st_uid == NOBODY
            os.kill(pids[-1], signal.SIGTERM)
            wait_gone(pids[-1])
            if not emptied:
                assert not pidfile.exists()
                break
            # Left behind, empty: it reads as not running, and the next start takes it.
            assert pidfile.read_text() == ""
            left = pep3143.PidFile(pidfile)
            assert (left.is_locked(), left.read_pid()) == (False, None)
            status = python(["-m", "aiodaemon", "status", "--pidfile", pidfile])
            assert status.returncode == 3, status.stdout  # LSB "not running"
    finally:
        for pid in pids:
            kill_quietly(pid)
        shutil.rmtree(base, ignore_errors=True)


def test_pidlockfile_takes_lockfiles_signature(tmp_path: Path) -> None:
    """``daemon.pidfile.PIDLockFile(path, threaded=False, timeout=T)``: accepted as lockfile's."""
    import daemon.pidfile

    path = tmp_path / "app.pid"
    theirs = daemon.pidfile.PIDLockFile(str(path), threaded=False, timeout=0.3)
    ours = pep3143.pidfile.PIDLockFile(path, threaded=False, timeout=0.3)
    assert ours.timeout == theirs.timeout == 0.3
    assert isinstance(pep3143.pidfile.PIDLockFile(path, True), pep3143.PidFile)
    with ours:
        assert path.read_text() == f"{os.getpid()}\n"
        assert ours.i_am_locking()
    assert not path.exists()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((5, False), {}),
        ((5, False, 0.3), {}),
        ((5,), {"threaded": True, "timeout": 0.3}),
        ((), {"acquire_timeout": 5, "timeout": 0.3}),
        ((None, False, 0.3), {}),
    ],
    ids=["threaded", "threaded-timeout", "keywords", "acquire-timeout", "timeout-only"],
)
def test_timeout_pidlockfile_passes_lockfiles_arguments(
    tmp_path: Path, args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    """``TimeoutPIDLockFile(path, acquire_timeout, threaded, timeout)``, as python-daemon's."""
    import daemon.pidfile

    path = str(tmp_path / "app.pid")
    theirs = daemon.pidfile.TimeoutPIDLockFile(path, *args, **kwargs)
    ours = pep3143.pidfile.TimeoutPIDLockFile(path, *args, **kwargs)  # type: ignore[arg-type]
    for name in ("acquire_timeout", "timeout", "unique_name", "lock_file", "path"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert isinstance(ours, pep3143.pidfile.PIDLockFile)
    assert isinstance(ours, pep3143.PidFile)
    with ours:
        assert (ours.read_pid(), ours.i_am_locking()) == (os.getpid(), True)
    assert not os.path.exists(path)
    assert not os.path.exists(ours.lock_file)


@pytest.mark.parametrize("mode", ["entered", "failing"])
def test_a_pidfile_subclass_is_entered_and_exited_as_python_daemon_does(
    tmp_path: Path, mode: str
) -> None:
    """A TimeoutPIDLockFile subclass's __enter__, acquire, __exit__, release: as python-daemon."""
    seen = {}
    for module in ("daemon", "aiodaemon.pep3143"):
        directory = tmp_path / module
        directory.mkdir()
        launcher = python([PROGRAMS / "pep3143_pidfile_subclass.py", module, directory, mode])
        wait_gone(read_pid(directory / "done"))
        if module == "daemon" or mode == "entered":
            assert launcher.returncode == 0, launcher.stderr
        else:  # aiodaemon's caller waits for open() in the daemon, and reports its failure
            assert launcher.returncode == 1
            assert launcher.stderr == "aiodaemon: RuntimeError: refused by __enter__\n"
        assert not (directory / "app.pid").exists()
        seen[module] = (directory / "events").read_text()
    assert seen["aiodaemon.pep3143"] == seen["daemon"]
    assert (
        seen["daemon"]
        == {
            "entered": (
                "__enter__ in the daemon\n"
                "acquire in the daemon\n"
                "running, the pidfile holding its pid: True, in the daemon\n"
                "__exit__ in the daemon\n"
                "release in the daemon\n"
            ),
            # The subclass's release() pairs with its acquire(), which never ran.
            "failing": (
                "__enter__ in the daemon\n"
                "open() raised RuntimeError('refused by __enter__') in the daemon\n"
            ),
        }[mode]
    )


@pytest.mark.parametrize("way", ["acquire", "open"])
@pytest.mark.parametrize("library", ["python-daemon", "aiodaemon"])
def test_lockfile_errors_are_caught_as_with_python_daemon(
    tmp_path: Path, library: str, way: str
) -> None:
    """``except lockfile.AlreadyLocked`` / ``LockTimeout`` / ``LockFailed`` catch our errors."""
    path = tmp_path / "app.pid"
    caught: dict[str, int] = {}
    with pep3143.PidFile(path):  # a live holder, for lockfile (a file) and flock alike
        for timeout in ("none", "0.2"):
            ran = python([PROGRAMS / "pep3143_lockfile.py", library, way, path, timeout])
            caught[timeout] = ran.returncode
            assert "Traceback" not in ran.stderr, ran.stderr
    missing = tmp_path / "missing" / "app.pid"
    caught["cannot create"] = python(
        [PROGRAMS / "pep3143_lockfile.py", library, way, missing, "none"]
    ).returncode
    # lockfile's AlreadyLocked, LockTimeout and LockFailed, as the program's exit status.
    assert caught == {"none": 4, "0.2": 5, "cannot create": 6}


def test_a_running_python_daemon_version_is_not_started_beside(tmp_path: Path) -> None:
    """A live python-daemon daemon's pidfile: open() says "already running", it is locked, kept."""
    (tmp_path / "wd").mkdir()
    old = python([PROGRAMS / "pep3143_relative.py", "python-daemon", "no", tmp_path, "no"])
    assert old.returncode == 0, old.stderr
    pid = read_pid(tmp_path / "ready.tmp")
    try:
        new = python([PROGRAMS / "pep3143_relative.py", "python-daemon", "yes", tmp_path, "no"])
        assert new.returncode != 0
        assert f"already running (pid {pid}, pidfile " in new.stderr, new.stderr
        theirs = pep3143.PidFile(tmp_path / "wd" / "app.pid")
        theirs.break_lock()  # pecan's "if stale: break_lock()": not a live daemon's file
        assert theirs.is_locked()
        assert read_pid(tmp_path / "wd" / "app.pid") == pid
    finally:
        kill_quietly(pid, signal.SIGTERM)
    wait_gone(pid)


def test_a_pidfile_naming_another_users_live_process_is_stale(tmp_path: Path) -> None:
    """A recycled pid (a live process of another user than the file's) never blocks a start."""
    path = tmp_path / "app.pid"
    # Dropped once started: nobody may not execute an interpreter under /root.
    code = "import os, sys, time; os.setuid(65534); print(flush=True); time.sleep(60)"
    sleeper = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE)
    assert sleeper.stdout is not None
    sleeper.stdout.readline()  # its uid dropped
    try:
        path.write_text(f"{sleeper.pid}\n")
        with pep3143.PidFile(path):
            assert path.read_text() == f"{os.getpid()}\n"
    finally:
        sleeper.kill()
        sleeper.communicate()


def test_a_clock_stepped_forward_since_the_pidfile_was_written_does_not_start_beside(
    tmp_path: Path,
) -> None:
    """A live lockfile daemon's file, its mtime an hour behind (NTP's step): refused, kept."""
    path = tmp_path / "app.pid"
    old = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"])
    try:
        path.write_text(f"{old.pid}\n")
        # What a forward step of the clock does to the file's age as the wall clock tells it.
        stepped = time.time() - 3600
        os.utime(path, (stepped, stepped))
        ours = pep3143.PidFile(path)
        assert ours.is_locked()
        with pytest.raises(AlreadyRunningError, match=f"already running \\(pid {old.pid}"):
            ours.acquire()
        assert path.read_text() == f"{old.pid}\n"
    finally:
        old.kill()
        old.wait()


@pytest.mark.parametrize(("path", "said"), [("", "must not be empty"), ("a\0b", "NUL byte")])
def test_an_empty_pidfile_path_is_named_as_such(tmp_path: Path, path: str, said: str) -> None:
    """``PidFile("")``: open() and acquire() say the path is empty ("/ is a directory" before)."""
    code = (
        "import os, sys\n"
        "from aiodaemon import pep3143 as daemon\n"
        "from aiodaemon.exceptions import StartupError\n"
        f"path = {path!r}\n"
        "context = daemon.DaemonContext(\n"
        "    working_directory='/', pidfile=daemon.PidFile(path), detach_process=False\n"
        ")\n"
        "for step in (context.open, daemon.PidFile(path).acquire):\n"
        "    try:\n"
        "        step()\n"
        "    except StartupError as exc:\n"
        "        print(exc, os.getcwd() == sys.argv[2], context.is_open)\n"
    )
    result = python(["-c", code, "", tmp_path], cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stderr
    for line in lines:
        assert line.startswith("pidfile: "), line
        assert line.endswith(" True False"), line  # nothing changed, nothing opened
        assert said in line, line
    assert list(tmp_path.iterdir()) == []


def test_an_acquire_that_cannot_write_the_pid_gives_the_lock_back(tmp_path: Path) -> None:
    """``acquire()`` failing to write the pid (a full disk): the lock is not kept, another takes it.

    The failed call kept the file locked and empty for the rest of the
    program's life: every other start said "already running (pid not yet
    written)", and ``i_am_locking()`` said True after the error.
    """
    path = tmp_path / "app.pid"
    program = subprocess.Popen(
        [PYTHON, PROGRAMS / "pep3143_unwritten_pid.py", path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        # Modules first imported under the limit would leave cut .pyc files behind.
        env=clean_env({"PYTHONDONTWRITEBYTECODE": "1"}),
    )
    assert program.stdin is not None
    assert program.stdout is not None
    try:
        said = program.stdout.readline()
        assert said == f"cannot write pidfile {path}: File too large False\n"
        other = pep3143.PidFile(path)
        other.acquire()
        assert path.read_text() == f"{os.getpid()}\n"
        other.release()
    finally:
        program.stdin.close()
        assert program.wait(timeout=30) == 0
        program.stdout.close()
