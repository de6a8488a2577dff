"""Audit L4: a control socket planted beside a daemon run without its own is never trusted.

A daemon started with ``--no-control`` keeps its pidfile in a shared sticky
directory; a real second user plants a listener at ``<pidfile>.ctl`` that
answers with a forged status. The CLI must neither trust nor feed it, and
must still tell and do the truth through the pidfile and signals: ``status``
running (0), ``reload`` by SIGHUP (0), ``upgrade`` by SIGUSR2, ``stop`` by
SIGTERM, each with one warning line naming why the socket was ignored. Two
scenes: the daemon runs as root (the planted file is another uid's), or it
dropped to the service account that planted the socket (same uid, other pid).
A symlink planted at the path is ignored the same way, and never followed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import aiodaemon

from .security_support import User, arena, fork_as, intruder, own_dir, wait_child
from .support import (
    PROGRAMS,
    aiodaemon_cli,
    is_alive,
    kill_quietly,
    read_pid,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest


@dataclass
class Scene:
    """A daemon without a control socket, and another process's listener at its path."""

    app: Path
    pidfile: Path
    daemon: int
    impostor: int
    reports: int
    #: The words of the warning that name why the socket was ignored.
    why: str
    #: ``--user`` for a daemon that dropped to the intruder's account: its pidfile
    #: in the sticky directory is the intruder's, which root trusts only so.
    vouch: tuple[str, ...] = ()

    @property
    def control(self) -> Path:
        return self.pidfile.with_name(self.pidfile.name + ".ctl")

    def cli(self, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        """Run ``aiodaemon ARGS --pidfile P`` as root, from tests/programs."""
        return aiodaemon_cli(
            *args, "--pidfile", self.pidfile, *self.vouch,
            cwd=PROGRAMS, timeout=60, env={"CONTROL_APP_DIR": str(self.app)},
        )  # fmt: skip

    def heard(self) -> list[bytes]:
        """What the impostor received, one entry per connection accepted so far."""
        got = b""
        while select.select([self.reports], [], [], 0)[0]:
            chunk = os.read(self.reports, 65536)
            if not chunk:
                break
            got += chunk
        return [bytes.fromhex(line) for line in got.decode().split()]


def _impostor(path: Path, daemon: int, report: int) -> None:
    """Listen at ``path`` and answer a forged status; report each connection's bytes (hex)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o777)
    server.listen(16)
    os.write(report, b"ready\n")
    forged = {"v": 1, "ok": True, "state": "running", "pid": daemon, "uptime": 1,
              "sockets": {"evil": "unix:/tmp/x"}, "last_reload": None, "version": "6.6.6",
              "reload": {"ok": True, "error": None, "at": "now"}}  # fmt: skip
    while True:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(2)
            try:
                data = conn.recv(65536)
                conn.sendall(json.dumps(forged).encode() + b"\n")
            except OSError:
                data = b""
            os.write(report, data.hex().encode() + b"\n")


def _read_ready(fd: int) -> None:
    deadline = time.monotonic() + 20
    got = b""
    while b"ready\n" not in got:
        assert select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0], got
        chunk = os.read(fd, 64)
        assert chunk, "the impostor died before it listened"
        got += chunk


@pytest.fixture(params=["root daemon", "service account's daemon"])
def scene(request: pytest.FixtureRequest, arena: Path, intruder: User) -> Iterator[Scene]:
    """A --no-control daemon whose pidfile is in a sticky directory, the impostor at its .ctl."""
    shared = arena / "pub"
    shared.mkdir()
    shared.chmod(0o1777)
    pidfile = shared / "n.pid"
    dropped = request.param != "root daemon"
    # The daemon's reload hook notes each run here: it must be able to write.
    app = own_dir(arena / "app", intruder) if dropped else arena / "app"
    app.mkdir(exist_ok=True)
    extra = ["--user", intruder.name] if dropped else []
    started = aiodaemon_cli(
        "start", "control_app:main", "--pidfile", pidfile, "--no-control", *extra,
        cwd=PROGRAMS, timeout=60, env={"CONTROL_APP_DIR": str(app)},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    daemon = read_pid(pidfile)
    reports, report_w = os.pipe()
    control = pidfile.with_name(pidfile.name + ".ctl")
    impostor = fork_as(intruder, lambda: _impostor(control, daemon, report_w))
    os.close(report_w)
    try:
        _read_ready(reports)
        why = (
            f"control socket {control} is served by pid {impostor}, not by the daemon"
            if dropped
            else f"control socket {control} belongs to uid {intruder.uid}, not to the "
            "daemon's user (uid 0)"
        )
        yield Scene(app, pidfile, daemon, impostor, reports, why, tuple(extra))
    finally:
        kill_quietly(impostor)
        os.waitpid(impostor, 0)
        os.close(reports)
        # Only a verified lock holder, and the daemon we started.
        for pid in (daemon, aiodaemon.read_pidfile(pidfile).running_pid):
            if pid is not None:
                kill_quietly(pid)


def _warning(scene: Scene, line: str, instead: str) -> None:
    assert line.startswith(f"aiodaemon: warning: {scene.why}"), line
    assert line.endswith(f"not trusted, so it is ignored; {instead}"), line


def _assert_never_fed(scene: Scene) -> None:
    """The impostor got no byte, and its file is still there, still the intruder's."""
    assert all(data == b"" for data in scene.heard())
    st = os.lstat(scene.control)
    assert stat.S_ISSOCK(st.st_mode)
    assert st.st_uid != 0


def test_status_reads_the_pidfile_and_says_why_the_socket_was_ignored(scene: Scene) -> None:
    """status: running from the pidfile (exit 0), never the forged answer; one warning line."""
    result = scene.cli("status")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"running (pid {scene.daemon}, pidfile {scene.pidfile})\n"
    [line] = result.stderr.splitlines()
    _warning(scene, line, "status from the pidfile")
    as_json = scene.cli("status", "--json")
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["state"] == "running"
    assert answer["pid"] == scene.daemon
    assert answer["sockets"] is None  # not the forged {"evil": ...}
    assert answer["version"] is None
    _assert_never_fed(scene)


def test_reload_falls_back_to_sighup(scene: Scene) -> None:
    """reload: the daemon gets SIGHUP and reloads (exit 0, result not known); one warning."""
    result = scene.cli("reload", "--timeout", "10")
    assert result.returncode == 0, result.stderr
    warning, requested = result.stderr.splitlines()
    _warning(scene, warning, f"sending SIGHUP to pid {scene.daemon}")
    assert requested == (
        f"aiodaemon: reload requested (pid {scene.daemon}, SIGHUP); no trusted control "
        f"socket at {scene.control}, so the result is not known"
    )
    reloads = scene.app / "reloads"
    wait_for(lambda: reloads.exists() and reloads.read_text() == "ok\n", 20, "the reload hook")
    assert is_alive(scene.daemon)
    _assert_never_fed(scene)


def test_stop_falls_back_to_sigterm_and_leaves_the_planted_file(scene: Scene) -> None:
    """stop: SIGTERM, the daemon exits (exit 0); the impostor's file is not removed."""
    result = scene.cli("stop", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    warning, stopped = result.stderr.splitlines()
    _warning(scene, warning, "sending SIGTERM")
    assert stopped == f"aiodaemon: stopped (pid {scene.daemon})"
    wait_gone(scene.daemon)
    assert not scene.pidfile.exists()
    _assert_never_fed(scene)
    status = scene.cli("status")
    assert status.returncode == 3, status.stderr


# Root's daemon only: a dropped daemon's successor is exec'ed after the drop, and
# the test interpreter (under /root) may be out of the service account's reach.
@pytest.mark.parametrize("scene", ["root daemon"], indirect=True)
def test_upgrade_falls_back_to_sigusr2(scene: Scene) -> None:
    """upgrade: SIGUSR2, the new pid on stdout once it holds the pidfile (exit 0); one warning."""
    result = scene.cli("upgrade", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    new = int(result.stdout)
    [warning] = result.stderr.splitlines()
    _warning(scene, warning, f"sending SIGUSR2 to pid {scene.daemon}")
    assert new != scene.daemon
    assert aiodaemon.read_pidfile(scene.pidfile).running_pid == new
    wait_gone(scene.daemon, 30)
    _assert_never_fed(scene)
    kill_quietly(new, signal.SIGTERM)
    wait_gone(new, 30)


def test_a_symlink_planted_at_the_path_is_never_followed(arena: Path, intruder: User) -> None:
    """A symlink to root's live socket at the .ctl path: ignored, not followed, not removed."""
    shared = arena / "pub"
    shared.mkdir()
    shared.chmod(0o1777)
    pidfile, app = shared / "s.pid", arena / "app"
    app.mkdir()
    env = {"CONTROL_APP_DIR": str(app)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return aiodaemon_cli(*args, "--pidfile", pidfile, cwd=PROGRAMS, timeout=60, env=env)

    started = cli("start", "control_app:main", "--no-control")
    assert started.returncode == 0, started.stderr
    daemon = read_pid(pidfile)
    target = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # root's, elsewhere
    target.bind(str(arena / "root.sock"))
    target.listen(8)
    target.settimeout(0.1)
    control = shared / "s.pid.ctl"
    try:
        wait_child(fork_as(intruder, lambda: os.symlink(arena / "root.sock", control)))
        status = cli("status")
        assert status.returncode == 0, status.stderr
        assert status.stdout == f"running (pid {daemon}, pidfile {pidfile})\n"
        [line] = status.stderr.splitlines()
        assert line == (
            f"aiodaemon: warning: {control} is not a control socket (a symlink); not trusted,"
            " so it is ignored; "
            "status from the pidfile"
        )
        reload = cli("reload")
        assert reload.returncode == 0, reload.stderr
        wait_for(lambda: (app / "reloads").exists(), 20, "the reload hook")
        stop = cli("stop")
        assert stop.returncode == 0, stop.stderr
        wait_gone(daemon)
        with pytest.raises(TimeoutError):
            target.accept()  # never connected to through the link
        assert os.readlink(control) == str(arena / "root.sock")
    finally:
        target.close()
        kill_quietly(daemon)
