"""Version skew: today's CLI against a daemon an older aiodaemon started, and the reverse.

An operator upgrades the package (``pip install -U``) while daemons started by
the old version run, then drives them with the new ``aiodaemon``. The suite
cannot build an old tree (no git history in every checkout), so the old
daemons are recorded as programs that show the CLI what those did (see
tests/programs/handlerless_holder.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .security_support import User, arena, holding, intruder, own_dir, shared_python_as
from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    free_privileged_port,
    install_program,
    is_alive,
    kill_quietly,
    program,
    python,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest


class Holder:
    """A running tests/programs/handlerless_holder.py, its pidfile and its stdout."""

    def __init__(self, directory: Path, kind: str) -> None:
        self.pidfile = directory / "app.pid"
        self.output = directory / "out.txt"
        with open(self.output, "w") as out:
            self.process = subprocess.Popen(
                [PYTHON, str(program("handlerless_holder")), str(self.pidfile), kind],
                stdin=subprocess.DEVNULL,
                stdout=out,
                env=clean_env(),
            )
        self.pid = read_pid(self.pidfile)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``aiodaemon ARGS --pidfile`` this holder's pidfile."""
        return aiodaemon_cli(*args, "--pidfile", str(self.pidfile))


@pytest.fixture
def holders(tmp_path: Path) -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        kill_quietly(holder.process.pid)
        holder.process.wait()


def test_upgrade_of_a_0_1_0_daemon_is_refused_and_it_serves_on(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """No SIGUSR2 handler (0.1.0 predates upgrades): refused, one line, the daemon lives."""
    holders.append(old := Holder(tmp_path, "v010"))
    result = old.cli("upgrade", "--timeout", "5")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"aiodaemon: upgrade refused: pid {old.pid} has no handler for SIGUSR2, which would "
        "end it (a daemon of aiodaemon 0.1.0 has none: it predates upgrades); "
        "nothing sent: use 'aiodaemon restart'\n"
    )
    assert is_alive(old.pid)
    assert read_pid(old.pidfile) == old.pid
    # What the message says to do instead: stop (then start) works on it.
    stopped = old.cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert old.process.wait(10) == 0


def test_reload_of_a_0_1_0_daemon_still_sends_sighup(tmp_path: Path, holders: list[Holder]) -> None:
    """0.1.0 handles SIGHUP: reload falls back to it, as before."""
    holders.append(old := Holder(tmp_path, "v010"))
    result = old.cli("reload")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: old.output.read_text() == "ready\nreloaded\n", 10, "the reload")
    assert is_alive(old.pid)


