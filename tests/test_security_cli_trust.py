"""The control commands in a shared sticky directory (audit F6, and F4's trust rules).

``start`` refuses another user's pidfile there; ``status``, ``stop`` and
``reload`` must not believe it either: not report its planter's process as
the daemon, not signal it, not remove the file as stale. A daemon that
dropped to its service account leaves a pidfile that account owns: the
account manages it as it is, root with ``--user``. A pidfile removed by hand
is looked for through its control socket only when that socket is one the
daemon could have made: another user's listener there is ignored.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiodaemon._cli._daemon_commands
import aiodaemon._cli._lost_holder
import aiodaemon._cli._lost_pidfile
import aiodaemon._cli._main
import aiodaemon._cli._reload_command
import aiodaemon._cli._stop
import aiodaemon._cli._upgrade_command

from .security_support import (
    User,
    arena,
    fork_as,
    intruder,
    planted,
    service_account,
    shared_dir,
    wait_child,
)
from .support import (
    REPO,
    aiodaemon_cli,
    is_alive,
    kill_quietly,
    proc_state,
    read_pid,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder", "service_account"]  # fixtures, re-exported for pytest

TARGET = "tests.programs.security_daemon:main"
# Loaded here: the CLI run as another user cannot read the interpreter's files
# under /root, so whatever it imports must be imported before the fork.
_PRELOADED = (
    aiodaemon._cli._lost_holder,
    aiodaemon._cli._lost_pidfile,
    aiodaemon._cli._reload_command,
    aiodaemon._cli._upgrade_command,
    aiodaemon._cli._daemon_commands,
)
_PRELOADED_STOP = aiodaemon._cli._stop


def cli(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` as root, from the repository, as text."""
    return aiodaemon_cli(*args, cwd=REPO, timeout=60)


