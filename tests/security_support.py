"""Helpers for the security tests: a real second uid, its actions, victims and daemons.

The attacker is a real user created for the session (``useradd``, removed at
the end). Its actions run in a child forked from the test process that has
switched to the attacker's uid and gid for good, so no interpreter file needs
to be readable by it (the one under /root may not be).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import itertools
import json
import os
import pwd
import re
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .support import (
    PYTHON,
    REPO,
    clean_env,
    is_alive,
    kill_quietly,
    read_pid,
    require_tool,
    shared_python,
    wait_for,
    wait_gone,
)

PROGRAM = REPO / "tests" / "programs" / "security_daemon.py"


@dataclass(frozen=True)
class User:
    """A real user and its primary group."""

    name: str
    uid: int
    gid: int


#: Debian's nobody (and nogroup): an account every system has, owning nothing.
NOBODY = User("nobody", 65534, 65534)


def _retry_locked(argv: list[str]) -> None:
    """Run a shadow-utils command, retrying while another one holds /etc/passwd's lock."""

    def attempt() -> bool:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode == 0:
            return True
        if "lock" in result.stderr:
            return False
        raise AssertionError(f"{argv}: {result.stderr.strip()}")

    wait_for(attempt, 60, f"{argv[0]} to get the passwd lock")


_users = itertools.count()
#: The names _session_user gives: the pid of the test process that made the user.
_USER_NAME = re.compile(r"aiodsec(\d+)x\d+")


@pytest.fixture(scope="session")
def intruder() -> Iterator[User]:
    """A real unprivileged user (with its own group) for the session, removed afterwards."""
    with _session_user() as user:
        yield user


@pytest.fixture(scope="session")
def service_account() -> Iterator[User]:
    """A second real user, distinct from ``intruder``: the account a daemon drops to."""
    with _session_user() as user:
        yield user


@contextlib.contextmanager
def _session_user() -> Iterator[User]:
    if os.geteuid() != 0:
        pytest.fail("the security tests create a user and drop to it: run them as root")
    # Each test module that imports this fixture gets its own instance (and user).
    name = f"aiodsec{os.getpid()}x{next(_users)}"
    useradd, userdel = require_tool("useradd"), require_tool("userdel")
    _remove_orphaned_users(userdel)
    _retry_locked(
        [useradd, "--system", "--user-group", "--no-create-home", "-s", "/usr/sbin/nologin", name]
    )
    entry = pwd.getpwnam(name)
    try:
        yield User(name, entry.pw_uid, entry.pw_gid)
    finally:
        _retry_locked([userdel, name])


def _remove_orphaned_users(userdel: str) -> None:
    """Remove the users of test processes that are gone without their cleanup (a killed run).

    Best effort: another session may be removing the same user, or a process a
    killed run left may still run as it.
    """
    for entry in pwd.getpwall():
        match = _USER_NAME.fullmatch(entry.pw_name)
        if match is None or is_alive(int(match[1])):
            continue

        def attempt(name: str = entry.pw_name) -> bool:
            argv = [userdel, name]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
            return result.returncode == 0 or "lock" not in result.stderr

        wait_for(attempt, 60, f"userdel {entry.pw_name} to get the passwd lock")


@pytest.fixture
def arena() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp_path is closed to other users)."""
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-sec-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def become(user: User) -> None:
    """Turn this (forked) process into ``user`` for good."""
    os.setgroups([])
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)


def fork_as(user: User, action: Callable[[], object]) -> int:
    """Start ``action`` in a child forked as ``user``; return its pid (see :func:`wait_child`)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        # The worker's objects are the parent's: collecting them here crashed
        # the child once a test had loaded grpc (its threads are not forked),
        # when pytest's unraisable hook ran an import in it.
        gc.disable()
        sys.unraisablehook = sys.__unraisablehook__
        try:
            become(user)
            action()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int, timeout: float = 30.0) -> None:
    """Wait for a :func:`fork_as` child and fail the test if its action raised."""
    statuses: list[int] = []

    def done() -> bool:
        waited, status = os.waitpid(pid, os.WNOHANG)
        statuses.append(status)
        return waited == pid

    try:
        wait_for(done, timeout, "the attacker")
    except AssertionError:
        kill_quietly(pid)
        os.waitpid(pid, 0)
        raise
    assert os.waitstatus_to_exitcode(statuses[-1]) == 0, "the attacker's action failed"


def as_user(user: User, action: Callable[[], object]) -> None:
    """Run ``action`` as ``user`` in a forked child, to completion."""
    wait_child(fork_as(user, action))


def own_dir(path: Path, user: User, mode: int = 0o755) -> Path:
    """Create ``path`` as a directory owned by ``user`` (a log or run directory it controls)."""
    path.mkdir(mode=mode)
    os.chown(path, user.uid, user.gid)
    path.chmod(mode)
    return path


@dataclass(frozen=True)
class Snapshot:
    """What must not change about a victim file."""

    content: bytes
    uid: int
    gid: int
    mode: int

    @classmethod
    def of(cls, path: Path) -> Snapshot:
        """Take the snapshot of ``path`` (not following a symlink at it)."""
        st = os.lstat(path)
        return cls(path.read_bytes(), st.st_uid, st.st_gid, st.st_mode)


