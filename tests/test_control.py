"""The control socket and the commands that use it, end to end through the console script."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import aiodaemon
from aiodaemon._prefork._control_protocol import MAX_CONNECTIONS

from .security_support import NOBODY, shared_python_as
from .support import (
    aiodaemon_cli,
    clean_env,
    is_alive,
    kill_quietly,
    program,
    read_json_lines,
    require_tool,
    wait_for,
    wait_gone,
)

SCRIPT = Path(sys.executable).parent / "aiodaemon"
PROGRAMS = Path(__file__).resolve().parent / "programs"
STATUS_KEYS = {"state", "pid", "uptime", "sockets", "last_reload", "version"}


@dataclass
class App:
    """A test daemon's directory (its steering files), pidfile and control socket."""

    dir: Path

    @property
    def pidfile(self) -> Path:
        return self.dir / "app.pid"

    @property
    def control(self) -> Path:
        return self.dir / "app.pid.ctl"

    def steer(self, name: str, mode: str) -> None:
        """Write a steering file of tests/programs/control_app.py."""
        (self.dir / name).write_text(mode)


@pytest.fixture
def app() -> Iterator[App]:
    """A directory for one daemon; whatever still holds its pidfile at the end is killed.

    Not pytest's tmp_path: that one is closed to other users, and some tests
    need ``nobody`` to reach the control socket.
    """
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-ctl-"))
    path.chmod(0o755)
    result = App(path)
    yield result
    # Only a verified lock holder: some tests write pids of strangers into the file.
    holder = aiodaemon.read_pidfile(result.pidfile).running_pid
    if holder is not None:
        kill_quietly(holder)
    shutil.rmtree(path, ignore_errors=True)