def cli_as(user: User, *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    """The CLI's ``main(ARGS)`` run as ``user`` in a forked child: exit status, stdout, stderr."""
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        os.chown(scratch, user.uid, user.gid)

        def run() -> None:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = aiodaemon._cli._main.main([str(a) for a in args])
            result.write_text(json.dumps([code, out.getvalue(), err.getvalue()]))

        wait_child(fork_as(user, run), 60)
        code, out, err = json.loads(result.read_text())
    return int(code), str(out), str(err)


def _refusal(pidfile: Path, user: User) -> str:
    return (
        f"pidfile {pidfile} is owned by uid {user.uid} (another user) in a shared sticky "
        "directory; not trusted (give --user when it is the daemon's user)"
    )


def test_a_planted_locked_pidfile_is_unknown_and_never_signalled(
    arena: Path, intruder: User
) -> None:
    """Another user's locked pidfile: status unknown (4); stop, reload fail (1), no signal."""
    pidfile = shared_dir(arena / "pub") / "app.pid"
    with planted(intruder, pidfile, lock=True) as holder:
        status = cli("status", "--pidfile", pidfile)
        stop = cli("stop", "--pidfile", pidfile, "--timeout", "1")
        reload = cli("reload", "--pidfile", pidfile)
        assert is_alive(holder)
        assert pidfile.read_text() == f"{holder}\n"
    assert status.returncode == 4, status.stderr
    assert status.stdout == f"unknown ({_refusal(pidfile, intruder)})\n"
    assert stop.returncode == 1, stop.stderr
    expected = f"aiodaemon: {_refusal(pidfile, intruder)}: nothing signalled, nothing removed\n"
    assert stop.stderr == expected
    assert reload.returncode == 1, reload.stderr
    assert reload.stderr == expected


def test_stop_never_removes_a_planted_stale_pidfile(arena: Path, intruder: User) -> None:
    """An unlocked pidfile of another user naming a dead pid: stop leaves it (1), not "stale"."""
    pidfile = shared_dir(arena / "pub") / "app.pid"
    with planted(intruder, pidfile):
        # Not write_text(): its O_CREAT is refused to root too by fs.protected_regular.
        fd = os.open(pidfile, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"999999\n")
        os.close(fd)
        stop = cli("stop", "--pidfile", pidfile)
        assert stop.returncode == 1, stop.stderr
        assert "nothing removed" in stop.stderr
        assert pidfile.read_text() == "999999\n"
        assert os.stat(pidfile).st_uid == intruder.uid


def test_a_daemon_dropped_to_its_account_is_managed_by_it_and_by_root_with_user(
    arena: Path, service_account: User
) -> None:
    """Root's daemon as svc in /tmp-like: svc-owned pidfile; svc and `root --user svc` manage it."""
    pidfile = shared_dir(arena / "pub") / "app.pid"
    started = cli("start", TARGET, "--pidfile", pidfile, "--user", service_account.name)
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        assert os.stat(pidfile).st_uid == service_account.uid
        # Root cannot tell this file from one svc planted: it says so, and how to vouch.
        blind = cli("status", "--pidfile", pidfile)
        assert blind.returncode == 4, blind.stdout
        assert blind.stdout == f"unknown ({_refusal(pidfile, service_account)})\n"
        vouched = cli("status", "--pidfile", pidfile, "--user", service_account.name, "--json")
        assert vouched.returncode == 0, vouched.stderr
        assert json.loads(vouched.stdout)["pid"] == pid
        code, out, err = cli_as(service_account, "status", "--pidfile", pidfile, "--json")
        assert code == 0, err
        assert json.loads(out)["pid"] == pid
        code, out, err = cli_as(service_account, "reload", "--pidfile", pidfile)
        assert code == 0, err
        stop = cli("stop", "--pidfile", pidfile, "--user", str(service_account.uid))
        assert stop.returncode == 0, stop.stderr
        assert stop.stderr == f"aiodaemon: stopped (pid {pid})\n"
        wait_gone(pid)
    finally:
        kill_quietly(pid)


@contextlib.contextmanager
def _listener(user: User, path: Path) -> Iterator[tuple[int, int]]:
    """``user`` serves a unix socket at ``path``; yields its pid and a pipe of what it heard."""
    heard_r, heard_w = os.pipe()

    def serve() -> None:
        os.close(heard_r)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        os.chmod(path, 0o777)
        server.listen(16)
        os.write(heard_w, b"ready\n")
        while True:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    os.write(heard_w, conn.recv(65536).hex().encode() + b"\n")

    pid = fork_as(user, serve)
    os.close(heard_w)
    try:
        assert select.select([heard_r], [], [], 30)[0], "the listener never started"
        assert os.read(heard_r, 6) == b"ready\n"
        yield pid, heard_r
    finally:
        kill_quietly(pid)
        os.waitpid(pid, 0)
        os.close(heard_r)


def test_another_users_socket_beside_a_removed_pidfile_is_not_believed(
    arena: Path, intruder: User
) -> None:
    """No pidfile, a stranger serving <pidfile>.ctl: not running (3), nothing sent or signalled."""
    pidfile = shared_dir(arena / "pub") / "app.pid"
    control = Path(f"{pidfile}.ctl")
    with _listener(intruder, control) as (listener, heard):
        status = cli("status", "--pidfile", pidfile)
        stop = cli("stop", "--pidfile", pidfile, "--timeout", "1")
        start = cli("start", TARGET, "--pidfile", pidfile)
        assert is_alive(listener)
        # `start` may knock to see whether the socket is served; nobody says a word.
        got = os.read(heard, 65536) if select.select([heard], [], [], 0)[0] else b""
        assert got.split() == [], "the stranger was sent something"
    warning = (
        f"aiodaemon: warning: control socket {control} belongs to uid {intruder.uid} "
        "(another user) in a shared directory (give --user when it is the daemon's user); "
        "not trusted, so it is ignored"
    )
    assert status.returncode == 3, status.stderr
    assert status.stderr.startswith(warning), status.stderr
    assert status.stdout == f"not running (no pidfile {pidfile})\n"
    assert stop.returncode == 0, stop.stderr
    assert stop.stderr.startswith(warning), stop.stderr
    assert start.returncode == 1, start.stderr  # the stranger's socket is in the way
    assert "already running" not in start.stderr


@pytest.mark.parametrize("command", ["stop", "reload", "upgrade", "restart"])
def test_a_pidfile_private_to_the_daemons_user_is_not_allowed_to_others(
    arena: Path, service_account: User, intruder: User, command: str
) -> None:
    """umask 077 makes the pidfile private to svc: others are not allowed (4), nothing signalled."""
    pidfile = arena / "app.pid"
    started = cli(
        "start", TARGET, "--pidfile", pidfile, "--user", service_account.name, "--umask", "077"
    )
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        assert os.stat(pidfile).st_mode & 0o777 == 0o600
        target = [TARGET] if command == "restart" else []
        code, out, err = cli_as(intruder, command, *target, "--pidfile", pidfile)
        assert code == 4, err
        assert out == ""
        assert err.startswith(f"aiodaemon: not allowed: cannot open {pidfile}: Permission denied;")
        assert read_pid(pidfile) == pid
        assert is_alive(pid)
    finally:
        assert cli("stop", "--pidfile", pidfile).returncode == 0
    wait_gone(pid)


def test_another_users_stop_of_a_suspended_daemon_says_not_allowed_once(
    arena: Path, intruder: User
) -> None:
    """Root's daemon, SIGSTOPped: the intruder's stop is refused in one line (4), nothing sent."""
    pidfile = arena / "app.pid"
    started = cli("start", TARGET, "--pidfile", pidfile)
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
        code, _, err = cli_as(intruder, "stop", "--pidfile", pidfile, "--timeout", "1")
        assert (code, err.count("\n")) == (4, 1), err
        assert err.startswith(f"aiodaemon: not allowed to send SIGTERM to pid {pid}")
        assert proc_state(pid) == "T"
    finally:
        kill_quietly(pid, signal.SIGCONT)
        kill_quietly(pid)