def test_reload_of_a_holder_without_a_sighup_handler_is_refused(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """SIGHUP would end it (an aiodaemon.pep3143 daemon): not sent, exit 1, it lives."""
    holders.append(bare := Holder(tmp_path, "bare"))
    result = bare.cli("reload")
    assert result.returncode == 1
    assert result.stderr == (
        f"aiodaemon: not reloaded: pid {bare.pid} has no handler for SIGHUP, which would "
        "end it; nothing sent\n"
    )
    assert is_alive(bare.pid)
    assert read_pid(bare.pidfile) == bare.pid


def test_reload_and_upgrade_of_a_holder_ignoring_their_signals_are_refused(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """SIGHUP and SIGUSR2 ignored (nohup): nothing would happen, so nothing is sent, exit 1.

    ``reload`` said "reload requested", exit 0, and ``upgrade`` waited out its
    whole timeout for a new process nothing would start.
    """
    holders.append(deaf := Holder(tmp_path, "deaf"))
    reload = deaf.cli("reload")
    assert (reload.returncode, reload.stderr) == (
        1,
        f"aiodaemon: not reloaded: pid {deaf.pid} ignores SIGHUP; nothing sent\n",
    )
    upgrade = deaf.cli("upgrade", "--timeout", "30")
    assert (upgrade.returncode, upgrade.stderr) == (
        1,
        f"aiodaemon: upgrade refused: pid {deaf.pid} ignores SIGUSR2; nothing sent: "
        "use 'aiodaemon restart'\n",
    )
    assert is_alive(deaf.pid)
    assert read_pid(deaf.pidfile) == deaf.pid
    assert deaf.output.read_text() == "ready\n"


@contextlib.contextmanager
def _failed_upgrade(
    tmp_path: Path, successor: str
) -> Iterator[tuple[Path, int, subprocess.CompletedProcess[str], dict[str, Any]]]:
    """Today's daemon, upgraded to the recorded program ``successor``, which fails.

    Yields the pidfile, the old daemon's pid, ``upgrade``'s result and the old
    daemon's ``upgrade failed`` record; the old daemon is stopped after.
    """
    install_program("upgrade_app", tmp_path, "upgrade_app.py")
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.log"
    env = {"APP_PIDFILE": str(pidfile), "APP_LOG": str(log)}
    started = python(["upgrade_app.py"], env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    old = read_pid(pidfile)
    try:
        install_program(successor, tmp_path, "upgrade_app.py")
        result = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "20")
        assert result.returncode == 1
        [failed] = wait_for(
            lambda: [r for r in read_json_lines(log) if r["event"] == "upgrade failed"],
            10,
            "the upgrade failed record",
        )
        yield pidfile, old, result, failed
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr


def test_upgrade_to_code_of_aiodaemon_0_1_0_says_why_it_failed(tmp_path: Path) -> None:
    """A rollback to 0.1.0 code: its 'already running' is explained, the old daemon serves on."""
    with _failed_upgrade(tmp_path, "v010_successor") as (pidfile, old, result, failed):
        new = failed["successor"]
        assert result.stderr == (
            f"aiodaemon: upgrade failed: already running (pid {old}, pidfile {pidfile}); "
            f"the new process (pid {new}) ended without taking the hand-over: a program that "
            "failed before calling aiodaemon, or one whose aiodaemon predates upgrades "
            "(0.1.0: use 'aiodaemon restart')\n"
        )
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert status.returncode == 0
        assert status.stdout.startswith(f"running (pid {old},")


def test_a_successor_that_takes_another_hand_off_version_says_so(tmp_path: Path) -> None:
    """Today's daemon, new code taking only version 2: upgrade says so, the old one serves on."""
    with _failed_upgrade(tmp_path, "v2_successor") as (pidfile, old, result, failed):
        assert result.stderr == (
            f"aiodaemon: upgrade failed: successor (pid {failed['successor']}) takes version 2 "
            "of the hand-off, not 1: its aiodaemon cannot take over from this one; "
            "use 'aiodaemon restart'\n"
        )
        assert read_pid(pidfile) == old


def test_a_hand_off_of_a_later_version_is_answered_with_the_one_taken(tmp_path: Path) -> None:
    """A later daemon hands over with version 2: today's successor answers V1 and exits."""
    install_program("upgrade_app", tmp_path, "upgrade_app.py")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    secret = os.urandom(16).hex()
    # A later version's variable: only its envelope is promised (see _handoff).
    envelope = {"v": 2, "parent": os.getpid(), "secret": secret, "channel": theirs.fileno()}
    env = {
        "APP_PIDFILE": str(tmp_path / "app.pid"),
        "APP_LOG": str(tmp_path / "app.log"),
        "AIODAEMON_HANDOFF": json.dumps(envelope),
    }
    with ours, theirs:
        successor = subprocess.Popen(
            [PYTHON, "upgrade_app.py"],
            cwd=tmp_path,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        ours.sendall(f"S{secret}\n".encode())
        ours.settimeout(30)
        answer = b""
        while chunk := ours.recv(64):
            answer += chunk
        _, stderr = successor.communicate(timeout=30)
    assert answer == b"V1\n"
    assert successor.returncode != 0
    assert stderr.splitlines()[-1] == (
        "aiodaemon: upgrade: the running daemon hands over with version 2 of the hand-off; "
        "this program's aiodaemon takes version 1 only: use 'aiodaemon restart'"
    )
    assert not (tmp_path / "app.pid").exists()


@pytest.mark.root  # root only creates the user; the commands run as that user
def test_a_restart_refused_for_a_privileged_port_does_not_suggest_upgrading_0_1_0(
    arena: Path, intruder: User
) -> None:
    """Not root, a port < 1024, a 0.1.0 daemon (no upgrade): the advice is root's restart."""
    project = own_dir(arena / "project", intruder)
    install_program("cli_app", project)
    pidfile = project / "d.pid"
    kept: list[int] = []

    def take() -> None:
        # What a 0.1.0 daemon root started with --user shows: its account's
        # process holding the pidfile, with no handler for SIGUSR2.
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\n".encode())
        kept.append(fd)

    port = free_privileged_port()
    with holding(intruder, take, "the 0.1.0 daemon's lock") as pid:
        result = shared_python_as(
            intruder, "-m", "aiodaemon", "restart", "app:main", "--pidfile", pidfile,
            "--listen", f"http=127.0.0.1:{port}", cwd=project,
        )  # fmt: skip
        assert (result.returncode, result.stdout) == (4, "")
        assert result.stderr == (
            f"aiodaemon: already running (pid {pid}, pidfile {pidfile}); not restarted:"
            f" --listen http: port {port} is privileged (only root or CAP_NET_BIND_SERVICE may"
            " bind it); it predates upgrades (aiodaemon 0.1.0): only root can restart it\n"
        )
        assert is_alive(pid)


def test_lines_a_later_successor_adds_are_ignored(tmp_path: Path) -> None:
    """A later successor's line this daemon does not know (before ``R``) does not fail it.

    Before, any line but ``R`` was a failure: "successor exited before it
    was ready" of a new process that was starting fine.
    """
    install_program("upgrade_app", tmp_path, "upgrade_app.py")
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.log"
    env = {"APP_PIDFILE": str(pidfile), "APP_LOG": str(log)}
    started = python(["upgrade_app.py"], env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    old = read_pid(pidfile)
    new = None
    try:
        install_program("later_successor", tmp_path, "upgrade_app.py")
        result = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "20")
        assert result.returncode == 0, result.stderr
        new = int(result.stdout)
        assert read_pid(pidfile) == new
        wait_gone(old)
    finally:
        for pid in (old, new):
            if pid is not None:
                kill_quietly(pid)


def test_a_successor_says_only_r_to_an_old_daemon_that_does_not_hear_n(tmp_path: Path) -> None:
    """An old daemon whose hand-off has no ``hears`` (before ``N``) gets no ``N`` line.

    Such a daemon took any line but ``R`` for a failure: a new process whose
    readiness check failed at first ("N why") was killed as "exited before it
    was ready". Here the test is that old daemon, speaking over the real
    channel; it also sends a line a later old daemon might add, before ``G``.
    """
    install_program("upgrade_checked", tmp_path, "checked_app.py")
    pidfile, log, stderr = tmp_path / "app.pid", tmp_path / "app.jsonl", tmp_path / "err.txt"
    not_ready = tmp_path / "not-ready"
    not_ready.touch()
    held = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    os.write(held, f"{os.getpid()}\n".encode())
    st = os.fstat(held)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    secret = os.urandom(32).hex()
    err = os.open(stderr, os.O_WRONLY | os.O_CREAT, 0o644)
    entry = {
        "role": "pidfile",
        "name": str(pidfile),
        "fd": held,
        "configured": "",
        "identity": f"{st.st_dev}:{st.st_ino}",
        "unix_file": "",
        "options": "",
    }
    # The hand-off of a release that knew no N: no "hears".
    handoff = {
        "v": 1,
        "parent": os.getpid(),
        "secret": secret,
        "channel": theirs.fileno(),
        "stderr": err,
        "detached": False,
        "uid": os.geteuid(),
        "gid": os.getegid(),
        "fds": [entry],
    }
    options = ["--pidfile", str(pidfile), "--log-file", str(log)]
    options += ["--health", f"unix:{tmp_path / 'health.sock'}"]
    env = {"APP_NOT_READY": str(not_ready), "AIODAEMON_HANDOFF": json.dumps(handoff)}
    with ours, theirs:
        successor = subprocess.Popen(
            [PYTHON, "-m", "aiodaemon", "run", "checked_app:main", *options],
            cwd=tmp_path,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=[theirs.fileno(), held, err],
        )
        try:
            theirs.close()
            os.close(err)
            ours.sendall(f"S{secret}\n".encode())

            def failing() -> list[dict[str, Any]]:
                assert successor.poll() is None, stderr.read_text()
                records = read_json_lines(log) if log.exists() else []
                return [r for r in records if r["event"] == "readiness check failed"]

            wait_for(failing, 30, "the new process's failing check")
            not_ready.unlink()  # its database is reachable now
            ours.settimeout(30)
            said = b""
            while not said.endswith(b"R\n"):
                chunk = ours.recv(64)
                assert chunk, said
                said += chunk
            assert said == b"R\n"
            ours.sendall(b"X a later old daemon's line\nG\n")
            assert ours.recv(64) == b"W\n"
            assert read_pid(pidfile) == successor.pid
        finally:
            successor.terminate()
            successor.wait(30)
            os.close(held)
    assert successor.returncode == 0
    assert not pidfile.exists()


def _leftover_socket(path: Path) -> None:
    """A socket file nobody accepts on, as a daemon killed by SIGKILL leaves it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


def test_stop_of_a_0_1_0_daemon_removes_an_earlier_daemons_control_socket(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """A SIGKILLed daemon's control socket, then a 0.1.0 daemon on the pidfile: stop removes it.

    0.1.0 serves no control socket and removes its pidfile at its exit: the
    socket file was left behind, stale, though ``stop`` had found nobody on it.
    """
    control = tmp_path / "app.pid.ctl"
    _leftover_socket(control)
    holders.append(old := Holder(tmp_path, "v010"))
    stopped = old.cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr.splitlines()[-1] == (
        f"aiodaemon: stopped (pid {old.pid}); removed control socket {control}, which nobody served"
    )
    assert not os.path.lexists(control)
    assert not os.path.lexists(old.pidfile)


@pytest.mark.root  # to give the planted socket another owner
@pytest.mark.parametrize("planted", ["another user's socket", "a symlink to a stale socket"])
def test_stop_leaves_a_control_path_that_is_not_a_stale_socket_of_ours(
    tmp_path: Path, holders: list[Holder], planted: str
) -> None:
    """What is at the control path is removed only if it is the daemon's own stale socket."""
    control = tmp_path / "app.pid.ctl"
    if planted == "another user's socket":
        _leftover_socket(control)
        os.chown(control, 65534, 65534, follow_symlinks=False)
    else:
        _leftover_socket(tmp_path / "elsewhere.sock")
        control.symlink_to(tmp_path / "elsewhere.sock")
    holders.append(old := Holder(tmp_path, "v010"))
    stopped = old.cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr.splitlines()[-1] == f"aiodaemon: stopped (pid {old.pid})"
    assert os.path.lexists(control)
    assert os.path.lexists(tmp_path / "elsewhere.sock") or planted != "a symlink to a stale socket"


def test_the_console_script_0_1_0_wrote_runs_todays_commands(tmp_path: Path) -> None:
    """Its ``from aiodaemon._cli import main``, left by an rsync or an image layer, still works."""
    pidfile = tmp_path / "app.pid"
    # What pip wrote for 0.1.0's entry point, aiodaemon._cli:main.
    script = "import sys\nfrom aiodaemon._cli import main\nsys.exit(main())\n"
    result = python(["-c", script, "status", "--pidfile", pidfile])
    assert result.returncode == 3, result.stderr
    assert (result.stdout, result.stderr) == (f"not running (no pidfile {pidfile})\n", "")


def test_status_and_reload_of_a_0_1_0_daemon_do_not_hint_at_control(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """No SIGUSR2 handler: they say what upgrade says (0.1.0), not "started with --control?"."""
    holders.append(old := Holder(tmp_path, "v010"))
    hint = (
        f"(pid {old.pid} has no handler for SIGUSR2, as a daemon of aiodaemon 0.1.0, which "
        "predates the control socket: 'aiodaemon restart' gives it one)"
    )
    status = old.cli("status")
    assert status.returncode == 0, status.stderr
    assert status.stdout == f"running (pid {old.pid}, pidfile {old.pidfile})\n"
    assert status.stderr == (
        f"aiodaemon: note: no control socket served at {old.pidfile}.ctl, so only the "
        f"pidfile tells {hint}\n"
    )
    reload = old.cli("reload")
    assert reload.returncode == 0, reload.stderr
    assert reload.stderr == (
        f"aiodaemon: reload requested (pid {old.pid}, SIGHUP); no control socket served at "
        f"{old.pidfile}.ctl, so the result is not known {hint}\n"
    )
    wait_for(lambda: old.output.read_text() == "ready\nreloaded\n", 10, "the reload")
