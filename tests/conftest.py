"""Fixtures shared by several test modules, and a guard against leaked daemons."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .control_support import ControlApp, open_control_app
from .support import SESSION_VARIABLE, ForegroundDaemon, Rsyslog, proc_state, wait_for

#: Seconds a daemon stopped at the very end of a test gets to finish its exit.
_GRACE = 5.0


@pytest.fixture
def control_app() -> Iterator[ControlApp]:
    """A tests/programs/control_app.py daemon's directory, cleaned up after the test."""
    with open_control_app() as app:
        yield app


@pytest.fixture
def daemons() -> Iterator[list[ForegroundDaemon]]:
    """Daemons started by a test; killed if it leaves any behind."""
    started: list[ForegroundDaemon] = []
    yield started
    for d in started:
        d.kill()


@pytest.fixture
def foreground(tmp_path: Path, daemons: list[ForegroundDaemon]) -> Any:
    """Start a foreground daemon from ``tests/programs/NAME.py`` (see recorder.py)."""

    def starter(name: str, *args: str, **options: Any) -> ForegroundDaemon:
        d = ForegroundDaemon(tmp_path, name, *args, **options)
        daemons.append(d)
        return d

    return starter


@pytest.fixture
def jail_base(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory any account may enter, holding an empty ``jail`` for ``chroot=``.

    Outside tmp_path, whose parents only root may enter: a daemon dropped to
    nobody keeps its files beside the jail. chroot needs root.
    """
    if os.geteuid() != 0:
        name = request.module.__name__.rpartition(".")[2]
        pytest.fail(f"{name} needs root: run the suite as root (as .ci/run does)")
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-jail-"))
    path.chmod(0o755)
    (path / "jail").mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    """A running private rsyslogd."""
    directory = tmp_path / "rsyslog"
    directory.mkdir()
    server = Rsyslog(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


#: Variables a developer's shell may set that change what the programs under test
#: do (an unbuffered stdout, no cached bytecode); CI has none of them.
_CALLER_VARIABLES = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")


#: What an interactive shell's foreground command starts with.
_TERMINAL_DISPOSITIONS = (
    (signal.SIGINT, signal.default_int_handler),
    (signal.SIGQUIT, signal.SIG_DFL),
    (signal.SIGHUP, signal.SIG_DFL),
)


def pytest_configure(config: pytest.Config) -> None:
    """Mark the run's environment (xdist workers inherit it from the controller)."""
    # Every run as CI's: a test that needs one of these sets it itself.
    for name in _CALLER_VARIABLES:
        os.environ.pop(name, None)
    # Every daemon started with the signal dispositions a terminal gives: a
    # suite run in a script's background (no job control: SIGINT and SIGQUIT
    # ignored) or under nohup (SIGHUP) would pass its ignored ones on to each.
    for signum, default in _TERMINAL_DISPOSITIONS:
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, default)
    if not hasattr(config, "workerinput"):
        os.environ[SESSION_VARIABLE] = secrets.token_hex(8)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``root`` for a user who is not root, saying why.

    They drop privileges, chroot or enter namespaces: as anyone else they fail
    on the setup, not on aiodaemon. Under CI (``CI`` set) they run and fail,
    as a missing outside program does: a CI that is not root must not pass.
    """
    if os.geteuid() == 0 or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="needs root (privilege drop, chroot, namespaces): run as root")
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if a daemon a test started outlives it (and kill what is left).

    Runs in the controller once every worker has finished: a process still
    carrying this run's mark that is not our own child (a worker) was left
    behind by a test, typically a detached daemon nobody stopped.
    """
    if hasattr(session.config, "workerinput"):
        return
    token = os.environ.get(SESSION_VARIABLE)
    if token is None:
        return
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not _marked_processes(token), _GRACE, "the last daemons to exit")
    leaked = _marked_processes(token)
    if not leaked:
        return
    for pid, command in leaked.items():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        print(f"\nleaked process {pid} (killed): {command}")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _marked_processes(token: str) -> dict[int, str]:
    """Live processes with ``SESSION_VARIABLE=token`` that are neither us nor our children."""
    mark = f"{SESSION_VARIABLE}={token}".encode()
    me = os.getpid()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if parent != me and proc_state(pid) not in (None, "Z", "X"):
            found[pid] = command
    return found
