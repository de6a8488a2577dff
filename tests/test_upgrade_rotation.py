"""Log rotation during an upgrade: both processes follow it, and no record is lost.

Real daemons, real files, real signals: the rotation is logrotate's documented
recipe (rename, then ``pkill -USR1 -L -F PIDFILE``), which signals only the
pidfile's holder: the old daemon until the successor writes its pid there, the
successor from then on. Every process logs numbered ticks, counted across the
rotated files at the end. The log descriptor handed to a successor is also
copied while real reopens run on another thread.
"""

from __future__ import annotations

import itertools
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aiodaemon._prefork._logsinks import open_file_sink

from .support import (
    AIODAEMON,
    PYTHON,
    aiodaemon_cli,
    children,
    clean_env,
    is_alive,
    open_fds,
    program,
    read_json_lines,
    require_tool,
    wait_for,
    wait_gone,
)

Record = dict[str, object]


@dataclass
class Daemon:
    """``tests/programs/upgrade_rotate_app.py`` with its files in one directory."""

    directory: Path
    log_file: bool = True
    #: the log goes to the ``stderr`` file at ``log`` instead (with ``log_file`` False).
    stderr: bool = False
    commands: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def pidfile(self) -> Path:
        return self.directory / "app.pid"

    @property
    def log(self) -> Path:
        return self.directory / "app.jsonl"

    @property
    def rotated(self) -> Path:
        return self.directory / "app.jsonl.1"

    @property
    def hold(self) -> Path:
        return self.directory / "hold"

    @property
    def import_hold(self) -> Path:
        return self.directory / "import-hold"

    def start(self) -> int:
        """Start it detached; its pid once ready."""
        env = {
            "APP_PIDFILE": str(self.pidfile),
            "APP_LOG": str(self.log) if self.log_file else "",
            "APP_HOLD": str(self.hold),
            "APP_IMPORT_HOLD": str(self.import_hold),
            "APP_STDERR": str(self.log) if self.stderr else "",
        }
        result = subprocess.run(
            [PYTHON, str(program("upgrade_rotate_app"))],
            cwd=self.directory,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return self.pid()

    def pid(self) -> int:
        return int(self.pidfile.read_text())

    def upgrade(self) -> subprocess.Popen[str]:
        """``aiodaemon upgrade``, running in the background."""
        command = subprocess.Popen(
            [str(AIODAEMON), "upgrade", "--pidfile", str(self.pidfile), "--timeout", "60"],
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.commands.append(command)
        return command

    def rename(self) -> None:
        """logrotate's first step: the file moves away; the daemons still hold it open."""
        os.rename(self.log, self.rotated)

    def signal_holder(self, sig: str = "USR1") -> None:
        """logrotate's ``postrotate``: signal the pidfile's lock holder only."""
        subprocess.run(
            [require_tool("pkill"), f"-{sig}", "-L", "-F", str(self.pidfile)],
            check=True,
            timeout=30,
        )

    def records(self, path: Path, pid: int, event: str | None = None) -> list[Record]:
        if not path.is_file():
            return []
        return [
            r
            for r in read_json_lines(path)
            if r["pid"] == pid and (event is None or r["event"] == event)
        ]

    def ticks(self, path: Path, pid: int) -> list[int]:
        return [int(str(r["seq"])) for r in self.records(path, pid, "tick")]

    def upgrade_held(self, old: int) -> tuple[subprocess.Popen[str], int]:
        """``aiodaemon upgrade`` whose successor waits in its startup; the command, its pid."""
        self.hold.touch()
        upgrade = self.upgrade()
        return upgrade, self.held_successor(old)

    def held_successor(self, old: int) -> int:
        """The successor's pid, once it logged ``held`` (in its startup hooks)."""
        [held] = wait_for(
            lambda: [r for r in read_json_lines(self.log) if r["event"] == "held"],
            30,
            "the successor to be held in its startup",
        )
        pid = held["pid"]
        assert isinstance(pid, int)
        assert pid != old
        return pid

    def port(self) -> int:
        """The echo port, from the first ``starting`` record."""
        # The log is written by its own thread: the record may trail the readiness.
        [starting, *_] = wait_for(
            lambda: [r for r in read_json_lines(self.log) if r["event"] == "starting"],
            30,
            "the starting record",
        )
        sockets = starting["sockets"]
        assert isinstance(sockets, dict)
        return int(str(sockets["echo"]).rsplit(":", 1)[1])

    def stop(self, pid: int) -> None:
        result = aiodaemon_cli("stop", "--pidfile", self.pidfile, "--timeout", "20")
        assert result.returncode == 0, result.stderr
        wait_gone(pid, 30)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """The test program; whatever still runs at the end is stopped."""
    app = Daemon(tmp_path)
    yield app
    app.hold.unlink(missing_ok=True)
    app.import_hold.unlink(missing_ok=True)
    for command in app.commands:
        if command.poll() is None:
            command.kill()
        command.communicate()
    aiodaemon_cli("stop", "--pidfile", app.pidfile, "--timeout", "10")


def _upgraded(upgrade: subprocess.Popen[str]) -> int:
    """The new pid ``upgrade`` printed, once it exited 0."""
    out, err = upgrade.communicate(timeout=90)
    assert upgrade.returncode == 0, err
    return int(out)


def _in_order_and_complete(app: Daemon, pid: int, *, ticked_after: bool = True) -> None:
    """``pid``'s ticks: none lost or written twice, none in the old file after the rotation.

    ``ticked_after``: ``pid`` ticked after it reopened (an old daemon that
    reopened at the hand-over may have exited before its next tick).
    """
    before, after = app.ticks(app.rotated, pid), app.ticks(app.log, pid)
    assert sorted(before + after) == list(range(len(before) + len(after)))
    assert after or not ticked_after, f"no tick of {pid} in the file at the configured path"
    assert not before or not after or max(before) < min(after)


def test_rotation_while_the_successor_starts_reaches_both(daemon: Daemon) -> None:
    """A rotation signalled to the old daemon while its successor starts is followed by both."""
    old = daemon.start()
    upgrade, successor = daemon.upgrade_held(old)
    daemon.rename()
    daemon.signal_holder()
    wait_for(lambda: daemon.ticks(daemon.log, old), 30, "the old daemon's ticks in the new file")
    # Passed on by the old daemon, while the successor is still in its startup hooks.
    wait_for(
        lambda: daemon.ticks(daemon.log, successor), 30, "the successor's ticks in the new file"
    )
    assert is_alive(successor)
    assert not daemon.records(daemon.log, successor, "ready")
    daemon.hold.unlink()
    assert _upgraded(upgrade) == successor
    wait_gone(old, 30)
    wait_for(lambda: len(daemon.ticks(daemon.log, successor)) > 50, 30, "more ticks")
    daemon.stop(successor)

    for pid in (old, successor):
        _in_order_and_complete(daemon, pid)
    for event in ("ready", "upgrade took over", "exit"):
        assert daemon.records(daemon.log, successor, event), event
    for event in ("upgrade handed over", "shutdown finished", "exit"):
        assert daemon.records(daemon.log, old, event), event
    assert not daemon.records(daemon.rotated, successor, "ready")


def test_a_stderr_file_rotated_while_the_successor_starts_is_followed_at_the_take_over(
    daemon: Daemon,
) -> None:
    """The ``stderr`` file (the log) rotated while the successor starts is its fd 2 once it serves.

    The successor's fd 2 is the file of its spawn (put back as its run
    begins); the reopen the old daemon passes on, or the ``follow_rename`` its
    claim queues, moves it to the new file, not left on the rotated one.
    """
    daemon.log_file, daemon.stderr = False, True
    old = daemon.start()
    upgrade, successor = daemon.upgrade_held(old)
    daemon.rename()
    daemon.signal_holder()
    wait_for(lambda: daemon.ticks(daemon.log, old), 30, "the old daemon's ticks in the new file")
    daemon.hold.unlink()
    assert _upgraded(upgrade) == successor
    wait_gone(old, 30)
    # Moved by the successor's log writer thread (the reopen passed on by the old
    # daemon, or the follow_rename its claim queued): a moment after the answer.
    wait_for(lambda: open_fds(successor).get(2) == str(daemon.log), 30, "fd 2 on the new file")
    wait_for(lambda: len(daemon.ticks(daemon.log, successor)) > 50, 30, "more ticks")
    daemon.stop(successor)

    for pid in (old, successor):
        _in_order_and_complete(daemon, pid)
    assert daemon.records(daemon.log, successor, "upgrade took over")


def test_a_rotation_while_the_successor_imports_moves_its_first_record(daemon: Daemon) -> None:
    """Rotated while the successor still imports its program: its records start in the new file.

    It still holds the file of its spawn then; with logrotate's delaycompress a
    second rotation would compress that file, and lose what it wrote there.
    """
    old = daemon.start()
    daemon.import_hold.touch()
    upgrade = daemon.upgrade()
    wait_for(Path(f"{daemon.import_hold}.seen").exists, 30, "the successor held in its import")
    daemon.rename()
    daemon.signal_holder()
    wait_for(lambda: daemon.ticks(daemon.log, old), 30, "the old daemon's ticks in the new file")
    daemon.import_hold.unlink()
    successor = _upgraded(upgrade)
    wait_gone(old, 30)
    daemon.stop(successor)

    assert daemon.records(daemon.log, successor, "starting")
    assert not daemon.records(daemon.rotated, successor)
    for pid in (old, successor):
        _in_order_and_complete(daemon, pid)


def test_rotation_while_the_old_daemon_drains_reaches_both(daemon: Daemon) -> None:
    """A rotation signalled to the successor after the hand-over reaches the old one draining."""
    old = daemon.start()
    with socket.create_connection(("127.0.0.1", daemon.port()), timeout=10):
        wait_for(lambda: daemon.records(daemon.log, old, "client connected"), 30, "the client")
        successor = _upgraded(daemon.upgrade())
        # The old daemon waits for our connection to finish.
        wait_for(
            lambda: daemon.records(daemon.log, old, "waiting for connections"), 30, "the drain"
        )
        assert is_alive(old)
        assert daemon.pid() == successor
        daemon.rename()
        daemon.signal_holder()
        wait_for(
            lambda: daemon.ticks(daemon.log, old), 30, "the old daemon's ticks in the new file"
        )
        wait_for(lambda: daemon.ticks(daemon.log, successor), 30, "the successor's ticks there")
        assert is_alive(old)
    wait_gone(old, 30)
    daemon.stop(successor)

    for pid in (old, successor):
        _in_order_and_complete(daemon, pid)
    for event in ("connections finished", "shutdown finished", "exit"):
        assert daemon.records(daemon.log, old, event), event


def test_rotation_reaches_every_old_daemon_still_draining(daemon: Daemon) -> None:
    """Upgraded twice while both old daemons drain: a rotation reaches all three processes."""
    first = daemon.start()
    with socket.create_connection(("127.0.0.1", daemon.port()), timeout=10) as client:
        wait_for(lambda: daemon.records(daemon.log, first, "client connected"), 30, "a client")
        # A request begun, never answered: the drain waits for it as long as we like.
        client.sendall(b"x")
        second = _upgraded(daemon.upgrade())
        with socket.create_connection(("127.0.0.1", daemon.port()), timeout=10) as other:
            wait_for(lambda: daemon.records(daemon.log, second, "client connected"), 30, "a client")
            other.sendall(b"x")
            third = _upgraded(daemon.upgrade())
            wait_for(
                lambda: daemon.records(daemon.log, second, "waiting for connections"),
                30,
                "the second daemon's drain",
            )
            assert is_alive(first)
            daemon.rename()
            daemon.signal_holder()
            for pid in (third, second, first):
                wait_for(
                    lambda pid=pid: daemon.ticks(daemon.log, pid),  # type: ignore[misc]
                    30,
                    f"the ticks of pid {pid} in the new file",
                )
    for pid in (first, second):
        wait_gone(pid, 30)
    daemon.stop(third)

    for pid in (first, second, third):
        _in_order_and_complete(daemon, pid)


def test_rotation_reaches_an_old_daemon_draining_after_its_successor_left(daemon: Daemon) -> None:
    """Upgraded twice, the middle one gone first: the first, still draining, follows a rotation."""
    first = daemon.start()
    with socket.create_connection(("127.0.0.1", daemon.port()), timeout=10) as client:
        wait_for(lambda: daemon.records(daemon.log, first, "client connected"), 30, "a client")
        # A request begun, never answered: the drain waits for it as long as we like.
        client.sendall(b"x")
        second = _upgraded(daemon.upgrade())
        third = _upgraded(daemon.upgrade())
        # Nothing held the second one's drain: no process is left to pass a reopen on to us.
        wait_gone(second, 30)
        assert is_alive(first)
        daemon.rename()
        daemon.signal_holder()
        wait_for(lambda: daemon.ticks(daemon.log, third), 30, "the newest process's ticks there")
        wait_for(lambda: daemon.ticks(daemon.log, first), 30, "the old daemon's ticks there")
    wait_gone(first, 30)
    daemon.stop(third)

    for pid in (first, third):
        _in_order_and_complete(daemon, pid)
    for event in ("shutdown finished", "exit"):
        assert daemon.records(daemon.log, first, event), event


def test_a_rename_nobody_signalled_is_followed_at_the_hand_over(daemon: Daemon) -> None:
    """A file renamed while the successor starts, with no signal: both reopen at the hand-over."""
    old = daemon.start()
    upgrade, successor = daemon.upgrade_held(old)
    daemon.rename()
    daemon.hold.unlink()
    assert _upgraded(upgrade) == successor
    wait_gone(old, 30)
    wait_for(
        lambda: daemon.ticks(daemon.log, successor), 30, "the successor's ticks in the new file"
    )
    daemon.stop(successor)

    _in_order_and_complete(daemon, successor)
    _in_order_and_complete(daemon, old, ticked_after=False)
    assert daemon.records(daemon.log, successor, "upgrade took over")
    assert daemon.records(daemon.log, old, "upgrade handed over")
    assert daemon.records(daemon.log, old, "exit")


def test_a_failed_reopen_at_the_take_over_keeps_the_old_file(daemon: Daemon) -> None:
    """The path became a directory: the successor keeps its file, says so, and is upgraded."""
    old = daemon.start()
    upgrade, successor = daemon.upgrade_held(old)
    daemon.rename()
    daemon.log.mkdir()
    daemon.hold.unlink()
    assert _upgraded(upgrade) == successor
    [refused] = wait_for(
        lambda: daemon.records(
            daemon.rotated, successor, "cannot reopen log file, keeping the old one"
        ),
        30,
        "the refused reopen",
    )
    assert "Is a directory" in str(refused["error"])
    seen = len(daemon.ticks(daemon.rotated, successor))
    wait_for(lambda: len(daemon.ticks(daemon.rotated, successor)) > seen, 30, "more ticks")
    status = aiodaemon_cli("status", "--pidfile", daemon.pidfile)
    assert status.returncode == 0
    assert status.stdout.startswith(f"running (pid {successor},")
    wait_gone(old, 30)
    # Once the path is right again, the next reopen says what was missed.
    daemon.log.rmdir()
    daemon.signal_holder()
    wait_for(
        lambda: daemon.records(daemon.log, successor, "log file reopened after failed reopens"),
        30,
        "the reopen",
    )
    wait_for(lambda: daemon.ticks(daemon.log, successor), 30, "ticks in the new file")
    daemon.stop(successor)
    _in_order_and_complete(daemon, successor)


def test_rotation_during_an_upgrade_without_a_log_file(daemon: Daemon) -> None:
    """Without a log file nothing is reopened; signals passed on disturb no upgrade."""
    daemon.log_file = False
    old = daemon.start()
    daemon.hold.touch()
    upgrade = daemon.upgrade()
    [successor] = wait_for(lambda: children(old), 30, "the successor")
    for sig in ("USR1", "HUP"):
        daemon.signal_holder(sig)
    daemon.hold.unlink()
    assert _upgraded(upgrade) == successor
    wait_gone(old, 30)
    daemon.signal_holder()
    status = aiodaemon_cli("status", "--pidfile", daemon.pidfile)
    assert status.returncode == 0
    assert status.stdout.startswith(f"running (pid {successor},")
    daemon.stop(successor)
    assert not daemon.log.exists()


def test_the_log_descriptor_handed_on_is_live_while_another_thread_reopens(
    tmp_path: Path,
) -> None:
    """An upgrade's copy of the log descriptor, taken during reopens, is always the log file's."""
    path = tmp_path / "app.jsonl"
    sink = open_file_sink(str(path))
    done = threading.Event()
    files: set[tuple[int, int]] = set()

    def rotate() -> None:
        # The writer thread's side: logrotate's rename, then the reopen.
        for n in itertools.count():
            if done.is_set():
                return
            st = os.stat(path)
            files.add((st.st_dev, st.st_ino))
            os.rename(path, tmp_path / f"app.jsonl.{n}")
            sink.reopen()

    rotator = threading.Thread(target=rotate)
    rotator.start()
    try:
        for _ in range(3000):
            fd = sink.dup()
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            assert stat.S_ISREG(st.st_mode)
            assert (st.st_dev, st.st_ino) in files | {_identity(path)}
    finally:
        done.set()
        rotator.join()
        sink.close()


def _identity(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)