def shared_python_as(
    user: User | None, *args: str | os.PathLike[str], cwd: Path | str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` run to completion as ``user`` (None: as root), output as text.

    The interpreter is one any account may run (:func:`shared_python`), with this
    checkout and the test's site-packages importable; ``user`` gets no
    supplementary groups.
    """
    site = Path(sysconfig.get_paths()["purelib"])
    return subprocess.run(
        [shared_python(), *map(str, args)],
        cwd=cwd,
        env=clean_env({"PYTHONPATH": os.pathsep.join([str(REPO), str(site)])}),
        user=None if user is None else user.uid,
        group=None if user is None else user.gid,
        extra_groups=None if user is None else [],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def make_victim(directory: Path, name: str = "victim") -> Path:
    """A root-owned 0600 file holding a secret, in ``directory``."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_bytes(b"root's secret\n")
    os.chown(path, 0, 0)
    path.chmod(0o600)
    return path


def start_daemon(
    options: dict[str, Any], mark: Path | None = None, *, umask: int = -1
) -> subprocess.CompletedProcess[str]:
    """Start tests/programs/security_daemon.py as root and wait for its launcher to exit."""
    argv = [PYTHON, str(PROGRAM), json.dumps(options)]
    if mark is not None:
        argv.append(str(mark))
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        check=False,
        umask=umask,
    )


@contextlib.contextmanager
def running_daemon(options: dict[str, Any], *, umask: int = -1) -> Iterator[int]:
    """A detached daemon with ``options`` (which must name a pidfile); yields its pid, stops it."""
    started = start_daemon({"detach": True, **options}, umask=umask)
    assert started.returncode == 0, started.stderr
    pid = read_pid(Path(options["pidfile"]))
    try:
        yield pid
    finally:
        stop_daemon(pid)


def stop_daemon(pid: int) -> None:
    """SIGTERM ``pid`` and wait until it is gone (SIGKILL if it will not go)."""
    kill_quietly(pid, signal.SIGTERM)
    try:
        wait_gone(pid, 20)
    finally:
        kill_quietly(pid)


def assert_refused_in_open_directory(
    arena: Path, named: str, option: Callable[[Path], dict[str, Any]]
) -> None:
    """A start whose ``option(directory)`` is in a world-writable directory without the sticky bit.

    Asserts the refusal a user sees: exit 2, one line naming ``named``,
    nothing started, nothing made in the directory.
    """
    open_dir = arena / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    (arena / "run").mkdir()
    options = {"detach": True, "pidfile": str(arena / "run" / "app.pid"), **option(open_dir)}
    mark = arena / "started"
    result = start_daemon(options, mark)
    if result.returncode == 0:
        stop_daemon(read_pid(arena / "run" / "app.pid"))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"aiodaemon: {named}: directory is world-writable without the sticky bit: {open_dir}\n"
    )
    assert not mark.exists()
    assert list(open_dir.iterdir()) == []


def records(path: Path) -> list[dict[str, Any]]:
    """The JSON records of a log file so far (a partial last line is skipped)."""
    out = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def refused_reopen(old_file: Path) -> dict[str, Any]:
    """Wait for the record of a refused log (or stderr file) reopen, in the file still in use."""
    refusals = (
        "cannot reopen log file, keeping the old one",
        "cannot reopen output file, keeping the old one",
    )

    def refusal() -> dict[str, Any] | None:
        for record in records(old_file):
            if record["event"] in refusals:
                return record
        return None

    found: dict[str, Any] = wait_for(refusal, what="the refused reopen in the old file")
    return found


def shared_dir(path: Path, mode: int = 0o1777, group: int = 0) -> Path:
    """A root-owned sticky directory others may write to (like /tmp, or a group's spool)."""
    path.mkdir()
    os.chown(path, 0, group)
    path.chmod(mode)
    return path


@contextlib.contextmanager
def holding(user: User, take: Callable[[], object], what: str) -> Iterator[int]:
    """A process of ``user`` runs ``take`` (opening, locking...), then keeps what it took.

    Yields that process's pid once ``take`` returned there; the process lets go
    when the block ends. ``what`` names the step in the failure messages.
    """
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()

    def hold() -> None:
        os.close(ready_r)
        os.close(release_w)
        take()
        os.write(ready_w, b"!")
        os.read(release_r, 1)  # EOF when the test closes its end

    holder = fork_as(user, hold)
    os.close(ready_w)
    os.close(release_r)
    try:
        readable, _, _ = select.select([ready_r], [], [], 30)
        assert readable, f"{what} never happened"
        assert os.read(ready_r, 1) == b"!", f"{what} failed"
        yield holder
    finally:
        os.close(ready_r)
        os.close(release_w)
        wait_child(holder)


@contextlib.contextmanager
def planted(user: User, path: Path, *, lock: bool = False) -> Iterator[int]:
    """``user`` creates ``path`` (mode 0666) and keeps it open, maybe locked with its pid in it.

    Yields the pid of ``user``'s process holding the descriptor, once the file
    is in place; the process lets go when the block ends.
    """

    def plant() -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        os.fchmod(fd, 0o666)
        if lock:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    with holding(user, plant, "the planting of the file") as holder:
        yield holder


def report_in_new_pid_namespace(program: Path, *args: str, timeout: float) -> dict[str, Any]:
    """Run test ``program`` with ``args`` in a pid namespace of its own: its JSON report.

    There the program alone gives out pids (``ns_last_pid``), so it can put
    another process on a pid it freed without racing anyone's forks.
    """
    unshare = [require_tool("unshare"), "--pid", "--fork", "--mount-proc", "--"]
    result = subprocess.run(
        [*unshare, PYTHON, str(program), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report