def cli(
    app: App, *args: str | os.PathLike[str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``aiodaemon ARGS`` from tests/programs, steering files in ``app.dir``."""
    return aiodaemon_cli(
        *args, cwd=PROGRAMS, timeout=timeout, env={"CONTROL_APP_DIR": str(app.dir)}
    )


def start(app: App, *extra: str) -> int:
    """``aiodaemon start control_app:main`` with the app's pidfile; the daemon's pid."""
    result = cli(app, "start", "control_app:main", "--pidfile", app.pidfile, *extra)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def stop(app: App) -> None:
    result = cli(app, "stop", "--pidfile", app.pidfile, "--timeout", "10")
    assert result.returncode == 0, result.stderr


def status(app: App, *extra: str) -> tuple[int, dict[str, object]]:
    """``status --json``: its exit code and the one object it printed."""
    result = cli(app, "status", "--pidfile", app.pidfile, "--json", *extra)
    assert result.stdout.count("\n") == 1, result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def _events(log: Path) -> list[object]:
    """The ``event`` of every record of the daemon's log so far."""
    return [r["event"] for r in read_json_lines(log)] if log.exists() else []


def one_line(text: str) -> str:
    """The only line of ``text``; fails on more (a traceback, say)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# --- status -------------------------------------------------------------------------


def test_status_tells_state_pid_uptime_sockets_reload_version(app: App) -> None:
    """status --json has exactly the documented keys, the real port and aiodaemon's version."""
    pid = start(app, "--listen", "echo=127.0.0.1:0")
    code, answer = status(app)
    assert code == 0
    assert set(answer) == STATUS_KEYS
    assert answer["state"] == "running"
    assert answer["pid"] == pid
    assert isinstance(answer["uptime"], float | int)
    assert answer["uptime"] >= 0
    assert answer["last_reload"] is None
    assert answer["version"] == aiodaemon.__version__
    sockets = answer["sockets"]
    assert isinstance(sockets, dict)
    host, _, port = sockets["echo"].rpartition(":")
    assert host == "127.0.0.1"
    assert int(port) != 0
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"ping")
        assert conn.recv(4) == b"ping"

    plain = cli(app, "status", "--pidfile", app.pidfile)
    assert plain.returncode == 0
    assert plain.stdout.startswith(f"running (pid {pid}, pidfile {app.pidfile})")
    assert f"127.0.0.1:{port}" in plain.stdout
    stop(app)


def test_status_says_starting_while_startup_hooks_run(app: App) -> None:
    """During the startup hooks status says "starting" (exit 0); after them, "running"."""
    app.steer("startup", "wait")
    launcher = subprocess.Popen(
        [str(SCRIPT), "start", "control_app:main", "--pidfile", str(app.pidfile)],
        cwd=PROGRAMS,
        env=clean_env({"CONTROL_APP_DIR": str(app.dir)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # "starting" is also what the pidfile says before the pid is written: wait
        # for the daemon itself (pid known) to say it.
        wait_for(
            lambda: (s := status(app)[1])["state"] == "starting" and s["pid"] is not None,
            what="state starting, pid written",
        )
        code, answer = status(app)
        assert code == 0
        app.steer("release", "")
        out, err = launcher.communicate(timeout=30)
        assert launcher.returncode == 0, err
        assert answer["pid"] == int(out)
        assert status(app)[1]["state"] == "running"
    finally:
        launcher.kill()
        launcher.wait()
    stop(app)


def test_status_says_stopping_during_the_shutdown_hooks(app: App) -> None:
    """After SIGTERM, while shutdown hooks run, status says "stopping" (exit 0)."""
    pid = start(app, "--log-file", str(app.dir / "log.jsonl"))
    # Held until the test has looked: a hook of a few seconds could end before
    # a status command even started on a busy machine.
    app.steer("shutdown", "wait")
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: status(app)[1]["state"] == "stopping", what="state stopping")
    assert status(app)[0] == 0
    app.steer("shutdown-release", "")
    wait_gone(pid)
    assert not app.control.exists()


@pytest.mark.root
def test_without_a_writable_directory_the_daemon_starts_without_control(app: App) -> None:
    """A pre-created pidfile in a directory nobody may write to: a warning, not a failed start."""
    chattr = require_tool("chattr")
    run_dir = app.dir / "run"
    run_dir.mkdir()
    pidfile = run_dir / "app.pid"
    pidfile.write_text("")
    # Immutable: not even root may create the control socket beside the pidfile.
    subprocess.run([chattr, "+i", str(run_dir)], check=True)
    try:
        log = app.dir / "log.jsonl"  # a log: start's only warning is the control socket's
        result = cli(app, "start", "control_app:main", "--pidfile", pidfile, "--log-file", log)
        assert result.returncode == 0, result.stderr
        assert "warning: no control socket" in one_line(result.stderr)
        pid = int(result.stdout)
        answer = json.loads(cli(app, "status", "--pidfile", pidfile, "--json").stdout)
        assert (answer["state"], answer["pid"], answer["version"]) == ("running", pid, None)
        reload = cli(app, "reload", "--pidfile", pidfile)
        assert reload.returncode == 0
        assert "result is not known" in one_line(reload.stderr)
        assert cli(app, "stop", "--pidfile", pidfile).returncode == 0
    finally:
        subprocess.run([chattr, "-i", str(run_dir)], check=True)
        holder = aiodaemon.read_pidfile(pidfile).running_pid
        if holder is not None:
            kill_quietly(holder)


def test_status_without_a_control_socket_falls_back_to_the_pidfile(app: App) -> None:
    """A daemon started with --no-control is still reported running from its pidfile."""
    pid = start(app, "--no-control")
    assert not app.control.exists()
    code, answer = status(app)
    assert code == 0
    assert set(answer) == STATUS_KEYS
    assert (answer["state"], answer["pid"]) == ("running", pid)
    plain = cli(app, "status", "--pidfile", app.pidfile)
    assert plain.stdout.startswith(f"running (pid {pid}")
    stop(app)


def test_status_of_no_daemon_is_3_with_one_json_object(app: App) -> None:
    """Not running: exit 3, and --json still prints one object with every key."""
    code, answer = status(app)
    assert code == 3
    assert set(answer) == STATUS_KEYS
    assert answer["pid"] is None


# --- reload -------------------------------------------------------------------------


def test_reload_waits_and_exits_0_when_every_hook_succeeded(app: App) -> None:
    """reload returns once the hooks ran: exit 0, the run recorded in status."""
    pid = start(app)
    result = cli(app, "reload", "--pidfile", app.pidfile)
    assert result.returncode == 0, result.stderr
    assert f"reloaded (pid {pid})" in one_line(result.stderr)
    # Already done when the command returned, not merely requested.
    assert (app.dir / "reloads").read_text() == "ok\n"
    last = status(app)[1]["last_reload"]
    assert isinstance(last, dict)
    assert last["ok"] is True
    assert last["error"] is None
    assert str(last["at"]).endswith("Z")
    stop(app)


def test_failed_reload_exits_1_with_the_hooks_error(app: App) -> None:
    """A raising reload hook: exit 1, "Type: message" on stderr, logged as error, still running."""
    log = app.dir / "log.jsonl"
    pid = start(app, "--log-file", str(log))
    app.steer("reload", "fail:bad setting in app.toml")
    result = cli(app, "reload", "--pidfile", app.pidfile)
    assert result.returncode == 1
    # Named: which of several reload hooks failed.
    assert result.stderr == (
        f"aiodaemon: reload hook control_app.reload_config failed (pid {pid}, still running): "
        "ValueError: bad setting in app.toml\n"
    )
    assert is_alive(pid)
    last = status(app)[1]["last_reload"]
    # --json keeps last_reload's documented keys; the plain form names the hook.
    assert last == {"ok": False, "error": "ValueError: bad setting in app.toml", "at": last["at"]}  # type: ignore[index]
    plain = cli(app, "status", "--pidfile", app.pidfile).stdout.splitlines()
    assert (
        f"last reload: failed at {last['at']} in reload hook control_app.reload_config: "
        "ValueError: bad setting in app.toml"
    ) in plain
    records = read_json_lines(log)
    finished = [r for r in records if r["event"] == "reload finished"]
    assert finished[-1]["level"] == "error"
    stop(app)


def test_reload_timeout_says_still_reloading(app: App) -> None:
    """A reload longer than --timeout: exit 1 "still reloading after S s"; status says reloading."""
    start(app)
    app.steer("reload", "wait")
    result = cli(app, "reload", "--pidfile", app.pidfile, "--timeout", "0.5")
    assert result.returncode == 1
    assert "still reloading after 0.5 s" in one_line(result.stderr)
    assert status(app)[1]["state"] == "reloading"
    app.steer("reload-release", "")
    wait_for(lambda: status(app)[1]["state"] == "running", what="the reload to finish")
    stop(app)


def test_reload_no_wait_only_sends_sighup(app: App) -> None:
    """--no-wait returns without the result (exit 0) while a slow reload still runs."""
    start(app)
    app.steer("reload", "slow:30")
    result = cli(app, "reload", "--pidfile", app.pidfile, "--no-wait")
    assert result.returncode == 0, result.stderr
    assert "reload requested" in one_line(result.stderr)
    # Returned before the hook's 30 s were up: the daemon is still at it.
    wait_for(lambda: (app.dir / "reloads").exists(), what="the reload hook")
    assert status(app)[1]["state"] == "reloading"
    stop(app)


def test_coalesced_reloads_report_the_run_that_covered_them(app: App) -> None:
    """Requests made during a run get the next run's result, and share that one run."""
    log = app.dir / "log.jsonl"
    start(app, "--log-file", str(log))
    # The first run lasts until both requests are queued behind it: a run of a
    # fixed 1.5 s could end before two clients even started on a busy machine.
    app.steer("reload", "wait")
    assert cli(app, "reload", "--pidfile", app.pidfile, "--no-wait").returncode == 0
    wait_for(lambda: status(app)[1]["state"] == "reloading", what="the first run")
    # Read by the next run only: the one under way started before these requests.
    app.steer("reload", "fail:second run")
    waiting = [
        subprocess.Popen(
            [str(SCRIPT), "reload", "--pidfile", str(app.pidfile)],
            cwd=PROGRAMS,
            env=clean_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    wait_for(lambda: _events(log).count("reload queued") == 2, 30, "both requests queued")
    app.steer("reload-release", "")
    for proc in waiting:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 1
        assert "ValueError: second run" in one_line(err)
    # The first run and exactly one more, whatever the number of requests.
    assert (app.dir / "reloads").read_text() == "wait\nfail:second run\n"
    stop(app)


def test_reload_during_startup_waits_for_the_run_after_it(app: App) -> None:
    """A reload asked while the startup hooks run is answered by the run right after them."""
    app.steer("startup", "wait")
    env = clean_env({"CONTROL_APP_DIR": str(app.dir)})
    log = app.dir / "log.jsonl"
    launcher = subprocess.Popen(
        [SCRIPT, "start", "control_app:main", "--pidfile", app.pidfile, "--log-file", log],
        cwd=PROGRAMS,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: status(app)[1]["state"] == "starting", what="state starting")
        reload = subprocess.Popen(
            [str(SCRIPT), "reload", "--pidfile", str(app.pidfile)],
            cwd=PROGRAMS,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(
            lambda: any(r["event"] == "reload queued" for r in read_json_lines(log)),
            what="the daemon to queue the reload",
        )
        assert reload.poll() is None
        app.steer("release", "")
        _, err = reload.communicate(timeout=30)
        assert reload.returncode == 0, err
        assert (app.dir / "reloads").read_text() == "ok\n"
        assert launcher.wait(timeout=30) == 0
    finally:
        launcher.kill()
        launcher.wait()
    stop(app)


def test_reload_of_a_daemon_not_running_exits_7(app: App) -> None:
    """reload with no daemon (no pidfile, or a stale one) exits 7 with one line."""
    for _ in range(2):
        result = cli(app, "reload", "--pidfile", app.pidfile)
        assert result.returncode == 7
        assert "not running" in one_line(result.stderr)
        app.pidfile.write_text("999999\n")


# --- start_timeout ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hang", "block"])
def test_start_timeout_stops_the_daemon_and_fails(app: App, mode: str) -> None:
    """Not ready in time: launcher exits 1 "not ready after S s", daemon gone, files removed.

    "block" holds the event loop: SIGTERM cannot be served, SIGKILL follows.
    """
    app.steer("startup", mode)
    result = cli(
        app,
        "start", "control_app:main", "--pidfile", app.pidfile,
        "--start-timeout", "1", "--shutdown-timeout", "1",
    )  # fmt: skip
    assert result.returncode == 1
    assert "not ready after 1 s" in one_line(result.stderr)
    assert not app.pidfile.exists()
    assert not app.control.exists()
    assert cli(app, "status", "--pidfile", app.pidfile).returncode == 3


def test_start_timeout_in_the_foreground(app: App) -> None:
    """run --start-timeout: the daemon itself exits 1 with "not ready after S s"."""
    app.steer("startup", "hang")
    result = cli(
        app,
        "run", "control_app:main", "--pidfile", app.pidfile,
        "--start-timeout", "1", "--log-format", "json",
    )  # fmt: skip
    assert result.returncode == 1
    assert "not ready after 1 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert not app.pidfile.exists()


# --- stop, stale files --------------------------------------------------------------


def test_stop_removes_a_stale_pidfile_and_says_so(app: App) -> None:
    """A pidfile nobody holds (its daemon was killed) is removed by stop, which says so."""
    pid = start(app)
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert app.pidfile.exists()
    result = cli(app, "stop", "--pidfile", app.pidfile)
    assert result.returncode == 0
    assert f"removed stale pidfile {app.pidfile}" in one_line(result.stderr)
    assert not app.pidfile.exists()


def test_stale_control_socket_never_blocks_the_next_start(app: App) -> None:
    """After a SIGKILL the socket file stays; the next start replaces it and answers on it."""
    pid = start(app)
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert stat.S_ISSOCK(os.lstat(app.control).st_mode)
    new = start(app)
    code, answer = status(app)
    assert (code, answer["pid"]) == (0, new)
    stop(app)
    assert not app.control.exists()


def test_control_socket_is_0600_whatever_the_umask_and_removed_at_exit(app: App) -> None:
    """The socket is mode 0600 with --umask 000, and gone once the daemon stopped."""
    start(app, "--umask", "000")
    st = os.lstat(app.control)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    # Nothing of the private staging directory is left beside it.
    assert sorted(p.name for p in app.dir.iterdir() if p.name.startswith(".")) == []
    stop(app)
    assert not app.control.exists()


def test_a_control_connection_open_at_the_stop_ends_quietly(app: App) -> None:
    """A client idle on the control socket while the daemon stops: exit 0, no error logged."""
    log = app.dir / "app.jsonl"
    pid = start(app, "--log-file", str(log))
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(app.control))
        stop(app)
        wait_gone(pid)
    records = read_json_lines(log)
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0
    assert [r for r in records if r["level"] in ("error", "critical")] == []


def test_a_file_in_the_way_of_the_control_socket_is_refused(app: App) -> None:
    """A regular file at the control path is never replaced: one line, exit 1, nothing left."""
    app.control.write_text("precious")
    result = cli(app, "start", "control_app:main", "--pidfile", app.pidfile)
    assert result.returncode == 1
    assert f"control socket {app.control}" in one_line(result.stderr)
    assert app.control.read_text() == "precious"
    assert not app.pidfile.exists()


# --- an untrusted or broken control socket -----------------------------------------


@contextlib.contextmanager
def planted_listener(path: Path) -> Iterator[socket.socket]:
    """A listener at ``path`` that answers a fake status, as an attacker's would."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    server.settimeout(0.1)
    try:
        yield server
    finally:
        server.close()


def test_a_listener_planted_at_the_path_is_not_trusted(app: App) -> None:
    """A socket served by another process than the lock holder: ignored, pidfile and SIGHUP.

    status says running from the pidfile (0), reload sends SIGHUP (0), each with
    one warning; the listener is connected to (for its pid) but never sent a byte.
    """
    pid = start(app, "--no-control")
    with planted_listener(app.control) as planted:
        result = cli(app, "status", "--pidfile", app.pidfile)
        assert result.returncode == 0
        assert result.stdout == f"running (pid {pid}, pidfile {app.pidfile})\n"
        warning = one_line(result.stderr)
        assert f"is served by pid {os.getpid()}, not by the daemon holding" in warning
        assert warning.endswith("not trusted, so it is ignored; status from the pidfile")
        reload = cli(app, "reload", "--pidfile", app.pidfile)
        assert reload.returncode == 0
        warning, requested = reload.stderr.splitlines()
        assert warning.endswith(f"not trusted, so it is ignored; sending SIGHUP to pid {pid}")
        assert requested.startswith(f"aiodaemon: reload requested (pid {pid}, SIGHUP)")
        wait_for(lambda: (app.dir / "reloads").exists(), what="the reload hook")
        assert _bytes_sent_to(planted) == [b"", b""]
    stop(app)


def _bytes_sent_to(server: socket.socket) -> list[bytes]:
    """What each connection waiting at ``server`` carried, until none is left."""
    got: list[bytes] = []
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            return got
        with conn:
            conn.settimeout(5)
            got.append(conn.recv(65536))


@pytest.mark.root
def test_a_socket_owned_by_another_user_is_not_trusted(app: App) -> None:
    """A control socket file owned by a uid that is neither root nor the daemon's: never used."""
    pid = start(app, "--no-control")
    with planted_listener(app.control) as planted:
        os.chown(app.control, 65534, 65534)
        result = cli(app, "status", "--pidfile", app.pidfile)
        assert result.returncode == 0
        assert result.stdout == f"running (pid {pid}, pidfile {app.pidfile})\n"
        assert "belongs to uid 65534" in one_line(result.stderr)
        assert _bytes_sent_to(planted) == []  # not even connected to
    stop(app)


@pytest.mark.parametrize(
    ("mode", "says", "code"),
    [
        ("garbage", "unreadable answer", 4),
        ("truncated", "truncated answer", 4),
        # What a daemon out of descriptors does: status falls back to the pidfile.
        ("close", "without an answer", 0),
        ("silent", "no answer from pid", 4),
        ("huge", "larger than", 4),
    ],
)
def test_a_broken_answer_is_one_line_and_a_documented_code(
    app: App, mode: str, says: str, code: int
) -> None:
    """Garbage, truncated, late or endless answers: status 4; reload 1; one line each.

    A connection closed unanswered is a daemon out of descriptors as often as a
    broken one: status reports from the pidfile (0 here, the fake holds it).
    """
    with subprocess.Popen(
        [sys.executable, str(PROGRAMS / "fake_control.py"), str(app.pidfile), mode],
        stdout=subprocess.PIPE,
        text=True,
    ) as fake:
        try:
            assert fake.stdout is not None
            assert fake.stdout.readline() == "ready\n"
            result = cli(app, "status", "--pidfile", app.pidfile, "--timeout", "1")
            reload = cli(app, "reload", "--pidfile", app.pidfile, "--timeout", "1")
        finally:
            fake.kill()
    assert result.returncode == code
    assert says in one_line(result.stderr)
    assert reload.returncode == 1
    line = one_line(reload.stderr)
    assert says in line or (mode == "silent" and "still reloading after 1 s" in line)


def test_a_daemon_whose_loop_is_blocked_gets_a_timeout_not_a_hang(app: App) -> None:
    """status of a daemon stuck in a blocking reload hook: exit 4 after --timeout."""
    pid = start(app)
    # Blocked until the test has asked: a fixed few seconds could be over before
    # the status command even started on a busy machine.
    app.steer("reload", "block-wait")
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: (app.dir / "reloads").exists(), what="the blocking hook")
    result = cli(app, "status", "--pidfile", app.pidfile, "--timeout", "0.5")
    assert result.returncode == 4
    assert "no answer from pid" in one_line(result.stderr)
    app.steer("reload-release", "")
    stop(app)


# --- hostile clients on the daemon's side --------------------------------------------


def _exchange(path: Path, payload: bytes) -> bytes:
    """Send ``payload`` as one request, as root; everything the daemon answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(20)
        conn.connect(str(path))
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data


@pytest.mark.parametrize("loop", ["--uvloop", "--no-uvloop"])
def test_bad_requests_get_an_error_answer(app: App, loop: str) -> None:
    """Garbage, another version, an unknown command, an oversized request: ok=false, alive."""
    pid = start(app, loop)
    for payload, says in [
        (b"\xff\x00 hello\n", "bad request"),
        (b'{"v": 2, "cmd": "status"}\n', "version"),
        (b'{"v": 1, "cmd": "format-disk"}\n', "unknown command"),
        (b'{"v": 1, "cmd": "status", "pad": "' + b"x" * 10000 + b'"}\n', "longer than"),
        (b'{"v": 1, "cmd": "reload", "timeout": -1}\n', "timeout"),
    ]:
        answer = json.loads(_exchange(app.control, payload))
        assert answer["ok"] is False
        assert says in answer["error"]
    assert is_alive(pid)
    assert status(app)[1]["state"] == "running"
    stop(app)


def test_a_flood_of_idle_and_bad_connections_does_not_stop_the_service(app: App) -> None:
    """500 control connections (idle, garbage, oversized) while the echo service keeps answering."""
    start(app, "--listen", "echo=127.0.0.1:0")
    sockets = status(app)[1]["sockets"]
    assert isinstance(sockets, dict)
    host, _, port = sockets["echo"].rpartition(":")
    flood: list[socket.socket] = []
    try:
        for i in range(500):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.setblocking(False)
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                conn.connect(str(app.control))
            flood.append(conn)
            with contextlib.suppress(OSError):
                if i % 3 == 1:
                    conn.send(b"\x00garbage\n")
                elif i % 3 == 2:
                    conn.send(b"{" * 8192)
        # The service's own traffic: every round trip completes (no timing assert).
        with socket.create_connection((host, int(port)), timeout=20) as echo:
            for n in range(50):
                echo.sendall(b"ping %d\n" % n)
                expected = b"ping %d\n" % n
                got = b""
                while len(got) < len(expected):
                    got += echo.recv(64)
                assert got == expected
    finally:
        for conn in flood:
            conn.close()
    code, answer = status(app)
    assert (code, answer["state"]) == (0, "running")
    stop(app)


def test_past_the_connection_cap_an_allowed_peer_is_told_busy(app: App) -> None:
    """40 silent connections fill the cap: the next is answered "busy"; then all is well."""
    start(app)
    held = []

    def busy() -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            probe.connect(str(app.control))
            try:
                answer = probe.recv(4096)
            except TimeoutError:
                return False  # served as one of the 40: it frees its slot as it closes
        return b'"busy' in answer

    try:
        for _ in range(MAX_CONNECTIONS):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(str(app.control))
            held.append(conn)
        wait_for(busy, what="a busy answer")
    finally:
        for conn in held:
            conn.close()
    wait_for(lambda: status(app)[0] == 0, what="status once the silent clients left")
    stop(app)


def test_a_client_that_never_sends_is_dropped(app: App) -> None:
    """A silent client gets a "no complete request" answer after the request timeout."""
    start(app)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(str(app.control))
        answer = json.loads(conn.recv(4096))
    assert answer["ok"] is False
    assert "no complete request" in answer["error"]
    stop(app)


# --- privileges: a daemon dropped to nobody, a stranger's connection ----------------


@pytest.fixture
def root_only(app: App) -> Path:
    """A root-only directory (0700) for the pidfile, like /run/NAME owned by root."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root: run the suite as root (as .ci/run does)")
    path = app.dir / "run"
    path.mkdir(mode=0o700)
    return path


@pytest.mark.root
def test_daemon_dropped_to_nobody_answers_root_on_its_control_socket(
    app: App, root_only: Path
) -> None:
    """Pidfile in a root-only dir, user nobody: the socket is nobody's, 0600; status/reload work."""
    pidfile = root_only / "app.pid"
    control = root_only / "app.pid.ctl"
    result = cli(
        app, "start", "control_app:main", "--pidfile", pidfile, "--user", "nobody",
        "--workdir", "/",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout)
    try:
        st = os.lstat(control)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY.uid, 0o600)
        answer = json.loads(cli(app, "status", "--pidfile", pidfile, "--json").stdout)
        assert (answer["state"], answer["pid"]) == ("running", pid)
        reload = cli(app, "reload", "--pidfile", pidfile)
        assert reload.returncode == 0, reload.stderr
        assert cli(app, "stop", "--pidfile", pidfile).returncode == 0
        wait_gone(pid)
        # The next start replaces whatever nobody could not remove.
        again = cli(
            app, "start", "control_app:main", "--pidfile", pidfile, "--user", "nobody",
            "--workdir", "/",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert cli(app, "status", "--pidfile", pidfile).returncode == 0
        assert cli(app, "stop", "--pidfile", pidfile).returncode == 0
    finally:
        holder = aiodaemon.read_pidfile(pidfile).running_pid
        if holder is not None:
            kill_quietly(holder)


@pytest.mark.root
def test_a_peer_of_another_uid_learns_nothing(app: App) -> None:
    """Even through a socket opened up to everyone, a stranger (nobody) gets no byte back."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root: run the suite as root (as .ci/run does)")
    start(app)
    # The mode is the first barrier; SO_PEERCRED must hold without it.
    os.chmod(app.control, 0o666)
    result = shared_python_as(NOBODY, program("control_stranger"), app.control, cwd="/", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "b''"
    # The owner still gets its answer.
    assert status(app)[0] == 0
    stop(app)


@pytest.mark.root
def test_the_cli_as_a_stranger_falls_back_to_the_pidfile(app: App) -> None:
    """aiodaemon status run by nobody cannot use the 0600 socket and reads the pidfile instead."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root: run the suite as root (as .ci/run does)")
    pid = start(app)
    result = shared_python_as(
        NOBODY, "-m", "aiodaemon", "status", "--pidfile", app.pidfile, cwd="/", timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"running (pid {pid}")
    stop(app)


def test_control_commands_load_neither_asyncio_nor_the_runtime(app: App) -> None:
    """status, reload and stop of a running daemon import no asyncio, structlog or runtime."""
    start(app)
    report = app.dir / "loaded.json"
    for command in ("status", "reload", "stop"):
        result = subprocess.run(
            [
                sys.executable,
                str(program("control_loaded")),
                str(report),
                command,
                "--pidfile",
                str(app.pidfile),
            ],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(report.read_text()) == [], command


def test_usage_errors_of_the_control_commands(app: App) -> None:
    """Bad --timeout values and unknown flags: one line, exit 2."""
    pidfile = str(app.pidfile)
    for args in (
        ["reload", "--pidfile", pidfile, "--timeout", "soon"],
        ["status", "--pidfile", pidfile, "--timeout", "-1"],
        ["status", "--pidfile", pidfile, "--no-wait"],
    ):
        result = cli(app, *args)
        assert result.returncode == 2
        one_line(result.stderr)


def test_a_socket_without_a_lock_holder_is_never_asked(app: App) -> None:
    """A listener at the path but no daemon holding the pidfile: status reads the pidfile only."""
    app.pidfile.write_text(f"{os.getpid()}\n")
    with planted_listener(app.control) as planted:
        result = cli(app, "status", "--pidfile", app.pidfile)
        assert result.returncode == 1  # dead: the pidfile names a pid that does not hold it
        with pytest.raises(TimeoutError):
            planted.accept()
